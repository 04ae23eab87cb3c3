//! FileConfig -> Config. Collects every problem instead of stopping at the first, so an
//! admin fixes a file in one pass. Checks that need other modules (IdP metadata, header
//! sources, group aliases) happen when the gateway is assembled (`crate::gateway`),
//! which `check-config` runs too.

use super::file::{AppFile, FileConfig, IdpFile, RouteFile, SessionFile};
use super::*;
use std::collections::{BTreeMap, HashSet};

const DEFAULT_PUBLIC: &str = "0.0.0.0:8080";
const DEFAULT_ADMIN: &str = "127.0.0.1:9090";

struct Errors(Vec<String>);

impl Errors {
    fn push(&mut self, msg: impl Into<String>) {
        self.0.push(msg.into());
    }
}

pub(super) fn validate(
    file: FileConfig,
    base: &Path,
    env: &dyn Env,
) -> Result<Config, ConfigError> {
    let mut errs = Errors(Vec::new());

    let listen_public = socket(
        &mut errs,
        "listen.public",
        env.get(ENV_LISTEN_PUBLIC)
            .or_else(|| file.listen.as_ref().and_then(|l| l.public.clone())),
        DEFAULT_PUBLIC,
    );
    let listen_admin = socket(
        &mut errs,
        "listen.admin",
        env.get(ENV_LISTEN_ADMIN)
            .or_else(|| file.listen.as_ref().and_then(|l| l.admin.clone())),
        DEFAULT_ADMIN,
    );
    if file
        .listen
        .as_ref()
        .and_then(|l| l.public.as_ref())
        .is_none()
        && env.get(ENV_LISTEN_PUBLIC).is_none()
    {
        errs.push("listen.public: missing (where browsers connect, e.g. \"0.0.0.0:8080\")");
    }
    let listen_tls = match file
        .listen
        .as_ref()
        .map(|l| (l.tls_cert_file.as_ref(), l.tls_key_file.as_ref()))
    {
        None | Some((None, None)) => None,
        Some((Some(c), Some(k))) => {
            let cert = read_file(&mut errs, "listen.tls_cert_file", base, c);
            let key = read_secret_file(&mut errs, "listen.tls_key_file", base, k);
            if let (Some((cp, cb)), Some((kp, kb))) = (cert, key) {
                if openssl::x509::X509::stack_from_pem(&cb).map_or(true, |v| v.is_empty()) {
                    errs.push(format!(
                        "listen.tls_cert_file {}: no PEM certificate",
                        cp.display()
                    ));
                }
                if openssl::pkey::PKey::private_key_from_pem(&kb).is_err() {
                    errs.push(format!(
                        "listen.tls_key_file {}: not a PEM private key",
                        kp.display()
                    ));
                }
                Some((cp, kp))
            } else {
                None
            }
        }
        _ => {
            errs.push("listen: tls_cert_file and tls_key_file go together");
            None
        }
    };
    if listen_public == listen_admin {
        errs.push("listen.admin: must differ from listen.public");
    }

    let threads = match file.server.threads {
        Some(0) => {
            errs.push("server.threads: must be at least 1");
            1
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let grace_period = duration(
        &mut errs,
        "server.grace_period",
        file.server.grace_period.as_deref(),
        "10s",
    );
    let drain_period = duration(
        &mut errs,
        "server.drain_period",
        file.server.drain_period.as_deref(),
        "5s",
    );
    let upgrade_socket = match file.server.upgrade_socket.as_deref() {
        None => PathBuf::from("/tmp/ssogate-upgrade.sock"),
        Some(p) => {
            let p = base.join(p);
            if p.parent()
                .is_some_and(|d| !d.as_os_str().is_empty() && !d.is_dir())
            {
                errs.push(format!(
                    "server.upgrade_socket: the directory of {} does not exist",
                    p.display()
                ));
            }
            p
        }
    };

    let log_format = match file.server.log_format.as_deref() {
        None => crate::logging::Format::Text,
        Some(f) => crate::logging::Format::parse(f).unwrap_or_else(|| {
            errs.push(format!(
                "server.log_format: \"{f}\" is neither \"text\" nor \"json\""
            ));
            crate::logging::Format::Text
        }),
    };
    let access_log = file.server.access_log.unwrap_or(false);

    let mut trusted_proxies = Vec::new();
    for p in &file.server.trusted_proxies {
        let p = p.trim();
        match p
            .parse::<ipnet::IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => errs.push(format!(
                "server.trusted_proxies: \"{p}\" is not an address or CIDR (e.g. \"10.0.0.0/8\", \"127.0.0.1\")"
            )),
        }
    }
    let forward_auth = file.forward_auth.as_ref().and_then(|f| {
        let style = f.style.as_deref().unwrap_or_default();
        let parsed = ForwardStyle::parse(style);
        if parsed.is_none() {
            errs.push(format!(
                "forward_auth.style: \"{style}\": use nginx, traefik, caddy or envoy"
            ));
        }
        if file.server.trusted_proxies.is_empty() {
            errs.push(
                "forward_auth: needs server.trusted_proxies (the proxy's address): forward-auth answers only the proxy",
            );
        }
        parsed
    });

    let session = session(&mut errs, &file.session, base, env);
    let scim = scim(&mut errs, &file.scim, base, env);

    if file.apps.is_empty() {
        errs.push("app: at least one [[app]] is required");
    }
    let mut apps = Vec::new();
    let mut names = HashSet::new();
    let mut hosts_seen: BTreeMap<String, String> = BTreeMap::new();
    for (i, app) in file.apps.iter().enumerate() {
        let ctx = match &app.name {
            Some(n) => format!("app[{i}] ({n})"),
            None => format!("app[{i}]"),
        };
        if let Some(a) = app_config(&mut errs, &ctx, app, base) {
            if !names.insert(a.name.clone()) {
                errs.push(format!("{ctx}.name: \"{}\" is used by two apps", a.name));
            }
            for h in &a.hosts {
                if let Some(other) = hosts_seen.insert(h.clone(), a.name.clone()) {
                    errs.push(format!(
                        "{ctx}.hosts: \"{h}\" is already served by app \"{other}\""
                    ));
                }
            }
            apps.push(a);
        }
    }

    if errs.0.is_empty() {
        Ok(Config {
            listen_public,
            listen_tls,
            listen_admin,
            threads,
            grace_period,
            drain_period,
            upgrade_socket,
            trusted_proxies,
            log_format,
            access_log,
            forward_auth,
            session,
            scim,
            apps,
        })
    } else {
        Err(ConfigError(errs.0))
    }
}

/// Shortest SCIM token accepted (Entra's Secret Token field takes any string; a guessable
/// one would hand out the directory).
const MIN_SCIM_TOKEN: usize = 16;

fn scim(errs: &mut Errors, s: &super::file::ScimFile, base: &Path, env: &dyn Env) -> ScimConfig {
    let enabled = s.enabled.unwrap_or(false);
    let mut tokens: Vec<Secret<Vec<u8>>> = Vec::new();
    if let Some(p) = &s.token_file {
        if let Some((_, bytes)) = read_secret_file(errs, "scim.token_file", base, p) {
            match String::from_utf8(bytes) {
                Ok(text) => tokens.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(|l| Secret::new(l.as_bytes().to_vec())),
                ),
                Err(_) => errs.push("scim.token_file: not UTF-8 text"),
            }
        }
    }
    if let Some(t) = env.get(ENV_SCIM_TOKEN) {
        tokens.extend(
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Secret::new(t.as_bytes().to_vec())),
        );
    }
    if enabled && tokens.is_empty() {
        errs.push(format!(
            "scim: enabled without a token: set token_file (Entra: Secret Token) or {ENV_SCIM_TOKEN}"
        ));
    }
    if tokens.iter().any(|t| {
        PUBLISHED_TOKENS
            .iter()
            .any(|p| p.as_bytes() == t.expose().as_slice())
    }) {
        errs.push(
            "scim: a token is the example published with ssogate, not a secret; make your own (openssl rand -hex 32) and paste it into Entra's Secret Token",
        );
    }
    if tokens.iter().any(|t| t.expose().len() < MIN_SCIM_TOKEN) {
        errs.push(format!(
            "scim: a token is shorter than {MIN_SCIM_TOKEN} characters (e.g. `openssl rand -hex 32`)"
        ));
    }
    let authoritative_groups = s.authoritative_groups.unwrap_or(false);
    let require_provisioned_user = s.require_provisioned_user.unwrap_or(false);
    if !enabled && (authoritative_groups || require_provisioned_user) {
        errs.push("scim: authoritative_groups and require_provisioned_user need enabled = true");
    }
    let match_users = s.match_users.clone().unwrap_or_else(|| "both".into());
    if crate::scim::effects::MatchUsers::parse(&match_users).is_none() {
        errs.push(format!(
            "scim.match_users: \"{match_users}\": use both, externalId or userName"
        ));
    }
    ScimConfig {
        enabled,
        tokens,
        authoritative_groups,
        require_provisioned_user,
        match_users,
    }
}

fn socket(errs: &mut Errors, key: &str, value: Option<String>, default: &str) -> SocketAddr {
    let fallback = default
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
    match value {
        None => fallback,
        Some(v) => v.parse().unwrap_or_else(|_| {
            errs.push(format!(
                "{key}: \"{v}\" is not an address like 127.0.0.1:8080"
            ));
            fallback
        }),
    }
}

fn duration(errs: &mut Errors, key: &str, value: Option<&str>, default: &str) -> Duration {
    let v = value.unwrap_or(default);
    humantime::parse_duration(v).unwrap_or_else(|_| {
        errs.push(format!(
            "{key}: \"{v}\" is not a duration (examples: \"90s\", \"30m\", \"8h\")"
        ));
        Duration::from_secs(1)
    })
}

fn read_file(errs: &mut Errors, key: &str, base: &Path, path: &str) -> Option<(PathBuf, Vec<u8>)> {
    let p = base.join(path);
    match std::fs::read(&p) {
        Ok(bytes) => Some((p, bytes)),
        Err(e) => {
            errs.push(format!("{key}: cannot read {}: {e}", p.display()));
            None
        }
    }
}

/// SHA-256 of secrets that were published as examples in earlier releases (config/):
/// anyone can read them, so they protect nothing.
const PUBLISHED_SECRETS: [&str; 1] = [
    // config/example-sp-key.pem (until 0.1)
    "1e36f5dbbc75757c2e261dace128defe3e2c86411a726384160996aa6de0b502",
];
/// SCIM tokens that were published as examples.
const PUBLISHED_TOKENS: [&str; 1] = ["example-token-0000000000000000000000000000000000000000"];

/// A file holding a secret (private key, token, password): read like any file, and
/// refused when every user of the machine may read it, or when it is a secret that was
/// published as an example.
fn read_secret_file(
    errs: &mut Errors,
    key: &str,
    base: &Path,
    path: &str,
) -> Option<(PathBuf, Vec<u8>)> {
    let (p, bytes) = read_file(errs, key, base, path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(&p) {
            if meta.permissions().mode() & 0o004 != 0 {
                errs.push(format!(
                    "{key}: {} is readable by every user of this machine; make it private (chmod 600, or 640 with the service's group)",
                    p.display()
                ));
            }
        }
    }
    let digest = {
        use sha2::{Digest as _, Sha256};
        hex::encode(Sha256::digest(&bytes))
    };
    if PUBLISHED_SECRETS.contains(&digest.as_str()) {
        errs.push(format!(
            "{key}: {} is the example key published with ssogate, not a secret; make your own (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out sp-key.pem)",
            p.display()
        ));
    }
    Some((p, bytes))
}

/// `store = "redis"`: the URL, credentials and TLS files, each from where it was given.
fn redis_store(errs: &mut Errors, s: &SessionFile, base: &Path, env: &dyn Env) -> StoreConfig {
    let url = env.get(ENV_REDIS_URL).or_else(|| s.redis_url.clone());
    let mut password = None;
    let mut password_from = None;
    if let Some(p) = &s.redis_password_file {
        if let Some((_, bytes)) = read_secret_file(errs, "session.redis_password_file", base, p) {
            match String::from_utf8(bytes) {
                Ok(text) => {
                    password = Some(Secret::new(text.trim_end().to_string()));
                    password_from = Some("redis_password_file");
                }
                Err(_) => errs.push("session.redis_password_file: not UTF-8 text"),
            }
        }
    }
    if let Some(p) = env.get(ENV_REDIS_PASSWORD) {
        password = Some(Secret::new(p));
        password_from = Some(ENV_REDIS_PASSWORD);
    }
    let (mut username, mut username_from) = (s.redis_username.clone(), "redis_username");
    if let Some(u) = env.get(ENV_REDIS_USERNAME) {
        (username, username_from) = (Some(u), ENV_REDIS_USERNAME);
    }
    if username.as_deref().is_some_and(str::is_empty) {
        errs.push(format!("session.redis_username ({username_from}): empty"));
    }
    let ca_pem = s.redis_ca_file.as_ref().and_then(|p| {
        let (_, pem) = read_file(errs, "session.redis_ca_file", base, p)?;
        match openssl::x509::X509::stack_from_pem(&pem) {
            Ok(certs) if !certs.is_empty() => Some(pem),
            _ => {
                errs.push("session.redis_ca_file: no PEM certificate in it");
                None
            }
        }
    });
    let client_tls = match (&s.redis_client_cert_file, &s.redis_client_key_file) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            let cert = read_file(errs, "session.redis_client_cert_file", base, c);
            let key = read_secret_file(errs, "session.redis_client_key_file", base, k);
            match (cert, key) {
                (Some((_, cert)), Some((_, key))) => Some((cert, Secret::new(key))),
                _ => None,
            }
        }
        _ => {
            errs.push(
                "session.redis_client_cert_file and redis_client_key_file: give both or neither",
            );
            None
        }
    };
    let sentinels = s
        .redis_sentinels
        .as_ref()
        .map(|list| sentinel_addresses(errs, list))
        .unwrap_or_default();
    let sentinel_username = s.redis_sentinel_username.clone();
    if sentinel_username.as_deref().is_some_and(str::is_empty) {
        errs.push("session.redis_sentinel_username: empty");
    }
    let mut sentinel_password = None;
    let mut sentinel_password_from = None;
    if let Some(p) = &s.redis_sentinel_password_file {
        let key = "session.redis_sentinel_password_file";
        if let Some((_, bytes)) = read_secret_file(errs, key, base, p) {
            match String::from_utf8(bytes) {
                Ok(text) => {
                    sentinel_password = Some(Secret::new(text.trim_end().to_string()));
                    sentinel_password_from = Some("redis_sentinel_password_file");
                }
                Err(_) => errs.push(format!("{key}: not UTF-8 text")),
            }
        }
    }
    if let Some(p) = env.get(ENV_REDIS_SENTINEL_PASSWORD) {
        sentinel_password = Some(Secret::new(p));
        sentinel_password_from = Some(ENV_REDIS_SENTINEL_PASSWORD);
    }
    if s.redis_sentinels.is_none()
        && (sentinel_username.is_some() || sentinel_password_from.is_some())
    {
        errs.push("session.redis_sentinel_username / redis_sentinel_password_file: Sentinel settings without session.redis_sentinels");
    }
    let mut timeout = |key: &str, value: &Option<String>, default: &str| {
        let d = duration(errs, key, value.as_deref(), default);
        if d.is_zero() || d > Duration::from_secs(60) {
            errs.push(format!("{key}: between 1ms and 60s"));
        }
        d
    };
    let connect_timeout = timeout(
        "session.redis_connect_timeout",
        &s.redis_connect_timeout,
        "2s",
    );
    let command_timeout = timeout(
        "session.redis_command_timeout",
        &s.redis_command_timeout,
        "1s",
    );
    let Some(u) = url else {
        errs.push(format!(
            "session.redis_url: required with store = \"redis\" (or set {ENV_REDIS_URL})"
        ));
        return StoreConfig::Memory;
    };
    let mut tls = false;
    let mut master = None;
    let cluster = s.redis_cluster.unwrap_or(false);
    let mut seed = String::new();
    let mut url_user = false;
    let mut url_password = false;
    match url::Url::parse(&u) {
        Ok(parsed) if parsed.scheme() == "redis" || parsed.scheme() == "rediss" => {
            tls = parsed.scheme() == "rediss";
            url_user = !parsed.username().is_empty();
            url_password = parsed.password().is_some();
            if parsed.fragment().is_some_and(|f| f.contains("insecure")) {
                errs.push(
                    "session.redis_url: #insecure turns off the check of Redis' certificate and name; trust its CA with session.redis_ca_file instead",
                );
            }
            if cluster {
                if s.redis_sentinels.is_some() {
                    errs.push("session.redis_cluster: a Redis Cluster has no Sentinels (leave out redis_sentinels)");
                }
                if !matches!(parsed.path(), "" | "/" | "/0") {
                    errs.push("session.redis_url: a Redis Cluster has only database 0");
                }
                if s.redis_ca_file.is_some() || s.redis_client_cert_file.is_some() {
                    errs.push("session.redis_cluster: over TLS, ssogate trusts the system's CAs for a Cluster (no redis_ca_file or client certificate)");
                }
                seed = format!(
                    "{}:{}",
                    parsed.host_str().unwrap_or_default(),
                    parsed.port().unwrap_or(if tls { 6380 } else { 6379 })
                );
            }
            if s.redis_sentinels.is_some() {
                master = parsed.host_str().map(str::to_owned);
                if master.as_deref().is_none_or(str::is_empty) || parsed.port().is_some() {
                    errs.push(
                        "session.redis_url: with redis_sentinels, the URL's host is the master name the Sentinels monitor, without a port (redis://mymaster/0)",
                    );
                }
            }
        }
        Ok(parsed) => errs.push(format!(
            "session.redis_url: scheme \"{}\" is not supported (use redis://, or rediss:// for TLS)",
            parsed.scheme()
        )),
        // Never echo the URL: it may carry a password.
        Err(e) => errs.push(format!("session.redis_url: not a URL ({e})")),
    }
    let tls_files_given = s.redis_ca_file.is_some()
        || s.redis_client_cert_file.is_some()
        || s.redis_client_key_file.is_some();
    if !tls && tls_files_given {
        errs.push(
            "session.redis_ca_file / redis_client_cert_file: TLS settings need a rediss:// URL",
        );
    }
    // What check-config says about it: where each part comes from, never a secret.
    let mut summary = vec![if tls {
        format!(
            "TLS (at least 1.2, server name checked) trusting {}",
            if ca_pem.is_some() {
                "session.redis_ca_file"
            } else {
                "the system's CAs"
            }
        )
    } else {
        "plain TCP, no TLS".to_string()
    }];
    if client_tls.is_some() {
        summary.push("client certificate from session.redis_client_cert_file".into());
    }
    if cluster {
        summary.insert(0, format!("Cluster: the nodes found from {seed}"));
    }
    if !sentinels.is_empty() {
        let mut via = format!(
            "Sentinel: the primary of \"{}\" as {} Sentinel(s) name it ({})",
            master.as_deref().unwrap_or_default(),
            sentinels.len(),
            sentinels
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(u) = &sentinel_username {
            via.push_str(&format!(", Sentinel ACL user \"{u}\""));
        }
        via.push_str(match sentinel_password_from {
            Some(from) => {
                if from == ENV_REDIS_SENTINEL_PASSWORD {
                    ", Sentinel password from SSOGATE_REDIS_SENTINEL_PASSWORD"
                } else {
                    ", Sentinel password from redis_sentinel_password_file"
                }
            }
            None => ", no Sentinel password",
        });
        summary.insert(0, via);
    }
    summary.push(match (&username, url_user) {
        (Some(u), _) => format!("ACL user \"{u}\" from {username_from}"),
        (None, true) => "ACL user from the URL".into(),
        (None, false) => "user \"default\"".into(),
    });
    summary.push(match (password_from, url_password) {
        (Some(from), _) => format!("password from {from}"),
        (None, true) => "password from the URL".into(),
        (None, false) => "no password".into(),
    });
    StoreConfig::Redis {
        url: Secret::new(u),
        password,
        username,
        ca_pem,
        client_tls,
        sentinels,
        sentinel_username,
        sentinel_password,
        cluster,
        connect_timeout,
        command_timeout,
        summary: summary.join(", "),
    }
}

/// `redis_sentinels`: "host:port" or "host" (port 26379), IPv6 in brackets; at least one,
/// none twice.
fn sentinel_addresses(errs: &mut Errors, list: &[String]) -> Vec<(String, u16)> {
    const KEY: &str = "session.redis_sentinels";
    if list.is_empty() {
        errs.push(format!(
            "{KEY}: empty (list the Sentinels, or leave the setting out)"
        ));
    }
    let mut out: Vec<(String, u16)> = Vec::with_capacity(list.len());
    for entry in list {
        let parsed = url::Url::parse(&format!("redis://{entry}"));
        match parsed {
            Ok(u)
                if u.username().is_empty()
                    && u.password().is_none()
                    && matches!(u.path(), "" | "/")
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.host_str().is_some_and(|h| !h.is_empty()) =>
            {
                let host = u
                    .host_str()
                    .unwrap_or_default()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let addr = (host, u.port().unwrap_or(26379));
                if out.contains(&addr) {
                    errs.push(format!("{KEY}: \"{entry}\" listed twice"));
                } else {
                    out.push(addr);
                }
            }
            _ => errs.push(format!(
                "{KEY}: \"{entry}\" is not host:port (e.g. \"10.0.0.5:26379\")"
            )),
        }
    }
    out
}

fn session(errs: &mut Errors, s: &SessionFile, base: &Path, env: &dyn Env) -> SessionConfig {
    let store = match s.store.as_deref().unwrap_or("memory") {
        "memory" => StoreConfig::Memory,
        "redis" => redis_store(errs, s, base, env),
        other => {
            errs.push(format!(
                "session.store: \"{other}\" is not a store (use \"redis\", or \"memory\" for a single instance)"
            ));
            StoreConfig::Memory
        }
    };
    let cookie_name = s.cookie_name.clone().unwrap_or_else(|| "ssogate".into());
    if cookie_name.is_empty()
        || !cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        errs.push(format!(
            "session.cookie_name: \"{cookie_name}\" must be letters, digits, '-', '_' or '.'"
        ));
    }
    let idle_timeout = duration(
        errs,
        "session.idle_timeout",
        s.idle_timeout.as_deref(),
        "30m",
    );
    let absolute_timeout = duration(
        errs,
        "session.absolute_timeout",
        s.absolute_timeout.as_deref(),
        "8h",
    );
    if idle_timeout > absolute_timeout {
        errs.push("session.idle_timeout: longer than session.absolute_timeout");
    }
    if idle_timeout.is_zero() {
        errs.push("session.idle_timeout: must be longer than 0s");
    }
    let login_timeout = duration(
        errs,
        "session.login_timeout",
        s.login_timeout.as_deref(),
        "10m",
    );
    let cache_ttl = duration(errs, "session.cache_ttl", s.cache_ttl.as_deref(), "10s");
    if cache_ttl > Duration::from_secs(300) {
        errs.push("session.cache_ttl: at most 5m");
    }
    let max_pending_per_client = s.max_pending_per_client.unwrap_or(1000);
    let max_pending_total = s.max_pending_total.unwrap_or(100_000);
    if max_pending_per_client == 0 || max_pending_total == 0 {
        errs.push("session.max_pending_per_client / max_pending_total: at least 1");
    }
    SessionConfig {
        cache_ttl,
        cache_max_entries: s.cache_max_entries.unwrap_or(100_000),
        bind_sign_in: s.bind_sign_in_to_browser.unwrap_or(true),
        max_pending_per_client,
        max_pending_total,
        store,
        cookie_name,
        cookie_secure: s.cookie_secure.unwrap_or(true),
        idle_timeout,
        absolute_timeout,
        login_timeout,
    }
}

fn app_config(errs: &mut Errors, ctx: &str, app: &AppFile, base: &Path) -> Option<AppConfig> {
    let before = errs.0.len();
    let name = app.name.clone().unwrap_or_default();
    if name.is_empty() {
        errs.push(format!("{ctx}.name: missing"));
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        errs.push(format!(
            "{ctx}.name: \"{name}\" must be letters, digits, '-' or '_'"
        ));
    }

    let mut hosts = Vec::new();
    if app.hosts.is_empty() {
        errs.push(format!(
            "{ctx}.hosts: at least one host name (or \"*\") is required"
        ));
    }
    for h in &app.hosts {
        let h = h.trim().to_ascii_lowercase();
        let valid = h == "*"
            || (!h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)));
        if valid {
            hosts.push(h);
        } else {
            errs.push(format!(
                "{ctx}.hosts: \"{h}\" is not a host name (no scheme, port or path)"
            ));
        }
    }

    let mut upstream = upstream(errs, ctx, app.upstream.as_deref());
    if let Some(u) = upstream.as_mut() {
        if let Some(p) = &app.upstream_ca_file {
            if !u.tls {
                errs.push(format!(
                    "{ctx}.upstream_ca_file: only for an https:// upstream"
                ));
            }
            if let Some((path, pem)) = read_file(errs, &format!("{ctx}.upstream_ca_file"), base, p)
            {
                match openssl::x509::X509::stack_from_pem(&pem) {
                    Ok(certs) if !certs.is_empty() => {
                        u.ca = certs.iter().filter_map(|c| c.to_der().ok()).collect();
                    }
                    _ => errs.push(format!(
                        "{ctx}.upstream_ca_file {}: no PEM certificate",
                        path.display()
                    )),
                }
            }
        }
        u.http2 = app.upstream_http2.unwrap_or(false);
        if u.http2 && !u.tls {
            errs.push(format!(
                "{ctx}.upstream_http2: only for an https:// upstream (ALPN)"
            ));
        }
    }

    let default_path = app.default_path.clone().unwrap_or_else(|| "/".into());
    if !default_path.starts_with('/') || default_path.starts_with("//") {
        errs.push(format!(
            "{ctx}.default_path: must be a path starting with a single '/'"
        ));
    }

    let logout_return_path = app.logout_return_path.clone();
    if let Some(p) = &logout_return_path {
        let is_url = url::Url::parse(p).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !is_url && (!p.starts_with('/') || p.starts_with("//")) {
            errs.push(format!(
                "{ctx}.logout_return_path: must be a path starting with a single '/' or an absolute http(s) URL"
            ));
        }
    }
    for h in &app.redirect_allow_hosts {
        let h = h.trim();
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            errs.push(format!(
                "{ctx}.redirect_allow_hosts: \"{h}\" is not a host name (no scheme, port or path)"
            ));
        }
    }

    let strip_header_prefix = app
        .strip_header_prefix
        .clone()
        .unwrap_or_else(|| "X-Remote-".into())
        .to_ascii_lowercase();

    let sp = match &app.sp {
        None => {
            errs.push(format!(
                "{ctx}.sp: missing [app.sp] (entity_id = Entra \"Identifier\", acs_url = Entra \"Reply URL\")"
            ));
            None
        }
        Some(sp) => {
            let entity_id = sp.entity_id.clone().unwrap_or_default();
            if entity_id.is_empty() {
                errs.push(format!(
                    "{ctx}.sp.entity_id: missing (Entra: Identifier (Entity ID))"
                ));
            }
            let mut acs_path = String::new();
            let mut acs_query = None;
            let acs_url = sp.acs_url.clone().unwrap_or_default();
            match url::Url::parse(&acs_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    acs_path = u.path().to_string();
                    acs_query = u.query().map(str::to_string);
                }
                _ if acs_url.is_empty() => errs.push(format!(
                    "{ctx}.sp.acs_url: missing (Entra: Reply URL (Assertion Consumer Service URL))"
                )),
                _ => errs.push(format!(
                    "{ctx}.sp.acs_url: \"{acs_url}\" must be an absolute http(s) URL"
                )),
            }
            let mut slo_path = None;
            if let Some(slo) = &sp.slo_url {
                match url::Url::parse(slo) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        let path = u.path().to_string();
                        if u.path() == acs_path {
                            errs.push(format!(
                                "{ctx}.sp.slo_url: must differ from acs_url's path (e.g. \"/saml/slo\")"
                            ));
                        }
                        slo_path = Some(path);
                    }
                    _ => errs.push(format!(
                        "{ctx}.sp.slo_url: \"{slo}\" must be an absolute http(s) URL (Entra: Logout URL)"
                    )),
                }
            }
            let keys = match (&sp.signing_key_file, &sp.certificate_file) {
                (None, None) => None,
                (Some(k), Some(c)) => {
                    let key =
                        read_secret_file(errs, &format!("{ctx}.sp.signing_key_file"), base, k);
                    let cert = read_file(errs, &format!("{ctx}.sp.certificate_file"), base, c);
                    let previous: Vec<_> = sp
                        .previous_key_files
                        .iter()
                        .flatten()
                        .enumerate()
                        .filter_map(|(i, f)| {
                            read_secret_file(
                                errs,
                                &format!("{ctx}.sp.previous_key_files[{i}]"),
                                base,
                                f,
                            )
                            .map(|(path, pem)| (path, Secret::new(pem)))
                        })
                        .collect();
                    match (key, cert) {
                        (Some((key_path, key_pem)), Some((cert_path, cert_pem))) => {
                            Some(SpKeyFiles {
                                key_path,
                                key_pem: Secret::new(key_pem),
                                cert_path,
                                cert_pem,
                                previous,
                            })
                        }
                        _ => None,
                    }
                }
                _ => {
                    errs.push(format!(
                        "{ctx}.sp: signing_key_file and certificate_file go together (a PEM key and its PEM certificate)"
                    ));
                    None
                }
            };
            if sp.previous_key_files.is_some() && sp.signing_key_file.is_none() {
                errs.push(format!(
                    "{ctx}.sp.previous_key_files: needs the current key too (signing_key_file and certificate_file)"
                ));
            }
            if sp.sign_authn_requests == Some(true) && keys.is_none() {
                errs.push(format!(
                    "{ctx}.sp.sign_authn_requests: needs signing_key_file and certificate_file"
                ));
            }
            let sign_authn_requests = sp.sign_authn_requests.unwrap_or(keys.is_some());
            Some(SpConfig {
                entity_id,
                acs_url,
                acs_path,
                acs_query,
                name_id_format: sp
                    .name_id_format
                    .clone()
                    .unwrap_or_else(|| "emailAddress".into()),
                slo_url: sp.slo_url.clone(),
                slo_path,
                keys,
                sign_authn_requests,
            })
        }
    };

    let idp = match &app.idp {
        None => {
            errs.push(format!(
                "{ctx}.idp: missing [app.idp] (metadata_file = Entra \"Federation Metadata XML\", or entity_id + sso_url + certificate_file)"
            ));
            None
        }
        Some(idp) => idp_config(errs, ctx, idp, base),
    };

    let mut headers = Vec::new();
    for (header, spec) in &app.headers {
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            errs.push(format!("{ctx}.headers: \"{header}\" is not a header name"));
        }
        let spec = match spec {
            super::file::HeaderFile::Source(s) => HeaderSpec::from(s.as_str()),
            super::file::HeaderFile::Table(t) => HeaderSpec {
                source: t.source.clone(),
                encoding: t.encoding.clone(),
                separator: t.separator.clone(),
                default: t.default.clone(),
                groups_as: t.groups_as.clone(),
            },
        };
        if spec.source.is_empty() {
            errs.push(format!("{ctx}.headers.\"{header}\": empty source"));
        }
        headers.push((header.clone(), spec));
    }
    for (alias, id) in &app.groups {
        if id.trim().is_empty() {
            errs.push(format!("{ctx}.groups.{alias}: empty group object ID"));
        }
    }

    let routes = routes(errs, ctx, &app.routes);
    let jwt = app.jwt.as_ref().and_then(|j| {
        let header = j.header.clone().unwrap_or_else(|| "X-Ssogate-Jwt".into());
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            errs.push(format!(
                "{ctx}.jwt.header: \"{header}\" is not a header name"
            ));
        }
        let ttl = duration(errs, &format!("{ctx}.jwt.ttl"), j.ttl.as_deref(), "5m");
        if !(Duration::from_secs(30)..=Duration::from_secs(3600)).contains(&ttl) {
            errs.push(format!("{ctx}.jwt.ttl: between 30s and 1h"));
        }
        let key = match &j.key_file {
            Some(k) => read_secret_file(errs, &format!("{ctx}.jwt.key_file"), base, k),
            None => {
                errs.push(format!(
                    "{ctx}.jwt.key_file: missing (a PEM RSA or EC P-256 private key)"
                ));
                None
            }
        };
        let publish: Vec<(PathBuf, Vec<u8>)> = j
            .publish_key_files
            .iter()
            .filter_map(|p| read_file(errs, &format!("{ctx}.jwt.publish_key_files"), base, p))
            .collect();
        let issuer = j.issuer.clone().unwrap_or_else(|| {
            app.sp
                .as_ref()
                .and_then(|sp| sp.acs_url.as_deref())
                .and_then(|u| url::Url::parse(u).ok())
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default()
        });
        let (key_path, key_pem) = key?;
        Some(JwtConfig {
            header,
            key_path,
            key_pem: Secret::new(key_pem),
            publish,
            ttl,
            issuer,
            audience: j.audience.clone().unwrap_or_else(|| name.clone()),
        })
    });

    if errs.0.len() != before {
        return None;
    }
    let (sp, idp) = (sp?, idp?);
    Some(AppConfig {
        name,
        hosts,
        upstream: upstream?,
        allow_idp_initiated: app.allow_idp_initiated.unwrap_or(false),
        default_path,
        post_replay_max_bytes: app
            .post_replay_max_bytes
            .unwrap_or(64 * 1024)
            .min(1024 * 1024),
        logout_return_path,
        redirect_allow_hosts: app
            .redirect_allow_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        strip_header_prefix,
        case_insensitive_paths: app.case_insensitive_paths.unwrap_or(false),
        allow_underscore_headers: app.allow_underscore_headers.unwrap_or(false),
        sp,
        idp,
        headers,
        groups: app.groups.clone(),
        routes,
        jwt,
    })
}

fn upstream(errs: &mut Errors, ctx: &str, value: Option<&str>) -> Option<UpstreamConfig> {
    let Some(v) = value else {
        errs.push(format!(
            "{ctx}.upstream: missing (the legacy app, e.g. \"http://127.0.0.1:3000\")"
        ));
        return None;
    };
    let parsed = url::Url::parse(v).ok();
    let ok = parsed.as_ref().and_then(|u| {
        let tls = match u.scheme() {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        if u.path() != "/" || u.query().is_some() {
            return None;
        }
        let host = match u.host()? {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => a.to_string(),
        };
        Some(UpstreamConfig {
            host,
            port: u.port_or_known_default()?,
            tls,
            ca: Vec::new(),
            http2: false,
        })
    });
    if ok.is_none() {
        errs.push(format!(
            "{ctx}.upstream: \"{v}\" must be http://host:port or https://host:port, without a path"
        ));
    }
    ok
}

fn idp_config(errs: &mut Errors, ctx: &str, idp: &IdpFile, base: &Path) -> Option<IdpConfig> {
    let clock_skew = duration(
        errs,
        &format!("{ctx}.idp.clock_skew"),
        idp.clock_skew.as_deref(),
        "3m",
    );
    if clock_skew > Duration::from_secs(600) {
        errs.push(format!("{ctx}.idp.clock_skew: at most 10m"));
    }
    let manual = idp.entity_id.is_some() || idp.sso_url.is_some() || idp.certificate_file.is_some();
    let refresh_interval = duration(
        errs,
        &format!("{ctx}.idp.refresh_interval"),
        idp.refresh_interval.as_deref(),
        "1h",
    );
    if idp.refresh_interval.is_some() && idp.metadata_url.is_none() {
        errs.push(format!(
            "{ctx}.idp.refresh_interval: only with metadata_url"
        ));
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(7 * 86400)).contains(&refresh_interval) {
        errs.push(format!("{ctx}.idp.refresh_interval: between 1s and 7d"));
    }
    let metadata_signer = idp
        .metadata_signing_certificate_file
        .as_ref()
        .and_then(|p| {
            read_file(
                errs,
                &format!("{ctx}.idp.metadata_signing_certificate_file"),
                base,
                p,
            )
        });
    if idp.metadata_signing_certificate_file.is_some()
        && idp.metadata_file.is_none()
        && idp.metadata_url.is_none()
    {
        errs.push(format!(
            "{ctx}.idp.metadata_signing_certificate_file: only with metadata_file or metadata_url"
        ));
    }
    let source = match (&idp.metadata_url, &idp.metadata_file, manual) {
        (Some(_), _, true) => {
            errs.push(format!(
                "{ctx}.idp: give either metadata_url or entity_id + sso_url + certificate_file, not both"
            ));
            None
        }
        (Some(url), backing, false) => {
            match url::Url::parse(url) {
                Ok(u) if u.scheme() == "https" => {}
                Ok(u)
                    if u.scheme() == "http"
                        && (metadata_signer.is_some()
                            || matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))) => {}
                Ok(u) if u.scheme() == "http" => errs.push(format!(
                    "{ctx}.idp.metadata_url: \"{url}\" is plain http: use https (or pin the metadata signer with metadata_signing_certificate_file)"
                )),
                _ => errs.push(format!(
                    "{ctx}.idp.metadata_url: \"{url}\" must be an absolute https URL (Entra: App Federation Metadata Url)"
                )),
            }
            let backing_file = backing.as_ref().map(|p| base.join(p));
            let backing_xml = backing_file.as_ref().and_then(|p| std::fs::read(p).ok());
            Some(IdpSource::MetadataUrl {
                url: url.clone(),
                refresh_interval,
                backing_file,
                backing_xml,
            })
        }
        (None, Some(_), true) => {
            errs.push(format!(
                "{ctx}.idp: give either metadata_file or entity_id + sso_url + certificate_file, not both"
            ));
            None
        }
        (None, Some(path), false) => {
            read_file(errs, &format!("{ctx}.idp.metadata_file"), base, path)
                .map(|(path, xml)| IdpSource::Metadata { path, xml })
        }
        (None, None, false) => {
            errs.push(format!(
                "{ctx}.idp: give metadata_url or metadata_file (Entra: Federation Metadata XML), or entity_id + sso_url + certificate_file (Entra: Microsoft Entra Identifier, Login URL, Certificate (Base64))"
            ));
            None
        }
        (None, None, true) => {
            let mut missing = Vec::new();
            if idp.entity_id.is_none() {
                missing.push("entity_id (Entra: Microsoft Entra Identifier)");
            }
            if idp.sso_url.is_none() {
                missing.push("sso_url (Entra: Login URL)");
            }
            if idp.certificate_file.is_none() {
                missing.push("certificate_file (Entra: Certificate (Base64))");
            }
            for m in &missing {
                errs.push(format!("{ctx}.idp.{m}: missing"));
            }
            for (key, v) in [("sso_url", &idp.sso_url), ("slo_url", &idp.slo_url)] {
                if let Some(v) = v {
                    if !url::Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                        errs.push(format!(
                            "{ctx}.idp.{key}: \"{v}\" must be an absolute http(s) URL"
                        ));
                    }
                }
            }
            let cert = idp
                .certificate_file
                .as_ref()
                .and_then(|p| read_file(errs, &format!("{ctx}.idp.certificate_file"), base, p));
            match (missing.is_empty(), cert) {
                (true, Some((certificate_path, certificate))) => Some(IdpSource::Manual {
                    entity_id: idp.entity_id.clone().unwrap_or_default(),
                    sso_url: idp.sso_url.clone().unwrap_or_default(),
                    slo_url: idp.slo_url.clone(),
                    certificate_path,
                    certificate,
                }),
                _ => None,
            }
        }
    };
    let want_assertions_signed = idp.want_assertions_signed.unwrap_or(true);
    let want_response_signed = idp.want_response_signed.unwrap_or(false);
    if !want_assertions_signed && !want_response_signed {
        errs.push(format!(
            "{ctx}.idp: want_assertions_signed and want_response_signed cannot both be false (Entra: SAML Signing Certificate > Signing Option)"
        ));
    }
    source.map(|source| IdpConfig {
        source,
        clock_skew,
        allow_sha1: idp.allow_sha1.unwrap_or(false),
        allow_expired_certificate: idp.allow_expired_certificate.unwrap_or(false),
        want_assertions_signed,
        want_response_signed,
        require_signed_logout: idp.require_signed_logout.unwrap_or(true),
        metadata_signer,
    })
}

fn routes(errs: &mut Errors, ctx: &str, routes: &[RouteFile]) -> Vec<RouteConfig> {
    let mut out: Vec<RouteConfig> = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let key = format!("{ctx}.route[{i}]");
        let Some(path) = r.path.clone() else {
            errs.push(format!("{key}.path: missing"));
            continue;
        };
        if !path.starts_with('/') {
            errs.push(format!("{key}.path: \"{path}\" must start with '/'"));
        }
        if out.iter().any(|o| o.path == path) {
            errs.push(format!("{key}.path: \"{path}\" appears twice"));
        }
        let rules = [
            &r.allow_groups,
            &r.allow_roles,
            &r.allow_users,
            &r.require_all_groups,
            &r.deny_groups,
            &r.deny_roles,
            &r.deny_users,
        ];
        if r.public && rules.iter().any(|v| !v.is_empty()) {
            errs.push(format!(
                "{key}: a public route cannot also have allow_*, require_all_groups or deny_* rules"
            ));
        }
        let mut methods = Vec::new();
        for m in &r.methods {
            let up = m.trim().to_ascii_uppercase();
            if up.is_empty() || !up.bytes().all(|b| b.is_ascii_uppercase()) {
                errs.push(format!("{key}.methods: \"{m}\" is not an HTTP method"));
            }
            methods.push(up);
        }
        out.push(RouteConfig {
            path,
            public: r.public,
            allow_groups: r.allow_groups.clone(),
            allow_roles: r.allow_roles.clone(),
            allow_users: r.allow_users.clone(),
            require_all_groups: r.require_all_groups.clone(),
            methods,
            deny_groups: r.deny_groups.clone(),
            deny_roles: r.deny_roles.clone(),
            deny_users: r.deny_users.clone(),
            allow_encoded_slash: r.allow_encoded_slash,
        });
    }
    out
}
