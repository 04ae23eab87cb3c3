//! `ssogate`: the thin binary. Reads like a table of contents: parse the CLI, load and
//! check the config, assemble the gateway, build the pingora server, run it.

use clap::{Parser, Subcommand};
use ssogate::{config, gateway::Gateway, proxy, saml};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// mimalloc: per-thread heaps and lock-free cross-thread frees (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ssogate",
    version,
    about = "SAML SSO gateway for Microsoft Entra ID"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check config files and print every problem; exit 1 if any.
    CheckConfig {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print an app's SP metadata XML (to upload to Entra).
    SpMetadata {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        app: String,
    },
    /// Users known to the configured store: SCIM-provisioned and just-in-time records.
    Users {
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Route policy dry runs.
    Authz {
        #[command(subcommand)]
        command: AuthzCommand,
    },
    /// Debug SAML messages and metadata offline.
    Saml {
        #[command(subcommand)]
        command: SamlCommand,
    },
    /// Run a complete local demo on loopback: gateway, development IdP, echo upstream.
    Demo {
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

#[derive(Subcommand)]
enum AuthzCommand {
    /// Which route a path falls under, and what a user with these claims gets there.
    /// Exit 0: allowed, 2: refused.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        app: String,
        /// JSON: {"name_id": "...", "groups": [...], "roles": [...], "overage": false,
        /// any claim alias or URI: [...]}
        #[arg(long)]
        user_claims: String,
        #[arg(long, default_value = "GET")]
        method: String,
        path: String,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Every user: SCIM-provisioned (with active flag) and just-in-time records.
    List,
    /// One user (NameID / userName): directory record, groups and live sessions per app.
    Show { user: String },
    /// End every session of a user (NameID / userName) in every app, on every replica.
    Revoke { user: String },
}

#[derive(Subcommand)]
enum SamlCommand {
    /// Decode a SAMLResponse (base64 as posted, raw XML) or a Redirect-binding URL
    /// (LogoutRequest, LogoutResponse, AuthnRequest), show what it says and run the
    /// app's validation chain on it. Exit 0: accepted, 2: refused, 1: error.
    Inspect {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        app: String,
        /// Validate at this instant (RFC 3339), e.g. to replay a captured response.
        #[arg(long)]
        at: Option<String>,
        /// A file with the message, `-` for stdin, or the message itself.
        input: String,
    },
    /// Show an IdP metadata document (file or URL): entity ID, endpoints, every signing
    /// certificate; with --signer, verify its signature.
    InspectMetadata {
        source: String,
        /// PEM or Base64 certificate the metadata signature must verify against.
        #[arg(long)]
        signer: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ssogate::logging::init(cli.log_json);
    saml::route_xmlsec_errors_to_tracing();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { files } => check_config(&files),
        Command::SpMetadata { config, app } => sp_metadata(&config, &app),
        Command::Saml { command } => saml_command(command),
        Command::Users { config, command } => users_command(&config, command),
        Command::Authz { command } => authz_command(command),
        Command::Demo { port } => demo(port),
    }
}

fn users_command(config: &Path, command: UsersCommand) -> ExitCode {
    let result = assemble(config).and_then(|(cfg, gw)| {
        if matches!(cfg.session.store, config::StoreConfig::Memory) {
            return Err("the session store is \"memory\": users live inside the running gateway only; use store = \"redis\"".into());
        }
        runtime()?.block_on(users(&gw, command))
    });
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

async fn users(gw: &Gateway, command: UsersCommand) -> Result<String, String> {
    use ssogate::provisioning::JIT_USERS;
    use ssogate::scim::{Kind, ScimService};
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
            let n = ssogate::provisioning::revoke_user(gw, &user)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(target: "ssogate::audit", event = "sessions_revoked", cause = "cli", sessions = n);
            let _ = writeln!(out, "ended {n} session(s) of {user}");
        }
    }
    Ok(out)
}

fn authz_command(command: AuthzCommand) -> ExitCode {
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
        let route = app.policy.route(&path);
        let e = ssogate::authz::explain(&identity, route, &method.to_ascii_uppercase());
        let allowed = e.decision == ssogate::authz::Decision::Allow;
        Ok((
            format!(
                "app {}: {} {path}\n  route:    {}\n  decision: {}\n  rule:     {}\n",
                app.name,
                method.to_ascii_uppercase(),
                route.name,
                match e.decision {
                    ssogate::authz::Decision::Allow => "ALLOW",
                    ssogate::authz::Decision::NotInGroups => "DENY (403: no allow rule matches)",
                    ssogate::authz::Decision::GroupsUnknown =>
                        "DENY (403: groups unknown, group overage)",
                    ssogate::authz::Decision::Denied => "DENY (403: deny rule)",
                    ssogate::authz::Decision::MethodNotAllowed => "DENY (405: method not allowed)",
                },
                e.rule
            ),
            allowed,
        ))
    })();
    match result {
        Ok((out, allowed)) => {
            print!("{out}");
            ExitCode::from(if allowed { 0 } else { 2 })
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// An identity from `{"name_id": ..., "groups": [...], "roles": [...], "overage": bool,
/// "<alias or claim URI>": [...]}`.
fn identity_from_json(text: &str) -> Result<ssogate::identity::Identity, String> {
    use ssogate::identity::{alias_uris, claims, Identity};
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

fn read_input(input: &str) -> Result<String, String> {
    if input == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("stdin: {e}"))?;
        return Ok(s);
    }
    let path = Path::new(input);
    if input.len() < 4096 && path.is_file() {
        return std::fs::read_to_string(path).map_err(|e| format!("{input}: {e}"));
    }
    Ok(input.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

fn saml_command(command: SamlCommand) -> ExitCode {
    let result = match command {
        SamlCommand::Inspect {
            config,
            app,
            at,
            input,
        } => inspect(&config, &app, at.as_deref(), &input),
        SamlCommand::InspectMetadata { source, signer } => {
            inspect_metadata(&source, signer.as_deref())
        }
    };
    match result {
        Ok((report, accepted)) => {
            print!("{report}");
            ExitCode::from(if accepted { 0 } else { 2 })
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn inspect(
    config: &Path,
    app: &str,
    at: Option<&str>,
    input: &str,
) -> Result<(String, bool), String> {
    let (_, gw) = assemble(config)?;
    let app = gw
        .apps()
        .iter()
        .find(|a| a.name == app)
        .ok_or_else(|| format!("no app named \"{app}\""))?;
    if !app.trust().is_ready() && app.metadata_refresh.is_some() {
        let client = ssogate::metadata_refresh::client()?;
        runtime()?
            .block_on(ssogate::metadata_refresh::refresh(app, &client))
            .map_err(|e| format!("IdP metadata: {e}"))?;
    }
    let at = match at {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("--at {s}: {e}"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    ssogate::inspect::inspect(app, &read_input(input)?, at)
}

fn inspect_metadata(source: &str, signer: Option<&Path>) -> Result<(String, bool), String> {
    let bytes = if source.starts_with("https://") || source.starts_with("http://") {
        let client = ssogate::metadata_refresh::client()?;
        runtime()?.block_on(ssogate::metadata_refresh::fetch(&client, source))?
    } else {
        std::fs::read(source).map_err(|e| format!("{source}: {e}"))?
    };
    let signer = signer
        .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .transpose()?;
    ssogate::inspect::inspect_metadata(&bytes, signer.as_deref())
}

fn assemble(path: &Path) -> Result<(config::Config, Gateway), String> {
    let cfg = config::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let gw = Gateway::build(&cfg, Arc::new(saml::SystemClock))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((cfg, gw))
}

fn run(path: &Path) -> ExitCode {
    let (cfg, gw) = match assemble(path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(public = %cfg.listen_public, admin = %cfg.listen_admin, apps = cfg.apps.len(), "starting ssogate");
    proxy::build_server(&cfg, Arc::new(gw)).run_forever()
}

fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        match assemble(f) {
            Ok(_) => println!("{}: ok", f.display()),
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    ExitCode::from(u8::from(failed))
}

fn sp_metadata(path: &Path, app: &str) -> ExitCode {
    match assemble(path) {
        Ok((_, gw)) => match gw.apps().iter().find(|a| a.name == app) {
            Some(a) => {
                println!("{}", a.sp_metadata());
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no app named \"{app}\"");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn demo(port: u16) -> ExitCode {
    let ports = proxy::demo::DemoPorts {
        public: port,
        admin: port.wrapping_add(10),
        idp: port.wrapping_add(1),
        echo: port.wrapping_add(2),
    };
    let server = match proxy::demo::demo_server(&ports) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "\nssogate demo (in-memory sessions, development IdP: NOT FOR PRODUCTION)\n\
         \n  open      http://127.0.0.1:{p}/          (sign in, then see the headers the app receives)\n\
         \x20 admin     http://127.0.0.1:{p}/admin/    (only alice is in the admins group)\n\
         \x20 public    http://127.0.0.1:{p}/public/   (no sign-in)\n\
         \x20 metrics   http://127.0.0.1:{a}/metrics\n\
         \n  users     {users}\n\n  Ctrl-C to stop.\n",
        p = ports.public,
        a = ports.admin,
        users = proxy::demo::DEMO_USERS
            .iter()
            .map(|u| u.login)
            .collect::<Vec<_>>()
            .join(", "),
    );
    server.run_forever()
}
