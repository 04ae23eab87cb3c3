//! `ssogate saml inspect` and `inspect-metadata` on the real Entra artefacts and on
//! messages of the development IdP: what they print and their exit codes
//! (0 accepted, 2 refused, 1 error).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use std::path::Path;
use utils::cli::ssogate;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/entra");
const INSIDE: &str = "2022-02-23T17:50:00Z";

fn config(dir: &Path, audience: &str) -> std::path::PathBuf {
    std::fs::copy(
        format!("{FIXTURES}/signing-cert.pem"),
        dir.join("signing-cert.pem"),
    )
    .unwrap();
    let path = dir.join("ssogate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[listen]
public = "127.0.0.1:8080"
[session]
store = "memory"
[[app]]
name = "tercen"
hosts = ["devpg.tercen.com"]
upstream = "http://127.0.0.1:3000"
[app.sp]
entity_id = "{audience}"
acs_url = "https://devpg.tercen.com/_service/sso/auth/saml"
slo_url = "https://devpg.tercen.com/saml/slo"
[app.idp]
entity_id = "https://sts.windows.net/5b5c94c6-14cf-42da-85bc-4e08722b253b/"
sso_url = "https://login.microsoftonline.com/5b5c94c6-14cf-42da-85bc-4e08722b253b/saml2"
slo_url = "https://login.microsoftonline.com/5b5c94c6-14cf-42da-85bc-4e08722b253b/saml2"
certificate_file = "signing-cert.pem"
# Entra's certificate in the fixtures expired on 2025-02-23; Entra still signed with it.
allow_expired_certificate = true
"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn inspect_accepts_the_real_entra_response_in_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "https://devpg.tercen.com/_service/sso/auth/saml",
    );
    let response = format!("{FIXTURES}/response-assertion-signed.xml");
    let (code, out) = ssogate(&[
        "saml",
        "inspect",
        "-c",
        cfg.to_str().unwrap(),
        "--app",
        "tercen",
        "--at",
        INSIDE,
        &response,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("NameID        test@alexandremaurelgmail.onmicrosoft.com"),
        "{out}"
    );
    assert!(
        out.contains("✓ signature verified by certificate #1"),
        "{out}"
    );
    assert!(out.contains("Result: ACCEPTED"), "{out}");

    // The same response as posted (base64), a tampered copy, and the wrong time.
    use base64::Engine as _;
    let xml = std::fs::read_to_string(&response).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
    let (code, _) = ssogate(&[
        "saml",
        "inspect",
        "-c",
        cfg.to_str().unwrap(),
        "--app",
        "tercen",
        "--at",
        INSIDE,
        &b64,
    ]);
    assert_eq!(code, 0);
    let tampered =
        base64::engine::general_purpose::STANDARD.encode(xml.replace(">test<", ">tess<"));
    let (code, out) = ssogate(&[
        "saml",
        "inspect",
        "-c",
        cfg.to_str().unwrap(),
        "--app",
        "tercen",
        "--at",
        INSIDE,
        &tampered,
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("✗ signature"), "{out}");
    assert!(out.contains("REFUSED (signature)"), "{out}");
    let (code, out) = ssogate(&[
        "saml",
        "inspect",
        "-c",
        cfg.to_str().unwrap(),
        "--app",
        "tercen",
        &response,
    ]);
    assert_eq!(code, 2);
    assert!(
        out.contains("✗ time") && out.contains("REFUSED (expired)"),
        "{out}"
    );
}

#[test]
fn inspect_names_the_wrong_identifier() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "https://devpg.tercen.com/wrong-identifier");
    let (code, out) = ssogate(&[
        "saml",
        "inspect",
        "-c",
        cfg.to_str().unwrap(),
        "--app",
        "tercen",
        "--at",
        INSIDE,
        &format!("{FIXTURES}/response-assertion-signed.xml"),
    ]);
    assert_eq!(code, 2);
    assert!(
        out.contains("✗ audience: expected https://devpg.tercen.com/wrong-identifier (sp.entity_id), found https://devpg.tercen.com/_service/sso/auth/saml"),
        "{out}"
    );
    assert!(out.contains("REFUSED (audience)"), "{out}");
}

#[test]
fn inspect_a_logout_request_url() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "https://devpg.tercen.com/_service/sso/auth/saml",
    );
    // Signed by a key the app does not trust.
    let idp = ssogate::saml::DevIdp::generate(
        "https://sts.windows.net/5b5c94c6-14cf-42da-85bc-4e08722b253b/",
    )
    .unwrap();
    let (_, url) = idp
        .logout_request_url(
            "https://devpg.tercen.com/saml/slo",
            "someone@example.com",
            Some("_s1"),
            chrono::Utc::now(),
        )
        .unwrap();
    let (code, out) = ssogate(&[
        "saml",
        "inspect",
        "-c",
        cfg.to_str().unwrap(),
        "--app",
        "tercen",
        &url,
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("LogoutRequest (Redirect binding, SAMLRequest)"),
        "{out}"
    );
    assert!(out.contains("SessionIndex  _s1"), "{out}");
    assert!(out.contains("✗ query signature"), "{out}");
    assert!(
        out.contains("✓ issuer, destination, age and status"),
        "{out}"
    );
}

#[test]
fn inspect_metadata_lists_every_key_and_checks_a_pinned_signer() {
    let md = format!("{FIXTURES}/tenant-federation-metadata.xml");
    let (code, out) = ssogate(&["saml", "inspect-metadata", &md]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("signing certificates (3), all trusted"),
        "{out}"
    );
    assert!(
        out.contains("entityID      https://sts.windows.net/8b966979-910b-487c-a604-69229b1ac75c/")
    );
    let (code, out) = ssogate(&[
        "saml",
        "inspect-metadata",
        &md,
        "--signer",
        &format!("{FIXTURES}/signing-cert.pem"),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("✗ metadata signature"), "{out}");
    let (code, _) = ssogate(&["saml", "inspect-metadata", "/does/not/exist.xml"]);
    assert_eq!(code, 1);
}
