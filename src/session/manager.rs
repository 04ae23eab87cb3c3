//! Idle and absolute timeouts on top of a [`SessionStore`].
//!
//! - Absolute: `expires_at = min(now + absolute, SessionNotOnOrAfter)`, fixed at creation.
//! - Idle (sliding): a session unused for `idle` is gone. To spare the store, `last_seen`
//!   is rewritten (and the store TTL reset) at most every touch interval, so the
//!   effective idle timeout lies between `idle - touch_interval` and `idle`.
//! - The store TTL is always `min(idle, expires_at - now)`: the store forgets a session
//!   by itself when either timeout passes.
//! - Hot path: a record read from the store is kept in the in-process `SessionCache` and
//!   served from there while it is not due for a touch, and only while the store's
//!   revocation feed is live (`follow_revocations`, run by the proxy as a background
//!   service). Without a live feed every load asks the store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Revocation, SessionCache, SessionError, SessionId, SessionRecord, SessionStore};
use crate::identity::Identity;

/// Default minimum interval between two store rewrites of one session.
pub const DEFAULT_TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// Default lifetime of a cached session record.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);
/// Default bound of the session cache.
pub const DEFAULT_CACHE_ENTRIES: usize = 100_000;

/// Creates, loads (with timeouts) and destroys sessions.
pub struct SessionManager {
    store: Arc<dyn SessionStore>,
    idle: i64,
    absolute: i64,
    touch_interval: i64,
    cache: SessionCache,
    /// True while the revocation feed is subscribed: only then is the cache used.
    feed_live: AtomicBool,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .field("touch_interval", &self.touch_interval)
            .finish_non_exhaustive()
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl SessionManager {
    /// `idle` and `absolute` are whole seconds (at least 1).
    pub fn new(store: Arc<dyn SessionStore>, idle: Duration, absolute: Duration) -> Self {
        let idle = secs(idle).max(1);
        Self {
            store,
            idle,
            absolute: secs(absolute).max(1),
            touch_interval: effective_touch_interval(secs(DEFAULT_TOUCH_INTERVAL), idle),
            cache: SessionCache::new(DEFAULT_CACHE_TTL, DEFAULT_CACHE_ENTRIES),
            feed_live: AtomicBool::new(false),
        }
    }

    /// Cache records for `ttl` (zero disables), at most `max_entries` of them.
    pub fn with_cache(mut self, ttl: Duration, max_entries: usize) -> Self {
        self.cache = SessionCache::new(ttl, max_entries);
        self
    }

    pub fn cache(&self) -> &SessionCache {
        &self.cache
    }

    /// Keep the cache in step with deletions made by any replica. Runs forever: when the
    /// feed breaks (store down), the cache is bypassed (its entries serve only as the
    /// outage fallback of `load`), the feed is re-established every second, and what was
    /// cached before it is back is distrusted (a fallback only, until its `cache_ttl`:
    /// on a Cluster the feed can be back while a shard is still down).
    pub async fn follow_revocations(&self) {
        loop {
            let on_event = |ev: Revocation| match ev {
                Revocation::Subscribed => {
                    self.cache.distrust();
                    self.feed_live.store(true, Ordering::Release);
                    crate::metrics::METRICS.revocation_feed_up.set(1);
                }
                Revocation::Session(key) => self.cache.evict(&key),
            };
            let result = self.store.follow_revocations(&on_event).await;
            let was_live = self.feed_live.swap(false, Ordering::AcqRel);
            // The entries stay (not trusted: `load` asks the store) as the fallback for
            // a store outage; the cache is dropped when the feed is back.
            crate::metrics::METRICS.revocation_feed_up.set(0);
            if let Err(e) = result {
                if was_live {
                    tracing::warn!(error = %e, "session revocation feed down: the session cache is bypassed until it is back");
                } else {
                    tracing::debug!(error = %e, "session revocation feed still down");
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Rewrite `last_seen` at most every `interval` (default 60 s). Capped at half the
    /// idle timeout, so an active session never idles out between two rewrites.
    pub fn with_touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = effective_touch_interval(secs(interval), self.idle);
        self
    }

    /// Is the revocation feed live (and so the cache trusted)?
    pub fn feed_live(&self) -> bool {
        self.feed_live.load(Ordering::Acquire)
    }

    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle.unsigned_abs())
    }

    pub fn absolute_timeout(&self) -> Duration {
        Duration::from_secs(self.absolute.unsigned_abs())
    }

    pub fn touch_interval(&self) -> Duration {
        Duration::from_secs(self.touch_interval.unsigned_abs())
    }

    /// Store TTL for a record at `now`: `min(idle, expires_at - now)`, at least 1 s.
    fn ttl(&self, rec: &SessionRecord, now: i64) -> Duration {
        let left = rec.expires_at.saturating_sub(now).min(self.idle).max(1);
        Duration::from_secs(left.unsigned_abs())
    }

    /// Create and store a session. `cap` is the assertion's `SessionNotOnOrAfter` (unix
    /// seconds), which can only shorten the absolute lifetime.
    /// `Err(Expired)` when the session would already be over.
    pub async fn create(
        &self,
        app: &str,
        identity: Identity,
        now: i64,
        cap: Option<i64>,
    ) -> Result<(SessionId, SessionRecord), SessionError> {
        let absolute_end = now.saturating_add(self.absolute);
        let expires_at = cap.map_or(absolute_end, |c| c.min(absolute_end));
        if expires_at <= now {
            return Err(SessionError::Expired);
        }
        let rec = SessionRecord {
            app: app.to_owned(),
            identity,
            created_at: now,
            last_seen: now,
            expires_at,
            headers: Default::default(),
        };
        let id = SessionId::generate();
        self.store
            .put_session(&id.store_key(), &rec, self.ttl(&rec, now))
            .await?;
        Ok((id, rec))
    }

    /// The live session for `app`. `None` when missing, expired (idle or absolute; then
    /// deleted), corrupt (then deleted), or created for another app.
    /// Only `Unavailable` is an error.
    pub async fn load(
        &self,
        id: &SessionId,
        app: &str,
        now: i64,
    ) -> Result<Option<Arc<SessionRecord>>, SessionError> {
        let use_cache = self.feed_live.load(Ordering::Acquire);
        if use_cache {
            if let Some(rec) = self.cache.get(id) {
                if rec.app != app {
                    return Ok(None);
                }
                let idle_for = now.saturating_sub(rec.last_seen).max(0);
                if now < rec.expires_at && idle_for < self.touch_interval {
                    return Ok(Some(rec));
                }
                // Due for a touch or over: ask the store, which has the last word.
            }
        }
        let key = id.store_key();
        let generation = self.cache.generation();
        let mut rec = match self.store.get_session(&key).await {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                self.cache.evict(&key);
                return Ok(None);
            }
            Err(SessionError::Corrupt) => {
                tracing::warn!("corrupt session record: deleting it");
                self.cache.evict(&key);
                self.delete_quietly(&key).await;
                return Ok(None);
            }
            Err(e @ SessionError::Unavailable(_)) => {
                return match self.outage_fallback(id, app, now) {
                    Some(rec) => Ok(Some(rec)),
                    None => Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        if rec.app != app {
            return Ok(None);
        }
        // Clock skew between replicas can put last_seen in the future: count it as now.
        let idle_for = now.saturating_sub(rec.last_seen).max(0);
        if now >= rec.expires_at || idle_for >= self.idle {
            self.cache.evict(&key);
            self.delete_quietly(&key).await;
            return Ok(None);
        }
        if idle_for >= self.touch_interval {
            rec.last_seen = now;
            let ttl = self.ttl(&rec, now);
            // The session is valid either way; a failed touch only means it may idle out
            // earlier, which is no reason to fail this request.
            if let Err(e) = self.store.touch_session(&key, &rec, ttl).await {
                tracing::warn!(error = %e, "could not refresh session");
            }
        }
        let rec = Arc::new(rec);
        if use_cache {
            self.cache.insert(id, &key, rec.clone(), generation);
        }
        Ok(Some(rec))
    }

    /// The store cannot answer: a session read from it within the last `cache_ttl`, and
    /// still within its timeouts, keeps working (the record is as the store last had it;
    /// one revoked meanwhile through another replica cut off from this one's view is
    /// honoured here once the entry is older than `cache_ttl`). Nothing else is served.
    fn outage_fallback(&self, id: &SessionId, app: &str, now: i64) -> Option<Arc<SessionRecord>> {
        let rec = self.cache.get_stale(id)?;
        let idle_for = now.saturating_sub(rec.last_seen).max(0);
        if rec.app != app || now >= rec.expires_at || idle_for >= self.idle {
            return None;
        }
        crate::metrics::METRICS.session_outage_fallbacks.inc();
        tracing::debug!("session store unavailable: serving the session as cached");
        Some(rec)
    }

    /// Delete a session (logout).
    pub async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
        let key = id.store_key();
        self.cache.evict(&key);
        self.store.delete_session(&key).await
    }

    /// End the sessions of one user of one app (IdP-initiated Single Logout): those whose
    /// SessionIndex is one of `session_indexes`, or all of them when it is empty. Other
    /// replicas drop them through the revocation feed. Returns how many ended.
    pub async fn end_user_sessions(
        &self,
        app: &str,
        name_id: &str,
        session_indexes: &[String],
    ) -> Result<usize, SessionError> {
        if session_indexes.is_empty() {
            let keys = self.store.user_sessions(app, name_id).await?;
            for k in &keys {
                self.cache.evict(k);
            }
            return self.store.delete_user_sessions(app, name_id).await;
        }
        let mut ended = 0;
        for key in self.store.user_sessions(app, name_id).await? {
            let matches = match self.store.get_session(&key).await {
                Ok(Some(rec)) => rec
                    .identity
                    .session_index
                    .as_ref()
                    .is_some_and(|si| session_indexes.contains(si)),
                Ok(None) => false,
                // Unreadable: it cannot be used either; remove it.
                Err(SessionError::Corrupt) => true,
                Err(e) => return Err(e),
            };
            if matches {
                self.cache.evict(&key);
                self.store.delete_session(&key).await?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    async fn delete_quietly(&self, key: &str) {
        if let Err(e) = self.store.delete_session(key).await {
            tracing::debug!(error = %e, "could not delete dead session");
        }
    }
}

fn effective_touch_interval(interval: i64, idle: i64) -> i64 {
    interval.min(idle / 2).max(0)
}

#[cfg(test)]
mod tests;
