//! `run`, `check-config`, `sp-metadata` and `demo`.

use super::assemble;
use crate::proxy;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(path: &Path, upgrade: bool) -> ExitCode {
    let (cfg, gw) = match assemble(path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(public = %cfg.listen_public, admin = %cfg.listen_admin, apps = cfg.apps.len(), "starting ssogate");
    let live = crate::gateway::Live::new(cfg, gw, Some(path.to_path_buf()));
    let server = proxy::build_server(&live.config(), live.clone(), upgrade);
    proxy::run(server, live)
}

pub fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        match assemble(f) {
            Ok((cfg, gw)) => {
                if let crate::config::StoreConfig::Redis { summary, .. } = &cfg.session.store {
                    println!("{}: session store: Redis, {summary}", f.display());
                }
                for w in gw.certificate_warnings(chrono::Utc::now().timestamp()) {
                    println!("{}: warning: {w}", f.display());
                }
                println!("{}: ok", f.display());
            }
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    ExitCode::from(u8::from(failed))
}

/// `GET path` on the admin listener: exit 0 on a 200, 1 otherwise (the reason on stderr).
pub fn probe(admin: &str, path: &str) -> ExitCode {
    match admin_request(admin, "GET", path) {
        Ok((200, body)) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("not ready: {path}: {status} {body}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("not ready: {e}");
            ExitCode::from(1)
        }
    }
}

/// `POST /reload` on the admin listener (from this host): the running gateway re-reads
/// its config. Prints what it answered (every problem, when it refused); exit 0 when the
/// new config took effect, 1 otherwise.
pub fn reload(admin: &str) -> ExitCode {
    match admin_request(admin, "POST", "/reload") {
        Ok((200, body)) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((_, body)) => {
            eprintln!("{body}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("reload: {e}");
            ExitCode::from(1)
        }
    }
}

/// One request to the admin listener over plain HTTP/1.1 (no client library: this runs
/// as a container HEALTHCHECK too), a few seconds at most: status and body.
fn admin_request(admin: &str, method: &str, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpStream, ToSocketAddrs as _};
    use std::time::Duration;
    // A reload re-reads and checks every file: give it longer than a probe.
    let limit = Duration::from_secs(if method == "GET" { 2 } else { 30 });
    let addr = admin
        .to_socket_addrs()
        .map_err(|e| format!("{admin}: {e}"))?
        .next()
        .ok_or_else(|| format!("{admin}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, limit).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    // Read until the head and its Content-Length of body are in (or the peer closes).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let (head, body) = loop {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok());
            if n == 0 || length.is_some_and(|l| body.len() >= l) {
                break (head.to_string(), body.trim().to_string());
            }
        }
        if n == 0 || buf.len() > 65_536 {
            break (text, String::new());
        }
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{path}: not an HTTP answer"))?;
    Ok((status, body))
}

pub fn sp_metadata(path: &Path, app: &str) -> ExitCode {
    match assemble(path) {
        Ok((_, gw)) => match gw.apps().iter().find(|a| a.name == app) {
            Some(a) => {
                println!("{}", a.sp_metadata());
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no app named \"{app}\"");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

pub fn demo(port: u16) -> ExitCode {
    let ports = proxy::demo::DemoPorts {
        public: port,
        admin: port.wrapping_add(10),
        idp: port.wrapping_add(1),
        echo: port.wrapping_add(2),
    };
    let server = match proxy::demo::demo_server(&ports) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "\nssogate demo (in-memory sessions, development IdP: NOT FOR PRODUCTION)\n\
         \n  open      http://127.0.0.1:{p}/          (sign in, then see the headers the app receives)\n\
         \x20 admin     http://127.0.0.1:{p}/admin/    (only alice is in the admins group)\n\
         \x20 public    http://127.0.0.1:{p}/public/   (no sign-in)\n\
         \x20 metrics   http://127.0.0.1:{a}/metrics\n\
         \n  users     {users}\n\n  Ctrl-C to stop.\n",
        p = ports.public,
        a = ports.admin,
        users = proxy::demo::DEMO_USERS
            .iter()
            .map(|u| u.login)
            .collect::<Vec<_>>()
            .join(", "),
    );
    server.run_forever()
}
