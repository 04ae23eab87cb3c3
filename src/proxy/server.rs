//! Builds the pingora `Server`: the public proxy service and the admin service, and runs
//! it under ssogate's signals (drain on SIGTERM, listener hand-over on SIGQUIT, reload on
//! SIGHUP).

use super::wire::PublicEntry;
use super::{AdminApp, GatewayProxy};
use crate::config::Config;
use crate::gateway::Live;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::BackgroundService;
use pingora::services::listening::Service;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// A server ready for `run_forever` or [`run`] (more services may be added first, as the
/// demo does). With `upgrade`, the listening sockets are taken over from the running
/// gateway that hands them over on `config.upgrade_socket` (it gets SIGQUIT next).
pub fn build_server(config: &Config, live: Arc<Live>, upgrade: bool) -> Server {
    let conf = ServerConf {
        threads: config.threads,
        grace_period_seconds: Some(config.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.grace_period.as_secs().max(1)),
        upgrade_sock: config.upgrade_socket.display().to_string(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    // HTTP/1 request lines pass through `wire` first (Entra's raw `"` in SCIM queries).
    let mut proxy = Service::new(
        "ssogate public".to_string(),
        PublicEntry::new(pingora::proxy::http_proxy(
            &server.configuration,
            GatewayProxy::new(live.clone()),
        )),
    );
    match &config.listen_tls {
        None => proxy.add_tcp(&config.listen_public.to_string()),
        Some(_) => {
            // The chain and key come from the gateway serving at each handshake (checked
            // when it was built), so a reload renews them in place.
            match pingora::listeners::tls::TlsSettings::with_callbacks(Box::new(
                ListenerCertificate { live: live.clone() },
            )) {
                Ok(mut tls) => {
                    tls.enable_h2();
                    proxy.add_tls_with_settings(&config.listen_public.to_string(), None, tls);
                }
                Err(e) => {
                    // Start-up only: refuse to run without the public listener.
                    tracing::error!(error = %e, "TLS listener could not be set up");
                    eprintln!("listen.tls_cert_file / tls_key_file: TLS set-up failed: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    server.add_service(proxy);

    let mut admin = Service::new("ssogate admin".to_string(), AdminApp::new(live.clone()));
    admin.add_tcp(&config.listen_admin.to_string());
    server.add_service(admin);

    // One service (pingora gives each its own thread): the store check at start, then
    // the certificate expiry watch.
    server.add_service(background_service(
        "store check and certificate expiry watch",
        Watch { live: live.clone() },
    ));
    server.add_service(background_service(
        "session revocations",
        RevocationFollower { live: live.clone() },
    ));
    // Always: a reload may bring an app whose keys come from a metadata URL.
    server.add_service(background_service(
        "IdP metadata refresh",
        MetadataFollower { live },
    ));
    server
}

/// Presents the serving gateway's listener certificate chain and key at each handshake.
/// A gateway without one (it cannot be built so while TLS is on) fails the handshake.
struct ListenerCertificate {
    live: Arc<Live>,
}

#[async_trait::async_trait]
impl pingora::listeners::TlsAccept for ListenerCertificate {
    async fn certificate_callback(&self, ssl: &mut pingora::protocols::tls::TlsRef) {
        use pingora::tls::ext;
        let gateway = self.live.gateway();
        let Some(id) = gateway.listener_tls.as_ref() else {
            tracing::error!("TLS handshake refused: no listener certificate loaded");
            return;
        };
        let set = ext::ssl_use_certificate(ssl, &id.leaf)
            .and_then(|()| ext::ssl_use_private_key(ssl, &id.key))
            .and_then(|()| {
                id.chain
                    .iter()
                    .try_for_each(|c| ext::ssl_add_chain_cert(ssl, c))
            });
        if let Err(e) = set {
            tracing::error!(error = %e, "TLS handshake refused: the listener certificate could not be set");
        }
    }
}

/// At start-up, says whether the session store answers (a wrong CA, name, user or
/// password shows here at once, not at the first sign-in; `/readyz` keeps saying it
/// afterwards). Then keeps `ssogate_certificate_expiry_timestamp_seconds` in step with the
/// certificates in use (IdP keys change on a metadata refresh) every minute, and logs
/// those near or past their date at start and then daily.
struct Watch {
    live: Arc<Live>,
}

#[async_trait::async_trait]
impl BackgroundService for Watch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use crate::gateway::certs;
        let store = self.live.gateway().sessions.store().clone();
        let ping = store.ping();
        match tokio::time::timeout(Duration::from_secs(5), ping).await {
            Ok(Ok(())) => {
                tracing::info!("session store answers");
                migrate_directory(store.as_ref()).await;
            }
            Ok(Err(e)) => tracing::error!(error = %e, "session store unreachable at start-up (sign-ins fail and /readyz says so until it answers)"),
            Err(_) => tracing::error!("session store: no answer within 5s at start-up (sign-ins fail and /readyz says so until it answers)"),
        }
        let mut last_logged: Option<std::time::Instant> = None;
        loop {
            let gw = self.live.gateway();
            let list = gw.certificates();
            certs::publish(&list);
            if last_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(86_400)) {
                certs::log_standing(&list, gw.clock.now().timestamp());
                last_logged = Some(std::time::Instant::now());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// A directory left by a version before the indexes moves to the current layout.
async fn migrate_directory(store: &dyn crate::session::SessionStore) {
    match crate::scim::migrate::migrate_legacy(store).await {
        Ok(done) => {
            for m in done.iter().filter(|m| m.any()) {
                tracing::warn!(
                    collection = m.collection,
                    moved = m.moved,
                    kept = m.kept,
                    unreadable = m.unreadable,
                    "directory documents of an earlier version moved to the indexed layout"
                );
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "directory documents of an earlier version could not be moved (run `ssogate directory migrate`)")
        }
    }
}

/// Keeps every app's IdP keys in step with its metadata URL.
struct MetadataFollower {
    live: Arc<Live>,
}

#[async_trait::async_trait]
impl BackgroundService for MetadataFollower {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = crate::gateway::metadata::follow_live(self.live.clone()) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Keeps every replica's session cache in step with deletions made anywhere.
struct RevocationFollower {
    live: Arc<Live>,
}

#[async_trait::async_trait]
impl BackgroundService for RevocationFollower {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Sessions are the same object across reloads (no gateway is held here).
        let sessions = self.live.gateway().sessions.clone();
        tokio::select! {
            _ = sessions.follow_revocations() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Run until a signal ends the process (then exit 0):
/// - SIGTERM: `/readyz` fails at once, requests are still served for `drain`, then the
///   listeners close and in-flight requests get the grace period;
/// - SIGQUIT: the listening sockets go to a new binary started with `run --upgrade`
///   (no connection refused), then as SIGTERM without the drain;
/// - SIGINT: at once;
/// - SIGHUP: reload the config (`Live::reload`); on any problem the running config
///   stays and every problem is logged.
pub fn run(server: Server, live: Arc<Live>) -> ! {
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals { live }),
    });
    std::process::exit(0)
}

/// On SIGQUIT, how long answers close their keep-alive connections before the sockets go
/// to the new process (whose connections are the only ones left open to close then).
const HANDOVER_DRAIN: Duration = Duration::from_millis(500);

struct Signals {
    live: Arc<Live>,
}

#[async_trait::async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let kinds = [
            SignalKind::terminate(),
            SignalKind::quit(),
            SignalKind::interrupt(),
            SignalKind::hangup(),
        ];
        let mut streams = Vec::with_capacity(kinds.len());
        for kind in kinds {
            match signal(kind) {
                Ok(s) => streams.push(s),
                Err(e) => {
                    // Without its handlers the process could not stop cleanly: stop now.
                    tracing::error!(error = %e, "cannot install signal handlers");
                    return ShutdownSignal::FastShutdown;
                }
            }
        }
        let [term, quit, int, hup] = &mut streams[..] else {
            return ShutdownSignal::FastShutdown;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {
                    self.live.start_draining();
                    let drain = self.live.config().drain_period;
                    tracing::info!(drain_ms = drain.as_millis() as u64,
                        "SIGTERM: draining (readyz fails, requests still served), then closing the listeners");
                    tokio::select! {
                        _ = tokio::time::sleep(drain) => {}
                        _ = int.recv() => return ShutdownSignal::FastShutdown,
                    }
                    tracing::info!("drain over: closing the listeners; in-flight requests get the grace period");
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = quit.recv() => {
                    // Answers close their connections from now on; after a moment every
                    // busy keep-alive connection has had one, and the clients reconnect
                    // to the listener the new process takes over.
                    self.live.start_draining();
                    tracing::info!(handover_ms = HANDOVER_DRAIN.as_millis() as u64,
                        "SIGQUIT: closing keep-alive connections, then handing the listening sockets to the new process");
                    tokio::select! {
                        _ = tokio::time::sleep(HANDOVER_DRAIN) => {}
                        _ = int.recv() => return ShutdownSignal::FastShutdown,
                    }
                    return ShutdownSignal::GracefulUpgrade;
                }
                _ = int.recv() => return ShutdownSignal::FastShutdown,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    // Logged and counted by `reload`; the files are small and local.
                    let _ = self.live.reload();
                }
            }
        }
    }
}
