//! The port registry: every loopback port a test binary hands out comes from here, and
//! none twice, so concurrent tests (gateways, redis-servers, nginx, Caddy, gunicorn,
//! Tomcat) never race for a port one of them just released.
//!
//! Ports are drawn from below the kernel's ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), never from it: a port the kernel hands
//! out for outgoing connections can be taken by any process's client socket between our
//! check and the server's bind ("Address already in use"), which a port outside that
//! range cannot.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

static GIVEN: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// The ports to draw from: below the ephemeral range when there is room, else above it.
fn range() -> (u16, u16) {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        });
    match ephemeral {
        Some((lo, _)) if lo >= 11_024 => (10_000, lo - 1),
        Some((_, hi)) if hi <= 64_535 => (hi + 1, 65_535),
        _ => (10_000, 32_767),
    }
}

/// A cheap pseudo-random number (xorshift over time, pid and a counter): enough to keep
/// test binaries that run side by side from walking the same sequence.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        ^ nanos
        ^ (u64::from(std::process::id()) << 32);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A port nothing listens on right now, outside the ephemeral range, never handed out
/// before in this process.
pub fn free_port() -> u16 {
    let (lo, hi) = range();
    let span = u64::from(hi - lo) + 1;
    for _ in 0..10_000 {
        let port = lo + (next_random() % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
    panic!("no free loopback port in {lo}..={hi}");
}
