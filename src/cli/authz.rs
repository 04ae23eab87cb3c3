//! `ssogate authz check`: which route a path falls under and what a user gets there.

use super::{assemble, report, AuthzCommand};
use std::process::ExitCode;

pub fn authz_command(command: AuthzCommand) -> ExitCode {
    let AuthzCommand::Check {
        config,
        app,
        user_claims,
        method,
        path,
    } = command;
    let result = (|| -> Result<(String, bool), String> {
        let (_, gw) = assemble(&config)?;
        let app = gw
            .apps()
            .iter()
            .find(|a| a.name == app)
            .ok_or_else(|| format!("no app named \"{app}\""))?;
        let identity = identity_from_json(&user_claims)?;
        let target =
            crate::gateway::target::parse(path.as_bytes(), "", app.target_rules).map_err(|e| {
                format!(
                    "{path}: refused before any route ({}): {}",
                    e.reason(),
                    e.explain()
                )
            })?;
        let route = app.policy.route(&target.match_path);
        let e = crate::authz::explain(&identity, route, &method.to_ascii_uppercase());
        let allowed = e.decision == crate::authz::Decision::Allow;
        Ok((
            format!(
                "app {}: {} {path}\n  route:    {}\n  decision: {}\n  rule:     {}\n",
                app.name,
                method.to_ascii_uppercase(),
                route.name,
                match e.decision {
                    crate::authz::Decision::Allow => "ALLOW",
                    crate::authz::Decision::NotInGroups => "DENY (403: no allow rule matches)",
                    crate::authz::Decision::GroupsUnknown =>
                        "DENY (403: groups unknown, group overage)",
                    crate::authz::Decision::Denied => "DENY (403: deny rule)",
                    crate::authz::Decision::MethodNotAllowed => "DENY (405: method not allowed)",
                },
                e.rule
            ),
            allowed,
        ))
    })();
    report(result)
}

/// An identity from `{"name_id": ..., "groups": [...], "roles": [...], "overage": bool,
/// "<alias or claim URI>": [...]}`.
fn identity_from_json(text: &str) -> Result<crate::identity::Identity, String> {
    use crate::identity::{alias_uris, claims, Identity};
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("--user-claims: not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("--user-claims: a JSON object is expected")?;
    let mut id = Identity {
        name_id: obj
            .get("name_id")
            .and_then(|n| n.as_str())
            .unwrap_or("user@example.com")
            .to_string(),
        ..Default::default()
    };
    let strings = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    for (k, val) in obj {
        match k.as_str() {
            "name_id" => {}
            "overage" => {
                if val.as_bool() == Some(true) {
                    id.attributes.insert(
                        claims::GROUPS_OVERAGE.into(),
                        vec!["https://graph.microsoft.com".into()],
                    );
                }
            }
            "groups" => {
                id.attributes.insert(claims::GROUPS.into(), strings(val));
            }
            "roles" => {
                id.attributes.insert(claims::ROLES.into(), strings(val));
            }
            other => {
                let uri = alias_uris(other)
                    .and_then(|u| u.first().copied())
                    .unwrap_or(other)
                    .to_string();
                id.attributes.insert(uri, strings(val));
            }
        }
    }
    Ok(id)
}
