//! Redis session store: one Redis, or the primary that Redis Sentinel names (through
//! `redis::aio::ConnectionManager`), or a Redis Cluster (through redis-rs' Cluster
//! client, which routes each command to its slot's node and follows MOVED and ASK; the
//! steps that touch several slots are written as ordered single-slot steps, see
//! `put_session`).
//!
//! Availability rules:
//! - `RedisStore::new` is synchronous and never connects: a gateway whose Redis is down
//!   starts, reports not ready and answers 503 until Redis is back.
//! - The connection manager is created lazily inside the runtime of the first caller
//!   (pingora runs its own runtimes; a manager built on a runtime that is later dropped
//!   gives "broken pipe").
//! - Every operation has a deadline (connect timeout + response timeout), so a dead or
//!   hung Redis yields a fast `SessionError::Unavailable`, never a hang.
//! - Recovery is automatic: the manager reconnects after I/O errors; if failures persist
//!   longer than `RECREATE_AFTER`, the manager itself is dropped and rebuilt (at most once
//!   per `RECREATE_AFTER`), which also covers auth errors and a dead runtime.
//! - Sentinel: each (re)build asks the Sentinels for the primary (all at once, each
//!   within the timeouts), checks with `ROLE` that the named node is a primary, and
//!   connects to it. A node that answers `READONLY` (a primary demoted by a failover)
//!   makes the next call look again, and the refused command, which did not run, is sent
//!   once more to the new primary.
//!
//! Keys (`<prefix>` defaults to `ssogate:`), values JSON:
//! `sess:<store_key>` (string), `user:<hash(app, name_id)>` (set of store keys),
//! `pending:<sha256(request_id)>` (string), `seen:<sha256(assertion_id)>` ("1").

use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Cmd, ErrorKind, FromRedisValue, IntoConnectionInfo, RedisError, Value};
use parking_lot::Mutex;

use crate::metrics::METRICS;

use super::store::{
    clamp_ttl, hashed, session_user_names, user_index_key, DocIndex, DocUpdate, DocWrite,
    MemberChange,
};
use super::{PendingLogin, Revocation, SessionError, SessionRecord, SessionStore};

/// Default key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "ssogate:";
/// Default TCP connect (and handshake) timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default per-command response timeout.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The revocation subscription is PINGed this often; no answer within the response
/// timeout ends it (and the cache is distrusted until it is back).
pub const DEFAULT_FEED_KEEPALIVE: Duration = Duration::from_secs(5);
/// Failures lasting this long rebuild the connection manager; also the minimum interval
/// between two rebuilds.
const RECREATE_AFTER: Duration = Duration::from_secs(1);

/// SET the session, add it to its user indexes, and make sure each index lives at least
/// as long as the session (never shorten it: other sessions of the user may live longer).
/// KEYS: session, user indexes (NameID, object ID). ARGV: json, ttl ms, store key.
const PUT_SCRIPT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[3])
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
end
return 1
";

/// Like PUT_SCRIPT, but only when the session still exists (SET XX): a session revoked
/// between load and touch is not resurrected.
const TOUCH_SCRIPT: &str = r"
if not redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) then
  return 0
end
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[3])
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
end
return 1
";

/// Cluster: add a session to one user index (its own slot), and make sure the index lives
/// at least as long as the session. KEYS: user index. ARGV: store key, ttl ms.
const INDEX_ADD_SCRIPT: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

/// One SCAN step deleting what matches, on the node of KEYS[1]'s slot (every matching
/// key carries the same hash tag). ARGV: cursor, pattern. Returns the next cursor.
const SCAN_DELETE_SCRIPT: &str = r"
local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 1000)
for _, k in ipairs(r[2]) do redis.call('DEL', k) end
return r[1]
";

/// Live members of a user index; dead ones (expired or deleted sessions) are pruned.
/// KEYS: user index. ARGV: session key prefix.
const USER_SESSIONS_SCRIPT: &str = r"
local live = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. m) == 1 then
    live[#live + 1] = m
  else
    redis.call('SREM', KEYS[1], m)
  end
end
return live
";

/// Delete every session in a user index, then the index, atomically, and announce each
/// deleted session on the revocation channel.
/// KEYS: user index. ARGV: session key prefix, channel. Returns the number deleted.
const DELETE_USER_SCRIPT: &str = r"
local n = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local d = redis.call('DEL', ARGV[1] .. m)
  n = n + d
  redis.call('PUBLISH', ARGV[2], m)
end
redis.call('DEL', KEYS[1])
return n
";

/// Delete one session and announce it on the revocation channel.
/// KEYS: session. ARGV: channel, store key.
const DELETE_SCRIPT: &str = r"
local n = redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return n
";

/// KEYS: doc, id set, new unique key or "", old unique key or ""; ARGV: id, doc,
/// "1" + expected doc or "0". 0 when the new unique key belongs to another id, 2 when the
/// stored doc is not the expected one (nothing written either way), else 1.
/// INCR with the window's expiry set by the first event.
const COUNT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

/// A document write with its index entries and member changes, atomic. KEYS: doc,
/// order (zset), sequence, summaries (hash), members (hash), then the new unique hashes
/// (nu), new multi sets (nm), old unique hashes (ou), old multi sets (om), the removed
/// members' index sets (nr), the added members' index sets (na). ARGV: id, doc, "1" +
/// expected doc or "0", nu, nm, ou, om, "1" + summary or "0", nr, na, then the new
/// unique fields, the old unique fields, the removed member ids, and (member id,
/// attributes) per added member. Returns {status, added, removed}; status 0: a new unique
/// entry belongs to another id; 2: the stored doc is not the expected one (nothing
/// written either way); else 1. Every key of a collection carries the collection's hash
/// tag: one slot on a Cluster.
const DOC_PUT_SCRIPT: &str = r"
local id = ARGV[1]
if string.sub(ARGV[3], 1, 1) == '1' then
  local current = redis.call('GET', KEYS[1])
  if (not current) or current ~= string.sub(ARGV[3], 2) then return {2, 0, 0} end
end
local nu, nm, ou, om = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local nr, na = tonumber(ARGV[9]), tonumber(ARGV[10])
local k, a = 5, 10
for i = 1, nu do
  local owner = redis.call('HGET', KEYS[k + i], ARGV[a + i])
  if owner and owner ~= id then return {0, 0, 0} end
end
for i = 1, ou do
  local key, field = KEYS[k + nu + nm + i], ARGV[a + nu + i]
  if redis.call('HGET', key, field) == id then redis.call('HDEL', key, field) end
end
for i = 1, om do redis.call('SREM', KEYS[k + nu + nm + ou + i], id) end
for i = 1, nu do redis.call('HSET', KEYS[k + i], ARGV[a + i], id) end
for i = 1, nm do redis.call('SADD', KEYS[k + nu + i], id) end
local added, removed = 0, 0
local mk, ma = k + nu + nm + ou + om, a + nu + ou
for i = 1, nr do
  removed = removed + redis.call('HDEL', KEYS[5], ARGV[ma + i])
  redis.call('SREM', KEYS[mk + i], id)
end
for i = 1, na do
  added = added + redis.call('HSET', KEYS[5], ARGV[ma + nr + 2 * i - 1], ARGV[ma + nr + 2 * i])
  redis.call('SADD', KEYS[mk + nr + i], id)
end
if string.sub(ARGV[8], 1, 1) == '1' then
  redis.call('HSET', KEYS[4], id, string.sub(ARGV[8], 2))
else
  redis.call('HDEL', KEYS[4], id)
end
if not redis.call('ZSCORE', KEYS[2], id) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), id)
end
redis.call('SET', KEYS[1], ARGV[2])
return {1, added, removed}
";

/// The summaries of the ids in a multi-valued index entry, in one round trip.
/// KEYS: the entry's set, the summaries hash.
const FIND_SUMMARIES_SCRIPT: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1])
local out = {}
for i = 1, #ids, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #ids) do chunk[#chunk + 1] = ids[j] end
  for _, s in ipairs(redis.call('HMGET', KEYS[2], unpack(chunk))) do
    if s then out[#out + 1] = s end
  end
end
return out
";

/// KEYS: doc, order, summaries, members, unique hashes (nu), multi sets; ARGV: id, nu,
/// unique fields. Returns whether the doc existed.
const DOC_DELETE_SCRIPT: &str = r"
local id, nu = ARGV[1], tonumber(ARGV[2])
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('DEL', KEYS[4])
for i = 1, nu do
  if redis.call('HGET', KEYS[4 + i], ARGV[2 + i]) == id then redis.call('HDEL', KEYS[4 + i], ARGV[2 + i]) end
end
for i = 5 + nu, #KEYS do redis.call('SREM', KEYS[i], id) end
return n
";

/// Redis-backed [`SessionStore`], shared by every gateway replica.
pub struct RedisStore {
    target: Target,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// How often the revocation subscription is PINGed.
    feed_keepalive: Duration,
    conn: Mutex<ConnState>,
}

/// Where the commands go.
enum Target {
    /// One server, at the URL's address.
    Direct(Client),
    /// The primary the Sentinels name.
    Sentinel(SentinelTarget),
    /// A Redis Cluster, found from the URL's node.
    Cluster(Box<ClusterTarget>),
}

struct ClusterTarget {
    client: ::redis::cluster::ClusterClient,
    /// The URL's node, for the revocation subscription: a Cluster delivers a PUBLISH
    /// made on any node to subscribers on every node.
    seed: Client,
    /// One connection attempt at a time; the others wait for its result.
    connecting: tokio::sync::Mutex<()>,
}

struct SentinelTarget {
    /// The master name the Sentinels monitor (the URL's host).
    master: String,
    /// Each Sentinel's address (for messages) and client.
    sentinels: Vec<(String, Client)>,
    /// The URL's settings (database, credentials, TLS); the address is the primary's.
    node: ::redis::ConnectionInfo,
    /// `rediss://`: the CA and client certificate for the data nodes.
    certs: Option<::redis::TlsCertificates>,
    /// One discovery at a time; the others wait for its result.
    discovering: tokio::sync::Mutex<()>,
    /// The primary found last ("host:port"), to notice a failover.
    primary: Mutex<Option<String>>,
}

/// A connection to the store: one server's (through a manager that reconnects), or a
/// Cluster's (routing each command to its slot's node, following MOVED and ASK).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(::redis::cluster_async::ClusterConnection),
}

impl ::redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> ::redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a ::redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> ::redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Default)]
struct ConnState {
    manager: Option<Conn>,
    /// When the current (or last) manager was built.
    built_at: Option<Instant>,
    /// Start of the current run of failures; `None` after a success.
    failing_since: Option<Instant>,
}

impl std::fmt::Debug for RedisStore {
    // The client holds the password: show only the address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("RedisStore");
        match &self.target {
            Target::Direct(client) => {
                d.field("addr", &client.get_connection_info().addr().to_string())
            }
            Target::Sentinel(s) => d.field("master", &s.master).field(
                "sentinels",
                &s.sentinels.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            ),
            Target::Cluster(c) => d.field(
                "cluster_seed",
                &c.seed.get_connection_info().addr().to_string(),
            ),
        };
        d.field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// How to reach Redis beyond its URL: credentials and TLS material. Never printed.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// ACL user (Redis 6+), overriding the URL's.
    pub username: Option<String>,
    /// Overrides the URL's.
    pub password: Option<String>,
    /// `rediss://`: CA certificates (PEM) trusted instead of the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// `rediss://`: client certificate chain and private key (PEM), for mutual TLS.
    pub client_tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Sentinel addresses (host, port): when given, the URL's host is the master name
    /// they monitor, and its port is not used.
    pub sentinels: Vec<(String, u16)>,
    /// ACL user for the Sentinels (Redis 6.2+).
    pub sentinel_username: Option<String>,
    /// The Sentinels' own password (`requirepass` in sentinel.conf).
    pub sentinel_password: Option<String>,
    /// A Redis Cluster: the URL names one of its nodes (database 0 only).
    pub cluster: bool,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.is_some())
            .field("client_tls", &self.client_tls.is_some())
            .field("sentinels", &self.sentinels)
            .field("cluster", &self.cluster)
            .field("sentinel_username", &self.sentinel_username)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl RedisStore {
    /// Validate `url` (`redis://[user][:pass@]host[:port][/db]`, `rediss://…` for TLS, or
    /// `redis+unix://`) and build the store without connecting. `password`, when given,
    /// overrides the URL's.
    pub fn new(url: &str, password: Option<String>) -> Result<Self, SessionError> {
        Self::connect_with(
            url,
            RedisOptions {
                password,
                ..RedisOptions::default()
            },
        )
    }

    /// As [`Self::new`], with an ACL user and, for `rediss://`, TLS material. TLS is
    /// native-tls over the system OpenSSL: TLS 1.2 at least, the server's certificate
    /// checked against the system CAs (or `ca_pem` alone) and its name against the URL's
    /// host (SNI sent). `#insecure` in the URL is refused.
    pub fn connect_with(url: &str, options: RedisOptions) -> Result<Self, SessionError> {
        // Error texts from the redis crate never echo the URL (which may hold a password).
        let mut info = url
            .into_connection_info()
            .map_err(|e| SessionError::Config(format!("invalid Redis URL: {e}")))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = options.username {
            settings = settings.set_username(user);
        }
        if let Some(pw) = options.password {
            settings = settings.set_password(pw);
        }
        info = info.set_redis_settings(settings);
        let tls = match info.addr() {
            ::redis::ConnectionAddr::TcpTls { insecure: true, .. } => {
                return Err(SessionError::Config(
                    "rediss:// with #insecure would not check Redis' certificate; trust its CA instead".into(),
                ))
            }
            ::redis::ConnectionAddr::TcpTls { .. } => true,
            _ if options.ca_pem.is_some() || options.client_tls.is_some() => {
                return Err(SessionError::Config(
                    "TLS certificates given for a Redis URL without TLS (use rediss://)".into(),
                ))
            }
            _ => false,
        };
        let certs = tls.then(|| ::redis::TlsCertificates {
            client_tls: options
                .client_tls
                .map(|(cert, key)| ::redis::ClientTlsConfig {
                    client_cert: cert,
                    client_key: key,
                }),
            root_cert: options.ca_pem,
        });
        let open = |info: ::redis::ConnectionInfo| {
            match &certs {
                Some(certs) => Client::build_with_tls(info, certs.clone()),
                None => Client::open(info),
            }
            .map_err(|e| SessionError::Config(format!("invalid Redis settings: {e}")))
        };
        let target = if options.cluster {
            if !options.sentinels.is_empty() {
                return Err(SessionError::Config(
                    "a Redis Cluster has no Sentinels: give one or the other".into(),
                ));
            }
            if info.redis_settings().db() != 0 {
                return Err(SessionError::Config(
                    "a Redis Cluster has only database 0".into(),
                ));
            }
            if certs
                .as_ref()
                .is_some_and(|c| c.root_cert.is_some() || c.client_tls.is_some())
            {
                return Err(SessionError::Config(
                    "Redis Cluster over TLS trusts the system's CAs only (no CA file or client certificate)".into(),
                ));
            }
            let client = ::redis::cluster::ClusterClientBuilder::new(vec![info.clone()])
                .connection_timeout(DEFAULT_CONNECT_TIMEOUT)
                .response_timeout(DEFAULT_RESPONSE_TIMEOUT)
                .build()
                .map_err(|e| {
                    SessionError::Config(format!("invalid Redis Cluster settings: {e}"))
                })?;
            Target::Cluster(Box::new(ClusterTarget {
                client,
                seed: open(info)?,
                connecting: tokio::sync::Mutex::new(()),
            }))
        } else if options.sentinels.is_empty() {
            Target::Direct(open(info)?)
        } else {
            let master =
                match info.addr() {
                    ::redis::ConnectionAddr::Tcp(host, _)
                    | ::redis::ConnectionAddr::TcpTls { host, .. } => host.clone(),
                    _ => return Err(SessionError::Config(
                        "Sentinel needs a redis:// or rediss:// URL whose host is the master name"
                            .into(),
                    )),
                };
            let mut sentinel_settings = ::redis::RedisConnectionInfo::default();
            if let Some(user) = options.sentinel_username {
                sentinel_settings = sentinel_settings.set_username(user);
            }
            if let Some(pw) = options.sentinel_password {
                sentinel_settings = sentinel_settings.set_password(pw);
            }
            let mut sentinels = Vec::with_capacity(options.sentinels.len());
            for (host, port) in options.sentinels {
                let addr = node_addr(tls, host.clone(), port);
                let client = open(
                    info.clone()
                        .set_addr(addr)
                        .set_redis_settings(sentinel_settings.clone()),
                )?;
                sentinels.push((format!("{host}:{port}"), client));
            }
            Target::Sentinel(SentinelTarget {
                master,
                sentinels,
                node: info,
                certs: certs.clone(),
                discovering: tokio::sync::Mutex::new(()),
                primary: Mutex::new(None),
            })
        };
        Ok(Self {
            target,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            feed_keepalive: DEFAULT_FEED_KEEPALIVE,
            conn: Mutex::new(ConnState::default()),
        })
    }

    /// Use another key prefix (e.g. several deployments, or tests, sharing one Redis).
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How often the revocation subscription is checked with PING (default 5 s).
    pub fn with_feed_keepalive(mut self, every: Duration) -> Self {
        self.feed_keepalive = every;
        self
    }

    /// Override the connect and response timeouts (before first use).
    pub fn with_timeouts(mut self, connect: Duration, response: Duration) -> Self {
        self.connect_timeout = connect;
        self.response_timeout = response;
        self
    }

    /// The key prefix in use.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// Full Redis key of a session (for tests and operators).
    pub fn session_key(&self, key: &str) -> String {
        format!("{}sess:{key}", self.prefix)
    }

    /// Pub/sub channel announcing deleted sessions (store keys).
    pub fn revocation_channel(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    fn user_key(&self, app: &str, name_id: &str) -> String {
        format!("{}user:{}", self.prefix, user_index_key(app, name_id))
    }

    // A collection's keys share the hash tag `{collection}`: one Cluster slot, so a
    // document and its index entries change in one atomic script.

    fn doc_key(&self, collection: &str, id: &str) -> String {
        format!("{}doc:{{{collection}}}:{}", self.prefix, hashed(id))
    }

    /// A document in the layout before indexes (no hash tag, the id hashed).
    fn legacy_doc_key(&self, collection: &str, id: &str) -> String {
        format!("{}doc:{collection}:{}", self.prefix, hashed(id))
    }

    /// The legacy layout's set of a collection's ids.
    fn legacy_ids_key(&self, collection: &str) -> String {
        format!("{}doc:{collection}:ids", self.prefix)
    }

    /// A document's members: one hash, member id -> other attributes. (Not matched by
    /// the index pattern `[um]:*` of a rebuild.)
    fn doc_members_key(&self, collection: &str, id: &str) -> String {
        format!("{}doc:{{{collection}}}:members:{}", self.prefix, hashed(id))
    }

    /// The collection's ids in creation order (score: a sequence number).
    fn doc_order_key(&self, collection: &str) -> String {
        format!("{}doc:{{{collection}}}:order", self.prefix)
    }

    fn doc_seq_key(&self, collection: &str) -> String {
        format!("{}doc:{{{collection}}}:seq", self.prefix)
    }

    /// The documents' summaries: one hash, id -> summary.
    fn doc_summary_key(&self, collection: &str) -> String {
        format!("{}doc:{{{collection}}}:summary", self.prefix)
    }

    /// A unique index: one hash, key -> id.
    fn doc_unique_key(&self, collection: &str, index: &str) -> String {
        format!("{}doc:{{{collection}}}:u:{index}", self.prefix)
    }

    /// One entry of a multi-valued index: a set of ids.
    fn doc_multi_key(&self, collection: &str, index: &str, key: &str) -> String {
        format!(
            "{}doc:{{{collection}}}:m:{index}:{}",
            self.prefix,
            hashed(key)
        )
    }

    fn pending_key(&self, request_id: &str) -> String {
        format!("{}pending:{}", self.prefix, hashed(request_id))
    }

    fn seen_key(&self, assertion_id: &str) -> String {
        format!("{}seen:{}", self.prefix, hashed(assertion_id))
    }

    // === connection handling ===

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            // Fail fast: every later call retries (and a refused connection is retried
            // once more in `query`), so retries inside the manager only add latency.
            .set_number_of_retries(0)
    }

    /// The connection in use; for a direct target one is built here (on first use, in
    /// the caller's runtime). `Ok(None)`: Sentinel must look for its primary, or a
    /// Cluster's topology be read, first.
    fn ready_manager(&self) -> Result<Option<Conn>, SessionError> {
        let mut st = self.conn.lock();
        if let Some(m) = &st.manager {
            return Ok(Some(m.clone()));
        }
        if st.built_at.is_some_and(|t| t.elapsed() < RECREATE_AFTER) {
            METRICS
                .store_failures
                .with_label_values(&["unreachable"])
                .inc();
            return Err(SessionError::Unavailable("reconnecting to Redis".into()));
        }
        let Target::Direct(client) = &self.target else {
            return Ok(None);
        };
        if st.built_at.replace(Instant::now()).is_some() {
            METRICS.store_reconnects.inc();
        }
        let m = ConnectionManager::new_lazy_with_config(client.clone(), self.manager_config())
            .map_err(|e| SessionError::Unavailable(e.to_string()))?;
        let m = Conn::Single(m);
        st.manager = Some(m.clone());
        Ok(Some(m))
    }

    /// The shared connection; with Sentinel or a Cluster, the first caller connects and
    /// the others wait for its answer.
    async fn manager(&self) -> Result<Conn, SessionError> {
        if let Some(m) = self.ready_manager()? {
            return Ok(m);
        }
        let _turn = match &self.target {
            Target::Sentinel(sentinel) => sentinel.discovering.lock().await,
            Target::Cluster(cluster) => cluster.connecting.lock().await,
            Target::Direct(_) => {
                return Err(SessionError::Unavailable("reconnecting to Redis".into()))
            }
        };
        if let Some(m) = self.ready_manager()? {
            return Ok(m);
        }
        if self.conn.lock().built_at.replace(Instant::now()).is_some() {
            METRICS.store_reconnects.inc();
        }
        let m = match &self.target {
            Target::Sentinel(sentinel) => {
                let client = sentinel
                    .discover(self.connect_timeout, self.response_timeout)
                    .await
                    .inspect_err(|_| {
                        METRICS
                            .store_failures
                            .with_label_values(&["no_primary"])
                            .inc()
                    })?;
                Conn::Single(
                    ConnectionManager::new_lazy_with_config(client, self.manager_config())
                        .map_err(|e| SessionError::Unavailable(e.to_string()))?,
                )
            }
            Target::Cluster(cluster) => {
                let config = ::redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(self.connect_timeout)
                    .set_response_timeout(self.response_timeout);
                let connect = cluster.client.get_async_connection_with_config(config);
                let deadline = self.connect_timeout + self.response_timeout;
                match tokio::time::timeout(deadline, connect).await {
                    Ok(Ok(c)) => Conn::Cluster(c),
                    Ok(Err(e)) => {
                        METRICS
                            .store_failures
                            .with_label_values(&[failure_kind(&e)])
                            .inc();
                        return Err(SessionError::Unavailable(format!("Redis Cluster: {e}")));
                    }
                    Err(_) => {
                        METRICS.store_failures.with_label_values(&["timeout"]).inc();
                        return Err(SessionError::Unavailable(format!(
                            "Redis Cluster did not answer within {deadline:?}"
                        )));
                    }
                }
            }
            Target::Direct(_) => {
                return Err(SessionError::Unavailable("reconnecting to Redis".into()))
            }
        };
        self.conn.lock().manager = Some(m.clone());
        Ok(m)
    }

    /// Cluster: a node to subscribe on: the URL's if it answers, else the first primary
    /// of the slot map (`CLUSTER SLOTS` through the Cluster connection) that does.
    async fn cluster_feed_client(&self, cluster: &ClusterTarget) -> Result<Client, SessionError> {
        let reachable = |client: Client| async move {
            let config = ::redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(Some(self.response_timeout));
            let ping = async {
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                ::redis::cmd("PING").query_async::<Value>(&mut conn).await
            };
            let deadline = self.connect_timeout + self.response_timeout;
            matches!(tokio::time::timeout(deadline, ping).await, Ok(Ok(_))).then_some(client)
        };
        if let Some(c) = reachable(cluster.seed.clone()).await {
            return Ok(c);
        }
        let mut slots = ::redis::cmd("CLUSTER");
        slots.arg("SLOTS");
        let map: Vec<Value> = self.query(&slots).await?;
        for range in map {
            // [start, end, [host, port, id…], replicas…]
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(primary)) = parts.get(2) else {
                continue;
            };
            let (Some(Value::BulkString(host)), Some(Value::Int(port))) =
                (primary.first(), primary.get(1))
            else {
                continue;
            };
            let (Ok(host), Ok(port)) = (std::str::from_utf8(host), u16::try_from(*port)) else {
                continue;
            };
            let info = cluster
                .seed
                .get_connection_info()
                .clone()
                .set_addr(node_addr(
                    matches!(
                        cluster.seed.get_connection_info().addr(),
                        ::redis::ConnectionAddr::TcpTls { .. }
                    ),
                    host.to_owned(),
                    port,
                ));
            let Ok(client) = Client::open(info) else {
                continue;
            };
            if let Some(c) = reachable(client).await {
                return Ok(c);
            }
        }
        Err(SessionError::Unavailable(
            "Redis Cluster: no node answers for the revocation feed".into(),
        ))
    }

    fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// Delete one session and announce it on the revocation channel (one slot: a
    /// script, on a Cluster too); 1 when it existed.
    async fn delete_announced(&self, key: &str) -> Result<usize, SessionError> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(DELETE_SCRIPT)
            .arg(1)
            .arg(self.session_key(key))
            .arg(self.revocation_channel())
            .arg(key);
        let n: i64 = self.query(&cmd).await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Cluster: add `key` to each user index, each in its own slot.
    async fn index_sessions(
        &self,
        indexes: &[String],
        key: &str,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        for index in indexes {
            let mut cmd = ::redis::cmd("EVAL");
            cmd.arg(INDEX_ADD_SCRIPT)
                .arg(1)
                .arg(index)
                .arg(key)
                .arg(ttl_ms(ttl));
            self.query::<i64>(&cmd).await?;
        }
        Ok(())
    }

    /// Cluster: an index's members whose session exists, and the others.
    async fn index_members(&self, index: &str) -> Result<(Vec<String>, Vec<String>), SessionError> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(index);
        let members: Vec<String> = self.query(&cmd).await?;
        let (mut live, mut dead) = (Vec::new(), Vec::new());
        for m in members {
            let mut exists = ::redis::cmd("EXISTS");
            exists.arg(self.session_key(&m));
            if self.query::<i64>(&exists).await? == 1 {
                live.push(m);
            } else {
                dead.push(m);
            }
        }
        Ok((live, dead))
    }

    /// Cluster: remove `members` from an index.
    async fn forget_members(&self, index: &str, members: &[String]) -> Result<(), SessionError> {
        if members.is_empty() {
            return Ok(());
        }
        let mut cmd = ::redis::cmd("SREM");
        cmd.arg(index).arg(members);
        self.query::<i64>(&cmd).await.map(|_| ())
    }

    /// A client for a connection of its own (the revocation subscription): the URL's
    /// server, or the primary the Sentinels name now.
    async fn client(&self) -> Result<Client, SessionError> {
        match &self.target {
            Target::Direct(client) => Ok(client.clone()),
            Target::Cluster(cluster) => self.cluster_feed_client(cluster).await,
            Target::Sentinel(sentinel) => {
                sentinel
                    .discover(self.connect_timeout, self.response_timeout)
                    .await
            }
        }
    }

    /// The node answered READONLY: it is no longer the primary. The next call looks for
    /// the primary again, at once (discovery checks the role, so this cannot loop).
    fn demoted(&self) {
        let mut st = self.conn.lock();
        if st.manager.take().is_some() {
            tracing::warn!("Redis answered READONLY (a replica now): looking for the primary");
            st.built_at = None;
        }
    }

    fn record_outcome(&self, reachable: bool) {
        let mut st = self.conn.lock();
        if reachable {
            st.failing_since = None;
            return;
        }
        let now = Instant::now();
        let since = *st.failing_since.get_or_insert(now);
        let built_long_ago = st
            .built_at
            .is_none_or(|t| now.duration_since(t) >= RECREATE_AFTER);
        // A Cluster connection is kept: it reconnects to each node by itself and reads the
        // slot map from any node it knows, where a new one would know the URL's node only
        // (dead, if that is the node that failed).
        let keep = matches!(st.manager, Some(Conn::Cluster(_)));
        if now.duration_since(since) >= RECREATE_AFTER
            && built_long_ago
            && st.manager.is_some()
            && !keep
        {
            tracing::warn!("Redis failing for over {RECREATE_AFTER:?}: rebuilding the connection");
            st.manager = None;
        }
    }

    /// Run one idempotent command (safe to send twice) under the deadline.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, SessionError> {
        self.run(cmd, true).await
    }

    /// Run one command that must not run twice (GETDEL, SET NX) under the deadline.
    async fn query_once<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, SessionError> {
        self.run(cmd, false).await
    }

    /// Run a pipeline of idempotent commands under the deadline.
    async fn pipeline(&self, pipe: &::redis::Pipeline) -> Result<(), SessionError> {
        self.query_pipeline(pipe).await
    }

    /// One read command on each document's member list, in one round trip; the replies
    /// in `ids` order.
    async fn per_member_list<T: FromRedisValue>(
        &self,
        command: &str,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<T>, SessionError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.cmd(command).arg(self.doc_members_key(collection, id));
        }
        self.query_pipeline(&pipe).await
    }

    /// A read-only or idempotent pipeline's replies.
    async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipe: &::redis::Pipeline,
    ) -> Result<T, SessionError> {
        self.deadline(self.send(true, |mut conn| async move {
            pipe.query_async::<T>(&mut conn).await
        }))
        .await
    }

    async fn run<T: FromRedisValue>(&self, cmd: &Cmd, idempotent: bool) -> Result<T, SessionError> {
        self.deadline(self.send(idempotent, |mut conn| async move {
            cmd.query_async::<T>(&mut conn).await
        }))
        .await
    }

    /// `request` within connect timeout + response timeout; the outcome feeds the
    /// rebuild rule.
    async fn deadline<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, SessionError>>,
    ) -> Result<T, SessionError> {
        let deadline = self.connect_timeout + self.response_timeout;
        let result = match tokio::time::timeout(deadline, request).await {
            Ok(r) => r,
            Err(_) => {
                METRICS.store_failures.with_label_values(&["timeout"]).inc();
                Err(SessionError::Unavailable(format!(
                    "Redis did not answer within {deadline:?}"
                )))
            }
        };
        // Corrupt data still proves Redis answered.
        self.record_outcome(!matches!(result, Err(SessionError::Unavailable(_))));
        result
    }

    /// Send a request (`attempt` on a connection), sending it again at most once per
    /// reason:
    /// - READONLY: a demoted primary refused it (it did not run): to the primary the
    ///   Sentinels name now;
    /// - refused: it was never sent, always safe; this is the first call after Redis
    ///   came back;
    /// - dropped (broken pipe, reset: Redis restarted, Sentinel closed its clients, or
    ///   the runtime that drove the old connection is gone): it may have run, so
    ///   idempotent requests only.
    async fn send<T, F, Fut>(&self, idempotent: bool, attempt: F) -> Result<T, SessionError>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let mut conn = self.manager().await?;
        let (mut after_readonly, mut after_drop) = (false, false);
        loop {
            match attempt(conn.clone()).await {
                Err(e) if is_readonly(&e) && !after_readonly => {
                    after_readonly = true;
                    self.demoted();
                    conn = self.manager().await?;
                }
                Err(e)
                    if !after_drop
                        && (e.is_connection_refusal()
                            || (idempotent && e.is_connection_dropped())) =>
                {
                    after_drop = true;
                    tracing::debug!(error = %e, "Redis connection lost: retrying once");
                }
                other => {
                    return other.map_err(|e| {
                        METRICS
                            .store_failures
                            .with_label_values(&[failure_kind(&e)])
                            .inc();
                        map_redis_error(e)
                    })
                }
            }
        }
    }
}

/// The `kind` label of `ssogate_store_failures_total` for a Redis error.
fn failure_kind(e: &RedisError) -> &'static str {
    if is_readonly(e) {
        "readonly"
    } else if e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
        "auth"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        "unreachable"
    } else if e.code() == Some("WRONGTYPE")
        || matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
    {
        "corrupt"
    } else {
        "server"
    }
}

/// The primary refused a write because it is a replica now (after a failover).
fn is_readonly(e: &RedisError) -> bool {
    e.code() == Some("READONLY")
}

/// A node's address, with TLS when the URL asked for it (the name is checked).
fn node_addr(tls: bool, host: String, port: u16) -> ::redis::ConnectionAddr {
    if tls {
        ::redis::ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ::redis::ConnectionAddr::Tcp(host, port)
    }
}

impl SentinelTarget {
    /// Ask every Sentinel at once for the primary's address, then take the first (in
    /// the configured order) whose node says `ROLE` master: a Sentinel that has not yet
    /// seen a failover names the old primary, now a replica or gone.
    async fn discover(
        &self,
        connect: Duration,
        response: Duration,
    ) -> Result<Client, SessionError> {
        let config = ::redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(response));
        let deadline = connect + response;
        let ask = |client: &Client| {
            let (client, config) = (client.clone(), config.clone());
            async move {
                let reply = async {
                    let mut conn = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    ::redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(&self.master)
                        .query_async::<Option<(String, u16)>>(&mut conn)
                        .await
                };
                match tokio::time::timeout(deadline, reply).await {
                    Ok(Ok(Some(addr))) => Ok(addr),
                    Ok(Ok(None)) => Err(format!(
                        "does not monitor a master named \"{}\"",
                        self.master
                    )),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {deadline:?}")),
                }
            }
        };
        let answers =
            futures_util::future::join_all(self.sentinels.iter().map(|(_, c)| ask(c))).await;
        let mut problems = Vec::new();
        let mut tried = Vec::new();
        for ((sentinel, _), answer) in self.sentinels.iter().zip(answers) {
            let (host, port) = match answer {
                Ok(addr) => addr,
                Err(e) => {
                    problems.push(format!("Sentinel {sentinel}: {e}"));
                    continue;
                }
            };
            let name = format!("{host}:{port}");
            if tried.contains(&name) {
                continue;
            }
            tried.push(name.clone());
            let tls = matches!(self.node.addr(), ::redis::ConnectionAddr::TcpTls { .. });
            let info = self.node.clone().set_addr(node_addr(tls, host, port));
            let client = match &self.certs {
                Some(certs) => Client::build_with_tls(info, certs.clone()),
                None => Client::open(info),
            }
            .map_err(|e| SessionError::Config(format!("invalid Redis settings: {e}")))?;
            let role = async {
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                ::redis::cmd("ROLE").query_async::<Value>(&mut conn).await
            };
            match tokio::time::timeout(deadline, role).await {
                Ok(Ok(Value::Array(parts))) if matches!(parts.first(), Some(Value::BulkString(r)) if r == b"master") =>
                {
                    let previous = self.primary.lock().replace(name.clone());
                    match previous {
                        Some(p) if p != name => {
                            METRICS.store_failovers.inc();
                            tracing::warn!(
                            master = %self.master, from = %p, to = %name,
                            "Redis Sentinel: the primary changed (failover)"
                            )
                        }
                        None => {
                            tracing::info!(master = %self.master, primary = %name, "Redis Sentinel: primary found")
                        }
                        Some(_) => {}
                    }
                    return Ok(client);
                }
                Ok(Ok(_)) => problems.push(format!(
                    "Sentinel {sentinel} names {name}, which is not a primary (yet)"
                )),
                Ok(Err(e)) => {
                    problems.push(format!("primary {name} (from Sentinel {sentinel}): {e}"))
                }
                Err(_) => problems.push(format!(
                    "primary {name} (from Sentinel {sentinel}): no answer within {deadline:?}"
                )),
            }
        }
        Err(SessionError::Unavailable(format!(
            "no primary for \"{}\": {}",
            self.master,
            problems.join("; ")
        )))
    }
}

/// The entries a document write must claim (every unique one, the new multi ones) and
/// release (the ones the new version no longer holds).
fn changed_entries(index: &DocIndex, previous: &DocIndex) -> (DocIndex, DocIndex) {
    use std::collections::HashSet;
    let set = |v: &[(String, String)]| v.iter().cloned().collect::<HashSet<_>>();
    let (new_unique, new_multi) = (set(&index.unique), set(&index.multi));
    let old_multi = set(&previous.multi);
    (
        DocIndex {
            unique: index.unique.clone(),
            multi: index
                .multi
                .iter()
                .filter(|e| !old_multi.contains(*e))
                .cloned()
                .collect(),
            summary: index.summary.clone(),
        },
        DocIndex {
            unique: previous
                .unique
                .iter()
                .filter(|e| !new_unique.contains(*e))
                .cloned()
                .collect(),
            multi: previous
                .multi
                .iter()
                .filter(|e| !new_multi.contains(*e))
                .cloned()
                .collect(),
            summary: None,
        },
    )
}

fn map_redis_error(e: RedisError) -> SessionError {
    if e.code() == Some("WRONGTYPE")
        || matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
    {
        SessionError::Corrupt
    } else {
        SessionError::Unavailable(e.to_string())
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(clamp_ttl(ttl).as_millis()).unwrap_or(u64::MAX)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, SessionError> {
    serde_json::to_vec(v).map_err(|e| SessionError::Encode(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(
    bytes: Option<Vec<u8>>,
) -> Result<Option<T>, SessionError> {
    match bytes {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|_| SessionError::Corrupt),
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn put_session(
        &self,
        key: &str,
        rec: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let mut cmd = ::redis::cmd("EVAL");
        let users: Vec<String> = session_user_names(&rec.identity)
            .map(|n| self.user_key(&rec.app, &n))
            .collect();
        if self.is_cluster() {
            // The keys live in different slots: the indexes first, so that a session is
            // never stored without the entries that let "sign this user out" find it.
            self.index_sessions(&users, key, ttl).await?;
            let mut set = ::redis::cmd("SET");
            set.arg(self.session_key(key))
                .arg(to_json(rec)?)
                .arg("PX")
                .arg(ttl_ms(ttl));
            return self.query::<()>(&set).await;
        }
        cmd.arg(PUT_SCRIPT)
            .arg(1 + users.len())
            .arg(self.session_key(key))
            .arg(&users)
            .arg(to_json(rec)?)
            .arg(ttl_ms(ttl))
            .arg(key);
        self.query::<i64>(&cmd).await.map(|_| ())
    }

    async fn get_session(&self, key: &str) -> Result<Option<SessionRecord>, SessionError> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(self.session_key(key));
        from_json(self.query::<Option<Vec<u8>>>(&cmd).await?)
    }

    async fn touch_session(
        &self,
        key: &str,
        rec: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let mut cmd = ::redis::cmd("EVAL");
        let users: Vec<String> = session_user_names(&rec.identity)
            .map(|n| self.user_key(&rec.app, &n))
            .collect();
        if self.is_cluster() {
            // Indexes first (as in put_session); SET XX does not bring back a session
            // deleted meanwhile (a member left in an index is pruned when read).
            self.index_sessions(&users, key, ttl).await?;
            let mut set = ::redis::cmd("SET");
            set.arg(self.session_key(key))
                .arg(to_json(rec)?)
                .arg("XX")
                .arg("PX")
                .arg(ttl_ms(ttl));
            return self.query::<Option<String>>(&set).await.map(|_| ());
        }
        cmd.arg(TOUCH_SCRIPT)
            .arg(1 + users.len())
            .arg(self.session_key(key))
            .arg(&users)
            .arg(to_json(rec)?)
            .arg(ttl_ms(ttl))
            .arg(key);
        self.query::<i64>(&cmd).await.map(|_| ())
    }

    async fn delete_session(&self, key: &str) -> Result<(), SessionError> {
        // The index entry is left behind; `user_sessions` prunes dead members.
        self.delete_announced(key).await.map(|_| ())
    }

    async fn user_sessions(&self, app: &str, name_id: &str) -> Result<Vec<String>, SessionError> {
        if self.is_cluster() {
            let index = self.user_key(app, name_id);
            let (live, dead) = self.index_members(&index).await?;
            self.forget_members(&index, &dead).await?;
            return Ok(live);
        }
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(USER_SESSIONS_SCRIPT)
            .arg(1)
            .arg(self.user_key(app, name_id))
            .arg(format!("{}sess:", self.prefix));
        self.query(&cmd).await
    }

    async fn delete_user_sessions(&self, app: &str, name_id: &str) -> Result<usize, SessionError> {
        if self.is_cluster() {
            // One slot per session: each deleted and announced in turn, then dropped from
            // the index (only those: a session added meanwhile stays findable).
            let index = self.user_key(app, name_id);
            let mut members = ::redis::cmd("SMEMBERS");
            members.arg(&index);
            let members: Vec<String> = self.query(&members).await?;
            let mut n = 0;
            for m in &members {
                n += self.delete_announced(m).await?;
            }
            self.forget_members(&index, &members).await?;
            return Ok(n);
        }
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(DELETE_USER_SCRIPT)
            .arg(1)
            .arg(self.user_key(app, name_id))
            .arg(format!("{}sess:", self.prefix))
            .arg(self.revocation_channel());
        let n: i64 = self.query(&cmd).await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn put_pending(
        &self,
        request_id: &str,
        p: &PendingLogin,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.pending_key(request_id))
            .arg(to_json(p)?)
            .arg("PX")
            .arg(ttl_ms(ttl));
        self.query::<()>(&cmd).await
    }

    async fn take_pending(&self, request_id: &str) -> Result<Option<PendingLogin>, SessionError> {
        // GETDEL (Redis >= 6.2): atomic, so of two concurrent takers only one wins.
        let mut cmd = ::redis::cmd("GETDEL");
        cmd.arg(self.pending_key(request_id));
        from_json(self.query_once::<Option<Vec<u8>>>(&cmd).await?)
    }

    async fn count_event(&self, key: &str, window: Duration) -> Result<u64, SessionError> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(COUNT_SCRIPT)
            .arg(1)
            .arg(format!("{}count:{}", self.prefix, hashed(key)))
            .arg(ttl_ms(window));
        let n: i64 = self.query_once(&cmd).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn remember_assertion(
        &self,
        assertion_id: &str,
        ttl: Duration,
    ) -> Result<bool, SessionError> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.seen_key(assertion_id))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl));
        match self.query_once::<Value>(&cmd).await? {
            Value::Nil => Ok(false),
            _ => Ok(true),
        }
    }

    async fn doc_update(
        &self,
        collection: &str,
        id: &str,
        doc: &[u8],
        index: &DocIndex,
        previous: &DocIndex,
        expected: Option<&[u8]>,
        members: &MemberChange,
    ) -> Result<DocUpdate, SessionError> {
        let expected_arg = match expected {
            Some(e) => [b"1".as_slice(), e].concat(),
            None => b"0".to_vec(),
        };
        // Only what changes travels: entries kept from the previous version need no work.
        // New unique entries are all sent: they are checked for conflicts.
        let (index, previous) = changed_entries(index, previous);
        let (index, previous) = (&index, &previous);
        let mut cmd = ::redis::cmd("EVAL");
        let keys = 5
            + index.unique.len()
            + index.multi.len()
            + previous.unique.len()
            + previous.multi.len()
            + members.remove.len()
            + members.add.len();
        cmd.arg(DOC_PUT_SCRIPT)
            .arg(keys)
            .arg(self.doc_key(collection, id))
            .arg(self.doc_order_key(collection))
            .arg(self.doc_seq_key(collection))
            .arg(self.doc_summary_key(collection))
            .arg(self.doc_members_key(collection, id));
        for i in [index, previous] {
            for (name, _) in &i.unique {
                cmd.arg(self.doc_unique_key(collection, name));
            }
            for (name, key) in &i.multi {
                cmd.arg(self.doc_multi_key(collection, name, key));
            }
        }
        for m in members
            .remove
            .iter()
            .chain(members.add.iter().map(|(m, _)| m))
        {
            cmd.arg(self.doc_multi_key(collection, &members.index, m));
        }
        cmd.arg(id)
            .arg(doc)
            .arg(expected_arg)
            .arg(index.unique.len())
            .arg(index.multi.len())
            .arg(previous.unique.len())
            .arg(previous.multi.len())
            .arg(match &index.summary {
                Some(summary) => format!("1{summary}"),
                None => "0".to_string(),
            })
            .arg(members.remove.len())
            .arg(members.add.len());
        for (_, key) in index.unique.iter().chain(&previous.unique) {
            cmd.arg(key);
        }
        for m in &members.remove {
            cmd.arg(m);
        }
        for (m, attrs) in &members.add {
            cmd.arg(m).arg(attrs);
        }
        let (n, added, removed): (i64, usize, usize) = self.query(&cmd).await?;
        Ok(DocUpdate {
            write: match n {
                1 => DocWrite::Written,
                2 => DocWrite::Stale,
                _ => DocWrite::Conflict,
            },
            added,
            removed,
        })
    }

    async fn doc_members(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, SessionError> {
        let mut cmd = ::redis::cmd("HGETALL");
        cmd.arg(self.doc_members_key(collection, id));
        self.query(&cmd).await
    }

    async fn doc_member_counts(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<usize>, SessionError> {
        self.per_member_list("HLEN", collection, ids).await
    }

    async fn doc_members_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Vec<(String, String)>>, SessionError> {
        self.per_member_list("HGETALL", collection, ids).await
    }

    async fn doc_get(&self, collection: &str, id: &str) -> Result<Option<Vec<u8>>, SessionError> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(self.doc_key(collection, id));
        self.query(&cmd).await
    }

    async fn doc_get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, SessionError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = ::redis::cmd("MGET");
        for id in ids {
            cmd.arg(self.doc_key(collection, id));
        }
        self.query(&cmd).await
    }

    async fn doc_delete(
        &self,
        collection: &str,
        id: &str,
        index: &DocIndex,
    ) -> Result<bool, SessionError> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(DOC_DELETE_SCRIPT)
            .arg(4 + index.unique.len() + index.multi.len())
            .arg(self.doc_key(collection, id))
            .arg(self.doc_order_key(collection))
            .arg(self.doc_summary_key(collection))
            .arg(self.doc_members_key(collection, id));
        for (name, _) in &index.unique {
            cmd.arg(self.doc_unique_key(collection, name));
        }
        for (name, key) in &index.multi {
            cmd.arg(self.doc_multi_key(collection, name, key));
        }
        cmd.arg(id).arg(index.unique.len());
        for (_, key) in &index.unique {
            cmd.arg(key);
        }
        let n: i64 = self.query(&cmd).await?;
        Ok(n > 0)
    }

    async fn doc_find(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Option<String>, SessionError> {
        let mut cmd = ::redis::cmd("HGET");
        cmd.arg(self.doc_unique_key(collection, index)).arg(key);
        self.query(&cmd).await
    }

    async fn doc_find_all(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<String>, SessionError> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(self.doc_multi_key(collection, index, key));
        self.query(&cmd).await
    }

    async fn doc_summaries(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<String>>, SessionError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = ::redis::cmd("HMGET");
        cmd.arg(self.doc_summary_key(collection));
        for id in ids {
            cmd.arg(id);
        }
        self.query(&cmd).await
    }

    async fn doc_find_summaries(
        &self,
        collection: &str,
        index: &str,
        key: &str,
    ) -> Result<Vec<String>, SessionError> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(FIND_SUMMARIES_SCRIPT)
            .arg(2)
            .arg(self.doc_multi_key(collection, index, key))
            .arg(self.doc_summary_key(collection));
        self.query(&cmd).await
    }

    async fn doc_count(&self, collection: &str) -> Result<usize, SessionError> {
        let mut cmd = ::redis::cmd("ZCARD");
        cmd.arg(self.doc_order_key(collection));
        self.query(&cmd).await
    }

    async fn doc_page(
        &self,
        collection: &str,
        start: usize,
        count: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, SessionError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = ::redis::cmd("ZRANGE");
        cmd.arg(self.doc_order_key(collection))
            .arg(start)
            .arg(start + count - 1);
        let ids: Vec<String> = self.query(&cmd).await?;
        let docs = self.doc_get_many(collection, &ids).await?;
        Ok(ids
            .into_iter()
            .zip(docs)
            .filter_map(|(id, d)| d.map(|d| (id, d)))
            .collect())
    }

    async fn doc_reindex(
        &self,
        collection: &str,
        entries: &[(String, DocIndex)],
    ) -> Result<usize, SessionError> {
        // Drop every index key of the collection, then claim the entries afresh. Not one
        // atomic step: run it as maintenance (`ssogate scim reindex`).
        // One SCAN step per script, on the node holding the collection's slot (its
        // order key names the slot; on a Cluster a plain SCAN would go to any node).
        let pattern = format!("{}doc:{{{collection}}}:[um]:*", self.prefix);
        let mut cursor = "0".to_string();
        loop {
            let mut cmd = ::redis::cmd("EVAL");
            cmd.arg(SCAN_DELETE_SCRIPT)
                .arg(1)
                .arg(self.doc_order_key(collection))
                .arg(&cursor)
                .arg(&pattern);
            cursor = self.query(&cmd).await?;
            if cursor == "0" {
                break;
            }
        }
        let mut del = ::redis::cmd("DEL");
        del.arg(self.doc_summary_key(collection));
        self.query::<i64>(&del).await?;
        let mut n = 0;
        for chunk in entries.chunks(200) {
            let mut pipe = ::redis::pipe();
            for (id, index) in chunk {
                if let Some(summary) = &index.summary {
                    pipe.cmd("HSET")
                        .arg(self.doc_summary_key(collection))
                        .arg(id)
                        .arg(summary)
                        .ignore();
                }
                for (name, key) in &index.unique {
                    pipe.cmd("HSET")
                        .arg(self.doc_unique_key(collection, name))
                        .arg(key)
                        .arg(id)
                        .ignore();
                    n += 1;
                }
                for (name, key) in &index.multi {
                    pipe.cmd("SADD")
                        .arg(self.doc_multi_key(collection, name, key))
                        .arg(id)
                        .ignore();
                    n += 1;
                }
            }
            self.pipeline(&pipe).await?;
        }
        Ok(n)
    }

    async fn legacy_docs(
        &self,
        collection: &str,
        count: usize,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, SessionError> {
        let mut cmd = ::redis::cmd("SRANDMEMBER");
        cmd.arg(self.legacy_ids_key(collection)).arg(count.max(1));
        let ids: Vec<String> = self.query(&cmd).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut get = ::redis::cmd("MGET");
        for id in &ids {
            get.arg(self.legacy_doc_key(collection, id));
        }
        let docs: Vec<Option<Vec<u8>>> = self.query(&get).await?;
        Ok(ids.into_iter().zip(docs).collect())
    }

    async fn legacy_forget(&self, collection: &str, ids: &[String]) -> Result<(), SessionError> {
        if !ids.is_empty() {
            let mut pipe = ::redis::pipe();
            pipe.cmd("SREM")
                .arg(self.legacy_ids_key(collection))
                .arg(ids)
                .ignore();
            for id in ids {
                pipe.cmd("DEL")
                    .arg(self.legacy_doc_key(collection, id))
                    .ignore();
            }
            self.pipeline(&pipe).await?;
        }
        let mut card = ::redis::cmd("SCARD");
        card.arg(self.legacy_ids_key(collection));
        let left: i64 = self.query(&card).await?;
        // The legacy layout never ran on a Cluster (it had no hash tags), where a plain
        // SCAN would visit one node only.
        if left > 0 || self.is_cluster() {
            return Ok(());
        }
        let pattern = format!("{}doc:{collection}:unique:*", self.prefix);
        let mut cursor = 0u64;
        loop {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<String>) = self.query(&scan).await?;
            if !keys.is_empty() {
                let mut del = ::redis::cmd("DEL");
                del.arg(&keys);
                self.query::<i64>(&del).await?;
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }

    async fn ping(&self) -> Result<(), SessionError> {
        self.query::<String>(&::redis::cmd("PING"))
            .await
            .map(|_| ())
    }

    async fn follow_revocations(
        &self,
        on_event: &(dyn Fn(Revocation) + Send + Sync),
    ) -> Result<(), SessionError> {
        use futures_util::StreamExt;
        let deadline = self.connect_timeout + self.response_timeout;
        let subscribe = async {
            let client = self.client().await?;
            let mut pubsub = client.get_async_pubsub().await.map_err(map_redis_error)?;
            pubsub
                .subscribe(self.revocation_channel())
                .await
                .map_err(map_redis_error)?;
            Ok::<_, SessionError>(pubsub)
        };
        let pubsub = match tokio::time::timeout(deadline, subscribe).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(SessionError::Unavailable(format!(
                    "Redis did not accept the subscription within {deadline:?}"
                )))
            }
        };
        on_event(Revocation::Subscribed);
        // A connection dropped without a reset (a firewall's idle timeout, a cut link)
        // looks like a quiet channel: PING it, and give up on the feed (the manager then
        // stops trusting its cache) when no answer comes.
        let (mut sink, mut messages) = pubsub.split();
        let mut keepalive = tokio::time::interval(self.feed_keepalive);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.tick().await;
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) => {
                        if let Ok(key) = msg.get_payload::<String>() {
                            on_event(Revocation::Session(key));
                        }
                    }
                    None => {
                        return Err(SessionError::Unavailable(
                            "revocation subscription ended".into(),
                        ))
                    }
                },
                _ = keepalive.tick() => {
                    match tokio::time::timeout(self.response_timeout, sink.ping::<::redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            return Err(SessionError::Unavailable(format!(
                                "revocation subscription: PING failed ({e})"
                            )))
                        }
                        Err(_) => {
                            return Err(SessionError::Unavailable(format!(
                                "revocation subscription: no answer to PING within {:?}",
                                self.response_timeout
                            )))
                        }
                    }
                }
            }
        }
    }
}
