//! Configuration: `config.toml -> FileConfig (serde) -> validate -> Config`.
//!
//! `Config` is what the rest of the gateway reads: typed, checked, with files already
//! read. Every problem in a file is collected and reported at once; the process refuses
//! to start on any. Precedence is CLI > environment (`SSOGATE_*`) > file.

mod env;
mod file;
mod validate;

pub use env::{
    Env, ProcessEnv, ENV_LISTEN_ADMIN, ENV_LISTEN_PUBLIC, ENV_REDIS_PASSWORD,
    ENV_REDIS_SENTINEL_PASSWORD, ENV_REDIS_URL, ENV_REDIS_USERNAME, ENV_SCIM_TOKEN,
};
pub use file::FileConfig;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything wrong with a configuration, one line per problem.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration ({} problem(s)):\n  - {}", .0.len(), .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// A secret value. `Debug`/`Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// The secret itself; call sites are easy to audit with grep.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_public: SocketAddr,
    /// (certificate chain, key) PEM paths: TLS with h2 on the public listener.
    pub listen_tls: Option<(PathBuf, PathBuf)>,
    pub listen_admin: SocketAddr,
    pub threads: usize,
    pub grace_period: Duration,
    /// SIGTERM: `/readyz` fails and requests are still served this long, then the
    /// listeners close and in-flight requests get `grace_period`.
    pub drain_period: Duration,
    /// Where listening sockets are handed to a new binary on upgrade.
    pub upgrade_socket: PathBuf,
    /// Proxies in front whose forwarding headers (and `X-Request-Id`) are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub log_format: crate::logging::Format,
    /// A line per request (`ssogate::access`).
    pub access_log: bool,
    /// Forward-auth (`/_ssogate/auth`), when configured.
    pub forward_auth: Option<ForwardStyle>,
    pub session: SessionConfig,
    pub scim: ScimConfig,
    pub apps: Vec<AppConfig>,
}

/// Which proxy calls forward-auth, so which header carries the original request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardStyle {
    /// `auth_request`: `X-Original-URI` (`$request_uri`), `X-Original-Method`.
    Nginx,
    /// ForwardAuth: `X-Forwarded-Uri`, `X-Forwarded-Method`.
    Traefik,
    /// `forward_auth`: `X-Forwarded-Uri`, `X-Forwarded-Method`.
    Caddy,
    /// ext_authz with `path_prefix`: the original path follows `/_ssogate/auth`.
    Envoy,
}

impl ForwardStyle {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nginx" => Some(Self::Nginx),
            "traefik" => Some(Self::Traefik),
            "caddy" => Some(Self::Caddy),
            "envoy" => Some(Self::Envoy),
            _ => None,
        }
    }
}

/// SCIM provisioning. Off unless `enabled`.
#[derive(Debug, Clone, Default)]
pub struct ScimConfig {
    pub enabled: bool,
    pub tokens: Vec<Secret<Vec<u8>>>,
    pub authoritative_groups: bool,
    pub require_provisioned_user: bool,
    /// "both", "externalId" or "userName" (checked).
    pub match_users: String,
}

#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value, built once at start-up"
)]
pub enum StoreConfig {
    Memory,
    Redis {
        /// May carry credentials: secret.
        url: Secret<String>,
        password: Option<Secret<String>>,
        /// ACL user, overriding the URL's.
        username: Option<String>,
        /// `rediss://`: CA certificates (PEM) trusted instead of the system's.
        ca_pem: Option<Vec<u8>>,
        /// `rediss://`: client certificate chain and key (PEM) for mutual TLS.
        client_tls: Option<(Vec<u8>, Secret<Vec<u8>>)>,
        /// Redis Sentinel addresses; when not empty the URL's host is the master name.
        sentinels: Vec<(String, u16)>,
        sentinel_username: Option<String>,
        sentinel_password: Option<Secret<String>>,
        /// The URL names a node of a Redis Cluster.
        cluster: bool,
        /// TCP connect and handshake timeout.
        connect_timeout: Duration,
        /// Per-command response timeout.
        command_timeout: Duration,
        /// How the store is reached, for `check-config` (never a secret).
        summary: String,
    },
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub store: StoreConfig,
    pub cookie_name: String,
    pub cookie_secure: bool,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// How long a pending AuthnRequest may wait for its response.
    pub login_timeout: Duration,
    /// Lifetime of a session record in the in-process cache (0 disables the cache).
    pub cache_ttl: Duration,
    pub cache_max_entries: usize,
    /// A cookie binds each pending sign-in to the browser that started it.
    pub bind_sign_in: bool,
    /// Pending sign-ins per client address within login_timeout, and in total.
    pub max_pending_per_client: u64,
    pub max_pending_total: u64,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// DER certificates trusted for an `https://` upstream (instead of the system's).
    pub ca: Vec<Vec<u8>>,
    /// Offer HTTP/2 (ALPN) to an `https://` upstream.
    pub http2: bool,
}

impl UpstreamConfig {
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone)]
pub struct SpConfig {
    pub entity_id: String,
    pub acs_url: String,
    /// Path of the ACS URL (what the gateway intercepts).
    pub acs_path: String,
    /// Query of the ACS URL, when the IdP-facing URL carries one (`…/?acs`).
    pub acs_query: Option<String>,
    /// Full URN of the NameID format.
    pub name_id_format: String,
    /// Entra "Logout URL"; `None`: sign-out is local only.
    pub slo_url: Option<String>,
    /// Path of `slo_url`, what the gateway intercepts (GET with SAMLRequest/SAMLResponse).
    pub slo_path: Option<String>,
    pub keys: Option<SpKeyFiles>,
    pub sign_authn_requests: bool,
}

/// The SP key pair, files already read.
#[derive(Clone)]
pub struct SpKeyFiles {
    pub key_path: PathBuf,
    pub key_pem: Secret<Vec<u8>>,
    pub cert_path: PathBuf,
    pub cert_pem: Vec<u8>,
    /// `previous_key_files`: keys that still decrypt (a token-encryption rollover).
    pub previous: Vec<(PathBuf, Secret<Vec<u8>>)>,
}

impl fmt::Debug for SpKeyFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SpKeyFiles(key: {}, cert: {}, previous: [{}])",
            self.key_path.display(),
            self.cert_path.display(),
            self.previous
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Where the IdP's settings come from, with the files already read.
#[derive(Clone)]
pub enum IdpSource {
    Metadata {
        path: PathBuf,
        xml: Vec<u8>,
    },
    /// Fetched from `url` (and refreshed); `backing_file` keeps the last good copy.
    MetadataUrl {
        url: String,
        refresh_interval: Duration,
        backing_file: Option<PathBuf>,
        /// The backing file's content at start, when it exists.
        backing_xml: Option<Vec<u8>>,
    },
    Manual {
        entity_id: String,
        sso_url: String,
        slo_url: Option<String>,
        certificate_path: PathBuf,
        certificate: Vec<u8>,
    },
}

impl fmt::Debug for IdpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdpSource::Metadata { path, .. } => write!(f, "Metadata({})", path.display()),
            IdpSource::MetadataUrl { url, .. } => write!(f, "MetadataUrl({url})"),
            IdpSource::Manual { entity_id, .. } => write!(f, "Manual({entity_id})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdpConfig {
    pub source: IdpSource,
    pub clock_skew: Duration,
    pub allow_sha1: bool,
    pub want_assertions_signed: bool,
    pub want_response_signed: bool,
    pub require_signed_logout: bool,
    /// Pinned certificate (path, bytes) the metadata signature must verify against.
    pub metadata_signer: Option<(PathBuf, Vec<u8>)>,
    /// Start although every IdP signing certificate has expired.
    pub allow_expired_certificate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteConfig {
    pub path: String,
    pub public: bool,
    /// Aliases (keys of `[app.groups]`) or raw Entra object IDs, as written.
    pub allow_groups: Vec<String>,
    /// Entra app role values (the `roles` claim).
    pub allow_roles: Vec<String>,
    /// NameIDs (case-insensitive).
    pub allow_users: Vec<String>,
    /// Every one of these groups is required (on top of the allow rules).
    pub require_all_groups: Vec<String>,
    /// Allowed HTTP methods (upper-case); empty: any.
    pub methods: Vec<String>,
    pub deny_groups: Vec<String>,
    pub deny_roles: Vec<String>,
    pub deny_users: Vec<String>,
    /// `%2F` may reach this route's upstream.
    pub allow_encoded_slash: bool,
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub name: String,
    /// Lower-case host names without port; `"*"` matches any host.
    pub hosts: Vec<String>,
    pub upstream: UpstreamConfig,
    pub allow_idp_initiated: bool,
    pub default_path: String,
    pub post_replay_max_bytes: usize,
    pub logout_return_path: Option<String>,
    /// Lower-case host names an IdP-initiated RelayState URL may point to.
    pub redirect_allow_hosts: Vec<String>,
    /// Lower-case prefix of client headers removed before anything else.
    pub strip_header_prefix: String,
    /// Case-insensitive path matching, Windows names refused (IIS upstreams).
    pub case_insensitive_paths: bool,
    /// Client headers with `_` in their names are kept (dropped by default).
    pub allow_underscore_headers: bool,
    pub sp: SpConfig,
    pub idp: IdpConfig,
    /// (header name, what it carries) in file order.
    pub headers: Vec<(String, HeaderSpec)>,
    /// alias -> Entra group object ID.
    pub groups: std::collections::BTreeMap<String, String>,
    pub routes: Vec<RouteConfig>,
    pub jwt: Option<JwtConfig>,
}

/// One injected header, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSpec {
    pub source: String,
    pub encoding: Option<String>,
    pub separator: Option<String>,
    pub default: Option<String>,
    pub groups_as: Option<String>,
}

impl From<&str> for HeaderSpec {
    fn from(source: &str) -> Self {
        HeaderSpec {
            source: source.to_string(),
            encoding: None,
            separator: None,
            default: None,
            groups_as: None,
        }
    }
}

/// `[app.jwt]`, key files read.
#[derive(Clone)]
pub struct JwtConfig {
    pub header: String,
    pub key_path: PathBuf,
    pub key_pem: Secret<Vec<u8>>,
    pub publish: Vec<(PathBuf, Vec<u8>)>,
    pub ttl: Duration,
    pub issuer: String,
    pub audience: String,
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JwtConfig(header: {}, key: {})",
            self.header,
            self.key_path.display()
        )
    }
}

/// Read, parse and validate a config file, with the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &ProcessEnv)
}

pub fn load_with_env(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", path.display())]))?;
    let base = path.parent().unwrap_or(Path::new("."));
    from_str(&text, base, env)
}

/// How `ssogate run` logs, read before anything else is (so the first lines already
/// have the configured format): `[server] log_format` and `access_log`. Anything
/// unreadable gives the defaults here; the full validation reports it.
pub fn logging_of(path: &Path) -> (crate::logging::Format, bool) {
    let table = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok());
    let server = table.as_ref().and_then(|t| t.get("server"));
    let format = server
        .and_then(|s| s.get("log_format"))
        .and_then(|v| v.as_str())
        .and_then(crate::logging::Format::parse)
        .unwrap_or(crate::logging::Format::Text);
    let access = server
        .and_then(|s| s.get("access_log"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    (format, access)
}

/// Parse and validate TOML text; relative file paths resolve against `base_dir`
/// (the directory of the config file).
pub fn from_str(text: &str, base_dir: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
    let file: FileConfig =
        toml::from_str(text).map_err(|e| ConfigError(vec![format!("TOML: {e}")]))?;
    validate::validate(file, base_dir, env)
}

#[cfg(test)]
mod tests;
