//! Assembly: a validated `Config` becomes the gateway's runtime state (parsed IdP
//! keys, compiled route policies and header mappings, the session store). Everything
//! that can be wrong is reported at once, so `check-config` and `run` agree.

use super::apps::MetadataRefresh;
use super::target::TargetRules;
use super::{App, Gateway, IdpTrust, MAX_SAML_RESPONSE_BYTES};
use crate::authz::Policy;
use crate::config::{AppConfig, Config, ConfigError, IdpSource, StoreConfig};
use crate::headers::jwt::JwtIssuer;
use crate::headers::HeaderMapping;
use crate::saml::{self, Clock, IdpSettings, ResponseValidator, SigningKey, SpKeys, SpSettings};
use crate::scim::effects::Provisioning;
use crate::scim::ScimService;
use crate::session::{CookieSettings, MemoryStore, RedisStore, SessionManager, SessionStore};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

impl Gateway {
    /// The gateway a config describes, with a new session store and manager.
    pub fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<Gateway, ConfigError> {
        let mut errors = Vec::new();
        let store = store_for(config, &mut errors);
        let sessions = Arc::new(
            SessionManager::new(
                store,
                config.session.idle_timeout,
                config.session.absolute_timeout,
            )
            .with_cache(config.session.cache_ttl, config.session.cache_max_entries),
        );
        Self::build_inner(config, clock, sessions, errors)
    }

    /// The gateway a (re-read) config describes, keeping `sessions` (its store, cache and
    /// revocation feed): what a reload builds, so that every session survives it.
    pub fn build_with_sessions(
        config: &Config,
        clock: Arc<dyn Clock>,
        sessions: Arc<SessionManager>,
    ) -> Result<Gateway, ConfigError> {
        Self::build_inner(config, clock, sessions, Vec::new())
    }

    fn build_inner(
        config: &Config,
        clock: Arc<dyn Clock>,
        sessions: Arc<SessionManager>,
        mut errors: Vec<String>,
    ) -> Result<Gateway, ConfigError> {
        let mut apps = Vec::new();
        let mut by_host = HashMap::new();
        let mut wildcard = None;
        for app in &config.apps {
            match build_app(app) {
                Ok(a) if a.headers.uses_group_names() && !config.scim.authoritative_groups => {
                    errors.push(format!(
                        "app \"{}\": headers: groups_as = \"name\" shows SCIM groups' names; it needs [scim] authoritative_groups = true",
                        app.name
                    ));
                }
                Ok(mut a) => {
                    let idx = apps.len();
                    a.index = idx;
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
        // Certificates past their date refuse the config (certs.rs says which may pass).
        let listener_tls = match &config.listen_tls {
            None => None,
            Some((cert, key)) => match super::listener_tls::ListenerIdentity::load(cert, key) {
                Ok(id) => Some(Arc::new(id)),
                Err(problems) => {
                    errors.extend(problems);
                    None
                }
            },
        };
        let listener_certs = super::listener_tls::leaves(listener_tls.as_deref());
        let (refused, _) = super::certs::judge(
            &super::certs::inventory(&apps, &listener_certs),
            clock.now().timestamp(),
            |name| {
                config
                    .apps
                    .iter()
                    .any(|a| a.name == name && a.idp.allow_expired_certificate)
            },
        );
        errors.extend(refused);
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        let match_users = crate::scim::effects::MatchUsers::parse(&config.scim.match_users)
            .unwrap_or(crate::scim::effects::MatchUsers::Both);
        let provisioning = config.scim.enabled.then(|| {
            Provisioning::new(
                ScimService::new(sessions.store().clone(), config.scim.tokens.clone()),
                config.scim.authoritative_groups,
                config.scim.require_provisioned_user,
                config.session.cache_ttl,
                apps.iter().map(|a| a.name.clone()).collect(),
            )
            .with_match_users(match_users)
        });
        Ok(Gateway {
            provisioning,
            apps,
            by_host,
            wildcard,
            sessions,
            cookie: CookieSettings {
                name: config.session.cookie_name.clone(),
                secure: config.session.cookie_secure,
            },
            clock,
            login_timeout: config.session.login_timeout,
            bind_sign_in: config.session.bind_sign_in,
            max_pending_per_client: config.session.max_pending_per_client,
            max_pending_total: config.session.max_pending_total,
            trusted_proxies: config.trusted_proxies.clone(),
            forward_auth: config.forward_auth,
            listener_tls,
        })
    }
}

/// The session store the config names (an unusable one is an error, with a memory store
/// in its place so the other checks still run).
fn store_for(config: &Config, errors: &mut Vec<String>) -> Arc<dyn SessionStore> {
    match &config.session.store {
        StoreConfig::Memory => Arc::new(MemoryStore::new()),
        StoreConfig::Redis {
            url,
            password,
            username,
            ca_pem,
            client_tls,
            sentinels,
            sentinel_username,
            sentinel_password,
            connect_timeout,
            command_timeout,
            cluster,
            ..
        } => {
            let options = crate::session::RedisOptions {
                username: username.clone(),
                password: password.as_ref().map(|p| p.expose().clone()),
                ca_pem: ca_pem.clone(),
                client_tls: client_tls
                    .as_ref()
                    .map(|(cert, key)| (cert.clone(), key.expose().clone())),
                sentinels: sentinels.clone(),
                sentinel_username: sentinel_username.clone(),
                sentinel_password: sentinel_password.as_ref().map(|p| p.expose().clone()),
                cluster: *cluster,
            };
            match RedisStore::connect_with(url.expose(), options) {
                Ok(s) => Arc::new(crate::session::Timed::new(
                    s.with_timeouts(*connect_timeout, *command_timeout),
                )),
                Err(e) => {
                    errors.push(format!("session.redis_url: {e}"));
                    Arc::new(MemoryStore::new())
                }
            }
        }
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
    let policy = Policy::compile(&app.routes, &app.groups, app.case_insensitive_paths)
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
        allow_expired_idp_certificate: app.idp.allow_expired_certificate,
        upstream_latency: crate::metrics::METRICS
            .upstream_latency
            .with_label_values(&[app.name.as_str()]),
        name: app.name.clone(),
        index: 0,
        upstream: app.upstream.clone(),
        public_scheme: if app.sp.acs_url.starts_with("https://") {
            "https"
        } else {
            "http"
        },
        public_origin: url::Url::parse(&app.sp.acs_url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default(),
        allow_underscore_headers: app.allow_underscore_headers,
        target_rules: TargetRules {
            case_insensitive: app.case_insensitive_paths,
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
