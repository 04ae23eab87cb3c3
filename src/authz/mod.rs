//! Per-route access: compiled once at start-up from `[[app.route]]`, then a pure
//! `decide(identity, route)` on every request. No I/O here.
//!
//! Paths are matched after normalisation (percent-decoding, `\` as `/`, `//` collapsed,
//! dot segments resolved), so `/public/..%2fadmin/` cannot borrow the public route's
//! policy to reach `/admin/`. Matching is by longest prefix; a route `"/admin/"` also
//! covers the bare `"/admin"`. A path no route names needs a signed-in user.

use crate::config::RouteConfig;
use crate::identity::Identity;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No sign-in needed.
    Public,
    /// Any signed-in user.
    Authenticated,
    /// A signed-in user in at least one of these Entra group object IDs.
    AnyGroup(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Route {
    /// The configured path prefix, or "(default)"; used in metrics and denial pages.
    pub name: String,
    pub access: Access,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The user is in none of the route's groups.
    NotInGroups,
    /// The token carried Entra's overage link instead of groups, so membership is unknown.
    GroupsUnknown,
}

#[derive(Debug)]
pub struct Policy {
    /// Longest prefix first.
    routes: Vec<(String, Route)>,
    default: Route,
}

impl Policy {
    /// Resolves group aliases; every unknown alias is reported.
    pub fn compile(
        routes: &[RouteConfig],
        aliases: &BTreeMap<String, String>,
    ) -> Result<Policy, Vec<String>> {
        let mut errors = Vec::new();
        let mut compiled = Vec::new();
        for r in routes {
            let access = if r.public {
                Access::Public
            } else if r.allow_groups.is_empty() {
                Access::Authenticated
            } else {
                let mut ids = Vec::new();
                for g in &r.allow_groups {
                    match aliases.get(g) {
                        Some(id) => ids.push(id.trim().to_ascii_lowercase()),
                        None if looks_like_object_id(g) => ids.push(g.to_ascii_lowercase()),
                        None => errors.push(format!(
                            "route \"{}\": group \"{g}\" is neither an alias in [app.groups] nor an Entra object ID",
                            r.path
                        )),
                    }
                }
                Access::AnyGroup(ids)
            };
            compiled.push((
                normalize_path(&r.path),
                Route {
                    name: r.path.clone(),
                    access,
                },
            ));
        }
        compiled.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        if errors.is_empty() {
            Ok(Policy {
                routes: compiled,
                default: Route {
                    name: "(default)".into(),
                    access: Access::Authenticated,
                },
            })
        } else {
            Err(errors)
        }
    }

    /// The route for a request path (query included or not).
    pub fn route(&self, raw_path: &str) -> &Route {
        let path = normalize_path(raw_path.split('?').next().unwrap_or(""));
        self.routes
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, &path))
            .map(|(_, r)| r)
            .unwrap_or(&self.default)
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        || (prefix.len() > 1 && prefix.ends_with('/') && path == &prefix[..prefix.len() - 1])
}

/// Entra group object IDs are GUIDs.
fn looks_like_object_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn decide(identity: &Identity, route: &Route) -> Decision {
    match &route.access {
        Access::Public | Access::Authenticated => Decision::Allow,
        Access::AnyGroup(ids) => {
            let member = identity
                .groups()
                .iter()
                .any(|g| ids.iter().any(|id| id.eq_ignore_ascii_case(g)));
            if member {
                Decision::Allow
            } else if identity.groups_overage() {
                Decision::GroupsUnknown
            } else {
                Decision::NotInGroups
            }
        }
    }
}

/// Percent-decode, treat `\` as `/`, collapse `//`, resolve `.` and `..`.
/// The result is only used for matching; the request goes upstream unchanged.
pub fn normalize_path(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).collect::<Vec<u8>>();
    let decoded = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len() + 1);
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() || (decoded.ends_with('/') && !out.is_empty()) {
        path.push('/');
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::claims;

    fn policy() -> Policy {
        let routes = vec![
            RouteConfig {
                path: "/public/".into(),
                public: true,
                allow_groups: vec![],
            },
            RouteConfig {
                path: "/admin/".into(),
                public: false,
                allow_groups: vec!["admins".into()],
            },
            RouteConfig {
                path: "/admin/reports/".into(),
                public: false,
                allow_groups: vec!["0a1b2c3d-0000-0000-0000-00000000000f".into()],
            },
        ];
        let mut aliases = BTreeMap::new();
        aliases.insert(
            "admins".to_string(),
            "E7F3C0BA-0000-0000-0000-000000000001".to_string(),
        );
        Policy::compile(&routes, &aliases).unwrap()
    }

    fn user(groups: &[&str]) -> Identity {
        let mut id = Identity::default();
        id.attributes.insert(
            claims::GROUPS.into(),
            groups.iter().map(|g| g.to_string()).collect(),
        );
        id
    }

    #[test]
    fn longest_prefix_wins_and_default_requires_sign_in() {
        let p = policy();
        assert_eq!(p.route("/public/a.css").access, Access::Public);
        assert_eq!(p.route("/admin/reports/x").name, "/admin/reports/");
        assert_eq!(p.route("/admin/x?y=1").name, "/admin/");
        assert_eq!(p.route("/admin").name, "/admin/");
        assert_eq!(p.route("/").access, Access::Authenticated);
        assert_eq!(p.route("/publicity").access, Access::Authenticated);
    }

    #[test]
    fn traversal_cannot_borrow_a_public_route() {
        let p = policy();
        for path in [
            "/public/../admin/",
            "/public/..%2fadmin/x",
            "/public/%2e%2e/admin/x",
            "/public\\..\\admin\\x",
            "//admin/x",
            "/./admin/x",
        ] {
            assert_eq!(p.route(path).name, "/admin/", "{path}");
        }
    }

    #[test]
    fn groups_any_of_alias_or_object_id() {
        let p = policy();
        let admin = p.route("/admin/");
        assert_eq!(
            decide(&user(&["e7f3c0ba-0000-0000-0000-000000000001"]), admin),
            Decision::Allow
        );
        assert_eq!(decide(&user(&["other"]), admin), Decision::NotInGroups);
        assert_eq!(decide(&user(&[]), p.route("/x")), Decision::Allow);
        let mut overage = user(&[]);
        overage
            .attributes
            .insert(claims::GROUPS_OVERAGE.into(), vec!["https://graph".into()]);
        assert_eq!(decide(&overage, admin), Decision::GroupsUnknown);
    }

    #[test]
    fn unknown_alias_is_reported() {
        let routes = vec![RouteConfig {
            path: "/x/".into(),
            public: false,
            allow_groups: vec!["nope".into(), "also-nope".into()],
        }];
        let errs = Policy::compile(&routes, &BTreeMap::new()).unwrap_err();
        assert_eq!(errs.len(), 2);
    }
}
