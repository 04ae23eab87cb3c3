//! `ssogate users`, `groups` and `directory`: the SCIM directory and sign-in records in
//! the configured store, page by page (a tenant's directory is never loaded whole).

use super::{assemble, report, runtime, DirectoryCommand, GroupsCommand, UsersCommand};
use crate::config;
use crate::gateway::Gateway;
use crate::scim::{Kind, ScimService};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Run `f` against the configured store (Redis: the memory store lives in the gateway).
fn with_directory<F>(config: &Path, f: F) -> ExitCode
where
    F: AsyncFnOnce(&Gateway, ScimService) -> Result<String, String>,
{
    let result = assemble(config).and_then(|(cfg, gw)| {
        if matches!(cfg.session.store, config::StoreConfig::Memory) {
            return Err("the session store is \"memory\": users live inside the running gateway only; use store = \"redis\"".into());
        }
        let directory = ScimService::new(gw.sessions.store().clone(), Vec::new());
        runtime()?.block_on(f(&gw, directory))
    });
    report(result.map(|out| (out, true)))
}

pub fn users_command(config: &Path, command: UsersCommand) -> ExitCode {
    with_directory(config, async |gw, directory| {
        users(gw, &directory, command).await
    })
}

pub fn groups_command(config: &Path, command: GroupsCommand) -> ExitCode {
    with_directory(config, async |_, directory| {
        groups(&directory, command).await
    })
}

pub fn directory_command(config: &Path, command: DirectoryCommand) -> ExitCode {
    with_directory(config, async |_, directory| match command {
        DirectoryCommand::Reindex => {
            let mut out = String::new();
            for (kind, docs, entries) in directory.reindex().await.map_err(|e| e.to_string())? {
                let _ = writeln!(
                    out,
                    "{}: {docs} documents, {entries} index entries rebuilt",
                    kind.endpoint()
                );
            }
            crate::audit::directory_reindexed("cli");
            Ok(out)
        }
        DirectoryCommand::Migrate => {
            let done = crate::scim::migrate::migrate_legacy(directory.store().as_ref())
                .await
                .map_err(|e| e.to_string())?;
            let mut out = String::new();
            for m in done {
                let _ = writeln!(
                    out,
                    "{}: {} moved, {} kept (already in the current layout), {} unreadable",
                    m.collection, m.moved, m.kept, m.unreadable
                );
            }
            Ok(out)
        }
    })
}

fn user_line(u: &Value) -> String {
    format!(
        "  {:<40} active={:<5} externalId={}",
        u["userName"].as_str().unwrap_or("?"),
        u["active"].as_bool().unwrap_or(true),
        u["externalId"].as_str().unwrap_or("-")
    )
}

fn group_line(g: &Value, members: usize) -> String {
    format!(
        "  {:<40} externalId={:<36} members={}",
        g["displayName"].as_str().unwrap_or("?"),
        g["externalId"].as_str().unwrap_or("-"),
        members
    )
}

/// One line per group, its member count read beside it (never its list).
async fn group_lines(
    directory: &ScimService,
    groups: &[Value],
    out: &mut String,
) -> Result<(), String> {
    let counts = directory
        .member_counts(groups)
        .await
        .map_err(|e| e.to_string())?;
    for (g, n) in groups.iter().zip(counts) {
        let _ = writeln!(out, "{}", group_line(g, n));
    }
    Ok(())
}

/// `(start, count)` of a 1-based page.
fn window(page: usize, per_page: usize) -> (usize, usize) {
    let per_page = per_page.clamp(1, 1000);
    (page.max(1).saturating_sub(1) * per_page, per_page)
}

async fn groups(directory: &ScimService, command: GroupsCommand) -> Result<String, String> {
    let mut out = String::new();
    match command {
        GroupsCommand::List { page, per_page } => {
            let (start, count) = window(page, per_page);
            let (total, groups) = directory
                .page_of(Kind::Group, start, count)
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "SCIM groups {}-{} of {total}:",
                start + 1,
                start + groups.len()
            );
            group_lines(directory, &groups, &mut out).await?;
        }
        GroupsCommand::Search { filter } => {
            let found = directory
                .search_without_members(Kind::Group, &filter)
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(out, "{} group(s):", found.len());
            group_lines(directory, &found[..found.len().min(1000)], &mut out).await?;
        }
        GroupsCommand::Show { group } => {
            let q = serde_json::to_string(&group).unwrap_or_default();
            let mut found = Vec::new();
            for f in [
                format!("displayName eq {q}"),
                format!("externalId eq {q}"),
                format!("id eq {q}"),
            ] {
                found = directory
                    .search_without_members(Kind::Group, &f)
                    .await
                    .map_err(|e| e.to_string())?;
                if !found.is_empty() {
                    break;
                }
            }
            let Some(id) = found.first().and_then(|g| g["id"].as_str()) else {
                return Err(format!("no SCIM group \"{group}\""));
            };
            let g = &directory
                .get(Kind::Group, id)
                .await
                .map_err(|e| e.to_string())?;
            let n = g["members"].as_array().map_or(0, Vec::len);
            let _ = writeln!(out, "{}", group_line(g, n).trim_start());
            let ids: Vec<String> = g["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|x| x["value"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            for chunk in ids.chunks(500) {
                let q = chunk
                    .iter()
                    .map(|id| format!("id eq {}", serde_json::to_string(id).unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(" or ");
                for u in directory
                    .search(Kind::User, &q)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    let _ = writeln!(out, "{}", user_line(&u));
                }
            }
        }
    }
    Ok(out)
}

async fn users(
    gw: &Gateway,
    directory: &ScimService,
    command: UsersCommand,
) -> Result<String, String> {
    use crate::scim::effects::JIT_USERS;
    let store = gw.sessions.store().clone();
    let mut out = String::new();
    match command {
        UsersCommand::Search { filter } => {
            let found = directory
                .search(Kind::User, &filter)
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(out, "{} user(s):", found.len());
            for u in found.iter().take(1000) {
                let _ = writeln!(out, "{}", user_line(u));
            }
        }
        UsersCommand::List { page, per_page } => {
            let (start, count) = window(page, per_page);
            let (total, scim) = directory
                .page_of(Kind::User, start, count)
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "SCIM-provisioned users {}-{} of {total}:",
                start + 1,
                start + scim.len()
            );
            for u in &scim {
                let _ = writeln!(out, "{}", user_line(u));
            }
            let jit_total = store
                .doc_count(JIT_USERS)
                .await
                .map_err(|e| e.to_string())?;
            let jit = store
                .doc_page(JIT_USERS, start, count)
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "Signed-in users (just-in-time records) {}-{} of {jit_total}:",
                start + 1,
                start + jit.len()
            );
            for j in jit
                .iter()
                .filter_map(|(_, b)| serde_json::from_slice::<Value>(b).ok())
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
                        .groups_of_member(id)
                        .await
                        .map_err(|e| e.to_string())?
                        .into_iter()
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
                let v: Value = serde_json::from_slice(&j).unwrap_or_default();
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
            crate::audit::sessions_revoked("cli", None, n);
            let _ = writeln!(out, "ended {n} session(s) of {user}");
        }
    }
    Ok(out)
}
