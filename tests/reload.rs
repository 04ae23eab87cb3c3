//! Config reload with the real binary: SIGHUP and `ssogate reload` re-read the config and
//! the files it names, swap it whole, and keep every session; a config with problems is
//! refused with every problem listed (in the command's answer, the log and the metric)
//! while the running config serves on; settings only a restart can apply are named; and
//! requests running through a series of reloads see no failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use ssogate::saml::DevIdp;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utils::cli::ssogate;
use utils::echo::EchoUpstream;
use utils::gateway::Gateway;
use utils::http::{client, cookie_of};
use utils::signin;

/// `extra_routes` go after the fixed ones; `server` lines into `[server]`.
fn config(echo_port: u16, server: &str, extra_routes: &str) -> String {
    utils::config::head(server)
        + &utils::config::app(
            "wiki",
            "\"*\"",
            echo_port,
            utils::config::GATEWAY,
            &(utils::config::public_route("/public/") + extra_routes),
        )
}

/// The route the tests' reloads add.
fn news_route() -> String {
    utils::config::public_route("/news/")
}

struct Setup {
    gw: Gateway,
    echo: EchoUpstream,
    idp: DevIdp,
}

async fn start() -> Setup {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let gw = Gateway::start(
        &config(echo.port, "", ""),
        &[("idp.pem", idp.certificate_pem().as_bytes())],
    )
    .await;
    Setup { gw, echo, idp }
}

impl Setup {
    /// Replace the config file (ports as the gateway runs).
    fn write_config(&self, text: &str) {
        let text = text
            .replace("{public}", &self.gw.public.to_string())
            .replace("{admin}", &self.gw.admin.to_string());
        std::fs::write(self.gw.config_path(), text).unwrap();
    }

    async fn sign_in(&self) -> String {
        let started = signin::start(&self.gw.url("/private/page")).await;
        let r = signin::finish(
            &self.idp,
            &signin::sp(&self.gw.url("")),
            &self.gw.url("/saml/acs"),
            &started,
            "alice@contoso.example",
            Vec::new(),
        )
        .await;
        assert_eq!(r.status(), 302, "{}", self.gw.log());
        cookie_of(&r)
    }

    async fn status(&self, path: &str, cookie: Option<&str>) -> u16 {
        let mut req = client().get(self.gw.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn metrics(&self) -> String {
        self.gw.metrics().await
    }

    fn reload_command(&self) -> (i32, String) {
        ssogate(&["reload", "--admin", &format!("127.0.0.1:{}", self.gw.admin)])
    }
}

/// Poll `f` until it is true (bounded).
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_config_and_sessions_survive() {
    let s = start().await;
    let cookie = s.sign_in().await;
    assert_eq!(s.status("/private/page", Some(&cookie)).await, 200);
    // Not public yet: a request without a session is sent to sign in.
    assert_eq!(s.status("/news/today", None).await, 401);

    s.write_config(&config(s.echo.port, "", &news_route()));
    s.gw.signal("HUP");
    eventually("the new route is served", || async {
        s.status("/news/today", None).await == 200
    })
    .await;
    assert_eq!(
        s.status("/private/page", Some(&cookie)).await,
        200,
        "the session did not survive the reload"
    );
    let m = s.metrics().await;
    assert!(
        m.contains("ssogate_config_reload_total{result=\"success\"} 1"),
        "{m}"
    );
    assert!(m.contains("ssogate_config_last_reload_success_timestamp_seconds "));
    let log = s.gw.log();
    assert!(log.contains("SIGHUP: reloading the config"), "{log}");
    assert!(log.contains("config_reloaded"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_with_problems_is_refused_whole_and_every_problem_is_named() {
    let s = start().await;
    let cookie = s.sign_in().await;
    // Two problems in different places, and one good change that must not apply alone.
    let bad = config(
        s.echo.port,
        "trusted_proxies = [\"not-an-address\"]",
        &news_route(),
    )
    .replace(
        "certificate_file = \"idp.pem\"",
        "certificate_file = \"missing.pem\"",
    );
    s.write_config(&bad);
    let (code, out) = s.reload_command();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("reload refused (2 problem(s))"), "{out}");
    assert!(out.contains("not-an-address"), "{out}");
    assert!(out.contains("missing.pem"), "{out}");
    // The running config serves on, sessions too.
    assert_eq!(s.status("/news/today", None).await, 401);
    assert_eq!(s.status("/private/page", Some(&cookie)).await, 200);
    let m = s.metrics().await;
    assert!(
        m.contains("ssogate_config_reload_total{result=\"failure\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("ssogate_config_reload_total{result=\"success\"} 0"),
        "{m}"
    );
    let log = s.gw.log();
    assert!(log.contains("config reload refused"), "{log}");
    assert!(log.contains("missing.pem"), "{log}");

    // A setting only a restart can apply is named; the rest is not applied either.
    s.write_config(
        &config(s.echo.port, "grace_period = \"3s\"", &news_route())
            .replace("threads = 2", "threads = 3"),
    );
    let (code, out) = s.reload_command();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("server.threads: changed"), "{out}");
    assert!(out.contains("server.grace_period: changed"), "{out}");
    assert_eq!(s.status("/news/today", None).await, 401);

    // Fixed: the command reloads and says so.
    s.write_config(&config(s.echo.port, "", &news_route()));
    let (code, out) = s.reload_command();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reloaded: generation 1"), "{out}");
    assert_eq!(s.status("/news/today", None).await, 200);
    assert_eq!(s.status("/private/page", Some(&cookie)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_fail_no_request() {
    let s = Arc::new(start().await);
    let cookie = s.sign_in().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (s, stop, ok, failed, cookie) = (
            s.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            cookie.clone(),
        );
        load.push(tokio::spawn(async move {
            // Keep-alive connections and new ones, signed-in and public requests.
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                let (path, with_cookie) = if worker % 2 == 0 {
                    ("/private/page", true)
                } else {
                    ("/public/page", false)
                };
                let mut req = c.get(s.gw.url(path));
                if with_cookie {
                    req = req.header("cookie", &cookie);
                }
                match req.send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let reloads = 10;
    for i in 0..reloads {
        let extra = if i % 2 == 0 {
            news_route()
        } else {
            String::new()
        };
        s.write_config(&config(s.echo.port, "", &extra));
        let (code, out) = s.reload_command();
        assert_eq!(code, 0, "{out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{reloads} reloads under load: {ok} requests served, {failed} failed");
    assert!(ok > 100, "too little load to tell: {ok}");
    assert_eq!(failed, 0);
    let m = s.metrics().await;
    assert!(
        m.contains(&format!(
            "ssogate_config_reload_total{{result=\"success\"}} {reloads}"
        )),
        "{m}"
    );
}

/// This machine's first global IPv4 address (another host, as the admin listener sees it).
fn global_address() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("ip (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .expect("this test needs a non-loopback IPv4 address on the machine")
}

#[tokio::test]
async fn a_reload_is_taken_from_the_gateways_own_host_only() {
    // The admin listener open to the network (as for a kubelet's probes).
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let gw = Gateway::start(
        &config(echo.port, "", "").replace("admin = \"127.0.0.1:", "admin = \"0.0.0.0:"),
        &[("idp.pem", idp.certificate_pem().as_bytes())],
    )
    .await;
    let from_network = format!("http://{}:{}/reload", global_address(), gw.admin);
    let r = client().post(&from_network).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("from this host only"));
    let r = client().post(gw.admin_url("/reload")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client().get(gw.admin_url("/reload")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}
