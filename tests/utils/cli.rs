//! Runs the `ssogate` binary as an admin would, for the command-line tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step should panic with its message"
)]

use std::process::Command;

/// `ssogate ARGS…`: the exit code (-1 if killed) and stdout followed by stderr.
pub fn ssogate(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `ssogate check-config` on `config` (the harness's `{public}`/`{admin}` placeholders set
/// to fixed ports) with `files` beside it, private as an admin keeps them.
pub fn check_config(config: &str, files: &[(&str, &[u8])]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        super::tls::private_file(dir.path(), name, bytes);
    }
    let path = dir.path().join("ssogate.toml");
    std::fs::write(
        &path,
        config
            .replace("{public}", "18080")
            .replace("{admin}", "19090"),
    )
    .unwrap();
    ssogate(&["check-config", path.to_str().unwrap()])
}
