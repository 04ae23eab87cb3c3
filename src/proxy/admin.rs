//! The admin listener (loopback by default): `/metrics`, `/healthz`, `/readyz`.
//! `/healthz` says the process serves; `/readyz` says it can do its job: the session
//! store answers a ping within a second, and every app has usable IdP signing keys.

use crate::gateway::Gateway;
use crate::metrics::{self, METRICS};
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use std::time::Duration;

pub struct AdminApp {
    gw: Arc<Gateway>,
}

impl AdminApp {
    pub fn new(gw: Arc<Gateway>) -> Self {
        AdminApp { gw }
    }

    async fn ready(&self) -> Result<(), String> {
        if self.gw.is_draining() {
            return Err("shutting down (draining)".to_string());
        }
        let ping = self.gw.sessions.store().ping();
        let result = match tokio::time::timeout(Duration::from_secs(1), ping).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("session store: {e}")),
            Err(_) => Err("session store: no answer within 1s".to_string()),
        };
        METRICS.store_up.set(i64::from(result.is_ok()));
        result?;
        let missing: Vec<&str> = self
            .gw
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

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/metrics" => {
                // Refresh the store gauge so a scrape alone tells the truth.
                let _ = self.ready().await;
                for app in self.gw.apps() {
                    METRICS
                        .idp_signing_keys
                        .with_label_values(&[&app.name])
                        .set(i64::try_from(app.trust().keys.len()).unwrap_or(i64::MAX));
                }
                METRICS
                    .session_cache_entries
                    .set(i64::try_from(self.gw.sessions.cache().len()).unwrap_or(i64::MAX));
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
