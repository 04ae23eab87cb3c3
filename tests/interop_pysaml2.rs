//! Interop with a real, independent SAML IdP: pysaml2 (PyPI) with xmlsec1, driven over
//! loopback HTTP as a browser would (tests/interop/pysaml2_idp.py). Covers SP-initiated
//! and IdP-initiated sign-in, signed AuthnRequests (pysaml2 refuses unsigned or tampered
//! ones), assertion-, response- and both-signed responses, encrypted assertions
//! (AES-256-CBC, AES-128-CBC; 3DES refused), and Single Logout both ways.
//!
//! The Python comes from `SSOGATE_PYSAML2_PYTHON` (scripts/test.sh makes a venv with
//! pysaml2), else `python3` when it can import saml2.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use ssogate::saml::devidp::self_signed_certificate;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use utils::echo::{echoed, EchoUpstream};
use utils::gateway::{free_port, Gateway};
use utils::http::{binding_of, cookie_of, sign_out};

struct Idp {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("idp.log")).unwrap_or_default()
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path_and_query)
    }
}

fn python() -> String {
    if let Ok(p) = std::env::var("SSOGATE_PYSAML2_PYTHON") {
        return p;
    }
    let ok = Command::new("python3")
        .args(["-c", "import saml2"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "pysaml2 is needed: run scripts/test.sh (it makes a venv), or set SSOGATE_PYSAML2_PYTHON to a python with pysaml2"
    );
    "python3".into()
}

fn write_key_pair(dir: &Path, name: &str) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let cert = self_signed_certificate(&key).unwrap();
    std::fs::write(
        dir.join(format!("{name}-key.pem")),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join(format!("{name}-cert.pem")), cert.to_pem().unwrap()).unwrap();
}

fn start_idp() -> Idp {
    let dir = tempfile::tempdir().unwrap();
    write_key_pair(dir.path(), "idp");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("idp.log")).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/pysaml2_idp.py");
    let child = Command::new(python())
        .arg(script)
        .arg(port.to_string())
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let idp = Idp { port, child, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !idp.dir.path().join("idp-ready").exists() {
        assert!(
            Instant::now() < deadline,
            "pysaml2 IdP did not start:\n{}",
            idp.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    idp
}

fn config(echo_port: u16, response_signed: bool) -> String {
    let signing = if response_signed {
        "want_assertions_signed = false\nwant_response_signed = true"
    } else {
        ""
    };
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
default_path = "/home"
logout_return_path = "/public/bye"

[app.sp]
entity_id = "http://127.0.0.1:{{public}}/saml"
acs_url = "http://127.0.0.1:{{public}}/saml/acs"
slo_url = "http://127.0.0.1:{{public}}/saml/slo"
signing_key_file = "sp-key.pem"
certificate_file = "sp-cert.pem"

[app.idp]
metadata_file = "idp-metadata.xml"
{signing}

[app.headers]
"X-Remote-User" = "name_id"
"X-Remote-Email" = "email"
"X-Remote-Given-Name" = "given_name"

[[app.route]]
path = "/public/"
public = true
"#
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn start_gateway(idp: &Idp, echo: &EchoUpstream, response_signed: bool) -> Gateway {
    let sp = tempfile::tempdir().unwrap();
    write_key_pair(sp.path(), "sp");
    let metadata = std::fs::read(idp.dir.path().join("idp-metadata.xml")).unwrap();
    let key = std::fs::read(sp.path().join("sp-key.pem")).unwrap();
    let cert = std::fs::read(sp.path().join("sp-cert.pem")).unwrap();
    let gw = Gateway::start(
        &config(echo.port, response_signed),
        &[
            ("idp-metadata.xml", &metadata),
            ("sp-key.pem", &key),
            ("sp-cert.pem", &cert),
        ],
    )
    .await;
    // The IdP learns this SP from the metadata ssogate serves.
    let md = client()
        .get(gw.url("/saml/metadata"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = client()
        .post(idp.url("/sp-metadata"))
        .body(md)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", idp.log());
    gw
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location ({})", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// The hidden inputs of pysaml2's auto-post form: (action, SAMLResponse, RelayState).
fn form(html: &str) -> (String, String, String) {
    let value = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        html.split_once(&marker)
            .map(|(_, rest)| rest.split('"').next().unwrap().to_string())
            .unwrap_or_default()
    };
    let action = html
        .split_once("action=\"")
        .map(|(_, rest)| rest.split('"').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no form in: {html}"));
    (
        action,
        html_escape::decode_html_entities(&value("SAMLResponse")).into_owned(),
        html_escape::decode_html_entities(&value("RelayState")).into_owned(),
    )
}

/// Post the IdP's form to the ACS, with the sign-in's binding cookie when the browser
/// holds one; returns the ACS answer.
async fn post_form(html: &str, binding: Option<&str>) -> reqwest::Response {
    let (action, response, relay) = form(html);
    let mut fields = vec![("SAMLResponse", response)];
    if !relay.is_empty() {
        fields.push(("RelayState", relay));
    }
    let mut req = client().post(action).form(&fields);
    if let Some(b) = binding {
        req = req.header("cookie", b);
    }
    req.send().await.unwrap()
}

/// SP-initiated sign-in at /private through the pysaml2 IdP; returns the ACS answer.
async fn sign_in(
    gw: &Gateway,
    idp: &Idp,
    user: &str,
    mode: &str,
    encrypt: &str,
) -> reqwest::Response {
    let r = client()
        .get(gw.url("/private"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let binding = binding_of(&r).expect("a sign-in binding cookie");
    let to_idp = location(&r);
    assert!(
        to_idp.contains("&Signature="),
        "AuthnRequest not signed: {to_idp}"
    );
    let r = client()
        .get(format!(
            "{to_idp}&user={user}&mode={mode}&encrypt={encrypt}"
        ))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let html = r.text().await.unwrap();
    assert_eq!(
        status,
        200,
        "pysaml2 refused the AuthnRequest: {html}\n{}",
        idp.log()
    );
    post_form(&html, Some(&binding)).await
}

async fn page(gw: &Gateway, cookie: &str) -> (u16, String) {
    let r = client()
        .get(gw.url("/private"))
        .header("accept", "text/html")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_every_signing_and_encryption_mode() {
    let idp = tokio::task::spawn_blocking(start_idp).await.unwrap();
    let echo = EchoUpstream::start().await;
    let assertion_app = start_gateway(&idp, &echo, false).await;
    let response_app = start_gateway(&idp, &echo, true).await;

    for (gw, mode, encrypt, accepted) in [
        (&assertion_app, "assertion", "none", true),
        (&assertion_app, "both", "none", true),
        (&assertion_app, "assertion", "aes256-cbc", true),
        (&assertion_app, "both", "aes128-cbc", true),
        (&assertion_app, "response", "none", false),
        (&response_app, "response", "none", true),
        (&response_app, "both", "none", true),
        (&response_app, "response", "aes256-cbc", true),
        (&response_app, "assertion", "none", false),
        // pysaml2's default content encryption (3DES) is refused: fail closed.
        (&assertion_app, "assertion", "3des", false),
    ] {
        let r = sign_in(gw, &idp, "zoe@example.com", mode, encrypt).await;
        if !accepted {
            assert_eq!(r.status(), 403, "{mode}/{encrypt} must be refused");
            continue;
        }
        assert_eq!(r.status(), 302, "{mode}/{encrypt}: {}", gw.log());
        assert_eq!(location(&r), "/private");
        let cookie = cookie_of(&r);
        let (status, body) = page(gw, &cookie).await;
        assert_eq!(status, 200, "{mode}/{encrypt}");
        assert_eq!(echoed(&body, "x-remote-user"), ["zoe@example.com"]);
        assert_eq!(echoed(&body, "x-remote-email"), ["zoe@example.com"]);
    }
    let log = assertion_app.log();
    assert!(log.contains("reason=\"assertion_not_signed\""), "{log}");
    assert!(log.contains("reason=\"encryption_algorithm\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_refuses_a_tampered_authn_request_and_idp_initiated_sign_in_works() {
    let idp = tokio::task::spawn_blocking(start_idp).await.unwrap();
    let echo = EchoUpstream::start().await;
    let gw = start_gateway(&idp, &echo, false).await;

    // Our AuthnRequest signature is what pysaml2 checks: a changed RelayState fails it.
    let r = client()
        .get(gw.url("/private"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let to_idp = location(&r);
    let (head, relay_and_rest) = to_idp.split_once("&RelayState=").unwrap();
    let tampered = format!("{head}&RelayState=x{relay_and_rest}&user=a@example.com");
    let r = client().get(tampered).send().await.unwrap();
    assert_eq!(r.status(), 400, "pysaml2 accepted a tampered AuthnRequest");
    let unsigned = format!(
        "{}&user=a@example.com",
        to_idp.split("&SigAlg=").next().unwrap()
    );
    assert_eq!(client().get(unsigned).send().await.unwrap().status(), 400);

    // IdP-initiated (My Apps tile): no InResponseTo; RelayState honoured.
    let r = client()
        .get(idp.url("/idp-initiated?user=tile@example.com&relay=/private/report"))
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    let r = post_form(&html, None).await;
    assert_eq!(r.status(), 302, "{}", gw.log());
    assert_eq!(location(&r), "/private/report");
    let (status, body) = page(&gw, &cookie_of(&r)).await;
    assert_eq!(status, 200);
    assert_eq!(echoed(&body, "x-remote-user"), ["tile@example.com"]);
    // The same response again: a replay.
    assert_eq!(post_form(&html, None).await.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_logout_both_ways() {
    let idp = tokio::task::spawn_blocking(start_idp).await.unwrap();
    let echo = EchoUpstream::start().await;
    let gw = start_gateway(&idp, &echo, false).await;

    // SP-initiated: ssogate's signed LogoutRequest is verified by pysaml2, whose signed
    // LogoutResponse ssogate verifies.
    let r = sign_in(&gw, &idp, "ann@example.com", "assertion", "aes256-cbc").await;
    let cookie = cookie_of(&r);
    assert_eq!(page(&gw, &cookie).await.0, 200);
    let r = sign_out(&gw.url(""), Some(&cookie)).await;
    assert_eq!(r.status(), 302);
    let r = client().get(location(&r)).send().await.unwrap();
    assert_eq!(
        r.status(),
        302,
        "pysaml2 refused our LogoutRequest: {}",
        idp.log()
    );
    let back = location(&r);
    let seen: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(seen["name_id"], "ann@example.com");
    assert_eq!(seen["session_index"].as_array().unwrap().len(), 1);
    let r = client().get(back).send().await.unwrap();
    assert_eq!(r.status(), 302, "{}", gw.log());
    assert_eq!(location(&r), "/public/bye");
    assert_eq!(
        page(&gw, &cookie).await.0,
        302,
        "still signed in after logout"
    );

    // IdP-initiated: pysaml2's signed LogoutRequest ends the session; pysaml2 verifies
    // ssogate's signed LogoutResponse.
    let r = sign_in(&gw, &idp, "ben@example.com", "both", "none").await;
    let cookie = cookie_of(&r);
    assert_eq!(page(&gw, &cookie).await.0, 200);
    let r = client()
        .get(idp.url("/start-logout?user=ben@example.com"))
        .send()
        .await
        .unwrap();
    let to_sp = location(&r);
    let r = client().get(to_sp).send().await.unwrap();
    assert_eq!(
        r.status(),
        302,
        "ssogate refused pysaml2's LogoutRequest: {}",
        gw.log()
    );
    let r = client().get(location(&r)).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "logout-ok"),
        "{}",
        idp.log()
    );
    assert_eq!(
        page(&gw, &cookie).await.0,
        302,
        "still signed in after IdP logout"
    );
}
