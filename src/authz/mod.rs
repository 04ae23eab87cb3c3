//! Per-route access: compiled once at start-up from `[[app.route]]`, then a pure
//! `decide(identity, route)` on every request. No I/O here.
//!
//! Routes match the decoded path of a target that `gateway::target` has already
//! canonicalised (ambiguous targets never get here), by longest prefix on segment
//! boundaries: `"/admin/"` and `"/admin"` both cover `/admin` and `/admin/x`, never
//! `/admin-old`. A path no route names needs a signed-in user.

use crate::config::RouteConfig;
use crate::identity::Identity;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No sign-in needed.
    Public,
    /// A signed-in user who passes the rules.
    SignedIn(Rules),
}

/// The rules of a route, names resolved (group object IDs and user names lower-case).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules {
    pub allow_groups: Vec<String>,
    pub allow_roles: Vec<String>,
    pub allow_users: Vec<String>,
    pub require_all_groups: Vec<String>,
    /// Upper-case; empty: any method.
    pub methods: Vec<String>,
    pub deny_groups: Vec<String>,
    pub deny_roles: Vec<String>,
    pub deny_users: Vec<String>,
}

impl Rules {
    /// Whether any rule looks at group membership (SCIM-authoritative groups apply).
    pub fn uses_groups(&self) -> bool {
        !self.allow_groups.is_empty()
            || !self.require_all_groups.is_empty()
            || !self.deny_groups.is_empty()
    }

    /// No rule but methods: any signed-in user.
    fn is_open(&self) -> bool {
        !self.has_allow_list()
            && self.require_all_groups.is_empty()
            && self.deny_groups.is_empty()
            && self.deny_roles.is_empty()
            && self.deny_users.is_empty()
    }

    fn has_allow_list(&self) -> bool {
        !self.allow_groups.is_empty()
            || !self.allow_roles.is_empty()
            || !self.allow_users.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// The configured path prefix, or "(default)"; used in metrics and denial pages.
    pub name: std::sync::Arc<str>,
    pub access: Access,
    /// Allowed methods, also on public routes (upper-case; empty: any).
    pub methods: Vec<String>,
    /// `%2F` may reach this route's upstream.
    pub allow_encoded_slash: bool,
}

impl Route {
    pub fn uses_groups(&self) -> bool {
        matches!(&self.access, Access::SignedIn(r) if r.uses_groups())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No allow rule matched (not in the groups, roles or users).
    NotInGroups,
    /// The token carried Entra's overage link instead of groups, so membership is unknown.
    GroupsUnknown,
    /// A deny rule matched.
    Denied,
    /// The route does not take this method.
    MethodNotAllowed,
}

/// A decision and the rule that made it (for `ssogate authz check` and audit lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    pub decision: Decision,
    pub rule: std::borrow::Cow<'static, str>,
}

#[derive(Debug)]
pub struct Policy {
    /// Longest prefix first; prefixes decoded as match paths are (see [`route_prefix`]).
    routes: Vec<(String, Route)>,
    default: Route,
    case_insensitive: bool,
}

fn resolve_groups(
    names: &[String],
    aliases: &BTreeMap<String, String>,
    path: &str,
    errors: &mut Vec<String>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for g in names {
        match aliases.get(g) {
            Some(id) => ids.push(id.trim().to_ascii_lowercase()),
            None if looks_like_object_id(g) => ids.push(g.to_ascii_lowercase()),
            None => errors.push(format!(
                "route \"{path}\": group \"{g}\" is neither an alias in [app.groups] nor an Entra object ID"
            )),
        }
    }
    ids
}

impl Policy {
    /// Resolves group aliases; every unknown alias is reported. With `case_insensitive`,
    /// prefixes match regardless of case (the target's match path is lower-cased too).
    pub fn compile(
        routes: &[RouteConfig],
        aliases: &BTreeMap<String, String>,
        case_insensitive: bool,
    ) -> Result<Policy, Vec<String>> {
        let mut errors = Vec::new();
        let mut compiled = Vec::new();
        for r in routes {
            let lower = |v: &[String]| v.iter().map(|s| s.trim().to_lowercase()).collect();
            let access = if r.public {
                Access::Public
            } else {
                Access::SignedIn(Rules {
                    allow_groups: resolve_groups(&r.allow_groups, aliases, &r.path, &mut errors),
                    allow_roles: r.allow_roles.clone(),
                    allow_users: lower(&r.allow_users),
                    require_all_groups: resolve_groups(
                        &r.require_all_groups,
                        aliases,
                        &r.path,
                        &mut errors,
                    ),
                    methods: r.methods.clone(),
                    deny_groups: resolve_groups(&r.deny_groups, aliases, &r.path, &mut errors),
                    deny_roles: r.deny_roles.clone(),
                    deny_users: lower(&r.deny_users),
                })
            };
            compiled.push((
                route_prefix(&r.path, case_insensitive),
                Route {
                    name: r.path.as_str().into(),
                    access,
                    methods: r.methods.clone(),
                    allow_encoded_slash: r.allow_encoded_slash,
                },
            ));
        }
        compiled.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        if errors.is_empty() {
            Ok(Policy {
                routes: compiled,
                default: Route {
                    name: "(default)".into(),
                    access: Access::SignedIn(Rules::default()),
                    methods: Vec::new(),
                    allow_encoded_slash: false,
                },
                case_insensitive,
            })
        } else {
            Err(errors)
        }
    }

    /// The route covering a match path (`gateway::target::Target::match_path`).
    pub fn route(&self, match_path: &str) -> &Route {
        self.routes
            .iter()
            .find(|(prefix, _)| prefix_covers(prefix, match_path))
            .map(|(_, r)| r)
            .unwrap_or(&self.default)
    }

    /// Whether routes match regardless of case.
    pub fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }
}

/// A configured route path as a match prefix: percent-decoded like request paths (but
/// `%2F` kept), no trailing `/` (but the root), lower case when case-insensitive.
pub fn route_prefix(path: &str, case_insensitive: bool) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                let d = (h * 16 + l) as u8;
                if d == b'/' {
                    decoded.extend_from_slice(b"%2F");
                } else {
                    decoded.push(d);
                }
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let mut p = String::from_utf8_lossy(&decoded).into_owned();
    if !p.starts_with('/') {
        p.insert(0, '/');
    }
    while p.len() > 1 && p.ends_with('/') {
        p.pop();
    }
    if case_insensitive {
        p = p.to_lowercase();
    }
    p
}

/// Does a route prefix (from [`route_prefix`]) cover a match path? On segment
/// boundaries only: `/static` covers `/static` and `/static/x`, not `/static-admin`.
pub fn prefix_covers(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
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

/// `format!` only when explaining; a fixed word otherwise.
macro_rules! rule_text {
    ($explain:expr, $($arg:tt)*) => {
        if $explain {
            std::borrow::Cow::Owned(format!($($arg)*))
        } else {
            std::borrow::Cow::Borrowed("rule")
        }
    };
}

/// May this method reach this route at all (public routes included)?
pub fn method_allowed(route: &Route, method: &str) -> bool {
    route.methods.is_empty() || route.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
}

pub fn decide(identity: &Identity, route: &Route, method: &str) -> Decision {
    judge(identity, route, method, false).decision
}

/// The decision for a signed-in identity, and which rule made it. Order: methods, deny
/// rules, then the allow rules (any of groups, roles, users), then require_all_groups.
pub fn explain(identity: &Identity, route: &Route, method: &str) -> Explained {
    judge(identity, route, method, true)
}

/// The decision; the rule text only when `explain` (the request path never formats).
fn judge(identity: &Identity, route: &Route, method: &str, explain: bool) -> Explained {
    fn done(decision: Decision, rule: impl Into<std::borrow::Cow<'static, str>>) -> Explained {
        Explained {
            decision,
            rule: rule.into(),
        }
    }
    if !method_allowed(route, method) {
        return done(
            Decision::MethodNotAllowed,
            rule_text!(
                explain,
                "methods = {:?} does not include {method}",
                route.methods
            ),
        );
    }
    let rules = match &route.access {
        Access::Public => return done(Decision::Allow, "public route"),
        Access::SignedIn(r) => r,
    };
    // The common case, no rules: nothing to compare (and nothing to allocate).
    if rules.is_open() {
        return done(Decision::Allow, "any signed-in user");
    }
    let groups = identity.groups();
    // Group IDs were lower-cased at compile time; token values compare case-insensitively.
    let in_group = |g: &String| groups.iter().any(|t| t.eq_ignore_ascii_case(g));
    let user_is = |list: &[String]| {
        list.iter()
            .any(|u| u.eq_ignore_ascii_case(&identity.name_id))
    };
    let user = identity.name_id.as_str();
    let roles = identity.roles();
    if user_is(&rules.deny_users) {
        return done(
            Decision::Denied,
            rule_text!(explain, "deny_users includes {user}"),
        );
    }
    if let Some(r) = roles.iter().find(|r| rules.deny_roles.contains(r)) {
        return done(
            Decision::Denied,
            rule_text!(explain, "deny_roles includes role {r}"),
        );
    }
    if let Some(g) = rules.deny_groups.iter().find(|g| in_group(g)) {
        return done(
            Decision::Denied,
            rule_text!(explain, "deny_groups includes group {g}"),
        );
    }
    let overage = identity.groups_overage() && groups.is_empty();
    if rules.has_allow_list() {
        let by_user = user_is(&rules.allow_users);
        let by_role = roles.iter().find(|r| rules.allow_roles.contains(r));
        let by_group = rules.allow_groups.iter().find(|g| in_group(g));
        let reason = if by_user {
            Some(rule_text!(explain, "allow_users includes {user}"))
        } else if let Some(r) = by_role {
            Some(rule_text!(explain, "allow_roles includes role {r}"))
        } else {
            by_group.map(|g| rule_text!(explain, "allow_groups includes group {g}"))
        };
        let Some(reason) = reason else {
            if overage && !rules.allow_groups.is_empty() {
                return done(
                    Decision::GroupsUnknown,
                    "allow_groups, but the token has only the group overage link",
                );
            }
            return done(
                Decision::NotInGroups,
                "no allow_groups / allow_roles / allow_users rule matches",
            );
        };
        if let Some(missing) = rules.require_all_groups.iter().find(|g| !in_group(g)) {
            if overage {
                return done(
                    Decision::GroupsUnknown,
                    "require_all_groups, but the token has only the group overage link",
                );
            }
            return done(
                Decision::NotInGroups,
                rule_text!(explain, "require_all_groups: not in group {missing}"),
            );
        }
        return done(Decision::Allow, reason);
    }
    if let Some(missing) = rules.require_all_groups.iter().find(|g| !in_group(g)) {
        if overage {
            return done(
                Decision::GroupsUnknown,
                "require_all_groups, but the token has only the group overage link",
            );
        }
        return done(
            Decision::NotInGroups,
            rule_text!(explain, "require_all_groups: not in group {missing}"),
        );
    }
    done(
        Decision::Allow,
        if rules.require_all_groups.is_empty() {
            "any signed-in user"
        } else {
            "in every group of require_all_groups"
        },
    )
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
                ..Default::default()
            },
            RouteConfig {
                path: "/admin/".into(),
                allow_groups: vec!["admins".into()],
                ..Default::default()
            },
            RouteConfig {
                path: "/admin/reports/".into(),
                allow_groups: vec!["0a1b2c3d-0000-0000-0000-00000000000f".into()],
                ..Default::default()
            },
        ];
        let mut aliases = BTreeMap::new();
        aliases.insert(
            "admins".to_string(),
            "E7F3C0BA-0000-0000-0000-000000000001".to_string(),
        );
        Policy::compile(&routes, &aliases, false).unwrap()
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
        assert_eq!(p.route("/admin/reports/x").name.as_ref(), "/admin/reports/");
        assert_eq!(p.route("/admin/x").name.as_ref(), "/admin/");
        assert_eq!(p.route("/admin").name.as_ref(), "/admin/");
        assert_eq!(p.route("/").access, Access::SignedIn(Rules::default()));
        assert_eq!(
            p.route("/publicity").access,
            Access::SignedIn(Rules::default())
        );
    }

    #[test]
    fn routes_match_on_segment_boundaries() {
        let p = route_prefix("/static", false);
        assert!(prefix_covers(&p, "/static"));
        assert!(prefix_covers(&p, "/static/x.css"));
        assert!(!prefix_covers(&p, "/static-admin/"));
        assert!(!prefix_covers(&p, "/staticx"));
        let p = route_prefix("/admin/", false);
        assert_eq!(p, "/admin");
        assert!(prefix_covers(&p, "/admin") && prefix_covers(&p, "/admin/"));
        assert!(prefix_covers(&route_prefix("/", false), "/anything"));
        assert_eq!(route_prefix("/my%20docs/", false), "/my docs");
        assert_eq!(route_prefix("/Admin/", true), "/admin");
        let routes = vec![RouteConfig {
            path: "/static".into(),
            public: true,
            ..Default::default()
        }];
        let p = Policy::compile(&routes, &BTreeMap::new(), false).unwrap();
        assert_eq!(p.route("/static-admin/x").name.as_ref(), "(default)");
        assert_eq!(p.route("/static/app.js").access, Access::Public);
    }

    #[test]
    fn groups_any_of_alias_or_object_id() {
        let p = policy();
        let admin = p.route("/admin/");
        assert_eq!(
            decide(
                &user(&["e7f3c0ba-0000-0000-0000-000000000001"]),
                admin,
                "GET"
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(&user(&["other"]), admin, "GET"),
            Decision::NotInGroups
        );
        assert_eq!(decide(&user(&[]), p.route("/x"), "GET"), Decision::Allow);
        let mut overage = user(&[]);
        overage
            .attributes
            .insert(claims::GROUPS_OVERAGE.into(), vec!["https://graph".into()]);
        assert_eq!(decide(&overage, admin, "GET"), Decision::GroupsUnknown);
    }

    #[test]
    fn roles_users_all_groups_methods_and_deny() {
        let mut aliases = BTreeMap::new();
        aliases.insert(
            "a".to_string(),
            "0a1b2c3d-0000-0000-0000-00000000000a".to_string(),
        );
        aliases.insert(
            "b".to_string(),
            "0a1b2c3d-0000-0000-0000-00000000000b".to_string(),
        );
        let routes = vec![RouteConfig {
            path: "/ops/".into(),
            allow_roles: vec!["Operator".into()],
            allow_users: vec!["Boss@Example.com".into()],
            require_all_groups: vec!["a".into()],
            methods: vec!["GET".into(), "POST".into()],
            deny_groups: vec!["b".into()],
            deny_users: vec!["mallory@example.com".into()],
            ..Default::default()
        }];
        let p = Policy::compile(&routes, &aliases, false).unwrap();
        let r = p.route("/ops/x");
        let mk = |name: &str, groups: &[&str], roles: &[&str]| {
            let mut id = user(groups);
            id.name_id = name.into();
            id.attributes.insert(
                claims::ROLES.into(),
                roles.iter().map(|r| r.to_string()).collect(),
            );
            id
        };
        let ga = "0a1b2c3d-0000-0000-0000-00000000000a";
        let gb = "0a1b2c3d-0000-0000-0000-00000000000b";
        assert_eq!(
            decide(&mk("op@example.com", &[ga], &["Operator"]), r, "GET"),
            Decision::Allow
        );
        assert_eq!(
            decide(&mk("op@example.com", &[], &["Operator"]), r, "GET"),
            Decision::NotInGroups
        );
        assert_eq!(
            decide(&mk("boss@example.com", &[ga], &[]), r, "POST"),
            Decision::Allow
        );
        assert_eq!(
            decide(&mk("op@example.com", &[ga], &["Operator"]), r, "DELETE"),
            Decision::MethodNotAllowed
        );
        assert_eq!(
            decide(&mk("op@example.com", &[ga, gb], &["Operator"]), r, "GET"),
            Decision::Denied
        );
        assert_eq!(
            decide(&mk("mallory@example.com", &[ga], &["Operator"]), r, "GET"),
            Decision::Denied
        );
        assert_eq!(
            decide(&mk("x@example.com", &[ga], &["Reader"]), r, "GET"),
            Decision::NotInGroups
        );
        let e = explain(&mk("op@example.com", &[ga], &["Operator"]), r, "GET");
        assert_eq!(e.rule, "allow_roles includes role Operator");
    }

    #[test]
    fn unknown_alias_is_reported() {
        let routes = vec![RouteConfig {
            path: "/x/".into(),
            allow_groups: vec!["nope".into(), "also-nope".into()],
            ..Default::default()
        }];
        let errs = Policy::compile(&routes, &BTreeMap::new(), false).unwrap_err();
        assert_eq!(errs.len(), 2);
    }
}
