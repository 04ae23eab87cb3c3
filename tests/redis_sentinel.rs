//! Redis Sentinel, for real: a primary, a replica and three Sentinels on loopback
//! (`utils::redis::SentinelSet`), and two gateway replicas' session managers (stores,
//! caches, revocation feeds) in front of them.
//!
//! - `failover_loses_no_replicated_session_and_no_revocation`: the primary is killed
//!   under a steady load of session reads and new sign-ins. It prints and checks the
//!   figures: failed operations and for how long, sessions lost among those the replica
//!   had before the kill (0), a revocation issued during the failover that must reach
//!   the other replica's cache, and that both managers work again on the new primary.
//! - `a_demoted_primary_is_left_for_the_new_one`: a graceful failover (`SENTINEL
//!   FAILOVER`) keeps the old primary alive as a replica: the store's next write meets
//!   `READONLY` there and must land on the new primary without failing.
//! - `check_config_and_wrong_settings`: what a wrong master name or unreachable
//!   Sentinels say.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step should panic with its message"
)]

mod utils;

use std::sync::Arc;
use std::time::Duration;

use ssogate::session::{
    RedisOptions, RedisStore, SessionError, SessionId, SessionManager, SessionStore,
};
use utils::failover::{self, identity, manager, wait_for, T0};
use utils::redis::{command, SentinelSet, MASTER};

fn options(set: &SentinelSet) -> RedisOptions {
    RedisOptions {
        sentinels: set.sentinel_addrs(),
        ..RedisOptions::default()
    }
}

fn store(set: &SentinelSet, prefix: &str) -> Arc<RedisStore> {
    Arc::new(
        RedisStore::connect_with(&set.url(), options(set))
            .unwrap()
            .with_key_prefix(prefix)
            .with_feed_keepalive(Duration::from_millis(500)),
    )
}

fn prefix() -> String {
    format!("sentinel-{}:", &SessionId::generate().store_key()[..10])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_loses_no_replicated_session_and_no_revocation() {
    let set = SentinelSet::start();
    let prefix = prefix();
    let (store_a, store_b) = (store(&set, &prefix), store(&set, &prefix));
    let (a, b) = (manager(store_a.clone()), manager(store_b.clone()));
    let feeds_live = wait_for(Duration::from_secs(10), || async {
        a.feed_live() && b.feed_live()
    })
    .await;
    assert!(feeds_live.is_some(), "both revocation feeds subscribe");

    // Sessions signed in before the failover, each loaded once by both replicas (b's
    // cache holds them), and known to the replica before the primary goes.
    let mut before = Vec::new();
    for i in 0..50 {
        let (id, _) = a
            .create("app", identity(&format!("u{i}@example.com")), T0, None)
            .await
            .unwrap();
        assert!(b.load(&id, "app", T0).await.unwrap().is_some());
        before.push(id);
    }
    let old_primary = set.primary().port();
    let replica = set.nodes.iter().find(|n| n.port() != old_primary).unwrap();
    let last_key = store_a.session_key(&before[49].store_key());
    let replicated = wait_for(Duration::from_secs(10), || async {
        command(replica.port(), &["EXISTS", &last_key]) == ":1"
    })
    .await;
    assert!(replicated.is_some(), "the replica has the sessions");

    let kill = || {
        set.nodes
            .iter()
            .find(|n| n.port() == old_primary)
            .unwrap()
            .stop()
    };
    let promoted = || set.primary_port().is_some_and(|p| p != old_primary);
    failover::run("sentinel failover", &a, &b, &before, kill, promoted).await;
    assert!(ssogate::metrics::METRICS.store_failovers.get() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_primary_is_left_for_the_new_one() {
    let set = SentinelSet::start();
    let prefix = prefix();
    let store = store(&set, &prefix);
    let m = manager(store.clone());
    let (id, _) = m
        .create("app", identity("x@example.com"), T0, None)
        .await
        .unwrap();
    let old_primary = set.primary().port();

    // Graceful: the old primary stays up and becomes a replica; Sentinel drops its
    // clients' connections, which reconnect to the same address.
    let reply = command(set.sentinels[0].port(), &["SENTINEL", "FAILOVER", MASTER]);
    assert!(reply.contains("OK"), "{reply}");
    let switched = wait_for(Duration::from_secs(30), || async {
        set.primary_port().is_some_and(|p| p != old_primary)
            && command(old_primary, &["ROLE"]).starts_with("slave")
    })
    .await;
    assert!(switched.is_some(), "the failover completes");

    // Writes go on without an error: a READONLY answer sends them to the new primary.
    let mut failed = Vec::new();
    for i in 0..20 {
        if let Err(e) = m
            .create("app", identity(&format!("w{i}@example.com")), T0, None)
            .await
        {
            failed.push(e.to_string());
        }
    }
    assert!(m.load(&id, "app", T0).await.unwrap().is_some());
    assert_eq!(
        failed,
        Vec::<String>::new(),
        "writes after a graceful failover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_master_names_and_dead_sentinels_are_reported() {
    let set = SentinelSet::start();
    let wrong = RedisStore::connect_with("redis://no-such-master/0", options(&set)).unwrap();
    let err = wrong.ping().await.unwrap_err();
    assert!(matches!(err, SessionError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("no-such-master") && text.contains("does not monitor"),
        "{text}"
    );

    let dead = utils::ports::free_port();
    let nobody = RedisStore::connect_with(
        &set.url(),
        RedisOptions {
            sentinels: vec![("127.0.0.1".into(), dead)],
            ..RedisOptions::default()
        },
    )
    .unwrap();
    let text = nobody.ping().await.unwrap_err().to_string();
    assert!(text.contains(&format!("127.0.0.1:{dead}")), "{text}");
}

fn gateway_config(set: &SentinelSet, upstream: u16) -> String {
    let sentinels = set
        .sentinel_addrs()
        .iter()
        .map(|(h, p)| format!("\"{h}:{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    utils::config::head("grace_period = \"1s\"").replace(
        "store = \"memory\"",
        &format!(
            "store = \"redis\"\nredis_url = \"{}\"\nredis_sentinels = [{sentinels}]\n\
             redis_username = \"ssogate\"\nredis_password_file = \"redis-password\"\n\
             redis_sentinel_username = \"ssogate-sentinel\"\n\
             redis_sentinel_password_file = \"sentinel-password\"",
            set.url()
        ),
    ) + &utils::config::app("wiki", "\"*\"", upstream, utils::config::GATEWAY, "")
}

/// Two gateway processes on Sentinel, as the ACL users of docs/redis.md's two lines (on
/// the data nodes and on the Sentinels, whose default user has a password they do not
/// know): `check-config` says how the store is reached, a user signs in through one and
/// browses on both; the primary is killed: the user sees no error on either, new
/// sign-ins and `/readyz` come back on both, and neither restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_on_sentinel_sign_in_and_keep_the_session_through_a_failover() {
    use utils::gateway::Gateway;
    use utils::http::client;
    use utils::tls::{documented_acl_rules, documented_sentinel_acl_rules};
    const SECRET: &str = "sentinel-s3cret";
    const DATA_SECRET: &str = "data-s3cret";
    let set = SentinelSet::start_with(
        &format!(
            "user ssogate on >{DATA_SECRET} {}",
            documented_acl_rules().join(" ")
        ),
        &format!(
            "user ssogate-sentinel on >{SECRET} {}",
            documented_sentinel_acl_rules().join(" ")
        ),
        Some("the-admins-own-password"),
    );
    let echo = utils::echo::EchoUpstream::start().await;
    let idp = ssogate::saml::DevIdp::generate(utils::config::IDP_ENTITY).unwrap();
    let idp_pem = idp.certificate_pem();
    let files: Vec<(&str, &[u8])> = vec![
        ("idp.pem", idp_pem.as_bytes()),
        ("sentinel-password", SECRET.as_bytes()),
        ("redis-password", DATA_SECRET.as_bytes()),
    ];
    let config = gateway_config(&set, echo.port);

    let (code, text) = utils::cli::check_config(&config, &files);
    assert_eq!(code, 0, "{text}");
    let [s1, s2, s3] = [0, 1, 2].map(|i| set.sentinels[i].port());
    assert!(
        text.contains(&format!(
            "session store: Redis, Sentinel: the primary of \"{MASTER}\" as 3 Sentinel(s) name it \
             (127.0.0.1:{s1}, 127.0.0.1:{s2}, 127.0.0.1:{s3}), Sentinel ACL user \
             \"ssogate-sentinel\", Sentinel password from redis_sentinel_password_file, plain \
             TCP, no TLS, ACL user \"ssogate\" from redis_username, password from \
             redis_password_file"
        )),
        "{text}"
    );
    assert!(!text.contains(SECRET) && !text.contains(DATA_SECRET));

    let gw = Gateway::start(&config, &files).await;
    let ready = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", gw.log());
    let cookie = utils::signin::sign_in(&gw, &idp, "alice@contoso.example").await;
    // A second replica of the gateway, on the same Sentinels: the session works there too.
    let gw2 = Gateway::start(&config, &files).await;
    // Replicated, then the primary dies.
    let primary = set.primary().port();
    let replica = set.nodes.iter().find(|n| n.port() != primary).unwrap();
    let synced = wait_for(Duration::from_secs(10), || async {
        command(replica.port(), &["DBSIZE"]) != ":0"
    })
    .await;
    assert!(synced.is_some(), "the session reached the replica");
    failover::gateways_through(
        "two gateways on Sentinel, primary killed",
        [&gw, &gw2],
        &cookie,
        || set.primary().stop(),
    )
    .await;
    assert!(gw.log().contains("the primary changed"), "{}", gw.log());
    let metrics = gw.metrics().await;
    for line in [
        "ssogate_store_failovers_total 1",
        "ssogate_store_duration_seconds_bucket{op=\"get_session\",",
        "ssogate_store_duration_seconds_count{op=\"put_session\"}",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    let counter = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(counter("ssogate_store_reconnects_total") >= 1, "{metrics}");
    let failures = counter("ssogate_store_failures_total{kind=\"unreachable\"}")
        + counter("ssogate_store_failures_total{kind=\"timeout\"}")
        + counter("ssogate_store_failures_total{kind=\"no_primary\"}");
    assert!(failures >= 1, "{metrics}");
    assert!(!gw.log().contains(SECRET) && !gw.log().contains(DATA_SECRET));
}

/// The URL's database number holds through Sentinel (a common gap in clients).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_number_is_honoured() {
    let set = SentinelSet::start();
    let store = RedisStore::connect_with(&format!("redis://{MASTER}/3"), options(&set))
        .unwrap()
        .with_key_prefix("db-test:");
    let m = SessionManager::new(
        Arc::new(store),
        Duration::from_secs(60),
        Duration::from_secs(600),
    );
    let (id, _) = m
        .create("app", identity("db@example.com"), T0, None)
        .await
        .unwrap();
    let key = format!("db-test:sess:{}", id.store_key());
    let port = set.primary().port();
    assert_eq!(command(port, &["EXISTS", &key]), ":0", "not in database 0");
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/3"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let n: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1, "in database 3");
}

/// Sentinel over TLS, as docs/redis.md describes it: the Sentinels and the data nodes
/// speak TLS (replication too), the Sentinels name the nodes by host name
/// (`announce-hostnames yes`) so that the primary's certificate can be checked against
/// the name they give. The store finds the primary over TLS, follows a failover, and a
/// Sentinel addressed by a name its certificate does not carry is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_over_tls_checks_every_certificate_and_follows_a_failover() {
    let pki = utils::tls::Pki::new();
    let set = SentinelSet::start_tls(&pki);
    let tls = |sentinels: Vec<(String, u16)>| RedisOptions {
        sentinels,
        ca_pem: Some(pki.ca_pem.clone()),
        ..RedisOptions::default()
    };
    let url = format!("rediss://{MASTER}/0");
    let store = Arc::new(
        RedisStore::connect_with(&url, tls(set.sentinel_addrs()))
            .unwrap()
            .with_key_prefix(prefix()),
    );
    let m = SessionManager::new(
        store.clone(),
        Duration::from_secs(600),
        Duration::from_secs(3600),
    );
    let (id, _) = m
        .create("app", identity("tls@example.com"), T0, None)
        .await
        .unwrap();
    assert!(m.load(&id, "app", T0).await.unwrap().is_some());

    // The same Sentinels by IP address: their certificate names "localhost" only.
    let by_ip = set
        .sentinel_addrs()
        .into_iter()
        .map(|(_, p)| ("127.0.0.1".to_string(), p))
        .collect();
    let wrong = RedisStore::connect_with(&url, tls(by_ip)).unwrap();
    let text = wrong.ping().await.unwrap_err().to_string();
    assert!(text.contains("certificate"), "{text}");
    // A CA that signed nothing here.
    let stranger = RedisStore::connect_with(
        &url,
        RedisOptions {
            ca_pem: Some(utils::tls::Pki::stranger_ca()),
            ..tls(set.sentinel_addrs())
        },
    )
    .unwrap();
    let text = stranger.ping().await.unwrap_err().to_string();
    assert!(text.contains("certificate"), "{text}");

    // Replicated, then the primary dies: the store finds the new one over TLS.
    let old = set.primary().port();
    let replica = set.nodes.iter().find(|n| n.port() != old).unwrap();
    let key = store.session_key(&id.store_key());
    let synced = wait_for(Duration::from_secs(10), || async {
        command(replica.port(), &["EXISTS", &key]) == ":1"
    })
    .await;
    assert!(synced.is_some(), "replicated over TLS");
    set.primary().stop();
    let back = wait_for(Duration::from_secs(30), || async {
        m.create("app", identity("after@example.com"), T0, None)
            .await
            .is_ok()
    })
    .await;
    println!("sentinel over TLS: writes again {back:?} after the primary was killed");
    assert!(back.is_some(), "no write on the new primary within 30 s");
    assert!(
        m.load(&id, "app", T0).await.unwrap().is_some(),
        "session kept"
    );
}
