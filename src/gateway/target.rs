//! The request target, parsed once: what the access layer judges and what goes upstream.
//!
//! Principle: **the upstream can never see a path that routes differently from the one we
//! authorised.** Servers disagree about what a path means: Tomcat drops `;params` and
//! resolves `..` after decoding, gunicorn/Flask decode `%2F` after routing, IIS treats
//! `\` as `/`, ignores case and trailing dots, and maps `ADMINI~1` to `administrator`. So
//! a target is either reduced to one canonical form that every server reads the same way
//! (and that form is judged and forwarded), or refused with 400 and a reason:
//!
//! | refused | reason label |
//! |---|---|
//! | not origin-form (`foo:/admin`, `*`, authority-form); absolute-form for another host | `target_form`, `target_authority` |
//! | control bytes, raw or percent-encoded | `target_control` |
//! | bad `%` escapes, invalid UTF-8 (raw or decoded, overlong forms included) | `target_encoding` |
//! | `.` / `..` segments, raw or encoded (`%2e`), also between encoded slashes | `target_dot_segment` |
//! | empty segments (`//`) other than one trailing `/` | `target_empty_segment` |
//! | `\` and `%5C` | `target_backslash` |
//! | `%2F`, unless the route opts in (`allow_encoded_slash`) | `target_encoded_slash` |
//! | `%25` (double encoding: `%252e`) | `target_double_encoding` |
//! | `;` path parameters | `target_path_parameter` |
//! | with `case_insensitive_paths` (IIS): segments ending in `.` or space, `:`, `~digit` short names | `target_windows_name` |
//! | longer than 16 KiB | `target_too_long` |
//!
//! The canonical form decodes percent-escaped unreserved characters (`%41` → `A`, so
//! `/%61dmin/` is judged and forwarded as `/admin/`), writes every other escape in upper
//! case and percent-encodes raw non-ASCII bytes, as a browser does. The query is not a
//! routing input and passes as received. An absolute-form target for this app's own host
//! is forwarded in origin-form.
//!
//! Routes match the *decoded* path on segment boundaries (`/static` covers `/static` and
//! `/static/x`, never `/static-admin`); `%2F` stays `%2F` there, so an encoded slash never
//! acts as a separator.
//!
//! We never panic on hostile input: every index below is checked.

use std::borrow::Cow;

/// Longest request target (path and query) accepted.
pub const MAX_TARGET_LEN: usize = 16 * 1024;

/// Why a target was refused (answered 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadTarget {
    Form,
    Authority,
    TooLong,
    Control,
    Encoding,
    DotSegment,
    EmptySegment,
    Backslash,
    EncodedSlash,
    DoubleEncoding,
    PathParameter,
    WindowsName,
}

impl BadTarget {
    /// Metric and audit label.
    pub fn reason(self) -> &'static str {
        match self {
            BadTarget::Form => "target_form",
            BadTarget::Authority => "target_authority",
            BadTarget::TooLong => "target_too_long",
            BadTarget::Control => "target_control",
            BadTarget::Encoding => "target_encoding",
            BadTarget::DotSegment => "target_dot_segment",
            BadTarget::EmptySegment => "target_empty_segment",
            BadTarget::Backslash => "target_backslash",
            BadTarget::EncodedSlash => "target_encoded_slash",
            BadTarget::DoubleEncoding => "target_double_encoding",
            BadTarget::PathParameter => "target_path_parameter",
            BadTarget::WindowsName => "target_windows_name",
        }
    }

    /// For the error page: what is wrong with the address, in a user's words.
    pub fn explain(self) -> &'static str {
        match self {
            BadTarget::Form | BadTarget::Authority => {
                "The request names a target this gateway does not serve."
            }
            BadTarget::TooLong => "The address is too long.",
            BadTarget::Control | BadTarget::Encoding => {
                "The address contains characters that are not allowed."
            }
            BadTarget::DotSegment | BadTarget::EmptySegment | BadTarget::Backslash => {
                "The address contains ambiguous path segments (such as \"..\", \"//\" or \"\\\")."
            }
            BadTarget::EncodedSlash => "The address contains an encoded slash (%2F).",
            BadTarget::DoubleEncoding => "The address is encoded twice (%25).",
            BadTarget::PathParameter => "The address contains a path parameter (\";\").",
            BadTarget::WindowsName => {
                "The address contains a name that Windows servers read differently."
            }
        }
    }
}

/// How an app's targets are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetRules {
    /// IIS and other case-insensitive upstreams: routes match regardless of case, and
    /// the names Windows reads differently are refused.
    pub case_insensitive: bool,
}

/// A target that passed: the canonical path and query, and the path routes match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// Canonical path: what is judged and forwarded.
    pub path: Cow<'a, str>,
    /// As received (after the wire layer), without the `?`.
    pub query: Option<&'a str>,
    /// Decoded path for route matching (`%2F` kept as `%2F`; lower case when the rules
    /// are case-insensitive).
    pub match_path: Cow<'a, str>,
    /// An encoded slash is in the path: allowed only on routes that opt in.
    pub encoded_slash: bool,
    /// The canonical form differs from the target received: the upstream request's
    /// target must be replaced with it.
    pub rewritten: bool,
}

impl Target<'_> {
    /// Path and query, as forwarded.
    pub fn path_and_query(&self) -> Cow<'_, str> {
        match self.query {
            None => Cow::Borrowed(&*self.path),
            Some(q) => Cow::Owned(format!("{}?{q}", self.path)),
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Bytes that may stand in a canonical path as they are.
fn is_plain(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'/' | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

/// Parse a raw request target (as on the request line) for an app served at `host`.
pub fn parse<'a>(raw: &'a [u8], host: &str, rules: TargetRules) -> Result<Target<'a>, BadTarget> {
    if raw.len() > MAX_TARGET_LEN {
        return Err(BadTarget::TooLong);
    }
    let (raw_path, query, absolute) = split(raw, host)?;
    let query = match query {
        Some(q) => Some(std::str::from_utf8(q).map_err(|_| BadTarget::Encoding)?),
        None => None,
    };
    if raw_path.iter().all(|&b| is_plain(b)) {
        // The common case: nothing to decode, nothing to rewrite.
        let path = std::str::from_utf8(raw_path).map_err(|_| BadTarget::Encoding)?;
        check_segments(path, rules)?;
        let match_path = if rules.case_insensitive && path.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(path.to_ascii_lowercase())
        } else {
            Cow::Borrowed(path)
        };
        return Ok(Target {
            path: Cow::Borrowed(path),
            query,
            match_path,
            encoded_slash: false,
            rewritten: absolute,
        });
    }
    slow(raw_path, query, absolute, rules)
}

/// A target's path and query, and whether it came in absolute-form.
type Split<'a> = (&'a [u8], Option<&'a [u8]>, bool);

/// Path and query of an origin-form target, or of an absolute-form one whose authority
/// is `host`; `true` when absolute-form.
fn split<'a>(raw: &'a [u8], host: &str) -> Result<Split<'a>, BadTarget> {
    let (rest, absolute) = if raw.first() == Some(&b'/') {
        (raw, false)
    } else {
        let lower = |n: usize| raw.get(..n).map(|p| p.to_ascii_lowercase());
        let after_scheme = if lower(7).as_deref() == Some(b"http://") {
            &raw[7..]
        } else if lower(8).as_deref() == Some(b"https://") {
            &raw[8..]
        } else {
            return Err(BadTarget::Form);
        };
        let end = after_scheme
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(after_scheme.len());
        let authority = &after_scheme[..end];
        if host.is_empty() || !authority.eq_ignore_ascii_case(host.as_bytes()) {
            return Err(BadTarget::Authority);
        }
        let rest = &after_scheme[end..];
        if rest.first() != Some(&b'/') {
            // `http://host` or `http://host?q`: the root, as RFC 9112 §3.2.2 reads it.
            return match rest.strip_prefix(b"?") {
                None => Ok((b"/", None, true)),
                Some(q) => Ok((b"/", Some(q), true)),
            };
        }
        (rest, true)
    };
    Ok(match rest.iter().position(|&b| b == b'?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..]), absolute),
        None => (rest, None, absolute),
    })
}

fn slow<'a>(
    raw_path: &'a [u8],
    query: Option<&'a str>,
    absolute: bool,
    rules: TargetRules,
) -> Result<Target<'a>, BadTarget> {
    let mut canonical: Vec<u8> = Vec::with_capacity(raw_path.len() + 8);
    let mut decoded: Vec<u8> = Vec::with_capacity(raw_path.len());
    let mut encoded_slash = false;
    let mut i = 0;
    while i < raw_path.len() {
        let b = raw_path[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    raw_path.get(i + 1).copied().and_then(hex),
                    raw_path.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(BadTarget::Encoding);
                };
                let d = h << 4 | l;
                match d {
                    0..=0x1f | 0x7f => return Err(BadTarget::Control),
                    b'%' => return Err(BadTarget::DoubleEncoding),
                    b'\\' => return Err(BadTarget::Backslash),
                    b'/' => {
                        encoded_slash = true;
                        canonical.extend_from_slice(b"%2F");
                        decoded.extend_from_slice(b"%2F");
                    }
                    d if is_unreserved(d) => {
                        canonical.push(d);
                        decoded.push(d);
                    }
                    d => {
                        canonical.extend_from_slice(&[
                            b'%',
                            HEX_UPPER[usize::from(d >> 4)],
                            HEX_UPPER[usize::from(d & 15)],
                        ]);
                        decoded.push(d);
                    }
                }
                i += 3;
                continue;
            }
            0..=0x1f | 0x7f => return Err(BadTarget::Control),
            b'\\' => return Err(BadTarget::Backslash),
            b';' => return Err(BadTarget::PathParameter),
            // Raw non-ASCII, and ASCII a browser would not send raw (`"`, `{`, `|`, ...).
            b if b >= 0x80 || !is_plain(b) => {
                canonical.extend_from_slice(&[
                    b'%',
                    HEX_UPPER[usize::from(b >> 4)],
                    HEX_UPPER[usize::from(b & 15)],
                ]);
                decoded.push(b);
            }
            _ => {
                canonical.push(b);
                decoded.push(b);
            }
        }
        i += 1;
    }
    // Raw bytes and decoded escapes together must be UTF-8 (no overlong forms).
    std::str::from_utf8(raw_path).map_err(|_| BadTarget::Encoding)?;
    let decoded = String::from_utf8(decoded).map_err(|_| BadTarget::Encoding)?;
    let canonical = String::from_utf8(canonical).map_err(|_| BadTarget::Encoding)?;
    check_segments(&canonical, rules)?;
    check_segments(&decoded, rules)?;
    if encoded_slash {
        // Whatever an upstream makes of `%2F`, it must not find `..` or `//` there.
        check_segments(&decoded.replace("%2F", "/"), rules)?;
    }
    let rewritten = absolute || canonical.as_bytes() != raw_path;
    let match_path = if rules.case_insensitive {
        decoded.to_lowercase()
    } else {
        decoded
    };
    Ok(Target {
        path: Cow::Owned(canonical),
        query,
        match_path: Cow::Owned(match_path),
        encoded_slash,
        rewritten,
    })
}

/// A leading `/`; no empty segment but a trailing one; no `.` or `..`; with
/// case-insensitive rules, no Windows-ambiguous names.
fn check_segments(path: &str, rules: TargetRules) -> Result<(), BadTarget> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(BadTarget::Form);
    };
    if rest.is_empty() {
        return Ok(());
    }
    let body = rest.strip_suffix('/').unwrap_or(rest);
    for seg in body.split('/') {
        match seg {
            "" => return Err(BadTarget::EmptySegment),
            "." | ".." => return Err(BadTarget::DotSegment),
            s if rules.case_insensitive && is_windows_ambiguous(s) => {
                return Err(BadTarget::WindowsName)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Names IIS and Windows file systems read as another name: trailing dots or spaces
/// (`admin.` is `admin`), alternate data streams (`x::$DATA`), 8.3 short names
/// (`ADMINI~1`).
fn is_windows_ambiguous(seg: &str) -> bool {
    seg.ends_with('.')
        || seg.ends_with(' ')
        || seg.ends_with("%20")
        || seg.contains(':')
        || seg
            .as_bytes()
            .windows(2)
            .any(|w| w[0] == b'~' && w[1].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "wiki.example.com";

    fn ok(raw: &str) -> Target<'_> {
        parse(raw.as_bytes(), HOST, TargetRules::default())
            .unwrap_or_else(|e| panic!("{raw}: {e:?}"))
    }

    fn bad(raw: &str) -> BadTarget {
        parse(raw.as_bytes(), HOST, TargetRules::default()).expect_err(raw)
    }

    #[test]
    fn plain_targets_are_borrowed_and_unchanged() {
        for raw in [
            "/",
            "/a",
            "/a/",
            "/a/b.css",
            "/wiki/Main_Page",
            "/a/b?x=1&y=%22",
        ] {
            let t = ok(raw);
            assert!(matches!(t.path, Cow::Borrowed(_)), "{raw}");
            assert!(!t.rewritten, "{raw}");
            assert_eq!(t.path_and_query(), raw);
        }
        assert_eq!(ok("/a?").query, Some(""));
    }

    #[test]
    fn the_reviewed_bypasses_are_refused() {
        assert_eq!(bad("/public/..;/admin/"), BadTarget::PathParameter);
        assert_eq!(bad("/admin/../public/x"), BadTarget::DotSegment);
        assert_eq!(
            bad("/admin/users/1%2F..%2F..%2F..%2Fpublic"),
            BadTarget::DotSegment
        );
        assert_eq!(bad("/admin%5c..%5cpublic/x"), BadTarget::Backslash);
        assert_eq!(bad("/public/%252e%252e/admin/"), BadTarget::DoubleEncoding);
        assert_eq!(bad("/admin;x/"), BadTarget::PathParameter);
        assert_eq!(bad("foo:/admin/x"), BadTarget::Form);
        assert_eq!(bad("//evil.example/"), BadTarget::EmptySegment);
    }

    #[test]
    fn every_ambiguity_has_its_reason() {
        for (raw, want) in [
            ("*", BadTarget::Form),
            ("wiki.example.com:443", BadTarget::Form),
            ("ftp://wiki.example.com/", BadTarget::Form),
            ("http://evil.example/admin", BadTarget::Authority),
            ("http://wiki.example.com@evil/", BadTarget::Authority),
            ("/a/./b", BadTarget::DotSegment),
            ("/a/%2e%2E/b", BadTarget::DotSegment),
            ("/a/.%2e/b", BadTarget::DotSegment),
            ("/..", BadTarget::DotSegment),
            ("/a/..", BadTarget::DotSegment),
            ("/a//b", BadTarget::EmptySegment),
            ("/a\\b", BadTarget::Backslash),
            ("/a%5Cb", BadTarget::Backslash),
            ("/a%2fb", BadTarget::EncodedSlash),
            ("/a%25", BadTarget::DoubleEncoding),
            ("/a%00b", BadTarget::Control),
            ("/a%0d%0ab", BadTarget::Control),
            ("/a%7f", BadTarget::Control),
            ("/a\x01", BadTarget::Control),
            ("/a%", BadTarget::Encoding),
            ("/a%zz", BadTarget::Encoding),
            ("/a%u002e", BadTarget::Encoding),
            ("/%c0%ae%c0%ae/admin", BadTarget::Encoding),
            ("/%ff", BadTarget::Encoding),
        ] {
            let got = parse(raw.as_bytes(), HOST, TargetRules::default());
            let got = match got {
                Err(e) => e,
                Ok(t) if t.encoded_slash => BadTarget::EncodedSlash,
                Ok(t) => panic!("{raw} passed as {t:?}"),
            };
            assert_eq!(got, want, "{raw}");
        }
        assert_eq!(
            parse(&[b'/', 0xff], HOST, TargetRules::default()),
            Err(BadTarget::Encoding)
        );
        let long = format!("/{}", "a".repeat(MAX_TARGET_LEN));
        assert_eq!(bad(&long), BadTarget::TooLong);
    }

    #[test]
    fn canonical_form_is_what_a_browser_sends() {
        let t = ok("/%61dmin/%7euser/caf%c3%a9?q=%2F");
        assert_eq!(t.path, "/admin/~user/caf%C3%A9");
        assert_eq!(t.match_path, "/admin/~user/café");
        assert_eq!(t.query, Some("q=%2F"));
        assert!(t.rewritten);
        let raw = "/caf\u{e9}/x%20y/{a}|b";
        let t = ok(raw);
        assert_eq!(t.path, "/caf%C3%A9/x%20y/%7Ba%7D%7Cb");
        assert_eq!(t.match_path, "/café/x y/{a}|b");
        // Already canonical escapes are not a rewrite.
        assert!(!ok("/a%20b").rewritten);
    }

    #[test]
    fn absolute_form_for_our_host_is_forwarded_in_origin_form() {
        let t = ok("http://wiki.example.com/admin/x?y=1");
        assert_eq!(
            (t.path_and_query().as_ref(), t.rewritten),
            ("/admin/x?y=1", true)
        );
        assert_eq!(ok("HTTPS://WIKI.example.com").path, "/");
        assert_eq!(ok("http://wiki.example.com?q").query, Some("q"));
    }

    #[test]
    fn encoded_slash_is_reported_and_kept_encoded_for_matching() {
        let t = ok("/files/a%2fb/c");
        assert!(t.encoded_slash);
        assert_eq!(t.path, "/files/a%2Fb/c");
        assert_eq!(t.match_path, "/files/a%2Fb/c");
        assert_eq!(bad("/files/a%2F%2Fb"), BadTarget::EmptySegment);
        assert_eq!(bad("/files/%2F"), BadTarget::EmptySegment);
    }

    #[test]
    fn case_insensitive_rules_refuse_windows_names() {
        let iis = TargetRules {
            case_insensitive: true,
        };
        let t = parse(b"/Admin/X", HOST, iis).unwrap();
        assert_eq!(
            (t.path.as_ref(), t.match_path.as_ref()),
            ("/Admin/X", "/admin/x")
        );
        for raw in ["/admin./x", "/admin%20/x", "/admin::$DATA", "/ADMINI~1/x"] {
            assert_eq!(
                parse(raw.as_bytes(), HOST, iis),
                Err(BadTarget::WindowsName),
                "{raw}"
            );
        }
        assert!(parse(b"/admin./x", HOST, TargetRules::default()).is_ok());
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut seed: u32 = 7;
        for _ in 0..20_000 {
            let len = (seed % 24) as usize;
            let mut v = vec![b'/'];
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let alphabet = b"/%.;\\aZ2fF5c\x00\xc3\xa9?:~ ";
                v.push(alphabet[(seed >> 16) as usize % alphabet.len()]);
            }
            let _ = parse(&v, HOST, TargetRules::default());
            let _ = parse(
                &v,
                HOST,
                TargetRules {
                    case_insensitive: true,
                },
            );
        }
    }
}
