//! The request target at the gateway's boundary (`gateway::target::parse`, step 1 of every
//! request): origin- or absolute-form, canonical form or a refusal, with and without the
//! case-insensitive (IIS) rules.
//!
//! Input: the raw target bytes, as on the request line.
//!
//! Asserts: no panic; canonicalisation is idempotent: the canonical path (with the query)
//! parses again to the same path, match path and encoded-slash flag and is not rewritten
//! again; the canonical path has no `.`/`..`/empty segment (raw, or decoded, or with `%2F`
//! read as `/`), no `\`, `;`, control byte or `%25`, is ASCII, and upper-cases its escapes;
//! the match path is the canonical path percent-decoded (`%2F` kept), lower-cased under
//! IIS rules; the query passes as received; a target that can reach the gateway (visible
//! bytes, after `proxy::wire`) and that `http::Uri` accepts gives a canonical form it
//! accepts too (it replaces the upstream request's URI).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ssogate::gateway::target::{parse, TargetRules};

const HOST: &str = "wiki.example.com";

fn segments_ok(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let body = rest.strip_suffix('/').unwrap_or(rest);
    rest.is_empty()
        || body
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Percent-decode, keeping `%2F` (as the match path does).
fn decode_keeping_slash(p: &str) -> Option<String> {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            let d = u8::from_str_radix(hex, 16).ok()?;
            if d == b'/' {
                out.extend_from_slice(b"%2F");
            } else {
                out.push(d);
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A target as it reaches `target::parse`: httparse takes visible bytes only, and
/// `proxy::wire` escaped `"`, `<`, `>`, `` ` `` everywhere and `#` in the query. (`http::Uri`
/// stops validating at a `#`, which a raw path may hold.)
fn can_arrive(raw: &[u8]) -> bool {
    let q = raw.iter().position(|&b| b == b'?').unwrap_or(raw.len());
    raw.iter().enumerate().all(|(i, &b)| {
        b > 0x20 && b != 0x7f && !matches!(b, b'"' | b'<' | b'>' | b'`') && !(i > q && b == b'#')
    })
}

fuzz_target!(|raw: &[u8]| {
    for case_insensitive in [false, true] {
        let rules = TargetRules { case_insensitive };
        let Ok(t) = parse(raw, HOST, rules) else {
            continue;
        };
        let path: &str = &t.path;
        assert!(path.is_ascii(), "canonical path not ASCII: {path:?}");
        assert!(segments_ok(path), "ambiguous segment in {path:?}");
        assert!(
            !path
                .bytes()
                .any(|b| b < 0x20 || b == 0x7f || b == b'\\' || b == b';'),
            "forbidden byte in {path:?}"
        );
        assert!(!path.contains("%25"), "double encoding kept in {path:?}");
        let bytes = path.as_bytes();
        for (i, _) in path.match_indices('%') {
            let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
            assert!(
                hex.len() == 2
                    && hex
                        .iter()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)),
                "escape not upper-case hex in {path:?}"
            );
        }
        let decoded = decode_keeping_slash(path).expect("canonical path decodes");
        assert!(
            segments_ok(&decoded),
            "ambiguous decoded segment in {path:?}"
        );
        if t.encoded_slash {
            assert!(
                segments_ok(&decoded.replace("%2F", "/")),
                "ambiguous with %2F as /: {path:?}"
            );
        }
        assert_eq!(t.encoded_slash, path.contains("%2F"));
        let want_match = if case_insensitive {
            decoded.to_lowercase()
        } else {
            decoded
        };
        // The fast path lower-cases ASCII only: the same thing on an ASCII path.
        assert_eq!(t.match_path, want_match, "match path of {path:?}");
        if let Some(q) = t.query {
            let raw_text = String::from_utf8_lossy(raw);
            assert!(raw_text.ends_with(&format!("?{q}")), "query changed");
        }

        // Idempotent: the canonical form is its own canonical form.
        let pq = t.path_and_query();
        let again = parse(pq.as_bytes(), HOST, rules).expect("the canonical form is refused");
        assert_eq!(again.path, t.path);
        assert_eq!(again.match_path, t.match_path);
        assert_eq!(again.encoded_slash, t.encoded_slash);
        assert_eq!(again.query, t.query);
        assert!(!again.rewritten, "canonical form rewritten again: {pq:?}");
        assert_eq!(t.rewritten, t.path_and_query().as_bytes() != raw);

        if raw.first() == Some(&b'/')
            && can_arrive(raw)
            && http::uri::PathAndQuery::try_from(raw).is_ok()
        {
            assert!(
                http::Uri::try_from(pq.as_ref()).is_ok(),
                "http::Uri takes {:?} but not its canonical form {pq:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }
});
