//! Assembly: a validated `Config` becomes the gateway's runtime state (parsed IdP
//! keys, compiled route policies and header mappings, the session store). Everything
//! that can be wrong is reported at once, so `check-config` and `run` agree.

use crate::authz::Policy;
use crate::config::{AppConfig, Config, ConfigError, IdpSource, StoreConfig, UpstreamConfig};
use crate::headers::HeaderMapping;
use crate::saml::{self, Clock, IdpSettings, ResponseValidator, SpSettings};
use crate::session::{CookieSettings, MemoryStore, RedisStore, SessionManager, SessionStore};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Largest SAMLResponse (decoded XML) the ACS accepts.
pub const MAX_SAML_RESPONSE_BYTES: usize = 256 * 1024;

/// One protected app, ready to serve.
pub struct App {
    pub name: String,
    pub upstream: UpstreamConfig,
    pub sp: SpSettings,
    pub acs_path: String,
    pub acs_query: Option<String>,
    pub idp: IdpSettings,
    pub validator: ResponseValidator,
    pub policy: Policy,
    pub headers: HeaderMapping,
    pub allow_idp_initiated: bool,
    pub default_path: String,
    /// "https" when the app's public URL (its ACS URL) is https.
    pub public_scheme: &'static str,
}

pub struct Gateway {
    apps: Vec<Arc<App>>,
    by_host: HashMap<String, usize>,
    wildcard: Option<usize>,
    pub sessions: SessionManager,
    pub cookie: CookieSettings,
    pub clock: Arc<dyn Clock>,
    pub login_timeout: Duration,
}

impl Gateway {
    pub fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<Gateway, ConfigError> {
        let mut errors = Vec::new();
        let mut apps = Vec::new();
        let mut by_host = HashMap::new();
        let mut wildcard = None;
        for app in &config.apps {
            match build_app(app) {
                Ok(a) => {
                    let idx = apps.len();
                    for h in &app.hosts {
                        if h == "*" {
                            wildcard = Some(idx);
                        } else {
                            by_host.insert(h.clone(), idx);
                        }
                    }
                    apps.push(Arc::new(a));
                }
                Err(errs) => errors.extend(
                    errs.into_iter()
                        .map(|e| format!("app \"{}\": {e}", app.name)),
                ),
            }
        }
        let store: Arc<dyn SessionStore> = match &config.session.store {
            StoreConfig::Memory => Arc::new(MemoryStore::new()),
            StoreConfig::Redis { url, password } => {
                match RedisStore::new(url.expose(), password.as_ref().map(|p| p.expose().clone())) {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        errors.push(format!("session.redis_url: {e}"));
                        Arc::new(MemoryStore::new())
                    }
                }
            }
        };
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Gateway {
            apps,
            by_host,
            wildcard,
            sessions: SessionManager::new(
                store,
                config.session.idle_timeout,
                config.session.absolute_timeout,
            )
            .with_cache(config.session.cache_ttl, config.session.cache_max_entries),
            cookie: CookieSettings {
                name: config.session.cookie_name.clone(),
                secure: config.session.cookie_secure,
            },
            clock,
            login_timeout: config.session.login_timeout,
        })
    }

    /// The app serving a Host header value (port ignored, case-insensitive).
    pub fn app_for_host(&self, host: &str) -> Option<&Arc<App>> {
        let host = strip_port(host).to_ascii_lowercase();
        self.by_host
            .get(host.as_str())
            .or(self.wildcard.as_ref())
            .and_then(|i| self.apps.get(*i))
    }

    pub fn apps(&self) -> &[Arc<App>] {
        &self.apps
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn build_app(app: &AppConfig) -> Result<App, Vec<String>> {
    let mut errors = Vec::new();
    let idp = match &app.idp.source {
        IdpSource::Metadata { path, xml } => IdpSettings::from_metadata(xml)
            .map_err(|e| format!("idp.metadata_file {}: {e}", path.display())),
        IdpSource::Manual {
            entity_id,
            sso_url,
            slo_url,
            certificate_path,
            certificate,
        } => saml::load_certificate(certificate)
            .map(|der| IdpSettings {
                entity_id: entity_id.clone(),
                sso_url: sso_url.clone(),
                slo_url: slo_url.clone(),
                signing_certs: vec![der],
            })
            .map_err(|e| format!("idp.certificate_file {}: {e}", certificate_path.display())),
    };
    let idp = idp.map_err(|e| errors.push(e)).ok();
    let name_id_format = saml::name_id_format_urn(&app.sp.name_id_format);
    if name_id_format.is_none() {
        errors.push(format!(
            "sp.name_id_format: \"{}\" is not one of emailAddress, persistent, transient, unspecified (or a full URN)",
            app.sp.name_id_format
        ));
    }
    let policy = Policy::compile(&app.routes, &app.groups)
        .map_err(|e| errors.extend(e))
        .ok();
    let headers = HeaderMapping::compile(&app.headers, &app.strip_header_prefix)
        .map_err(|e| errors.extend(e.into_iter().map(|m| format!("headers: {m}"))))
        .ok();
    let (Some(idp), Some(name_id_format), Some(policy), Some(headers)) =
        (idp, name_id_format, policy, headers)
    else {
        return Err(errors);
    };
    let sp = SpSettings {
        entity_id: app.sp.entity_id.clone(),
        acs_url: app.sp.acs_url.clone(),
        name_id_format: name_id_format.to_string(),
    };
    let validator = ResponseValidator {
        sp: sp.clone(),
        idp_entity_id: idp.entity_id.clone(),
        certs: idp.signing_certs.clone(),
        clock_skew: app.idp.clock_skew,
        allow_sha1: app.idp.allow_sha1,
        max_response_bytes: MAX_SAML_RESPONSE_BYTES,
    };
    Ok(App {
        name: app.name.clone(),
        upstream: app.upstream.clone(),
        public_scheme: if app.sp.acs_url.starts_with("https://") {
            "https"
        } else {
            "http"
        },
        sp,
        acs_path: app.sp.acs_path.clone(),
        acs_query: app.sp.acs_query.clone(),
        idp,
        validator,
        policy,
        headers,
        allow_idp_initiated: app.allow_idp_initiated,
        default_path: app.default_path.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn host_port_is_ignored() {
        assert_eq!(strip_port("wiki.example.com:8443"), "wiki.example.com");
        assert_eq!(strip_port("wiki.example.com"), "wiki.example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
