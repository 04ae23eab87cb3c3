//! Runs the real `ssogate` binary with a config written for the test, on free loopback
//! ports, and kills it when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use super::ports::free_port;

pub struct Gateway {
    pub public: u16,
    pub admin: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Gateway {
    /// `config` is a TOML text with `{public}` and `{admin}` placeholders for the ports;
    /// `files` are written beside it first (certificates, metadata).
    pub async fn start(config: &str, files: &[(&str, &[u8])]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            // Private, as an admin keeps keys and tokens (check-config refuses others).
            use std::os::unix::fs::PermissionsExt as _;
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let public = free_port();
        let admin = free_port();
        let text = config
            .replace("{public}", &public.to_string())
            .replace("{admin}", &admin.to_string());
        let path: PathBuf = dir.path().join("ssogate.toml");
        std::fs::write(&path, text).unwrap();
        let log = std::fs::File::create(dir.path().join("ssogate.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ssogate"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let gw = Gateway {
            public,
            admin,
            dir,
            child,
        };
        gw.wait_healthy().await;
        gw
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://127.0.0.1:{}/healthz", self.admin);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway did not become healthy; log:\n{}", self.log());
    }

    /// The gateway's process ID (for /proc measurements).
    #[allow(dead_code, reason = "used by some test binaries only")]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send the gateway process a signal (`kill -s NAME`).
    #[allow(dead_code, reason = "used by some test binaries only")]
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -s {name} failed");
    }

    /// Wait up to `timeout` for the process to end; its exit status, or `None`.
    #[allow(dead_code, reason = "used by some test binaries only")]
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// The config file the gateway runs with.
    #[allow(dead_code, reason = "used by some test binaries only")]
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ssogate.toml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ssogate.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.public, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin, path)
    }

    /// The admin listener's `/metrics` text.
    #[allow(dead_code, reason = "used by some test binaries only")]
    pub async fn metrics(&self) -> String {
        super::http::client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
