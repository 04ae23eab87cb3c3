//! The SCIM compliance checker `scim2-tester` (PyPI) against a live ssogate: every check
//! must pass (no ERROR or CRITICAL). The Python comes from `SSOGATE_PYSAML2_PYTHON`
//! (scripts/test.sh's venv holds pysaml2, scim2-tester and httpx2).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use utils::gateway::Gateway;

const TOKEN: &str = "scim2-tester-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_tester_reports_no_failure() {
    let idp = ssogate::saml::DevIdp::generate("https://idp.example.test/").unwrap();
    let pem = idp.certificate_pem();
    let config = r#"
[listen]
public = "127.0.0.1:{public}"
admin = "127.0.0.1:{admin}"

[session]
store = "memory"
cookie_secure = false

[scim]
enabled = true
token_file = "scim-token"

[[app]]
name = "wiki"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:9"

[app.sp]
entity_id = "https://wiki.example.test/saml"
acs_url = "https://wiki.example.test/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"
"#;
    let gw = Gateway::start(
        config,
        &[
            ("idp.pem", pem.as_bytes()),
            ("scim-token", TOKEN.as_bytes()),
        ],
    )
    .await;
    let python = std::env::var("SSOGATE_PYSAML2_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/scim_check.py");
    let base = gw.url("/scim/v2");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(base)
            .arg(TOKEN)
            .output()
    })
    .await
    .unwrap()
    .expect("python with scim2-tester (run scripts/test.sh, or set SSOGATE_PYSAML2_PYTHON)");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let summary = report
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or("no summary");
    eprintln!("scim2-tester {summary}");
    for l in report.lines().filter(|l| l.starts_with("DEVIATION")) {
        eprintln!("scim2-tester deviation: {l}");
    }
    assert!(
        out.status.success(),
        "scim2-tester reported failures:\n{}\n{}",
        report
            .lines()
            .filter(|l| l.starts_with("ERROR") || l.starts_with("CRITICAL"))
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.contains("SUCCESS="), "{report}");
}
