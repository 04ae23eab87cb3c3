//! Redis Cluster, for real: three primaries and three replicas on loopback
//! (`utils::redis::ClusterSet`), two gateway replicas' session managers in front.
//!
//! - `a_primary_dies_and_nothing_replicated_is_lost`: the failover scenario of
//!   `utils::failover` (steady load, a revocation during the failover, figures printed)
//!   with one primary killed; the Cluster promotes its replica and the store follows the
//!   new slot map by itself.
//! - `gateways_on_a_cluster_sign_in_and_keep_the_session_through_a_failover`:
//!   `check-config`, a sign-in through two gateway processes whose store is the Cluster,
//!   then a primary killed: the signed-in user sees no error, sign-ins and `/readyz` come
//!   back on both, neither restarts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step should panic with its message"
)]

mod utils;

use std::sync::Arc;
use std::time::Duration;

use ssogate::session::{RedisOptions, RedisStore, SessionId};
use utils::failover::{self, identity, manager, wait_for, T0};
use utils::redis::{command, ClusterSet};

fn store(set: &ClusterSet, prefix: &str) -> Arc<RedisStore> {
    Arc::new(
        RedisStore::connect_with(
            &set.url(),
            RedisOptions {
                cluster: true,
                ..RedisOptions::default()
            },
        )
        .unwrap()
        .with_key_prefix(prefix)
        .with_feed_keepalive(Duration::from_millis(500)),
    )
}

/// Every replica holds as many keys as its primary.
fn replicas_in_sync(set: &ClusterSet) -> bool {
    set.nodes.iter().filter(|n| n.running()).all(|n| {
        let role = command(n.port(), &["ROLE"]);
        let mut lines = role.lines();
        if lines.next() != Some("slave") {
            return true;
        }
        // "slave", host, ":port" (an integer reply), …
        let Some(primary) = lines
            .nth(1)
            .and_then(|p| p.trim().trim_start_matches(':').parse::<u16>().ok())
        else {
            return false;
        };
        command(n.port(), &["DBSIZE"]) == command(primary, &["DBSIZE"])
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_dies_and_nothing_replicated_is_lost() {
    let set = ClusterSet::start();
    let prefix = format!("cluster-{}:", &SessionId::generate().store_key()[..10]);
    let (a, b) = (manager(store(&set, &prefix)), manager(store(&set, &prefix)));
    let feeds = wait_for(Duration::from_secs(10), || async {
        a.feed_live() && b.feed_live()
    })
    .await;
    assert!(feeds.is_some(), "both revocation feeds subscribe");
    // Sessions on every shard (their keys spread over the slots), read through both.
    let mut before = Vec::new();
    for i in 0..60 {
        let (id, _) = a
            .create("app", identity(&format!("u{i}@example.com")), T0, None)
            .await
            .unwrap();
        assert!(b.load(&id, "app", T0).await.unwrap().is_some());
        before.push(id);
    }
    let synced = wait_for(Duration::from_secs(10), || async { replicas_in_sync(&set) }).await;
    assert!(synced.is_some(), "the replicas have the sessions");
    // A primary other than the URL's node (whose failure the feed's note in docs/redis.md
    // covers), and its replica, which the Cluster promotes.
    let victim = set
        .primaries()
        .into_iter()
        .find(|n| n.port() != set.nodes[0].port())
        .expect("a second primary")
        .port();
    let kill = || {
        set.nodes
            .iter()
            .find(|n| n.port() == victim)
            .unwrap()
            .stop()
    };
    let promoted = || {
        set.primaries().len() == 3
            && set
                .nodes
                .iter()
                .filter(|n| n.running())
                .all(|n| command(n.port(), &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    };
    failover::run("cluster failover", &a, &b, &before, kill, promoted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_on_a_cluster_sign_in_and_keep_the_session_through_a_failover() {
    use utils::gateway::Gateway;
    use utils::http::client;
    let set = ClusterSet::start();
    let echo = utils::echo::EchoUpstream::start().await;
    let idp = ssogate::saml::DevIdp::generate(utils::config::IDP_ENTITY).unwrap();
    let pem = idp.certificate_pem();
    let files: Vec<(&str, &[u8])> = vec![("idp.pem", pem.as_bytes())];
    let config = utils::config::head("grace_period = \"1s\"").replace(
        "store = \"memory\"",
        &format!(
            "store = \"redis\"\nredis_url = \"{}\"\nredis_cluster = true",
            set.url()
        ),
    ) + &utils::config::app("wiki", "\"*\"", echo.port, utils::config::GATEWAY, "");

    let (code, text) = utils::cli::check_config(&config, &files);
    assert_eq!(code, 0, "{text}");
    let seed = set.nodes[0].port();
    assert!(
        text.contains(&format!(
            "session store: Redis, Cluster: the nodes found from 127.0.0.1:{seed}, plain TCP"
        )),
        "{text}"
    );

    let gw = Gateway::start(&config, &files).await;
    let ready = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", gw.log());
    let cookie = utils::signin::sign_in(&gw, &idp, "alice@contoso.example").await;
    let gw2 = Gateway::start(&config, &files).await;
    let synced = wait_for(Duration::from_secs(10), || async { replicas_in_sync(&set) }).await;
    assert!(synced.is_some(), "the replicas have the session");
    // The primary holding the session: the user's requests cannot read it from Redis
    // until its replica is promoted.
    let victim = set
        .primaries()
        .into_iter()
        .find(|n| {
            command(
                n.port(),
                &["SCAN", "0", "MATCH", "ssogate:sess:*", "COUNT", "1000"],
            )
            .contains("ssogate:sess:")
        })
        .expect("a primary holds the session")
        .port();
    utils::failover::gateways_through(
        "two gateways on a Cluster, a primary killed",
        [&gw, &gw2],
        &cookie,
        || {
            set.nodes
                .iter()
                .find(|n| n.port() == victim)
                .unwrap()
                .stop()
        },
    )
    .await;
}

/// Slots move between primaries (`redis-cli --cluster reshard`) while sessions are read
/// and made: the store follows MOVED and ASK, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resharding_under_load_loses_nothing() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let set = ClusterSet::start();
    let prefix = format!("reshard-{}:", &SessionId::generate().store_key()[..10]);
    let m = manager(store(&set, &prefix));
    let mut before = Vec::new();
    for i in 0..200 {
        let (id, _) = m
            .create("app", identity(&format!("r{i}@example.com")), T0, None)
            .await
            .unwrap();
        before.push(id);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (ops, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (m, stop, ops, failed, ids) = (
            m.clone(),
            stop.clone(),
            ops.clone(),
            failed.clone(),
            before.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                // Past the cache: every read goes to Redis.
                let read = m.store().get_session(&ids[i % ids.len()].store_key()).await;
                let made = m
                    .create("app", identity(&format!("n{i}@example.com")), T0, None)
                    .await;
                ops.fetch_add(2, Ordering::Relaxed);
                if !matches!(read, Ok(Some(_))) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                if made.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let primaries = set.primaries();
    let id_of = |port: u16| command(port, &["CLUSTER", "MYID"]).trim().to_string();
    let (from, to) = (id_of(primaries[0].port()), id_of(primaries[1].port()));
    let out = tokio::task::spawn_blocking({
        let seed = format!("127.0.0.1:{}", primaries[0].port());
        move || {
            std::process::Command::new("redis-cli")
                .args(["--cluster", "reshard", &seed])
                .args(["--cluster-from", &from, "--cluster-to", &to])
                .args(["--cluster-slots", "1500", "--cluster-yes"])
                .output()
                .expect("redis-cli")
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "reshard: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let mut lost = 0;
    for id in &before {
        if !matches!(m.store().get_session(&id.store_key()).await, Ok(Some(_))) {
            lost += 1;
        }
    }
    let (ops, failed) = (ops.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("cluster resharding (1500 slots moved under load): {ops} operations, {failed} failed; sessions lost: {lost} of {}", before.len());
    assert_eq!(lost, 0, "sessions lost in the resharding");
    assert_eq!(failed, 0, "operations failed while slots moved");
}
