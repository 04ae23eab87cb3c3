//! One conformance suite for every `SessionStore` backend (like oauth2-proxy's
//! `RunSessionStoreTests`): the in-memory store, and the Redis store against a real
//! redis-server (`SSOGATE_TEST_REDIS_URL`, or one started here on a free port).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step should panic with its message"
)]

mod utils;

use utils::redis as test_redis;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ssogate::identity::Identity;
use ssogate::session::{
    MemoryStore, PendingLogin, RedisStore, SessionError, SessionId, SessionManager, SessionRecord,
    SessionStore,
};
use test_redis::TestRedis;

const T0: i64 = 1_700_000_000;
const LONG: Duration = Duration::from_secs(600);

/// Backend-specific abilities the generic suite needs.
#[async_trait::async_trait]
trait Backend: Sync {
    /// Overwrite the stored session `key` with undecodable bytes; false when the backend
    /// cannot hold such a record (typed in-memory storage).
    async fn corrupt_session(&self, key: &str) -> bool;
}

fn identity(name_id: &str) -> Identity {
    let mut id = Identity {
        name_id: name_id.into(),
        session_index: Some("_idx".into()),
        ..Default::default()
    };
    id.attributes
        .insert("groups".into(), vec!["g1".into(), "g2".into()]);
    id
}

fn record(app: &str, name_id: &str) -> SessionRecord {
    SessionRecord {
        app: app.into(),
        identity: identity(name_id),
        created_at: T0,
        last_seen: T0,
        expires_at: T0 + 3600,
        headers: Default::default(),
    }
}

fn key() -> String {
    SessionId::generate().store_key()
}

fn rid() -> String {
    format!("id-{}", key())
}

fn set(keys: Vec<String>) -> BTreeSet<String> {
    keys.into_iter().collect()
}

async fn run_conformance(store: Arc<dyn SessionStore>, backend: &dyn Backend) {
    store.ping().await.unwrap();
    sessions_crud(&store).await;
    user_index(&store).await;
    pending_once_only(&store).await;
    assertion_replay(&store).await;
    event_counts(&store).await;
    ttl_expiry(&store).await;
    corrupt_record(&store, backend).await;
    revocation_feed(&store).await;
    documents(&store).await;
    member_lists(&store).await;
}

/// A document's members live beside it: added and removed in the write's atomic step
/// (counting only real changes), listed under the member index, read without the
/// document, refused with the document on a stale write, and gone with it on delete.
async fn member_lists(store: &Arc<dyn SessionStore>) {
    use ssogate::session::{DocIndex, DocWrite, MemberChange};
    let coll = format!("test-{}", rid());
    let (g, h) = (rid(), rid());
    let none = DocIndex::default();
    let change = |add: &[(&str, &str)], remove: &[&str]| MemberChange {
        index: "member".into(),
        add: add
            .iter()
            .map(|(m, a)| (m.to_string(), a.to_string()))
            .collect(),
        remove: remove.iter().map(|m| m.to_string()).collect(),
    };
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let u = store
        .doc_update(
            &coll,
            &g,
            b"G1",
            &none,
            &none,
            None,
            &change(&[("u1", ""), ("u2", r#"{"display":"U 2"}"#)], &[]),
        )
        .await
        .unwrap();
    assert_eq!((u.write, u.added, u.removed), (DocWrite::Written, 2, 0));
    store
        .doc_update(
            &coll,
            &h,
            b"H1",
            &none,
            &none,
            None,
            &change(&[("u1", "")], &[]),
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(store.doc_members(&coll, &g).await.unwrap()),
        pairs(&[("u1", ""), ("u2", r#"{"display":"U 2"}"#)])
    );
    let mut of_u1 = store.doc_find_all(&coll, "member", "u1").await.unwrap();
    of_u1.sort();
    let mut gh = vec![g.clone(), h.clone()];
    gh.sort();
    assert_eq!(of_u1, gh);
    // One in, one out; a member already there and one never there count for nothing.
    let u = store
        .doc_update(
            &coll,
            &g,
            b"G2",
            &none,
            &none,
            Some(b"G1"),
            &change(&[("u3", ""), ("u1", "")], &["u2", "nobody"]),
        )
        .await
        .unwrap();
    assert_eq!((u.write, u.added, u.removed), (DocWrite::Written, 1, 1));
    assert_eq!(
        sorted(store.doc_members(&coll, &g).await.unwrap()),
        pairs(&[("u1", ""), ("u3", "")])
    );
    assert!(store
        .doc_find_all(&coll, "member", "u2")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.doc_find_all(&coll, "member", "u3").await.unwrap(),
        vec![g.clone()]
    );
    // A stale write changes no member either.
    let u = store
        .doc_update(
            &coll,
            &g,
            b"G3",
            &none,
            &none,
            Some(b"G1"),
            &change(&[("u4", "")], &["u1"]),
        )
        .await
        .unwrap();
    assert_eq!((u.write, u.added, u.removed), (DocWrite::Stale, 0, 0));
    assert_eq!(
        sorted(store.doc_members(&coll, &g).await.unwrap()),
        pairs(&[("u1", ""), ("u3", "")])
    );
    assert!(store
        .doc_find_all(&coll, "member", "u4")
        .await
        .unwrap()
        .is_empty());
    // Several lists in one call, in order (an unknown document has none).
    let many = store
        .doc_members_many(&coll, &[h.clone(), rid(), g.clone()])
        .await
        .unwrap();
    assert_eq!(many.len(), 3);
    assert_eq!(many[0], pairs(&[("u1", "")]));
    assert!(many[1].is_empty());
    assert_eq!(sorted(many[2].clone()), pairs(&[("u1", ""), ("u3", "")]));
    assert_eq!(
        store
            .doc_member_counts(&coll, &[h.clone(), rid(), g.clone()])
            .await
            .unwrap(),
        vec![1, 0, 2],
        "counts without the lists"
    );
    // Deleting the document deletes its list, and (with the entries the caller names)
    // takes it off the member index.
    let claimed = DocIndex {
        multi: vec![
            ("member".to_string(), "u1".to_string()),
            ("member".to_string(), "u3".to_string()),
        ],
        ..DocIndex::default()
    };
    assert!(store.doc_delete(&coll, &g, &claimed).await.unwrap());
    assert!(store.doc_members(&coll, &g).await.unwrap().is_empty());
    assert_eq!(
        store.doc_find_all(&coll, "member", "u1").await.unwrap(),
        vec![h.clone()]
    );
    assert!(store
        .doc_find_all(&coll, "member", "u3")
        .await
        .unwrap()
        .is_empty());
}

/// Documents: unique index entries are claimed atomically and freed on rename and
/// delete; multi-valued entries list every document that claims them; a compare-and-set
/// write fails on a stale read; pages come in creation order without loading the rest.
async fn documents(store: &Arc<dyn SessionStore>) {
    use ssogate::session::{DocIndex, DocWrite};
    let coll = format!("test-{}", rid());
    let (a, b) = (rid(), rid());
    let ix = |name: &str, groups: &[&str]| DocIndex {
        unique: vec![("userName".to_string(), name.to_string())],
        multi: groups
            .iter()
            .map(|g| ("member".to_string(), g.to_string()))
            .collect(),
        summary: Some(format!("about {name}")),
    };
    let none = DocIndex::default();
    assert_eq!(
        store
            .doc_put(&coll, &a, b"A1", &ix("alice", &["g1", "g2"]), &none, None)
            .await
            .unwrap(),
        DocWrite::Written
    );
    assert_eq!(
        store
            .doc_put(&coll, &b, b"B1", &ix("alice", &["g1"]), &none, None)
            .await
            .unwrap(),
        DocWrite::Conflict
    );
    assert_eq!(store.doc_get(&coll, &b).await.unwrap(), None);
    assert_eq!(
        store.doc_find_all(&coll, "member", "g1").await.unwrap(),
        vec![a.clone()],
        "a conflicting write claims nothing"
    );
    assert_eq!(
        store.doc_find(&coll, "userName", "alice").await.unwrap(),
        Some(a.clone())
    );
    // Rename frees the old key; leaving g2 takes a off its list.
    assert_eq!(
        store
            .doc_put(
                &coll,
                &a,
                b"A2",
                &ix("alicia", &["g1"]),
                &ix("alice", &["g1", "g2"]),
                Some(b"A1")
            )
            .await
            .unwrap(),
        DocWrite::Written
    );
    assert_eq!(
        store.doc_find(&coll, "userName", "alice").await.unwrap(),
        None
    );
    assert!(store
        .doc_find_all(&coll, "member", "g2")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .doc_put(&coll, &b, b"B1", &ix("alice", &["g1"]), &none, None)
            .await
            .unwrap(),
        DocWrite::Written
    );
    let mut g1 = store.doc_find_all(&coll, "member", "g1").await.unwrap();
    g1.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(g1, both);
    // A write based on a stale read changes nothing.
    assert_eq!(
        store
            .doc_put(
                &coll,
                &a,
                b"A3",
                &ix("alicia", &[]),
                &ix("alicia", &["g1"]),
                Some(b"A1")
            )
            .await
            .unwrap(),
        DocWrite::Stale
    );
    assert_eq!(
        store.doc_get(&coll, &a).await.unwrap(),
        Some(b"A2".to_vec())
    );
    // Summaries follow the latest write, without the documents; by index in one step.
    let mut by_g1 = store
        .doc_find_summaries(&coll, "member", "g1")
        .await
        .unwrap();
    by_g1.sort();
    assert_eq!(
        by_g1,
        vec!["about alice".to_string(), "about alicia".to_string()]
    );
    assert!(store
        .doc_find_summaries(&coll, "member", "nobody")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .doc_summaries(&coll, &[a.clone(), rid(), b.clone()])
            .await
            .unwrap(),
        vec![
            Some("about alicia".into()),
            None,
            Some("about alice".into())
        ]
    );
    // Creation order, counted and paged; several at once.
    assert_eq!(store.doc_count(&coll).await.unwrap(), 2);
    let page = store.doc_page(&coll, 0, 10).await.unwrap();
    assert_eq!(
        page,
        vec![(a.clone(), b"A2".to_vec()), (b.clone(), b"B1".to_vec())]
    );
    assert_eq!(
        store.doc_page(&coll, 1, 1).await.unwrap(),
        vec![(b.clone(), b"B1".to_vec())]
    );
    assert!(store.doc_page(&coll, 2, 5).await.unwrap().is_empty());
    assert_eq!(
        store
            .doc_get_many(&coll, &[b.clone(), rid(), a.clone()])
            .await
            .unwrap(),
        vec![Some(b"B1".to_vec()), None, Some(b"A2".to_vec())]
    );
    let mut all = store.doc_list(&coll).await.unwrap();
    all.sort();
    assert_eq!(all, vec![b"A2".to_vec(), b"B1".to_vec()]);
    // Delete: the document and its entries.
    assert!(store
        .doc_delete(&coll, &a, &ix("alicia", &["g1"]))
        .await
        .unwrap());
    assert!(!store
        .doc_delete(&coll, &a, &ix("alicia", &["g1"]))
        .await
        .unwrap());
    assert_eq!(
        store.doc_find(&coll, "userName", "alicia").await.unwrap(),
        None
    );
    assert_eq!(
        store.doc_find_all(&coll, "member", "g1").await.unwrap(),
        vec![b.clone()]
    );
    assert_eq!(store.doc_list(&coll).await.unwrap(), vec![b"B1".to_vec()]);
    assert_eq!(store.doc_count(&coll).await.unwrap(), 1);
    assert_eq!(
        store
            .doc_summaries(&coll, std::slice::from_ref(&a))
            .await
            .unwrap(),
        vec![None]
    );
    // Rebuilt indexes: exactly the entries given.
    assert_eq!(
        store
            .doc_reindex(&coll, &[(b.clone(), ix("bob", &["g9"]))])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store.doc_find(&coll, "userName", "alice").await.unwrap(),
        None
    );
    assert_eq!(
        store.doc_find(&coll, "userName", "bob").await.unwrap(),
        Some(b.clone())
    );
    assert!(store
        .doc_find_all(&coll, "member", "g1")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.doc_find_all(&coll, "member", "g9").await.unwrap(),
        vec![b.clone()]
    );
    assert_eq!(
        store.doc_summaries(&coll, &[b]).await.unwrap(),
        vec![Some("about bob".into())]
    );
}

/// Every deletion, single or per user, is announced on the revocation feed.
async fn revocation_feed(store: &Arc<dyn SessionStore>) {
    use ssogate::session::Revocation;
    let seen: Arc<parking_lot::Mutex<Vec<Revocation>>> = Arc::default();
    let follower = {
        let (store, seen) = (store.clone(), seen.clone());
        tokio::spawn(async move {
            let on_event = |ev: Revocation| seen.lock().push(ev);
            store.follow_revocations(&on_event).await
        })
    };
    let wait_for = |want: Revocation| {
        let seen = seen.clone();
        async move {
            for _ in 0..200 {
                if seen.lock().contains(&want) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{want:?} not announced; saw {:?}", seen.lock());
        }
    };
    wait_for(Revocation::Subscribed).await;
    let (k1, k2, k3) = (key(), key(), key());
    let name = format!("revoked-{}@example.com", rid());
    store
        .put_session(&k1, &record("app", "single@example.com"), LONG)
        .await
        .unwrap();
    store
        .put_session(&k2, &record("app", &name), LONG)
        .await
        .unwrap();
    store
        .put_session(&k3, &record("app", &name), LONG)
        .await
        .unwrap();
    store.delete_session(&k1).await.unwrap();
    wait_for(Revocation::Session(k1)).await;
    assert_eq!(store.delete_user_sessions("app", &name).await.unwrap(), 2);
    wait_for(Revocation::Session(k2)).await;
    wait_for(Revocation::Session(k3)).await;
    follower.abort();
}

async fn sessions_crud(store: &Arc<dyn SessionStore>) {
    let k = key();
    let rec = record("app", "crud@example.com");
    assert_eq!(store.get_session(&k).await.unwrap(), None);
    store.put_session(&k, &rec, LONG).await.unwrap();
    assert_eq!(store.get_session(&k).await.unwrap(), Some(rec.clone()));

    let mut touched = rec.clone();
    touched.last_seen = T0 + 90;
    store.touch_session(&k, &touched, LONG).await.unwrap();
    assert_eq!(store.get_session(&k).await.unwrap(), Some(touched.clone()));

    store.delete_session(&k).await.unwrap();
    assert_eq!(store.get_session(&k).await.unwrap(), None);
    store.delete_session(&k).await.unwrap();
    // touching a deleted (revoked) session does not bring it back
    store.touch_session(&k, &touched, LONG).await.unwrap();
    assert_eq!(store.get_session(&k).await.unwrap(), None);
}

async fn user_index(store: &Arc<dyn SessionStore>) {
    // names unique per run: a shared Redis may hold earlier runs' data
    let alice = format!("alice-{}@example.com", &key()[..8]);
    let bob = format!("bob-{}@example.com", &key()[..8]);
    let (a1, a2, a_other_app, b1) = (key(), key(), key(), key());

    // two concurrent sessions of one user
    let rec = record("app", &alice);
    let s1 = store.put_session(&a1, &rec, LONG);
    let s2 = store.put_session(&a2, &rec, LONG);
    let (r1, r2) = tokio::join!(s1, s2);
    r1.unwrap();
    r2.unwrap();
    store
        .put_session(&a_other_app, &record("other", &alice), LONG)
        .await
        .unwrap();
    store
        .put_session(&b1, &record("app", &bob), LONG)
        .await
        .unwrap();

    assert_eq!(
        set(store.user_sessions("app", &alice).await.unwrap()),
        set(vec![a1.clone(), a2.clone()])
    );
    assert_eq!(
        store.user_sessions("app", &bob).await.unwrap(),
        vec![b1.clone()]
    );
    assert_eq!(
        store.user_sessions("other", &alice).await.unwrap(),
        vec![a_other_app.clone()]
    );
    assert!(store
        .user_sessions("app", "nobody")
        .await
        .unwrap()
        .is_empty());

    // a deleted session disappears from the listing
    store.delete_session(&a2).await.unwrap();
    assert_eq!(
        store.user_sessions("app", &alice).await.unwrap(),
        vec![a1.clone()]
    );
    store
        .put_session(&a2, &record("app", &alice), LONG)
        .await
        .unwrap();

    assert_eq!(store.delete_user_sessions("app", &alice).await.unwrap(), 2);
    assert_eq!(store.get_session(&a1).await.unwrap(), None);
    assert_eq!(store.get_session(&a2).await.unwrap(), None);
    assert!(store.user_sessions("app", &alice).await.unwrap().is_empty());
    assert_eq!(store.delete_user_sessions("app", &alice).await.unwrap(), 0);
    // another user, and the same user in another app, are untouched
    assert!(store.get_session(&b1).await.unwrap().is_some());
    assert!(store.get_session(&a_other_app).await.unwrap().is_some());
    assert_eq!(store.user_sessions("app", &bob).await.unwrap(), [b1]);
}

async fn pending_once_only(store: &Arc<dyn SessionStore>) {
    let p = PendingLogin {
        app: "app".into(),
        return_to: "/deep/link?q=1".into(),
        created_at: T0,
        post_body: None,
        binding: Some("ab".repeat(32)),
    };
    let id = rid();
    assert_eq!(store.take_pending(&id).await.unwrap(), None);
    store.put_pending(&id, &p, LONG).await.unwrap();
    assert_eq!(store.take_pending(&id).await.unwrap(), Some(p.clone()));
    assert_eq!(store.take_pending(&id).await.unwrap(), None);

    // concurrent takers: exactly one wins
    for _ in 0..5 {
        let id = rid();
        store.put_pending(&id, &p, LONG).await.unwrap();
        let takers: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                let id = id.clone();
                tokio::spawn(async move { store.take_pending(&id).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for t in takers {
            if let Some(got) = t.await.unwrap() {
                assert_eq!(got, p);
                won += 1;
            }
        }
        assert_eq!(won, 1);
    }
}

async fn assertion_replay(store: &Arc<dyn SessionStore>) {
    let a = rid();
    assert!(store.remember_assertion(&a, LONG).await.unwrap());
    assert!(!store.remember_assertion(&a, LONG).await.unwrap());
    assert!(store.remember_assertion(&rid(), LONG).await.unwrap());

    let a = rid();
    let tries: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let a = a.clone();
            tokio::spawn(async move { store.remember_assertion(&a, LONG).await.unwrap() })
        })
        .collect();
    let mut first = 0;
    for t in tries {
        first += usize::from(t.await.unwrap());
    }
    assert_eq!(first, 1, "exactly one concurrent presenter is first");
}

/// Event counts: atomic across concurrent callers, per key, reset after the window.
async fn event_counts(store: &Arc<dyn SessionStore>) {
    let key = format!("pending:ip:{}", rid());
    assert_eq!(store.count_event(&key, LONG).await.unwrap(), 1);
    assert_eq!(store.count_event(&key, LONG).await.unwrap(), 2);
    assert_eq!(store.count_event(&rid(), LONG).await.unwrap(), 1);
    let tries: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move { store.count_event(&key, LONG).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tries {
        seen.push(t.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (3..=18).collect::<Vec<u64>>(), "every count once");
    let short = rid();
    assert_eq!(
        store
            .count_event(&short, Duration::from_millis(200))
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store
            .count_event(&short, Duration::from_millis(200))
            .await
            .unwrap(),
        1,
        "a new window"
    );
}

async fn ttl_expiry(store: &Arc<dyn SessionStore>) {
    let user = format!("ttl-{}@example.com", &key()[..8]);
    let short = key();
    let long = key();
    let touched = key();
    let pending = rid();
    let assertion = rid();
    let one = Duration::from_secs(1);

    store
        .put_session(&long, &record("app", &user), Duration::from_secs(4))
        .await
        .unwrap();
    // a shorter session must not shorten the index's life below the longer one's
    store
        .put_session(&short, &record("app", &user), one)
        .await
        .unwrap();
    store
        .put_session(&touched, &record("app", &user), one)
        .await
        .unwrap();
    let p = PendingLogin {
        app: "app".into(),
        return_to: "/".into(),
        created_at: T0,
        post_body: None,
        binding: None,
    };
    store.put_pending(&pending, &p, one).await.unwrap();
    assert!(store.remember_assertion(&assertion, one).await.unwrap());

    tokio::time::sleep(Duration::from_millis(600)).await;
    store
        .touch_session(&touched, &record("app", &user), Duration::from_secs(4))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;

    assert_eq!(store.get_session(&short).await.unwrap(), None);
    assert!(store.get_session(&long).await.unwrap().is_some());
    assert!(
        store.get_session(&touched).await.unwrap().is_some(),
        "touch resets the TTL"
    );
    assert_eq!(
        set(store.user_sessions("app", &user).await.unwrap()),
        set(vec![long.clone(), touched.clone()]),
        "live keys only"
    );
    assert_eq!(store.take_pending(&pending).await.unwrap(), None);
    assert!(
        store.remember_assertion(&assertion, one).await.unwrap(),
        "forgotten after its TTL"
    );
    assert_eq!(store.delete_user_sessions("app", &user).await.unwrap(), 2);
}

async fn corrupt_record(store: &Arc<dyn SessionStore>, backend: &dyn Backend) {
    let manager = SessionManager::new(store.clone(), LONG, Duration::from_secs(3600));
    let (id, _) = manager
        .create("app", identity("corrupt@example.com"), T0, None)
        .await
        .unwrap();
    if !backend.corrupt_session(&id.store_key()).await {
        return;
    }
    match store.get_session(&id.store_key()).await {
        Err(SessionError::Corrupt) | Ok(None) => {}
        other => panic!("corrupt record gave {other:?}"),
    }
    // the manager treats it as no session, and removes it
    assert_eq!(manager.load(&id, "app", T0 + 1).await.unwrap(), None);
    assert_eq!(store.get_session(&id.store_key()).await.unwrap(), None);
}

// === backends ===

struct Memory;

#[async_trait::async_trait]
impl Backend for Memory {
    async fn corrupt_session(&self, _key: &str) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conformance() {
    run_conformance(Arc::new(MemoryStore::new()), &Memory).await;
}

struct Redis {
    /// A client of our own, reaching the server as the store does.
    client: redis::Client,
    store_key_prefix: String,
}

#[async_trait::async_trait]
impl Backend for Redis {
    async fn corrupt_session(&self, key: &str) -> bool {
        let mut conn = self
            .client
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let full = format!("{}sess:{key}", self.store_key_prefix);
        let _: () = redis::cmd("SET")
            .arg(&full)
            .arg(b"{not json\xff".as_slice())
            .query_async(&mut conn)
            .await
            .unwrap();
        true
    }
}

/// The URL to test against, and the server to keep alive (when we started one).
fn redis_under_test() -> (String, Option<TestRedis>) {
    match std::env::var(test_redis::ENV_URL) {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let r = TestRedis::start();
            (r.url(), Some(r))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conformance() {
    let (url, _server) = redis_under_test();
    // a unique prefix: a shared Redis may serve other tests at the same time
    let prefix = format!("ssogate-test-{}:", &key()[..12]);
    let store = RedisStore::new(&url, None)
        .unwrap()
        .with_key_prefix(&prefix);
    let backend = Redis {
        client: redis::Client::open(url.as_str()).unwrap(),
        store_key_prefix: prefix,
    };
    run_conformance(Arc::new(store), &backend).await;
}

/// The same suite over TLS (a CA made here, the server's name checked, a client
/// certificate required) as an ACL user granted exactly docs/redis.md's ACL line (the
/// `default` user switched off): the documented line is all the store needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_tls_acl_store_conformance() {
    use utils::tls::{documented_acl_rules, Pki, TlsRedis, PASSWORD, USER};
    let pki = Pki::new();
    let rules = documented_acl_rules();
    assert!(rules.iter().any(|r| r == "~ssogate:*"), "{rules:?}");
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    let server = TlsRedis::start_with_acl(&pki, "yes", &rules);
    let options = ssogate::session::RedisOptions {
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
        ca_pem: Some(pki.ca_pem.clone()),
        client_tls: Some((pki.client_cert_pem.clone(), pki.client_key_pem.clone())),
        ..Default::default()
    };
    // The default prefix: the ACL line grants `ssogate:*` (this server is the test's own).
    let prefix = ssogate::session::DEFAULT_KEY_PREFIX.to_string();
    let store = RedisStore::connect_with(&server.url("localhost"), options)
        .unwrap()
        .with_key_prefix(&prefix);
    let client = redis::Client::build_with_tls(
        format!("rediss://{USER}:{PASSWORD}@localhost:{}/0", server.port),
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: pki.client_cert_pem.clone(),
                client_key: pki.client_key_pem.clone(),
            }),
            root_cert: Some(pki.ca_pem.clone()),
        },
    )
    .unwrap();
    let backend = Redis {
        client,
        store_key_prefix: prefix,
    };
    run_conformance(Arc::new(store), &backend).await;
}

/// The same suite on Redis Sentinel (a primary, a replica, three Sentinels): the store
/// finds the primary through the Sentinels.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_sentinel_store_conformance() {
    let set = test_redis::SentinelSet::start();
    let prefix = format!("ssogate-test-{}:", &key()[..12]);
    let store = RedisStore::connect_with(
        &set.url(),
        ssogate::session::RedisOptions {
            sentinels: set.sentinel_addrs(),
            ..Default::default()
        },
    )
    .unwrap()
    .with_key_prefix(&prefix);
    let backend = Redis {
        client: redis::Client::open(format!("redis://127.0.0.1:{}/0", set.primary().port()))
            .unwrap(),
        store_key_prefix: prefix,
    };
    run_conformance(Arc::new(store), &backend).await;
}

/// A backend on a Redis Cluster: corrupting goes through a Cluster client (the key's
/// slot decides the node).
struct ClusterRedis {
    client: redis::cluster::ClusterClient,
    store_key_prefix: String,
}

#[async_trait::async_trait]
impl Backend for ClusterRedis {
    async fn corrupt_session(&self, key: &str) -> bool {
        let mut conn = self.client.get_async_connection().await.unwrap();
        let full = format!("{}sess:{key}", self.store_key_prefix);
        let _: () = redis::cmd("SET")
            .arg(&full)
            .arg(b"{not json\xff".as_slice())
            .query_async(&mut conn)
            .await
            .unwrap();
        true
    }
}

/// The same suite on a Redis Cluster (three primaries, three replicas): every
/// multi-key step is single-slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_store_conformance() {
    let set = test_redis::ClusterSet::start();
    let prefix = format!("ssogate-test-{}:", &key()[..12]);
    let store = RedisStore::connect_with(
        &set.url(),
        ssogate::session::RedisOptions {
            cluster: true,
            ..Default::default()
        },
    )
    .unwrap()
    .with_key_prefix(&prefix);
    let backend = ClusterRedis {
        client: redis::cluster::ClusterClient::new(vec![set.url()]).unwrap(),
        store_key_prefix: prefix,
    };
    run_conformance(Arc::new(store), &backend).await;
}

#[tokio::test]
async fn redis_store_default_key_layout() {
    let (url, _server) = redis_under_test();
    let store = RedisStore::new(&url, None).unwrap();
    assert_eq!(store.key_prefix(), "ssogate:");
    let id = SessionId::generate();
    let k = id.store_key();
    store
        .put_session(&k, &record("app", "layout@example.com"), LONG)
        .await
        .unwrap();

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw: String = redis::cmd("GET")
        .arg(format!("ssogate:sess:{k}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // JSON, keyed by the hash: the cookie value itself is nowhere in Redis
    let parsed: SessionRecord = serde_json::from_str(&raw).unwrap();
    assert_eq!(parsed.identity.name_id, "layout@example.com");
    assert!(!raw.contains(id.as_cookie_value()));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("ssogate:sess:{k}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
    store.delete_session(&k).await.unwrap();
}

/// Two gateway replicas (two stores, two managers with caches) sharing one Redis: a
/// session revoked through one is gone from the other's cache at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_revocations_through_redis() {
    let (url, _guard) = redis_under_test();
    let manager = || {
        Arc::new(SessionManager::new(
            Arc::new(RedisStore::new(&url, None).unwrap()),
            Duration::from_secs(1800),
            Duration::from_secs(8 * 3600),
        ))
    };
    let (a, b) = (manager(), manager());
    for m in [&a, &b] {
        let m = m.clone();
        tokio::spawn(async move { m.follow_revocations().await });
    }
    let name = format!("replicas-{}@example.com", rid());
    let (id, _) = a.create("app", identity(&name), T0, None).await.unwrap();
    // Once b's feed is subscribed, b caches what it loads.
    for _ in 0..200 {
        assert!(b.load(&id, "app", T0 + 1).await.unwrap().is_some());
        if b.cache().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.cache().len(), 1, "replica b caches the session");
    a.store().delete_user_sessions("app", &name).await.unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if b.cache().is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "replica b evicted the revoked session");
    assert!(b.load(&id, "app", T0 + 2).await.unwrap().is_none());
}
