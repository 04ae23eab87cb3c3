//! A throwaway `redis-server` on a free loopback port, for tests.
//!
//! `TestRedis::start()` runs one (no persistence, temp dir); `stop`/`restart` (same
//! port)/`pause`/`resume` simulate outages; `Drop` kills it. A watchdog shell also kills
//! it if the test process dies first, so even the shared instance behind `shared_url()`
//! (a static, never dropped) does not outlive the test binary.
//!
//! `shared_url()` returns `SSOGATE_TEST_REDIS_URL` when set, else the URL of one
//! instance shared by the whole test binary. Set `SSOGATE_TEST_REDIS_SERVER` to use
//! another `redis-server` binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step should panic with its message"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const ENV_URL: &str = "SSOGATE_TEST_REDIS_URL";
const ENV_SERVER: &str = "SSOGATE_TEST_REDIS_SERVER";
const DEFAULT_SERVER: &str = "/usr/bin/redis-server";

pub use super::ports::free_port;

/// `SSOGATE_TEST_REDIS_URL`, or the URL of a redis-server shared by this test binary.
pub fn shared_url() -> String {
    if let Ok(url) = std::env::var(ENV_URL) {
        if !url.is_empty() {
            return url;
        }
    }
    static SHARED: OnceLock<TestRedis> = OnceLock::new();
    SHARED.get_or_init(TestRedis::start).url()
}

pub struct TestRedis {
    port: u16,
    dir: tempfile::TempDir,
    /// Arguments after the defaults (`--replicaof …`), or, with `config`, after the
    /// config file (`--sentinel`).
    extra: Vec<String>,
    /// A config file written into `dir` before the first start (a Sentinel rewrites it).
    config: Option<String>,
    child: Mutex<Option<Child>>,
}

impl TestRedis {
    /// Start on a free port (retrying if another process grabs the port first).
    pub fn start() -> TestRedis {
        TestRedis::start_with(None, &[])
    }

    /// Start on a free port with a config file's text and extra arguments.
    pub fn start_with(config: Option<String>, extra: &[&str]) -> TestRedis {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match TestRedis::try_start(port, config.clone(), extra) {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    /// Start on a given port (e.g. one a store was already pointed at).
    pub fn start_on(port: u16) -> TestRedis {
        TestRedis::try_start(port, None, &[])
            .unwrap_or_else(|e| panic!("redis-server on {port}: {e}"))
    }

    fn try_start(port: u16, config: Option<String>, extra: &[&str]) -> Result<TestRedis, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        if let Some(text) = &config {
            std::fs::write(dir.path().join("redis.conf"), text).map_err(|e| e.to_string())?;
        }
        let r = TestRedis {
            port,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            config,
            child: Mutex::new(None),
        };
        r.spawn()?;
        Ok(r)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&self) -> Result<(), String> {
        let server = std::env::var(ENV_SERVER).unwrap_or_else(|_| DEFAULT_SERVER.to_string());
        let mut command = Command::new(&server);
        if self.config.is_some() {
            command.arg(self.dir.path().join("redis.conf"));
        }
        let mut child = command
            .args(&self.extra)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{server}: {e}"))?;
        // Watchdog: kill redis when this test process goes away.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; \
                 kill -9 {pid} 2>/dev/null",
                me = std::process::id(),
                pid = child.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(self.port) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                return Err(format!("exited with {status}: {log}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("not answering PING after 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        *self.child.lock().unwrap() = Some(child);
        Ok(())
    }

    /// Kill the server (connections drop, the port closes). Idempotent.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port, empty (no persistence).
    pub fn restart(&self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("redis-server restart on {}: {e}", self.port);
        }
    }

    /// Is the server running (not stopped)?
    pub fn running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    /// Start again on the same port after `stop` (a no-op while it runs).
    pub fn start_again(&self) {
        if self.child.lock().unwrap().is_none() {
            if let Err(e) = self.spawn() {
                panic!("redis-server start on {}: {e}", self.port);
            }
        }
    }

    /// Freeze the server (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Undo `pause` (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = self.child.lock().unwrap().as_ref() {
            let ok = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "kill {sig} failed");
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    // A server behind a password answers too: it is up.
    let mut buf = [0u8; 7];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
}

/// The master name the Sentinels of a [`SentinelSet`] monitor.
pub const MASTER: &str = "ssogate-test";

/// Redis with Sentinel on loopback: a primary, one replica and three Sentinels (quorum
/// 2, a node is down after 1 s unanswered), all throwaway.
pub struct SentinelSet {
    /// The two data nodes; which one is the primary changes with failovers.
    pub nodes: [TestRedis; 2],
    pub sentinels: Vec<TestRedis>,
    /// The Sentinels' `requirepass`, if any.
    pub sentinel_password: Option<String>,
    /// With TLS: each data node's and each Sentinel's TLS port (same order as `nodes`
    /// and `sentinels`); their plain ports stay open for the test's own commands.
    pub tls_ports: Option<(Vec<u16>, Vec<u16>)>,
}

impl SentinelSet {
    pub fn start() -> SentinelSet {
        SentinelSet::start_with("", "", None)
    }

    /// With `data_config` lines in the data nodes' config (ACL users), `sentinel_config`
    /// lines in the Sentinels', and `requirepass` on the Sentinels when given (the
    /// data nodes' default user stays open: replication and monitoring use it).
    pub fn start_with(
        data_config: &str,
        sentinel_config: &str,
        sentinel_password: Option<&str>,
    ) -> SentinelSet {
        let data = (!data_config.is_empty()).then(|| data_config.to_string());
        let primary = TestRedis::start_with(data.clone(), &[]);
        let port = primary.port().to_string();
        let replica = TestRedis::start_with(data, &["--replicaof", "127.0.0.1", &port]);
        let config = format!(
            "sentinel monitor {MASTER} 127.0.0.1 {port} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 5000\n\
             sentinel parallel-syncs {MASTER} 1\n{sentinel_config}\n"
        ) + &sentinel_password
            .map(|p| format!("requirepass \"{p}\"\n"))
            .unwrap_or_default();
        let sentinels = (0..3)
            .map(|_| TestRedis::start_with(Some(config.clone()), &["--sentinel"]))
            .collect();
        let set = SentinelSet {
            nodes: [primary, replica],
            sentinels,
            sentinel_password: sentinel_password.map(str::to_owned),
            tls_ports: None,
        };
        set.wait_until_formed();
        set
    }

    /// Everything also over TLS with `pki`'s server certificate (which names
    /// "localhost"): replication and Sentinel's links use TLS, and the Sentinels name the
    /// nodes "localhost" (`announce-hostnames`), so that a client checking the name
    /// against the certificate can connect to the primary they name.
    pub fn start_tls(pki: &super::tls::Pki) -> SentinelSet {
        let p = |n: &str| pki.path(n).to_str().unwrap().to_string();
        let tls_args = |port: u16| {
            vec![
                "--tls-port".to_string(),
                port.to_string(),
                "--tls-cert-file".into(),
                p("server.pem"),
                "--tls-key-file".into(),
                p("server.key"),
                "--tls-ca-cert-file".into(),
                p("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
                "--tls-replication".into(),
                "yes".into(),
            ]
        };
        let data_tls: Vec<u16> = vec![free_port(), free_port()];
        let args = |port: u16, extra: &[&str]| {
            let mut a = tls_args(port);
            a.extend(["--replica-announce-ip".to_string(), "localhost".to_string()]);
            a.extend(extra.iter().map(|s| s.to_string()));
            a
        };
        let primary_args = args(data_tls[0], &[]);
        let primary = TestRedis::start_with(
            None,
            &primary_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let first = data_tls[0].to_string();
        let replica_args = args(data_tls[1], &["--replicaof", "localhost", &first]);
        let replica = TestRedis::start_with(
            None,
            &replica_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let sentinel_tls: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let sentinels = sentinel_tls
            .iter()
            .map(|port| {
                let mut config = format!(
                    "sentinel resolve-hostnames yes\n\
                     sentinel announce-hostnames yes\n\
                     sentinel monitor {MASTER} localhost {first} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 5000\n"
                );
                // Sentinel takes its TLS settings from the config file as well.
                for pair in tls_args(*port).chunks(2) {
                    config.push_str(&format!("{} \"{}\"\n", &pair[0][2..], pair[1]));
                }
                TestRedis::start_with(Some(config), &["--sentinel"])
            })
            .collect();
        let set = SentinelSet {
            nodes: [primary, replica],
            sentinels,
            sentinel_password: None,
            tls_ports: Some((data_tls, sentinel_tls)),
        };
        set.wait_until_formed();
        set
    }

    /// The store's URL: the host is the master name.
    pub fn url(&self) -> String {
        format!("redis://{MASTER}/0")
    }

    pub fn sentinel_addrs(&self) -> Vec<(String, u16)> {
        match &self.tls_ports {
            Some((_, sentinels)) => sentinels
                .iter()
                .map(|p| ("localhost".to_string(), *p))
                .collect(),
            None => self
                .sentinels
                .iter()
                .map(|s| ("127.0.0.1".to_string(), s.port()))
                .collect(),
        }
    }

    /// The plain port of the node Sentinel names by `port` (its TLS port under TLS).
    fn node_port(&self, port: u16) -> u16 {
        match &self.tls_ports {
            Some((data, _)) => data
                .iter()
                .position(|p| *p == port)
                .map_or(port, |i| self.nodes[i].port()),
            None => port,
        }
    }

    /// Every Sentinel knows the replica and the two other Sentinels (only then can they
    /// agree on a failover), and the replica is in sync.
    pub fn wait_until_formed(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let formed = self.sentinels.iter().all(|s| {
                let info = self.sentinel_command(s.port(), &["SENTINEL", "MASTER", MASTER]);
                field(&info, "num-other-sentinels") == Some("2")
                    && field(&info, "num-slaves") == Some("1")
            });
            let primary = self.primary_port();
            let synced = self.nodes.iter().any(|n| {
                Some(n.port()) != primary
                    && command(n.port(), &["INFO", "replication"]).contains("master_link_status:up")
            });
            if formed && synced {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Sentinel set not formed within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The primary's port as a majority of the Sentinels name it (they learn of a
    /// failover one after the other); `None` while they disagree.
    pub fn primary_port(&self) -> Option<u16> {
        let named: Vec<u16> = self
            .sentinels
            .iter()
            .filter_map(|s| {
                let reply = self
                    .sentinel_command(s.port(), &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
                reply.lines().nth(1)?.trim().parse().ok()
            })
            .collect();
        let majority = self.sentinels.len() / 2 + 1;
        named
            .iter()
            .copied()
            .find(|p| named.iter().filter(|q| *q == p).count() >= majority)
            .map(|p| self.node_port(p))
    }

    /// `command` to the Sentinel on `port`, authenticated when they have a password.
    pub fn sentinel_command(&self, port: u16, args: &[&str]) -> String {
        command_as(port, self.sentinel_password.as_deref(), args)
    }

    /// The data node that is the primary now.
    pub fn primary(&self) -> &TestRedis {
        let port = self.primary_port().expect("a Sentinel names the primary");
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .expect("the primary is one of the nodes")
    }
}

/// One command over a fresh connection, the reply as text (RESP, lines of values); empty
/// when the server does not answer.
pub fn command(port: u16, args: &[&str]) -> String {
    command_as(port, None, args)
}

/// `command` after `AUTH password` on the same connection (its "OK" left out).
pub fn command_as(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    let encode = |args: &[&str]| {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        req
    };
    let mut req = password.map(|p| encode(&["AUTH", p])).unwrap_or_default();
    req.push_str(&encode(args));
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    // Read until the reply stops coming (these replies are small and arrive at once).
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            }
        }
    }
    String::from_utf8_lossy(&out)
        .lines()
        .skip(usize::from(password.is_some()))
        .filter(|l| !l.starts_with('*') && !l.starts_with('$'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// In a flat "name\nvalue\n…" reply, the value after `name`.
fn field<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = reply.lines();
    while let Some(l) = lines.next() {
        if l == name {
            return lines.next();
        }
    }
    None
}

/// A Redis Cluster on loopback: three primaries and three replicas (`redis-cli --cluster
/// create`), a node failing after 1 s unanswered, all throwaway.
pub struct ClusterSet {
    pub nodes: Vec<TestRedis>,
}

impl ClusterSet {
    pub fn start() -> ClusterSet {
        let nodes: Vec<TestRedis> = (0..6)
            .map(|_| {
                TestRedis::start_with(
                    None,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                    ],
                )
            })
            .collect();
        let mut create = std::process::Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port()));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let set = ClusterSet { nodes };
        set.wait_until_ok();
        set
    }

    /// Every running node says `cluster_state:ok`.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.nodes.iter().all(|n| {
            !n.running() || command(n.port(), &["CLUSTER", "INFO"]).contains("cluster_state:ok")
        }) {
            assert!(
                Instant::now() < deadline,
                "the Cluster is not ok after 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The URL of its first node.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.nodes[0].port())
    }

    /// The running nodes that are primaries now.
    pub fn primaries(&self) -> Vec<&TestRedis> {
        self.nodes
            .iter()
            .filter(|n| n.running() && command(n.port(), &["ROLE"]).starts_with("master"))
            .collect()
    }
}
