//! The request the gateway judges is the request the upstream serves, against the real
//! servers that read paths differently (tests/interop/COUNTERPARTS.md): gunicorn + Flask
//! and Tomcat 10 behind the gateway, `/public/` public, `/admin/` for admins. Every
//! trick is sent byte for byte on a raw socket, without a session and as a signed-in
//! user who is not an admin; none may reach the admin handler. Each row of the review's
//! table is here; without the fix it reaches `admin` on the server named.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use serde_json::Value;
use ssogate::identity::claims;
use ssogate::saml::DevIdp;
use utils::gateway::Gateway;
use utils::http::cookie_of;
use utils::raw::{RawConn, RawResponse};
use utils::servers::{Gunicorn, Tomcat};
use utils::signin;

const ADMINS: &str = "e7f3c0ba-0000-4000-8000-000000000001";
const PUBLIC_URL: &str = "https://wiki.example.test";

fn config(upstream: u16) -> String {
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[session]
store = "memory"
cookie_secure = false

[[app]]
name = "wiki"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:{upstream}"
allow_idp_initiated = true

[app.sp]
entity_id = "{PUBLIC_URL}/saml"
acs_url = "{PUBLIC_URL}/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"

[app.headers]
"X-Remote-User" = "name_id"
"X-Remote-Groups" = "groups"

[app.groups]
admins = "{ADMINS}"

[[app.route]]
path = "/public/"
public = true

[[app.route]]
path = "/admin/"
allow_groups = ["admins"]

[[app.route]]
path = "/public/api/"
public = true
methods = ["GET"]
"#
    )
}

struct Setup {
    gw: Gateway,
    idp: DevIdp,
}

async fn setup(upstream: u16) -> Setup {
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let pem = idp.certificate_pem();
    let gw = Gateway::start(&config(upstream), &[("idp.pem", pem.as_bytes())]).await;
    Setup { gw, idp }
}

/// Sign in (IdP-initiated) as `user` in `groups`; the session cookie.
async fn sign_in(s: &Setup, user: &str, groups: &[&str]) -> String {
    let groups = groups.iter().map(|g| g.to_string()).collect();
    let r = signin::idp_initiated(
        &s.idp,
        &signin::sp(PUBLIC_URL),
        &s.gw.url("/saml/acs"),
        user,
        vec![(claims::GROUPS.into(), groups)],
    )
    .await;
    assert_eq!(r.status(), 302, "{}", s.gw.log());
    cookie_of(&r)
}

/// `GET target` exactly as written, with extra header lines.
async fn get(s: &Setup, target: &str, extra: &[&str]) -> RawResponse {
    let mut req =
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    RawConn::connect(s.gw.public)
        .await
        .roundtrip(req.as_bytes())
        .await
}

/// The handler of the upstream that answered, if an upstream did.
fn handler(r: &RawResponse) -> Option<String> {
    let v: Value = serde_json::from_slice(&r.body).ok()?;
    v["handler"].as_str().map(str::to_string)
}

fn upstream_headers(r: &RawResponse) -> Value {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    v["headers"].clone()
}

/// The review's table: targets a server routes to its admin handler while a naive
/// reading says "public" (or not admin).
const TRICKS: &[&str] = &[
    "/public/..;/admin/",
    "/admin/../public/x",
    "/public/../admin/",
    "/admin/users/1%2F..%2F..%2F..%2Fpublic",
    "/public/..%2Fadmin/",
    "/admin%5c..%5cpublic/x",
    "/public%5c..%5cadmin/",
    "/public/%252e%252e/admin/",
    "/public/%2e%2e/admin/",
    "/admin;x/",
    "/public;x/../admin/",
    "foo:/admin/x",
    "//admin/x",
];

async fn no_trick_reaches_admin(s: &Setup, server: &str) {
    let staff = sign_in(s, "bob@contoso.example", &[]).await;
    let boss = sign_in(s, "ann@contoso.example", &[ADMINS]).await;
    let cookie = |c: &str| format!("Cookie: {c}");

    // Controls: the routes work as configured against this server.
    let r = get(s, "/public/x", &[]).await;
    assert_eq!(
        (r.status, handler(&r).as_deref()),
        (200, Some("public")),
        "{server}"
    );
    let r = get(s, "/admin/", &[&cookie(&boss)]).await;
    assert_eq!(
        (r.status, handler(&r).as_deref()),
        (200, Some("admin")),
        "{server}"
    );
    assert_eq!(get(s, "/admin/", &[&cookie(&staff)]).await.status, 403);
    assert_eq!(get(s, "/admin/", &[]).await.status, 401);

    for target in TRICKS {
        for who in [None, Some(&staff)] {
            let extra: Vec<String> = who.iter().map(|c| cookie(c)).collect();
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let r = get(s, target, &extra).await;
            assert_ne!(
                handler(&r).as_deref(),
                Some("admin"),
                "{server}: {target} ({}) reached the admin handler",
                if who.is_some() {
                    "non-admin"
                } else {
                    "no session"
                }
            );
            assert_eq!(
                r.status,
                400,
                "{server}: {target} must be refused as ambiguous: {}",
                r.text()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_trick_reaches_gunicorns_admin_handler() {
    let app = tokio::task::spawn_blocking(Gunicorn::start).await.unwrap();
    let s = setup(app.port).await;
    no_trick_reaches_admin(&s, "gunicorn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_trick_reaches_tomcats_admin_handler() {
    let app = tokio::task::spawn_blocking(Tomcat::start).await.unwrap();
    let s = setup(app.port).await;
    no_trick_reaches_admin(&s, "tomcat").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_never_sees_a_forged_identity_or_the_gateway_session() {
    let app = tokio::task::spawn_blocking(Gunicorn::start).await.unwrap();
    let s = setup(app.port).await;
    let staff = sign_in(&s, "bob@contoso.example", &[]).await;

    // gunicorn folds `_` into `-`: X_Remote_User would reach the app as X-Remote-User.
    for who in [None, Some(staff.as_str())] {
        let mut extra = vec![
            "X_Remote_User: admin@contoso.example".to_string(),
            "x_remote_groups: e7f3c0ba-0000-4000-8000-000000000001".to_string(),
            "X-Original-URL: /admin/".to_string(),
            "X-Rewrite-URL: /admin/".to_string(),
            "Forwarded: for=10.0.0.1;host=admin.example".to_string(),
            "X-Real-IP: 10.0.0.1".to_string(),
            "X-Forwarded-For: 10.0.0.1".to_string(),
        ];
        if let Some(c) = who {
            extra.push(format!("Cookie: theme=dark; {c}; lang=en"));
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let r = get(&s, "/public/x", &extra).await;
        assert_eq!(handler(&r).as_deref(), Some("public"));
        let h = upstream_headers(&r);
        let names: Vec<String> = h
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.to_ascii_lowercase())
            .collect();
        for gone in [
            "x-remote-user",
            "x-remote-groups",
            "x-original-url",
            "x-rewrite-url",
            "forwarded",
            "x-real-ip",
        ] {
            assert!(
                !names.contains(&gone.to_string()),
                "{gone} reached the app: {h}"
            );
        }
        assert_eq!(
            h["X-Forwarded-For"], "127.0.0.1",
            "the client's chain is not believed"
        );
        if who.is_some() {
            assert_eq!(
                h["Cookie"], "theme=dark; lang=en",
                "the session cookie stays here"
            );
        }
    }

    // Signed in on a signed-in route: the identity is ssogate's, the spelling the app's.
    let r = get(
        &s,
        "/wiki/page",
        &[
            &format!("Cookie: {staff}"),
            "X_Remote_User: admin@contoso.example",
        ],
    )
    .await;
    assert_eq!(upstream_headers(&r)["X-Remote-User"], "bob@contoso.example");

    // A route that takes GET only: a method override does not travel with it.
    let r = get(&s, "/public/api/x", &["X-HTTP-Method-Override: DELETE"]).await;
    assert_eq!(handler(&r).as_deref(), Some("public"));
    assert!(upstream_headers(&r).get("X-Http-Method-Override").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_never_sends_the_browser_off_site() {
    let app = tokio::task::spawn_blocking(Gunicorn::start).await.unwrap();
    let s = setup(app.port).await;
    for target in [
        "//evil.example/",
        "/\\evil.example/",
        "/%2F%2Fevil.example/",
    ] {
        let r = get(&s, target, &["Accept: text/html"]).await;
        assert_eq!(r.status, 400, "{target}");
    }
    // An explicit sign-in link minted by anyone: the return path is checked where it is
    // made and where it is used; anything but a path on this app lands on default_path.
    let sp = signin::sp(PUBLIC_URL);
    for return_to in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example/",
        "%2F%2Fevil.example",
        "/\t/evil.example",
    ] {
        let q: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        let started = signin::start(&s.gw.url(&format!("/saml/login?return_to={q}"))).await;
        let r = signin::finish(
            &s.idp,
            &sp,
            &s.gw.url("/saml/acs"),
            &started,
            "bob@contoso.example",
            Vec::new(),
        )
        .await;
        assert_eq!(r.status(), 302, "{}", s.gw.log());
        assert_eq!(r.headers()["location"], "/", "{return_to}");
    }
    // A path on this app is kept.
    let started = signin::start(&s.gw.url("/saml/login?return_to=/wiki/page%3Fx%3D1")).await;
    let r = signin::finish(
        &s.idp,
        &sp,
        &s.gw.url("/saml/acs"),
        &started,
        "bob@contoso.example",
        Vec::new(),
    )
    .await;
    assert_eq!(r.headers()["location"], "/wiki/page?x=1");
}
