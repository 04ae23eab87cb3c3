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

/// A client trusting only `cert`, with no connection pool: every request is a handshake.
fn trusting(cert: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert).unwrap())
        .tls_built_in_root_certs(false)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn handshakes(client: &reqwest::Client, port: u16) -> bool {
    client
        .get(format!("https://127.0.0.1:{port}/healthz-probe"))
        .send()
        .await
        .is_ok()
}

async fn reloads_counted(gw: &Gateway, result: &str) -> u32 {
    let m = gw.metrics().await;
    let line = format!("ssogate_config_reload_total{{result=\"{result}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_listener_certificate_is_presented_after_a_reload_without_a_restart() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let (old_cert, old_key) = server_cert();
    let (new_cert, new_key) = server_cert();
    let pem = idp.certificate_pem();
    let gw = Gateway::start(
        &config(echo.port, true),
        &[
            ("idp.pem", pem.as_bytes()),
            ("cert.pem", &old_cert),
            ("key.pem", &old_key),
        ],
    )
    .await;
    let old_client = trusting(&old_cert);
    let new_client = trusting(&new_cert);
    assert!(handshakes(&old_client, gw.public).await, "{}", gw.log());
    assert!(!handshakes(&new_client, gw.public).await);
    // A connection open across the reload keeps working.
    let mut kept = tokio_native_tls::TlsConnector::from(
        native_tls::TlsConnector::builder()
            .add_root_certificate(native_tls::Certificate::from_pem(&old_cert).unwrap())
            .disable_built_in_roots(true)
            .build()
            .unwrap(),
    )
    .connect(
        "127.0.0.1",
        tokio::net::TcpStream::connect(("127.0.0.1", gw.public))
            .await
            .unwrap(),
    )
    .await
    .unwrap();

    // The renewed pair, written where the config points (as certbot or cert-manager do).
    let dir = gw.config_path().parent().unwrap().to_path_buf();
    std::fs::write(dir.join("cert.pem"), &new_cert).unwrap();
    std::fs::write(dir.join("key.pem"), &new_key).unwrap();
    gw.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reloads_counted(&gw, "success").await < 1 {
        assert!(std::time::Instant::now() < deadline, "{}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(handshakes(&new_client, gw.public).await, "{}", gw.log());
    assert!(
        !handshakes(&old_client, gw.public).await,
        "the old certificate is still presented"
    );
    kept.write_all(b"GET /kept HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    kept.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");

    // A half-renewed pair (new certificate, the key of another) refuses the reload; the
    // listener keeps presenting the pair it has.
    std::fs::write(dir.join("cert.pem"), &old_cert).unwrap();
    gw.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reloads_counted(&gw, "failure").await < 1 {
        assert!(std::time::Instant::now() < deadline, "{}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gw.log().contains("not the key of the first certificate"),
        "{}",
        gw.log()
    );
    assert!(handshakes(&new_client, gw.public).await, "{}", gw.log());
    assert!(!handshakes(&old_client, gw.public).await);
}
