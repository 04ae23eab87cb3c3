//! A tenant-sized SCIM provisioning run against a running ssogate (benches/load/scim.sh),
//! in the order Entra's provisioning service sends it:
//!
//! 1. first cycle, users: for each user a match-before-create lookup
//!    (`GET /Users?filter=userName eq "…"`, 0 results) then `POST /Users`, CONC at a time;
//!    at 10k / 50k / 100k users, 1000 lookups of existing users are timed on their own
//!    (is the lookup flat as the directory grows?);
//! 2. first cycle, groups: `GET /Groups?filter=displayName eq "…"` then `POST /Groups`;
//! 3. first cycle, memberships: every user in about 20 groups, `PATCH /Groups/{id}` adding
//!    up to 100 members at a time;
//! 4. incremental cycle: 1 % of the users changed (lookup, then `PATCH` of displayName),
//!    1 % of the groups lose and gain a member;
//! 5. sign-in's group resolution: "which groups is this user in", as the gateway answers
//!    it at sign-in (`ScimService::groups_of_member` on the same Redis), for 1000 users.
//!
//! Prints requests/s, p50/p99 per request kind, cycle times and Redis memory per user.
//! Every answer is checked (a failed request stops the run).
//!
//! Usage: scim_load GATEWAY_URL TOKEN REDIS_URL USERS GROUPS CONC

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fail(msg: String) -> ! {
    eprintln!("scim_load: {msg}");
    std::process::exit(1)
}

/// Latencies of one request kind.
#[derive(Default)]
struct Kind {
    name: &'static str,
    micros: Vec<u64>,
}

impl Kind {
    fn new(name: &'static str) -> Self {
        Kind {
            name,
            micros: Vec::new(),
        }
    }

    fn line(&mut self, wall: Duration) -> String {
        self.micros.sort_unstable();
        let q = |p: f64| {
            self.micros
                .get(
                    ((self.micros.len() as f64 * p) as usize)
                        .min(self.micros.len().saturating_sub(1)),
                )
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        format!(
            "{:<34} {:>8} {:>10.0} {:>9.2} {:>9.2}",
            self.name,
            self.micros.len(),
            self.micros.len() as f64 / wall.as_secs_f64().max(1e-9),
            q(0.50),
            q(0.99)
        )
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// One request; its latency in µs and the JSON answer. Any unexpected status stops.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        want: u16,
    ) -> (u64, serde_json::Value) {
        let mut req = self
            .http
            .request(method, format!("{}/scim/v2{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let t = Instant::now();
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| fail(format!("{path}: {e}")));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let us = t.elapsed().as_micros() as u64;
        if status != want {
            fail(format!("{path}: {status} (wanted {want}): {text}"));
        }
        (us, serde_json::from_str(&text).unwrap_or_default())
    }
}

fn user_name(i: usize) -> String {
    format!("user{i:06}@contoso.example")
}

fn filter(f: &str) -> String {
    url::form_urlencoded::byte_serialize(f.as_bytes()).collect()
}

/// Run `n` jobs, `conc` at a time; the job gets its index and returns (kind, µs) pairs.
async fn run<F, Fut>(n: usize, conc: usize, job: F) -> (Vec<(usize, u64)>, Duration)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Vec<(usize, u64)>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..conc {
        let (job, next) = (job.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break out;
                }
                out.extend(job(i).await);
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap_or_default());
    }
    (all, started.elapsed())
}

async fn redis_memory(redis: &str) -> u64 {
    let client = redis::Client::open(redis).unwrap_or_else(|e| fail(e.to_string()));
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| fail(e.to_string()));
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(token), Some(redis), Some(users), Some(groups), Some(conc)) = (
        args.get(1).cloned(),
        args.get(2).cloned(),
        args.get(3).cloned(),
        args.get(4).and_then(|n| n.parse::<usize>().ok()),
        args.get(5).and_then(|n| n.parse::<usize>().ok()),
        args.get(6).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        fail("usage: scim_load GATEWAY_URL TOKEN REDIS_URL USERS GROUPS CONC".into())
    };
    if users == 0 || groups == 0 || conc == 0 {
        fail("USERS, GROUPS and CONC must be at least 1".into());
    }
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(conc)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|e| fail(e.to_string())),
        base,
        token,
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .http
        .get(format!("{}/scim/v2/ServiceProviderConfig", client.base))
        .header("authorization", format!("Bearer {}", client.token))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        if Instant::now() > deadline {
            fail("gateway did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mem_empty = redis_memory(&redis).await;
    let mut kinds = [
        Kind::new("user lookup (0 results)"),
        Kind::new("user create"),
        Kind::new("group lookup (0 results)"),
        Kind::new("group create"),
        Kind::new("group PATCH (+100 members)"),
        Kind::new("incremental: user lookup"),
        Kind::new("incremental: user PATCH"),
        Kind::new("incremental: group PATCH (-1 +1)"),
    ];
    let mut walls = [Duration::ZERO; 8];
    let mut checkpoints: Vec<(usize, Kind)> = Vec::new();

    // 1. Users, with lookup checkpoints.
    let ids = Arc::new(parking_lot::Mutex::new(vec![String::new(); users]));
    let first_cycle = Instant::now();
    let marks: Vec<usize> = [10_000, 50_000, 100_000, users]
        .into_iter()
        .filter(|m| *m <= users)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut done = 0;
    for mark in marks {
        let (c, ids2) = (client.clone(), ids.clone());
        let from = done;
        let (lat, wall) = run(mark - from, conc, move |k| {
            let (c, ids) = (c.clone(), ids2.clone());
            async move {
                let i = from + k;
                let name = user_name(i);
                let f = filter(&format!("userName eq \"{name}\""));
                let (a, v) = c
                    .call(reqwest::Method::GET, &format!("/Users?filter={f}"), None, 200)
                    .await;
                if v["totalResults"] != 0 {
                    fail(format!("{name} exists already"));
                }
                let body = serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                    "externalId": format!("{:08x}-0000-4000-8000-{i:012}", i),
                    "userName": name,
                    "active": true,
                    "displayName": format!("User {i}"),
                    "emails": [{"primary": true, "type": "work", "value": name}],
                    "meta": {"resourceType": "User"},
                    "name": {"formatted": format!("User {i}"), "familyName": format!("{i}"), "givenName": "User"},
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
                });
                let (b, v) = c.call(reqwest::Method::POST, "/Users", Some(body), 201).await;
                ids.lock()[i] = v["id"].as_str().unwrap_or_default().to_string();
                vec![(0, a), (1, b)]
            }
        })
        .await;
        for (k, us) in lat {
            kinds[k].micros.push(us);
        }
        walls[0] += wall;
        walls[1] += wall;
        done = mark;
        // Lookups of existing users at this size.
        let c = client.clone();
        let (lat, _) = run(1000, conc, move |k| {
            let c = c.clone();
            async move {
                let i = (k * 7919) % mark;
                let f = filter(&format!("userName eq \"{}\"", user_name(i)));
                let (us, v) = c
                    .call(
                        reqwest::Method::GET,
                        &format!("/Users?filter={f}"),
                        None,
                        200,
                    )
                    .await;
                if v["totalResults"] != 1 {
                    fail(format!("{} not found", user_name(i)));
                }
                vec![(0, us)]
            }
        })
        .await;
        let mut cp = Kind::new("");
        cp.micros = lat.into_iter().map(|(_, us)| us).collect();
        checkpoints.push((mark, cp));
    }
    let mem_users = redis_memory(&redis).await;

    // 2. Groups.
    let gids = Arc::new(parking_lot::Mutex::new(vec![String::new(); groups]));
    let (c, g2) = (client.clone(), gids.clone());
    let (lat, wall) = run(groups, conc, move |g| {
        let (c, gids) = (c.clone(), g2.clone());
        async move {
            let name = format!("Group {g:05}");
            let f = filter(&format!("displayName eq \"{name}\""));
            let (a, _) = c
                .call(
                    reqwest::Method::GET,
                    &format!("/Groups?excludedAttributes=members&filter={f}"),
                    None,
                    200,
                )
                .await;
            let body = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": format!("9a9a{g:04x}-0000-4000-8000-{g:012}"),
                "displayName": name,
                "meta": {"resourceType": "Group"}
            });
            let (b, v) = c.call(reqwest::Method::POST, "/Groups", Some(body), 201).await;
            gids.lock()[g] = v["id"].as_str().unwrap_or_default().to_string();
            vec![(2, a), (3, b)]
        }
    })
    .await;
    for (k, us) in lat {
        kinds[k].micros.push(us);
    }
    walls[2] = wall;
    walls[3] = wall;

    // 3. Memberships: user i in groups (i * 7 + k * 251) % groups, k < 20; per group,
    // PATCHes of up to 100 members.
    let per_user = 20.min(groups);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups];
    for i in 0..users {
        for k in 0..per_user {
            members[(i * 7 + k * 251) % groups].push(i);
        }
    }
    let batches: Vec<(usize, Vec<usize>)> = members
        .into_iter()
        .enumerate()
        .flat_map(|(g, m)| m.chunks(100).map(|c| (g, c.to_vec())).collect::<Vec<_>>())
        .collect();
    let memberships: usize = batches.iter().map(|(_, m)| m.len()).sum();
    let batches = Arc::new(batches);
    let (c, b2, i2, g2) = (client.clone(), batches.clone(), ids.clone(), gids.clone());
    let (lat, wall) = run(batches.len(), conc, move |k| {
        let (c, batches, ids, gids) = (c.clone(), b2.clone(), i2.clone(), g2.clone());
        async move {
            let (g, who) = &batches[k];
            let values: Vec<serde_json::Value> = {
                let ids = ids.lock();
                who.iter()
                    .map(|i| serde_json::json!({"value": ids[*i]}))
                    .collect()
            };
            let gid = gids.lock()[*g].clone();
            let body = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Add", "path": "members", "value": values}]
            });
            let (us, _) = c
                .call(
                    reqwest::Method::PATCH,
                    &format!("/Groups/{gid}"),
                    Some(body),
                    204,
                )
                .await;
            vec![(4, us)]
        }
    })
    .await;
    for (k, us) in lat {
        kinds[k].micros.push(us);
    }
    walls[4] = wall;
    let first_cycle = first_cycle.elapsed();
    let mem_all = redis_memory(&redis).await;

    // 4. Incremental cycle: 1 % of users and groups.
    let incremental = Instant::now();
    let changed = (users / 100).max(1);
    let (c, i2) = (client.clone(), ids.clone());
    let (lat, wall) = run(changed, conc, move |k| {
        let (c, ids) = (c.clone(), i2.clone());
        async move {
            let i = (k * 101) % users;
            let f = filter(&format!("userName eq \"{}\"", user_name(i)));
            let (a, _) = c
                .call(reqwest::Method::GET, &format!("/Users?filter={f}"), None, 200)
                .await;
            let id = ids.lock()[i].clone();
            let body = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "displayName", "value": format!("User {i} (changed)")}]
            });
            let (b, _) = c
                .call(reqwest::Method::PATCH, &format!("/Users/{id}"), Some(body), 200)
                .await;
            vec![(5, a), (6, b)]
        }
    })
    .await;
    for (k, us) in lat {
        kinds[k].micros.push(us);
    }
    walls[5] = wall;
    walls[6] = wall;
    let (c, i2, g2) = (client.clone(), ids.clone(), gids.clone());
    let (lat, wall) = run((groups / 100).max(1), conc, move |k| {
        let (c, ids, gids) = (c.clone(), i2.clone(), g2.clone());
        async move {
            let g = (k * 37) % groups;
            let gid = gids.lock()[g].clone();
            // Member g of the first cycle leaves, the user with the next index joins.
            let first = (0..users)
                .find(|i| (0..per_user).any(|k| (i * 7 + k * 251) % groups == g))
                .unwrap_or(0);
            let (out, inn) = {
                let ids = ids.lock();
                (ids[first].clone(), ids[(first + 1) % users].clone())
            };
            let body = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "Remove", "path": "members", "value": [{"value": out}]},
                    {"op": "Add", "path": "members", "value": [{"value": inn}]}
                ]
            });
            let (us, _) = c
                .call(
                    reqwest::Method::PATCH,
                    &format!("/Groups/{gid}"),
                    Some(body),
                    204,
                )
                .await;
            vec![(7, us)]
        }
    })
    .await;
    for (k, us) in lat {
        kinds[k].micros.push(us);
    }
    walls[7] = wall;
    let incremental = incremental.elapsed();

    // 5. Sign-in's group resolution, in-process on the same Redis.
    let store: Arc<dyn ssogate::session::SessionStore> = Arc::new(
        ssogate::session::RedisStore::new(&redis, None).unwrap_or_else(|e| fail(e.to_string())),
    );
    let directory = ssogate::scim::ScimService::new(store, Vec::new());
    let mut resolve = Kind::new("sign-in: groups of a user");
    let mut seen = 0;
    for k in 0..1000 {
        let i = (k * 7919) % users;
        let id = ids.lock()[i].clone();
        let t = Instant::now();
        let gs = directory
            .group_refs_of_member(&id)
            .await
            .unwrap_or_else(|e| fail(e.to_string()));
        resolve.micros.push(t.elapsed().as_micros() as u64);
        seen += gs.len();
    }

    println!(
        "SCIM at tenant size: {users} users, {groups} groups, {memberships} memberships, {conc} concurrent requests"
    );
    println!(
        "{:<34} {:>8} {:>10} {:>9} {:>9}",
        "request", "count", "req/s", "p50 ms", "p99 ms"
    );
    for (k, w) in kinds.iter_mut().zip(walls) {
        println!("{}", k.line(w));
    }
    println!("lookups of existing users (userName eq), 1000 each, as the directory grows:");
    for (size, k) in &mut checkpoints {
        k.name = "";
        let line = k.line(Duration::from_secs(1));
        let cols: Vec<&str> = line.split_whitespace().collect();
        println!(
            "  at {size:>7} users: p50 {} ms, p99 {} ms",
            cols.get(2).unwrap_or(&"?"),
            cols.get(3).unwrap_or(&"?")
        );
    }
    println!("{}", resolve.line(Duration::from_secs(1)));
    println!("  ({:.1} groups per user on average)", seen as f64 / 1000.0);
    println!(
        "first cycle: {:.1} s ({:.1} min); incremental cycle (1 %): {:.1} s",
        first_cycle.as_secs_f64(),
        first_cycle.as_secs_f64() / 60.0,
        incremental.as_secs_f64()
    );
    println!(
        "Redis memory: {:.0} bytes per user (users only), {:.0} bytes per user with groups and memberships",
        (mem_users.saturating_sub(mem_empty)) as f64 / users as f64,
        (mem_all.saturating_sub(mem_empty)) as f64 / users as f64
    );
}
