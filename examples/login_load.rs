//! Logins per second through the ACS of a running ssogate (benches/load/logins.sh).
//!
//! 1. Generates a development IdP and writes its certificate to DIR/idp.pem (the script
//!    starts ssogate with it), then waits for the gateway.
//! 2. Starts N sign-ins (GET with Accept: text/html -> 302 with an AuthnRequest): timed as
//!    "login starts per second".
//! 3. Signs N Entra-shaped responses (not timed: that is the IdP's work).
//! 4. Posts them to the ACS with CONC concurrent clients, each with the binding cookie
//!    its sign-in got (as the browser that started it would): timed as "logins per
//!    second". Every answer must be a 302 with a session cookie.
//!
//! Usage: login_load DIR GATEWAY_URL N CONC

mod common;

use common::fail;
use ssogate::saml::{self, ResponseSpec};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(base), Some(n), Some(conc)) = (
        args.get(1),
        args.get(2),
        args.get(3).and_then(|n| n.parse::<usize>().ok()),
        args.get(4).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        fail("usage: login_load DIR GATEWAY_URL N CONC".into())
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(conc)
        .build()
        .unwrap_or_else(|e| fail(e.to_string()));
    let idp = common::idp_for_gateway(dir, base, &client).await;

    // Phase A: login starts.
    let started = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let r = client
            .get(format!("{base}/page/{i}"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap_or_else(|e| fail(e.to_string()));
        let loc = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_else(|| fail(format!("no redirect: {}", r.status())))
            .to_string();
        let url = url::Url::parse(&loc).unwrap_or_else(|e| fail(e.to_string()));
        let req = url
            .query_pairs()
            .find(|(k, _)| k == "SAMLRequest")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| fail("no SAMLRequest".into()));
        let xml = saml::decode_redirect_request(&req).unwrap_or_else(|e| fail(e.to_string()));
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| fail(e.to_string()));
        let id = doc
            .root_element()
            .attribute("ID")
            .unwrap_or_default()
            .to_string();
        let binding = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.contains("-login-"))
            .and_then(|c| c.split(';').next())
            .unwrap_or_default()
            .to_string();
        ids.push((id, binding));
    }
    let starts = n as f64 / started.elapsed().as_secs_f64();

    // Untimed: the IdP signs.
    let sp = saml::SpSettings {
        entity_id: format!("{base}/saml"),
        acs_url: format!("{base}/saml/acs"),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    let now = chrono::Utc::now();
    let responses: Vec<(String, String)> = ids
        .into_iter()
        .enumerate()
        .map(|(i, (id, binding))| {
            let mut spec = ResponseSpec::for_sp(&sp, &format!("user{i}@contoso.example"), now);
            spec.in_response_to = Some(id);
            spec.lifetime = Duration::from_secs(600);
            spec.attributes = vec![(
                ssogate::identity::claims::GROUPS.to_string(),
                (0..20)
                    .map(|g| format!("e7f3c0ba-0000-4000-8000-{g:012}"))
                    .collect(),
            )];
            let signed = idp
                .sign_response(&spec)
                .unwrap_or_else(|e| fail(e.to_string()));
            (signed, binding)
        })
        .collect();

    // Phase B: logins, CONC at a time.
    let responses = Arc::new(responses);
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..conc {
        let (client, responses, next, ok, base) = (
            client.clone(),
            responses.clone(),
            next.clone(),
            ok.clone(),
            base.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((resp, binding)) = responses.get(i) else {
                    break;
                };
                let r = client
                    .post(format!("{base}/saml/acs"))
                    .header("cookie", binding)
                    .form(&[("SAMLResponse", resp.as_str()), ("RelayState", "x")])
                    .send()
                    .await;
                if let Ok(r) = r {
                    if r.status() == 302 && r.headers().contains_key("set-cookie") {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    println!("login starts: {n} in total, {starts:.0}/s (one client, sequential)");
    println!(
        "logins: {ok}/{n} succeeded, {:.0}/s with {conc} concurrent clients",
        n as f64 / secs
    );
    if ok != n {
        fail(format!("{} logins failed", n - ok));
    }
}
