//! The moving parts of a soak (benches/load/soak.sh), beside its steady signed-in load:
//! sign-ins and SCIM writes at a steady rate for a fixed time, each checked end to end.
//!
//! 1. Generates a development IdP and writes its certificate to DIR/idp.pem (the script
//!    starts ssogate with it), then waits for the gateway.
//! 2. For SECONDS, RATE times a second each, two loops:
//!    - a sign-in: a page asked for (302 to the IdP with an AuthnRequest and a binding
//!      cookie), the IdP's answer posted to the ACS (302 with a session cookie), the
//!      page with the session (200), a same-origin sign-out, the page with the old
//!      cookie (no longer 200). Users rotate over 500 names.
//!    - a SCIM cycle as Entra's provisioning sends it: create a user, add it to one of 10
//!      groups, disable it, remove it from the group, delete it.
//! 3. Prints `RESULT signins=… signin_failed=… scim_cycles=… scim_failed=…` and the first
//!    failures; exits 1 on any failure.
//!
//! Usage: soak_traffic DIR GATEWAY_URL SCIM_TOKEN SECONDS RATE

mod common;

use common::fail;
use serde_json::json;
use ssogate::saml::{self, DevIdp, ResponseSpec};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts, and keeps the first few failure messages.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    first: parking_lot::Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first.lock();
                if first.len() < 5 {
                    first.push(e);
                }
            }
        }
    }
}

struct Soak {
    http: reqwest::Client,
    base: String,
    token: String,
    idp: DevIdp,
    sp: saml::SpSettings,
    groups: Vec<String>,
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The `name=value` part of the Set-Cookie the predicate picks.
fn cookie(r: &reqwest::Response, pick: impl Fn(&str) -> bool) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .find(|c| pick(c))
        .map(str::to_string)
}

impl Soak {
    async fn sign_in(&self, i: usize) -> Result<(), String> {
        let page = format!("{}/soak/{i}", self.base);
        let r = self
            .http
            .get(&page)
            .header("accept", "text/html")
            .send()
            .await
            .map_err(|e| format!("start: {e}"))?;
        let location = header(&r, "location").ok_or(format!("start: {}", r.status()))?;
        let binding = cookie(&r, |c| c.contains("-login-")).unwrap_or_default();
        let url = url::Url::parse(&location).map_err(|e| format!("start: {e}"))?;
        let request = url
            .query_pairs()
            .find(|(k, _)| k == "SAMLRequest")
            .map(|(_, v)| v.into_owned())
            .ok_or("start: no SAMLRequest")?;
        let xml = saml::decode_redirect_request(&request).map_err(|e| e.to_string())?;
        let doc = roxmltree::Document::parse(&xml).map_err(|e| e.to_string())?;
        let id = doc.root_element().attribute("ID").unwrap_or_default();

        let mut spec = ResponseSpec::for_sp(
            &self.sp,
            &format!("soak{}@contoso.example", i % 500),
            chrono::Utc::now(),
        );
        spec.in_response_to = Some(id.to_string());
        // The replay cache keeps each assertion ID until NotOnOrAfter + clock skew (here
        // 60 s + 3 min), so Redis reaches its plateau within the soak.
        spec.lifetime = Duration::from_secs(60);
        spec.attributes = vec![(
            ssogate::identity::claims::GROUPS.to_string(),
            (0..20)
                .map(|g| format!("e7f3c0ba-0000-4000-8000-{g:012}"))
                .collect(),
        )];
        let signed = self.idp.sign_response(&spec).map_err(|e| e.to_string())?;
        let r = self
            .http
            .post(format!("{}/saml/acs", self.base))
            .header("cookie", &binding)
            .form(&[("SAMLResponse", signed.as_str())])
            .send()
            .await
            .map_err(|e| format!("acs: {e}"))?;
        let session = cookie(&r, |c| !c.contains("-login-") && !c.ends_with('='))
            .ok_or(format!("acs: {} without a session cookie", r.status()))?;

        let status = self.page(&page, &session).await?;
        if status != 200 {
            return Err(format!("signed-in page: {status}"));
        }
        let r = self
            .http
            .post(format!("{}/saml/logout", self.base))
            .header("cookie", &session)
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .map_err(|e| format!("logout: {e}"))?;
        if !(r.status().is_success() || r.status().is_redirection()) {
            return Err(format!("logout: {}", r.status()));
        }
        let status = self.page(&page, &session).await?;
        if status == 200 {
            return Err("the page still served after sign-out".into());
        }
        Ok(())
    }

    async fn page(&self, page: &str, session: &str) -> Result<u16, String> {
        let r = self
            .http
            .get(page)
            .header("cookie", session)
            .send()
            .await
            .map_err(|e| format!("page: {e}"))?;
        Ok(r.status().as_u16())
    }

    async fn scim(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        want: &[u16],
    ) -> Result<serde_json::Value, String> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/scim/v2{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let r = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        if !want.contains(&status) {
            return Err(format!("{method} {path}: {status}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or_default())
    }

    async fn scim_cycle(&self, j: usize) -> Result<(), String> {
        use reqwest::Method;
        let user = self
            .scim(
                Method::POST,
                "/Users",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("soak-scim-{j}@contoso.example"),
                    "externalId": format!("00000000-0000-4000-8000-{j:012}"),
                    "active": true,
                    "displayName": format!("Soak {j}"),
                })),
                &[201],
            )
            .await?;
        let id = user["id"].as_str().ok_or("POST /Users: no id")?.to_string();
        let group = format!("/Groups/{}", self.groups[j % self.groups.len()]);
        let op = |op: &str, value: serde_json::Value| {
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": op, "path": "members", "value": value}],
            })
        };
        self.scim(
            Method::PATCH,
            &group,
            Some(op("Add", json!([{ "value": id }]))),
            &[200, 204],
        )
        .await?;
        self.scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
            })),
            &[200, 204],
        )
        .await?;
        self.scim(
            Method::PATCH,
            &group,
            Some(op("Remove", json!([{ "value": id }]))),
            &[200, 204],
        )
        .await?;
        self.scim(Method::DELETE, &format!("/Users/{id}"), None, &[204])
            .await?;
        Ok(())
    }
}

/// Runs `job(k)` for k = 0, 1, … `rate` times a second until `until`.
async fn paced<F, Fut>(rate: u32, until: Instant, tally: Arc<Tally>, job: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut k = 0;
    while Instant::now() < until {
        tick.tick().await;
        tally.record(job(k).await);
        k += 1;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(base), Some(token), Some(seconds), Some(rate)) = (
        args.get(1),
        args.get(2),
        args.get(3),
        args.get(4).and_then(|n| n.parse::<u64>().ok()),
        args.get(5).and_then(|n| n.parse::<u32>().ok()),
    ) else {
        fail("usage: soak_traffic DIR GATEWAY_URL SCIM_TOKEN SECONDS RATE".into())
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| fail(e.to_string()));
    let idp = common::idp_for_gateway(dir, base, &http).await;
    let mut soak = Soak {
        http,
        base: base.clone(),
        token: token.clone(),
        idp,
        sp: saml::SpSettings {
            entity_id: format!("{base}/saml"),
            acs_url: format!("{base}/saml/acs"),
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
        },
        groups: Vec::new(),
    };
    for g in 0..10 {
        let group = soak
            .scim(
                reqwest::Method::POST,
                "/Groups",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": format!("soak group {g}"),
                })),
                &[201],
            )
            .await
            .unwrap_or_else(|e| fail(e));
        let id = group["id"]
            .as_str()
            .unwrap_or_else(|| fail("no group id".into()));
        soak.groups.push(id.to_string());
    }
    let soak = Arc::new(soak);
    let until = Instant::now() + Duration::from_secs(seconds);
    let (signins, cycles) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let s = soak.clone();
    let a = paced(rate, until, signins.clone(), move |k| {
        let s = s.clone();
        async move { s.sign_in(k).await }
    });
    let s = soak.clone();
    let b = paced(rate, until, cycles.clone(), move |k| {
        let s = s.clone();
        async move { s.scim_cycle(k).await }
    });
    tokio::join!(a, b);
    println!(
        "RESULT signins={} signin_failed={} scim_cycles={} scim_failed={}",
        signins.ok.load(Ordering::Relaxed),
        signins.failed.load(Ordering::Relaxed),
        cycles.ok.load(Ordering::Relaxed),
        cycles.failed.load(Ordering::Relaxed),
    );
    let failures: Vec<String> = signins
        .first
        .lock()
        .iter()
        .chain(cycles.first.lock().iter())
        .cloned()
        .collect();
    for f in &failures {
        eprintln!("soak_traffic: {f}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
