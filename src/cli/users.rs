//! `ssogate users`: the directory and sign-in records in the configured store.

use super::{assemble, report, runtime, UsersCommand};
use crate::config;
use crate::gateway::Gateway;
use std::path::Path;
use std::process::ExitCode;

pub fn users_command(config: &Path, command: UsersCommand) -> ExitCode {
    let result = assemble(config).and_then(|(cfg, gw)| {
        if matches!(cfg.session.store, config::StoreConfig::Memory) {
            return Err("the session store is \"memory\": users live inside the running gateway only; use store = \"redis\"".into());
        }
        runtime()?.block_on(users(&gw, command))
    });
    report(result.map(|out| (out, true)))
}

async fn users(gw: &Gateway, command: UsersCommand) -> Result<String, String> {
    use crate::scim::effects::JIT_USERS;
    use crate::scim::{Kind, ScimService};
    use std::fmt::Write as _;
    let store = gw.sessions.store().clone();
    let directory = ScimService::new(store.clone(), Vec::new());
    let mut out = String::new();
    match command {
        UsersCommand::List => {
            let scim = directory.all(Kind::User).await.map_err(|e| e.to_string())?;
            let _ = writeln!(out, "SCIM-provisioned users ({}):", scim.len());
            for u in &scim {
                let _ = writeln!(
                    out,
                    "  {:<40} active={:<5} externalId={}",
                    u["userName"].as_str().unwrap_or("?"),
                    u["active"].as_bool().unwrap_or(true),
                    u["externalId"].as_str().unwrap_or("-")
                );
            }
            let jit = store.doc_list(JIT_USERS).await.map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "Signed-in users (just-in-time records, {}):",
                jit.len()
            );
            for j in jit
                .iter()
                .filter_map(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            {
                let last = j["last_login"]
                    .as_i64()
                    .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
                let _ = writeln!(
                    out,
                    "  {:<40} last sign-in {}  sign-ins {}",
                    j["name_id"].as_str().unwrap_or("?"),
                    last.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    j["logins"]
                );
            }
        }
        UsersCommand::Show { user } => {
            match directory
                .user_by_name(&user)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(u) => {
                    let _ = writeln!(
                        out,
                        "SCIM user:\n{}",
                        serde_json::to_string_pretty(&u).unwrap_or_default()
                    );
                    let id = u["id"].as_str().unwrap_or_default();
                    let groups: Vec<String> = directory
                        .all(Kind::Group)
                        .await
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .filter(|g| {
                            g["members"]
                                .as_array()
                                .is_some_and(|m| m.iter().any(|x| x["value"] == id))
                        })
                        .map(|g| {
                            format!(
                                "{} ({})",
                                g["displayName"].as_str().unwrap_or("?"),
                                g["externalId"].as_str().unwrap_or("-")
                            )
                        })
                        .collect();
                    let _ = writeln!(
                        out,
                        "groups: {}",
                        if groups.is_empty() {
                            "-".into()
                        } else {
                            groups.join(", ")
                        }
                    );
                }
                None => {
                    let _ = writeln!(out, "not provisioned through SCIM");
                }
            }
            if let Some(j) = store
                .doc_get(JIT_USERS, &user.to_lowercase())
                .await
                .map_err(|e| e.to_string())?
            {
                let v: serde_json::Value = serde_json::from_slice(&j).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "sign-in record:\n{}",
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                );
            }
            for app in gw.apps() {
                let n = store
                    .user_sessions(&app.name, &user)
                    .await
                    .map_err(|e| e.to_string())?
                    .len();
                let _ = writeln!(out, "live sessions in {}: {n}", app.name);
            }
        }
        UsersCommand::Revoke { user } => {
            let n = crate::scim::effects::revoke_user(
                store.as_ref(),
                gw.apps().iter().map(|a| a.name.as_str()),
                &user,
            )
            .await
            .map_err(|e| e.to_string())?;
            tracing::info!(target: "ssogate::audit", event = "sessions_revoked", cause = "cli", sessions = n);
            let _ = writeln!(out, "ended {n} session(s) of {user}");
        }
    }
    Ok(out)
}
