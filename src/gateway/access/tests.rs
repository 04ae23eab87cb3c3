//! The access decision, in-process: a gateway built from a config (memory store), a
//! clock the test moves, request facts built by hand. Every status a browser or an
//! upstream can see for a proxied request is decided here.

use super::*;
use crate::clock::Clock;
use crate::identity::claims;
use std::sync::atomic::{AtomicI64, Ordering};

const ADMINS: &str = "e7f3c0ba-0000-4000-8000-000000000001";
const HOST: &str = "wiki.example.com";

/// A clock the test sets.
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(self.0.load(Ordering::SeqCst), 0).unwrap_or_default()
    }
}

struct World {
    gw: Gateway,
    clock: Arc<TestClock>,
    /// The IdP whose certificate the app trusts.
    idp: crate::saml::DevIdp,
    _dir: tempfile::TempDir,
}

impl World {
    fn advance(&self, secs: i64) {
        self.clock.0.fetch_add(secs, Ordering::SeqCst);
    }

    async fn sign_in(&self, app: &str, groups: &[&str]) -> String {
        let mut id = Identity {
            name_id: "ann@contoso.example".into(),
            ..Default::default()
        };
        id.attributes.insert(
            claims::GROUPS.into(),
            groups.iter().map(|g| g.to_string()).collect(),
        );
        let now = self.clock.now().timestamp();
        let (sid, _) = self
            .gw
            .sessions
            .create(app, id, now, None)
            .await
            .expect("session");
        let set = self.gw.cookie.set_cookie(&sid);
        set.split(';').next().unwrap_or_default().to_string()
    }
}

fn world(extra_server: &str, app_extra: &str) -> World {
    world_with(extra_server, "", app_extra)
}

fn world_with(extra_server: &str, extra_session: &str, app_extra: &str) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let idp = crate::saml::DevIdp::generate("https://idp.example.com/").expect("idp");
    std::fs::write(dir.path().join("idp.pem"), idp.certificate_pem()).expect("pem");
    // No session cache unless a test asks for one: each request reads the store.
    let cache = if extra_session.contains("cache_ttl") {
        ""
    } else {
        "cache_ttl = \"0s\""
    };
    let text = format!(
        r#"
[listen]
public = "127.0.0.1:8080"
[server]
{extra_server}
[session]
store = "memory"
idle_timeout = "30m"
{cache}
{extra_session}

[[app]]
name = "wiki"
hosts = ["{HOST}"]
upstream = "http://127.0.0.1:3000"
{app_extra}
[app.sp]
entity_id = "https://{HOST}/saml"
acs_url = "https://{HOST}/saml/acs"
[app.idp]
entity_id = "https://idp.example.com/"
sso_url = "https://idp.example.com/sso"
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
path = "/static"
public = true
[[app.route]]
path = "/admin/"
allow_groups = ["admins"]
[[app.route]]
path = "/api/"
methods = ["GET"]
[[app.route]]
path = "/files/"
allow_encoded_slash = true
"#
    );
    let env = std::collections::HashMap::<String, String>::new();
    let config = crate::config::from_str(&text, dir.path(), &env).expect("config");
    let clock = Arc::new(TestClock(AtomicI64::new(1_700_000_000)));
    let gw = Gateway::build(&config, clock.clone()).expect("gateway");
    World {
        gw,
        clock,
        idp,
        _dir: dir,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, http::HeaderValue::from_static(HOST));
    for (n, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
            http::HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

async fn run(w: &World, method: Method, target: &str, h: &HeaderMap) -> Outcome {
    run_from(w, method, target, h, None).await
}

async fn run_from(
    w: &World,
    method: Method,
    target: &str,
    h: &HeaderMap,
    peer: Option<IpAddr>,
) -> Outcome {
    admit(
        &w.gw,
        &RequestFacts {
            method: &method,
            target: target.as_bytes(),
            headers: h,
            authority: None,
            peer,
        },
    )
    .await
}

/// The status the client would see (and, for forwards, 0).
fn status(o: &Outcome) -> u16 {
    match o {
        Outcome::Forward(_) => 0,
        Outcome::Body(_) => 1,
        Outcome::Answer(a) => match a {
            Answer::ToSignIn { status, .. } => *status,
            Answer::Refused(Refusal::BadTarget(_)) => 400,
            Answer::Refused(Refusal::SignInRequired | Refusal::ReplayNotKept) => 401,
            Answer::Refused(
                Refusal::Denied { .. } | Refusal::ForwardUntrusted | Refusal::CrossSite,
            ) => 403,
            Answer::Refused(Refusal::Login {
                error: LoginError::TooManyPending,
                ..
            }) => 429,
            Answer::LogoutConfirm => 200,
            Answer::Refused(Refusal::UnknownHost | Refusal::NotFound) => 404,
            Answer::Refused(Refusal::MethodNotAllowed { .. }) => 405,
            Answer::Scim(r) => r.status,
            Answer::ForwardAllowed(_) => 200,
            Answer::ForwardSignInRequired => 401,
            _ => 999,
        },
    }
}

fn forwarded(o: Outcome) -> Admitted {
    match o {
        Outcome::Forward(a) => a,
        other => panic!("not forwarded: {}", status(&other)),
    }
}

const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml");

#[tokio::test]
async fn public_routes_forward_without_identity() {
    let w = world("", "");
    let a = forwarded(run(&w, Method::GET, "/public/a.css", &headers(&[])).await);
    assert!(a.user.is_none());
    assert_eq!(&*a.route, "/public/");
    assert_eq!(a.rewrite, None);
    // Segment boundaries: /static is public, /static-admin is not.
    assert!(run(&w, Method::GET, "/static/app.js", &headers(&[]))
        .await
        .is_forward());
    assert_eq!(
        status(&run(&w, Method::GET, "/static-admin/x", &headers(&[])).await),
        401
    );
    // A canonicalised target is forwarded in its canonical form.
    let a = forwarded(run(&w, Method::GET, "/public/%61b?x=%2f", &headers(&[])).await);
    assert_eq!(a.rewrite.as_deref(), Some("/public/ab?x=%2f"));
}

#[tokio::test]
async fn no_session_navigation_signs_in_api_gets_401() {
    let w = world("", "");
    let o = run(&w, Method::GET, "/wiki/page?x=1", &headers(&[HTML])).await;
    assert_eq!(status(&o), 302);
    let Outcome::Answer(Answer::ToSignIn { location, .. }) = o else {
        unreachable!()
    };
    assert!(location.starts_with("https://idp.example.com/sso?SAMLRequest="));
    assert_eq!(
        status(&run(&w, Method::GET, "/wiki/page", &headers(&[])).await),
        401
    );
    assert_eq!(
        status(&run(&w, Method::POST, "/wiki/save", &headers(&[])).await),
        401,
        "a POST that is no browser form"
    );
    // A tampered cookie is no session.
    let cookie = w.sign_in("wiki", &[]).await;
    let mut bad = cookie.clone();
    let last = bad.pop();
    bad.push(if last == Some('A') { 'B' } else { 'A' });
    assert_eq!(
        status(&run(&w, Method::GET, "/x", &headers(&[("cookie", &bad)])).await),
        401
    );
    assert!(run(&w, Method::GET, "/x", &headers(&[("cookie", &cookie)]))
        .await
        .is_forward());
}

#[tokio::test]
async fn signed_in_routes_check_groups_methods_and_idle_time() {
    let w = world("", "");
    let ann = w.sign_in("wiki", &[]).await;
    let boss = w.sign_in("wiki", &[ADMINS]).await;
    let h = |c: &str| headers(&[("cookie", c)]);
    let a = forwarded(run(&w, Method::GET, "/wiki", &h(&ann)).await);
    let user = a.user.expect("identity");
    assert_eq!(user.identity().name_id, "ann@contoso.example");
    assert_eq!(
        status(&run(&w, Method::GET, "/admin/x", &h(&ann)).await),
        403
    );
    assert!(run(&w, Method::GET, "/admin/x", &h(&boss))
        .await
        .is_forward());
    assert!(run(&w, Method::GET, "/admin", &h(&boss)).await.is_forward());
    // Methods: 405, also before any session is looked at.
    assert_eq!(
        status(&run(&w, Method::POST, "/api/x", &h(&ann)).await),
        405
    );
    assert_eq!(
        status(&run(&w, Method::DELETE, "/api/x", &headers(&[])).await),
        405
    );
    let a = forwarded(run(&w, Method::GET, "/api/x", &h(&ann)).await);
    assert!(a.strip_method_override);
    // Idle for longer than the idle timeout: signed out.
    w.advance(31 * 60);
    assert_eq!(status(&run(&w, Method::GET, "/wiki", &h(&ann)).await), 401);
}

#[tokio::test]
async fn sessions_belong_to_their_app() {
    let w = world("", "");
    let other = w.sign_in("other-app", &[]).await;
    assert_eq!(
        status(&run(&w, Method::GET, "/wiki", &headers(&[("cookie", &other)])).await),
        401
    );
}

#[tokio::test]
async fn ambiguous_targets_are_refused_before_anything_else() {
    let w = world("", "");
    let boss = w.sign_in("wiki", &[ADMINS]).await;
    for target in [
        "/public/..;/admin/",
        "/admin/../public/x",
        "/admin/users/1%2F..%2F..%2F..%2Fpublic",
        "/admin%5c..%5cpublic/x",
        "/public/%252e%252e/admin/",
        "/admin;x/",
        "foo:/admin/x",
        "//evil.example/",
        "/public/x%2Fy",
        "http://evil.example/public/",
    ] {
        for h in [headers(&[]), headers(&[("cookie", &boss)])] {
            assert_eq!(
                status(&run(&w, Method::GET, target, &h).await),
                400,
                "{target}"
            );
        }
    }
    // An encoded slash where the route opts in.
    let a = forwarded(
        run(
            &w,
            Method::GET,
            "/files/a%2fb",
            &headers(&[("cookie", &boss)]),
        )
        .await,
    );
    assert_eq!(a.rewrite.as_deref(), Some("/files/a%2Fb"));
    assert_eq!(
        status(&run(&w, Method::GET, "/files/a%2F..%2F..%2Fadmin", &headers(&[])).await),
        400
    );
    // Absolute-form for our own host: judged and forwarded in origin-form.
    let a = forwarded(
        run(
            &w,
            Method::GET,
            "http://wiki.example.com/public/x",
            &headers(&[]),
        )
        .await,
    );
    assert_eq!(a.rewrite.as_deref(), Some("/public/x"));
}

#[tokio::test]
async fn unknown_hosts_get_404() {
    let w = world("", "");
    let mut h = HeaderMap::new();
    h.insert(
        header::HOST,
        http::HeaderValue::from_static("other.example"),
    );
    assert_eq!(status(&run(&w, Method::GET, "/", &h).await), 404);
}

#[tokio::test]
async fn case_insensitive_apps_match_routes_regardless_of_case() {
    let w = world("", "case_insensitive_paths = true");
    let ann = w.sign_in("wiki", &[]).await;
    let h = headers(&[("cookie", &ann)]);
    assert_eq!(status(&run(&w, Method::GET, "/ADMIN/x", &h).await), 403);
    assert_eq!(status(&run(&w, Method::GET, "/Admin./x", &h).await), 400);
    assert_eq!(status(&run(&w, Method::GET, "/ADMINI~1/x", &h).await), 400);
    // Without the setting, /ADMIN/ is another path (as on a case-sensitive server).
    let w = world("", "");
    let ann = w.sign_in("wiki", &[]).await;
    assert!(
        run(&w, Method::GET, "/ADMIN/x", &headers(&[("cookie", &ann)]))
            .await
            .is_forward()
    );
}

#[tokio::test]
async fn forward_auth_listens_only_to_a_trusted_proxy_and_its_one_header() {
    let w = world(
        "trusted_proxies = [\"10.0.0.0/8\"]\n[forward_auth]\nstyle = \"nginx\"",
        "",
    );
    let ann = w.sign_in("wiki", &[]).await;
    let proxy: IpAddr = "10.1.2.3".parse().expect("ip");
    let browser: IpAddr = "192.0.2.7".parse().expect("ip");
    let h = headers(&[("cookie", &ann), ("x-original-uri", "/admin/x")]);
    assert_eq!(
        status(&run_from(&w, Method::GET, "/_ssogate/auth", &h, Some(browser)).await),
        403,
        "not from a trusted proxy"
    );
    assert_eq!(
        status(&run_from(&w, Method::GET, "/_ssogate/auth", &h, Some(proxy)).await),
        403,
        "judged on X-Original-URI: /admin/ needs the admins group"
    );
    // Traefik's header means nothing to an nginx deployment.
    let h = headers(&[
        ("cookie", &ann),
        ("x-forwarded-uri", "/public/x"),
        ("x-original-uri", "/admin/x"),
    ]);
    assert_eq!(
        status(&run_from(&w, Method::GET, "/_ssogate/auth", &h, Some(proxy)).await),
        403
    );
    let h = headers(&[("x-original-uri", "/wiki")]);
    assert_eq!(
        status(&run_from(&w, Method::GET, "/_ssogate/auth", &h, Some(proxy)).await),
        401
    );
    let h = headers(&[("cookie", &ann), ("x-original-uri", "/admin/../wiki")]);
    assert_eq!(
        status(&run_from(&w, Method::GET, "/_ssogate/auth", &h, Some(proxy)).await),
        400
    );
    let h = headers(&[("cookie", &ann), ("x-original-uri", "/wiki")]);
    let o = run_from(&w, Method::GET, "/_ssogate/auth", &h, Some(proxy)).await;
    let Outcome::Answer(Answer::ForwardAllowed(hs)) = o else {
        panic!("allowed: {}", status(&o))
    };
    assert!(hs
        .iter()
        .any(|(n, v)| n == "x-remote-user" && v == "ann@contoso.example"));
    // Without [forward_auth], the endpoint does not exist.
    let w = world("", "");
    assert_eq!(
        status(&run_from(&w, Method::GET, "/_ssogate/auth", &h, Some(proxy)).await),
        404
    );
}

#[tokio::test]
async fn scim_refuses_a_bad_token_before_reading_the_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = world("", "");
    // A SCIM-enabled world: rebuild with [scim].
    let token = dir.path().join("token");
    std::fs::write(&token, "a-long-enough-scim-token\n").expect("token");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("mode");
    }
    let idp = crate::saml::DevIdp::generate("https://idp.example.com/").expect("idp");
    std::fs::write(dir.path().join("idp.pem"), idp.certificate_pem()).expect("pem");
    let text = format!(
        "[listen]\npublic = \"127.0.0.1:8080\"\n[scim]\nenabled = true\ntoken_file = \"token\"\n[[app]]\nname = \"wiki\"\nhosts = [\"{HOST}\"]\nupstream = \"http://127.0.0.1:3000\"\n[app.sp]\nentity_id = \"https://{HOST}/saml\"\nacs_url = \"https://{HOST}/saml/acs\"\n[app.idp]\nentity_id = \"https://idp.example.com/\"\nsso_url = \"https://idp.example.com/sso\"\ncertificate_file = \"idp.pem\"\n"
    );
    let env = std::collections::HashMap::<String, String>::new();
    let config = crate::config::from_str(&text, dir.path(), &env).expect("config");
    let gw = Gateway::build(&config, w.clock.clone()).expect("gateway");
    let w = World {
        gw,
        clock: w.clock.clone(),
        idp,
        _dir: dir,
    };
    let o = run(&w, Method::POST, "/scim/v2/Users", &headers(&[])).await;
    assert_eq!(status(&o), 401, "answered before the body");
    let h = headers(&[("authorization", "Bearer a-long-enough-scim-token")]);
    assert!(matches!(
        run(&w, Method::POST, "/scim/v2/Users", &h).await,
        Outcome::Body(BodyStep::Scim { .. })
    ));
}

impl Outcome {
    fn is_forward(&self) -> bool {
        matches!(self, Outcome::Forward(_))
    }
}

#[tokio::test]
async fn pending_sign_ins_are_capped_per_client_and_bound_to_the_browser() {
    let w = world_with("", "max_pending_per_client = 2", "");
    let me: IpAddr = "192.0.2.10".parse().expect("ip");
    let other: IpAddr = "192.0.2.11".parse().expect("ip");
    let h = headers(&[HTML]);
    for _ in 0..2 {
        let o = run_from(&w, Method::GET, "/wiki", &h, Some(me)).await;
        let Outcome::Answer(Answer::ToSignIn { binding_cookie, .. }) = o else {
            panic!("sign-in: {}", status(&o))
        };
        let c = binding_cookie.expect("bound to the browser");
        assert!(c.starts_with("__Host-ssogate-login-") && c.contains("SameSite=None"));
    }
    assert_eq!(
        status(&run_from(&w, Method::GET, "/wiki", &h, Some(me)).await),
        429
    );
    assert_eq!(
        status(&run_from(&w, Method::GET, "/wiki", &h, Some(other)).await),
        302,
        "another client is not held back"
    );
    // return_to is never anything but a path on this app.
    let o = run(
        &w,
        Method::GET,
        "/saml/login?return_to=//evil.example/",
        &headers(&[]),
    )
    .await;
    assert_eq!(status(&o), 302);
}

#[tokio::test]
async fn sign_out_is_a_same_origin_post_and_post_replay_only_same_origin() {
    let w = world("", "");
    let ann = w.sign_in("wiki", &[]).await;
    assert_eq!(
        status(
            &run(
                &w,
                Method::GET,
                "/saml/logout",
                &headers(&[("cookie", &ann)])
            )
            .await
        ),
        200,
        "a GET only asks"
    );
    for cross in [
        headers(&[("cookie", &ann), ("sec-fetch-site", "cross-site")]),
        headers(&[("cookie", &ann), ("origin", "https://evil.example")]),
        headers(&[("cookie", &ann)]),
        headers(&[
            ("cookie", &ann),
            ("sec-fetch-site", "same-site"),
            ("origin", "https://wiki.example.com"),
        ]),
    ] {
        assert_eq!(
            status(&run(&w, Method::POST, "/saml/logout", &cross).await),
            403
        );
    }
    assert!(run(&w, Method::GET, "/wiki", &headers(&[("cookie", &ann)]))
        .await
        .is_forward());
    let o = run(
        &w,
        Method::POST,
        "/saml/logout",
        &headers(&[("cookie", &ann), ("origin", "https://wiki.example.com")]),
    )
    .await;
    assert!(matches!(o, Outcome::Answer(Answer::SignedOut { .. })));
    assert_eq!(
        status(&run(&w, Method::GET, "/wiki", &headers(&[("cookie", &ann)])).await),
        401
    );

    let form = |site: &'static str| {
        headers(&[
            HTML,
            ("content-type", "application/x-www-form-urlencoded"),
            ("sec-fetch-site", site),
        ])
    };
    assert!(matches!(
        run(&w, Method::POST, "/wiki/edit", &form("same-origin")).await,
        Outcome::Body(BodyStep::Replay { .. })
    ));
    assert_eq!(
        status(&run(&w, Method::POST, "/wiki/edit", &form("cross-site")).await),
        401
    );
}

#[test]
fn group_names_in_headers_need_authoritative_scim_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let idp = crate::saml::DevIdp::generate("https://idp.example.com/").expect("idp");
    std::fs::write(dir.path().join("idp.pem"), idp.certificate_pem()).expect("pem");
    let text = format!(
        "[listen]\npublic = \"127.0.0.1:8080\"\n[[app]]\nname = \"wiki\"\nhosts = [\"{HOST}\"]\nupstream = \"http://127.0.0.1:3000\"\n[app.sp]\nentity_id = \"https://{HOST}/saml\"\nacs_url = \"https://{HOST}/saml/acs\"\n[app.idp]\nentity_id = \"https://idp.example.com/\"\nsso_url = \"https://idp.example.com/sso\"\ncertificate_file = \"idp.pem\"\n[app.headers]\n\"X-Groups\" = {{ source = \"groups\", groups_as = \"name\" }}\n"
    );
    let env = std::collections::HashMap::<String, String>::new();
    let config = crate::config::from_str(&text, dir.path(), &env).expect("config");
    let err = Gateway::build(&config, Arc::new(crate::clock::SystemClock))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("authoritative_groups"), "{err}");
}

#[tokio::test]
async fn an_assertion_whose_idp_session_is_over_is_refused_not_unavailable() {
    let w = world("", "allow_idp_initiated = true");
    let app = w.gw.apps()[0].clone();
    let now = w.clock.now();
    let post = |spec: crate::saml::ResponseSpec| {
        let b64 = w.idp.sign_response(&spec).expect("signed");
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", &b64)
            .finish()
            .into_bytes()
    };
    let acs = |body: Vec<u8>| async {
        let h = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        let Outcome::Body(step) = run(&w, Method::POST, "/saml/acs", &h).await else {
            panic!("the ACS reads its body")
        };
        let answer = with_body(&w.gw, step, Some(body)).await;
        crate::gateway::reply::reply(answer, &crate::gateway::reply::Reference::new())
    };
    let fresh = crate::saml::ResponseSpec::for_sp(&app.sp, "ann@contoso.example", now);
    let r = acs(post(fresh.clone())).await;
    assert_eq!(
        r.status,
        302,
        "signed in: {}",
        String::from_utf8_lossy(&r.body)
    );
    let over = crate::saml::ResponseSpec {
        session_not_on_or_after: Some(now - chrono::Duration::seconds(60)),
        ..fresh
    };
    let r = acs(post(over)).await;
    assert_eq!(r.status, 403, "the IdP's word, not a store outage");
    assert!(String::from_utf8_lossy(&r.body).contains("SessionNotOnOrAfter"));
}

#[tokio::test]
async fn a_sessions_identity_headers_are_built_once_and_shared() {
    let w = world_with("", "cache_ttl = \"60s\"", "");
    let ann = w.sign_in("wiki", &[ADMINS]).await;
    let h = headers(&[("cookie", &ann)]);
    // The cache serves only while the revocation feed runs.
    let feed = w.gw.sessions.follow_revocations();
    let body = async {
        for _ in 0..200 {
            forwarded(run(&w, Method::GET, "/wiki", &h).await);
            if !w.gw.sessions.cache().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let first = forwarded(run(&w, Method::GET, "/wiki", &h).await);
        let second = forwarded(run(&w, Method::GET, "/wiki/page", &h).await);
        let (a, b) = (first.user.expect("user"), second.user.expect("user"));
        let (ha, hb) = (a.headers(&first.app), b.headers(&second.app));
        assert!(
            Arc::ptr_eq(&ha, &hb),
            "the cached session's headers are shared"
        );
        let names: Vec<&[u8]> = ha.iter().map(|(n, _)| &n[..]).collect();
        assert_eq!(names, [&b"x-remote-groups"[..], b"x-remote-user"]);
        assert_eq!(ha[0].1.as_bytes(), ADMINS.as_bytes());
        assert_eq!(ha[1].1.as_bytes(), b"ann@contoso.example");
    };
    tokio::select! {
        _ = feed => panic!("the feed ended"),
        _ = body => {}
    }
}
