//! What of the client's own headers reaches the upstream. Decided here, in plain Rust;
//! the proxy only removes what this says.
//!
//! - Identity: every header the gateway injects or strips by prefix goes, whatever the
//!   letter case, and with `_` read as `-`: gunicorn, CGI, PHP-FPM and IIS fold
//!   `X_Remote_User` into the `X-Remote-User` the app reads.
//! - Underscores: any other header with `_` in its name goes too (nginx and Apache drop
//!   them by default for the same reason), unless the app sets `allow_underscore_headers`.
//! - Path overrides: `X-Original-URL` and `X-Rewrite-URL` (IIS URL Rewrite, Symfony,
//!   Zend route by them) always go: the path judged is the path forwarded.
//! - Forwarding facts (`Forwarded`, `X-Real-IP`, `X-Forwarded-*`, `X-Original-URI`, ...)
//!   go unless the peer is one of `server.trusted_proxies`; `X-Forwarded-For` is then
//!   replaced, not extended.
//! - Method overrides (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`)
//!   go on routes that restrict methods: the method judged is the method served.
//! - Cookies: the gateway's own (the session cookie, pending sign-in bindings) are taken
//!   out of `Cookie`, so the app and its logs never hold a gateway bearer token.

use std::borrow::Cow;

/// Path overrides: never forwarded.
const PATH_OVERRIDES: [&str; 2] = ["x-original-url", "x-rewrite-url"];

/// What a proxy in front says about the original request: believed only from a
/// trusted proxy.
const FORWARDING: [&str; 14] = [
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-original-uri",
    "x-original-method",
];

/// Method overrides honoured by many frameworks.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// `a` and `b` name the same header for a server that folds `_` into `-`.
pub fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let fold = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            fold(x) == fold(y)
        })
}

/// `name` starts with `prefix`, read the same way.
pub fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|head| same_name(head, prefix))
}

/// The request's circumstances that decide what goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Circumstances {
    /// The peer is one of the trusted proxies.
    pub trusted_peer: bool,
    /// The route restricts methods.
    pub strip_method_override: bool,
    /// The app keeps other `_` headers.
    pub allow_underscore: bool,
}

/// Must this client header go (besides the identity headers, which `HeaderMapping`
/// decides)?
pub fn must_drop(name: &str, c: Circumstances) -> bool {
    (!c.allow_underscore && name.contains('_'))
        || PATH_OVERRIDES.iter().any(|h| same_name(h, name))
        || (!c.trusted_peer && FORWARDING.iter().any(|h| same_name(h, name)))
        || (c.strip_method_override && METHOD_OVERRIDES.iter().any(|h| same_name(h, name)))
}

/// The trace ID of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), for the logs;
/// the header itself goes upstream unchanged. `None` for anything else: version `ff`,
/// an all-zero trace or parent ID, upper-case hex, a version-00 value of another length.
pub fn trace_id(traceparent: &[u8]) -> Option<&str> {
    let v = std::str::from_utf8(traceparent).ok()?;
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let (version, rest) = v.split_at_checked(2)?;
    if !lower_hex(version) || version == "ff" || (version == "00" && v.len() != 55) {
        return None;
    }
    // Later versions may append fields after the first 55 characters.
    if v.len() > 55 && v.as_bytes()[55] != b'-' {
        return None;
    }
    let rest = rest.strip_prefix('-')?;
    let (trace, rest) = rest.split_at_checked(32)?;
    let rest = rest.strip_prefix('-')?;
    let (parent, rest) = rest.split_at_checked(16)?;
    let rest = rest.strip_prefix('-')?;
    let flags = rest.get(..2)?;
    let ok = lower_hex(trace)
        && lower_hex(parent)
        && lower_hex(flags)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    ok.then_some(trace)
}

/// A `Cookie` header value without the gateway's own cookies: borrowed when nothing
/// goes, `None` when nothing is left.
pub fn without_own_cookies<'a>(
    value: &'a str,
    is_own: impl Fn(&str) -> bool,
) -> Option<Cow<'a, str>> {
    let own = |pair: &str| is_own(pair.split('=').next().unwrap_or("").trim());
    if !value.split(';').any(own) {
        return Some(Cow::Borrowed(value));
    }
    let kept: Vec<&str> = value
        .split(';')
        .filter(|p| !own(p) && !p.trim().is_empty())
        .map(str::trim)
        .collect();
    (!kept.is_empty()).then(|| Cow::Owned(kept.join("; ")))
}

/// `X-Forwarded-For` for the upstream: the trusted chain extended with the peer, or
/// the peer alone.
pub fn forwarded_for(previous: Option<&str>, peer: std::net::IpAddr, trusted_peer: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(48);
    if let Some(prev) = previous.filter(|_| trusted_peer) {
        out.push_str(prev);
        out.push_str(", ");
    }
    match peer {
        // Every request writes one: digits by hand, not through the formatter.
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        std::net::IpAddr::V6(_) => {
            let _ = write!(out, "{peer}"); // infallible into a String
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_only_from_well_formed_traceparents() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(good), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let later = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert_eq!(trace_id(later), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            &b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"",
            b"00",
            "00-4bf92f3577b34da6a3ce929d0e0e47\u{e9}-00f067aa0ba902b7-01".as_bytes(),
        ] {
            assert_eq!(trace_id(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn forwarded_for_writes_addresses_as_their_display() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "9.10.99.100",
            "127.0.0.1",
            "192.168.100.255",
            "255.255.255.255",
            "::1",
            "2001:db8::17",
            "::ffff:10.0.0.1",
        ] {
            let peer: std::net::IpAddr = ip.parse().expect("ip");
            assert_eq!(forwarded_for(None, peer, false), ip);
            assert_eq!(
                forwarded_for(Some("203.0.113.9"), peer, true),
                format!("203.0.113.9, {ip}")
            );
            assert_eq!(
                forwarded_for(Some("203.0.113.9"), peer, false),
                ip,
                "untrusted chain dropped"
            );
        }
        for octet in 0..=255u8 {
            let peer = std::net::IpAddr::from([octet, 0, octet, 7]);
            assert_eq!(forwarded_for(None, peer, false), peer.to_string());
        }
    }

    #[test]
    fn underscores_are_dashes_to_the_comparison() {
        assert!(same_name("X_Remote_User", "x-remote-user"));
        assert!(same_name("x-remote-user", "X-REMOTE-USER"));
        assert!(!same_name("x-remote-users", "x-remote-user"));
        assert!(has_prefix("X_REMOTE_Anything", "x-remote-"));
        assert!(!has_prefix("x-rem", "x-remote-"));
    }

    #[test]
    fn what_goes_depends_on_the_peer_the_route_and_the_app() {
        let c = Circumstances::default();
        for h in [
            "X_Anything",
            "X-Original-URL",
            "x_rewrite_url",
            "Forwarded",
            "X-Real-IP",
        ] {
            assert!(must_drop(h, c), "{h}");
        }
        for h in ["accept", "x-http-method-override", "user-agent"] {
            assert!(!must_drop(h, c), "{h}");
        }
        let trusted = Circumstances {
            trusted_peer: true,
            ..c
        };
        assert!(!must_drop("X-Real-IP", trusted));
        assert!(
            must_drop("X-Original-URL", trusted),
            "never, even from a proxy"
        );
        let strict = Circumstances {
            strip_method_override: true,
            ..c
        };
        assert!(must_drop("X-HTTP-Method-Override", strict));
        let lax = Circumstances {
            allow_underscore: true,
            ..c
        };
        assert!(!must_drop("x_custom", lax));
        assert!(must_drop("x_original_url", lax));
    }

    #[test]
    fn own_cookies_leave_the_cookie_header() {
        let own = |n: &str| n == "__Host-ssogate" || n.starts_with("__Host-ssogate-login-");
        assert_eq!(
            without_own_cookies("theme=dark; _ga=1", own).as_deref(),
            Some("theme=dark; _ga=1")
        );
        assert!(matches!(
            without_own_cookies("theme=dark", own),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(
            without_own_cookies(
                "theme=dark; __Host-ssogate=abc; __Host-ssogate-login-1=x; a=b",
                own
            )
            .as_deref(),
            Some("theme=dark; a=b")
        );
        assert_eq!(without_own_cookies("__Host-ssogate=abc", own), None);
        // A cookie whose name merely contains ours stays.
        assert_eq!(
            without_own_cookies("my__Host-ssogate=1", own).as_deref(),
            Some("my__Host-ssogate=1")
        );
    }

    #[test]
    fn x_forwarded_for_is_extended_only_for_a_trusted_peer() {
        let peer = "192.0.2.1"
            .parse()
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        assert_eq!(forwarded_for(Some("6.6.6.6"), peer, false), "192.0.2.1");
        assert_eq!(
            forwarded_for(Some("198.51.100.7"), peer, true),
            "198.51.100.7, 192.0.2.1"
        );
        assert_eq!(forwarded_for(None, peer, true), "192.0.2.1");
    }
}
