//! The request ID and the logs, with the real binary writing JSON lines: the ID is taken
//! only from a trusted proxy, sent upstream, shown on error pages and returned in
//! `X-Request-Id`, and every log line of the request carries it; `traceparent` reaches
//! the upstream unchanged and its trace ID is in the lines; a refused sign-in's line says
//! why in Entra's words (AADSTS); an unreachable upstream gets a page with the reference,
//! a log line and a metric.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use base64::Engine as _;
use ssogate::saml::DevIdp;
use std::time::{Duration, Instant};
use utils::echo::{echoed, EchoUpstream};
use utils::gateway::{free_port, Gateway};
use utils::http::client;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The trusted proxy's address; plain clients connect from 127.0.0.1.
const PROXY_ADDR: [u8; 4] = [127, 0, 0, 2];

fn config(echo_port: u16, dead_port: u16, log_format: &str) -> String {
    use utils::config::{app, head, public_route, GATEWAY};
    head(&format!(
        "trusted_proxies = [\"127.0.0.2\"]\nlog_format = \"{log_format}\"\naccess_log = true"
    )) + &app(
        "down",
        "\"down.test\"",
        dead_port,
        "http://down.test",
        &public_route("/"),
    ) + &app(
        "wiki",
        "\"*\"",
        echo_port,
        GATEWAY,
        &public_route("/public/"),
    )
}

struct Setup {
    gw: Gateway,
    _echo: EchoUpstream,
}

async fn start(log_format: &str) -> Setup {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let gw = Gateway::start(
        &config(echo.port, free_port(), log_format),
        &[("idp.pem", idp.certificate_pem().as_bytes())],
    )
    .await;
    Setup { gw, _echo: echo }
}

/// The gateway's JSON lines that carry `request_id` = `id`, once `want` of them are
/// there (the access line is written after the response).
async fn lines_of(gw: &Gateway, id: &str, want: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = gw.log();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .filter(|v: &serde_json::Value| v["request_id"] == id)
            .collect();
        if lines.len() >= want || Instant::now() > deadline {
            assert!(
                lines.len() >= want,
                "expected {want} lines for {id}, log:\n{log}"
            );
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn event<'a>(lines: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["event"] == name)
        .unwrap_or_else(|| panic!("no {name} line in {lines:#?}"))
}

fn request_id_of(r: &reqwest::Response) -> String {
    r.headers()["x-request-id"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_client_cannot_choose_its_request_id_and_the_trace_passes_through() {
    let s = start("json").await;
    let r = client()
        .get(s.gw.url("/public/page"))
        .header("x-request-id", "chosen-by-client")
        .header("traceparent", TRACEPARENT)
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let sent = echoed(&body, "x-request-id");
    assert_eq!(sent.len(), 1, "{body}");
    let id = &sent[0];
    assert_ne!(id, "chosen-by-client");
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(echoed(&body, "traceparent"), [TRACEPARENT]);
    assert_eq!(echoed(&body, "tracestate"), ["vendor=opaque"]);

    let lines = lines_of(&s.gw, id, 1).await;
    let access = event(&lines, "request");
    assert_eq!(access["target"], "ssogate::access");
    assert_eq!(access["trace_id"], TRACE_ID);
    assert_eq!(access["app"], "wiki");
    assert_eq!(access["status"], 200);
    assert_eq!(access["method"], "GET");
    assert!(access["elapsed_ms"].is_u64());
    // The schema's fixed keys lead every line.
    for line in s.gw.log().lines() {
        assert!(line.starts_with("{\"timestamp\":\""), "{line}");
        assert!(line.contains("\",\"level\":\""), "{line}");
    }
}

#[tokio::test]
async fn a_trusted_proxys_request_id_is_kept_end_to_end() {
    let s = start("json").await;
    let proxy = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(PROXY_ADDR))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = proxy
        .get(s.gw.url("/public/page"))
        .header("x-request-id", "7f9c1e0a-3b2d-4c5e-8f6a-1b2c3d4e5f60")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert_eq!(
        echoed(&body, "x-request-id"),
        ["7f9c1e0a-3b2d-4c5e-8f6a-1b2c3d4e5f60"]
    );
    lines_of(&s.gw, "7f9c1e0a-3b2d-4c5e-8f6a-1b2c3d4e5f60", 1).await;

    // An unusable one, even from the proxy, is replaced.
    let r = proxy
        .get(s.gw.url("/public/a%2Fb"))
        .header("x-request-id", "<script>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let id = request_id_of(&r);
    assert_eq!(id.len(), 16);
    assert!(r.text().await.unwrap().contains(&id));
}

#[tokio::test]
async fn a_refused_request_shows_the_reference_its_log_lines_carry() {
    let s = start("json").await;
    let r = client()
        .get(s.gw.url("/public/a%2Fb"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let id = request_id_of(&r);
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!("Reference: <code>{id}</code>")),
        "{page}"
    );
    let lines = lines_of(&s.gw, &id, 2).await;
    let refused = event(&lines, "request_refused");
    assert_eq!(refused["target"], "ssogate::audit");
    assert_eq!(refused["level"], "warn");
    assert_eq!(refused["reason"], "target_encoded_slash");
    assert_eq!(event(&lines, "request")["status"], 400);
}

/// Entra's answer when the user is not assigned to the app: no assertion, a status.
fn entra_refusal(in_response_to: &str, acs: &str) -> String {
    let xml = format!(
        concat!(
            "<samlp:Response ID=\"_e1\" Version=\"2.0\" IssueInstant=\"{now}\" ",
            "Destination=\"{acs}\" InResponseTo=\"{irt}\" ",
            "xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">",
            "<Issuer xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\">https://idp.example.test/</Issuer>",
            "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Requester\">",
            "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:RequestDenied\"/></samlp:StatusCode>",
            "<samlp:StatusMessage>AADSTS50105: Your administrator has configured the application ",
            "to block users unless they are specifically granted access.</samlp:StatusMessage>",
            "</samlp:Status></samlp:Response>"
        ),
        now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        acs = acs,
        irt = in_response_to,
    );
    base64::engine::general_purpose::STANDARD.encode(xml)
}

#[tokio::test]
async fn a_refused_sign_in_is_explained_by_its_log_line() {
    let s = start("json").await;
    let started = utils::signin::start(&s.gw.url("/private")).await;
    let acs = s.gw.url("/saml/acs");
    let mut req = client().post(&acs).form(&[
        ("SAMLResponse", entra_refusal(&started.request_id, &acs)),
        ("RelayState", started.relay_state.clone()),
    ]);
    if let Some(b) = &started.binding {
        req = req.header("cookie", b);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 403);
    let id = request_id_of(&r);
    assert!(r.text().await.unwrap().contains(&id));
    let lines = lines_of(&s.gw, &id, 2).await;
    let login = event(&lines, "login");
    assert_eq!(login["result"], "failure");
    assert_eq!(login["app"], "wiki");
    assert_eq!(login["reason"], "status");
    let detail = login["detail"].as_str().unwrap();
    assert!(detail.contains("AADSTS50105"), "{detail}");
    assert!(
        detail.contains("urn:oasis:names:tc:SAML:2.0:status:RequestDenied"),
        "{detail}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_gets_a_page_a_line_and_a_metric() {
    let s = start("json").await;
    let r = client()
        .get(s.gw.url("/anything"))
        .header("host", "down.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let id = request_id_of(&r);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Application unavailable") && page.contains(&id),
        "{page}"
    );
    let lines = lines_of(&s.gw, &id, 2).await;
    let failed = lines
        .iter()
        .find(|l| l["message"] == "request failed")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(failed["level"], "warn");
    assert_eq!(failed["app"], "down");
    assert_eq!(failed["reason"], "upstream_unreachable");
    assert_eq!(event(&lines, "request")["status"], 502);
    // pingora's own error line is replaced by ours: nothing without the ID.
    assert!(!s.gw.log().contains("Fail to proxy"), "{}", s.gw.log());
    let metrics = s.gw.metrics().await;
    assert!(
        metrics.contains(
            "ssogate_upstream_errors_total{app=\"down\",reason=\"upstream_unreachable\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn text_lines_carry_the_request_id_too() {
    let s = start("text").await;
    let r = client()
        .get(s.gw.url("/public/a%2Fb"))
        .send()
        .await
        .unwrap();
    let id = request_id_of(&r);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = s.gw.log();
        let tagged: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("request_id={id}")))
            .collect();
        if tagged
            .iter()
            .any(|l| l.contains("event=\"request_refused\""))
            && tagged.iter().any(|l| l.contains("event=\"request\""))
        {
            break;
        }
        assert!(Instant::now() < deadline, "log:\n{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
