//! Sign-in and sign-out in a real browser (Debian's headless Chromium through
//! chromedriver, `utils::browser`): browsers enforce what HTTP libraries do not
//! (SameSite, Secure, the `__Host-` prefix, Sec-Fetch-Site and Origin on a form post).
//!
//! - The demo over plain http (`ssogate demo`, its development IdP on the next port of
//!   127.0.0.1, a same-site POST to the ACS): SP-initiated sign-in, sign-out through the
//!   button, and two tabs signing in at once.
//! - Over https with a test CA: the gateway (TLS, `cookie_secure = true`) in front of an
//!   echo upstream, and a test IdP on `https://localhost:<port>`, another site, as Entra
//!   is: the binding cookie (`SameSite=None; Secure`) crosses on the IdP's POST, the
//!   session cookie is `__Host-ssogate`; IdP-initiated sign-in; sign-out; a response for
//!   a sign-in started in one browser, posted from another, is refused.
//!
//! Chromium missing is a failure, not a skip (`scripts/test.sh` installs it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Name, X509NameBuilder, X509};
use ssogate::saml::{DevIdp, ResponseSpec, SpSettings};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_native_tls::native_tls;
use utils::browser::{Browser, Chromedriver, Cookie};
use utils::echo::{echoed, EchoUpstream};
use utils::gateway::Gateway;

// ---------------------------------------------------------------------------------
// The demo over plain http

struct Demo {
    child: std::process::Child,
    base: String,
    idp: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ssogate demo --port P` on a base port whose +1, +2 and +10 neighbours are free.
async fn start_demo() -> Demo {
    let port = (0..100)
        .map(|_| utils::gateway::free_port())
        .find(|&p| {
            p <= 60000
                && [1, 2, 10]
                    .iter()
                    .all(|d| std::net::TcpListener::bind(("127.0.0.1", p + d)).is_ok())
        })
        .expect("no free ports");
    let child = Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .args(["demo", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let demo = Demo {
        child,
        base: format!("http://127.0.0.1:{port}"),
        idp: format!("http://127.0.0.1:{}", port + 1),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("http://127.0.0.1:{}/healthz", port + 10))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "demo did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    demo
}

/// The demo IdP's user picker: the button that signs in as `login`.
fn pick(login: &str) -> String {
    format!("form:has(input[name=\"user\"][value=\"{login}\"]) button")
}

fn named<'a>(cookies: &'a [Cookie], name: &str) -> Option<&'a Cookie> {
    cookies.iter().find(|c| c.name == name)
}

fn bindings(cookies: &[Cookie], prefix: &str) -> Vec<Cookie> {
    cookies
        .iter()
        .filter(|c| c.name.starts_with(prefix))
        .cloned()
        .collect()
}

/// `prefix` followed by 16 lower-case hex digits.
fn is_binding_name(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|tag| {
        tag.len() == 16
            && tag
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_sign_in_and_sign_out_over_http() {
    let demo = start_demo().await;
    let driver = Chromedriver::start().await;
    let b = driver.browser().await;
    let page = format!("{}/some/page?q=1", demo.base);

    b.goto(&page).await;
    b.wait_for_url("the development IdP's picker", |u| {
        u.starts_with(&format!("{}/saml2?SAMLRequest=", demo.idp))
    })
    .await;
    // The binding cookie of this sign-in, without SameSite over plain http.
    let held = bindings(&b.all_cookies().await, "ssogate-login-");
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(is_binding_name(&held[0].name, "ssogate-login-"), "{held:?}");
    assert!(held[0].http_only && !held[0].secure, "{held:?}");
    assert_eq!(held[0].same_site, None, "{held:?}");

    b.click(&pick("alice@demo.example")).await;
    let text = b.wait_for_page(&page).await;
    assert!(text.contains("x-remote-user: alice@demo.example"), "{text}");
    assert!(text.contains("x-remote-name: Alice Admin"), "{text}");

    let cookies = b.cookies().await;
    let session = named(&cookies, "ssogate").unwrap_or_else(|| panic!("{cookies:?}"));
    assert!(session.http_only && !session.secure, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Lax"), "{session:?}");
    assert_eq!(session.path, "/");
    assert!(
        bindings(&b.all_cookies().await, "ssogate-login-").is_empty(),
        "the ACS clears the binding cookie"
    );

    // Signed in: an admin page, no trip to the IdP.
    b.goto(&format!("{}/admin/", demo.base)).await;
    let text = b.wait_for_page(&format!("{}/admin/", demo.base)).await;
    assert!(text.contains("x-remote-user: alice@demo.example"), "{text}");

    // Sign-out: the page's button posts (same origin) to /saml/logout.
    b.goto(&format!("{}/saml/logout", demo.base)).await;
    b.click("#sign-out").await;
    b.wait_for_text("You have been signed out").await;
    assert!(
        b.cookie("ssogate").await.is_none(),
        "{:?}",
        b.cookies().await
    );
    b.goto(&page).await;
    b.wait_for_url("the IdP again after sign-out", |u| {
        u.starts_with(&format!("{}/saml2?SAMLRequest=", demo.idp))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_two_tabs_sign_in_at_once() {
    let demo = start_demo().await;
    let driver = Chromedriver::start().await;
    let b = driver.browser().await;
    let at_idp = |u: &str| u.starts_with(&format!("{}/saml2?SAMLRequest=", demo.idp));
    let one = format!("{}/one", demo.base);
    let two = format!("{}/two", demo.base);

    let tab1 = b.window().await;
    b.goto(&one).await;
    b.wait_for_url("the IdP (tab 1)", at_idp).await;
    let tab2 = b.new_tab().await;
    b.switch_to(&tab2).await;
    b.goto(&two).await;
    b.wait_for_url("the IdP (tab 2)", at_idp).await;
    // Both sign-ins pending, each with its own binding cookie.
    let held = bindings(&b.all_cookies().await, "ssogate-login-");
    assert_eq!(held.len(), 2, "{held:?}");

    // Tab 2 finishes first (as bob), then tab 1 (as alice): each lands on its own page.
    b.click(&pick("bob@demo.example")).await;
    let text = b.wait_for_page(&two).await;
    assert!(text.contains("x-remote-user: bob@demo.example"), "{text}");
    b.switch_to(&tab1).await;
    b.click(&pick("alice@demo.example")).await;
    let text = b.wait_for_page(&one).await;
    assert!(text.contains("x-remote-user: alice@demo.example"), "{text}");
    assert!(bindings(&b.all_cookies().await, "ssogate-login-").is_empty());
}

// ---------------------------------------------------------------------------------
// https with a test CA

/// A test CA and a server certificate it issued for 127.0.0.1 and localhost.
struct TestPki {
    ca_pem: Vec<u8>,
    /// The server certificate, then the CA (the chain the servers send).
    chain_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

fn name(cn: &str) -> X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

fn serial() -> Asn1Integer {
    let mut bn = BigNum::new().unwrap();
    bn.rand(63, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .unwrap();
    bn.to_asn1_integer().unwrap()
}

fn rsa_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn test_pki() -> TestPki {
    let ca_key = rsa_key();
    let ca_name = name("ssogate browser test CA");
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial()).unwrap();
    b.set_subject_name(&ca_name).unwrap();
    b.set_issuer_name(&ca_name).unwrap();
    b.set_pubkey(&ca_key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca = b.build();

    let key = rsa_key();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial()).unwrap();
    b.set_subject_name(&name("127.0.0.1")).unwrap();
    b.set_issuer_name(ca.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&b.x509v3_context(Some(&ca), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let leaf = b.build();

    let ca_pem = ca.to_pem().unwrap();
    let mut chain_pem = leaf.to_pem().unwrap();
    chain_pem.extend_from_slice(&ca_pem);
    TestPki {
        ca_pem,
        chain_pem,
        key_pem: key.private_key_to_pem_pkcs8().unwrap(),
    }
}

const SP_ENTITY_ID: &str = "https://app.example.test/saml";

/// A test IdP on `https://localhost:<port>` (another site than the gateway's
/// `https://127.0.0.1:<port>`, as Entra is), signing with a `DevIdp`:
/// - `GET /sso?SAMLRequest=…&RelayState=…`: a page with a sign-in button (`#sign-in`)
///   that posts the request's ID, the RelayState and the user (`#user`) to `/login`;
/// - `/login` (POST form, or GET query: `request_id`, `relay`, `user`): an auto-posting
///   form to the ACS with the signed response (InResponseTo = `request_id` unless empty:
///   without it, an IdP-initiated sign-in) and the RelayState.
struct TestIdp {
    idp: DevIdp,
    sp: SpSettings,
}

impl TestIdp {
    fn page(&self, method: &str, target: &str, body: &str) -> (u16, String) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let form = |s: &str, k: &str| {
            url::form_urlencoded::parse(s.as_bytes())
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let attr = |s: &str| html_escape::encode_double_quoted_attribute(s).into_owned();
        match (method, path) {
            ("GET", "/sso") => {
                let xml =
                    ssogate::saml::decode_redirect_request(&form(query, "SAMLRequest")).unwrap();
                let doc = roxmltree::Document::parse(&xml).unwrap();
                let id = doc.root_element().attribute("ID").unwrap();
                (
                    200,
                    format!(
                        "<!DOCTYPE html><html><head><title>Test IdP</title></head><body>\
                         <h1>Test IdP</h1><form method=\"post\" action=\"/login\">\
                         <input type=\"hidden\" name=\"request_id\" id=\"request_id\" value=\"{}\">\
                         <input type=\"hidden\" name=\"relay\" id=\"relay\" value=\"{}\">\
                         <input name=\"user\" id=\"user\" value=\"ann@contoso.example\">\
                         <button type=\"submit\" id=\"sign-in\">Sign in</button></form></body></html>",
                        attr(id),
                        attr(&form(query, "RelayState"))
                    ),
                )
            }
            (_, "/login") => {
                let params = if method == "POST" { body } else { query };
                let mut spec =
                    ResponseSpec::for_sp(&self.sp, &form(params, "user"), chrono::Utc::now());
                let id = form(params, "request_id");
                spec.in_response_to = (!id.is_empty()).then_some(id);
                let response = self.idp.sign_response(&spec).unwrap();
                (
                    200,
                    format!(
                        "<!DOCTYPE html><html><body onload=\"document.forms[0].submit()\">\
                         <form method=\"post\" action=\"{}\">\
                         <input type=\"hidden\" name=\"SAMLResponse\" value=\"{}\">\
                         <input type=\"hidden\" name=\"RelayState\" value=\"{}\">\
                         </form></body></html>",
                        attr(&self.sp.acs_url),
                        attr(&response),
                        attr(&form(params, "relay"))
                    ),
                )
            }
            _ => (404, "not found".into()),
        }
    }

    /// One request per connection (HTTP/1.1, `connection: close`).
    async fn serve(&self, mut s: impl AsyncRead + AsyncWrite + Unpin) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            match s.read(&mut chunk).await {
                Ok(n) if n > 0 && buf.len() < 256 * 1024 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_string();
        let target = request_line.next().unwrap_or_default().to_string();
        let length: usize = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            match s.read(&mut chunk).await {
                Ok(n) if n > 0 => body.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let (status, page) = self.page(&method, &target, &String::from_utf8_lossy(&body));
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: text/html; charset=utf-8\r\n\
             cache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
        let _ = s.shutdown().await;
    }
}

/// The gateway over https in front of an echo upstream, the test IdP, and a browser
/// driver. `base` is `https://127.0.0.1:<port>`, `idp` is `https://localhost:<port>`.
struct Https {
    base: String,
    idp: String,
    ca_pem: Vec<u8>,
    gw: Gateway,
    _echo: EchoUpstream,
    idp_task: tokio::task::JoinHandle<()>,
    driver: Chromedriver,
}

impl Drop for Https {
    fn drop(&mut self) {
        self.idp_task.abort();
    }
}

const HTTPS_CONFIG: &str = r#"
[listen]
public = "127.0.0.1:{public}"
admin = "127.0.0.1:{admin}"
tls_cert_file = "cert.pem"
tls_key_file = "key.pem"

[session]
store = "memory"
cookie_secure = true

[[app]]
name = "app"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:{echo}"
allow_idp_initiated = true

[app.sp]
entity_id = "{sp_entity_id}"
acs_url = "https://127.0.0.1:{public}/saml/acs"
name_id_format = "emailAddress"

[app.idp]
entity_id = "https://localhost:{idp}/"
sso_url = "https://localhost:{idp}/sso"
certificate_file = "idp.pem"

[app.headers]
"X-Remote-User" = "name_id"
"#;

async fn start_https() -> Https {
    let pki = test_pki();
    let echo = EchoUpstream::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp_port = listener.local_addr().unwrap().port();
    let idp = DevIdp::generate(&format!("https://localhost:{idp_port}/")).unwrap();
    let config = HTTPS_CONFIG
        .replace("{echo}", &echo.port.to_string())
        .replace("{idp}", &idp_port.to_string())
        .replace("{sp_entity_id}", SP_ENTITY_ID);
    let gw = Gateway::start(
        &config,
        &[
            ("idp.pem", idp.certificate_pem().as_bytes()),
            ("cert.pem", &pki.chain_pem),
            ("key.pem", &pki.key_pem),
        ],
    )
    .await;
    let base = format!("https://127.0.0.1:{}", gw.public);
    let test_idp = Arc::new(TestIdp {
        idp,
        sp: SpSettings {
            entity_id: SP_ENTITY_ID.into(),
            acs_url: format!("{base}/saml/acs"),
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
        },
    });
    let identity = native_tls::Identity::from_pkcs8(&pki.chain_pem, &pki.key_pem).unwrap();
    let tls = tokio_native_tls::TlsAcceptor::from(native_tls::TlsAcceptor::new(identity).unwrap());
    let idp_task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (tls, idp) = (tls.clone(), test_idp.clone());
            tokio::spawn(async move {
                if let Ok(Ok(s)) =
                    tokio::time::timeout(Duration::from_secs(10), tls.accept(sock)).await
                {
                    idp.serve(s).await;
                }
            });
        }
    });
    Https {
        base,
        idp: format!("https://localhost:{idp_port}"),
        ca_pem: pki.ca_pem,
        gw,
        _echo: echo,
        idp_task,
        driver: Chromedriver::start().await,
    }
}

impl Https {
    async fn browser(&self) -> Browser {
        self.driver.browser_trusting(&self.ca_pem).await
    }

    fn at_idp(&self) -> impl Fn(&str) -> bool + '_ {
        move |u: &str| u.starts_with(&format!("{}/sso?SAMLRequest=", self.idp))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_sign_in_cookies_idp_initiated_and_sign_out() {
    let h = start_https().await;
    let b = h.browser().await;
    let page = format!("{}/docs/page?x=1", h.base);

    // SP-initiated: to the IdP (another site) with a SameSite=None; Secure binding cookie.
    b.goto(&page).await;
    b.wait_for_url("the test IdP", h.at_idp()).await;
    let held = bindings(&b.all_cookies().await, "__Host-ssogate-login-");
    assert_eq!(held.len(), 1, "{held:?}\n{}", h.gw.log());
    let binding = &held[0];
    assert!(
        is_binding_name(&binding.name, "__Host-ssogate-login-"),
        "{binding:?}"
    );
    assert!(binding.secure && binding.http_only, "{binding:?}");
    assert_eq!(binding.same_site.as_deref(), Some("None"), "{binding:?}");
    assert_eq!(
        (binding.domain.as_str(), binding.path.as_str()),
        ("127.0.0.1", "/")
    );

    // The IdP's cross-site POST carries it: signed in, back on the page asked for.
    b.click("#sign-in").await;
    let text = b.wait_for_page(&page).await;
    assert_eq!(
        echoed(&text, "x-remote-user"),
        ["ann@contoso.example"],
        "{text}\n{}",
        h.gw.log()
    );
    assert_eq!(echoed(&text, "x-forwarded-proto"), ["https"], "{text}");
    assert!(
        !text.contains("ssogate"),
        "the gateway's cookies reach the app: {text}"
    );

    let cookies = b.cookies().await;
    let session = named(&cookies, "__Host-ssogate").unwrap_or_else(|| panic!("{cookies:?}"));
    assert!(session.http_only && session.secure, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Lax"), "{session:?}");
    assert_eq!(
        (session.domain.as_str(), session.path.as_str()),
        ("127.0.0.1", "/")
    );
    assert!(
        bindings(&b.all_cookies().await, "__Host-ssogate-login-").is_empty(),
        "the ACS clears the binding cookie"
    );

    // Sign-out through the button (a same-origin POST), then the IdP again.
    b.goto(&format!("{}/saml/logout", h.base)).await;
    b.click("#sign-out").await;
    b.wait_for_text("You have been signed out").await;
    assert!(
        b.cookie("__Host-ssogate").await.is_none(),
        "{:?}",
        b.cookies().await
    );
    b.goto(&page).await;
    b.wait_for_url("the test IdP after sign-out", h.at_idp())
        .await;

    // IdP-initiated (the IdP's app portal): no binding, RelayState is where to land.
    b.goto(&format!(
        "{}/login?user=bob%40contoso.example&relay=%2Flanding",
        h.idp
    ))
    .await;
    let text = b.wait_for_page(&format!("{}/landing", h.base)).await;
    assert_eq!(
        echoed(&text, "x-remote-user"),
        ["bob@contoso.example"],
        "{text}"
    );
    let session = b.cookie("__Host-ssogate").await.unwrap();
    assert!(session.http_only && session.secure, "{session:?}");

    b.goto(&format!("{}/saml/logout", h.base)).await;
    b.click("#sign-out").await;
    b.wait_for_text("You have been signed out").await;
    assert!(b.cookie("__Host-ssogate").await.is_none());
}

/// The pending sign-in shown on the test IdP's page: the AuthnRequest's ID and the
/// RelayState.
async fn idp_form(b: &Browser) -> (String, String) {
    let id = b.find("#request_id").await;
    let relay = b.find("#relay").await;
    (
        b.attribute(&id, "value").await.unwrap(),
        b.attribute(&relay, "value").await.unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_response_from_another_browser_is_refused() {
    let h = start_https().await;
    let a = h.browser().await;
    let other = h.browser().await;
    let page = format!("{}/secret", h.base);

    // Browser A starts a sign-in; the IdP's answer to it is posted from browser B (a
    // login CSRF: B would be signed in as whoever started it).
    a.goto(&page).await;
    a.wait_for_url("the test IdP", h.at_idp()).await;
    let (request_id, relay) = idp_form(&a).await;
    let forged = |request_id: &str, relay: &str| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("request_id", request_id)
            .append_pair("relay", relay)
            .append_pair("user", "mallory@contoso.example")
            .finish();
        format!("{}/login?{q}", h.idp)
    };
    other.goto(&forged(&request_id, &relay)).await;
    let text = other.wait_for_text("another browser").await;
    assert!(text.contains("started in another browser"), "{text}");
    assert_eq!(other.status().await, 403);
    assert_eq!(other.url().await, format!("{}/saml/acs", h.base));
    assert!(other.cookie("__Host-ssogate").await.is_none());
    assert!(
        other.all_cookies().await.is_empty(),
        "{:?}",
        other.all_cookies().await
    );

    // The same answer brought back by the browser that started it is accepted.
    a.goto(&page).await;
    a.wait_for_url("the test IdP", h.at_idp()).await;
    let (request_id, relay) = idp_form(&a).await;
    a.goto(&forged(&request_id, &relay)).await;
    let text = a.wait_for_page(&page).await;
    assert_eq!(a.status().await, 200);
    assert_eq!(
        echoed(&text, "x-remote-user"),
        ["mallory@contoso.example"],
        "{text}"
    );
}
