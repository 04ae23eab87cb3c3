//! Builds the pingora `Server`: the public proxy service and the admin service.

use super::wire::PublicEntry;
use super::{AdminApp, GatewayProxy};
use crate::config::Config;
use crate::gateway::Gateway;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::listening::Service;
use std::sync::Arc;

/// A server ready for `run_forever` (more services may be added first, as the demo does).
pub fn build_server(config: &Config, gw: Arc<Gateway>) -> Server {
    let conf = ServerConf {
        threads: config.threads,
        grace_period_seconds: Some(config.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.grace_period.as_secs().max(1)),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    // HTTP/1 request lines pass through `wire` first (Entra's raw `"` in SCIM queries).
    let mut proxy = Service::new(
        "ssogate public".to_string(),
        PublicEntry::new(pingora::proxy::http_proxy(
            &server.configuration,
            GatewayProxy::new(gw.clone()),
        )),
    );
    match &config.listen_tls {
        None => proxy.add_tcp(&config.listen_public.to_string()),
        Some((cert, key)) => {
            // Checked by the config; a failure here is a file changed since.
            match pingora::listeners::tls::TlsSettings::intermediate(
                &cert.display().to_string(),
                &key.display().to_string(),
            ) {
                Ok(mut tls) => {
                    tls.enable_h2();
                    proxy.add_tls_with_settings(&config.listen_public.to_string(), None, tls);
                }
                Err(e) => {
                    // Start-up only: refuse to run without the public listener.
                    tracing::error!(error = %e, "TLS certificate or key unusable");
                    eprintln!("listen.tls_cert_file / tls_key_file unusable: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    server.add_service(proxy);

    let mut admin = Service::new("ssogate admin".to_string(), AdminApp::new(gw.clone()));
    admin.add_tcp(&config.listen_admin.to_string());
    server.add_service(admin);

    server.add_service(background_service(
        "session revocations",
        RevocationFollower { gw: gw.clone() },
    ));
    if gw.apps().iter().any(|a| a.metadata_refresh.is_some()) {
        server.add_service(background_service(
            "IdP metadata refresh",
            MetadataFollower { gw },
        ));
    }
    server
}

/// Keeps every app's IdP keys in step with its metadata URL.
struct MetadataFollower {
    gw: Arc<Gateway>,
}

#[async_trait::async_trait]
impl BackgroundService for MetadataFollower {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = crate::gateway::metadata::follow(self.gw.clone()) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Keeps every replica's session cache in step with deletions made anywhere.
struct RevocationFollower {
    gw: Arc<Gateway>,
}

#[async_trait::async_trait]
impl BackgroundService for RevocationFollower {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = self.gw.sessions.follow_revocations() => {}
            _ = shutdown.changed() => {}
        }
    }
}
