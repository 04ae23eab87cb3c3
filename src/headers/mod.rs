//! Identity to the upstream: which client headers are stripped, and which headers are
//! built from the session's identity. Compiled once from `[app.headers]`.
//!
//! Strip first: every header this app may inject, and every client header starting with
//! the app's strip prefix (default `X-Remote-`), is removed before anything else, so a
//! client can never pose as another user. Values are checked for CR, LF and NUL (such a
//! value is dropped, never sent); multi-valued claims are comma-joined.

use crate::identity::{alias_uris, Identity, CLAIM_ALIASES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    NameId,
    SessionIndex,
    /// Claim URIs tried in order (an alias may name several).
    Claim(Vec<String>),
}

impl Source {
    pub fn parse(spec: &str) -> Result<Source, String> {
        match spec {
            "name_id" | "nameid" => Ok(Source::NameId),
            "session_index" => Ok(Source::SessionIndex),
            s if s.contains("://") || s.starts_with("urn:") => Ok(Source::Claim(vec![s.into()])),
            // A claim name without a namespace, as Entra sends custom claims (`UserEmail`).
            s if s.starts_with("claim:") && s.len() > 6 => Ok(Source::Claim(vec![s[6..].into()])),
            s => match alias_uris(s) {
                Some(uris) => Ok(Source::Claim(uris.iter().map(|u| u.to_string()).collect())),
                None => Err(format!(
                    "unknown source \"{s}\": use name_id, session_index, a claim URI, claim:NAME, or one of {}",
                    CLAIM_ALIASES
                        .iter()
                        .map(|(a, _)| *a)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
        }
    }

    fn values<'a>(&self, id: &'a Identity) -> Vec<&'a str> {
        match self {
            Source::NameId => vec![id.name_id.as_str()],
            Source::SessionIndex => id.session_index.as_deref().into_iter().collect(),
            Source::Claim(uris) => uris
                .iter()
                .map(|u| id.claim(u))
                .find(|v| !v.is_empty())
                .unwrap_or(&[])
                .iter()
                .map(String::as_str)
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HeaderMapping {
    /// (lower-case header name, source)
    entries: Vec<(String, Source)>,
    strip_prefix: String,
    /// Other injected headers (the identity JWT), lower-case.
    also_strip: Vec<String>,
}

impl HeaderMapping {
    pub fn compile(headers: &[(String, String)], strip_prefix: &str) -> Result<Self, Vec<String>> {
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
            match Source::parse(spec) {
                Ok(s) => entries.push((lower, s)),
                Err(e) => errors.push(format!("header \"{name}\": {e}")),
            }
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

    /// True for a client header that must not reach the upstream.
    pub fn must_strip(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        (!self.strip_prefix.is_empty() && lower.starts_with(&self.strip_prefix))
            || self.entries.iter().any(|(n, _)| *n == lower)
            || self.also_strip.contains(&lower)
    }

    /// Headers to inject for this identity. A value with CR, LF or NUL is left out.
    pub fn build(&self, identity: &Identity) -> Vec<(&str, String)> {
        let mut out = Vec::with_capacity(self.entries.len());
        for (name, source) in &self.entries {
            let values = source.values(identity);
            if values.is_empty() {
                continue;
            }
            let joined = values.join(",");
            if joined.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
                tracing::warn!(header = %name, "identity value with CR/LF/NUL dropped");
                continue;
            }
            out.push((name.as_str(), joined));
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
