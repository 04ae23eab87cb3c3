//! The serde-facing shape of the TOML file. Every table refuses unknown keys, so a
//! typo is a start-up error instead of a silently ignored setting. Nothing here is
//! used after start-up: `validate` turns it into the typed `Config`.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<ListenFile>,
    #[serde(default)]
    pub session: SessionFile,
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub scim: ScimFile,
    pub forward_auth: Option<ForwardAuthFile>,
    #[serde(default, rename = "app")]
    pub apps: Vec<AppFile>,
}

/// `/_ssogate/auth` for a proxy that keeps its own routing (off unless configured).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthFile {
    /// Which proxy calls: "nginx" (X-Original-URI, X-Original-Method), "traefik" and
    /// "caddy" (X-Forwarded-Uri, X-Forwarded-Method), "envoy" (the path after the
    /// endpoint).
    pub style: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    pub public: Option<String>,
    pub admin: Option<String>,
    /// TLS on the public listener (HTTP/2 and HTTP/1.1 by ALPN): PEM certificate chain.
    pub tls_cert_file: Option<String>,
    /// Its PEM private key.
    pub tls_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Worker threads of the proxy service (default: number of CPUs).
    pub threads: Option<usize>,
    /// Seconds to finish in-flight requests on SIGTERM (default 10).
    pub grace_period: Option<String>,
    /// On SIGTERM, how long `/readyz` fails while new requests are still served, before
    /// the listeners close (default 5s): time for a load balancer to stop sending.
    pub drain_period: Option<String>,
    /// Unix socket through which a running gateway hands its listening sockets to a new
    /// binary (`ssogate run --upgrade`, then SIGQUIT to the old process).
    pub upgrade_socket: Option<String>,
    /// Addresses (CIDR or single IPs) of the proxies in front: their X-Forwarded-For is
    /// extended rather than replaced, and only they may call forward-auth.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// "text" (default) or "json": JSON lines with the schema of docs/logging.md.
    pub log_format: Option<String>,
    /// One line per request on the target `ssogate::access` (default false).
    pub access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimFile {
    pub enabled: Option<bool>,
    /// Entra "Secret Token": one token per line (several for rotation).
    pub token_file: Option<String>,
    /// Route groups come from SCIM memberships instead of the token's groups claim.
    pub authoritative_groups: Option<bool>,
    /// Only users SCIM created and left active may sign in.
    pub require_provisioned_user: Option<bool>,
    /// How a sign-in finds its SCIM user: "both" (default: the objectidentifier claim =
    /// externalId, else NameID = userName), "externalId" or "userName".
    pub match_users: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    pub store: Option<String>,
    pub redis_url: Option<String>,
    pub redis_password_file: Option<String>,
    /// Redis 6+ ACL user (`SSOGATE_REDIS_USERNAME` wins).
    pub redis_username: Option<String>,
    /// `rediss://` only: CA certificates (PEM) to trust instead of the system's.
    pub redis_ca_file: Option<String>,
    /// `rediss://` only: client certificate chain (PEM) for mutual TLS.
    pub redis_client_cert_file: Option<String>,
    /// `rediss://` only: the client certificate's private key (PEM, mode 600).
    pub redis_client_key_file: Option<String>,
    /// Redis Sentinel addresses ("host:port", port 26379 when left out); the URL's host
    /// is then the master name they monitor.
    pub redis_sentinels: Option<Vec<String>>,
    /// ACL user for the Sentinels (Redis 6.2+).
    pub redis_sentinel_username: Option<String>,
    /// The Sentinels' own password (`SSOGATE_REDIS_SENTINEL_PASSWORD` wins).
    pub redis_sentinel_password_file: Option<String>,
    /// The URL names a node of a Redis Cluster (default false).
    pub redis_cluster: Option<bool>,
    /// TCP connect and handshake (TLS, AUTH) timeout (default 2s).
    pub redis_connect_timeout: Option<String>,
    /// How long one Redis command may take (default 1s).
    pub redis_command_timeout: Option<String>,
    pub cookie_name: Option<String>,
    pub cookie_secure: Option<bool>,
    pub idle_timeout: Option<String>,
    pub absolute_timeout: Option<String>,
    pub login_timeout: Option<String>,
    pub cache_ttl: Option<String>,
    pub cache_max_entries: Option<usize>,
    /// Bind each sign-in to the browser that started it with a short-lived cookie
    /// (default true).
    pub bind_sign_in_to_browser: Option<bool>,
    /// Sign-ins a client address may start within login_timeout (default 1000: an
    /// office behind one NAT address signs in as one client).
    pub max_pending_per_client: Option<u64>,
    /// Sign-ins pending at once, all clients together (default 100000).
    pub max_pending_total: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppFile {
    pub name: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub upstream: Option<String>,
    /// PEM CA bundle trusted for an https:// upstream (default: the system's CAs).
    pub upstream_ca_file: Option<String>,
    /// Offer HTTP/2 to an https:// upstream (ALPN; HTTP/1.1 stays possible).
    pub upstream_http2: Option<bool>,
    pub allow_idp_initiated: Option<bool>,
    pub default_path: Option<String>,
    /// Largest urlencoded form body kept across a sign-in (default 65536; 0 disables).
    pub post_replay_max_bytes: Option<usize>,
    /// Where the browser lands after sign-out (default: a signed-out page).
    pub logout_return_path: Option<String>,
    #[serde(default)]
    pub redirect_allow_hosts: Vec<String>,
    /// Client headers with this prefix are removed (default "X-Remote-").
    pub strip_header_prefix: Option<String>,
    /// The upstream matches paths regardless of case (IIS): routes do too, and the names
    /// Windows reads differently (`admin.`, `ADMINI~1`) are refused.
    pub case_insensitive_paths: Option<bool>,
    /// Keep client headers whose names contain `_` (dropped by default, as nginx does).
    pub allow_underscore_headers: Option<bool>,
    pub sp: Option<SpFile>,
    pub idp: Option<IdpFile>,
    pub jwt: Option<JwtFile>,
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderFile>,
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpFile {
    pub entity_id: Option<String>,
    pub acs_url: Option<String>,
    /// Entra "Logout URL": where the IdP sends LogoutRequests and LogoutResponses.
    pub slo_url: Option<String>,
    pub name_id_format: Option<String>,
    /// PEM private key of this SP (RSA): signs requests, decrypts assertions.
    pub signing_key_file: Option<String>,
    /// PEM certificate of that key, published in the SP metadata.
    pub certificate_file: Option<String>,
    /// Earlier SP private keys (PEM), still tried to decrypt assertions while Entra's
    /// "Token encryption" certificate changes over; never used to sign or published.
    pub previous_key_files: Option<Vec<String>>,
    /// Sign AuthnRequests (default: true when a key is configured).
    pub sign_authn_requests: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpFile {
    pub metadata_file: Option<String>,
    /// Entra "App Federation Metadata Url": fetched at start and every `refresh_interval`;
    /// `metadata_file` then is the backing copy used while the URL is unreachable.
    pub metadata_url: Option<String>,
    pub refresh_interval: Option<String>,
    /// PEM/Base64 certificate the metadata's own signature must verify against.
    pub metadata_signing_certificate_file: Option<String>,
    pub entity_id: Option<String>,
    pub sso_url: Option<String>,
    pub slo_url: Option<String>,
    pub certificate_file: Option<String>,
    pub clock_skew: Option<String>,
    pub allow_sha1: Option<bool>,
    /// Require a signature on the Assertion (default true, as Entra signs by default).
    pub want_assertions_signed: Option<bool>,
    /// Require a signature on the Response (default false).
    pub want_response_signed: Option<bool>,
    /// Require the Redirect-binding signature on LogoutRequests/Responses (default true).
    pub require_signed_logout: Option<bool>,
    /// Start even when every IdP signing certificate is past its date (Entra keeps
    /// signing with an expired one until the admin rolls it over). Default false.
    pub allow_expired_certificate: Option<bool>,
}

/// `"X-Remote-User" = "name_id"`, or the table form with options.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum HeaderFile {
    Source(String),
    Table(HeaderTableFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderTableFile {
    pub source: String,
    /// utf8 | percent (default) | base64 | rfc2047
    pub encoding: Option<String>,
    /// Between the values of a multi-valued claim (default ",").
    pub separator: Option<String>,
    /// Sent when the claim is missing (default: no header).
    pub default: Option<String>,
    /// Groups as `id` (Entra object IDs, default) or `alias` (the `[app.groups]` names).
    pub groups_as: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    /// Request header carrying the token (default `X-Ssogate-Jwt`).
    pub header: Option<String>,
    /// PEM private key that signs (RSA >= 2048: RS256; EC P-256: ES256).
    pub key_file: Option<String>,
    /// More PEM keys (public or private) published in the JWKS, for rotation.
    #[serde(default)]
    pub publish_key_files: Vec<String>,
    /// Token lifetime (default 5m).
    pub ttl: Option<String>,
    /// `iss` (default: the app's public origin).
    pub issuer: Option<String>,
    /// `aud` (default: the app's name).
    pub audience: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub path: Option<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub allow_groups: Vec<String>,
    #[serde(default)]
    pub allow_roles: Vec<String>,
    #[serde(default)]
    pub allow_users: Vec<String>,
    #[serde(default)]
    pub require_all_groups: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub deny_groups: Vec<String>,
    #[serde(default)]
    pub deny_roles: Vec<String>,
    #[serde(default)]
    pub deny_users: Vec<String>,
    /// Let `%2F` through to this route's upstream (for apps that need encoded slashes).
    #[serde(default)]
    pub allow_encoded_slash: bool,
}
