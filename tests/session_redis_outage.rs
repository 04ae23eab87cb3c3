//! The Redis store under outages, against a real redis-server: a dead or frozen Redis
//! gives a fast `Unavailable` (never a hang), the store recovers by itself when Redis
//! comes back, and a gateway can start while Redis is down.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step should panic with its message"
)]

mod utils;

use utils::redis as test_redis;

use std::future::Future;
use std::time::{Duration, Instant};

use ssogate::identity::Identity;
use ssogate::session::{RedisStore, SessionError, SessionId, SessionRecord, SessionStore};
use test_redis::{free_port, TestRedis};

/// Upper bound for "fast": the brief's ~2 s, with room for a loaded CI machine.
const FAST: Duration = Duration::from_millis(2500);

fn record() -> SessionRecord {
    SessionRecord {
        app: "app".into(),
        identity: Identity {
            name_id: "outage@example.com".into(),
            ..Default::default()
        },
        created_at: 1,
        last_seen: 1,
        expires_at: i64::MAX,
        headers: Default::default(),
    }
}

fn store(url: &str) -> RedisStore {
    let prefix = format!("ssogate-test-{}:", &SessionId::generate().store_key()[..12]);
    RedisStore::new(url, None).unwrap().with_key_prefix(prefix)
}

async fn assert_fast_unavailable<T: std::fmt::Debug>(
    what: &str,
    op: impl Future<Output = Result<T, SessionError>>,
) {
    let start = Instant::now();
    let r = op.await;
    let took = start.elapsed();
    assert!(
        matches!(r, Err(SessionError::Unavailable(_))),
        "{what}: expected Unavailable, got {r:?}"
    );
    assert!(took < FAST, "{what}: took {took:?}");
}

/// Poll `ping` until it succeeds; returns how long recovery took.
async fn wait_until_up(store: &RedisStore, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match store.ping().await {
            Ok(()) => return start.elapsed(),
            Err(e) => {
                assert!(
                    start.elapsed() < limit,
                    "not recovered after {limit:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn roundtrip(store: &RedisStore) {
    let k = SessionId::generate().store_key();
    store
        .put_session(&k, &record(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.get_session(&k).await.unwrap(), Some(record()));
}

async fn all_ops_unavailable(store: &RedisStore) {
    let k = SessionId::generate().store_key();
    let ttl = Duration::from_secs(60);
    assert_fast_unavailable("ping", store.ping()).await;
    assert_fast_unavailable("get", store.get_session(&k)).await;
    assert_fast_unavailable("put", store.put_session(&k, &record(), ttl)).await;
    assert_fast_unavailable("touch", store.touch_session(&k, &record(), ttl)).await;
    assert_fast_unavailable("delete", store.delete_session(&k)).await;
    assert_fast_unavailable("user_sessions", store.user_sessions("app", "x")).await;
    assert_fast_unavailable("take_pending", store.take_pending("r")).await;
    assert_fast_unavailable("remember", store.remember_assertion("a", ttl)).await;
}

#[tokio::test]
async fn stopped_redis_is_fast_unavailable_and_restart_recovers() {
    let redis = TestRedis::start();
    let store = store(&redis.url());
    roundtrip(&store).await;

    redis.stop();
    all_ops_unavailable(&store).await;
    // a longer outage: keep failing (and fast) for a while
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert_fast_unavailable("ping", store.ping()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    redis.restart();
    let took = wait_until_up(&store, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "recovery took {took:?}");
    // the same store instance works again (Redis came back empty)
    roundtrip(&store).await;
}

#[tokio::test]
async fn store_starts_while_redis_is_down_and_connects_later() {
    let port = free_port();
    let store = store(&format!("redis://127.0.0.1:{port}/0"));
    all_ops_unavailable(&store).await;

    let redis = TestRedis::start_on(port);
    let took = wait_until_up(&store, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "recovery took {took:?}");
    roundtrip(&store).await;
    drop(redis);
}

#[tokio::test]
async fn frozen_redis_times_out_instead_of_hanging() {
    let redis = TestRedis::start();
    let store = store(&redis.url());
    roundtrip(&store).await;

    redis.pause();
    assert_fast_unavailable("ping on a frozen server", store.ping()).await;
    assert_fast_unavailable("get on a frozen server", store.get_session("k")).await;
    redis.resume();
    wait_until_up(&store, Duration::from_secs(5)).await;
    roundtrip(&store).await;
}

/// A revocation feed whose connection goes silent (Redis frozen: the TCP connection stays
/// up, nothing answers; as after a firewall drops an idle connection) is noticed by its
/// PING within about keepalive + response timeout: the cache stops being trusted, and
/// the feed comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_revocation_feed_is_noticed_and_the_cache_distrusted() {
    use ssogate::session::SessionManager;
    use std::sync::Arc;
    let redis = TestRedis::start();
    let store = store(&redis.url())
        .with_timeouts(Duration::from_millis(500), Duration::from_millis(300))
        .with_feed_keepalive(Duration::from_millis(200));
    let manager = Arc::new(
        SessionManager::new(
            Arc::new(store),
            Duration::from_secs(1800),
            Duration::from_secs(3600),
        )
        .with_cache(Duration::from_secs(60), 1000),
    );
    let follower = {
        let m = manager.clone();
        tokio::spawn(async move { m.follow_revocations().await })
    };
    let now = chrono::Utc::now().timestamp();
    let (id, _) = manager
        .create("app", record().identity, now, None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(manager.feed_live() && manager.cache().len() == 1) {
        assert!(Instant::now() < deadline, "the feed never came up");
        manager.load(&id, "app", now).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    redis.pause();
    let paused = Instant::now();
    while manager.feed_live() {
        assert!(
            paused.elapsed() < Duration::from_secs(3),
            "a silent feed was still trusted after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let noticed = paused.elapsed();
    eprintln!("silent feed noticed after {noticed:?}");
    // Not trusted any more, but the outage fallback: the frozen store times out and the
    // session read before it is served as cached.
    assert!(manager.load(&id, "app", now).await.unwrap().is_some());

    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !manager.feed_live() {
        assert!(Instant::now() < deadline, "the feed did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Back: what was cached is distrusted (revocations may have been missed meanwhile),
    // kept only as the outage fallback.
    assert!(
        manager.cache().get(&id).is_none(),
        "the cache outlived the gap in its feed"
    );
    assert!(manager.cache().get_stale(&id).is_some());
    follower.abort();
}

#[tokio::test]
async fn password_overrides_the_urls() {
    let redis = TestRedis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("right-pass")
        .query_async(&mut conn)
        .await
        .unwrap();
    let port = redis.port();

    let no_pass = RedisStore::new(&redis.url(), None).unwrap();
    assert_fast_unavailable("no password", no_pass.ping()).await;

    let url_wrong = format!("redis://:wrong-pass@127.0.0.1:{port}/0");
    let wrong = RedisStore::new(&url_wrong, None).unwrap();
    let err = wrong.ping().await.unwrap_err();
    assert!(matches!(err, SessionError::Unavailable(_)));
    assert!(!err.to_string().contains("wrong-pass"), "{err}");

    let overridden = RedisStore::new(&url_wrong, Some("right-pass".into())).unwrap();
    overridden.ping().await.unwrap();
    roundtrip(&overridden.with_key_prefix("ssogate-test-pw:")).await;
}

#[test]
fn invalid_urls_are_config_errors_without_secrets() {
    for bad in [
        "",
        "not a url",
        "http://127.0.0.1:6379",
        "redis://:hunter2@127.0.0.1:6379/notadb",
        "rediss://:hunter2@127.0.0.1:6379/#insecure",
    ] {
        match RedisStore::new(bad, None) {
            Err(e @ SessionError::Config(_)) => {
                assert!(!e.to_string().contains("hunter2"), "{e}");
                assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
            }
            Err(e) => panic!("{bad:?}: expected Config, got {e:?}"),
            Ok(_) => panic!("{bad:?}: accepted"),
        }
    }
}

#[test]
fn new_needs_no_runtime_and_debug_hides_the_password() {
    // synchronous, outside any runtime, nothing listening
    let store = RedisStore::new(
        "redis://:url-secret@127.0.0.1:1/0",
        Some("override-secret".into()),
    )
    .unwrap();
    let dbg = format!("{store:?}");
    assert!(!dbg.contains("secret"), "{dbg}");
    assert!(dbg.contains("127.0.0.1:1"), "{dbg}");
}

/// DEPENDENCIES.md: a connection built on a runtime that is then dropped gives "broken
/// pipe". The store must heal by itself when used from another runtime (pingora runs
/// several).
#[test]
fn survives_the_runtime_that_first_used_it() {
    let redis = TestRedis::start();
    let store = store(&redis.url());
    let first = tokio::runtime::Runtime::new().unwrap();
    first.block_on(roundtrip(&store));
    drop(first);

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        // The first call on the new runtime meets the dead connection ("broken pipe")
        // and is retried once on a fresh one: no failed call at all.
        let took = wait_until_up(&store, Duration::from_secs(5)).await;
        assert!(took < Duration::from_secs(1), "recovery took {took:?}");
        roundtrip(&store).await;
    });
}
