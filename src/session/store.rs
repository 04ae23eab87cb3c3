//! The storage contract every backend implements, and the records it stores.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SessionError;
use crate::identity::Identity;

/// A signed-in session as stored (JSON in Redis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The app (config name) the session was created for.
    pub app: String,
    pub identity: Identity,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last recorded activity (rewritten at most every touch interval).
    pub last_seen: i64,
    /// Absolute cap, unix seconds: never valid at or after this instant.
    pub expires_at: i64,
    /// The identity headers built from this record for its app (by `App::index`), once
    /// per copy in memory: a cached session's requests share them. Never stored.
    #[serde(skip)]
    pub headers: Memo<(usize, crate::headers::Prepared)>,
}

/// A value derived from a record once per copy in memory: never stored, cloned empty,
/// ignored by equality.
pub struct Memo<T>(std::sync::OnceLock<T>);

impl<T> Memo<T> {
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(f)
    }
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(std::sync::OnceLock::new())
    }
}

impl<T> Clone for Memo<T> {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl<T> PartialEq for Memo<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Memo<T> {}

impl<T> std::fmt::Debug for Memo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}

/// An SP-initiated login in flight, keyed by the AuthnRequest ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub app: String,
    pub return_to: String,
    /// Unix seconds.
    pub created_at: i64,
    /// An urlencoded form body to post again after sign-in (PostReplay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_body: Option<String>,
    /// Hex SHA-256 of the browser binding (a cookie set when the sign-in started): the
    /// response must come back through the same browser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
}

/// What the revocation feed announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The feed is (again) live: announcements before this one may have been missed.
    Subscribed,
    /// This session (store key) was deleted, by this or another replica.
    Session(String),
}

/// Session storage. Keys passed in are `SessionId::store_key()` values (hashes), never
/// raw IDs. TTLs shorter than 1 ms are raised to 1 ms.
///
/// Errors: `Unavailable` when the backend cannot answer (the gateway answers 503),
/// `Corrupt` when a stored record does not decode.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Store a session and add `key` to the per-user index (app + name_id); the index
    /// lives at least as long as the session.
    async fn put_session(
        &self,
        key: &str,
        rec: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), SessionError>;
    async fn get_session(&self, key: &str) -> Result<Option<SessionRecord>, SessionError>;
    /// Rewrite an existing session (new `last_seen`) and reset its TTL. A session that
    /// no longer exists (expired or revoked meanwhile) is not recreated.
    async fn touch_session(
        &self,
        key: &str,
        rec: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), SessionError>;
    async fn delete_session(&self, key: &str) -> Result<(), SessionError>;
    /// Live session keys of one user of one app.
    async fn user_sessions(&self, app: &str, name_id: &str) -> Result<Vec<String>, SessionError>;
    /// Delete every session of one user of one app (SLO, SCIM deactivation, revoke);
    /// returns how many live sessions were deleted.
    async fn delete_user_sessions(&self, app: &str, name_id: &str) -> Result<usize, SessionError>;
    async fn put_pending(
        &self,
        request_id: &str,
        p: &PendingLogin,
        ttl: Duration,
    ) -> Result<(), SessionError>;
    /// Atomic get-and-delete: of several concurrent takers exactly one gets the value.
    async fn take_pending(&self, request_id: &str) -> Result<Option<PendingLogin>, SessionError>;
    /// Record an assertion ID: `true` the first time it is seen, `false` on a replay
    /// (within `ttl`).
    async fn remember_assertion(
        &self,
        assertion_id: &str,
        ttl: Duration,
    ) -> Result<bool, SessionError>;
    /// Count one event under `key` in a window of `window` that starts with the first
    /// event; returns the count including this one. Atomic across replicas. Used to cap
    /// unauthenticated work (pending sign-ins per client and in total).
    async fn count_event(&self, key: &str, window: Duration) -> Result<u64, SessionError>;
    /// Readiness: is the backend reachable?
    async fn ping(&self) -> Result<(), SessionError>;

    /// Documents (SCIM users and groups, just-in-time user records): JSON bytes under
    /// `id` in a collection, shared by every replica, with secondary indexes kept in the
    /// same atomic step. `index` are the entries this document claims, `previous` the ones
    /// its stored version held (those it no longer claims are removed). With `expected`,
    /// the write happens only if the stored document is exactly those bytes (`Stale`
    /// otherwise): read-modify-write without lost updates. A unique entry that belongs to
    /// another document makes the write a `Conflict` (nothing written).
    async fn doc_put(
        &self,
        collection: &str,
        id: &str,
        doc: &[u8],
        index: &DocIndex,
        previous: &DocIndex,
        expected: Option<&[u8]>,
    ) -> Result<DocWrite, SessionError> {
        let none = MemberChange::default();
        self.doc_update(collection, id, doc, index, previous, expected, &none)
            .await
            .map(|u| u.write)
    }
    /// [`Self::doc_put`] that also changes the document's members (see [`MemberChange`])
    /// in the same atomic step, and says how many were really added and removed.
    #[allow(clippy::too_many_arguments)]
    async fn doc_update(
        &self,
        collection: &str,
        id: &str,
        doc: &[u8],
        index: &DocIndex,
        previous: &DocIndex,
        expected: Option<&[u8]>,
        members: &MemberChange,
    ) -> Result<DocUpdate, SessionError>;
    /// A document's members, (member id, its other attributes as written), in no
    /// particular order.
    async fn doc_members(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, SessionError>;
    /// How many members each of several documents has, in `ids` order, without reading
    /// the lists.
    async fn doc_member_counts(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<usize>, SessionError> {
        Ok(self
            .doc_members_many(collection, ids)
            .await?
            .iter()
            .map(Vec::len)
            .collect())
    }
    /// The members of several documents, in `ids` order.
    async fn doc_members_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Vec<(String, String)>>, SessionError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.doc_members(collection, id).await?);
        }
        Ok(out)
    }
    async fn doc_get(&self, collection: &str, id: &str) -> Result<Option<Vec<u8>>, SessionError>;
    /// Several documents in one round trip (`None` for a missing one), in `ids` order.
    async fn doc_get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, SessionError>;
    /// Delete a document, its members and its index entries (`index`: what it claims,
    /// its members' entries included); `false` when it did not exist.
    async fn doc_delete(
        &self,
        collection: &str,
        id: &str,
        index: &DocIndex,
    ) -> Result<bool, SessionError>;
    /// The id holding a unique index entry.
    async fn doc_find(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Option<String>, SessionError>;
    /// The ids listed under a multi-valued index entry.
    async fn doc_find_all(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<String>, SessionError>;
    /// The summaries (see [`DocIndex::summary`]) of several documents, in `ids` order.
    async fn doc_summaries(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, SessionError>;
    /// The summaries of the documents listed under a multi-valued index entry, in one
    /// step (sign-in's "which groups is this user in").
    async fn doc_find_summaries(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<String>, SessionError> {
        let ids = self.doc_find_all(collection, index, key).await?;
        Ok(self
            .doc_summaries(collection, &ids)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }
    /// How many documents a collection holds.
    async fn doc_count(&self, collection: &str) -> Result<usize, SessionError>;
    /// Up to `count` documents from position `start` (0-based) in creation order, with
    /// their ids: paging without loading the collection.
    async fn doc_page(
        &self,
        collection: &str,
        start: usize,
        count: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, SessionError>;
    /// Every document of a collection (for rebuilds and small collections only).
    async fn doc_list(&self, collection: &str) -> Result<Vec<Vec<u8>>, SessionError> {
        let mut out = Vec::new();
        let total = self.doc_count(collection).await?;
        let mut start = 0;
        while start < total {
            let page = self.doc_page(collection, start, 1000).await?;
            if page.is_empty() {
                break;
            }
            start += page.len();
            out.extend(page.into_iter().map(|(_, d)| d));
        }
        Ok(out)
    }
    /// Remove every index entry of a collection and claim `entries` afresh (id, index):
    /// the repair when indexes and documents disagree. Returns how many entries were set.
    async fn doc_reindex(
        &self,
        collection: &str,
        entries: &[(String, DocIndex)],
    ) -> Result<usize, SessionError>;

    /// Documents still in the layout of versions before the indexes (Redis only:
    /// `doc:<collection>:<sha256(id)>`, ids in the set `doc:<collection>:ids`): up to
    /// `count` of them, as (id, bytes; `None` when the id set named a missing document).
    /// Empty when none is left. The documents stay until [`Self::legacy_forget`].
    async fn legacy_docs(
        &self,
        _collection: &str,
        _count: usize,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, SessionError> {
        Ok(Vec::new())
    }
    /// Remove these legacy documents (written in the current layout first); once the
    /// collection has none left, its legacy unique keys too.
    async fn legacy_forget(&self, _collection: &str, _ids: &[String]) -> Result<(), SessionError> {
        Ok(())
    }

    /// Follow session deletions made by any replica (`delete_session`,
    /// `delete_user_sessions`): calls `on_event(Subscribed)` once live, then
    /// `on_event(Session(key))` per deleted session, until the feed breaks; returns why.
    /// In-process caches use it to drop revoked sessions at once.
    async fn follow_revocations(
        &self,
        on_event: &(dyn Fn(Revocation) + Send + Sync),
    ) -> Result<(), SessionError>;
}

/// The secondary-index entries of one document: `(index, key)` pairs, keys already
/// normalised by the caller (lower case where the lookup is case-insensitive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocIndex {
    /// One document per key: a second claimant gets `DocWrite::Conflict`.
    pub unique: Vec<(String, String)>,
    /// Any number of documents per key (group members, externalId, e-mail).
    pub multi: Vec<(String, String)>,
    /// A short text kept beside the document and read without it (a group's object ID,
    /// for sign-in's "which groups is this user in" without loading member lists).
    pub summary: Option<String>,
}

impl DocIndex {
    pub fn is_empty(&self) -> bool {
        self.unique.is_empty() && self.multi.is_empty() && self.summary.is_none()
    }
}

/// A change to a document's members (a group's): a list kept beside the document, not in
/// it, each member listed under `index` in the collection's multi-valued index (member
/// -> documents) in the same step. A member joins or leaves in O(1), whatever the size
/// of the list: Entra's membership PATCHes never rewrite a group of 100,000 members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberChange {
    /// The multi-valued index the members are listed under.
    pub index: String,
    /// Members to add (or whose attributes change): (member id, other attributes).
    pub add: Vec<(String, String)>,
    /// Member ids to remove (applied before `add`).
    pub remove: Vec<String>,
}

impl MemberChange {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Result of [`SessionStore::doc_update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocUpdate {
    pub write: DocWrite,
    /// Members that were not members before.
    pub added: usize,
    /// Members that were members before.
    pub removed: usize,
}

/// Result of a document write that claims a unique key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocWrite {
    Written,
    /// The unique key belongs to another document; nothing was written.
    Conflict,
    /// The stored document is not the one expected (changed meanwhile); nothing written.
    Stale,
}

/// The per-user index key part for (app, name_id): hex SHA-256 of an unambiguous
/// encoding, so odd or long name IDs give bounded, uniform keys. The NameID is
/// lower-cased: Entra's NameIDs (UPN, email) are case-insensitive, and SLO, SCIM and
/// `users revoke` must find the sessions whatever case each side uses.
pub(crate) fn user_index_key(app: &str, name_id: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(app.len().to_be_bytes());
    h.update(app.as_bytes());
    h.update(name_id.to_lowercase().as_bytes());
    hex::encode(h.finalize())
}

/// The names a session is indexed under for its user: the NameID and, when the token
/// carries Entra's objectidentifier claim, `oid:<object ID>` (so SCIM, which knows a
/// user's object ID as externalId, ends sessions whatever the NameID format).
pub fn session_user_names(identity: &Identity) -> impl Iterator<Item = String> + '_ {
    std::iter::once(identity.name_id.clone()).chain(
        identity
            .claim(crate::identity::claims::OBJECT_ID)
            .first()
            .filter(|oid| !oid.is_empty())
            .map(|oid| object_id_user(oid)),
    )
}

/// The per-user index name of an Entra object ID (see [`session_user_names`]).
pub fn object_id_user(oid: &str) -> String {
    format!("oid:{}", oid.to_ascii_lowercase())
}

/// Hex SHA-256 of an externally supplied identifier (request or assertion ID), so keys
/// have a bounded size whatever the input.
pub(crate) fn hashed(s: &str) -> String {
    use sha2::{Digest as _, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The TTL floor applied by every backend.
pub(crate) fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.max(Duration::from_millis(1))
}
