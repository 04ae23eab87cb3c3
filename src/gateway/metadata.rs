//! Following an IdP metadata URL (Entra "App Federation Metadata Url"): fetch at start
//! and every `refresh_interval`, check (signature when a signer is pinned, same entity
//! ID), then trust exactly the signing keys the new document lists. A failed or invalid
//! fetch keeps the last good metadata and retries sooner (2 s doubling to 60 s). A
//! successful fetch that changed the document rewrites the backing file, which the next
//! start uses while the URL is unreachable.
//!
//! Plain Rust and tokio; the proxy runs [`follow`] as a background service.

use crate::gateway::{App, Gateway};
use crate::metrics::METRICS;
use crate::saml::MAX_METADATA_BYTES;
use std::sync::Arc;
use std::time::Duration;

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What one refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// The trusted settings changed (keys, URLs).
    pub changed: bool,
    pub keys: usize,
}

pub fn client() -> Result<reqwest::Client, String> {
    client_trusting(&[])
}

/// [`client`], also trusting these PEM certificates (tests serve metadata over https).
pub fn client_trusting(extra_roots_pem: &[&[u8]]) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(redirect_policy())
        .user_agent(concat!("ssogate/", env!("CARGO_PKG_VERSION")));
    for pem in extra_roots_pem {
        let cert = reqwest::Certificate::from_pem(pem).map_err(|e| format!("certificate: {e}"))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| format!("HTTP client: {e}"))
}

/// At most 3 redirects, and never from https to anything weaker: the keys that decide
/// every sign-in must not ride on a downgraded connection.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() != "https"
            && attempt.previous().iter().any(|u| u.scheme() == "https");
        if downgrade {
            attempt.error("refusing a redirect from https to a weaker scheme")
        } else if attempt.previous().len() > 3 {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// An error and its causes, `: `-separated (reqwest's own message names only the step).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// GET `url`: a 200 with at most 1 MiB of body.
pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("fetch failed: {}", with_causes(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP status {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
    {
        if body.len() + chunk.len() > MAX_METADATA_BYTES {
            return Err(format!("larger than {MAX_METADATA_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Fetch, check and (when different) trust the metadata of one app.
pub async fn refresh(app: &App, client: &reqwest::Client) -> Result<Refreshed, String> {
    let Some(source) = &app.metadata_refresh else {
        return Err("no metadata_url".into());
    };
    let body = fetch(client, &source.url).await?;
    let trust = app
        .trust_from_metadata(&body, format!("url {}", source.url))
        .map_err(|e| format!("invalid metadata: {e}"))?;
    let current = app.trust();
    let keys = trust.settings.signing_certs.len();
    if current.is_ready() && current.settings == trust.settings {
        return Ok(Refreshed {
            changed: false,
            keys,
        });
    }
    let added = trust
        .settings
        .signing_certs
        .iter()
        .filter(|c| !current.settings.signing_certs.contains(c))
        .count();
    let removed = current
        .settings
        .signing_certs
        .iter()
        .filter(|c| !trust.settings.signing_certs.contains(c))
        .count();
    app.replace_trust(trust);
    crate::audit::idp_metadata_changed(&app.name, keys, added, removed, source.url.as_str());
    if let Some(path) = &source.backing_file {
        if let Err(e) = write_atomically(path, &body) {
            tracing::warn!(app = %app.name, file = %path.display(), error = %e, "could not update the IdP metadata backing file");
        }
    }
    Ok(Refreshed {
        changed: true,
        keys,
    })
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Refresh every app that has a metadata URL, forever: at once, then every interval
/// (sooner after a failure).
pub async fn follow(gw: Arc<Gateway>) {
    // No client (its TLS set-up reads the system's CA store) when nothing is followed.
    if !gw.apps().iter().any(|a| a.metadata_refresh.is_some()) {
        return;
    }
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "IdP metadata refresh disabled");
            return;
        }
    };
    // Dropping the set (a reload, or shutdown) ends every task.
    let mut tasks = tokio::task::JoinSet::new();
    for app in gw.apps().iter().filter(|a| a.metadata_refresh.is_some()) {
        let app = app.clone();
        let client = client.clone();
        tasks.spawn(async move { follow_app(&app, &client).await });
    }
    while tasks.join_next().await.is_some() {}
}

/// [`follow`] the serving gateway's apps; after a reload, the new gateway's (each
/// fetched at once: a reload re-reads everything the config names).
pub async fn follow_live(live: Arc<super::Live>) {
    let mut changed = live.subscribe();
    loop {
        let gw = live.gateway();
        tokio::select! {
            _ = follow(gw) => {
                // Nothing to follow in this config: wait for the next one.
                if changed.changed().await.is_err() {
                    return;
                }
            }
            r = changed.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}

async fn follow_app(app: &App, client: &reqwest::Client) {
    let Some(interval) = app.metadata_refresh.as_ref().map(|r| r.interval) else {
        return;
    };
    let mut retry = FIRST_RETRY;
    loop {
        let wait = match refresh(app, client).await {
            Ok(_) => {
                METRICS
                    .idp_metadata_last_success
                    .with_label_values(&[&app.name])
                    .set(chrono::Utc::now().timestamp());
                retry = FIRST_RETRY;
                interval
            }
            Err(e) => {
                METRICS
                    .idp_metadata_refresh_failures
                    .with_label_values(&[&app.name])
                    .inc();
                tracing::warn!(app = %app.name, error = %e, ready = app.trust().is_ready(), "IdP metadata refresh failed; keeping the last good metadata");
                let wait = retry.min(interval);
                retry = (retry * 2).min(MAX_RETRY);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}
