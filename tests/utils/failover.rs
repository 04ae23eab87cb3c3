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

/// Failures seen by the load, with when they happened.
#[derive(Default)]
struct Failures {
    times: Mutex<Vec<Instant>>,
}

impl Failures {
    fn record(&self) {
        self.times.lock().unwrap().push(Instant::now());
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
                    failures.record();
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

    // Both managers work on the new primary.
    let recovered_in = wait_for(Duration::from_secs(30), || async {
        let who = identity("after@example.com");
        a.create("app", who.clone(), T0, None).await.is_ok()
            && b.create("app", who, T0, None).await.is_ok()
            && a.feed_live()
            && b.feed_live()
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
