//! The port registry: every loopback port a test binary hands out comes from here, and
//! none twice, so concurrent tests (gateways, redis-servers, nginx, Caddy, gunicorn,
//! Tomcat) never race for a port one of them just released.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{LazyLock, Mutex};

static GIVEN: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// A port nothing listens on right now, never handed out before in this process.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free loopback port");
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}
