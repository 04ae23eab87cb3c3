//! The identity JWT end to end: the real binary injects a signed token; PyJWT (PyPI, an
//! independent implementation) verifies it against the served JWKS; a client-sent token
//! never reaches the app; the token is reused, not re-signed per request; a key rotation
//! (publish, then sign) never fails a verification; ES256 works too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use ssogate::identity::claims;
use ssogate::saml::{DevIdp, ResponseSpec, SpSettings};
use utils::echo::{echoed, EchoUpstream};
use utils::gateway::Gateway;
use utils::http::{client, cookie_of};

const PUBLIC_URL: &str = "https://wiki.example.test";
const GROUP: &str = "5a1d2c3b-0000-4000-8000-000000000002";

fn rsa_pem() -> Vec<u8> {
    PKey::from_rsa(Rsa::generate(2048).unwrap())
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap()
}

fn ec_pem() -> Vec<u8> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap())
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap()
}

fn config(echo_port: u16, key: &str, publish: &[&str]) -> String {
    let publish = publish
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[session]
store = "memory"
cookie_secure = false

[[app]]
name = "wiki"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:{echo_port}"
allow_idp_initiated = true

[app.sp]
entity_id = "{PUBLIC_URL}/saml"
acs_url = "{PUBLIC_URL}/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"

[app.jwt]
key_file = "{key}"
publish_key_files = [{publish}]
ttl = "5m"
"#
    )
}

struct Keys {
    one: Vec<u8>,
    two: Vec<u8>,
    ec: Vec<u8>,
}

async fn start(
    idp: &DevIdp,
    keys: &Keys,
    echo: &EchoUpstream,
    key: &str,
    publish: &[&str],
) -> Gateway {
    let pem = idp.certificate_pem();
    Gateway::start(
        &config(echo.port, key, publish),
        &[
            ("idp.pem", pem.as_bytes()),
            ("one.pem", &keys.one),
            ("two.pem", &keys.two),
            ("ec.pem", &keys.ec),
        ],
    )
    .await
}

async fn sign_in(gw: &Gateway, idp: &DevIdp) -> String {
    let sp = SpSettings {
        entity_id: format!("{PUBLIC_URL}/saml"),
        acs_url: format!("{PUBLIC_URL}/saml/acs"),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    let mut spec = ResponseSpec::for_sp(&sp, "zoe@contoso.example", chrono::Utc::now());
    spec.attributes = vec![
        (claims::EMAIL.into(), vec!["zoe@contoso.example".into()]),
        (claims::DISPLAY_NAME.into(), vec!["Zoë Ångström".into()]),
        (claims::GROUPS.into(), vec![GROUP.into()]),
        (
            claims::OBJECT_ID.into(),
            vec!["0b5c0b5c-0000-4000-8000-000000000009".into()],
        ),
    ];
    let r = client()
        .post(gw.url("/saml/acs"))
        .form(&[("SAMLResponse", idp.sign_response(&spec).unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", gw.log());
    cookie_of(&r)
}

/// The token the app received for one request (a client-sent token is sent along).
async fn token(gw: &Gateway, cookie: &str) -> String {
    let body = client()
        .get(gw.url("/private"))
        .header("cookie", cookie)
        .header("x-ssogate-jwt", "forged.by.client")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let got = echoed(&body, "x-ssogate-jwt");
    assert_eq!(got.len(), 1, "exactly the gateway's token: {got:?}");
    assert_ne!(got[0], "forged.by.client");
    got[0].clone()
}

/// PyJWT's verdict on `token` against `gw`'s JWKS: the decoded JSON.
async fn pyjwt(gw: &Gateway, token: &str) -> Result<serde_json::Value, String> {
    let jwks = client()
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks).unwrap();
    let python = std::env::var("SSOGATE_PYSAML2_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/jwt_verify.py"
        ))
        .arg(&file)
        .arg(token)
        .arg("wiki")
        .arg(PUBLIC_URL)
        .output()
        .expect("python with PyJWT (run scripts/test.sh, or set SSOGATE_PYSAML2_PYTHON)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verify_with_pyjwt_across_a_key_rotation() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let keys = Keys {
        one: rsa_pem(),
        two: rsa_pem(),
        ec: ec_pem(),
    };

    // Step 1: key one signs, key two is published ahead of the switch.
    let a = start(&idp, &keys, &echo, "one.pem", &["two.pem"]).await;
    let jwks: serde_json::Value = serde_json::from_str(
        &client()
            .get(a.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let cookie = sign_in(&a, &idp).await;
    let first = token(&a, &cookie).await;
    let v = pyjwt(&a, &first).await.unwrap();
    assert_eq!(v["alg"], "RS256");
    assert_eq!(v["kid"], jwks["keys"][0]["kid"]);
    let c = &v["claims"];
    assert_eq!(c["sub"], "zoe@contoso.example");
    assert_eq!(c["email"], "zoe@contoso.example");
    assert_eq!(c["name"], "Zoë Ångström");
    assert_eq!(c["groups"], serde_json::json!([GROUP]));
    assert_eq!(c["oid"], "0b5c0b5c-0000-4000-8000-000000000009");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    // Reused, not re-signed, on the next request.
    assert_eq!(token(&a, &cookie).await, first);
    // A tampered token fails PyJWT.
    let mut forged = first.clone();
    forged.insert(forged.find('.').unwrap() + 5, 'A');
    assert!(pyjwt(&a, &forged).await.is_err());

    // Step 2: key two signs, key one stays published: old and new tokens verify.
    let b = start(&idp, &keys, &echo, "two.pem", &["one.pem"]).await;
    let cookie = sign_in(&b, &idp).await;
    let second = token(&b, &cookie).await;
    let v2 = pyjwt(&b, &second).await.unwrap();
    assert_ne!(v2["kid"], v["kid"]);
    assert!(
        pyjwt(&b, &first).await.is_ok(),
        "a token of the previous key must still verify"
    );

    // ES256.
    let e = start(&idp, &keys, &echo, "ec.pem", &[]).await;
    let cookie = sign_in(&e, &idp).await;
    let v3 = pyjwt(&e, &token(&e, &cookie).await).await.unwrap();
    assert_eq!(v3["alg"], "ES256");
}
