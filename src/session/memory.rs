//! In-process session store: one gateway instance only (nothing is shared between
//! replicas). Bounded: each map holds at most `max_entries`; expired entries are swept
//! on every write, and when a map is still full the entry closest to expiry is evicted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::store::{
    clamp_ttl, session_user_names, user_index_key, DocIndex, DocUpdate, DocWrite, MemberChange,
};
use super::{PendingLogin, Revocation, SessionError, SessionRecord, SessionStore};

/// Default bound per map (sessions, pending logins, seen assertions).
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// In-memory [`SessionStore`] behind a `parking_lot::Mutex` (never held across an await).
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Deleted session keys, for `follow_revocations`.
    revoked: tokio::sync::broadcast::Sender<String>,
}

struct Inner {
    sessions: TtlMap<SessionRecord>,
    /// user index key -> session keys; kept exactly in step with `sessions`.
    users: HashMap<String, HashSet<String>>,
    pending: TtlMap<PendingLogin>,
    seen: TtlMap<()>,
    counts: TtlMap<u64>,
    /// collection name -> its documents and indexes
    collections: HashMap<String, Collection>,
}

/// One document collection: documents in creation order and their index entries.
#[derive(Default)]
struct Collection {
    /// id -> (creation sequence, document)
    docs: HashMap<String, (u64, Vec<u8>)>,
    /// creation sequence -> id
    order: BTreeMap<u64, String>,
    next: u64,
    /// (index, key) -> id
    unique: HashMap<(String, String), String>,
    /// (index, key) -> ids
    multi: HashMap<(String, String), BTreeSet<String>>,
    /// id -> summary
    summaries: HashMap<String, String>,
    /// id -> its members (member id -> other attributes)
    members: HashMap<String, HashMap<String, String>>,
}

impl Collection {
    fn unclaim(&mut self, id: &str, index: &DocIndex) {
        for e in &index.unique {
            if self.unique.get(e).is_some_and(|owner| owner == id) {
                self.unique.remove(e);
            }
        }
        for e in &index.multi {
            if let Some(ids) = self.multi.get_mut(e) {
                ids.remove(id);
                if ids.is_empty() {
                    self.multi.remove(e);
                }
            }
        }
    }

    fn claim(&mut self, id: &str, index: &DocIndex) {
        match &index.summary {
            Some(summary) => {
                self.summaries.insert(id.to_string(), summary.clone());
            }
            None => {
                self.summaries.remove(id);
            }
        }
        for e in &index.unique {
            self.unique.insert(e.clone(), id.to_string());
        }
        for e in &index.multi {
            self.multi
                .entry(e.clone())
                .or_default()
                .insert(id.to_string());
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::with_max_entries(DEFAULT_MAX_ENTRIES)
    }

    /// A store holding at most `max_entries` (at least 1) per map.
    pub fn with_max_entries(max_entries: usize) -> Self {
        let cap = max_entries.max(1);
        Self {
            inner: Mutex::new(Inner {
                sessions: TtlMap::new(cap),
                users: HashMap::new(),
                pending: TtlMap::new(cap),
                seen: TtlMap::new(cap),
                counts: TtlMap::new(cap),
                collections: HashMap::new(),
            }),
            revoked: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// Number of live sessions (for tests and metrics).
    pub fn session_count(&self) -> usize {
        let mut inner = self.inner.lock();
        inner.sweep_sessions(Instant::now());
        inner.sessions.map.len()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

// === impl Inner ===

impl Inner {
    fn unindex(&mut self, key: &str, rec: &SessionRecord) {
        for name in session_user_names(&rec.identity) {
            let ukey = user_index_key(&rec.app, &name);
            if let Some(set) = self.users.get_mut(&ukey) {
                set.remove(key);
                if set.is_empty() {
                    self.users.remove(&ukey);
                }
            }
        }
    }

    fn unindex_all(&mut self, removed: Vec<(String, SessionRecord)>) {
        for (k, rec) in removed {
            self.unindex(&k, &rec);
        }
    }

    fn sweep_sessions(&mut self, now: Instant) {
        let removed = self.sessions.sweep(now);
        self.unindex_all(removed);
    }

    fn put_session(&mut self, key: &str, rec: &SessionRecord, expires: Instant, now: Instant) {
        let removed = self.sessions.insert(key, rec.clone(), expires, now);
        self.unindex_all(removed);
        for name in session_user_names(&rec.identity) {
            self.users
                .entry(user_index_key(&rec.app, &name))
                .or_default()
                .insert(key.to_owned());
        }
    }

    fn remove_session(&mut self, key: &str, now: Instant) -> bool {
        match self.sessions.remove(key) {
            Some((rec, exp)) => {
                self.unindex(key, &rec);
                exp > now
            }
            None => false,
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn put_session(
        &self,
        key: &str,
        rec: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let now = Instant::now();
        self.inner
            .lock()
            .put_session(key, rec, now + clamp_ttl(ttl), now);
        Ok(())
    }

    async fn get_session(&self, key: &str) -> Result<Option<SessionRecord>, SessionError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if let Some(rec) = inner.sessions.get(key, now) {
            return Ok(Some(rec.clone()));
        }
        // Expired (or absent): drop it and its index entry now.
        inner.remove_session(key, now);
        Ok(None)
    }

    async fn touch_session(
        &self,
        key: &str,
        rec: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if inner.sessions.get(key, now).is_some() {
            inner.put_session(key, rec, now + clamp_ttl(ttl), now);
        }
        Ok(())
    }

    async fn delete_session(&self, key: &str) -> Result<(), SessionError> {
        self.inner.lock().remove_session(key, Instant::now());
        // No follower is not an error.
        let _ = self.revoked.send(key.to_owned());
        Ok(())
    }

    async fn user_sessions(&self, app: &str, name_id: &str) -> Result<Vec<String>, SessionError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.sweep_sessions(now);
        let keys = inner
            .users
            .get(&user_index_key(app, name_id))
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        Ok(keys)
    }

    async fn delete_user_sessions(&self, app: &str, name_id: &str) -> Result<usize, SessionError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let keys = inner
            .users
            .remove(&user_index_key(app, name_id))
            .unwrap_or_default();
        let mut live = 0;
        for k in keys {
            if let Some((_, exp)) = inner.sessions.remove(&k) {
                if exp > now {
                    live += 1;
                }
            }
            let _ = self.revoked.send(k);
        }
        Ok(live)
    }

    async fn put_pending(
        &self,
        request_id: &str,
        p: &PendingLogin,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let now = Instant::now();
        self.inner
            .lock()
            .pending
            .insert(request_id, p.clone(), now + clamp_ttl(ttl), now);
        Ok(())
    }

    async fn take_pending(&self, request_id: &str) -> Result<Option<PendingLogin>, SessionError> {
        let now = Instant::now();
        let taken = self.inner.lock().pending.remove(request_id);
        Ok(taken.and_then(|(p, exp)| (exp > now).then_some(p)))
    }

    async fn count_event(&self, key: &str, window: Duration) -> Result<u64, SessionError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let (n, expires) = match inner.counts.get_with_expiry(key, now) {
            Some((n, exp)) => (n.saturating_add(1), exp),
            None => (1, now + clamp_ttl(window)),
        };
        inner.counts.insert(key, n, expires, now);
        Ok(n)
    }

    async fn remember_assertion(
        &self,
        assertion_id: &str,
        ttl: Duration,
    ) -> Result<bool, SessionError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if inner.seen.get(assertion_id, now).is_some() {
            return Ok(false);
        }
        inner
            .seen
            .insert(assertion_id, (), now + clamp_ttl(ttl), now);
        Ok(true)
    }

    async fn doc_update(
        &self,
        collection: &str,
        id: &str,
        doc: &[u8],
        index: &DocIndex,
        previous: &DocIndex,
        expected: Option<&[u8]>,
        change: &MemberChange,
    ) -> Result<DocUpdate, SessionError> {
        let refused = |write| DocUpdate {
            write,
            added: 0,
            removed: 0,
        };
        let mut inner = self.inner.lock();
        let c = inner.collections.entry(collection.to_string()).or_default();
        if let Some(exp) = expected {
            if c.docs.get(id).map(|(_, d)| d.as_slice()) != Some(exp) {
                return Ok(refused(DocWrite::Stale));
            }
        }
        if index
            .unique
            .iter()
            .any(|e| c.unique.get(e).is_some_and(|owner| owner != id))
        {
            return Ok(refused(DocWrite::Conflict));
        }
        c.unclaim(id, previous);
        c.claim(id, index);
        // As in Redis: the removed members' index entries go, then the added ones come.
        let entry = |m: &str| (change.index.clone(), m.to_string());
        c.unclaim(
            id,
            &DocIndex {
                multi: change.remove.iter().map(|m| entry(m)).collect(),
                ..DocIndex::default()
            },
        );
        for (m, _) in &change.add {
            c.multi.entry(entry(m)).or_default().insert(id.to_string());
        }
        let members = c.members.entry(id.to_string()).or_default();
        let removed = change
            .remove
            .iter()
            .filter(|m| members.remove(*m).is_some())
            .count();
        let added = change
            .add
            .iter()
            .filter(|(m, attrs)| members.insert(m.clone(), attrs.clone()).is_none())
            .count();
        if members.is_empty() {
            c.members.remove(id);
        }
        let seq = match c.docs.get(id) {
            Some((seq, _)) => *seq,
            None => {
                c.next += 1;
                c.order.insert(c.next, id.to_string());
                c.next
            }
        };
        c.docs.insert(id.to_string(), (seq, doc.to_vec()));
        Ok(DocUpdate {
            write: DocWrite::Written,
            added,
            removed,
        })
    }

    async fn doc_member_counts(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<usize>, SessionError> {
        let inner = self.inner.lock();
        let c = inner.collections.get(collection);
        Ok(ids
            .iter()
            .map(|id| c.and_then(|c| c.members.get(id)).map_or(0, HashMap::len))
            .collect())
    }

    async fn doc_members(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, SessionError> {
        let inner = self.inner.lock();
        Ok(inner
            .collections
            .get(collection)
            .and_then(|c| c.members.get(id))
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn doc_get(&self, collection: &str, id: &str) -> Result<Option<Vec<u8>>, SessionError> {
        let inner = self.inner.lock();
        Ok(inner
            .collections
            .get(collection)
            .and_then(|c| c.docs.get(id))
            .map(|(_, d)| d.clone()))
    }

    async fn doc_get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, SessionError> {
        let inner = self.inner.lock();
        let c = inner.collections.get(collection);
        Ok(ids
            .iter()
            .map(|id| c.and_then(|c| c.docs.get(id)).map(|(_, d)| d.clone()))
            .collect())
    }

    async fn doc_delete(
        &self,
        collection: &str,
        id: &str,
        index: &DocIndex,
    ) -> Result<bool, SessionError> {
        let mut inner = self.inner.lock();
        let Some(c) = inner.collections.get_mut(collection) else {
            return Ok(false);
        };
        c.unclaim(id, index);
        c.summaries.remove(id);
        c.members.remove(id);
        match c.docs.remove(id) {
            Some((seq, _)) => {
                c.order.remove(&seq);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn doc_find(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Option<String>, SessionError> {
        let inner = self.inner.lock();
        Ok(inner
            .collections
            .get(collection)
            .and_then(|c| c.unique.get(&(index.to_string(), key.to_string())))
            .cloned())
    }

    async fn doc_find_all(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<String>, SessionError> {
        let inner = self.inner.lock();
        Ok(inner
            .collections
            .get(collection)
            .and_then(|c| c.multi.get(&(index.to_string(), key.to_string())))
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn doc_summaries(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, SessionError> {
        let inner = self.inner.lock();
        let c = inner.collections.get(collection);
        Ok(ids
            .iter()
            .map(|id| c.and_then(|c| c.summaries.get(id)).cloned())
            .collect())
    }

    async fn doc_count(&self, collection: &str) -> Result<usize, SessionError> {
        let inner = self.inner.lock();
        Ok(inner
            .collections
            .get(collection)
            .map_or(0, |c| c.docs.len()))
    }

    async fn doc_page(
        &self,
        collection: &str,
        start: usize,
        count: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, SessionError> {
        let inner = self.inner.lock();
        let Some(c) = inner.collections.get(collection) else {
            return Ok(Vec::new());
        };
        Ok(c.order
            .values()
            .skip(start)
            .take(count)
            .filter_map(|id| c.docs.get(id).map(|(_, d)| (id.clone(), d.clone())))
            .collect())
    }

    async fn doc_reindex(
        &self,
        collection: &str,
        entries: &[(String, DocIndex)],
    ) -> Result<usize, SessionError> {
        let mut inner = self.inner.lock();
        let c = inner.collections.entry(collection.to_string()).or_default();
        c.unique.clear();
        c.multi.clear();
        c.summaries.clear();
        let mut n = 0;
        for (id, index) in entries {
            c.claim(id, index);
            n += index.unique.len() + index.multi.len();
        }
        Ok(n)
    }

    async fn ping(&self) -> Result<(), SessionError> {
        Ok(())
    }

    async fn follow_revocations(
        &self,
        on_event: &(dyn Fn(Revocation) + Send + Sync),
    ) -> Result<(), SessionError> {
        let mut rx = self.revoked.subscribe();
        on_event(Revocation::Subscribed);
        loop {
            match rx.recv().await {
                Ok(key) => on_event(Revocation::Session(key)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Some were missed: announce a fresh start so caches are dropped.
                    on_event(Revocation::Subscribed);
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err(SessionError::Unavailable("revocation feed closed".into()));
                }
            }
        }
    }
}

// === impl TtlMap ===

/// A map with per-entry expiry, ordered by expiry so sweeping and eviction are
/// O(log n) per entry.
struct TtlMap<V> {
    map: HashMap<String, (V, Instant)>,
    by_expiry: BTreeSet<(Instant, String)>,
    cap: usize,
}

impl<V> TtlMap<V> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            by_expiry: BTreeSet::new(),
            cap,
        }
    }

    fn get(&self, key: &str, now: Instant) -> Option<&V> {
        match self.map.get(key) {
            Some((v, exp)) if *exp > now => Some(v),
            _ => None,
        }
    }

    fn get_with_expiry(&self, key: &str, now: Instant) -> Option<(&V, Instant)>
    where
        V: Copy,
    {
        match self.map.get(key) {
            Some((v, exp)) if *exp > now => Some((v, *exp)),
            _ => None,
        }
    }

    fn remove(&mut self, key: &str) -> Option<(V, Instant)> {
        let (v, exp) = self.map.remove(key)?;
        self.by_expiry.remove(&(exp, key.to_owned()));
        Some((v, exp))
    }

    /// Remove every expired entry; returns them.
    fn sweep(&mut self, now: Instant) -> Vec<(String, V)> {
        let mut out = Vec::new();
        while let Some((exp, _)) = self.by_expiry.first() {
            if *exp > now {
                break;
            }
            if let Some((_, key)) = self.by_expiry.pop_first() {
                if let Some((v, _)) = self.map.remove(&key) {
                    out.push((key, v));
                }
            }
        }
        out
    }

    /// Insert or replace; returns every entry removed on the way (the replaced value,
    /// swept expired entries, evicted entries).
    fn insert(&mut self, key: &str, v: V, expires: Instant, now: Instant) -> Vec<(String, V)> {
        let mut out = self.sweep(now);
        if let Some((old, _)) = self.remove(key) {
            out.push((key.to_owned(), old));
        }
        while self.map.len() >= self.cap {
            match self.by_expiry.pop_first() {
                Some((_, k)) => {
                    if let Some((old, _)) = self.map.remove(&k) {
                        out.push((k, old));
                    }
                }
                None => break,
            }
        }
        self.map.insert(key.to_owned(), (v, expires));
        self.by_expiry.insert((expires, key.to_owned()));
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::identity::Identity;

    #[tokio::test]
    async fn bounded_store_evicts_and_keeps_the_index_in_step() {
        let store = MemoryStore::with_max_entries(2);
        let rec = SessionRecord {
            app: "app".into(),
            identity: Identity {
                name_id: "u".into(),
                ..Default::default()
            },
            created_at: 0,
            last_seen: 0,
            expires_at: 100,
            headers: Default::default(),
        };
        for (k, secs) in [("a", 30), ("b", 10), ("c", 20)] {
            store
                .put_session(k, &rec, Duration::from_secs(secs))
                .await
                .unwrap();
        }
        assert_eq!(store.session_count(), 2);
        let mut keys = store.user_sessions("app", "u").await.unwrap();
        keys.sort();
        assert_eq!(keys, ["a", "c"]);
        assert_eq!(store.delete_user_sessions("app", "u").await.unwrap(), 2);
        assert!(store.inner.lock().users.is_empty());
        assert_eq!(store.session_count(), 0);
    }

    #[test]
    fn ttl_map_evicts_soonest_expiring_when_full() {
        let now = Instant::now();
        let mut m = TtlMap::new(2);
        m.insert("a", 1, now + Duration::from_secs(30), now);
        m.insert("b", 2, now + Duration::from_secs(10), now);
        let out = m.insert("c", 3, now + Duration::from_secs(20), now);
        assert_eq!(out, vec![("b".to_string(), 2)]);
        assert_eq!(m.get("a", now), Some(&1));
        assert_eq!(m.get("c", now), Some(&3));
        assert_eq!(m.map.len(), m.by_expiry.len());
    }

    #[test]
    fn ttl_map_sweeps_expired() {
        let now = Instant::now();
        let mut m = TtlMap::new(10);
        m.insert("a", 1, now + Duration::from_secs(1), now);
        m.insert("b", 2, now + Duration::from_secs(5), now);
        let later = now + Duration::from_secs(2);
        assert_eq!(m.get("a", later), None);
        assert_eq!(m.sweep(later), vec![("a".to_string(), 1)]);
        assert_eq!(m.map.len(), 1);
        assert_eq!(m.by_expiry.len(), 1);
        // replacing keeps one entry per key
        m.insert("b", 3, now + Duration::from_secs(9), later);
        assert_eq!(m.map.len(), 1);
        assert_eq!(m.by_expiry.len(), 1);
    }
}
