//! Guards what every authenticated request pays before it is proxied, on a session-cache
//! hit: cookie parse, session lookup (SessionManager with a live revocation feed), route
//! match on the normalised path, the authorization decision, and building the identity
//! headers. The target (issue "Performance") is a median at or under 2 µs.
//! `session_path/cache_hit_jwt` adds the identity JWT on its reuse path (a token minted
//! once per session, then a cache lookup), as `[app.jwt]` apps pay it.
//!
//! `session_path_store` is the same path on a cache miss against a real Redis on
//! loopback (`SSOGATE_TEST_REDIS_URL`, else a redis-server started here).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ssogate::authz::{decide, Policy};
use ssogate::config::RouteConfig;
use ssogate::headers::HeaderMapping;
use ssogate::identity::{claims, Identity};
use ssogate::session::{CookieSettings, MemoryStore, RedisStore, SessionManager};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn identity() -> Identity {
    let mut id = Identity {
        name_id: "alice@contoso.example".into(),
        ..Default::default()
    };
    let one = |v: &str| vec![v.to_string()];
    id.attributes
        .insert(claims::EMAIL.into(), one("alice@contoso.example"));
    id.attributes
        .insert(claims::DISPLAY_NAME.into(), one("Alice Example"));
    id.attributes.insert(
        claims::OBJECT_ID.into(),
        one("814bd554-0000-4000-8000-00000000a11c"),
    );
    id.attributes.insert(
        claims::GROUPS.into(),
        (0..20)
            .map(|i| format!("e7f3c0ba-0000-4000-8000-{i:012}"))
            .collect(),
    );
    id
}

struct Path {
    policy: Policy,
    headers: HeaderMapping,
    cookie: CookieSettings,
}

fn path() -> Path {
    let routes: Vec<RouteConfig> = ["/public/", "/admin/", "/api/", "/reports/"]
        .iter()
        .enumerate()
        .map(|(i, p)| RouteConfig {
            path: p.to_string(),
            public: i == 0,
            allow_groups: if i == 1 {
                vec!["admins".into()]
            } else {
                vec![]
            },
            ..Default::default()
        })
        .collect();
    let mut aliases = BTreeMap::new();
    aliases.insert(
        "admins".to_string(),
        "e7f3c0ba-0000-4000-8000-000000000019".to_string(),
    );
    Path {
        policy: Policy::compile(&routes, &aliases).unwrap_or_else(|e| panic!("{e:?}")),
        headers: HeaderMapping::compile(
            &[
                ("X-Remote-User".into(), "name_id".into()),
                ("X-Remote-Email".into(), "email".into()),
                ("X-Remote-Name".into(), "display_name".into()),
                ("X-Remote-Groups".into(), "groups".into()),
            ],
            "X-Remote-",
        )
        .unwrap_or_else(|e| panic!("{e:?}")),
        cookie: CookieSettings {
            name: "ssogate".into(),
            secure: true,
        },
    }
}

/// One request's worth of work after the headers are read.
async fn request(p: &Path, m: &SessionManager, cookie_header: &str, now: i64) -> usize {
    request_with(p, m, cookie_header, now, None).await
}

/// The same, plus the identity JWT when the app has one.
async fn request_with(
    p: &Path,
    m: &SessionManager,
    cookie_header: &str,
    now: i64,
    jwt: Option<&ssogate::headers::jwt::JwtIssuer>,
) -> usize {
    let Some(id) = p.cookie.read([cookie_header]) else {
        panic!("cookie")
    };
    let Ok(Some(rec)) = m.load(&id, "wiki", now).await else {
        panic!("session")
    };
    let route = p.policy.route("/admin/settings/users?page=2");
    let d = decide(&rec.identity, route, "GET");
    black_box(d);
    let n = p.headers.build_wire(&rec.identity).len();
    match jwt {
        None => n,
        Some(j) => {
            let t = j
                .token(&id.store_key(), &rec.identity, now)
                .unwrap_or_else(|e| panic!("{e}"));
            n + t.len()
        }
    }
}

async fn signed_in(m: &SessionManager, p: &Path, now: i64) -> String {
    let (id, _) = m
        .create("wiki", identity(), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let set = p.cookie.set_cookie(&id);
    format!(
        "theme=dark; {}; _ga=GA1.2.3",
        set.split(';').next().unwrap_or_default()
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let p = path();
    let now = chrono::Utc::now().timestamp();

    // Cache hit: memory store behind the manager, revocation feed live.
    let m = Arc::new(SessionManager::new(
        Arc::new(MemoryStore::new()),
        Duration::from_secs(1800),
        Duration::from_secs(8 * 3600),
    ));
    let follower = m.clone();
    rt.spawn(async move { follower.follow_revocations().await });
    let cookie = rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let cookie = signed_in(&m, &p, now).await;
        request(&p, &m, &cookie, now).await; // warm the cache
        cookie
    });
    assert_eq!(m.cache().len(), 1, "the session is cached");
    c.bench_function("session_path/cache_hit", |b| {
        b.iter(|| rt.block_on(request(&p, &m, black_box(&cookie), now)))
    });

    // The same with the identity JWT (RS256), on its reuse path.
    let key = openssl::pkey::PKey::from_rsa(
        openssl::rsa::Rsa::generate(2048).unwrap_or_else(|e| panic!("{e}")),
    )
    .and_then(|k| k.private_key_to_pem_pkcs8())
    .unwrap_or_else(|e| panic!("{e}"));
    let jwt = ssogate::headers::jwt::JwtIssuer::new(
        "X-Ssogate-Jwt",
        "https://wiki.example.com",
        "wiki",
        Duration::from_secs(300),
        &key,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(request_with(&p, &m, &cookie, now, Some(&jwt))); // mint once
    c.bench_function("session_path/cache_hit_jwt", |b| {
        b.iter(|| rt.block_on(request_with(&p, &m, black_box(&cookie), now, Some(&jwt))))
    });

    // Cache miss: a real Redis, cache disabled.
    let url = std::env::var("SSOGATE_TEST_REDIS_URL").ok();
    let _redis = url.is_none().then(start_redis);
    let url = url.unwrap_or_else(|| format!("redis://127.0.0.1:{}/0", REDIS_PORT));
    let store = RedisStore::new(&url, None).unwrap_or_else(|e| panic!("{e}"));
    let m = SessionManager::new(
        Arc::new(store),
        Duration::from_secs(1800),
        Duration::from_secs(8 * 3600),
    )
    .with_cache(Duration::ZERO, 0);
    let cookie = rt.block_on(async {
        for _ in 0..50 {
            if m.store().ping().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        signed_in(&m, &p, now).await
    });
    c.bench_function("session_path_store/redis_miss", |b| {
        b.iter(|| rt.block_on(request(&p, &m, black_box(&cookie), now)))
    });
}

const REDIS_PORT: u16 = 26379;

struct Redis(std::process::Child);
impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Redis {
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &REDIS_PORT.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("redis-server: {e}"));
    Redis(child)
}

criterion_group!(benches, bench);
criterion_main!(benches);
