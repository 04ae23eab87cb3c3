//! Single Logout, signed requests and encrypted assertions end to end: two replicas of the
//! real `ssogate` binary behind one public URL (as behind a load balancer), one real
//! Redis, an echo upstream, and a test IdP. Signatures the gateway sends are checked
//! with the SP certificate; the messages the IdP sends are signed with its key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;
use ssogate::saml::devidp::self_signed_certificate;
use ssogate::saml::encryption::ContentAlgorithm;
use ssogate::saml::redirect::{parse_redirect_query, MessageParam};
use ssogate::saml::{DevIdp, EncryptFor, ResponseSpec};
use std::time::{Duration, Instant};
use utils::echo::EchoUpstream;
use utils::gateway::Gateway;
use utils::http::{binding_of, client, cookie_of, sign_out};

const PUBLIC_URL: &str = "https://wiki.example.test";
const IDP_SLO: &str = "https://login.example.test/tenant/saml2";

struct Setup {
    replicas: [Gateway; 2],
    /// A user of this test alone (tests share one Redis; logouts without SessionIndex
    /// end every session of a user).
    user: String,
    idp: DevIdp,
    sp_cert_der: Vec<u8>,
    sp_public: PKey<Public>,
    _echo: EchoUpstream,
}

fn config(redis_url: &str, echo_port: u16) -> String {
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[server]
threads = 2
grace_period = "1s"

[session]
store = "redis"
redis_url = "{redis_url}"
cookie_secure = false

[[app]]
name = "wiki"
hosts = ["127.0.0.1", "wiki.example.test"]
upstream = "http://127.0.0.1:{echo_port}"
logout_return_path = "/public/bye"
allow_idp_initiated = true
default_path = "/home"
redirect_allow_hosts = ["portal.example.test"]

[app.sp]
entity_id = "{PUBLIC_URL}/saml"
acs_url = "{PUBLIC_URL}/saml/acs"
slo_url = "{PUBLIC_URL}/saml/slo"
signing_key_file = "sp-key.pem"
certificate_file = "sp-cert.pem"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "{IDP_SLO}"
slo_url = "{IDP_SLO}"
certificate_file = "idp.pem"

[app.headers]
"X-Remote-User" = "name_id"

[[app.route]]
path = "/public/"
public = true
"#
    )
}

async fn setup() -> Setup {
    setup_with(false).await
}

/// With `rollover`, the gateways run with a new SP key pair and keep the old key in
/// `previous_key_files`, while the IdP still encrypts for the old certificate
/// (`sp_cert_der`); signatures come from the new key (`sp_public`).
async fn setup_with(rollover: bool) -> Setup {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let cert = self_signed_certificate(&key).unwrap();
    let key_pem = key.private_key_to_pem_pkcs8().unwrap();
    let cert_pem = cert.to_pem().unwrap();
    let old_key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let old_cert = self_signed_certificate(&old_key).unwrap();
    let old_key_pem = old_key.private_key_to_pem_pkcs8().unwrap();
    let idp_pem = idp.certificate_pem();
    let files: [(&str, &[u8]); 4] = [
        ("idp.pem", idp_pem.as_bytes()),
        ("sp-key.pem", &key_pem),
        ("sp-cert.pem", &cert_pem),
        ("old-sp-key.pem", &old_key_pem),
    ];
    let mut text = config(&utils::redis::shared_url(), echo.port);
    if rollover {
        text = text.replace(
            "certificate_file = \"sp-cert.pem\"",
            "certificate_file = \"sp-cert.pem\"\nprevious_key_files = [\"old-sp-key.pem\"]",
        );
    }
    let a = Gateway::start(&text, &files).await;
    let b = Gateway::start(&text, &files).await;
    Setup {
        replicas: [a, b],
        user: format!("alice-{}@contoso.example", uuid::Uuid::new_v4()),
        idp,
        sp_cert_der: if rollover { old_cert } else { cert.clone() }
            .to_der()
            .unwrap(),
        sp_public: cert.public_key().unwrap(),
        _echo: echo,
    }
}

async fn get(gw: &Gateway, path_and_query: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .get(gw.url(path_and_query))
        .header("accept", "text/html");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

/// The query of a URL the gateway redirected to, checked as a signed Redirect-binding
/// message from the SP; returns the message XML and its parameter.
fn sp_message(s: &Setup, url: &str) -> (MessageParam, String) {
    assert!(url.starts_with(IDP_SLO), "{url}");
    let query = url.split_once('?').unwrap().1;
    let q = parse_redirect_query(query).unwrap();
    q.verify(std::slice::from_ref(&s.sp_public), false)
        .expect("signed with the SP key");
    (q.param, q.xml().unwrap())
}

/// Sign in through `gw`; returns (cookie, SessionIndex).
async fn sign_in(s: &Setup, gw: &Gateway, encrypt: bool) -> (String, String) {
    let r = get(gw, "/saml/login?return_to=/private", None).await;
    let binding = binding_of(&r).expect("a sign-in binding cookie");
    assert_eq!(r.status(), 302);
    let loc = location(&r);
    // The AuthnRequest is signed with the SP key.
    let q = parse_redirect_query(loc.split_once('?').unwrap().1).unwrap();
    q.verify(std::slice::from_ref(&s.sp_public), false)
        .expect("AuthnRequest signed with the SP key");
    let xml = q.xml().unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let id = doc.root_element().attribute("ID").unwrap().to_string();
    let relay = q.relay_state().unwrap();

    let mut spec = ResponseSpec::for_sp(
        &ssogate::saml::SpSettings {
            entity_id: format!("{PUBLIC_URL}/saml"),
            acs_url: format!("{PUBLIC_URL}/saml/acs"),
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
        },
        &s.user,
        chrono::Utc::now(),
    );
    spec.in_response_to = Some(id);
    let session_index = format!("_{}", uuid::Uuid::new_v4());
    spec.session_index = Some(session_index.clone());
    if encrypt {
        spec.encrypt_for = Some(EncryptFor {
            certificate_der: s.sp_cert_der.clone(),
            algorithm: ContentAlgorithm::Aes256Cbc,
        });
    }
    let saml_response = s.idp.sign_response(&spec).unwrap();
    let r = client()
        .post(gw.url("/saml/acs"))
        .header("cookie", binding)
        .form(&[
            ("SAMLResponse", saml_response.as_str()),
            ("RelayState", &relay),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "log: {}", gw.log());
    assert_eq!(location(&r), "/private");
    let cookie = cookie_of(&r);
    (cookie, session_index)
}

async fn is_signed_in(gw: &Gateway, cookie: &str) -> bool {
    let r = get(gw, "/private", Some(cookie)).await;
    match r.status().as_u16() {
        200 => true,
        302 => false,
        other => panic!("unexpected status {other}"),
    }
}

/// Poll until the session is gone on `gw` (revocation feed: well within a second).
async fn signed_out_within(gw: &Gateway, cookie: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !is_signed_in(gw, cookie).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Send an IdP LogoutRequest URL (made for the public SLO URL) to a replica.
async fn deliver(gw: &Gateway, idp_url: &str) -> reqwest::Response {
    let query = idp_url.split_once('?').unwrap().1;
    get(gw, &format!("/saml/slo?{query}"), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_initiated_logout_ends_the_right_sessions_on_every_replica() {
    let s = setup().await;
    let [a, b] = &s.replicas;
    let (first, first_index) = sign_in(&s, a, false).await;
    let (second, _) = sign_in(&s, b, false).await;
    for gw in [a, b] {
        assert!(is_signed_in(gw, &first).await);
        assert!(is_signed_in(gw, &second).await);
    }

    // The IdP ends the first session (by SessionIndex), through replica B.
    let slo = format!("{PUBLIC_URL}/saml/slo");
    let (request_id, url) = s
        .idp
        .logout_request_url(&slo, &s.user, Some(&first_index), chrono::Utc::now())
        .unwrap();
    let r = deliver(b, &url).await;
    assert_eq!(r.status(), 302, "log: {}", b.log());
    let (param, xml) = sp_message(&s, &location(&r));
    assert_eq!(param, MessageParam::Response);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "LogoutResponse");
    assert_eq!(root.attribute("InResponseTo"), Some(request_id.as_str()));
    assert_eq!(root.attribute("Destination"), Some(IDP_SLO));
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:status:Success"));

    // Gone on replica A too (it had it cached), within a second; the other one lives.
    assert!(signed_out_within(a, &first, Duration::from_secs(1)).await);
    assert!(!is_signed_in(b, &first).await);
    assert!(is_signed_in(a, &second).await);

    // Replaying the same LogoutRequest is refused.
    let r = deliver(a, &url).await;
    assert_eq!(r.status(), 400);

    // Without SessionIndex: every session of the user in this app ends.
    let (third, _) = sign_in(&s, a, false).await;
    let (_, url) = s
        .idp
        .logout_request_url(&slo, &s.user, None, chrono::Utc::now())
        .unwrap();
    let r = deliver(a, &url).await;
    assert_eq!(r.status(), 302);
    for gw in [a, b] {
        assert!(signed_out_within(gw, &second, Duration::from_secs(1)).await);
        assert!(signed_out_within(gw, &third, Duration::from_secs(1)).await);
    }
    let metrics = a.metrics().await;
    assert!(
        metrics
            .contains("ssogate_logouts_total{app=\"wiki\",initiator=\"idp\",result=\"success\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_unsigned_logout_requests_end_nothing() {
    let s = setup().await;
    let [a, _] = &s.replicas;
    let (cookie, index) = sign_in(&s, a, false).await;
    let slo = format!("{PUBLIC_URL}/saml/slo");

    // Signed by another IdP key.
    let mallory = DevIdp::generate("https://idp.example.test/").unwrap();
    let (_, url) = mallory
        .logout_request_url(&slo, &s.user, Some(&index), chrono::Utc::now())
        .unwrap();
    assert_eq!(deliver(a, &url).await.status(), 400);

    // Signature stripped.
    let (_, url) = s
        .idp
        .logout_request_url(&slo, &s.user, Some(&index), chrono::Utc::now())
        .unwrap();
    let unsigned: String = url
        .split('&')
        .filter(|p| !p.starts_with("SigAlg=") && !p.starts_with("Signature="))
        .collect::<Vec<_>>()
        .join("&");
    let r = deliver(a, &unsigned).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not signed"));

    // For another SP's SLO URL (Destination).
    let (_, url) = s
        .idp
        .logout_request_url(
            "https://other.example.test/saml/slo",
            &s.user,
            Some(&index),
            chrono::Utc::now(),
        )
        .unwrap();
    assert_eq!(deliver(a, &url).await.status(), 400);

    // An old one (IssueInstant an hour ago).
    let (_, url) = s
        .idp
        .logout_request_url(
            &slo,
            &s.user,
            Some(&index),
            chrono::Utc::now() - chrono::Duration::hours(1),
        )
        .unwrap();
    assert_eq!(deliver(a, &url).await.status(), 400);

    assert!(is_signed_in(a, &cookie).await, "log: {}", a.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_for_the_previous_sp_certificate_still_signs_in() {
    // Mid-rollover: the gateway signs with its new key and Entra still encrypts for the
    // old certificate. The old key, kept in previous_key_files, opens it.
    let s = setup_with(true).await;
    let [a, _] = &s.replicas;
    let (cookie, _) = sign_in(&s, a, true).await;
    assert!(is_signed_in(a, &cookie).await, "log: {}", a.log());
    // The SP metadata publishes the current certificate, never the previous one.
    let xml = get(a, "/saml/metadata", None).await.text().await.unwrap();
    assert!(xml.contains("X509Certificate"), "{xml}");
    assert!(!xml.contains(&STANDARD.encode(&s.sp_cert_der)), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sp_initiated_logout_round_trip() {
    let s = setup().await;
    let [a, b] = &s.replicas;
    // The assertion arrives encrypted for the SP certificate.
    let (cookie, index) = sign_in(&s, a, true).await;
    let r = get(a, "/private", Some(&cookie)).await;
    assert_eq!(r.status(), 200);

    // A GET (a link, maybe from another site) only asks; a cross-site POST is refused.
    let r = get(a, "/saml/logout", Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("method=\"post\""));
    assert_eq!(get(a, "/private", Some(&cookie)).await.status(), 200);
    let r = client()
        .post(a.url("/saml/logout"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(get(a, "/private", Some(&cookie)).await.status(), 200);

    let r = sign_out(&a.url(""), Some(&cookie)).await;
    assert_eq!(r.status(), 302);
    let cleared = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (param, xml) = sp_message(&s, &location(&r));
    assert_eq!(param, MessageParam::Request);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "LogoutRequest");
    assert_eq!(root.attribute("Destination"), Some(IDP_SLO));
    let text = |local: &str| {
        root.descendants()
            .find(|n| n.has_tag_name(local))
            .and_then(|n| n.text())
            .map(str::to_string)
    };
    assert_eq!(text("NameID").as_deref(), Some(s.user.as_str()));
    assert_eq!(text("SessionIndex").as_deref(), Some(index.as_str()));
    assert_eq!(text("Issuer"), Some(format!("{PUBLIC_URL}/saml")));
    let request_id = root.attribute("ID").unwrap().to_string();

    // The session is over at once, on both replicas.
    for gw in [a, b] {
        assert!(signed_out_within(gw, &cookie, Duration::from_secs(1)).await);
    }

    // The IdP's answer, through the other replica: on to logout_return_path.
    let slo = format!("{PUBLIC_URL}/saml/slo");
    let answer = s
        .idp
        .logout_response_url(&slo, &request_id, chrono::Utc::now())
        .unwrap();
    let r = deliver(b, &answer).await;
    assert_eq!(r.status(), 302, "log: {}", b.log());
    assert_eq!(location(&r), "/public/bye");
    // Only once.
    assert_eq!(deliver(b, &answer).await.status(), 400);
    // An answer to a request never sent.
    let stray = s
        .idp
        .logout_response_url(&slo, "_never-sent", chrono::Utc::now())
        .unwrap();
    assert_eq!(deliver(a, &stray).await.status(), 400);

    // Signing out without a session still clears the cookie and lands on the return path.
    let r = sign_out(&a.url(""), None).await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/public/bye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sp_metadata_publishes_keys_and_slo() {
    let s = setup().await;
    let [a, _] = &s.replicas;
    let md = get(a, "/saml/metadata", None).await.text().await.unwrap();
    let doc = roxmltree::Document::parse(&md).unwrap();
    let spsso = doc
        .descendants()
        .find(|n| n.has_tag_name("SPSSODescriptor"))
        .unwrap();
    assert_eq!(spsso.attribute("AuthnRequestsSigned"), Some("true"));
    assert_eq!(spsso.attribute("WantAssertionsSigned"), Some("true"));
    let uses: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("KeyDescriptor"))
        .filter_map(|n| n.attribute("use"))
        .collect();
    assert_eq!(uses, ["signing", "encryption"]);
    use base64::Engine as _;
    let published = doc
        .descendants()
        .find(|n| n.has_tag_name("X509Certificate"))
        .and_then(|n| n.text())
        .unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(published)
            .unwrap(),
        s.sp_cert_der
    );
    let slo = doc
        .descendants()
        .find(|n| n.has_tag_name("SingleLogoutService"))
        .unwrap();
    assert_eq!(
        slo.attribute("Location"),
        Some(format!("{PUBLIC_URL}/saml/slo").as_str())
    );
}

fn unsolicited(s: &Setup, in_response_to: Option<&str>) -> String {
    let mut spec = ResponseSpec::for_sp(
        &ssogate::saml::SpSettings {
            entity_id: format!("{PUBLIC_URL}/saml"),
            acs_url: format!("{PUBLIC_URL}/saml/acs"),
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
        },
        &s.user,
        chrono::Utc::now(),
    );
    spec.in_response_to = in_response_to.map(str::to_string);
    s.idp.sign_response(&spec).unwrap()
}

async fn post_acs(gw: &Gateway, saml_response: &str, relay: Option<&str>) -> reqwest::Response {
    let mut form = vec![("SAMLResponse", saml_response)];
    if let Some(r) = relay {
        form.push(("RelayState", r));
    }
    client()
        .post(gw.url("/saml/acs"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_initiated_sign_in_honours_only_safe_relay_states() {
    let s = setup().await;
    let [a, b] = &s.replicas;
    for (relay, expected) in [
        (Some("/private?x=1"), "/private?x=1"),
        (None, "/home"),
        (
            Some("https://portal.example.test/welcome"),
            "https://portal.example.test/welcome",
        ),
        (Some("https://evil.example/"), "/home"),
        (Some("https://portal.example.test.evil.example/"), "/home"),
        (Some("//evil.example/"), "/home"),
        (Some("javascript:alert(1)"), "/home"),
    ] {
        let r = post_acs(a, &unsolicited(&s, None), relay).await;
        assert_eq!(r.status(), 302, "{relay:?}: {}", a.log());
        assert_eq!(location(&r), expected, "{relay:?}");
    }

    // Every other check still applies: a replay (on another replica) is refused.
    let response = unsolicited(&s, None);
    assert_eq!(post_acs(a, &response, None).await.status(), 302);
    let r = post_acs(b, &response, None).await;
    assert_eq!(r.status(), 403);
    // An InResponseTo that matches no pending request is refused although IdP-initiated
    // sign-in is allowed.
    let r = post_acs(a, &unsolicited(&s, Some("_not-a-pending-request")), None).await;
    assert_eq!(r.status(), 403);
    let metrics = b.metrics().await;
    assert!(metrics.contains("ssogate_login_failures_total{app=\"wiki\",reason=\"replay\"} 1"));
    let metrics = a.metrics().await;
    assert!(metrics.contains(
        "ssogate_login_failures_total{app=\"wiki\",reason=\"in_response_to_unknown\"} 1"
    ));
}
