//! Identity to the upstream: which client headers are stripped, and which headers are
//! built from the session's identity. Compiled once from `[app.headers]`.
//!
//! Strip first: every header this app may inject, and every client header starting with
//! the app's strip prefix (default `X-Remote-`), is removed before anything else, so a
//! client can never pose as another user. Values are checked for CR, LF and NUL (such a
//! value is dropped, never sent), and once encoded for any other byte a header cannot hold
//! (a control byte sent raw under `utf8`: dropped too); multi-valued claims are joined
//! (`,` unless configured).
//!
//! Encoding per header: `percent` (the default) percent-encodes only what is not printable
//! ASCII (and `%` itself), so ASCII values such as e-mails and group IDs pass unchanged
//! while Entra's non-ASCII names reach Apache, IIS and Tomcat intact (`Zoë` → `Zo%C3%AB`;
//! decode with any URL decoder); `utf8` sends raw UTF-8 bytes; `base64` always encodes;
//! `rfc2047` sends `=?UTF-8?B?…?=` for non-ASCII values.

pub mod client;
pub mod jwt;

use crate::config::HeaderSpec;
use crate::identity::{alias_uris, claims, Identity, CLAIM_ALIASES};
use base64::Engine as _;
use std::collections::{BTreeMap, HashMap};

/// How a header value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Percent,
    Base64,
    Rfc2047,
}

impl Encoding {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "utf8" | "utf-8" | "raw" => Ok(Self::Utf8),
            "percent" => Ok(Self::Percent),
            "base64" => Ok(Self::Base64),
            "rfc2047" => Ok(Self::Rfc2047),
            other => Err(format!(
                "encoding \"{other}\": use utf8, percent, base64 or rfc2047"
            )),
        }
    }

    pub fn apply(self, v: &str) -> String {
        self.apply_owned(v.to_string())
    }

    /// As [`Encoding::apply`], reusing `v` when it needs no change (the common case:
    /// printable ASCII under `percent`, `rfc2047` or `utf8`).
    pub fn apply_owned(self, v: String) -> String {
        // Branch-free over the bytes (vectorises), then a memchr-style search for '%'.
        let plain = || {
            v.bytes()
                .fold(true, |ok, b| ok & (b.wrapping_sub(0x20) < 0x5f))
                && !v.contains('%')
        };
        match self {
            Self::Utf8 => return v,
            Self::Percent | Self::Rfc2047 if plain() => return v,
            _ => {}
        }
        let v = v.as_str();
        match self {
            Self::Utf8 => v.to_string(),
            Self::Base64 => base64::engine::general_purpose::STANDARD.encode(v),
            Self::Rfc2047 if v.is_ascii() => v.to_string(),
            Self::Rfc2047 => format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(v)
            ),
            Self::Percent => {
                let mut out = String::with_capacity(v.len());
                for b in v.bytes() {
                    if (0x20..0x7f).contains(&b) && b != b'%' {
                        out.push(char::from(b));
                    } else {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
                out
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    NameId,
    SessionIndex,
    /// AuthnInstant of the sign-in, RFC 3339.
    AuthInstant,
    /// A fixed value (`const:…`).
    Const(String),
    /// Claim URIs tried in order (an alias may name several).
    Claim(Vec<String>),
}

impl Source {
    pub fn parse(spec: &str) -> Result<Source, String> {
        match spec {
            "name_id" | "nameid" => Ok(Source::NameId),
            "session_index" => Ok(Source::SessionIndex),
            "auth_instant" => Ok(Source::AuthInstant),
            s if s.starts_with("const:") => Ok(Source::Const(s[6..].to_string())),
            s if s.contains("://") || s.starts_with("urn:") => Ok(Source::Claim(vec![s.into()])),
            // A claim name without a namespace, as Entra sends custom claims (`UserEmail`).
            s if s.starts_with("claim:") && s.len() > 6 => Ok(Source::Claim(vec![s[6..].into()])),
            s => match alias_uris(s) {
                Some(uris) => Ok(Source::Claim(uris.iter().map(|u| u.to_string()).collect())),
                None => Err(format!(
                    "unknown source \"{s}\": use name_id, session_index, auth_instant, const:VALUE, a claim URI, claim:NAME, or one of {}",
                    CLAIM_ALIASES
                        .iter()
                        .map(|(a, _)| *a)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
        }
    }

    fn values<'a>(&'a self, id: &'a Identity) -> Vec<std::borrow::Cow<'a, str>> {
        use std::borrow::Cow;
        match self {
            Source::NameId => vec![Cow::Borrowed(id.name_id.as_str())],
            Source::SessionIndex => id
                .session_index
                .as_deref()
                .map(Cow::Borrowed)
                .into_iter()
                .collect(),
            Source::AuthInstant => id
                .auth_instant
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| Cow::Owned(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
                .into_iter()
                .collect(),
            Source::Const(v) => vec![Cow::Borrowed(v.as_str())],
            Source::Claim(uris) => uris
                .iter()
                .map(|u| id.claim(u))
                .find(|v| !v.is_empty())
                .unwrap_or(&[])
                .iter()
                .map(|v| Cow::Borrowed(v.as_str()))
                .collect(),
        }
    }

    fn is_groups(&self) -> bool {
        matches!(self, Source::Claim(uris) if uris.iter().any(|u| u == claims::GROUPS))
    }
}

/// One header to inject.
#[derive(Debug, Clone)]
struct Entry {
    /// Lower-case name.
    name: String,
    /// The same as shared bytes: inserted into each upstream request without a copy.
    wire: bytes::Bytes,
    source: Source,
    encoding: Encoding,
    separator: String,
    default: Option<String>,
    /// Group object ID -> alias, when groups are sent as aliases.
    aliases: Option<HashMap<String, String>>,
}

/// The identity headers of one identity, ready for the upstream request.
pub type Prepared = std::sync::Arc<[(bytes::Bytes, http::HeaderValue)]>;

#[derive(Debug, Clone)]
pub struct HeaderMapping {
    entries: Vec<Entry>,
    strip_prefix: String,
    /// Other injected headers (the identity JWT), lower-case.
    also_strip: Vec<String>,
}

impl HeaderMapping {
    pub fn compile(
        headers: &[(String, HeaderSpec)],
        strip_prefix: &str,
    ) -> Result<Self, Vec<String>> {
        Self::compile_with_groups(headers, strip_prefix, &BTreeMap::new())
    }

    /// Compile with the app's group aliases (alias -> object ID) for `groups_as = "alias"`.
    pub fn compile_with_groups(
        headers: &[(String, HeaderSpec)],
        strip_prefix: &str,
        groups: &BTreeMap<String, String>,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut entries = Vec::new();
        for (name, spec) in headers {
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "host"
                    | "cookie"
                    | "authorization"
                    | "connection"
                    | "content-length"
                    | "transfer-encoding"
                    | "upgrade"
                    | "te"
                    | "trailer"
            ) {
                errors.push(format!("header \"{name}\": may not be set by the gateway"));
                continue;
            }
            let source = match Source::parse(&spec.source) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(format!("header \"{name}\": {e}"));
                    continue;
                }
            };
            let encoding = match spec.encoding.as_deref().map(Encoding::parse) {
                None => Encoding::Percent,
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    errors.push(format!("header \"{name}\": {e}"));
                    continue;
                }
            };
            let mut source = source;
            let aliases = match spec.groups_as.as_deref() {
                None | Some("id") => None,
                // The SCIM groups' display names (needs authoritative SCIM groups: the
                // gateway then sets them beside the groups; checked when assembling).
                Some("name") if source.is_groups() => {
                    source = Source::Claim(vec![claims::GROUP_NAMES.to_string()]);
                    None
                }
                Some("alias" | "name") if !source.is_groups() => {
                    errors.push(format!(
                        "header \"{name}\": groups_as applies to the groups claim"
                    ));
                    continue;
                }
                Some("alias") => Some(
                    groups
                        .iter()
                        .map(|(alias, id)| (id.to_ascii_lowercase(), alias.clone()))
                        .collect(),
                ),
                Some(other) => {
                    errors.push(format!(
                        "header \"{name}\": groups_as \"{other}\": use id, alias or name"
                    ));
                    continue;
                }
            };
            let default = spec.default.clone();
            if default
                .as_deref()
                .is_some_and(|d| d.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')))
            {
                errors.push(format!("header \"{name}\": default contains CR, LF or NUL"));
                continue;
            }
            entries.push(Entry {
                wire: bytes::Bytes::from(lower.clone().into_bytes()),
                name: lower,
                source,
                encoding,
                separator: spec.separator.clone().unwrap_or_else(|| ",".into()),
                default,
                aliases,
            });
        }
        if errors.is_empty() {
            Ok(HeaderMapping {
                entries,
                strip_prefix: strip_prefix.to_ascii_lowercase(),
                also_strip: Vec::new(),
            })
        } else {
            Err(errors)
        }
    }

    /// Strip this client header too (another header the gateway injects).
    pub fn also_strip(mut self, name: &str) -> Self {
        self.also_strip.push(name.to_ascii_lowercase());
        self
    }

    /// True for a client header that must not reach the upstream, in any letter case
    /// and with `_` read as `-` (see `client`). Runs on every header of every request:
    /// compares without allocating.
    pub fn must_strip(&self, name: &str) -> bool {
        let prefix = &self.strip_prefix;
        (!prefix.is_empty() && client::has_prefix(name, prefix))
            || self
                .entries
                .iter()
                .any(|e| client::same_name(&e.name, name))
            || self.also_strip.iter().any(|n| client::same_name(n, name))
    }

    /// Whether a header shows the SCIM groups' display names (`groups_as = "name"`).
    pub fn uses_group_names(&self) -> bool {
        self.entries.iter().any(
            |e| matches!(&e.source, Source::Claim(u) if u.iter().any(|u| u == claims::GROUP_NAMES)),
        )
    }

    /// The names of the injected headers (lower case), the JWT header included.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .map(|e| e.name.as_str())
            .chain(self.also_strip.iter().map(String::as_str))
    }

    /// Headers to inject for this identity. A value with CR, LF or NUL is left out.
    pub fn build(&self, identity: &Identity) -> Vec<(&str, String)> {
        self.build_with(identity, |e| e.name.as_str())
    }

    /// [`Self::build`] ready for the upstream request: names as shared bytes, values as
    /// header values. Built once per session in memory (`SessionRecord::headers`) and
    /// shared by its requests.
    pub fn prepare(&self, identity: &Identity) -> Prepared {
        self.build_with(identity, |e| e.wire.clone())
            .into_iter()
            .filter_map(|(name, value)| match http::HeaderValue::try_from(value) {
                Ok(value) => Some((name, value)),
                Err(_) => {
                    // A control byte sent raw (`utf8`): no header can hold it.
                    tracing::warn!(header = ?name, "identity value with a control byte dropped");
                    None
                }
            })
            .collect()
    }

    fn build_with<'a, N>(
        &'a self,
        identity: &Identity,
        name: impl Fn(&'a Entry) -> N,
    ) -> Vec<(N, String)> {
        let mut out = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let values = e.source.values(identity);
            let joined = match (values.len(), &e.aliases) {
                (0, _) => match &e.default {
                    Some(d) => d.clone(),
                    None => continue,
                },
                (1, None) => values
                    .into_iter()
                    .next()
                    .map(|v| v.into_owned())
                    .unwrap_or_default(),
                _ => {
                    let cap = values.iter().map(|v| v.len() + e.separator.len()).sum();
                    let mut out = String::with_capacity(cap);
                    for (i, v) in values.iter().enumerate() {
                        if i > 0 {
                            out.push_str(&e.separator);
                        }
                        let v = match &e.aliases {
                            Some(map) => map
                                .get(&v.to_ascii_lowercase())
                                .map(String::as_str)
                                .unwrap_or(v.as_ref()),
                            None => v.as_ref(),
                        };
                        out.push_str(v);
                    }
                    out
                }
            };
            if joined
                .bytes()
                .fold(false, |bad, b| bad | matches!(b, b'\r' | b'\n' | b'\0'))
            {
                tracing::warn!(header = %e.name, "identity value with CR/LF/NUL dropped");
                continue;
            }
            out.push((name(e), e.encoding.apply_owned(joined)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::claims;

    fn mapping() -> HeaderMapping {
        HeaderMapping::compile(
            &[
                ("X-Remote-User".into(), "name_id".into()),
                ("X-Remote-Groups".into(), "groups".into()),
                ("X-Email".into(), "email".into()),
                ("X-Oid".into(), claims::OBJECT_ID.into()),
            ],
            "X-Remote-",
        )
        .unwrap()
    }

    #[test]
    fn strips_prefix_and_configured_names() {
        let m = mapping();
        assert!(m.must_strip("x-remote-anything"));
        assert!(m.must_strip("X-EMAIL"));
        assert!(!m.must_strip("accept"));
    }

    #[test]
    fn builds_joined_values_and_drops_unsafe() {
        let m = mapping();
        let mut id = Identity {
            name_id: "a@example.com".into(),
            ..Default::default()
        };
        id.attributes
            .insert(claims::GROUPS.into(), vec!["g1".into(), "g2".into()]);
        id.attributes
            .insert(claims::EMAIL.into(), vec!["a@b\r\nX-Evil: 1".into()]);
        let h = m.build(&id);
        assert_eq!(
            h,
            vec![
                ("x-remote-user", "a@example.com".to_string()),
                ("x-remote-groups", "g1,g2".to_string())
            ]
        );
        // Ready for the wire: the same headers, as header values.
        let wire: Vec<(String, String)> = m
            .prepare(&id)
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let built: Vec<(String, String)> = h.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
        assert_eq!(wire, built);
    }

    #[test]
    fn a_control_byte_is_percent_encoded_or_dropped_never_sent() {
        let raw = HeaderSpec {
            encoding: Some("utf8".into()),
            ..HeaderSpec::from("name_id")
        };
        let m = HeaderMapping::compile(
            &[("X-Name".into(), "name_id".into()), ("X-Raw".into(), raw)],
            "X-Remote-",
        )
        .unwrap();
        let id = Identity {
            name_id: "ann\u{1}@example.com".into(),
            ..Default::default()
        };
        let wire = m.prepare(&id);
        assert_eq!(wire.len(), 1, "the raw value is dropped");
        assert_eq!(&wire[0].0[..], b"x-name");
        assert_eq!(wire[0].1.as_bytes(), b"ann%01@example.com");
    }

    #[test]
    fn unknown_sources_and_forbidden_names_are_all_reported() {
        let errs = HeaderMapping::compile(
            &[
                ("X-A".into(), "nope".into()),
                ("Cookie".into(), "email".into()),
            ],
            "X-Remote-",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2);
    }
}

#[cfg(test)]
mod encoding_tests {
    use super::Encoding;

    #[test]
    fn encodings() {
        assert_eq!(Encoding::Percent.apply("a@b.com, x"), "a@b.com, x");
        assert_eq!(Encoding::Percent.apply("Zoë 100%"), "Zo%C3%AB 100%25");
        assert_eq!(Encoding::Percent.apply("tab\there"), "tab%09here");
        assert_eq!(Encoding::Rfc2047.apply("plain"), "plain");
        assert_eq!(Encoding::Rfc2047.apply("Zoë"), "=?UTF-8?B?Wm/Dqw==?=");
        assert_eq!(Encoding::Base64.apply("Zoë"), "Wm/Dqw==");
        assert_eq!(Encoding::Utf8.apply("Zoë"), "Zoë");
        assert!(Encoding::parse("latin1").is_err());
    }
}
