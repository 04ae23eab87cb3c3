//! The command line: what `ssogate` takes (clap) and the admin commands behind it. The
//! binary's `main` only dispatches; each command lives in a file of its own.

pub mod authz;
pub mod inspect;
pub mod run;
pub mod saml;
pub mod users;

use crate::{config, gateway::Gateway};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "ssogate",
    version,
    about = "SAML SSO gateway for Microsoft Entra ID"
)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Take the listening sockets over from the running gateway (send it SIGQUIT
        /// once this one waits): a binary upgrade with no connection refused.
        #[arg(long)]
        upgrade: bool,
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
    /// SCIM-provisioned groups in the configured store.
    Groups {
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        command: GroupsCommand,
    },
    /// Maintenance of the SCIM directory in the configured store.
    Directory {
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        command: DirectoryCommand,
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
    /// Ask a running gateway's admin listener whether it is ready (for a container
    /// HEALTHCHECK, where no curl is installed). Exit 0: 200, 1: anything else.
    Probe {
        /// host:port of the admin listener.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
        /// Path to ask.
        #[arg(long, default_value = "/readyz")]
        path: String,
    },
    /// Make a running gateway re-read its config and every file it names (as SIGHUP
    /// does): validated first, swapped whole, sessions kept; on any problem the running
    /// config stays and every problem is printed. Exit 0: reloaded, 1: refused.
    Reload {
        /// host:port of the admin listener (the request must come from its host).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
    },
    /// Run a complete local demo on loopback: gateway, development IdP, echo upstream.
    Demo {
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

#[derive(Subcommand)]
pub enum AuthzCommand {
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
pub enum UsersCommand {
    /// Users page by page: SCIM-provisioned (with active flag) and just-in-time records.
    List {
        #[arg(long, default_value_t = 1)]
        page: usize,
        #[arg(long, default_value_t = 50)]
        per_page: usize,
    },
    /// SCIM users a filter selects, e.g. `userName eq "ann@contoso.com"` or
    /// `externalId eq 6b2e...` (answered by an index), `name.familyName sw "Mo"` (a scan).
    Search { filter: String },
    /// One user (NameID / userName): directory record, groups and live sessions per app.
    Show { user: String },
    /// End every session of a user (NameID / userName) in every app, on every replica.
    Revoke { user: String },
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// Groups page by page (display name, externalId = Entra object ID, member count).
    List {
        #[arg(long, default_value_t = 1)]
        page: usize,
        #[arg(long, default_value_t = 50)]
        per_page: usize,
    },
    /// One group (display name, externalId or SCIM id) and its members.
    Show { group: String },
    /// Groups a SCIM filter selects, e.g. `displayName eq "Wiki admins"`.
    Search { filter: String },
}

#[derive(Subcommand)]
pub enum DirectoryCommand {
    /// Rebuild the indexes of users and groups from the documents (safe to repeat; run
    /// while provisioning is quiet).
    Reindex,
    /// Move users, groups and sign-in records written by a version before the indexes
    /// into the current layout (the gateway also does it when it starts; safe to repeat).
    Migrate,
}

#[derive(Subcommand)]
pub enum SamlCommand {
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

/// Load, validate and assemble a config file, as `run` and `check-config` do.
pub fn assemble(path: &Path) -> Result<(config::Config, Gateway), String> {
    let cfg = config::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let gw = Gateway::build(&cfg, Arc::new(crate::saml::SystemClock))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((cfg, gw))
}

/// A runtime for the commands that talk to Redis or fetch metadata.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// Print a command's report and exit 0 when it passed, 2 when it found a refusal; print
/// the error and exit 1 when it could not run.
fn report(result: Result<(String, bool), String>) -> ExitCode {
    match result {
        Ok((out, passed)) => {
            print!("{out}");
            ExitCode::from(if passed { 0 } else { 2 })
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
