//! The in-process session cache: what keeps the store off the hot path.
//!
//! - Entries are the store's records, shared (`Arc`), for at most `ttl` after they were
//!   read; the manager also refuses a cached record once it is due for a touch, so idle
//!   and absolute timeouts are judged on fresh data.
//! - Revocation: every deletion, by any replica, is announced by the store
//!   (`SessionStore::follow_revocations`, Redis pub/sub); the entry is evicted and
//!   tombstoned for `ttl`, so a load that raced with the deletion cannot put it back.
//! - When the revocation feed (re)starts, announcements may have been missed: every entry
//!   is distrusted (an epoch counter: `get` serves only entries cached since), and a
//!   generation counter makes in-flight loads skip their insert. Distrusted entries stay
//!   until their `ttl` only as the store-outage fallback (`get_stale`).
//! - Bounded: when full, expired entries are swept; if still full, nothing is inserted
//!   (the store answers instead).
//! - Keyed by the session ID itself (constant-time equality), so that a hit costs no
//!   hashing of the cookie into its store key; revocations name store keys, which an
//!   index maps back to the entry.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{SessionId, SessionRecord};

pub struct SessionCache {
    ttl: Duration,
    max_entries: usize,
    inner: RwLock<Inner>,
}

/// foldhash, seeded per process: keys are random secrets or hashes of them, and it
/// costs a fraction of SipHash on every request.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Inner {
    entries: Map<SessionId, Entry>,
    /// Store key -> session ID, for revocations.
    by_store_key: Map<String, SessionId>,
    /// Store keys revoked within `ttl`.
    tombstones: Map<String, Instant>,
    generation: u64,
    /// Entries cached in an earlier epoch are not served by `get`.
    epoch: u64,
}

struct Entry {
    record: Arc<SessionRecord>,
    at: Instant,
    epoch: u64,
}

impl Inner {
    fn remove(&mut self, store_key: &str) {
        if let Some(id) = self.by_store_key.remove(store_key) {
            self.entries.remove(&id);
        }
    }
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

    pub fn get(&self, id: &SessionId) -> Option<Arc<SessionRecord>> {
        if !self.enabled() {
            return None;
        }
        let inner = self.inner.read();
        let e = inner.entries.get(id)?;
        (e.epoch == inner.epoch && e.at.elapsed() < self.ttl).then(|| e.record.clone())
    }

    /// Like `get`, distrusted entries included: for when the store cannot answer.
    pub fn get_stale(&self, id: &SessionId) -> Option<Arc<SessionRecord>> {
        if !self.enabled() {
            return None;
        }
        let inner = self.inner.read();
        let e = inner.entries.get(id)?;
        (e.at.elapsed() < self.ttl).then(|| e.record.clone())
    }

    /// The generation to pass to `insert` for a load starting now.
    pub fn generation(&self) -> u64 {
        self.inner.read().generation
    }

    /// Cache `rec` under `id`, whose store key is `store_key`.
    pub fn insert(
        &self,
        id: &SessionId,
        store_key: &str,
        rec: Arc<SessionRecord>,
        generation: u64,
    ) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.inner.write();
        if inner.generation != generation {
            return;
        }
        if let Some(t) = inner.tombstones.get(store_key) {
            if t.elapsed() < self.ttl {
                return;
            }
            inner.tombstones.remove(store_key);
        }
        if inner.entries.len() >= self.max_entries && !inner.entries.contains_key(id) {
            let ttl = self.ttl;
            let Inner {
                entries,
                by_store_key,
                tombstones,
                ..
            } = &mut *inner;
            entries.retain(|_, e| e.at.elapsed() < ttl);
            by_store_key.retain(|_, id| entries.contains_key(id));
            tombstones.retain(|_, t| t.elapsed() < ttl);
            if inner.entries.len() >= self.max_entries {
                return;
            }
        }
        inner.by_store_key.insert(store_key.to_string(), id.clone());
        let epoch = inner.epoch;
        inner.entries.insert(
            id.clone(),
            Entry {
                record: rec,
                at: Instant::now(),
                epoch,
            },
        );
    }

    /// A session was deleted (here or on another replica): by its store key.
    pub fn evict(&self, store_key: &str) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.inner.write();
        inner.remove(store_key);
        if inner.tombstones.len() >= self.max_entries {
            let ttl = self.ttl;
            inner.tombstones.retain(|_, t| t.elapsed() < ttl);
        }
        inner
            .tombstones
            .insert(store_key.to_string(), Instant::now());
    }

    /// Revocations may have been missed: serve nothing cached so far (`get_stale` still
    /// may), and let no load in flight insert.
    pub fn distrust(&self) {
        let mut inner = self.inner.write();
        inner.epoch = inner.epoch.wrapping_add(1);
        inner.generation = inner.generation.wrapping_add(1);
    }

    /// Forget everything.
    pub fn clear(&self) {
        let mut inner = self.inner.write();
        inner.entries.clear();
        inner.by_store_key.clear();
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

    /// A session ID and a store key that stands for its hash.
    fn id(k: &str) -> (SessionId, String) {
        (SessionId::generate(), format!("key-{k}"))
    }

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
        let (k, key) = id("k");
        c.insert(&k, &key, rec(), g);
        assert!(c.get(&k).is_some());
        c.evict(&key);
        assert!(c.get(&k).is_none());
        c.insert(&k, &key, rec(), g);
        assert!(c.get(&k).is_none(), "tombstoned");
        // Equal IDs find the entry; another ID does not.
        let (other, other_key) = id("other");
        c.insert(&other, &other_key, rec(), g);
        let copy = SessionId::parse(other.as_cookie_value()).expect("parses");
        assert!(c.get(&copy).is_some());
        assert!(c.get(&SessionId::generate()).is_none());
    }

    #[test]
    fn clear_invalidates_loads_in_flight() {
        let c = SessionCache::new(Duration::from_secs(10), 10);
        let g = c.generation();
        let (k, key) = id("k");
        c.clear();
        c.insert(&k, &key, rec(), g);
        assert!(c.get(&k).is_none());
        c.insert(&k, &key, rec(), c.generation());
        assert!(c.get(&k).is_some());
    }

    #[test]
    fn entries_expire_and_size_is_bounded() {
        let c = SessionCache::new(Duration::from_millis(30), 2);
        let g = c.generation();
        let [(a, ka), (b, kb), (cc, kc)] = [id("a"), id("b"), id("c")];
        c.insert(&a, &ka, rec(), g);
        c.insert(&b, &kb, rec(), g);
        c.insert(&cc, &kc, rec(), g);
        assert_eq!(c.len(), 2);
        assert!(c.get(&cc).is_none());
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get(&a).is_none(), "expired");
        c.insert(&cc, &kc, rec(), g);
        assert!(
            c.get(&cc).is_some(),
            "expired entries were swept to make room"
        );
        // The sweep took the index entries of what it dropped with it.
        c.evict(&ka);
        c.evict(&kb);
        assert!(c.get(&cc).is_some(), "another session's revocation");
        c.evict(&kc);
        assert!(c.get(&cc).is_none());
    }

    #[test]
    fn distrusted_entries_serve_only_as_the_outage_fallback() {
        let c = SessionCache::new(Duration::from_millis(50), 10);
        let (k, key) = id("k");
        c.insert(&k, &key, rec(), c.generation());
        let g = c.generation();
        c.distrust();
        assert!(c.get(&k).is_none(), "not trusted");
        assert!(c.get_stale(&k).is_some(), "the fallback");
        c.insert(&k, &key, rec(), g);
        assert!(c.get(&k).is_none(), "a load from before did not insert");
        c.insert(&k, &key, rec(), c.generation());
        assert!(c.get(&k).is_some(), "read again: trusted");
        c.evict(&key);
        assert!(
            c.get_stale(&k).is_none(),
            "a revocation removes the fallback"
        );
        let (j, jkey) = id("j");
        c.insert(&j, &jkey, rec(), c.generation());
        c.distrust();
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get_stale(&j).is_none(), "no fallback past ttl");
    }

    #[test]
    fn zero_ttl_disables() {
        let c = SessionCache::new(Duration::ZERO, 10);
        let (k, key) = id("k");
        c.insert(&k, &key, rec(), c.generation());
        assert!(c.get(&k).is_none());
    }
}
