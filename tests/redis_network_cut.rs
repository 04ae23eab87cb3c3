//! A network cut between one gateway and Redis, the other gateway unaffected: two real
//! gateway processes share one redis-server, A through a link that is cut for 8 s
//! (`utils::link`: bytes stop, connections stay open, as with a pulled cable), B
//! directly. A user signs out through B while A is cut off.
//!
//! Prints and checks: how long A serves its cached sessions (at most `cache_ttl`, 3 s
//! here, from their last read), how long A kept serving the session signed out through B
//! (the same bound), when A's `/readyz` fails and when it is green again after the link
//! is back, that B saw no error, that no session was lost, that the signed-out session
//! stays signed out on A, and that neither gateway restarted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step should panic with its message"
)]

mod utils;

use std::time::{Duration, Instant};

use utils::echo::EchoUpstream;
use utils::gateway::Gateway;
use utils::http::{client, sign_out};
use utils::link::Link;
use utils::redis::TestRedis;

const CACHE_TTL: Duration = Duration::from_secs(3);
const CUT_FOR: Duration = Duration::from_secs(8);

fn config(redis_url: &str, upstream: u16) -> String {
    utils::config::head("grace_period = \"1s\"").replace(
        "store = \"memory\"",
        &format!(
            "store = \"redis\"\nredis_url = \"{redis_url}\"\ncache_ttl = \"{}s\"",
            CACHE_TTL.as_secs()
        ),
    ) + &utils::config::app("wiki", "\"*\"", upstream, utils::config::GATEWAY, "")
}

async fn status(gw: &Gateway, cookie: &str) -> u16 {
    client()
        .get(gw.url("/page"))
        .header("cookie", cookie)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn ready(gw: &Gateway) -> bool {
    client()
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

async fn cached_sessions(gw: &Gateway) -> u64 {
    let body = gw.metrics().await;
    body.lines()
        .find_map(|l| l.strip_prefix("ssogate_session_cache_entries "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn alive(gw: &Gateway) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &gw.pid().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_gateway_serves_only_recent_sessions_for_cache_ttl_and_recovers_by_itself() {
    let redis = TestRedis::start();
    let link = Link::start(redis.port()).await;
    let echo = EchoUpstream::start().await;
    let idp = ssogate::saml::DevIdp::generate(utils::config::IDP_ENTITY).unwrap();
    let pem = idp.certificate_pem();
    let files: Vec<(&str, &[u8])> = vec![("idp.pem", pem.as_bytes())];
    let a = Gateway::start(
        &config(&format!("redis://127.0.0.1:{}/0", link.port), echo.port),
        &files,
    )
    .await;
    let b = Gateway::start(&config(&redis.url(), echo.port), &files).await;
    let (pid_a, pid_b) = (a.pid(), b.pid());

    let sign_in = |user: &'static str| utils::signin::sign_in(&a, &idp, user);
    let leaving = sign_in("leaving@contoso.example").await;
    let staying = sign_in("staying@contoso.example").await;
    // Both sessions read through both gateways, A holding both in its cache.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for cookie in [&leaving, &staying] {
            assert_eq!(status(&a, cookie).await, 200);
            assert_eq!(status(&b, cookie).await, 200);
        }
        if cached_sessions(&a).await == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "A never cached the sessions");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last_read = Instant::now();

    link.cut();
    let cut_at = Instant::now();
    // Signed out through B (it reaches Redis): the session is deleted there.
    // (No IdP logout URL configured: B answers with its signed-out page.)
    let r = sign_out(&b.url(""), Some(&leaving)).await;
    assert_eq!(r.status(), 200, "{}", b.log());
    assert_ne!(status(&b, &leaving).await, 200, "signed out on B");

    // Watch both gateways until the link comes back.
    let (mut staying_served, mut leaving_served) = (Duration::ZERO, Duration::ZERO);
    let mut not_ready_after = None;
    let mut b_errors = 0;
    let mut b_requests = 0;
    while cut_at.elapsed() < CUT_FOR {
        if status(&a, &staying).await == 200 {
            staying_served = last_read.elapsed();
        }
        if status(&a, &leaving).await == 200 {
            leaving_served = last_read.elapsed();
        }
        if not_ready_after.is_none() && !ready(&a).await {
            not_ready_after = Some(cut_at.elapsed());
        }
        b_requests += 1;
        if status(&b, &staying).await != 200 {
            b_errors += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    link.heal();
    let healed_at = Instant::now();
    let deadline = healed_at + Duration::from_secs(20);
    while !(ready(&a).await && status(&a, &staying).await == 200) {
        assert!(
            Instant::now() < deadline,
            "A did not recover within 20 s of the link coming back:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered_after = healed_at.elapsed();
    let leaving_after = status(&a, &leaving).await;

    println!(
        "network cut (A only, {CUT_FOR:?}, cache_ttl {CACHE_TTL:?}): A served a signed-in user \
         until {staying_served:?} after the session's last read, and the session signed out \
         through B until {leaving_served:?}; A not ready {not_ready_after:?} into the cut, \
         ready and serving again {recovered_after:?} after the link came back; B: {b_errors} \
         errors in {b_requests} requests; signed-out session on A afterwards: {leaving_after}"
    );
    // A served from its cache, and for no longer than cache_ttl (plus one request's time).
    assert!(
        staying_served > Duration::ZERO,
        "the outage fallback served nothing"
    );
    assert!(
        staying_served <= CACHE_TTL + Duration::from_secs(1),
        "{staying_served:?}"
    );
    assert!(
        leaving_served <= CACHE_TTL + Duration::from_secs(1),
        "{leaving_served:?}"
    );
    assert!(not_ready_after.is_some(), "A stayed ready without Redis");
    assert_eq!(b_errors, 0, "B is not affected");
    // Nothing lost, the sign-out holds, nobody restarted.
    assert_eq!(status(&b, &staying).await, 200);
    assert_ne!(leaving_after, 200, "the signed-out session came back on A");
    assert!(alive(&a) && alive(&b) && a.pid() == pid_a && b.pid() == pid_b);
}
