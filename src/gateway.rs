//! Assembly: a validated `Config` becomes the gateway's runtime state (parsed IdP
//! keys, compiled route policies and header mappings, the session store). Everything
//! that can be wrong is reported at once, so `check-config` and `run` agree.

use crate::authz::Policy;
use crate::config::{AppConfig, Config, ConfigError, IdpSource, StoreConfig, UpstreamConfig};
use crate::headers::HeaderMapping;
use crate::saml::{self, Clock, IdpSettings, ResponseValidator, SigningKey, SpKeys, SpSettings};
use crate::session::{CookieSettings, MemoryStore, RedisStore, SessionManager, SessionStore};
use openssl::pkey::{PKey, Public};
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
    /// Lower-case hosts an IdP-initiated RelayState URL may point to.
    pub redirect_allow_hosts: Vec<String>,
    /// After sign-out: a path or URL; `None`: the signed-out page.
    pub logout_return_path: Option<String>,
    /// Our SLO URL (Entra "Logout URL") and the path+query it arrives on.
    pub slo_url: Option<String>,
    pub slo_path: Option<String>,
    /// The SP key pair, when configured: signs requests, decrypts assertions.
    pub sp_keys: Option<SpKeys>,
    pub sign_authn_requests: bool,
    /// Public keys of the IdP's signing certificates (Redirect-binding signatures).
    pub idp_keys: Vec<PKey<Public>>,
    pub require_signed_logout: bool,
    /// "https" when the app's public URL (its ACS URL) is https.
    pub public_scheme: &'static str,
}

impl App {
    /// This app's SP metadata (what `/saml/metadata` serves).
    pub fn sp_metadata(&self) -> String {
        saml::sp_metadata_xml(
            &self.sp,
            &saml::SpPublish {
                slo_url: self.slo_url.clone(),
                certificate: self.sp_keys.as_ref().map(|k| k.cert_der.clone()),
                authn_requests_signed: self.authn_signer().is_some(),
                want_assertions_signed: self.validator.want_assertions_signed,
            },
        )
    }

    /// The key that signs AuthnRequests, when configured to.
    pub fn authn_signer(&self) -> Option<&SigningKey> {
        self.sp_keys
            .as_ref()
            .filter(|_| self.sign_authn_requests)
            .map(|k| &k.key)
    }

    /// The key that signs logout messages, when there is one.
    pub fn logout_signer(&self) -> Option<&SigningKey> {
        self.sp_keys.as_ref().map(|k| &k.key)
    }
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
    let sp_keys = match &app.sp.keys {
        None => Some(None),
        Some(files) => SpKeys::from_pem(files.key_pem.expose(), &files.cert_pem)
            .map(Some)
            .map_err(|e| {
                errors.push(format!(
                    "sp.signing_key_file {} / sp.certificate_file {}: {e}",
                    files.key_path.display(),
                    files.cert_path.display()
                ))
            })
            .ok(),
    };
    let idp_keys = idp
        .as_ref()
        .map(|i| saml::redirect::public_keys(&i.signing_certs))
        .transpose()
        .map_err(|e| errors.push(format!("idp certificates: {e}")))
        .ok()
        .flatten();
    let (
        Some(idp),
        Some(name_id_format),
        Some(policy),
        Some(headers),
        Some(sp_keys),
        Some(idp_keys),
    ) = (idp, name_id_format, policy, headers, sp_keys, idp_keys)
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
        want_assertions_signed: app.idp.want_assertions_signed,
        want_response_signed: app.idp.want_response_signed,
        decryption_key: sp_keys.as_ref().map(|k| k.key.clone()),
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
        redirect_allow_hosts: app.redirect_allow_hosts.clone(),
        logout_return_path: app.logout_return_path.clone(),
        slo_url: app.sp.slo_url.clone(),
        slo_path: app.sp.slo_path.clone(),
        sp_keys,
        sign_authn_requests: app.sp.sign_authn_requests,
        idp_keys,
        require_signed_logout: app.idp.require_signed_logout,
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
