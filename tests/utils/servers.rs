//! Real third-party servers on loopback, for tests that check what the gateway lets through
//! against what real servers make of it (tests/interop/COUNTERPARTS.md):
//!
//! - [`Gunicorn`]: Debian's gunicorn running the Flask app `tests/interop/upstream_app.py`;
//! - [`Tomcat`]: a private Tomcat 10 (Debian's `/usr/share/tomcat10`, its own
//!   `CATALINA_BASE` in a temp dir) with `tests/interop/tomcat` deployed as ROOT;
//! - [`Caddy`]: Debian's caddy with `tests/interop/Caddyfile.tmpl` (forward_auth to
//!   ssogate) in front of an upstream.
//!
//! `scripts/test.sh` installs them. Every `start` takes a fresh port and temp dir (tests run
//! concurrently), blocks until the server answers (call it through
//! `tokio::task::spawn_blocking` from an async test) and panics with the server's log if it
//! does not. The server runs in its own process group: `Drop` kills the group (gunicorn's
//! worker too), and a watchdog kills it if the test process dies first.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step should panic with its message"
)]

use super::gateway::free_port;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the servers' files are: `tests/interop` of this crate.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// A program's path: the environment variable `var` when set, else `default`.
fn program(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// One server process, leader of its own process group, writing stdout and stderr to
/// `log`.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e} (scripts/test.sh installs it)"));
        // Watchdog: kill the group when this test process goes away.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; \
                 kill -9 -{pid} 2>/dev/null",
                me = std::process::id(),
                pid = child.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        Proc { name, child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until `ready` says yes (`Ok(true)`), panicking with the log when it says the
    /// start failed (`Err`), when the process exits, or after `secs` seconds.
    fn wait_ready(&mut self, secs: u64, ready: impl Fn(&str) -> Result<bool, String>) {
        let start = Instant::now();
        loop {
            let log = self.log();
            let why = match ready(&log) {
                Ok(true) => return,
                Err(e) => e,
                Ok(false) => match self.child.try_wait() {
                    Ok(Some(status)) => format!("exited with {status}"),
                    _ if start.elapsed() > Duration::from_secs(secs) => {
                        format!("not ready after {secs} s")
                    }
                    _ => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                },
            };
            panic!("{} did not start: {why}; its log:\n{log}", self.name);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.0 on 127.0.0.1:port: the status and the body, `None` when
/// nothing answers (yet).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    // "HTTP/1.1 200 OK" (Tomcat: "HTTP/1.1 200 ").
    let status = text.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Ready once the log shows `marker` and `GET /` answers 200 with `body_mark` in the
/// body; any other answer after the marker is a failed start.
fn http_ready(
    port: u16,
    marker: &'static str,
    body_mark: &'static str,
) -> impl Fn(&str) -> Result<bool, String> {
    move |log: &str| {
        if !log.contains(marker) {
            return Ok(false);
        }
        match http_get(port, "/") {
            None => Ok(false),
            Some((200, body)) if body.contains(body_mark) => Ok(true),
            Some((status, body)) => Err(format!("GET / answered {status}: {body}")),
        }
    }
}

/// Debian's gunicorn (Python 3 from /usr/bin, Flask from python3-flask) running
/// `tests/interop/upstream_app.py`: every answer is JSON naming the handler that ran
/// ("admin", "public" or "other") with the path, the raw target and the headers it got.
/// `SSOGATE_TEST_GUNICORN` picks another gunicorn.
pub struct Gunicorn {
    pub port: u16,
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Gunicorn {
    pub fn start() -> Gunicorn {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let gunicorn = program("SSOGATE_TEST_GUNICORN", "/usr/bin/gunicorn");
        let mut cmd = Command::new(gunicorn);
        cmd.current_dir(dir.path())
            .env_remove("GUNICORN_CMD_ARGS")
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            // No __pycache__ left in tests/interop.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg("--chdir")
            .arg(interop_dir())
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--workers", "1", "--threads", "4", "--log-level", "info"])
            .args(["--error-logfile", "-", "--access-logfile", "-"])
            .arg("upstream_app:app");
        let mut proc = Proc::spawn("gunicorn", &mut cmd, dir.path().join("gunicorn.log"));
        proc.wait_ready(20, http_ready(port, "Booting worker", "\"raw_uri\""));
        Gunicorn {
            port,
            proc,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Its error and access log so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }
}

/// A private Tomcat 10 from Debian's tomcat10-common/tomcat10-user: `CATALINA_HOME` is
/// `/usr/share/tomcat10` (`SSOGATE_TEST_CATALINA_HOME` picks another), `CATALINA_BASE` a
/// temp dir with the global `web.xml` and `catalina.properties` from the package's
/// skeleton, a `server.xml` written here (one HTTP connector on 127.0.0.1, no shutdown
/// port, no AJP, no manager or example apps) and `tests/interop/tomcat` copied as
/// `webapps/ROOT`. Run by `java` from PATH (what `catalina.sh run` runs, without the
/// script). Answers are JSON naming the handler, `request_uri` (as sent), `servlet_path`
/// and `path_info` (decoded, normalised) and the headers. JSPs accept GET, POST, HEAD and
/// OPTIONS only: other methods get Jasper's 405.
pub struct Tomcat {
    pub port: u16,
    proc: Proc,
    _dir: tempfile::TempDir,
}

/// Where Debian keeps Tomcat's default configuration: tomcat10-user's skeleton, or the
/// system instance's when the tomcat10 package is installed.
const TOMCAT_CONF_DIRS: &[&str] = &["/usr/share/tomcat10/skel/conf", "/etc/tomcat10"];

impl Tomcat {
    pub fn start() -> Tomcat {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let home = program("SSOGATE_TEST_CATALINA_HOME", "/usr/share/tomcat10");
        for sub in ["conf", "logs", "temp", "work", "webapps"] {
            std::fs::create_dir_all(base.join(sub)).unwrap();
        }
        let conf = TOMCAT_CONF_DIRS
            .iter()
            .map(Path::new)
            .find(|d| d.join("web.xml").is_file())
            .unwrap_or_else(|| {
                panic!(
                    "no web.xml in {TOMCAT_CONF_DIRS:?} (install tomcat10-user: scripts/test.sh)"
                )
            });
        for file in ["web.xml", "catalina.properties"] {
            std::fs::copy(conf.join(file), base.join("conf").join(file)).unwrap();
        }
        // JUL's own console handler: everything Tomcat logs goes to the process log.
        std::fs::write(
            base.join("conf/logging.properties"),
            "handlers = java.util.logging.ConsoleHandler\n.level = INFO\n\
             java.util.logging.ConsoleHandler.level = ALL\n",
        )
        .unwrap();
        let port = free_port();
        // bindOnInit="false": the port opens only once ROOT is deployed (its JSPs compiled).
        let server_xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector address="127.0.0.1" port="{port}" protocol="HTTP/1.1" connectionTimeout="20000"
               maxParameterCount="1000" bindOnInit="false" />
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false"
            deployOnStartup="true">
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="access" suffix=".log" pattern="%r %s" />
      </Host>
    </Engine>
  </Service>
</Server>
"#
        );
        std::fs::write(base.join("conf/server.xml"), server_xml).unwrap();
        copy_dir(&interop_dir().join("tomcat"), &base.join("webapps/ROOT"));
        let classpath = format!("{home}/bin/bootstrap.jar:{home}/bin/tomcat-juli.jar");
        let mut cmd = Command::new("java");
        cmd.current_dir(base)
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg(format!("-Djava.io.tmpdir={}", base.join("temp").display()))
            .arg(format!("-Dcatalina.home={home}"))
            .arg(format!("-Dcatalina.base={}", base.display()))
            .arg(format!(
                "-Djava.util.logging.config.file={}",
                base.join("conf/logging.properties").display()
            ))
            .args(["-cp", &classpath])
            .args(["org.apache.catalina.startup.Bootstrap", "start"]);
        let mut proc = Proc::spawn("tomcat", &mut cmd, base.join("logs/tomcat.log"));
        // Longer than the others: a JVM plus three JSP compilations on a busy machine.
        proc.wait_ready(
            45,
            http_ready(port, "Server startup in", "\"servlet_path\""),
        );
        Tomcat {
            port,
            proc,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Its log so far (the access log is `logs/access.*.log` in its base).
    pub fn log(&self) -> String {
        self.proc.log()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Debian's caddy (v2) with `tests/interop/Caddyfile.tmpl`: on 127.0.0.1:`port`, `/saml/*`
/// goes to ssogate on `gateway_port`, everything else through `forward_auth` (ssogate's
/// `/_ssogate/auth`) to `upstream_port`. No admin endpoint, no automatic HTTPS; its
/// HOME and XDG dirs are the temp dir. `SSOGATE_TEST_CADDY` picks another caddy.
pub struct Caddy {
    pub port: u16,
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Caddy {
    pub fn start(gateway_port: u16, upstream_port: u16) -> Caddy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let caddy = program("SSOGATE_TEST_CADDY", "/usr/bin/caddy");
        let mut cmd = Command::new(caddy);
        cmd.current_dir(dir.path())
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("SSOGATE_CADDY_LISTEN", port.to_string())
            .env("SSOGATE_CADDY_GATEWAY", gateway_port.to_string())
            .env("SSOGATE_CADDY_UPSTREAM", upstream_port.to_string())
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(interop_dir().join("Caddyfile.tmpl"));
        let mut proc = Proc::spawn("caddy", &mut cmd, dir.path().join("caddy.log"));
        // Not GET /: that would ask the gateway. Caddy logs this line once it listens.
        proc.wait_ready(20, |log: &str| {
            Ok(log.contains("serving initial configuration") && accepts(port))
        });
        Caddy {
            port,
            proc,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Its log so far (JSON lines).
    pub fn log(&self) -> String {
        self.proc.log()
    }
}
