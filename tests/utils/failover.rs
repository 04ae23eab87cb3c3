//! The failover scenario shared by the Sentinel and Cluster tests: two gateway replicas'
//! session managers (stores, caches, revocation feeds) under a steady load of session
//! reads and new sign-ins while a primary is killed; prints and checks the figures
//! (failed operations and for how long, sessions lost, a revocation issued during the
//! failover reaching both caches, recovery).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssogate::identity::Identity;
use ssogate::session::{SessionId, SessionManager};

pub const T0: i64 = 1_700_000_000;

pub fn identity(name: &str) -> Identity {
    Identity {
        name_id: name.into(),
        ..Default::default()
    }
}

/// A gateway replica's session manager on `store` (30 min idle, 8 h absolute), its
/// revocation feed followed in the background.
pub fn manager(store: Arc<ssogate::session::RedisStore>) -> Arc<SessionManager> {
    let m = Arc::new(SessionManager::new(
        store,
        Duration::from_secs(1800),
        Duration::from_secs(8 * 3600),
    ));
    let follower = m.clone();
    tokio::spawn(async move { follower.follow_revocations().await });
    m
}

/// Poll `cond` every 20 ms for up to `limit`; the time it took, or `None`.
pub async fn wait_for<F, Fut>(limit: Duration, mut cond: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Failures seen by the load, each with when its operation started (an operation begun
/// during the outage can fail after the store is back: that is the outage's failure).
#[derive(Default)]
struct Failures {
    times: Mutex<Vec<Instant>>,
}

impl Failures {
    fn record(&self, started: Instant) {
        self.times.lock().unwrap().push(started);
    }
    fn count(&self) -> usize {
        self.times.lock().unwrap().len()
    }
    /// From the first failure to the last.
    fn window(&self) -> Duration {
        let t = self.times.lock().unwrap();
        match (t.first(), t.last()) {
            (Some(a), Some(b)) => b.duration_since(*a),
            _ => Duration::ZERO,
        }
    }
}

/// `before`: sessions made through `a` and read through `b` (so cached there), already on
/// the replicas; `before[7]` is revoked through `b` during the failover. `kill` kills the
/// primary; `promoted` says when a replica has taken over.
pub async fn run(
    name: &str,
    a: &Arc<SessionManager>,
    b: &Arc<SessionManager>,
    before: &[SessionId],
    kill: impl FnOnce(),
    promoted: impl Fn() -> bool,
) {
    let (a, b) = (a.clone(), b.clone());
    // Steady load: both replicas read old sessions, a signs new users in.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Failures::default());
    let ops = Arc::new(AtomicU64::new(0));
    let signed_in = Arc::new(Mutex::new(Vec::<(SessionId, Instant)>::new()));
    let mut load = Vec::new();
    for (n, m) in [a.clone(), b.clone()].into_iter().enumerate() {
        let (stop, failures, ops, signed_in) = (
            stop.clone(),
            failures.clone(),
            ops.clone(),
            signed_in.clone(),
        );
        // Every session but the one revoked below.
        let ids: Vec<SessionId> = before.iter().skip(8).cloned().collect();
        load.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                let ok = match m.load(&ids[i % ids.len()], "app", T0).await {
                    Ok(Some(_)) => true,
                    Ok(None) => panic!("a session from before the failover is gone"),
                    Err(_) => false,
                };
                let ok = ok
                    && if n == 0 {
                        let who = identity(&format!("new{i}@example.com"));
                        match m.create("app", who, T0, None).await {
                            Ok((id, _)) => {
                                signed_in.lock().unwrap().push((id, Instant::now()));
                                true
                            }
                            Err(_) => false,
                        }
                    } else {
                        true
                    };
                ops.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failures.record(started);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(failures.count(), 0, "no failure before the failover");

    // Kill the primary.
    let killed_at = Instant::now();
    kill();

    // A revocation issued during the failover, through b: retried until the store takes
    // it (it cannot while there is no primary).
    let revoked = before[7].clone();
    let revoke_took = wait_for(Duration::from_secs(30), || async {
        b.destroy(&revoked).await.is_ok()
    })
    .await
    .expect("the revocation is accepted once a replica is promoted");
    let promoted = wait_for(Duration::from_secs(30), || async { promoted() }).await;
    assert!(promoted.is_some(), "{name}: a replica was promoted");

    // Both managers work on the new primary: sign-ins through both (16 each, so that on a
    // Cluster their random session IDs reach every primary's slots), feeds back.
    let recovered_in = wait_for(Duration::from_secs(30), || async {
        for k in 0..16 {
            let who = identity(&format!("after{k}@example.com"));
            if a.create("app", who.clone(), T0, None).await.is_err()
                || b.create("app", who, T0, None).await.is_err()
            {
                return false;
            }
        }
        a.feed_live() && b.feed_live()
    })
    .await;
    assert!(
        recovered_in.is_some(),
        "{name}: both replicas sign in after the promotion, feeds back"
    );
    // From the kill.
    let recovered = killed_at.elapsed();
    // Let the load run on the new primary for a moment, then stop it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failed_since_recovery = failures
        .times
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.duration_since(killed_at) > recovered + Duration::from_millis(100))
        .count();
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }

    // The revoked session is gone for both replicas (a's cache included).
    let revocation_seen = wait_for(Duration::from_secs(5), || async {
        matches!(a.load(&revoked, "app", T0).await, Ok(None))
            && matches!(b.load(&revoked, "app", T0).await, Ok(None))
    })
    .await;
    // Every other session from before the kill still works, through both replicas.
    let mut lost = 0;
    for id in before.iter().filter(|id| **id != revoked) {
        for m in [&a, &b] {
            if !matches!(m.load(id, "app", T0).await, Ok(Some(_))) {
                lost += 1;
            }
        }
    }
    // Sign-ins during the load: those made well before the kill must all survive; the
    // last few before it may not have reached the replica (asynchronous replication).
    let made = signed_in.lock().unwrap().clone();
    let (mut lost_new, mut lost_new_late) = (0, 0);
    for (id, at) in &made {
        if !matches!(a.load(id, "app", T0).await, Ok(Some(_))) {
            if *at + Duration::from_millis(200) < killed_at {
                lost_new += 1;
            } else {
                lost_new_late += 1;
            }
        }
    }

    println!(
        "{name}: {} operations, {} failed within {:?}; revocation accepted after {:?}, \
         a replica promoted and both replicas signing in again {:?} after the kill; sessions lost: {lost} of {} from before, \
         {lost_new} of {} signed in under load more than 200 ms before the kill \
         ({lost_new_late} lost in its last 200 ms); revocation reached both caches: {}",
        ops.load(Ordering::Relaxed),
        failures.count(),
        failures.window(),
        revoke_took,
        recovered,
        2 * (before.len() - 1),
        made.len(),
        revocation_seen.is_some(),
    );
    assert_eq!(lost, 0, "sessions from before the failover survive it");
    assert_eq!(lost_new, 0, "replicated sign-ins survive the failover");
    assert!(
        revocation_seen.is_some(),
        "the revocation reached a's cache"
    );
    assert_eq!(failed_since_recovery, 0, "no failure once recovered");
    assert!(
        failures.window() < Duration::from_secs(15),
        "failures confined to the failover: {:?}",
        failures.window()
    );
}

/// Two gateway processes on one store, `cookie` a session both serve: `kill` a primary,
/// then, until new sign-ins start and `/readyz` is green on both (30 s at most), the
/// signed-in user browses on both every 50 ms. Prints the figures; checks that the user
/// saw no error (the session was read just before, within `cache_ttl`), that both came
/// back, and that neither process restarted.
pub async fn gateways_through(
    name: &str,
    gws: [&super::gateway::Gateway; 2],
    cookie: &str,
    kill: impl FnOnce(),
) {
    use super::gateway::Gateway;
    use super::http::client;
    let [gw, gw2] = gws;
    let cookie = cookie.to_string();
    let pids = (gw.pid(), gw2.pid());
    let page = |gw: &Gateway, cookie: String| {
        let url = gw.url("/page");
        async move {
            client()
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    // Browse until both hold the session in their cache (once their feeds are live).
    async fn cached(g: &Gateway) -> bool {
        g.metrics()
            .await
            .lines()
            .any(|l| l == "ssogate_session_cache_entries 1")
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(page(gw, cookie.clone()).await, 200);
        assert_eq!(page(gw2, cookie.clone()).await, 200);
        if cached(gw).await && cached(gw2).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: the gateways never cached the session"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let killed = Instant::now();
    kill();
    // Until new sign-ins can start again on both and both /readyz are green: the
    // signed-in user keeps browsing on both (every 50 ms) and must see no error (the
    // session was read just before, well within cache_ttl, 10 s).
    let (mut seen, mut errors) = (0, Vec::new());
    let mut sign_in_back = [None, None];
    let mut ready_back = [None, None];
    while killed.elapsed() < Duration::from_secs(30)
        && (sign_in_back.iter().any(Option::is_none) || ready_back.iter().any(Option::is_none))
    {
        for (i, g) in [gw, gw2].into_iter().enumerate() {
            let status = page(g, cookie.clone()).await;
            seen += 1;
            if status != 200 {
                errors.push(status);
            }
            if sign_in_back[i].is_none() {
                let r = client()
                    .get(g.url("/page"))
                    .header("accept", "text/html")
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                if r == 302 {
                    sign_in_back[i] = Some(killed.elapsed());
                }
            }
            if ready_back[i].is_none()
                && client()
                    .get(g.admin_url("/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            {
                ready_back[i] = Some(killed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{name}: the signed-in user's {seen} requests \
         meanwhile had {} errors; new sign-ins start again after {sign_in_back:?}, /readyz \
         200 after {ready_back:?}",
        errors.len()
    );
    assert!(
        sign_in_back.iter().chain(&ready_back).all(Option::is_some),
        "{}\n{}",
        gw.log(),
        gw2.log()
    );
    assert_eq!(
        errors,
        Vec::<u16>::new(),
        "{name}: the signed-in user saw errors\n{}\n{}",
        gw.log(),
        gw2.log()
    );
    for g in [gw, gw2] {
        assert_eq!(page(g, cookie.clone()).await, 200);
    }
    // Neither restarted.
    assert_eq!((gw.pid(), gw2.pid()), pids);
    for g in [gw, gw2] {
        let alive = std::process::Command::new("kill")
            .args(["-0", &g.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(alive, "a gateway exited:\n{}", g.log());
    }
}
