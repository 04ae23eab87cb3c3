//! Large bodies stream through the gateway in both directions, never buffered whole: a
//! 256 MiB upload and a 256 MiB download pass while the gateway's peak resident memory
//! grows by far less than either.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use ssogate::saml::{DevIdp, ResponseSpec, SpSettings};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utils::gateway::Gateway;
use utils::http::cookie_of;

const SIZE: u64 = 256 * 1024 * 1024;

/// Upstream: `PUT` answers how many body bytes it read; `GET` sends SIZE bytes.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                if head.starts_with("put") {
                    let len: u64 = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    let mut got = (buf.len() - head_end) as u64;
                    while got < len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        got += n as u64;
                    }
                    let body = got.to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                } else {
                    let _ = sock
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {SIZE}\r\n\r\n").as_bytes(),
                        )
                        .await;
                    let block = vec![b'x'; 64 * 1024];
                    let mut sent = 0u64;
                    while sent < SIZE {
                        if sock.write_all(&block).await.is_err() {
                            return;
                        }
                        sent += block.len() as u64;
                    }
                }
            });
        }
    });
    port
}

/// Peak resident set (VmHWM) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_uploads_and_downloads_stream() {
    let port = upstream().await;
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
name = "files"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:{port}"
allow_idp_initiated = true
[app.sp]
entity_id = "https://files.example.test/saml"
acs_url = "https://files.example.test/saml/acs"
[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"
"#
    );
    let gw = Gateway::start(&config, &[("idp.pem", pem.as_bytes())]).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let sp = SpSettings {
        entity_id: "https://files.example.test/saml".into(),
        acs_url: "https://files.example.test/saml/acs".into(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    let spec = ResponseSpec::for_sp(&sp, "ann@contoso.example", chrono::Utc::now());
    let r = client
        .post(gw.url("/saml/acs"))
        .form(&[("SAMLResponse", idp.sign_response(&spec).unwrap())])
        .send()
        .await
        .unwrap();
    let cookie = cookie_of(&r);
    let before = peak_rss_kib(gw.pid());

    // Upload: a generated stream, never held whole by the client either.
    let chunks = futures_util::stream::iter(
        (0..SIZE / (64 * 1024))
            .map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'u'; 64 * 1024]))),
    );
    let r = client
        .put(gw.url("/upload"))
        .header("cookie", &cookie)
        .header("content-length", SIZE.to_string())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), SIZE.to_string());

    // Download, counted as it arrives.
    let mut r = client
        .get(gw.url("/download"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut got = 0u64;
    while let Some(c) = r.chunk().await.unwrap() {
        got += c.len() as u64;
    }
    assert_eq!(got, SIZE);

    let grown_mib = peak_rss_kib(gw.pid()).saturating_sub(before) / 1024;
    eprintln!("gateway peak RSS grew by {grown_mib} MiB moving 2 x 256 MiB");
    assert!(
        grown_mib < 64,
        "the gateway buffered bodies: +{grown_mib} MiB"
    );
}
