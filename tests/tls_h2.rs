//! TLS and HTTP/2 on the public listener, and websockets through the gateway: a real h2
//! client (reqwest over TLS, ALPN) reaches the upstream with the identity headers; a
//! websocket upgrade is proxied after sign-in (identity headers on the upgrade request)
//! and refused without a session.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameBuilder, X509};
use ssogate::saml::{DevIdp, ResponseSpec, SpSettings};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_native_tls::native_tls;
use utils::echo::{echoed, EchoUpstream};
use utils::gateway::Gateway;
use utils::http::cookie_of;

fn server_cert() -> (Vec<u8>, Vec<u8>) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "127.0.0.1").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (
        b.build().to_pem().unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

fn config(echo_port: u16, tls: bool) -> String {
    config_upstream(&format!("http://127.0.0.1:{echo_port}"), "", tls)
}

fn config_upstream(upstream: &str, upstream_extra: &str, tls: bool) -> String {
    let tls = if tls {
        "tls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\""
    } else {
        ""
    };
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"
{tls}

[session]
store = "memory"
cookie_secure = false

[[app]]
name = "wiki"
hosts = ["127.0.0.1"]
upstream = "{upstream}"
{upstream_extra}
allow_idp_initiated = true

[app.sp]
entity_id = "https://wiki.example.test/saml"
acs_url = "https://wiki.example.test/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"

[app.headers]
"X-Remote-User" = "name_id"
"#
    )
}

fn response(idp: &DevIdp) -> String {
    let sp = SpSettings {
        entity_id: "https://wiki.example.test/saml".into(),
        acs_url: "https://wiki.example.test/saml/acs".into(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    idp.sign_response(&ResponseSpec::for_sp(
        &sp,
        "ann@contoso.example",
        chrono::Utc::now(),
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_reaches_the_upstream_with_identity() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let (cert, key) = server_cert();
    let pem = idp.certificate_pem();
    let gw = Gateway::start(
        &config(echo.port, true),
        &[
            ("idp.pem", pem.as_bytes()),
            ("cert.pem", &cert),
            ("key.pem", &key),
        ],
    )
    .await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}", gw.public);
    let r = client
        .post(format!("{base}/saml/acs"))
        .form(&[("SAMLResponse", response(&idp))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN must pick h2");
    assert_eq!(r.status(), 302, "{}", gw.log());
    let cookie = cookie_of(&r);
    let r = client
        .get(format!("{base}/page"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert_eq!(echoed(&body, "x-remote-user"), ["ann@contoso.example"]);
    assert_eq!(echoed(&body, "x-forwarded-proto"), ["https"]);
}

/// A websocket-style upstream: answers an Upgrade with 101, sends the X-Remote-User it
/// received, then echoes every byte.
async fn upgrade_upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf).to_lowercase();
                let user = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-remote-user: "))
                    .unwrap_or("(none)")
                    .trim()
                    .to_string();
                let _ = sock
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
                    .await;
                let _ = sock.write_all(format!("user={user}\n").as_bytes()).await;
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 || sock.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

async fn upgrade(port: u16, cookie: Option<&str>) -> (String, tokio::net::TcpStream) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let cookie = cookie
        .map(|c| format!("cookie: {c}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nx-remote-user: spoofed\r\n{cookie}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    (String::from_utf8_lossy(&buf).to_string(), s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_need_a_session_and_carry_the_identity() {
    let up = upgrade_upstream().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let pem = idp.certificate_pem();
    let gw = Gateway::start(&config(up, false), &[("idp.pem", pem.as_bytes())]).await;

    // No session: refused before any upstream contact.
    let (head, _) = upgrade(gw.public, None).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(gw.url("/saml/acs"))
        .form(&[("SAMLResponse", response(&idp))])
        .send()
        .await
        .unwrap();
    let cookie = cookie_of(&r);
    let (head, mut s) = upgrade(gw.public, Some(&cookie)).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Bytes after the head: the identity line, then our echo.
    let mut got = head
        .split_once("\r\n\r\n")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_default();
    s.write_all(b"ping-1234").await.unwrap();
    let mut chunk = [0u8; 1024];
    while !got.contains("ping-1234") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "tunnel closed: {got}");
        got.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(got.starts_with("user=ann@contoso.example\n"), "{got}");
}

/// An https upstream with its own (self-signed) certificate: answers every request with
/// the request line and the X-Remote-User it received.
async fn tls_upstream(cert: &[u8], key: &[u8]) -> u16 {
    let identity = native_tls::Identity::from_pkcs8(cert, key).unwrap();
    let acceptor =
        tokio_native_tls::TlsAcceptor::from(native_tls::TlsAcceptor::new(identity).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let user = head
                    .lines()
                    .find_map(|l| {
                        l.to_lowercase()
                            .strip_prefix("x-remote-user: ")
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                let body = format!(
                    "{}\nx-remote-user: {user}\n",
                    head.lines().next().unwrap_or("")
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_is_verified_against_the_configured_ca() {
    let (cert, key) = server_cert();
    let port = tls_upstream(&cert, &key).await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let pem = idp.certificate_pem();
    let upstream = format!("https://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let sign_in = |gw: &Gateway| {
        let url = gw.url("/saml/acs");
        let client = client.clone();
        let form = [("SAMLResponse", response(&idp))];
        async move {
            let r = client.post(url).form(&form).send().await.unwrap();
            cookie_of(&r)
        }
    };

    // Trusting the upstream's CA: proxied over TLS with the identity.
    let trusted = Gateway::start(
        &config_upstream(&upstream, "upstream_ca_file = \"ca.pem\"", false),
        &[("idp.pem", pem.as_bytes()), ("ca.pem", &cert)],
    )
    .await;
    let cookie = sign_in(&trusted).await;
    let r = client
        .get(trusted.url("/report"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", trusted.log());
    let body = r.text().await.unwrap();
    assert!(body.starts_with("GET /report HTTP/1.1"), "{body}");
    assert!(
        body.contains("x-remote-user: ann@contoso.example"),
        "{body}"
    );

    // Without it (system CAs only): the upstream's certificate is refused, 502.
    let untrusted = Gateway::start(
        &config_upstream(&upstream, "", false),
        &[("idp.pem", pem.as_bytes())],
    )
    .await;
    let cookie = sign_in(&untrusted).await;
    let r = client
        .get(untrusted.url("/report"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
}
