//! Certificate expiry, from the admin's side: `check-config` warns about a certificate
//! within 30 days and refuses an expired one (an IdP's only with no override), and a
//! running gateway publishes every certificate's notAfter in `/metrics`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use utils::echo::EchoUpstream;
use utils::gateway::Gateway;

const DAY: i64 = 86_400;

/// A self-signed certificate valid until `now + secs`.
fn cert_until(key: &PKey<Private>, cn: &str, secs: i64) -> X509 {
    let now = chrono::Utc::now().timestamp();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(42).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now - 100 * DAY).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + secs).unwrap())
        .unwrap();
    b.sign(key, MessageDigest::sha256()).unwrap();
    b.build()
}

fn thumbprint(c: &X509) -> String {
    c.digest(MessageDigest::sha1())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn config(idp_cert: &str, idp_extra: &str, upstream_port: u16) -> String {
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[server]
grace_period = "1s"

[session]
store = "memory"
cookie_secure = false

[[app]]
name = "wiki"
hosts = ["*"]
upstream = "http://127.0.0.1:{upstream_port}"

[app.sp]
entity_id = "http://127.0.0.1/saml"
acs_url = "http://127.0.0.1/saml/acs"
signing_key_file = "sp-key.pem"
certificate_file = "sp-cert.pem"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "{idp_cert}"
{idp_extra}
"#
    )
}

/// Writes the config and its files, runs `check-config`: (success, stdout + stderr).
fn check_config(text: &str, files: &[(&str, Vec<u8>)]) -> (bool, String) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let path = dir.path().join("ssogate.toml");
    std::fs::write(
        &path,
        text.replace("{public}", "18080")
            .replace("{admin}", "19090"),
    )
    .unwrap();
    let (code, out) = utils::cli::ssogate(&["check-config", path.to_str().unwrap()]);
    (code == 0, out)
}

struct Keys {
    sp_key: Vec<u8>,
    idp_pem: Vec<u8>,
    sp_key_pair: PKey<Private>,
}

fn keys() -> Keys {
    let sp = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let idp = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    Keys {
        sp_key: sp.private_key_to_pem_pkcs8().unwrap(),
        idp_pem: cert_until(&idp, "idp.example.test", 700 * DAY)
            .to_pem()
            .unwrap(),
        sp_key_pair: sp,
    }
}

#[test]
fn check_config_warns_within_30_days_and_refuses_an_expired_certificate() {
    let k = keys();
    let soon = cert_until(&k.sp_key_pair, "sp.contoso.example", 10 * DAY - 3600);
    let (ok, out) = check_config(
        &config("idp.pem", "", 1),
        &[
            ("sp-key.pem", k.sp_key.clone()),
            ("sp-cert.pem", soon.to_pem().unwrap()),
            ("idp.pem", k.idp_pem.clone()),
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "warning: app \"wiki\": sp certificate \"sp.contoso.example\" (thumbprint {}) expires in 9 day(s)",
            thumbprint(&soon)
        )),
        "{out}"
    );

    let expired = cert_until(&k.sp_key_pair, "sp.contoso.example", -DAY);
    let (ok, out) = check_config(
        &config("idp.pem", "", 1),
        &[
            ("sp-key.pem", k.sp_key.clone()),
            ("sp-cert.pem", expired.to_pem().unwrap()),
            ("idp.pem", k.idp_pem.clone()),
        ],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("sp certificate \"sp.contoso.example\""),
        "{out}"
    );
    assert!(out.contains("expired on"), "{out}");
}

#[test]
fn an_idps_expired_certificate_needs_the_override() {
    // Entra's real signing certificate from the fixtures: it expired on 2025-02-23, and
    // Entra kept signing with it.
    let entra = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/entra/signing-cert.pem"
    ))
    .unwrap();
    let k = keys();
    let sp = cert_until(&k.sp_key_pair, "sp.contoso.example", 700 * DAY);
    let files = [
        ("sp-key.pem", k.sp_key.clone()),
        ("sp-cert.pem", sp.to_pem().unwrap()),
        ("entra.pem", entra),
    ];
    let (ok, out) = check_config(&config("entra.pem", "", 1), &files);
    assert!(!ok, "{out}");
    assert!(out.contains("idp_signing certificate"), "{out}");
    assert!(out.contains("allow_expired_certificate = true"), "{out}");

    let (ok, out) = check_config(
        &config("entra.pem", "allow_expired_certificate = true", 1),
        &files,
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("warning: app \"wiki\": idp_signing certificate"),
        "{out}"
    );
    assert!(out.contains("expired on 2025-02-23"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_every_certificates_expiry() {
    let echo = EchoUpstream::start().await;
    let k = keys();
    let sp = cert_until(&k.sp_key_pair, "sp.contoso.example", 20 * DAY);
    let idp = X509::from_pem(&k.idp_pem).unwrap();
    let gw = Gateway::start(
        &config("idp.pem", "", echo.port),
        &[
            ("sp-key.pem", k.sp_key.as_slice()),
            ("sp-cert.pem", sp.to_pem().unwrap().as_slice()),
            ("idp.pem", k.idp_pem.as_slice()),
        ],
    )
    .await;
    let body = gw.metrics().await;
    let epoch = Asn1Time::from_unix(0).unwrap();
    let unix = |c: &X509| {
        let d = epoch.diff(c.not_after()).unwrap();
        i64::from(d.days) * DAY + i64::from(d.secs)
    };
    for (kind, c) in [("sp", &sp), ("idp_signing", &idp)] {
        let line = format!(
            "ssogate_certificate_expiry_timestamp_seconds{{app=\"wiki\",kind=\"{kind}\",thumbprint=\"{}\"}} {}",
            thumbprint(c),
            unix(c)
        );
        assert!(body.contains(&line), "no {line}\n{body}");
    }
    assert!(
        gw.log().contains("certificate expires within 30 days"),
        "{}",
        gw.log()
    );
}
