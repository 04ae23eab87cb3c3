//! The README's demo works end to end: `ssogate demo` with its development IdP and echo
//! upstream, driven like a browser through the IdP's pages.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Demo(std::process::Child);
impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A base port whose +0, +1, +2 and +10 neighbours are all free.
fn free_base_port() -> u16 {
    for _ in 0..100 {
        let p = utils::gateway::free_port();
        if p > 60000 {
            continue;
        }
        if [1, 2, 10]
            .iter()
            .all(|d| std::net::TcpListener::bind(("127.0.0.1", p + d)).is_ok())
        {
            return p;
        }
    }
    panic!("no free ports");
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html_escape::decode_html_entities(&html[start..end]).into_owned()
}

/// Like a browser: keeps cookies (the sign-in's binding cookie must come back to the
/// ACS), follows no redirects (the test looks at them).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn sign_in(base: &str, idp: &str, user: &str) -> String {
    let c = client();
    let r = c
        .get(format!("{base}/hello"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let to_idp = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to_idp.starts_with(&format!("{idp}/saml2?SAMLRequest=")),
        "{to_idp}"
    );
    let picker = c.get(&to_idp).send().await.unwrap().text().await.unwrap();
    assert!(picker.contains("NOT FOR PRODUCTION"));
    let form = picker
        .split("<form")
        .find(|f| f.contains(user))
        .unwrap_or_else(|| panic!("{user} in {picker}"));
    let posted = c
        .post(format!("{idp}/saml2/login"))
        .form(&[
            ("request_id", hidden(form, "request_id")),
            ("relay", hidden(form, "relay")),
            ("user", user.to_string()),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = c
        .post(format!("{base}/saml/acs"))
        .form(&[
            ("SAMLResponse", hidden(&posted, "SAMLResponse")),
            ("RelayState", hidden(&posted, "RelayState")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/hello");
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn demo_signs_in_through_the_development_idp() {
    let port = free_base_port();
    let child = Command::new(env!("CARGO_BIN_EXE_ssogate"))
        .args(["demo", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _demo = Demo(child);
    let base = format!("http://127.0.0.1:{port}");
    let idp = format!("http://127.0.0.1:{}", port + 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("http://127.0.0.1:{}/healthz", port + 10))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "demo did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let alice = sign_in(&base, &idp, "alice@demo.example").await;
    let c = client();
    let body = c
        .get(format!("{base}/hello"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("x-remote-user: alice@demo.example"), "{body}");
    assert!(body.contains("x-remote-name: Alice Admin"), "{body}");
    let admin = c
        .get(format!("{base}/admin/"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);

    let bob = sign_in(&base, &idp, "bob@demo.example").await;
    let admin = c
        .get(format!("{base}/admin/"))
        .header("cookie", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 403);
}
