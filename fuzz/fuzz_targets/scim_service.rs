//! The SCIM service end to end (`ScimService::handle`, what `/scim/v2/…` reaches once the
//! bearer token passed): routing, query parameters (`filter`, `attributes`,
//! `excludedAttributes`, `startIndex`, `count`), JSON bodies of resources (create and
//! replace: `resource::normalize`), PATCH, `.search`, DELETE, against a fresh in-memory
//! directory holding one user and one group.
//!
//! Input: up to 8 requests separated by a line `===`; each is `METHOD /path?query` on its
//! first line and the body after it. `@USER@` and `@GROUP@` stand for the IDs of the user
//! and group created first (the service picks them at random).
//!
//! Asserts: no panic; statuses are 200-599 and 401 without the token; a resource read by
//! ID has that ID; afterwards every stored user is found again by its userName through the
//! store's unique index (the index follows every create, replace, patch and delete).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use ssogate::config::Secret;
use ssogate::scim::filter::get_ci;
use ssogate::scim::{Kind, ScimRequest, ScimService};
use ssogate::session::MemoryStore;
use ssogate_fuzz::runtime;
use std::sync::Arc;

const TOKEN: &[u8] = b"fuzz-token-5f0c6a0e2b7d4e1f9a3c8b6d0e2f4a6c";
const BASE: &str = "https://wiki.example.com/scim/v2";

async fn call(
    s: &ScimService,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> (u16, Option<Value>) {
    let auth = [b"Bearer ".as_slice(), TOKEN].concat();
    let r = s
        .handle(ScimRequest {
            method,
            path,
            query,
            authorization: Some(&auth),
            body,
            base_url: BASE,
        })
        .await;
    assert!((200..=599).contains(&r.status), "status {}", r.status);
    (r.status, r.body)
}

async fn run(data: &[u8]) {
    let service = ScimService::new(
        Arc::new(MemoryStore::new()),
        vec![Secret::new(TOKEN.to_vec())],
    );
    let (_, u) = call(&service, "POST", "/Users", None,
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Test_User_ab6490ee@testuser.com","externalId":"0a21f0f2","active":true,"emails":[{"type":"work","value":"Test_User_ab6490ee@testuser.com","primary":true}],"name":{"givenName":"Zoë","familyName":"Ångström"}}"#.as_bytes()).await;
    let user = u
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .expect("user created");
    let body = format!(
        r#"{{"displayName":"Wiki editors","externalId":"e0e0-editors","members":[{{"value":"{user}"}}]}}"#
    );
    let (_, g) = call(&service, "POST", "/Groups", None, body.as_bytes()).await;
    let group = g
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .expect("group created");

    let text = String::from_utf8_lossy(data)
        .replace("@USER@", &user)
        .replace("@GROUP@", &group);
    for req in text.split("\n===\n").take(8) {
        let (line, body) = req.split_once('\n').unwrap_or((req, ""));
        let (method, target) = line.split_once(' ').unwrap_or((line, "/"));
        let (path, query) = match target.trim().split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target.trim(), None),
        };
        // Without the token: refused before anything is read.
        let r = service.refuse_unauthorized(path, Some(b"Bearer wrong"));
        assert_eq!(r.map(|r| r.status), Some(401));
        let (status, out) = call(&service, method, path, query, body.as_bytes()).await;
        let seg: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if status == 200 && method.eq_ignore_ascii_case("GET") {
            if let [kind, id] = seg.as_slice() {
                if kind.eq_ignore_ascii_case("Users") || kind.eq_ignore_ascii_case("Groups") {
                    let got = out
                        .as_ref()
                        .and_then(|v| v.get("id"))
                        .and_then(Value::as_str);
                    assert_eq!(got, Some(*id), "GET {path} answered another resource");
                }
            }
        }
    }

    for u in service.all(Kind::User).await.expect("memory store") {
        let name = get_ci(&u, "userName")
            .and_then(Value::as_str)
            .expect("a stored user has a userName");
        let found = service.user_by_name(name).await.expect("memory store");
        assert_eq!(
            found.as_ref().and_then(|f| f.get("id")),
            u.get("id"),
            "userName {name:?} does not find its user through the index"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(run(data));
});
