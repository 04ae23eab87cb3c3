//! The session cookie and session ID, read on every request: `SessionId::parse` (strict
//! base64url, 43 characters, canonical), `CookieSettings::read` over several `Cookie`
//! headers (`__Host-` prefix or not), the sign-in binding cookie (`read_binding`) and
//! `is_gateway_cookie` (what is kept from the upstream).
//!
//! Input: `Cookie` header values, one per line.
//!
//! Asserts: no panic; `parse` accepts exactly the strings base64url (no padding) decodes
//! canonically to 32 bytes (differential against the base64 crate), and its value is the
//! input, with a 64-hex-digit store key; the ID `read` returns parses, is the value of a
//! pair under the session cookie's name in those headers, and is ours by
//! `is_gateway_cookie`; a binding token read is a value of the headers.

#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use ssogate::session::{CookieSettings, SessionId};

fn check_id(s: &str) {
    let parsed = SessionId::parse(s);
    let mut out = [0u8; 32];
    let canonical = s.len() == 43 && URL_SAFE_NO_PAD.decode_slice(s, &mut out) == Ok(32);
    assert_eq!(
        parsed.is_some(),
        canonical,
        "parse disagrees with base64url on {s:?}"
    );
    if let Some(id) = parsed {
        assert_eq!(id.as_cookie_value(), s);
        assert_eq!(URL_SAFE_NO_PAD.encode(out), s, "two spellings of one ID");
        let key = id.store_key();
        assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!key.contains(s));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_id(text);
    let headers: Vec<&str> = text.split('\n').collect();
    for h in &headers {
        check_id(h.trim());
    }
    for (name, secure) in [("ssogate", true), ("ssogate", false), ("__Host-x", true)] {
        let c = CookieSettings {
            name: name.into(),
            secure,
        };
        let cookie_name = c.cookie_name();
        assert!(c.is_gateway_cookie(&cookie_name));
        if let Some(id) = c.read(headers.iter().copied()) {
            let v = id.as_cookie_value();
            assert!(SessionId::parse(v).is_some());
            let found = headers
                .iter()
                .flat_map(|h| h.split(';'))
                .filter_map(|p| p.split_once('='))
                .any(|(n, val)| {
                    n.trim() == cookie_name && {
                        let val = val.trim();
                        val == v
                            || val.strip_prefix('"').and_then(|x| x.strip_suffix('"')) == Some(v)
                    }
                });
            assert!(found, "read returned an ID that is not under {cookie_name}");
            // What the gateway sets, it reads back.
            let set = c.set_cookie(&id);
            let pair = set.split(';').next().unwrap_or_default();
            assert_eq!(c.read([pair]).as_ref(), Some(&id), "{set}");
        }
        // The binding of a sign-in: its tag from a hex hash (of the first line here), the
        // token from the headers.
        let hash: String = headers
            .first()
            .map(|h| h.bytes().take(16).map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default();
        let hash = hash.as_str();
        if let Some(token) = c.read_binding(hash, headers.iter().copied()) {
            assert!(text.contains(token));
        }
        let set = c.binding_cookie("token", hash, std::time::Duration::from_secs(600));
        let name = set.split('=').next().unwrap_or_default();
        assert!(
            c.is_gateway_cookie(name),
            "binding cookie {name:?} not recognised as ours"
        );
        let _ = c.clear_binding_cookie(hash);
    }
});
