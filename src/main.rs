//! `ssogate`: the thin binary, a table of contents. Parse the command line, set up logs,
//! and hand each command to its module in `ssogate::cli`.

use clap::Parser;
use ssogate::cli::{self, Cli, Command};
use std::process::ExitCode;

/// mimalloc: per-thread heaps and lock-free cross-thread frees (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` logs as its config says (the flag wins); other commands as the flag says.
    let (format, access_log) = match &cli.command {
        Command::Run { config, .. } => ssogate::config::logging_of(config),
        _ => (ssogate::logging::Format::Text, false),
    };
    let format = if cli.log_json {
        ssogate::logging::Format::Json
    } else {
        format
    };
    ssogate::logging::init(format, access_log);
    ssogate::saml::route_xmlsec_errors_to_tracing();
    match cli.command {
        Command::Run { config, upgrade } => cli::run::run(&config, upgrade),
        Command::CheckConfig { files } => cli::run::check_config(&files),
        Command::SpMetadata { config, app } => cli::run::sp_metadata(&config, &app),
        Command::Saml { command } => cli::saml::saml_command(command),
        Command::Users { config, command } => cli::users::users_command(&config, command),
        Command::Groups { config, command } => cli::users::groups_command(&config, command),
        Command::Directory { config, command } => cli::users::directory_command(&config, command),
        Command::Authz { command } => cli::authz::authz_command(command),
        Command::Probe { admin, path } => cli::run::probe(&admin, &path),
        Command::Reload { admin } => cli::run::reload(&admin),
        Command::Demo { port } => cli::run::demo(port),
    }
}
