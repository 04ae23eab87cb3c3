//! IdP metadata (the keys every sign-in is checked against) is fetched by the client the
//! metadata follower uses: an https URL that redirects to http is refused before the
//! http server is asked; https to https redirects are followed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509NameBuilder, X509};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_native_tls::native_tls;

fn cert_for_loopback() -> (Vec<u8>, Vec<u8>) {
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

/// Read one request head; the target.
async fn target_of<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string()
}

fn answer(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn metadata_never_follows_https_to_http() {
    // A plain http server that counts the requests it gets.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = plain.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = target_of(&mut s).await;
            let _ = s
                .write_all(answer("200 OK", "", "<EntityDescriptor/>").as_bytes())
                .await;
        }
    });

    // The https server: /down redirects to the http one, /up to another https path.
    let (cert, key) = cert_for_loopback();
    let identity = native_tls::Identity::from_pkcs8(&cert, &key).unwrap();
    let acceptor =
        tokio_native_tls::TlsAcceptor::from(native_tls::TlsAcceptor::new(identity).unwrap());
    let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_port = tls.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = tls.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(sock).await else {
                    return;
                };
                let reply = match target_of(&mut s).await.as_str() {
                    "/down" => answer(
                        "302 Found",
                        &format!("Location: http://127.0.0.1:{plain_port}/md\r\n"),
                        "",
                    ),
                    "/up" => answer(
                        "302 Found",
                        &format!("Location: https://127.0.0.1:{tls_port}/md\r\n"),
                        "",
                    ),
                    _ => answer("200 OK", "", "<EntityDescriptor/>"),
                };
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });

    let client = ssogate::gateway::metadata::client_trusting(&[&cert]).unwrap();
    let base = format!("https://127.0.0.1:{tls_port}");
    let err = ssogate::gateway::metadata::fetch(&client, &format!("{base}/down"))
        .await
        .unwrap_err();
    assert!(err.contains("weaker scheme"), "{err}");
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the http server was asked");
    let md = ssogate::gateway::metadata::fetch(&client, &format!("{base}/up"))
        .await
        .unwrap();
    assert_eq!(md, b"<EntityDescriptor/>");
}
