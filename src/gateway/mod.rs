//! Assembly: a validated `Config` becomes the gateway's runtime state (parsed IdP
//! keys, compiled route policies and header mappings, the session store). Everything
//! that can be wrong is reported at once, so `check-config` and `run` agree.

pub mod login;
pub mod logout;
pub mod metadata;
pub mod pages;

use crate::authz::Policy;
use crate::config::{AppConfig, Config, ConfigError, IdpSource, StoreConfig, UpstreamConfig};
use crate::headers::jwt::JwtIssuer;
use crate::headers::HeaderMapping;
use crate::saml::{
    self, Clock, IdpSettings, ResponseValidator, SamlError, SigningKey, SpKeys, SpSettings,
};
use crate::scim::effects::Provisioning;
use crate::scim::ScimService;
use crate::session::{CookieSettings, MemoryStore, RedisStore, SessionManager, SessionStore};
use openssl::pkey::{PKey, Public};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Largest SAMLResponse (decoded XML) the ACS accepts.
pub const MAX_SAML_RESPONSE_BYTES: usize = 256 * 1024;

/// What the gateway trusts of an app's IdP: settings, the response validator built from
/// them and the parsed public keys. Replaced as a whole on a metadata refresh, so a key
/// that left the metadata stops being trusted at once.
pub struct IdpTrust {
    pub settings: IdpSettings,
    pub validator: ResponseValidator,
    /// Public keys of the signing certificates (Redirect-binding signatures).
    pub keys: Vec<PKey<Public>>,
    /// Where the settings came from (for logs and `saml inspect`).
    pub origin: String,
}

impl IdpTrust {
    /// Usable: at least one signing key.
    pub fn is_ready(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// A metadata URL to follow.
#[derive(Clone, Debug)]
pub struct MetadataRefresh {
    pub url: String,
    pub interval: Duration,
    /// Last good copy, rewritten after each successful fetch that changed it.
    pub backing_file: Option<std::path::PathBuf>,
}

/// One protected app, ready to serve.
pub struct App {
    pub name: String,
    pub upstream: UpstreamConfig,
    pub sp: SpSettings,
    pub acs_path: String,
    pub acs_query: Option<String>,
    /// The IdP as currently trusted; swapped whole on a metadata refresh.
    trust: RwLock<Arc<IdpTrust>>,
    /// The response checks that do not depend on the IdP's metadata.
    validator_base: ResponseValidator,
    /// Pinned certificates (DER) the metadata's own signature must verify against.
    pub metadata_signers: Vec<Vec<u8>>,
    /// Where and how often to refresh the IdP metadata, when from a URL.
    pub metadata_refresh: Option<MetadataRefresh>,
    pub policy: Policy,
    pub headers: HeaderMapping,
    pub allow_idp_initiated: bool,
    pub default_path: String,
    /// Largest form body replayed after a sign-in interrupted a POST (0: off).
    pub post_replay_max_bytes: usize,
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
    pub require_signed_logout: bool,
    /// The identity JWT, when `[app.jwt]` is configured.
    pub jwt: Option<JwtIssuer>,
    /// "https" when the app's public URL (its ACS URL) is https.
    pub public_scheme: &'static str,
    /// This app's series of `ssogate_upstream_latency_seconds` (looked up once).
    pub upstream_latency: prometheus::Histogram,
}

impl App {
    /// The IdP as trusted right now.
    pub fn trust(&self) -> Arc<IdpTrust> {
        self.trust.read().clone()
    }

    /// Build trust from IdP settings (keys parsed, validator configured).
    pub fn trust_for(&self, settings: IdpSettings, origin: String) -> Result<IdpTrust, SamlError> {
        let keys = saml::redirect::public_keys(&settings.signing_certs)?;
        let mut validator = self.validator_base.clone();
        validator.idp_entity_id = settings.entity_id.clone();
        validator.set_signing_certs(settings.signing_certs.clone())?;
        Ok(IdpTrust {
            settings,
            validator,
            keys,
            origin,
        })
    }

    /// Parse metadata (checking its signature when a signer is pinned) into trust. The
    /// entity ID may not change once known: a document for another tenant is refused.
    pub fn trust_from_metadata(&self, xml: &[u8], origin: String) -> Result<IdpTrust, SamlError> {
        let settings = if self.metadata_signers.is_empty() {
            IdpSettings::from_metadata(xml)?
        } else {
            IdpSettings::from_signed_metadata(xml, &self.metadata_signers)?
        };
        let current = self.trust();
        if current.is_ready() && current.settings.entity_id != settings.entity_id {
            return Err(SamlError::Metadata(format!(
                "entityID changed from {} to {}; refusing (is the URL for another tenant?)",
                current.settings.entity_id, settings.entity_id
            )));
        }
        self.trust_for(settings, origin)
    }

    /// Start trusting `trust` (and stop trusting whatever was before).
    pub fn replace_trust(&self, trust: IdpTrust) {
        *self.trust.write() = Arc::new(trust);
    }

    /// This app's SP metadata (what `/saml/metadata` serves).
    pub fn sp_metadata(&self) -> String {
        saml::sp_metadata_xml(
            &self.sp,
            &saml::SpPublish {
                slo_url: self.slo_url.clone(),
                certificate: self.sp_keys.as_ref().map(|k| k.cert_der.clone()),
                authn_requests_signed: self.authn_signer().is_some(),
                want_assertions_signed: self.validator_base.want_assertions_signed,
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
    /// SCIM provisioning, when `[scim] enabled`.
    pub provisioning: Option<Provisioning>,
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
        let provisioning = config.scim.enabled.then(|| {
            Provisioning::new(
                ScimService::new(store.clone(), config.scim.tokens.clone()),
                config.scim.authoritative_groups,
                config.scim.require_provisioned_user,
                config.session.cache_ttl,
                apps.iter().map(|a| a.name.clone()).collect(),
            )
        });
        Ok(Gateway {
            provisioning,
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
    let metadata_signers = match &app.idp.metadata_signer {
        None => Some(Vec::new()),
        Some((path, bytes)) => saml::load_certificate(bytes)
            .map(|der| vec![der])
            .map_err(|e| {
                errors.push(format!(
                    "idp.metadata_signing_certificate_file {}: {e}",
                    path.display()
                ))
            })
            .ok(),
    };
    let signers = metadata_signers.clone().unwrap_or_default();
    let from_metadata = |xml: &[u8]| {
        if signers.is_empty() {
            IdpSettings::from_metadata(xml)
        } else {
            IdpSettings::from_signed_metadata(xml, &signers)
        }
    };
    let mut metadata_refresh = None;
    // (settings, origin); `None` settings: start without keys (not ready) and fetch.
    let idp = match &app.idp.source {
        IdpSource::Metadata { path, xml } => from_metadata(xml)
            .map(|s| (Some(s), format!("file {}", path.display())))
            .map_err(|e| format!("idp.metadata_file {}: {e}", path.display())),
        IdpSource::MetadataUrl {
            url,
            refresh_interval,
            backing_file,
            backing_xml,
        } => {
            metadata_refresh = Some(MetadataRefresh {
                url: url.clone(),
                interval: *refresh_interval,
                backing_file: backing_file.clone(),
            });
            match (backing_file, backing_xml) {
                (Some(path), Some(xml)) => match from_metadata(xml) {
                    Ok(s) => Ok((Some(s), format!("backing file {}", path.display()))),
                    Err(e) => {
                        tracing::warn!(app = %app.name, file = %path.display(), error = %e, "IdP metadata backing file unusable; waiting for the metadata URL");
                        Ok((None, String::new()))
                    }
                },
                _ => Ok((None, String::new())),
            }
        }
        IdpSource::Manual {
            entity_id,
            sso_url,
            slo_url,
            certificate_path,
            certificate,
        } => saml::load_certificate(certificate)
            .map(|der| {
                (
                    Some(IdpSettings {
                        entity_id: entity_id.clone(),
                        sso_url: sso_url.clone(),
                        slo_url: slo_url.clone(),
                        signing_certs: vec![der],
                    }),
                    format!("certificate {}", certificate_path.display()),
                )
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
    let headers =
        HeaderMapping::compile_with_groups(&app.headers, &app.strip_header_prefix, &app.groups)
            .map(|h| match &app.jwt {
                Some(j) => h.also_strip(&j.header),
                None => h,
            })
            .map_err(|e| errors.extend(e.into_iter().map(|m| format!("headers: {m}"))))
            .ok();
    let jwt = match &app.jwt {
        None => Some(None),
        Some(j) => {
            let publish: Vec<Vec<u8>> = j.publish.iter().map(|(_, b)| b.clone()).collect();
            JwtIssuer::new(
                &j.header,
                &j.issuer,
                &j.audience,
                j.ttl,
                j.key_pem.expose(),
                &publish,
            )
            .map(Some)
            .map_err(|e| errors.push(format!("jwt.key_file {}: {e}", j.key_path.display())))
            .ok()
        }
    };
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
    let previous_files = app.sp.keys.iter().flat_map(|files| &files.previous);
    let mut previous_keys = Vec::new();
    for (path, pem) in previous_files.clone() {
        match SigningKey::from_pem(pem.expose()) {
            Ok(k) => previous_keys.push(k),
            Err(e) => errors.push(format!("sp.previous_key_files {}: {e}", path.display())),
        }
    }
    let previous_sp_keys = (previous_keys.len() == previous_files.count()).then_some(previous_keys);
    let (
        Some((idp, origin)),
        Some(name_id_format),
        Some(policy),
        Some(headers),
        Some(sp_keys),
        Some(previous_sp_keys),
        Some(metadata_signers),
        Some(jwt),
    ) = (
        idp,
        name_id_format,
        policy,
        headers,
        sp_keys,
        previous_sp_keys,
        metadata_signers,
        jwt,
    )
    else {
        return Err(errors);
    };
    let sp = SpSettings {
        entity_id: app.sp.entity_id.clone(),
        acs_url: app.sp.acs_url.clone(),
        name_id_format: name_id_format.to_string(),
    };
    let mut validator_base = ResponseValidator::new(
        sp.clone(),
        &IdpSettings {
            entity_id: String::new(),
            sso_url: String::new(),
            slo_url: None,
            signing_certs: Vec::new(),
        },
    );
    validator_base.clock_skew = app.idp.clock_skew;
    validator_base.allow_sha1 = app.idp.allow_sha1;
    validator_base.max_response_bytes = MAX_SAML_RESPONSE_BYTES;
    validator_base.want_assertions_signed = app.idp.want_assertions_signed;
    validator_base.want_response_signed = app.idp.want_response_signed;
    validator_base.decryption_key = sp_keys.as_ref().map(|k| k.key.clone());
    validator_base.previous_decryption_keys = previous_sp_keys;
    let built = App {
        upstream_latency: crate::metrics::METRICS
            .upstream_latency
            .with_label_values(&[app.name.as_str()]),
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
        trust: RwLock::new(Arc::new(IdpTrust {
            settings: IdpSettings {
                entity_id: String::new(),
                sso_url: String::new(),
                slo_url: None,
                signing_certs: Vec::new(),
            },
            validator: validator_base.clone(),
            keys: Vec::new(),
            origin: "not loaded yet".into(),
        })),
        validator_base,
        metadata_signers,
        metadata_refresh,
        policy,
        headers,
        allow_idp_initiated: app.allow_idp_initiated,
        default_path: app.default_path.clone(),
        post_replay_max_bytes: app.post_replay_max_bytes,
        redirect_allow_hosts: app.redirect_allow_hosts.clone(),
        logout_return_path: app.logout_return_path.clone(),
        slo_url: app.sp.slo_url.clone(),
        slo_path: app.sp.slo_path.clone(),
        sp_keys,
        sign_authn_requests: app.sp.sign_authn_requests,
        require_signed_logout: app.idp.require_signed_logout,
        jwt,
    };
    if let Some(settings) = idp {
        match built.trust_for(settings, origin) {
            Ok(t) => built.replace_trust(t),
            Err(e) => return Err(vec![format!("idp certificates: {e}")]),
        }
    }
    Ok(built)
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
