//! A store that times every operation of the store it wraps: the histogram
//! `ssogate_store_duration_seconds{op}` (op = the operation's name), for the Redis store.
//! Errors are counted where they are understood (`ssogate_store_failures_total{kind}` in
//! the Redis store, `ssogate_store_errors_total{op}` where a request fails).

use std::time::{Duration, Instant};

use super::store::{DocIndex, DocUpdate, MemberChange};
use super::{PendingLogin, Revocation, SessionError, SessionRecord, SessionStore};
use crate::metrics::METRICS;

/// `inner`, each operation timed.
#[derive(Debug)]
pub struct Timed<S> {
    inner: S,
}

impl<S> Timed<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

async fn timed<T>(op: &'static str, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = f.await;
    METRICS
        .store_duration
        .with_label_values(&[op])
        .observe(start.elapsed().as_secs_f64());
    out
}

#[async_trait::async_trait]
impl<S: SessionStore> SessionStore for Timed<S> {
    async fn put_session(
        &self,
        key: &str,
        rec: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        timed("put_session", self.inner.put_session(key, rec, ttl)).await
    }
    async fn get_session(&self, key: &str) -> Result<Option<SessionRecord>, SessionError> {
        timed("get_session", self.inner.get_session(key)).await
    }
    async fn touch_session(
        &self,
        key: &str,
        rec: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        timed("touch_session", self.inner.touch_session(key, rec, ttl)).await
    }
    async fn delete_session(&self, key: &str) -> Result<(), SessionError> {
        timed("delete_session", self.inner.delete_session(key)).await
    }
    async fn user_sessions(&self, app: &str, name_id: &str) -> Result<Vec<String>, SessionError> {
        timed("user_sessions", self.inner.user_sessions(app, name_id)).await
    }
    async fn delete_user_sessions(&self, app: &str, name_id: &str) -> Result<usize, SessionError> {
        timed(
            "delete_user_sessions",
            self.inner.delete_user_sessions(app, name_id),
        )
        .await
    }
    async fn put_pending(
        &self,
        request_id: &str,
        p: &PendingLogin,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        timed("put_pending", self.inner.put_pending(request_id, p, ttl)).await
    }
    async fn take_pending(&self, request_id: &str) -> Result<Option<PendingLogin>, SessionError> {
        timed("take_pending", self.inner.take_pending(request_id)).await
    }
    async fn remember_assertion(
        &self,
        assertion_id: &str,
        ttl: Duration,
    ) -> Result<bool, SessionError> {
        timed(
            "remember_assertion",
            self.inner.remember_assertion(assertion_id, ttl),
        )
        .await
    }
    async fn count_event(&self, key: &str, window: Duration) -> Result<u64, SessionError> {
        timed("count_event", self.inner.count_event(key, window)).await
    }
    async fn ping(&self) -> Result<(), SessionError> {
        timed("ping", self.inner.ping()).await
    }
    async fn doc_update(
        &self,
        collection: &str,
        id: &str,
        doc: &[u8],
        index: &DocIndex,
        previous: &DocIndex,
        expected: Option<&[u8]>,
        members: &MemberChange,
    ) -> Result<DocUpdate, SessionError> {
        timed(
            "doc_put",
            self.inner
                .doc_update(collection, id, doc, index, previous, expected, members),
        )
        .await
    }
    async fn doc_members(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, SessionError> {
        timed("doc_members", self.inner.doc_members(collection, id)).await
    }
    async fn doc_member_counts(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<usize>, SessionError> {
        timed("doc_members", self.inner.doc_member_counts(collection, ids)).await
    }
    async fn doc_members_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Vec<(String, String)>>, SessionError> {
        timed("doc_members", self.inner.doc_members_many(collection, ids)).await
    }
    async fn doc_get(&self, collection: &str, id: &str) -> Result<Option<Vec<u8>>, SessionError> {
        timed("doc_get", self.inner.doc_get(collection, id)).await
    }
    async fn doc_get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, SessionError> {
        timed("doc_get_many", self.inner.doc_get_many(collection, ids)).await
    }
    async fn doc_delete(
        &self,
        collection: &str,
        id: &str,
        index: &DocIndex,
    ) -> Result<bool, SessionError> {
        timed("doc_delete", self.inner.doc_delete(collection, id, index)).await
    }
    async fn doc_find(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Option<String>, SessionError> {
        timed("doc_find", self.inner.doc_find(collection, index, key)).await
    }
    async fn doc_find_all(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<String>, SessionError> {
        timed(
            "doc_find_all",
            self.inner.doc_find_all(collection, index, key),
        )
        .await
    }
    async fn doc_summaries(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, SessionError> {
        timed("doc_summaries", self.inner.doc_summaries(collection, ids)).await
    }
    async fn doc_find_summaries(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<String>, SessionError> {
        timed(
            "doc_find_summaries",
            self.inner.doc_find_summaries(collection, index, key),
        )
        .await
    }
    async fn doc_count(&self, collection: &str) -> Result<usize, SessionError> {
        timed("doc_count", self.inner.doc_count(collection)).await
    }
    async fn doc_page(
        &self,
        collection: &str,
        start: usize,
        count: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, SessionError> {
        timed("doc_page", self.inner.doc_page(collection, start, count)).await
    }
    async fn doc_list(&self, collection: &str) -> Result<Vec<Vec<u8>>, SessionError> {
        timed("doc_list", self.inner.doc_list(collection)).await
    }
    async fn doc_reindex(
        &self,
        collection: &str,
        entries: &[(String, DocIndex)],
    ) -> Result<usize, SessionError> {
        timed("doc_reindex", self.inner.doc_reindex(collection, entries)).await
    }
    async fn legacy_docs(
        &self,
        collection: &str,
        count: usize,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, SessionError> {
        timed("legacy_docs", self.inner.legacy_docs(collection, count)).await
    }
    async fn legacy_forget(&self, collection: &str, ids: &[String]) -> Result<(), SessionError> {
        timed("legacy_forget", self.inner.legacy_forget(collection, ids)).await
    }
    /// Not timed: it lasts as long as the subscription.
    async fn follow_revocations(
        &self,
        on_event: &(dyn Fn(Revocation) + Send + Sync),
    ) -> Result<(), SessionError> {
        self.inner.follow_revocations(on_event).await
    }
}
