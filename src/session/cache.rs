//! The in-process session cache: what keeps the store off the hot path.
//!
//! - Entries are the store's records, shared (`Arc`), for at most `ttl` after they were
//!   read; the manager also refuses a cached record once it is due for a touch, so idle
//!   and absolute timeouts are judged on fresh data.
//! - Revocation: every deletion, by any replica, is announced by the store
//!   (`SessionStore::follow_revocations`, Redis pub/sub); the entry is evicted and
//!   tombstoned for `ttl`, so a load that raced with the deletion cannot put it back.
//! - When the revocation feed (re)starts, announcements may have been missed: the whole
//!   cache is dropped and a generation counter makes in-flight loads skip their insert.
//! - Bounded: when full, expired entries are swept; if still full, nothing is inserted
//!   (the store answers instead).

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SessionRecord;

pub struct SessionCache {
    ttl: Duration,
    max_entries: usize,
    inner: RwLock<Inner>,
}

/// Keys are store keys (hex SHA-256 of a cookie): foldhash, seeded per process, is
/// enough for them and costs a fraction of SipHash on every request.
type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Inner {
    entries: Map<(Arc<SessionRecord>, Instant)>,
    tombstones: Map<Instant>,
    generation: u64,
}

impl SessionCache {
    /// `ttl` zero disables the cache.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        SessionCache {
            ttl,
            max_entries,
            inner: RwLock::new(Inner::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0
    }

    pub fn get(&self, key: &str) -> Option<Arc<SessionRecord>> {
        if !self.enabled() {
            return None;
        }
        let inner = self.inner.read();
        let (rec, at) = inner.entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| rec.clone())
    }

    /// The generation to pass to `insert` for a load starting now.
    pub fn generation(&self) -> u64 {
        self.inner.read().generation
    }

    pub fn insert(&self, key: &str, rec: Arc<SessionRecord>, generation: u64) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.inner.write();
        if inner.generation != generation {
            return;
        }
        if let Some(t) = inner.tombstones.get(key) {
            if t.elapsed() < self.ttl {
                return;
            }
            inner.tombstones.remove(key);
        }
        if inner.entries.len() >= self.max_entries && !inner.entries.contains_key(key) {
            let ttl = self.ttl;
            inner.entries.retain(|_, (_, at)| at.elapsed() < ttl);
            inner.tombstones.retain(|_, t| t.elapsed() < ttl);
            if inner.entries.len() >= self.max_entries {
                return;
            }
        }
        inner.entries.insert(key.to_string(), (rec, Instant::now()));
    }

    /// A session was deleted (here or on another replica).
    pub fn evict(&self, key: &str) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.inner.write();
        inner.entries.remove(key);
        if inner.tombstones.len() >= self.max_entries {
            let ttl = self.ttl;
            inner.tombstones.retain(|_, t| t.elapsed() < ttl);
        }
        inner.tombstones.insert(key.to_string(), Instant::now());
    }

    /// Forget everything (revocations may have been missed).
    pub fn clear(&self) {
        let mut inner = self.inner.write();
        inner.entries.clear();
        inner.tombstones.clear();
        inner.generation = inner.generation.wrapping_add(1);
    }

    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn rec() -> Arc<SessionRecord> {
        Arc::new(SessionRecord {
            app: "a".into(),
            identity: Identity::default(),
            created_at: 0,
            last_seen: 0,
            expires_at: 10,
            headers: Default::default(),
        })
    }

    #[test]
    fn evicted_keys_cannot_be_reinserted_by_a_racing_load() {
        let c = SessionCache::new(Duration::from_secs(10), 10);
        let g = c.generation();
        c.insert("k", rec(), g);
        assert!(c.get("k").is_some());
        c.evict("k");
        assert!(c.get("k").is_none());
        c.insert("k", rec(), g);
        assert!(c.get("k").is_none(), "tombstoned");
    }

    #[test]
    fn clear_invalidates_loads_in_flight() {
        let c = SessionCache::new(Duration::from_secs(10), 10);
        let g = c.generation();
        c.clear();
        c.insert("k", rec(), g);
        assert!(c.get("k").is_none());
        c.insert("k", rec(), c.generation());
        assert!(c.get("k").is_some());
    }

    #[test]
    fn entries_expire_and_size_is_bounded() {
        let c = SessionCache::new(Duration::from_millis(30), 2);
        let g = c.generation();
        c.insert("a", rec(), g);
        c.insert("b", rec(), g);
        c.insert("c", rec(), g);
        assert_eq!(c.len(), 2);
        assert!(c.get("c").is_none());
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get("a").is_none(), "expired");
        c.insert("c", rec(), g);
        assert!(
            c.get("c").is_some(),
            "expired entries were swept to make room"
        );
    }

    #[test]
    fn zero_ttl_disables() {
        let c = SessionCache::new(Duration::ZERO, 10);
        c.insert("k", rec(), c.generation());
        assert!(c.get("k").is_none());
    }
}
