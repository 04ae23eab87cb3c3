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
    child: Mutex<Option<Child>>,
}

impl TestRedis {
    /// Start on a free port (retrying if another process grabs the port first).
    pub fn start() -> TestRedis {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match TestRedis::try_start_on(port) {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    /// Start on a given port (e.g. one a store was already pointed at).
    pub fn start_on(port: u16) -> TestRedis {
        TestRedis::try_start_on(port).unwrap_or_else(|e| panic!("redis-server on {port}: {e}"))
    }

    fn try_start_on(port: u16) -> Result<TestRedis, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let r = TestRedis {
            port,
            dir,
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
        let mut child = Command::new(&server)
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
    let mut buf = [0u8; 7];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}
