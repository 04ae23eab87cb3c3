//! The session cookie. We never panic on hostile input: `read` tolerates malformed
//! pairs, other cookies and several `Cookie` headers, and accepts only a value that
//! `SessionId::parse` accepts.

use cookie::{Cookie, SameSite};
use std::time::Duration;

use super::SessionId;

const HOST_PREFIX: &str = "__Host-";
/// Between the session cookie's name and a binding's tag: `__Host-ssogate-login-<tag>`.
const BINDING_INFIX: &str = "-login-";

/// How the session cookie is named and flagged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieSettings {
    /// Base name (e.g. `ssogate`); see [`CookieSettings::cookie_name`].
    pub name: String,
    /// Served over HTTPS: adds `Secure` and the `__Host-` prefix.
    pub secure: bool,
}

impl CookieSettings {
    /// Effective cookie name: `"__Host-" + name` when secure (the prefix requires
    /// `Secure`, `Path=/` and no `Domain`, which is what we send); `name` otherwise.
    pub fn cookie_name(&self) -> String {
        if self.secure && !self.name.starts_with(HOST_PREFIX) {
            format!("{HOST_PREFIX}{}", self.name)
        } else {
            self.name.clone()
        }
    }

    /// A cookie the gateway itself sets (never forwarded to the upstream): the session
    /// cookie and the sign-in bindings.
    pub fn is_gateway_cookie(&self, n: &str) -> bool {
        self.is_cookie_name(n)
            || n.strip_prefix(&self.cookie_name())
                .is_some_and(|rest| rest.starts_with(BINDING_INFIX))
    }

    /// The name of the binding cookie of one pending sign-in (by its hash): several
    /// tabs signing in at once each have their own.
    fn binding_name(&self, binding_hash: &str) -> String {
        let tag = binding_hash.get(..16).unwrap_or(binding_hash);
        format!("{}{BINDING_INFIX}{tag}", self.cookie_name())
    }

    /// `Set-Cookie` for a sign-in's browser binding: the random `token` (the store keeps
    /// only its hash), for `max_age`. It must come back on the IdP's cross-site POST to
    /// the ACS: `SameSite=None; Secure` under https. Over plain http (`cookie_secure =
    /// false`, the demo) no SameSite is set: browsers treat it as Lax, which reaches a
    /// same-site ACS (the demo's IdP on another port of 127.0.0.1) but not a cross-site
    /// one beyond Chromium's 2-minute allowance (see the README).
    pub fn binding_cookie(&self, token: &str, binding_hash: &str, max_age: Duration) -> String {
        let mut c = Cookie::build((self.binding_name(binding_hash), token.to_owned()))
            .http_only(true)
            .path("/")
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age.as_secs()).unwrap_or(600),
            ))
            .build();
        if self.secure {
            c.set_same_site(SameSite::None);
        }
        c.to_string()
    }

    /// `Set-Cookie` that removes a sign-in's binding cookie.
    pub fn clear_binding_cookie(&self, binding_hash: &str) -> String {
        let mut c = Cookie::build((self.binding_name(binding_hash), String::new()))
            .http_only(true)
            .path("/")
            .secure(self.secure)
            .build();
        if self.secure {
            c.set_same_site(SameSite::None);
        }
        c.make_removal();
        c.to_string()
    }

    /// The binding token this browser holds for a pending sign-in, if any.
    pub fn read_binding<'a>(
        &self,
        binding_hash: &str,
        cookie_headers: impl IntoIterator<Item = &'a str>,
    ) -> Option<&'a str> {
        let name = self.binding_name(binding_hash);
        cookie_headers
            .into_iter()
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim())
    }

    /// `n == self.cookie_name()`, without building the name (every request reads it).
    fn is_cookie_name(&self, n: &str) -> bool {
        if self.secure && !self.name.starts_with(HOST_PREFIX) {
            n.strip_prefix(HOST_PREFIX) == Some(self.name.as_str())
        } else {
            n == self.name
        }
    }

    fn base(&self, value: String) -> Cookie<'static> {
        Cookie::build((self.cookie_name(), value))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.secure)
            .build()
    }

    /// `Set-Cookie` value for a new session: `HttpOnly`, `SameSite=Lax`, `Path=/`,
    /// `Secure` when secure, no `Domain`. A browser-session cookie (no `Max-Age`): the
    /// store enforces the lifetime.
    pub fn set_cookie(&self, id: &SessionId) -> String {
        self.base(id.as_cookie_value().to_owned()).to_string()
    }

    /// `Set-Cookie` value that removes the session cookie (empty value, `Max-Age=0`,
    /// an `Expires` in the past), with the same attributes as `set_cookie`.
    pub fn clear_cookie(&self) -> String {
        let mut c = self.base(String::new());
        c.make_removal();
        c.to_string()
    }

    /// The session ID from all `Cookie` header values of a request; the first value
    /// under our name that parses wins.
    pub fn read<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<SessionId> {
        cookie_headers
            .into_iter()
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .filter(|(n, _)| self.is_cookie_name(n.trim()))
            .find_map(|(_, v)| {
                let v = v.trim();
                // RFC 6265 allows a DQUOTE-wrapped value.
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                SessionId::parse(v)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secure: bool) -> CookieSettings {
        CookieSettings {
            name: "ssogate".into(),
            secure,
        }
    }

    #[test]
    fn host_prefix_when_secure() {
        assert_eq!(settings(true).cookie_name(), "__Host-ssogate");
        assert_eq!(settings(false).cookie_name(), "ssogate");
        let already = CookieSettings {
            name: "__Host-x".into(),
            secure: true,
        };
        assert_eq!(already.cookie_name(), "__Host-x");
    }

    #[test]
    fn set_cookie_attributes() {
        let id = SessionId::generate();
        let s = settings(true).set_cookie(&id);
        assert!(s.starts_with(&format!("__Host-ssogate={}", id.as_cookie_value())));
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
            assert!(s.contains(attr), "{s} lacks {attr}");
        }
        assert!(!s.contains("Domain"));
        assert!(!s.contains("Max-Age"));

        let plain = settings(false).set_cookie(&id);
        assert!(plain.starts_with("ssogate="));
        assert!(!plain.contains("Secure"));
        assert!(plain.contains("HttpOnly"));
    }

    #[test]
    fn binding_cookies_cross_sites_under_https_and_are_ours() {
        let s = settings(true);
        let c = s.binding_cookie("tok", "0123456789abcdef0123", Duration::from_secs(600));
        assert!(
            c.starts_with("__Host-ssogate-login-0123456789abcdef=tok"),
            "{c}"
        );
        for attr in [
            "HttpOnly",
            "SameSite=None",
            "Secure",
            "Path=/",
            "Max-Age=600",
        ] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
        assert!(s.is_gateway_cookie("__Host-ssogate-login-0123456789abcdef"));
        assert!(s.is_gateway_cookie("__Host-ssogate"));
        assert!(!s.is_gateway_cookie("__Host-ssogatex"));
        assert_eq!(
            s.read_binding(
                "0123456789abcdef0123",
                ["a=b; __Host-ssogate-login-0123456789abcdef=tok; c=d"]
            ),
            Some("tok")
        );
        assert_eq!(
            s.read_binding("ffff", ["__Host-ssogate-login-0123=tok"]),
            None
        );
        let plain = settings(false).binding_cookie("t", "ab", Duration::from_secs(60));
        assert!(
            !plain.contains("SameSite") && !plain.contains("Secure"),
            "{plain}"
        );
        assert!(s
            .clear_binding_cookie("0123456789abcdef")
            .contains("Max-Age=0"));
    }

    #[test]
    fn clear_cookie_expires_it() {
        let s = settings(true).clear_cookie();
        assert!(s.starts_with("__Host-ssogate=;"), "{s}");
        assert!(s.contains("Max-Age=0"));
        assert!(s.contains("Path=/"));
        assert!(s.contains("Secure"));
    }

    #[test]
    fn read_among_other_cookies_and_headers() {
        let id = SessionId::generate();
        let v = id.as_cookie_value();
        let s = settings(true);
        let h1 = "a=b; junk; =; ssogate=notit; __Host-ssogateX=1".to_string();
        let h2 = format!("x=y;__Host-ssogate={v} ; z=1");
        assert_eq!(s.read([h1.as_str(), h2.as_str()]), Some(id.clone()));
        assert_eq!(
            s.read([format!("__Host-ssogate=\"{v}\"").as_str()]),
            Some(id.clone())
        );
        // a bad value first, then a good one
        let h3 = format!("__Host-ssogate=bad; __Host-ssogate={v}");
        assert_eq!(s.read([h3.as_str()]), Some(id.clone()));
        // not secure: the unprefixed name
        assert_eq!(
            settings(false).read([format!("ssogate={v}").as_str()]),
            Some(id)
        );
        assert_eq!(s.read([]), None);
        assert_eq!(s.read([""]), None);
        assert_eq!(s.read([";;;==;"]), None);
    }

    #[test]
    fn read_rejects_tampered_values() {
        let id = SessionId::generate();
        let v = id.as_cookie_value();
        let s = settings(false);
        for bad in [
            format!("ssogate={}", &v[..42]),
            format!("ssogate={v}x"),
            format!("ssogate={}+", &v[..42]),
            format!("ssogate={}%", &v[..42]),
            format!("ssogate={}", "é".repeat(22)),
            "ssogate=".to_string(),
        ] {
            assert_eq!(s.read([bad.as_str()]), None, "{bad}");
        }
        // the right value under the prefixed name is not read when not secure
        assert_eq!(s.read([format!("__Host-ssogate={v}").as_str()]), None);
    }
}
