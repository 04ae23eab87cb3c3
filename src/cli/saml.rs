//! `ssogate saml inspect` and `inspect-metadata`.

use super::{assemble, report, runtime, SamlCommand};
use std::path::Path;
use std::process::ExitCode;

pub fn saml_command(command: SamlCommand) -> ExitCode {
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
    report(result)
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
        let client = crate::gateway::metadata::client()?;
        runtime()?
            .block_on(crate::gateway::metadata::refresh(app, &client))
            .map_err(|e| format!("IdP metadata: {e}"))?;
    }
    let at = match at {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("--at {s}: {e}"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    crate::cli::inspect::inspect(app, &read_input(input)?, at)
}

fn inspect_metadata(source: &str, signer: Option<&Path>) -> Result<(String, bool), String> {
    let bytes = if source.starts_with("https://") || source.starts_with("http://") {
        let client = crate::gateway::metadata::client()?;
        runtime()?.block_on(crate::gateway::metadata::fetch(&client, source))?
    } else {
        std::fs::read(source).map_err(|e| format!("{source}: {e}"))?
    };
    let signer = signer
        .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .transpose()?;
    crate::cli::inspect::inspect_metadata(&bytes, signer.as_deref())
}
