//! PostReplay: a form POST that arrives without a live session keeps its (urlencoded,
//! limited) body through the sign-in and is posted again from the browser afterwards;
//! larger or non-form bodies get a clear page instead.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use ssogate::saml::{self, DevIdp, ResponseSpec, SpSettings};
use utils::echo::{echoed, EchoUpstream};
use utils::gateway::Gateway;
use utils::http::{binding_of, client, cookie_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_keeps_the_form_through_sign_in() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let pem = idp.certificate_pem();
    let config = format!(
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
upstream = "http://127.0.0.1:{}"
post_replay_max_bytes = 1024

[app.sp]
entity_id = "https://wiki.example.test/saml"
acs_url = "https://wiki.example.test/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"

[app.headers]
"X-Remote-User" = "name_id"
"#,
        echo.port
    );
    let gw = Gateway::start(&config, &[("idp.pem", pem.as_bytes())]).await;
    let form = "title=Q3+plan&body=Zo%C3%AB+%3Cb%3Ebold%3C%2Fb%3E&n=1";
    // A form on the app's own page: the browser says the POST is same-origin.
    let post_from = |site: &'static str, body: &'static str, content_type: &'static str| {
        client()
            .post(gw.url("/wiki/edit?page=7"))
            .header("accept", "text/html")
            .header("sec-fetch-site", site)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let post = |body, content_type| post_from("same-origin", body, content_type);

    // A cross-site form (SameSite=Lax kept the session cookie away): never kept, never
    // replayed; the app would otherwise run another site's action as the user.
    let r = post_from("cross-site", form, "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("could not be kept"));

    // Not signed in (session expired): to the IdP, the body kept.
    let r = post(form, "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", gw.log());
    let binding = binding_of(&r).expect("a sign-in binding cookie");
    let to_idp = r.headers()["location"].to_str().unwrap().to_string();
    let u = url::Url::parse(&to_idp).unwrap();
    let q = |k: &str| {
        u.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let xml = saml::decode_redirect_request(&q("SAMLRequest")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let request_id = doc.root_element().attribute("ID").unwrap().to_string();

    // Back from the IdP: a page that posts the same fields to the same URL.
    let sp = SpSettings {
        entity_id: "https://wiki.example.test/saml".into(),
        acs_url: "https://wiki.example.test/saml/acs".into(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    let mut spec = ResponseSpec::for_sp(&sp, "ann@contoso.example", chrono::Utc::now());
    spec.in_response_to = Some(request_id);
    let r = client()
        .post(gw.url("/saml/acs"))
        .header("cookie", &binding)
        .form(&[
            ("SAMLResponse", idp.sign_response(&spec).unwrap()),
            ("RelayState", q("RelayState")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", gw.log());
    let cookie = cookie_of(&r);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("<form method=\"post\" action=\"/wiki/edit?page=7\""),
        "{page}"
    );
    assert!(page.contains("name=\"title\" value=\"Q3 plan\""), "{page}");
    assert!(
        page.contains("name=\"body\" value=\"Zoë &lt;b&gt;bold&lt;/b&gt;\""),
        "{page}"
    );
    assert!(page.contains("name=\"n\" value=\"1\""), "{page}");
    assert!(!page.contains("<b>bold"), "form values must be escaped");

    // The browser posts it, now signed in: it reaches the app with the identity.
    let r = client()
        .post(gw.url("/wiki/edit?page=7"))
        .header("cookie", &cookie)
        .form(&[
            ("title", "Q3 plan"),
            ("body", "Zoë <b>bold</b>"),
            ("n", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed_body = r.text().await.unwrap();
    assert!(
        echoed_body.starts_with("POST /wiki/edit?page=7 "),
        "{echoed_body}"
    );
    assert_eq!(
        echoed(&echoed_body, "x-remote-user"),
        ["ann@contoso.example"]
    );

    // Too large, or not a plain form: a clear page, nothing kept.
    let big: &'static str = Box::leak(format!("a={}", "x".repeat(2000)).into_boxed_str());
    let r = post(big, "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("could not be kept"));
    let r = post("{\"a\":1}", "application/json").await.unwrap();
    assert_eq!(r.status(), 401);
}
