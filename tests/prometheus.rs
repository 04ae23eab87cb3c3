//! The alert rules and the metrics, checked by Prometheus' own tool: `promtool check
//! rules` and `promtool test rules` (every alert has a unit test that fires it), `promtool
//! check metrics` on a live gateway's `/metrics`, every metric the alerts use exists on a
//! live gateway that has served a little of everything, and so does every metric the
//! Grafana dashboard (deploy/grafana/ssogate.json) plots; every alert has a runbook
//! section. promtool comes from Debian's `prometheus` package (scripts/test.sh installs it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use ssogate::saml::DevIdp;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use utils::echo::EchoUpstream;
use utils::gateway::Gateway;
use utils::http::client;
use utils::served::MetadataServer;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TOKEN: &str = "a-scim-token-for-the-metrics-test";

fn promtool(args: &[&str], stdin: Option<&[u8]>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(format!("{ROOT}/deploy/prometheus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is not installed");
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn alerts_text() -> String {
    std::fs::read_to_string(format!("{ROOT}/deploy/prometheus/alerts.yml")).unwrap()
}

/// The alert names of alerts.yml.
fn alert_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::to_string)
        .collect()
}

/// Every `ssogate_…` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("ssogate_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

#[test]
fn promtool_checks_the_rules_and_every_alert_fires_in_its_unit_test() {
    let (ok, out) = promtool(&["check", "rules", "alerts.yml"], None);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "alerts.test.yml"], None);
    assert!(ok, "{out}");
    let tests =
        std::fs::read_to_string(format!("{ROOT}/deploy/prometheus/alerts.test.yml")).unwrap();
    let runbook = std::fs::read_to_string(format!("{ROOT}/docs/runbook.md")).unwrap();
    let names = alert_names(&alerts_text());
    assert!(names.len() >= 9, "{names:?}");
    for name in names {
        // A test expecting it to fire (an `exp_alerts:` that is not `[]`).
        let fires = tests
            .split(&format!("alertname: {name}\n"))
            .skip(1)
            .any(|after| {
                after
                    .lines()
                    .next()
                    .is_some_and(|l| l.trim() == "exp_alerts:")
            });
        assert!(fires, "no unit test makes {name} fire");
        assert!(
            runbook.contains(&format!("## {name}\n")),
            "docs/runbook.md has no section for {name}"
        );
    }
}

fn config(echo: u16, metadata: u16, redis_url: &str) -> String {
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[server]
grace_period = "1s"

[session]
store = "redis"
redis_url = "{redis_url}"
cookie_secure = false

[scim]
enabled = true
token_file = "scim-token"

[[app]]
name = "wiki"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:{echo}"
allow_idp_initiated = true

[app.sp]
entity_id = "http://127.0.0.1:{{public}}/saml"
acs_url = "http://127.0.0.1:{{public}}/saml/acs"

[app.idp]
metadata_url = "http://127.0.0.1:{metadata}/federationmetadata.xml"
metadata_file = "metadata.xml"
refresh_interval = "1s"

[app.groups]
admins = "e7f3c0ba-0000-4000-8000-00000000000a"

[[app.route]]
path = "/public/"
public = true

[[app.route]]
path = "/admin/"
allow_groups = ["admins"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_gateways_metrics_pass_promtool_and_hold_every_name_the_alerts_and_dashboard_use() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let metadata = idp.metadata_xml("https://login.example.test/saml2");
    let server = MetadataServer::start().await; // answers 503 until told otherwise
    let token = format!("{TOKEN}\n");
    let redis = utils::redis::TestRedis::start();
    let gw = Gateway::start(
        &config(echo.port, server.port, &redis.url()),
        &[
            ("metadata.xml", metadata.as_bytes()),
            ("scim-token", token.as_bytes()),
        ],
    )
    .await;
    let metrics = || async { gw.metrics().await };
    // A refresh fails (503), then one succeeds.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics()
        .await
        .contains("ssogate_idp_metadata_refresh_failures_total{")
    {
        assert!(Instant::now() < deadline, "no refresh failure counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.serve(200, metadata.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics()
        .await
        .contains("ssogate_idp_metadata_last_success_timestamp_seconds{")
    {
        assert!(Instant::now() < deadline, "no refresh success recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A proxied request, a refused sign-in, a SCIM request.
    let c = client();
    assert_eq!(
        c.get(gw.url("/public/x")).send().await.unwrap().status(),
        200
    );
    let refused = c
        .post(gw.url("/saml/acs"))
        .form(&[("SAMLResponse", "bm90IGEgcmVzcG9uc2U=")])
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let scim = c
        .get(gw.url("/scim/v2/Users"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(scim.status(), 200);
    let created = c
        .post(gw.url("/scim/v2/Users"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/scim+json")
        .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dale@contoso.example","active":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // A sign-in, then a route the user's groups do not open: a denial.
    let sp = utils::signin::sp(&format!("http://127.0.0.1:{}", gw.public));
    let signed_in = utils::signin::idp_initiated(
        &idp,
        &sp,
        &gw.url("/saml/acs"),
        "ann@contoso.example",
        vec![],
    )
    .await;
    assert_eq!(signed_in.status(), 302, "{}", gw.log());
    let cookie = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ssogate="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .expect("no session cookie");
    let denied = c
        .get(gw.url("/admin/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    // The store frozen: a session lookup fails (503) and is counted.
    redis.pause();
    let unknown = format!(
        "ssogate={}",
        ssogate::session::SessionId::generate().as_cookie_value()
    );
    let refused = c
        .get(gw.url("/admin/y"))
        .header("cookie", &unknown)
        .send()
        .await
        .unwrap();
    redis.resume();
    assert_eq!(refused.status(), 503);

    let body = metrics().await;
    let (ok, out) = promtool(&["check", "metrics"], Some(body.as_bytes()));
    assert!(ok, "promtool check metrics:\n{out}\n{body}");
    let live = metric_names(&body);
    let used = metric_names(&alerts_text());
    assert!(used.len() >= 8, "{used:?}");
    let missing: Vec<_> = used.difference(&live).collect();
    assert!(
        missing.is_empty(),
        "the alerts use metrics a live gateway does not have: {missing:?}\n{body}"
    );
    let dashboard = std::fs::read_to_string(format!("{ROOT}/deploy/grafana/ssogate.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    assert!(parsed["panels"].as_array().unwrap().len() >= 10);
    let plotted = metric_names(&dashboard);
    assert!(plotted.len() >= 12, "{plotted:?}");
    let missing: Vec<_> = plotted.difference(&live).collect();
    assert!(
        missing.is_empty(),
        "the dashboard plots metrics a live gateway does not have: {missing:?}\n{body}"
    );
}
