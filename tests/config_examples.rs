//! Every example in config/ passes `ssogate check-config`; a broken file prints all its
//! problems and exits 1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use std::process::Command;

fn check(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .arg("check-config")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_example_config_passes_check_config() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        let (ok, out) = check(&[f]);
        assert!(ok, "{f}: {out}");
        assert!(out.contains(": ok"), "{out}");
    }
}

#[test]
fn broken_config_prints_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[listen]
public = "127.0.0.1:8080"
[[app]]
name = "a"
hosts = ["a.example"]
upstream = "http://127.0.0.1:1"
[app.sp]
entity_id = "https://a.example/saml"
acs_url = "https://a.example/saml/acs"
name_id_format = "fancy"
[app.idp]
entity_id = "https://sts.windows.net/x/"
sso_url = "https://login.microsoftonline.com/x/saml2"
certificate_file = "bad.pem"
[app.headers]
"X-Remote-User" = "shoe_size"
[[app.route]]
path = "/admin/"
allow_groups = ["no-such-alias"]
"#,
    )
    .unwrap();
    let (ok, out) = check(&[path.to_str().unwrap()]);
    assert!(!ok);
    for needle in [
        "certificate_file",
        "name_id_format",
        "shoe_size",
        "no-such-alias",
    ] {
        assert!(out.contains(needle), "missing {needle}: {out}");
    }
}
