#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;
use crate::session::{MemoryStore, PendingLogin};

const T0: i64 = 1_700_000_000;

/// A MemoryStore that records TTLs and can be switched to fail.
#[derive(Default)]
struct Spy {
    inner: MemoryStore,
    ttls: Mutex<Vec<(&'static str, Duration)>>,
    deletes: Mutex<usize>,
    gets: Mutex<usize>,
    /// 0 normal, 1 get returns Corrupt, 2 every op Unavailable.
    mode: AtomicU8,
}

impl Spy {
    fn fail(&self) -> Result<(), SessionError> {
        match self.mode.load(Ordering::SeqCst) {
            2 => Err(SessionError::Unavailable("down".into())),
            _ => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for Spy {
    async fn put_session(
        &self,
        k: &str,
        r: &SessionRecord,
        t: Duration,
    ) -> Result<(), SessionError> {
        self.fail()?;
        self.ttls.lock().push(("put", t));
        self.inner.put_session(k, r, t).await
    }
    async fn get_session(&self, k: &str) -> Result<Option<SessionRecord>, SessionError> {
        self.fail()?;
        *self.gets.lock() += 1;
        if self.mode.load(Ordering::SeqCst) == 1 {
            return Err(SessionError::Corrupt);
        }
        self.inner.get_session(k).await
    }
    async fn touch_session(
        &self,
        k: &str,
        r: &SessionRecord,
        t: Duration,
    ) -> Result<(), SessionError> {
        self.fail()?;
        self.ttls.lock().push(("touch", t));
        self.inner.touch_session(k, r, t).await
    }
    async fn delete_session(&self, k: &str) -> Result<(), SessionError> {
        self.fail()?;
        *self.deletes.lock() += 1;
        self.inner.delete_session(k).await
    }
    async fn user_sessions(&self, a: &str, n: &str) -> Result<Vec<String>, SessionError> {
        self.inner.user_sessions(a, n).await
    }
    async fn delete_user_sessions(&self, a: &str, n: &str) -> Result<usize, SessionError> {
        self.inner.delete_user_sessions(a, n).await
    }
    async fn doc_update(
        &self,
        c: &str,
        id: &str,
        d: &[u8],
        u: &crate::session::DocIndex,
        p: &crate::session::DocIndex,
        e: Option<&[u8]>,
        m: &crate::session::MemberChange,
    ) -> Result<crate::session::DocUpdate, SessionError> {
        self.inner.doc_update(c, id, d, u, p, e, m).await
    }
    async fn doc_members(&self, c: &str, id: &str) -> Result<Vec<(String, String)>, SessionError> {
        self.inner.doc_members(c, id).await
    }
    async fn doc_get(&self, c: &str, id: &str) -> Result<Option<Vec<u8>>, SessionError> {
        self.inner.doc_get(c, id).await
    }
    async fn doc_get_many(
        &self,
        c: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, SessionError> {
        self.inner.doc_get_many(c, ids).await
    }
    async fn doc_delete(
        &self,
        c: &str,
        id: &str,
        u: &crate::session::DocIndex,
    ) -> Result<bool, SessionError> {
        self.inner.doc_delete(c, id, u).await
    }
    async fn doc_find(&self, c: &str, i: &str, k: &str) -> Result<Option<String>, SessionError> {
        self.inner.doc_find(c, i, k).await
    }
    async fn doc_find_all(&self, c: &str, i: &str, k: &str) -> Result<Vec<String>, SessionError> {
        self.inner.doc_find_all(c, i, k).await
    }
    async fn doc_summaries(
        &self,
        c: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, SessionError> {
        self.inner.doc_summaries(c, ids).await
    }
    async fn doc_count(&self, c: &str) -> Result<usize, SessionError> {
        self.inner.doc_count(c).await
    }
    async fn doc_page(
        &self,
        c: &str,
        start: usize,
        count: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, SessionError> {
        self.inner.doc_page(c, start, count).await
    }
    async fn doc_reindex(
        &self,
        c: &str,
        e: &[(String, crate::session::DocIndex)],
    ) -> Result<usize, SessionError> {
        self.inner.doc_reindex(c, e).await
    }
    async fn put_pending(
        &self,
        r: &str,
        p: &PendingLogin,
        t: Duration,
    ) -> Result<(), SessionError> {
        self.inner.put_pending(r, p, t).await
    }
    async fn take_pending(&self, r: &str) -> Result<Option<PendingLogin>, SessionError> {
        self.inner.take_pending(r).await
    }
    async fn remember_assertion(&self, a: &str, t: Duration) -> Result<bool, SessionError> {
        self.inner.remember_assertion(a, t).await
    }
    async fn count_event(&self, k: &str, w: Duration) -> Result<u64, SessionError> {
        self.inner.count_event(k, w).await
    }
    async fn ping(&self) -> Result<(), SessionError> {
        self.fail()
    }
    async fn follow_revocations(
        &self,
        on_event: &(dyn Fn(Revocation) + Send + Sync),
    ) -> Result<(), SessionError> {
        self.inner.follow_revocations(on_event).await
    }
}

fn alice() -> Identity {
    Identity {
        name_id: "alice@example.com".into(),
        ..Default::default()
    }
}

fn manager(idle: u64, absolute: u64) -> (Arc<Spy>, SessionManager) {
    let spy = Arc::new(Spy::default());
    let m = SessionManager::new(
        spy.clone(),
        Duration::from_secs(idle),
        Duration::from_secs(absolute),
    );
    (spy, m)
}

async fn stored(spy: &Spy, id: &SessionId) -> Option<SessionRecord> {
    spy.inner.get_session(&id.store_key()).await.unwrap()
}

#[tokio::test]
async fn create_then_load() {
    let (spy, m) = manager(600, 3600);
    let (id, rec) = m.create("app", alice(), T0, None).await.unwrap();
    assert_eq!(rec.created_at, T0);
    assert_eq!(rec.last_seen, T0);
    assert_eq!(rec.expires_at, T0 + 3600);
    assert_eq!(
        spy.ttls.lock().as_slice(),
        [("put", Duration::from_secs(600))]
    );
    let loaded = m.load(&id, "app", T0 + 1).await.unwrap().unwrap();
    assert_eq!(loaded.identity, alice());
    assert_eq!(
        m.store()
            .user_sessions("app", "alice@example.com")
            .await
            .unwrap(),
        [id.store_key()]
    );
}

#[tokio::test]
async fn idle_timeout_expires_and_deletes() {
    let (spy, m) = manager(600, 36_000);
    let (id, _) = m.create("app", alice(), T0, None).await.unwrap();
    // activity within the idle window slides it (this load rewrites last_seen)
    assert!(m.load(&id, "app", T0 + 599).await.unwrap().is_some());
    assert!(m.load(&id, "app", T0 + 1100).await.unwrap().is_some());
    // idle for exactly the idle timeout: gone, and deleted from the store
    assert!(m.load(&id, "app", T0 + 1100 + 600).await.unwrap().is_none());
    assert!(stored(&spy, &id).await.is_none());
    assert!(m.load(&id, "app", T0 + 1101).await.unwrap().is_none());
}

#[tokio::test]
async fn absolute_timeout_expires_despite_activity() {
    let (spy, m) = manager(600, 1000);
    let (id, rec) = m.create("app", alice(), T0, None).await.unwrap();
    assert_eq!(rec.expires_at, T0 + 1000);
    assert!(m.load(&id, "app", T0 + 500).await.unwrap().is_some());
    assert!(m.load(&id, "app", T0 + 999).await.unwrap().is_some());
    // the last touch at T0+999 set a store TTL of 1 s, not the idle timeout
    assert_eq!(
        spy.ttls.lock().last(),
        Some(&("touch", Duration::from_secs(1)))
    );
    assert!(m.load(&id, "app", T0 + 1000).await.unwrap().is_none());
    assert!(stored(&spy, &id).await.is_none());
}

#[tokio::test]
async fn cap_from_session_not_on_or_after() {
    let (spy, m) = manager(600, 3600);
    let (id, rec) = m.create("app", alice(), T0, Some(T0 + 100)).await.unwrap();
    assert_eq!(rec.expires_at, T0 + 100);
    assert_eq!(
        spy.ttls.lock().last(),
        Some(&("put", Duration::from_secs(100)))
    );
    assert!(m.load(&id, "app", T0 + 99).await.unwrap().is_some());
    assert!(m.load(&id, "app", T0 + 100).await.unwrap().is_none());
    // a cap beyond the absolute lifetime does not extend it
    let (_, rec) = m
        .create("app", alice(), T0, Some(T0 + 99_999))
        .await
        .unwrap();
    assert_eq!(rec.expires_at, T0 + 3600);
    // a cap already passed: no session
    assert!(matches!(
        m.create("app", alice(), T0, Some(T0)).await,
        Err(SessionError::Expired)
    ));
}

#[tokio::test]
async fn session_of_one_app_is_not_loaded_for_another() {
    let (spy, m) = manager(600, 3600);
    let (id, _) = m.create("app-a", alice(), T0, None).await.unwrap();
    assert!(m.load(&id, "app-b", T0 + 1).await.unwrap().is_none());
    // ...and is not destroyed by that attempt
    assert!(stored(&spy, &id).await.is_some());
    assert!(m.load(&id, "app-a", T0 + 2).await.unwrap().is_some());
}

#[tokio::test]
async fn touch_is_throttled() {
    let (spy, m) = manager(600, 3600);
    assert_eq!(m.touch_interval(), DEFAULT_TOUCH_INTERVAL);
    let (id, _) = m.create("app", alice(), T0, None).await.unwrap();
    for dt in [1, 30, 59] {
        let rec = m.load(&id, "app", T0 + dt).await.unwrap().unwrap();
        assert_eq!(rec.last_seen, T0);
    }
    assert_eq!(
        spy.ttls.lock().len(),
        1,
        "no store write within the touch interval"
    );
    assert_eq!(stored(&spy, &id).await.unwrap().last_seen, T0);

    let rec = m.load(&id, "app", T0 + 60).await.unwrap().unwrap();
    assert_eq!(rec.last_seen, T0 + 60);
    assert_eq!(stored(&spy, &id).await.unwrap().last_seen, T0 + 60);
    assert_eq!(
        spy.ttls.lock().last(),
        Some(&("touch", Duration::from_secs(600)))
    );
    // the next window starts at the rewrite
    m.load(&id, "app", T0 + 119).await.unwrap().unwrap();
    assert_eq!(spy.ttls.lock().len(), 2);
}

#[tokio::test]
async fn touch_interval_is_configurable_and_capped_by_idle() {
    let (_, m) = manager(600, 3600);
    assert_eq!(
        m.with_touch_interval(Duration::from_secs(5))
            .touch_interval(),
        Duration::from_secs(5)
    );
    let (_, m) = manager(30, 3600);
    assert_eq!(m.touch_interval(), Duration::from_secs(15));
    let (spy, m) = manager(600, 3600);
    let m = m.with_touch_interval(Duration::ZERO);
    let (id, _) = m.create("app", alice(), T0, None).await.unwrap();
    m.load(&id, "app", T0).await.unwrap().unwrap();
    assert_eq!(
        spy.ttls.lock().len(),
        2,
        "interval 0 rewrites on every load"
    );
}

#[tokio::test]
async fn corrupt_record_is_no_session_and_deleted() {
    let (spy, m) = manager(600, 3600);
    let (id, _) = m.create("app", alice(), T0, None).await.unwrap();
    spy.mode.store(1, Ordering::SeqCst);
    assert!(m.load(&id, "app", T0 + 1).await.unwrap().is_none());
    assert_eq!(*spy.deletes.lock(), 1);
}

#[tokio::test]
async fn unavailable_store_is_an_error() {
    let (spy, m) = manager(600, 3600);
    let (id, _) = m.create("app", alice(), T0, None).await.unwrap();
    spy.mode.store(2, Ordering::SeqCst);
    assert!(matches!(
        m.load(&id, "app", T0 + 1).await,
        Err(SessionError::Unavailable(_))
    ));
    assert!(matches!(
        m.create("app", alice(), T0, None).await,
        Err(SessionError::Unavailable(_))
    ));
}

#[tokio::test]
async fn destroy_removes_the_session() {
    let (_, m) = manager(600, 3600);
    let (id, _) = m.create("app", alice(), T0, None).await.unwrap();
    m.destroy(&id).await.unwrap();
    assert!(m.load(&id, "app", T0 + 1).await.unwrap().is_none());
    // unknown IDs are simply absent
    assert!(m
        .load(&SessionId::generate(), "app", T0)
        .await
        .unwrap()
        .is_none());
}

// === cache ===

/// Waits until the manager's revocation feed is live.
async fn with_feed(m: &Arc<SessionManager>) -> tokio::task::JoinHandle<()> {
    let follower = m.clone();
    let handle = tokio::spawn(async move { follower.follow_revocations().await });
    for _ in 0..100 {
        if m.feed_live.load(Ordering::Acquire) {
            return handle;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("revocation feed did not start");
}

#[tokio::test]
async fn cache_serves_hits_without_the_store_while_the_feed_is_live() {
    let (spy, m) = manager(1800, 8 * 3600);
    let m = Arc::new(m);
    let (id, _) = m.create("app", alice(), T0, None).await.unwrap();
    // Without a feed, every load asks the store.
    m.load(&id, "app", T0).await.unwrap().unwrap();
    m.load(&id, "app", T0).await.unwrap().unwrap();
    assert_eq!(*spy.gets.lock(), 2);

    let feed = with_feed(&m).await;
    m.load(&id, "app", T0 + 1).await.unwrap().unwrap();
    for _ in 0..10 {
        m.load(&id, "app", T0 + 2).await.unwrap().unwrap();
    }
    assert_eq!(*spy.gets.lock(), 3, "one miss, then hits");
    assert!(m.load(&id, "other-app", T0 + 2).await.unwrap().is_none());
    // Due for a touch: the store is asked again (and rewritten).
    m.load(&id, "app", T0 + 61).await.unwrap().unwrap();
    assert_eq!(*spy.gets.lock(), 4);
    feed.abort();
}

#[tokio::test]
async fn revocation_by_any_path_evicts_the_cached_session() {
    let (spy, m) = manager(1800, 8 * 3600);
    let m = Arc::new(m);
    let _feed = with_feed(&m).await;
    let (id1, _) = m.create("app", alice(), T0, None).await.unwrap();
    let (id2, _) = m.create("app", alice(), T0, None).await.unwrap();
    m.load(&id1, "app", T0).await.unwrap().unwrap();
    m.load(&id2, "app", T0).await.unwrap().unwrap();
    assert_eq!(m.cache().len(), 2);
    // Revoked straight in the store (as SCIM or SLO would), not through the manager.
    assert_eq!(
        spy.inner
            .delete_user_sessions("app", "alice@example.com")
            .await
            .unwrap(),
        2
    );
    for _ in 0..100 {
        if m.cache().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(m.load(&id1, "app", T0 + 1).await.unwrap().is_none());
    assert!(m.load(&id2, "app", T0 + 1).await.unwrap().is_none());
}

#[tokio::test]
async fn a_broken_feed_bypasses_the_cache() {
    let (spy, m) = manager(1800, 8 * 3600);
    let (id, _) = m.create("app", alice(), T0, None).await.unwrap();
    m.feed_live.store(true, Ordering::Release);
    m.load(&id, "app", T0).await.unwrap().unwrap();
    m.load(&id, "app", T0).await.unwrap().unwrap();
    assert_eq!(*spy.gets.lock(), 1);
    m.feed_live.store(false, Ordering::Release);
    m.load(&id, "app", T0).await.unwrap().unwrap();
    m.load(&id, "app", T0).await.unwrap().unwrap();
    assert_eq!(*spy.gets.lock(), 3, "no feed: every load asks the store");
}

/// The store down: a session read within `cache_ttl` keeps working, and only that one:
/// not after `cache_ttl`, not one the store said was gone while the feed was down, not
/// a new sign-in.
#[tokio::test]
async fn a_cached_session_outlives_a_short_store_outage_and_nothing_else_does() {
    let (spy, m) = manager(1800, 8 * 3600);
    let m = m.with_cache(Duration::from_millis(300), 100);
    let (id, _) = m.create("app", alice(), T0, None).await.unwrap();
    let (gone, _) = m.create("app", alice(), T0, None).await.unwrap();
    let (never_cached, _) = m.create("app", alice(), T0, None).await.unwrap();
    m.feed_live.store(true, Ordering::Release);
    m.load(&id, "app", T0).await.unwrap().unwrap();
    m.load(&gone, "app", T0).await.unwrap().unwrap();
    // The feed drops (the store is going away); `gone` is revoked elsewhere and this
    // replica reads that before the store is unreachable.
    m.feed_live.store(false, Ordering::Release);
    spy.inner.delete_session(&gone.store_key()).await.unwrap();
    assert!(m.load(&gone, "app", T0).await.unwrap().is_none());
    spy.mode.store(2, Ordering::SeqCst);
    let before = crate::metrics::METRICS.session_outage_fallbacks.get();
    assert!(m.load(&id, "app", T0 + 1).await.unwrap().is_some());
    assert!(crate::metrics::METRICS.session_outage_fallbacks.get() > before);
    assert!(m.load(&id, "other-app", T0 + 1).await.is_err());
    assert!(m.load(&gone, "app", T0 + 1).await.is_err(), "revoked");
    assert!(m.load(&never_cached, "app", T0 + 1).await.is_err());
    assert!(
        m.create("app", alice(), T0, None).await.is_err(),
        "no sign-in"
    );
    // Idle or absolute timeouts still apply.
    assert!(m.load(&id, "app", T0 + 1800).await.is_err(), "idled out");
    // Past cache_ttl: nothing.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(matches!(
        m.load(&id, "app", T0 + 2).await,
        Err(SessionError::Unavailable(_))
    ));
}
