//! The running configuration, swapped whole on reload (SIGHUP, `ssogate reload`): the
//! config file and every file it names are read and validated again, and only when all
//! of it is good does the new `Gateway` replace the old one, atomically. Requests hold the
//! gateway they started with to their end; the next ones get the new one. Sessions (the
//! store, the in-process cache and its revocation feed) are the same object before and
//! after, so nobody is signed out.
//!
//! The public listener's certificate and key are part of the gateway, so a renewed pair
//! is presented from the next handshake on. What the running process cannot change in
//! place (its listening addresses, TLS on or off, threads, the store it talks to, the log
//! format) is compared, and a change there refuses the reload with the
//! name of each setting: a restart or a binary upgrade applies those.

use super::Gateway;
use crate::config::{self, Config, StoreConfig};
use crate::metrics::METRICS;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub struct Live {
    /// The config file reloads read again; `None`: nothing to reload (the demo).
    path: Option<PathBuf>,
    gateway: ArcSwap<Gateway>,
    config: ArcSwap<Config>,
    /// Bumped after each swap; the proxy rebuilds what it derives from the gateway.
    generation: AtomicU64,
    changed: tokio::sync::watch::Sender<u64>,
    /// Set on SIGTERM: `/readyz` fails from then on while requests are still served.
    draining: AtomicBool,
    /// One reload at a time.
    reloading: parking_lot::Mutex<()>,
}

/// A reload that took effect.
#[derive(Debug)]
pub struct Reloaded {
    pub generation: u64,
    pub apps: usize,
}

impl Live {
    pub fn new(config: Config, gateway: Gateway, path: Option<PathBuf>) -> Arc<Live> {
        METRICS
            .config_last_reload_success
            .set(chrono::Utc::now().timestamp());
        // Both series exist from the start, so `increase()` sees the first reload.
        for result in ["success", "failure"] {
            METRICS.config_reloads.with_label_values(&[result]);
        }
        Arc::new(Live {
            path,
            gateway: ArcSwap::from_pointee(gateway),
            config: ArcSwap::from_pointee(config),
            generation: AtomicU64::new(0),
            changed: tokio::sync::watch::channel(0).0,
            draining: AtomicBool::new(false),
            reloading: parking_lot::Mutex::new(()),
        })
    }

    /// The gateway serving now.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.load_full()
    }

    /// The config serving now.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// How many reloads took effect.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Told the generation after each reload that took effect.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Shutting down: from now on `/readyz` says so.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Read the config file and every file it names again; validate all of it; swap, or
    /// keep the running config and return every problem. Logged and counted either way.
    pub fn reload(&self) -> Result<Reloaded, Vec<String>> {
        let _one = self.reloading.lock();
        let result = self.try_reload();
        match &result {
            Ok(r) => {
                METRICS.config_reloads.with_label_values(&["success"]).inc();
                METRICS
                    .config_last_reload_success
                    .set(chrono::Utc::now().timestamp());
                crate::audit::config_reloaded(r.generation, r.apps);
            }
            Err(problems) => {
                METRICS.config_reloads.with_label_values(&["failure"]).inc();
                crate::audit::config_reload_refused(problems);
            }
        }
        result
    }

    fn try_reload(&self) -> Result<Reloaded, Vec<String>> {
        let Some(path) = &self.path else {
            return Err(vec!["this gateway has no config file to reload".to_string()]);
        };
        let fresh = config::load(path).map_err(|e| e.0)?;
        let running = self.config();
        let old = self.gateway();
        let mut problems = restart_only(&running, &fresh);
        let built = Gateway::build_with_sessions(&fresh, old.clock.clone(), old.sessions.clone());
        let new = match built {
            Ok(gw) => Some(gw),
            Err(e) => {
                problems.extend(e.0);
                None
            }
        };
        let Some(new) = new.filter(|_| problems.is_empty()) else {
            return Err(problems);
        };
        carry_fetched_trust(&old, &new);
        let apps = new.apps().len();
        self.config.store(Arc::new(fresh));
        self.gateway.store(Arc::new(new));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.send_replace(generation);
        Ok(Reloaded { generation, apps })
    }
}

/// An app whose keys come from a metadata URL keeps the keys it fetched (the new one
/// would start without them until its first fetch), unless its config gave it others.
fn carry_fetched_trust(old: &Gateway, new: &Gateway) {
    for app in new.apps() {
        let Some(refresh) = &app.metadata_refresh else {
            continue;
        };
        let before = old.apps().iter().find(|a| {
            a.name == app.name
                && a.metadata_refresh
                    .as_ref()
                    .is_some_and(|r| r.url == refresh.url)
        });
        if let Some(before) = before {
            let trust = before.trust();
            if trust.is_ready() && !app.trust().is_ready() {
                app.share_trust(trust);
            }
        }
    }
}

/// The settings a reload cannot apply in place, each named when it changed.
fn restart_only(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            changed.push(format!(
                "{name}: changed, which a reload cannot apply (restart, or upgrade with `ssogate run --upgrade`); the running config stays"
            ));
        }
    };
    check("listen.public", old.listen_public == new.listen_public);
    check("listen.admin", old.listen_admin == new.listen_admin);
    // A renewed certificate and key (same paths or new ones) apply in place; turning
    // TLS on or off changes what the listening socket speaks.
    check(
        "listen.tls_cert_file / tls_key_file (TLS turned on or off)",
        old.listen_tls.is_some() == new.listen_tls.is_some(),
    );
    check("server.threads", old.threads == new.threads);
    check("server.grace_period", old.grace_period == new.grace_period);
    check(
        "server.upgrade_socket",
        old.upgrade_socket == new.upgrade_socket,
    );
    check("server.log_format", old.log_format == new.log_format);
    check("server.access_log", old.access_log == new.access_log);
    check(
        "session.store and its connection settings",
        same_store(&old.session.store, &new.session.store),
    );
    check(
        "session.idle_timeout",
        old.session.idle_timeout == new.session.idle_timeout,
    );
    check(
        "session.absolute_timeout",
        old.session.absolute_timeout == new.session.absolute_timeout,
    );
    check(
        "session.cache_ttl",
        old.session.cache_ttl == new.session.cache_ttl,
    );
    check(
        "session.cache_max_entries",
        old.session.cache_max_entries == new.session.cache_max_entries,
    );
    changed
}

fn same_store(old: &StoreConfig, new: &StoreConfig) -> bool {
    match (old, new) {
        (StoreConfig::Memory, StoreConfig::Memory) => true,
        (
            StoreConfig::Redis {
                url: u1,
                password: p1,
                username: n1,
                ca_pem: c1,
                client_tls: t1,
                sentinels: s1,
                sentinel_username: su1,
                sentinel_password: sp1,
                cluster: cl1,
                connect_timeout: ct1,
                command_timeout: rt1,
                ..
            },
            StoreConfig::Redis {
                url: u2,
                password: p2,
                username: n2,
                ca_pem: c2,
                client_tls: t2,
                sentinels: s2,
                sentinel_username: su2,
                sentinel_password: sp2,
                cluster: cl2,
                connect_timeout: ct2,
                command_timeout: rt2,
                ..
            },
        ) => {
            u1.expose() == u2.expose()
                && p1.as_ref().map(|p| p.expose()) == p2.as_ref().map(|p| p.expose())
                && n1 == n2
                && c1 == c2
                && t1.as_ref().map(|(c, k)| (c, k.expose()))
                    == t2.as_ref().map(|(c, k)| (c, k.expose()))
                && s1 == s2
                && su1 == su2
                && sp1.as_ref().map(|p| p.expose()) == sp2.as_ref().map(|p| p.expose())
                && cl1 == cl2
                && ct1 == ct2
                && rt1 == rt2
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::time::Duration;

    fn redis(sentinels: &[(&str, u16)], sentinel_password: Option<&str>) -> StoreConfig {
        StoreConfig::Redis {
            url: Secret::new("redis://mymaster/0".into()),
            password: None,
            username: None,
            ca_pem: None,
            client_tls: None,
            sentinels: sentinels.iter().map(|(h, p)| (h.to_string(), *p)).collect(),
            sentinel_username: None,
            sentinel_password: sentinel_password.map(|p| Secret::new(p.to_string())),
            cluster: false,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(1),
            summary: String::new(),
        }
    }

    #[test]
    fn changed_sentinel_settings_need_a_restart() {
        let base = redis(&[("10.0.0.5", 26379)], Some("a"));
        assert!(same_store(&base, &redis(&[("10.0.0.5", 26379)], Some("a"))));
        assert!(!same_store(
            &base,
            &redis(&[("10.0.0.6", 26379)], Some("a"))
        ));
        assert!(!same_store(
            &base,
            &redis(&[("10.0.0.5", 26379)], Some("b"))
        ));
        assert!(!same_store(&base, &redis(&[], Some("a"))));
        assert!(!same_store(&base, &StoreConfig::Memory));
        let mut slower = redis(&[("10.0.0.5", 26379)], Some("a"));
        if let StoreConfig::Redis {
            command_timeout, ..
        } = &mut slower
        {
            *command_timeout = Duration::from_secs(3);
        }
        assert!(!same_store(&base, &slower));
    }
}
