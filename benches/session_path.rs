//! Guards what every authenticated request pays before it is proxied, on a session-cache
//! hit, by calling the real access layer (`gateway::access::admit`) on a gateway built
//! from a config: target parse and canonical check, app by host, cookie parse, session
//! lookup (SessionManager with a live revocation feed), route match, the authorization
//! decision; then building the identity headers as the proxy does. The target (issue
//! "Performance") is a median at or under 2 µs. `session_path/cache_hit_jwt` adds the
//! identity JWT on its reuse path (a token minted once per session, then a cache
//! lookup), as `[app.jwt]` apps pay it.
//!
//! `session_path_store` is the same path on a cache miss against a real Redis on
//! loopback (`SSOGATE_TEST_REDIS_URL`, else a redis-server started here).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ssogate::gateway::access::{admit, Outcome, RequestFacts};
use ssogate::gateway::Gateway;
use ssogate::identity::{claims, Identity};
use std::sync::Arc;
use std::time::Duration;

/// The binary's allocator (src/main.rs): the bench measures what the gateway runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// A gateway from a config: one app with four routes and four identity headers (20
/// groups), and the same app with an identity JWT on another host.
fn gateway(store: &str, cache_ttl: &str, dir: &std::path::Path) -> Gateway {
    let idp = ssogate::saml::DevIdp::generate("https://idp.example.com/")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("idp.pem"), idp.certificate_pem()).unwrap_or_else(|e| panic!("{e}"));
    let key = openssl::pkey::PKey::from_rsa(
        openssl::rsa::Rsa::generate(2048).unwrap_or_else(|e| panic!("{e}")),
    )
    .and_then(|k| k.private_key_to_pem_pkcs8())
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("jwt.pem"), key).unwrap_or_else(|e| panic!("{e}"));
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.join("jwt.pem"), std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let app = |name: &str, host: &str, jwt: &str| {
        format!(
            r#"
[[app]]
name = "{name}"
hosts = ["{host}"]
upstream = "http://127.0.0.1:3000"
[app.sp]
entity_id = "https://{host}/saml"
acs_url = "https://{host}/saml/acs"
[app.idp]
entity_id = "https://idp.example.com/"
sso_url = "https://idp.example.com/sso"
certificate_file = "idp.pem"
[app.headers]
"X-Remote-User" = "name_id"
"X-Remote-Email" = "email"
"X-Remote-Name" = "display_name"
"X-Remote-Groups" = "groups"
[app.groups]
admins = "e7f3c0ba-0000-4000-8000-000000000019"
[[app.route]]
path = "/public/"
public = true
[[app.route]]
path = "/admin/"
allow_groups = ["admins"]
[[app.route]]
path = "/api/"
[[app.route]]
path = "/reports/"
{jwt}
"#
        )
    };
    let text = format!(
        "[listen]\npublic = \"127.0.0.1:8080\"\n[session]\n{store}\ncache_ttl = \"{cache_ttl}\"\n{}{}",
        app("wiki", "wiki.example.com", ""),
        app("wiki-jwt", "jwt.example.com", "[app.jwt]\nkey_file = \"jwt.pem\""),
    );
    let env = std::collections::HashMap::<String, String>::new();
    let config = ssogate::config::from_str(&text, dir, &env).unwrap_or_else(|e| panic!("{e}"));
    Gateway::build(&config, Arc::new(ssogate::saml::SystemClock)).unwrap_or_else(|e| panic!("{e}"))
}

/// The request headers of a signed-in browser on `host`.
async fn signed_in(gw: &Gateway, app: &str, host: &str) -> http::HeaderMap {
    let now = chrono::Utc::now().timestamp();
    let (id, _) = gw
        .sessions
        .create(app, identity(), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let set = gw.cookie.set_cookie(&id);
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::HOST,
        host.parse().unwrap_or_else(|e| panic!("{e}")),
    );
    h.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("text/html,application/xhtml+xml"),
    );
    h.insert(
        http::header::COOKIE,
        format!(
            "theme=dark; {}; _ga=GA1.2.3",
            set.split(';').next().unwrap_or_default()
        )
        .parse()
        .unwrap_or_else(|e| panic!("{e}")),
    );
    h
}

/// One request's worth of work after the headers are read: the access decision, then
/// the identity headers (and JWT) the proxy inserts.
async fn request(gw: &Gateway, headers: &http::HeaderMap) -> usize {
    let facts = RequestFacts {
        method: &http::Method::GET,
        target: b"/admin/settings/users?page=2",
        headers,
        authority: None,
        peer: None,
    };
    let Outcome::Forward(a) = admit(gw, &facts).await else {
        panic!("not admitted")
    };
    let Some(user) = &a.user else {
        panic!("no identity")
    };
    let n = user.headers(&a.app).len();
    match (&a.app.jwt, &user.jwt_key) {
        (Some(j), Some(key)) => {
            let t = j
                .token(key, user.identity(), chrono::Utc::now().timestamp())
                .unwrap_or_else(|e| panic!("{e}"));
            n + t.len()
        }
        _ => n,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    // Cache hit: memory store behind the manager, revocation feed live.
    let gw = Arc::new(gateway("store = \"memory\"", "10s", dir.path()));
    let follower = gw.clone();
    rt.spawn(async move { follower.sessions.follow_revocations().await });
    let (plain, jwt) = rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let plain = signed_in(&gw, "wiki", "wiki.example.com").await;
        let jwt = signed_in(&gw, "wiki-jwt", "jwt.example.com").await;
        request(&gw, &plain).await; // warm the cache
        request(&gw, &jwt).await; // and mint the token once
        (plain, jwt)
    });
    assert_eq!(gw.sessions.cache().len(), 2, "the sessions are cached");
    c.bench_function("session_path/cache_hit", |b| {
        b.iter(|| rt.block_on(request(&gw, black_box(&plain))))
    });
    c.bench_function("session_path/cache_hit_jwt", |b| {
        b.iter(|| rt.block_on(request(&gw, black_box(&jwt))))
    });

    // Cache miss: a real Redis, cache disabled.
    let url = std::env::var("SSOGATE_TEST_REDIS_URL").ok();
    let _redis = url.is_none().then(start_redis);
    let url = url.unwrap_or_else(|| format!("redis://127.0.0.1:{}/0", REDIS_PORT));
    let gw = gateway(
        &format!("store = \"redis\"\nredis_url = \"{url}\""),
        "0s",
        dir.path(),
    );
    let headers = rt.block_on(async {
        for _ in 0..50 {
            if gw.sessions.store().ping().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        signed_in(&gw, "wiki", "wiki.example.com").await
    });
    c.bench_function("session_path_store/redis_miss", |b| {
        b.iter(|| rt.block_on(request(&gw, black_box(&headers))))
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
