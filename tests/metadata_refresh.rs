//! IdP metadata from a URL, end to end: the real binary follows metadata served by a
//! local HTTP server while keys rotate; a key that leaves the metadata stops being
//! trusted; a broken or unreachable URL keeps the last good metadata; the backing file
//! carries the last good copy across a restart; without any metadata the gateway is
//! not ready.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use base64::Engine as _;
use ssogate::saml::{DevIdp, ResponseSpec, SpSettings};
use std::time::{Duration, Instant};
use utils::echo::EchoUpstream;
use utils::gateway::Gateway;
use utils::http::client;
use utils::served::MetadataServer;

const ENTITY: &str = "https://sts.windows.net/00000000-0000-0000-0000-00000000cafe/";
const PUBLIC_URL: &str = "https://wiki.example.test";

/// Metadata listing the signing certificates of `idps` (all with the same entity ID).
fn metadata(idps: &[&DevIdp]) -> String {
    let first = idps[0].metadata_xml("https://login.example.test/saml2");
    let extra: String = idps[1..]
        .iter()
        .map(|i| {
            format!(
                "<KeyDescriptor use=\"signing\"><KeyInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><X509Data><X509Certificate>{}</X509Certificate></X509Data></KeyInfo></KeyDescriptor>",
                base64::engine::general_purpose::STANDARD.encode(i.certificate_der())
            )
        })
        .collect();
    first.replace(
        "<SingleSignOnService",
        &format!("{extra}<SingleSignOnService"),
    )
}

fn config(metadata_port: u16, echo_port: u16, backing: &str) -> String {
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
metadata_url = "http://127.0.0.1:{metadata_port}/federationmetadata/2007-06/federationmetadata.xml"
metadata_file = "{backing}"
refresh_interval = "1s"
"#
    )
}

/// Does the gateway accept an (IdP-initiated) response signed by `idp`?
async fn accepts(gw: &Gateway, idp: &DevIdp) -> bool {
    let sp = SpSettings {
        entity_id: format!("{PUBLIC_URL}/saml"),
        acs_url: format!("{PUBLIC_URL}/saml/acs"),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    let spec = ResponseSpec::for_sp(&sp, "alice@contoso.example", chrono::Utc::now());
    let r = client()
        .post(gw.url("/saml/acs"))
        .form(&[("SAMLResponse", idp.sign_response(&spec).unwrap())])
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        302 => true,
        403 => false,
        other => panic!("unexpected status {other}: {}", gw.log()),
    }
}

async fn eventually(what: &str, gw: &Gateway, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 15 s: {what}\nlog:\n{}", gw.log());
}

async fn metric(gw: &Gateway, name: &str) -> Option<f64> {
    let text = gw.metrics().await;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn ready(gw: &Gateway) -> (u16, String) {
    let r = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_metadata_url() {
    let echo = EchoUpstream::start().await;
    let server = MetadataServer::start().await;
    let old = DevIdp::generate(ENTITY).unwrap();
    let new = DevIdp::generate(ENTITY).unwrap();

    // Nothing to serve yet and no backing file: up, but not ready, and sign-in says why.
    let gw = Gateway::start(&config(server.port, echo.port, "idp-metadata.xml"), &[]).await;
    let (status, body) = ready(&gw).await;
    assert_eq!(status, 503);
    assert!(body.contains("wiki"), "{body}");
    let r = client().get(gw.url("/saml/login")).send().await.unwrap();
    assert_eq!(r.status(), 503);

    // The metadata appears: ready, and the old key is trusted.
    server.serve(200, metadata(&[&old]));
    eventually("ready after the metadata appeared", &gw, async || {
        ready(&gw).await.0 == 200
    })
    .await;
    assert!(accepts(&gw, &old).await);
    assert!(!accepts(&gw, &new).await);
    assert!(
        metric(&gw, "ssogate_idp_metadata_last_success_timestamp_seconds")
            .await
            .unwrap()
            > 0.0
    );

    // Rollover starts: both keys listed, both trusted.
    server.serve(200, metadata(&[&old, &new]));
    eventually("the new key is trusted", &gw, async || {
        accepts(&gw, &new).await
    })
    .await;
    assert!(accepts(&gw, &old).await);
    assert_eq!(metric(&gw, "ssogate_idp_signing_keys").await, Some(2.0));

    // The old key leaves the metadata: it stops being trusted.
    server.serve(200, metadata(&[&new]));
    eventually("the old key is dropped", &gw, async || {
        !accepts(&gw, &old).await
    })
    .await;
    assert!(accepts(&gw, &new).await);

    // A broken document, then an error status: the last good metadata stays.
    let failures_before = metric(&gw, "ssogate_idp_metadata_refresh_failures_total")
        .await
        .unwrap_or(0.0);
    server.serve(200, "<EntityDescriptor>not metadata");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.serve(500, "oops");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(accepts(&gw, &new).await);
    assert!(!accepts(&gw, &old).await);
    assert!(
        metric(&gw, "ssogate_idp_metadata_refresh_failures_total")
            .await
            .unwrap()
            >= failures_before + 2.0
    );
    assert_eq!(ready(&gw).await.0, 200);

    // Metadata of another tenant at the same URL is refused.
    let stranger = DevIdp::generate("https://sts.windows.net/another-tenant/").unwrap();
    server.serve(
        200,
        stranger.metadata_xml("https://login.example.test/saml2"),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(accepts(&gw, &new).await);
    assert!(!accepts(&gw, &stranger).await);

    // The backing file holds the last good copy; a restart with the URL down uses it.
    let backing = std::fs::read_to_string(gw.dir.path().join("idp-metadata.xml")).unwrap();
    assert_eq!(backing, metadata(&[&new]));
    drop(server);
    let restarted = Gateway::start(
        &config(1, echo.port, "idp-metadata.xml"),
        &[("idp-metadata.xml", backing.as_bytes())],
    )
    .await;
    assert_eq!(ready(&restarted).await.0, 200);
    assert!(accepts(&restarted, &new).await);
    assert!(!accepts(&restarted, &old).await);
}
