//! The gateway's runtime state: the apps (one SAML SP each) and what they share.

use crate::authz::Policy;
use crate::config::UpstreamConfig;
use crate::headers::jwt::JwtIssuer;
use crate::headers::HeaderMapping;
use crate::saml::{
    self, Clock, IdpSettings, ResponseValidator, SamlError, SigningKey, SpKeys, SpSettings,
};
use crate::scim::effects::Provisioning;
use crate::session::{CookieSettings, SessionManager};
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
    /// This app's place in [`Gateway::apps`]: per-app tables elsewhere (the proxy's
    /// upstream peers) are indexed by it.
    pub index: usize,
    pub upstream: UpstreamConfig,
    pub sp: SpSettings,
    pub acs_path: String,
    pub acs_query: Option<String>,
    /// The IdP as currently trusted; swapped whole on a metadata refresh.
    pub(super) trust: RwLock<Arc<IdpTrust>>,
    /// The response checks that do not depend on the IdP's metadata.
    pub(super) validator_base: ResponseValidator,
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
    /// `scheme://host[:port]` of the app's public URL (its ACS URL): what a same-origin
    /// request's `Origin` header says.
    pub public_origin: String,
    /// How request targets are read (case-insensitive upstreams).
    pub target_rules: crate::gateway::target::TargetRules,
    /// Client headers with `_` in their names reach the upstream.
    pub allow_underscore_headers: bool,
    /// Start although every IdP signing certificate has expired (`[app.idp]`).
    pub allow_expired_idp_certificate: bool,
    /// This app's series of `ssogate_upstream_latency_seconds` (looked up once).
    pub upstream_latency: prometheus::Histogram,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
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

    /// Trust what another `App` (this app before a reload) trusts.
    pub fn share_trust(&self, trust: Arc<IdpTrust>) {
        *self.trust.write() = trust;
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
    pub(super) apps: Vec<Arc<App>>,
    pub(super) by_host: HashMap<String, usize>,
    pub(super) wildcard: Option<usize>,
    /// Shared with the gateways that reloads build: sessions survive a reload.
    pub sessions: Arc<SessionManager>,
    pub cookie: CookieSettings,
    pub clock: Arc<dyn Clock>,
    pub login_timeout: Duration,
    /// Pending sign-ins are bound to their browser by a cookie.
    pub bind_sign_in: bool,
    /// Caps on pending sign-ins: per client address (within `login_timeout`), in total.
    pub max_pending_per_client: u64,
    pub max_pending_total: u64,
    /// SCIM provisioning, when `[scim] enabled`.
    pub provisioning: Option<Provisioning>,
    /// Proxies in front whose forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Forward-auth (`/_ssogate/auth`), when configured.
    pub forward_auth: Option<crate::config::ForwardStyle>,
    /// The public listener's certificate chain and key (presented at each handshake, so
    /// a reload renews it in place), when it serves TLS.
    pub listener_tls: Option<Arc<super::listener_tls::ListenerIdentity>>,
}

impl Gateway {
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

    /// Every certificate trusted or presented right now, with its expiry.
    pub fn certificates(&self) -> Vec<super::certs::Cert> {
        let listener = super::listener_tls::leaves(self.listener_tls.as_deref());
        super::certs::inventory(&self.apps, &listener)
    }

    /// The certificate warnings at `now` (Unix seconds): expiring soon, or expired where
    /// that is allowed.
    pub fn certificate_warnings(&self, now: i64) -> Vec<String> {
        super::certs::judge(&self.certificates(), now, |name| {
            self.allows_expired_idp(name)
        })
        .1
    }

    fn allows_expired_idp(&self, app: &str) -> bool {
        self.apps
            .iter()
            .any(|a| a.name == app && a.allow_expired_idp_certificate)
    }

    /// Is this peer one of the trusted proxies?
    pub fn is_trusted_proxy(&self, peer: Option<std::net::IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted_proxies.iter().any(|n| n.contains(&ip)))
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
