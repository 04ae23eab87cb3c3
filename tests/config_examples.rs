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

/// A private SP key pair (`sp-key.pem`, mode 600, and `sp-cert.pem`) and a SCIM token
/// (`scim-token`, mode 600) in `dir`, as the examples' comments tell an admin to make.
fn own_secrets(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let cert = ssogate::saml::devidp::self_signed_certificate(&key).unwrap();
    let private = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    private("sp-key.pem", &key.private_key_to_pem_pkcs8().unwrap());
    private(
        "scim-token",
        hex::encode(rand::random::<[u8; 32]>()).as_bytes(),
    );
    std::fs::write(dir.join("sp-cert.pem"), cert.to_pem().unwrap()).unwrap();
}

#[test]
fn every_example_config_passes_check_config() {
    // The examples beside the secrets an admin makes for them (none are shipped).
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, copy.path().join(p.file_name().unwrap())).unwrap();
    }
    own_secrets(copy.path());
    let mut files: Vec<String> = std::fs::read_dir(copy.path())
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

#[test]
fn a_previous_sp_key_that_is_no_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    std::fs::copy(
        format!("{examples}/example-idp.pem"),
        dir.path().join("example-idp.pem"),
    )
    .unwrap();
    own_secrets(dir.path());
    let path = dir.path().join("rollover.toml");
    let text = r#"
[listen]
public = "127.0.0.1:8080"
[[app]]
name = "a"
hosts = ["a.example"]
upstream = "http://127.0.0.1:1"
[app.sp]
entity_id = "https://a.example/saml"
acs_url = "https://a.example/saml/acs"
signing_key_file = "sp-key.pem"
certificate_file = "sp-cert.pem"
previous_key_files = ["PREVIOUS"]
[app.idp]
entity_id = "https://sts.windows.net/x/"
sso_url = "https://login.microsoftonline.com/x/saml2"
certificate_file = "example-idp.pem"
"#;
    // A certificate where a private key belongs: refused, naming the file.
    std::fs::write(&path, text.replace("PREVIOUS", "sp-cert.pem")).unwrap();
    let (ok, out) = check(&[path.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("sp.previous_key_files") && out.contains("sp-cert.pem"),
        "{out}"
    );
    // A real key: fine.
    std::fs::write(&path, text.replace("PREVIOUS", "sp-key.pem")).unwrap();
    let (ok, out) = check(&[path.to_str().unwrap()]);
    assert!(ok, "{out}");
}

#[test]
fn authz_check_prints_the_decision_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/example-idp.pem"),
        dir.path().join("idp.pem"),
    )
    .unwrap();
    let cfg = dir.path().join("ssogate.toml");
    std::fs::write(
        &cfg,
        r#"
[listen]
public = "127.0.0.1:8080"
[[app]]
name = "ops"
hosts = ["ops.example.com"]
upstream = "http://127.0.0.1:3000"
[app.sp]
entity_id = "https://ops.example.com/saml"
acs_url = "https://ops.example.com/saml/acs"
[app.idp]
entity_id = "https://idp.example.com/"
sso_url = "https://idp.example.com/sso"
certificate_file = "idp.pem"
[app.groups]
oncall = "0a1b2c3d-0000-4000-8000-00000000000a"
[[app.route]]
path = "/deploy/"
allow_roles = ["Deployer"]
require_all_groups = ["oncall"]
methods = ["GET", "POST"]
deny_users = ["intern@example.com"]
"#,
    )
    .unwrap();
    let run = |claims: &str, method: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ssogate"))
            .args(["authz", "check", "-c"])
            .arg(&cfg)
            .args([
                "--app",
                "ops",
                "--user-claims",
                claims,
                "--method",
                method,
                "/deploy/now",
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let deployer = r#"{"name_id":"dev@example.com","roles":["Deployer"],"groups":["0a1b2c3d-0000-4000-8000-00000000000a"]}"#;
    let (code, out) = run(deployer, "POST");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("route:    /deploy/") && out.contains("allow_roles includes role Deployer"),
        "{out}"
    );
    let (code, out) = run(deployer, "DELETE");
    assert_eq!(code, Some(2));
    assert!(out.contains("405"), "{out}");
    let (code, out) = run(
        r#"{"name_id":"dev@example.com","roles":["Deployer"]}"#,
        "GET",
    );
    assert_eq!(code, Some(2));
    assert!(out.contains("require_all_groups: not in group"), "{out}");
    let (code, out) = run(
        r#"{"name_id":"Intern@example.com","roles":["Deployer"],"groups":["0a1b2c3d-0000-4000-8000-00000000000a"]}"#,
        "GET",
    );
    assert_eq!(code, Some(2));
    assert!(out.contains("deny_users"), "{out}");
}
