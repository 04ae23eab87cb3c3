//! The admin listener (loopback by default): `/metrics`, `/healthz`, `/readyz`, and
//! `POST /reload` (what `ssogate reload` calls: SIGHUP for systems without signals).
//! `/healthz` says the process serves; `/readyz` says it can do its job: the session
//! store answers a ping within a second, and every app has usable IdP signing keys.

use crate::gateway::Live;
use crate::metrics::{self, METRICS};
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use std::time::Duration;

pub struct AdminApp {
    live: Arc<Live>,
}

impl AdminApp {
    pub fn new(live: Arc<Live>) -> Self {
        AdminApp { live }
    }

    async fn ready(&self) -> Result<(), String> {
        if self.live.is_draining() {
            return Err("shutting down (draining)".to_string());
        }
        let gw = self.live.gateway();
        let ping = gw.sessions.store().ping();
        let result = match tokio::time::timeout(Duration::from_secs(1), ping).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("session store: {e}")),
            Err(_) => Err("session store: no answer within 1s".to_string()),
        };
        METRICS.store_up.set(i64::from(result.is_ok()));
        result?;
        let missing: Vec<&str> = gw
            .apps()
            .iter()
            .filter(|a| !a.trust().is_ready())
            .map(|a| a.name.as_str())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "no usable IdP signing keys yet (metadata not loaded) for app(s): {}",
                missing.join(", ")
            ))
        }
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .unwrap_or_default()
}

/// A reload is asked from the gateway's own host (`ssogate reload`, `kubectl exec`), even
/// when the admin listener is open to the network for probes and scrapes.
fn from_loopback(session: &ServerSession) -> bool {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .is_some_and(|a| a.ip().is_loopback())
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let post = session.req_header().method == http::Method::POST;
        match path.as_str() {
            "/reload" if post && !from_loopback(session) => reply(
                403,
                "text/plain",
                b"reload is taken from this host only (ssogate reload, or SIGHUP)\n".to_vec(),
            ),
            "/reload" if post => {
                let live = self.live.clone();
                // File reads and key parsing: off the admin thread's event loop.
                let result = tokio::task::spawn_blocking(move || live.reload())
                    .await
                    .unwrap_or_else(|e| Err(vec![format!("reload did not finish: {e}")]));
                match result {
                    Ok(r) => reply(
                        200,
                        "text/plain",
                        format!("reloaded: generation {}, {} app(s)\n", r.generation, r.apps)
                            .into_bytes(),
                    ),
                    Err(problems) => {
                        let mut body = format!(
                            "reload refused ({} problem(s)); the running config stays:\n",
                            problems.len()
                        );
                        for p in problems {
                            body.push_str("  - ");
                            body.push_str(&p);
                            body.push('\n');
                        }
                        reply(422, "text/plain", body.into_bytes())
                    }
                }
            }
            "/reload" => reply(405, "text/plain", b"POST /reload\n".to_vec()),
            "/metrics" => {
                // Refresh the store gauge so a scrape alone tells the truth.
                let _ = self.ready().await;
                let gw = self.live.gateway();
                for app in gw.apps() {
                    METRICS
                        .idp_signing_keys
                        .with_label_values(&[&app.name])
                        .set(i64::try_from(app.trust().keys.len()).unwrap_or(i64::MAX));
                }
                METRICS
                    .session_cache_entries
                    .set(i64::try_from(gw.sessions.cache().len()).unwrap_or(i64::MAX));
                reply(200, "text/plain; version=0.0.4", metrics::render())
            }
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => match self.ready().await {
                Ok(()) => reply(200, "text/plain", b"ready\n".to_vec()),
                Err(e) => reply(503, "text/plain", format!("not ready: {e}\n").into_bytes()),
            },
            _ => reply(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}
