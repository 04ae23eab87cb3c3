//! Every audit event, typed, in one place (as `metrics` holds every metric): one function
//! per event, each writing one line on the target `ssogate::audit` with a fixed event
//! name and fixed field names. `docs/logging.md` documents each; a test keeps the two
//! lists equal, and another that no other module writes on this target.
//!
//! Lines written while a request is handled carry its `request_id` (and `trace_id`, when
//! the client sent a W3C `traceparent`) from the request's span (`logging::request_span`).
//! Nothing here takes assertion contents, attributes or tokens: only names the gateway
//! chose (reasons, apps, routes), identifiers and counts. The one text from outside is
//! the IdP's own status (`detail` of a failed sign-in: status codes and Entra's AADSTS
//! message), which is what an administrator needs to see.

use tracing::{error, info, warn};

/// The audit events' names, as `docs/logging.md` lists them.
pub const EVENTS: &[&str] = &[
    "login",
    "login_start_failed",
    "logout",
    "logout_confirmed",
    "access_denied",
    "request_refused",
    "scim_unauthorized",
    "scim_refused",
    "scim_change",
    "scim_user_enabled",
    "scim_user_disabled",
    "scim_membership",
    "sessions_revoked",
    "idp_metadata_changed",
    "directory_reindexed",
    "config_reloaded",
];

/// A user signed in to `app`.
pub fn login_succeeded(app: &str, assertion_id: &str) {
    info!(target: "ssogate::audit", event = "login", app, result = "success", assertion_id);
}

/// A sign-in was refused: `reason` is the metric's reason label; `detail` what the
/// administrator needs (the check that failed, or the IdP's status and AADSTS message).
pub fn login_failed(app: &str, reason: &str, detail: Option<&str>) {
    warn!(target: "ssogate::audit", event = "login", app, result = "failure", reason, detail);
}

/// A sign-in could not be started (no metadata yet, or the request could not be made).
pub fn login_start_failed(app: &str, reason: &str, detail: Option<&str>) {
    warn!(target: "ssogate::audit", event = "login_start_failed", app, reason, detail);
}

/// A sign-out ended: SP-initiated (`at_idp`: it goes on to the IdP).
pub fn logout_sp(app: &str, had_session: bool, at_idp: bool) {
    info!(target: "ssogate::audit", event = "logout", app, initiator = "sp", result = "success", had_session, at_idp);
}

/// The IdP asked for a sign-out (front-channel SLO) and `sessions_ended` ended.
pub fn logout_idp(app: &str, sessions_ended: usize) {
    info!(target: "ssogate::audit", event = "logout", app, initiator = "idp", result = "success", sessions_ended);
}

/// A sign-out failed; `reason` is the metric's reason label.
pub fn logout_failed(app: &str, initiator: &str, reason: &str) {
    warn!(target: "ssogate::audit", event = "logout", app, initiator, result = "failure", reason);
}

/// The IdP confirmed an SP-initiated sign-out (its LogoutResponse).
pub fn logout_confirmed(app: &str) {
    info!(target: "ssogate::audit", event = "logout_confirmed", app);
}

/// A signed-in user was refused a route.
pub fn access_denied(app: &str, route: &str, reason: &str) {
    info!(target: "ssogate::audit", event = "access_denied", app, route, reason);
}

/// A request was refused before any route was judged (its target, its origin, its
/// caller); `reason` is the metric's reason label.
pub fn request_refused(reason: &str) {
    warn!(target: "ssogate::audit", event = "request_refused", reason);
}

/// A SCIM request came without a valid bearer token.
pub fn scim_unauthorized() {
    warn!(target: "ssogate::audit", event = "scim_unauthorized");
}

/// A SCIM request exceeded a limit (`limit`: which).
pub fn scim_refused(limit: &str, status: u16) {
    warn!(target: "ssogate::audit", event = "scim_refused", limit, status);
}

/// A SCIM resource changed.
pub fn scim_change(resource: &str, scim_id: &str, op: &str) {
    info!(target: "ssogate::audit", event = "scim_change", resource, scim_id, op);
}

/// A SCIM user was set active again.
pub fn scim_user_enabled(scim_id: &str) {
    info!(target: "ssogate::audit", event = "scim_user_enabled", scim_id);
}

/// A SCIM user was set inactive (their sessions end: `sessions_revoked` follows).
pub fn scim_user_disabled(scim_id: &str) {
    info!(target: "ssogate::audit", event = "scim_user_disabled", scim_id);
}

/// A SCIM group's members changed.
pub fn scim_membership(group: &str, added: usize, removed: usize) {
    info!(target: "ssogate::audit", event = "scim_membership", group, added, removed);
}

/// A user's sessions were ended (`cause`: scim_deactivated, scim_deleted, scim_renamed,
/// cli); `scim_id` when SCIM caused it.
pub fn sessions_revoked(cause: &str, scim_id: Option<&str>, sessions: usize) {
    info!(target: "ssogate::audit", event = "sessions_revoked", cause, scim_id, result = "success", sessions);
}

/// Ending a user's sessions failed: they may still be signed in until their sessions
/// expire.
pub fn sessions_revoke_failed(cause: &str, scim_id: Option<&str>, error: &str) {
    error!(target: "ssogate::audit", event = "sessions_revoked", cause, scim_id, result = "failure", error, "could not end the user's sessions");
}

/// The IdP's metadata (its signing keys) changed on refresh.
pub fn idp_metadata_changed(app: &str, keys: usize, added: usize, removed: usize, url: &str) {
    info!(target: "ssogate::audit", event = "idp_metadata_changed", app, keys, added, removed, url);
}

/// The SCIM directory's indexes were rebuilt (`ssogate directory reindex`).
pub fn directory_reindexed(cause: &str) {
    info!(target: "ssogate::audit", event = "directory_reindexed", cause);
}

/// A reload (SIGHUP, `ssogate reload`) took effect: `generation` reloads so far.
pub fn config_reloaded(generation: u64, apps: usize) {
    info!(target: "ssogate::audit", event = "config_reloaded", result = "success", generation, apps);
}

/// A reload was refused: the running config stays. Every problem is in `problems`.
pub fn config_reload_refused(problems: &[String]) {
    let count = problems.len();
    let problems = problems.join("; ");
    error!(target: "ssogate::audit", event = "config_reloaded", result = "failure", count, problems = %problems, "config reload refused; the running config stays");
}

#[cfg(test)]
mod tests {
    use super::EVENTS;

    /// This module writes every audit line: no other source file uses the target.
    #[test]
    fn no_other_module_writes_audit_lines() {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("audit.rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    if text.contains(concat!("target: \"ssogate::", "audit\"")) {
                        out.push(p.display().to_string());
                    }
                }
            }
        }
        let mut offenders = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut offenders,
        );
        assert!(
            offenders.is_empty(),
            "audit lines written outside src/audit.rs: {offenders:?}"
        );
    }

    /// Every event name used here is listed, and every listed one is used.
    #[test]
    fn the_list_matches_the_functions() {
        let text = include_str!("audit.rs");
        let mut used: Vec<&str> = text
            .split("event = \"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut listed = EVENTS.to_vec();
        listed.sort_unstable();
        assert_eq!(used, listed);
    }

    /// `docs/logging.md` documents exactly these events.
    #[test]
    fn the_docs_list_every_event() {
        let doc = include_str!("../docs/logging.md");
        let section = doc
            .split("## Audit events")
            .nth(1)
            .expect("docs/logging.md has an \"## Audit events\" section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let mut documented: Vec<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("### `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        documented.sort_unstable();
        let mut listed = EVENTS.to_vec();
        listed.sort_unstable();
        assert_eq!(documented, listed, "docs/logging.md vs audit::EVENTS");
    }
}
