//! Redis over TLS with ACL users, as Azure Cache for Redis and hardened self-hosted
//! servers require: a real `redis-server --tls-port` with a CA made here. What must be
//! refused is (wrong CA, wrong name, wrong password, missing client certificate,
//! `#insecure`), with errors that name the cause and never the password; a gateway on
//! `rediss://` is ready, and one trusting the wrong CA says so at start-up and in /readyz.
//! (The store conformance suite over TLS is in session_conformance.rs.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use ssogate::session::{RedisOptions, RedisStore, SessionStore};
use std::time::Duration;
use utils::echo::EchoUpstream;
use utils::gateway::Gateway;
use utils::tls::{Pki, TlsRedis, PASSWORD, USER};

fn options(pki: &Pki) -> RedisOptions {
    RedisOptions {
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
        ca_pem: Some(pki.ca_pem.clone()),
        client_tls: Some((pki.client_cert_pem.clone(), pki.client_key_pem.clone())),
        ..RedisOptions::default()
    }
}

/// Ping through a store built from `url` and `options`: the error text, or "ok".
async fn ping(url: &str, options: RedisOptions) -> String {
    let store = match RedisStore::connect_with(url, options) {
        Ok(s) => s,
        Err(e) => return format!("config: {e}"),
    };
    match tokio::time::timeout(Duration::from_secs(10), store.ping()).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timeout".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_an_acl_user_connects_and_every_wrong_setting_is_refused() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, "yes");
    let url = server.url("localhost");
    assert_eq!(ping(&url, options(&pki)).await, "ok");

    let mut cases: Vec<(&str, String, RedisOptions, &[&str])> = Vec::new();
    let mut o = options(&pki);
    o.ca_pem = Some(Pki::stranger_ca());
    cases.push((
        "a CA that did not sign the server's certificate",
        url.clone(),
        o,
        &["certificate"],
    ));
    cases.push((
        "the system CAs (the server's CA is private)",
        url.clone(),
        RedisOptions {
            ca_pem: None,
            ..options(&pki)
        },
        &["certificate"],
    ));
    // The certificate names localhost only.
    cases.push((
        "a host the certificate does not name",
        server.url("127.0.0.1"),
        options(&pki),
        &["certificate"],
    ));
    cases.push((
        "a wrong password",
        url.clone(),
        RedisOptions {
            password: Some("not-the-password".into()),
            ..options(&pki)
        },
        &["authentication failed", "WRONGPASS"],
    ));
    cases.push((
        "no user: the default user is off",
        url.clone(),
        RedisOptions {
            username: None,
            ..options(&pki)
        },
        &["authentication failed", "WRONGPASS"],
    ));
    cases.push((
        "no client certificate where the server requires one",
        url.clone(),
        RedisOptions {
            client_tls: None,
            ..options(&pki)
        },
        // TLS 1.3: the server judges the client's certificate after the handshake; its
        // alert ("certificate required") usually arrives, but it may reset first.
        &["certificate required", "Connection reset by peer"],
    ));
    cases.push((
        "#insecure",
        format!("{url}#insecure"),
        options(&pki),
        &["insecure"],
    ));
    cases.push((
        "TLS material on a plain redis:// URL",
        format!("redis://localhost:{}/0", server.port),
        options(&pki),
        &["rediss://"],
    ));
    for (what, url, o, expect) in cases {
        let got = ping(&url, o).await;
        assert_ne!(got, "ok", "{what}: connected");
        assert!(
            !got.contains(PASSWORD) && !got.contains("not-the-password"),
            "{what}: {got}"
        );
        assert!(
            expect.iter().any(|e| got.contains(e)),
            "{what}: {got} (expected one of {expect:?})"
        );
        eprintln!("{what}: {got}");
    }
}

fn config(url: &str, ca_file: &str, upstream: u16) -> String {
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[server]
grace_period = "1s"

[session]
store = "redis"
redis_url = "{url}"
redis_username = "{USER}"
redis_password_file = "redis-password"
redis_ca_file = "{ca_file}"
redis_client_cert_file = "client.pem"
redis_client_key_file = "client.key"
cookie_secure = false

[[app]]
name = "wiki"
hosts = ["*"]
upstream = "http://127.0.0.1:{upstream}"

[app.sp]
entity_id = "http://127.0.0.1/saml"
acs_url = "http://127.0.0.1/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_rediss_signs_in_and_a_wrong_ca_shows_at_start_and_in_readyz() {
    let pki = Pki::new();
    let server = TlsRedis::start(&pki, "yes");
    let echo = EchoUpstream::start().await;
    let idp = ssogate::saml::DevIdp::generate("https://idp.example.test/").unwrap();
    let stranger = Pki::stranger_ca();
    let idp_pem = idp.certificate_pem();
    let files: Vec<(&str, &[u8])> = vec![
        ("idp.pem", idp_pem.as_bytes()),
        ("redis-password", PASSWORD.as_bytes()),
        ("ca.pem", pki.ca_pem.as_slice()),
        ("stranger-ca.pem", stranger.as_slice()),
        ("client.pem", pki.client_cert_pem.as_slice()),
        ("client.key", pki.client_key_pem.as_slice()),
    ];
    let url = server.url("localhost");

    // check-config says how the store is reached, and nothing secret.
    let (code, text) = utils::cli::check_config(&config(&url, "ca.pem", echo.port), &files);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "session store: Redis, TLS (at least 1.2, server name checked) trusting session.redis_ca_file, client certificate from session.redis_client_cert_file, ACL user \"{USER}\" from redis_username, password from redis_password_file"
        )),
        "{text}"
    );
    assert!(!text.contains(PASSWORD));

    let gw = Gateway::start(&config(&url, "ca.pem", echo.port), &files).await;
    let ready = reqwest::get(gw.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "{}", gw.log());
    assert!(gw.log().contains("session store answers"), "{}", gw.log());
    // A user signs in: the session is written and read over TLS as the ACL user.
    let started = utils::signin::start(&gw.url("/page")).await;
    let r = utils::signin::finish(
        &idp,
        &utils::signin::sp("http://127.0.0.1"),
        &gw.url("/saml/acs"),
        &started,
        "alice@contoso.example",
        Vec::new(),
    )
    .await;
    assert_eq!(r.status(), 302, "{}", gw.log());
    let page = utils::http::client()
        .get(gw.url("/page"))
        .header("cookie", utils::http::cookie_of(&r))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "{}", gw.log());

    let wrong = Gateway::start(&config(&url, "stranger-ca.pem", echo.port), &files).await;
    let ready = reqwest::get(wrong.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let body = ready.text().await.unwrap();
    assert!(body.contains("session store"), "{body}");
    assert!(body.contains("certificate"), "{body}");
    let mut logged = false;
    for _ in 0..100 {
        if wrong
            .log()
            .contains("session store unreachable at start-up")
        {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged, "{}", wrong.log());
    assert!(!wrong.log().contains(PASSWORD));
}
