//! End to end over real sockets: the `ssogate` binary, a real Redis, a real upstream that
//! echoes the headers it received, and a test IdP that signs with a key generated here.
//! The access decisions themselves (401, 302, 403, 405, idle and tampered sessions, bad
//! targets) are unit tests of `gateway::access`, in-process with a clock they set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use ssogate::saml::{self, DevIdp, ResponseSpec};
use std::time::{Duration, Instant};
use utils::echo::{echoed, EchoUpstream};
use utils::gateway::Gateway;
use utils::http::{binding_of, client};
use utils::redis::TestRedis;

const ADMINS: &str = "e7f3c0ba-0000-4000-8000-000000000001";
const STAFF: &str = "5a1d2c3b-0000-4000-8000-000000000002";
const SSO_URL: &str = "https://login.example.test/tenant/saml2";

struct Setup {
    gw: Gateway,
    idp: DevIdp,
    _echo: EchoUpstream,
    _redis: Option<TestRedis>,
}

/// `session` lines go at the end of `[session]`.
fn config(redis_url: &str, echo_port: u16, session: &str) -> String {
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[server]
threads = 2
grace_period = "1s"

[session]
store = "redis"
redis_url = "{redis_url}"
cookie_secure = false
{session}

[[app]]
name = "wiki"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:{echo_port}"

[app.sp]
entity_id = "http://127.0.0.1:{{public}}/saml"
acs_url = "http://127.0.0.1:{{public}}/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "{SSO_URL}"
certificate_file = "idp.pem"

[app.headers]
"X-Remote-User" = "name_id"
"X-Remote-Email" = "email"
"X-Remote-Groups" = "groups"

[app.groups]
admins = "{ADMINS}"

[[app.route]]
path = "/public/"
public = true

[[app.route]]
path = "/admin/"
allow_groups = ["admins"]
"#
    )
}

async fn setup_with(redis: Option<TestRedis>, session: &str) -> Setup {
    let url = match &redis {
        Some(r) => r.url(),
        None => utils::redis::shared_url(),
    };
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let pem = idp.certificate_pem();
    let gw = Gateway::start(
        &config(&url, echo.port, session),
        &[("idp.pem", pem.as_bytes())],
    )
    .await;
    Setup {
        gw,
        idp,
        _echo: echo,
        _redis: redis,
    }
}

async fn setup() -> Setup {
    setup_with(None, "idle_timeout = \"30m\"").await
}

async fn browse(url: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .get(url)
        .header("accept", "text/html,application/xhtml+xml");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

fn query_param(url: &str, key: &str) -> Option<String> {
    let u = url::Url::parse(url).unwrap();
    u.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The Entra-shaped response a user would bring back for this AuthnRequest ID.
fn response_spec(
    s: &Setup,
    user: &str,
    groups: &[&str],
    in_response_to: Option<String>,
) -> ResponseSpec {
    use ssogate::identity::claims;
    ResponseSpec {
        issuer: None,
        name_id: user.to_string(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
        audience: s.gw.url("/saml"),
        recipient: s.gw.url("/saml/acs"),
        in_response_to,
        attributes: vec![
            (claims::EMAIL.into(), vec![user.to_string()]),
            (
                claims::GROUPS.into(),
                groups.iter().map(|g| g.to_string()).collect(),
            ),
        ],
        now: chrono::Utc::now(),
        lifetime: Duration::from_secs(600),
        assertion_id: None,
        session_index: None,
        session_not_on_or_after: None,
        signing: Default::default(),
        encrypt_for: None,
    }
}

/// Starts a login at `path` and returns (AuthnRequest ID, RelayState, the binding
/// cookie the browser holds until the response comes back).
async fn start_login(s: &Setup, path: &str) -> (String, String, String) {
    let r = browse(&s.gw.url(path), None).await;
    assert_eq!(
        r.status(),
        302,
        "unauthenticated page view must go to the IdP"
    );
    let loc = location(&r);
    assert!(loc.starts_with(SSO_URL), "{loc}");
    let req = query_param(&loc, "SAMLRequest").unwrap();
    let relay = query_param(&loc, "RelayState").unwrap();
    let xml = saml::decode_redirect_request(&req).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "AuthnRequest");
    assert_eq!(
        root.attribute("AssertionConsumerServiceURL"),
        Some(s.gw.url("/saml/acs").as_str())
    );
    let id = root.attribute("ID").unwrap().to_string();
    assert!(!id.starts_with(|c: char| c.is_ascii_digit()));
    let binding = binding_of(&r).expect("a sign-in binding cookie");
    (id, relay, binding)
}

async fn post_acs(
    s: &Setup,
    saml_response: &str,
    relay: &str,
    binding: Option<&str>,
) -> reqwest::Response {
    let mut req = client()
        .post(s.gw.url("/saml/acs"))
        .form(&[("SAMLResponse", saml_response), ("RelayState", relay)]);
    if let Some(b) = binding {
        req = req.header("cookie", b);
    }
    req.send().await.unwrap()
}

fn session_cookie(r: &reqwest::Response) -> String {
    let set = r
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

async fn sign_in(s: &Setup, path: &str, user: &str, groups: &[&str]) -> String {
    let (id, relay, binding) = start_login(s, path).await;
    let resp = s
        .idp
        .sign_response(&response_spec(s, user, groups, Some(id)))
        .unwrap();
    let r = post_acs(s, &resp, &relay, Some(&binding)).await;
    assert_eq!(r.status(), 302, "log: {}", s.gw.log());
    assert_eq!(location(&r), path, "back to the page asked for");
    session_cookie(&r)
}

#[tokio::test]
async fn sign_in_then_proxy_with_identity_headers_and_no_spoofing() {
    let s = setup().await;
    let cookie = sign_in(
        &s,
        "/wiki/page?x=1",
        "alice@contoso.example",
        &[ADMINS, STAFF],
    )
    .await;

    let r = client()
        .get(s.gw.url("/wiki/page?x=1"))
        .header("cookie", &cookie)
        .header("x-remote-user", "mallory@evil.example")
        .header("X-Remote-Anything", "spoof")
        .header("X-Remote-Groups", ADMINS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.starts_with("GET /wiki/page?x=1"), "{body}");
    assert_eq!(echoed(&body, "x-remote-user"), ["alice@contoso.example"]);
    assert_eq!(echoed(&body, "x-remote-email"), ["alice@contoso.example"]);
    assert_eq!(
        echoed(&body, "x-remote-groups"),
        [format!("{ADMINS},{STAFF}")]
    );
    assert!(echoed(&body, "x-remote-anything").is_empty(), "{body}");
    assert_eq!(echoed(&body, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echoed(&body, "x-forwarded-proto"), ["http"]);

    // Admins reach /admin/.
    let r = browse(&s.gw.url("/admin/settings"), Some(&cookie)).await;
    assert_eq!(r.status(), 200);

    // Metrics saw the login.
    let m = s.gw.metrics().await;
    assert!(
        m.contains("ssogate_logins_total{app=\"wiki\",result=\"success\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn spoofed_identity_never_reaches_upstream_without_session() {
    let s = setup().await;
    let r = client()
        .get(s.gw.url("/public/x"))
        .header("x-remote-user", "mallory@evil.example")
        .header("X-Remote-Email", "mallory@evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "public route needs no session");
    let body = r.text().await.unwrap();
    assert!(echoed(&body, "x-remote-user").is_empty(), "{body}");
    assert!(echoed(&body, "x-remote-email").is_empty(), "{body}");
}

#[tokio::test]
async fn wrong_group_gets_403_naming_the_route_only() {
    let s = setup().await;
    let cookie = sign_in(&s, "/", "bob@contoso.example", &[STAFF]).await;
    let r = browse(&s.gw.url("/admin/x"), Some(&cookie)).await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("/admin/"), "{page}");
    assert!(!page.contains(STAFF) && !page.contains("bob@"), "{page}");
    // The rest of the app still works for bob.
    assert_eq!(browse(&s.gw.url("/x"), Some(&cookie)).await.status(), 200);
}

#[tokio::test]
async fn replayed_response_is_refused() {
    let s = setup().await;
    let (id, relay, binding) = start_login(&s, "/").await;
    let resp = s
        .idp
        .sign_response(&response_spec(&s, "alice@contoso.example", &[], Some(id)))
        .unwrap();
    assert_eq!(
        post_acs(&s, &resp, &relay, Some(&binding)).await.status(),
        302
    );
    let again = post_acs(&s, &resp, &relay, Some(&binding)).await;
    assert_eq!(again.status(), 403);
    assert!(again.headers().get("set-cookie").is_none());
    let page = again.text().await.unwrap();
    assert!(page.contains("Reference"), "{page}");
    assert!(!page.contains("alice@"), "never echo the assertion: {page}");
}

#[tokio::test]
async fn response_for_another_audience_is_refused() {
    let s = setup().await;
    let (id, relay, binding) = start_login(&s, "/").await;
    let mut spec = response_spec(&s, "alice@contoso.example", &[], Some(id));
    spec.audience = "https://other-app.example/saml".into();
    let r = post_acs(
        &s,
        &s.idp.sign_response(&spec).unwrap(),
        &relay,
        Some(&binding),
    )
    .await;
    assert_eq!(r.status(), 403);
    let m = s.gw.metrics().await;
    assert!(
        m.contains("ssogate_login_failures_total{app=\"wiki\",reason=\"audience\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn response_signed_by_another_key_or_unsolicited_is_refused() {
    let s = setup().await;
    let (id, relay, binding) = start_login(&s, "/").await;
    let mallory = DevIdp::generate("https://idp.example.test/").unwrap();
    let forged = mallory
        .sign_response(&response_spec(
            &s,
            "alice@contoso.example",
            &[ADMINS],
            Some(id.clone()),
        ))
        .unwrap();
    assert_eq!(
        post_acs(&s, &forged, &relay, Some(&binding)).await.status(),
        403
    );
    // libxmlsec1's own stderr reports are routed into tracing, not sprayed into the log.
    assert!(!s.gw.log().contains("func=xmlSec"), "{}", s.gw.log());
    assert!(
        s.gw.log().contains("reason=\"signature\""),
        "{}",
        s.gw.log()
    );
    // Unsolicited responses are refused while allow_idp_initiated = false.
    let unsolicited = s
        .idp
        .sign_response(&response_spec(&s, "alice@contoso.example", &[ADMINS], None))
        .unwrap();
    assert_eq!(post_acs(&s, &unsolicited, "/", None).await.status(), 403);
    // A response to a request we never sent is refused.
    let unknown = s
        .idp
        .sign_response(&response_spec(
            &s,
            "alice@contoso.example",
            &[ADMINS],
            Some("_00000000000000000000000000000000".into()),
        ))
        .unwrap();
    assert_eq!(
        post_acs(&s, &unknown, &relay, Some(&binding))
            .await
            .status(),
        403
    );
    // The genuine one still works: failed attempts did not consume the pending request.
    let genuine = s
        .idp
        .sign_response(&response_spec(
            &s,
            "alice@contoso.example",
            &[ADMINS],
            Some(id),
        ))
        .unwrap();
    assert_eq!(
        post_acs(&s, &genuine, &relay, Some(&binding))
            .await
            .status(),
        302
    );
}

/// Redis goes away: a session read within `cache_ttl` (2 s here) keeps working, then
/// gets the 503 page; new sign-ins get it at once; `/readyz` fails; public routes work;
/// everything recovers when Redis is back, without a restart.
#[tokio::test]
async fn redis_outage_gives_503_and_not_ready_then_recovers() {
    let redis = TestRedis::start();
    let s = setup_with(Some(redis), "idle_timeout = \"30m\"\ncache_ttl = \"2s\"").await;
    let cookie = sign_in(&s, "/", "alice@contoso.example", &[ADMINS]).await;
    let ready = || async {
        reqwest::get(s.gw.admin_url("/readyz"))
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready().await, 200);
    // Browse until the gateway holds the session in its cache (once the feed is live).
    let metrics = || async { s.gw.metrics().await };
    let mut cached = false;
    for _ in 0..50 {
        assert_eq!(browse(&s.gw.url("/"), Some(&cookie)).await.status(), 200);
        if metrics().await.contains("ssogate_session_cache_entries 1") {
            cached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cached, "the session is cached");
    let last_read = Instant::now();

    s._redis.as_ref().unwrap().stop();
    // Within cache_ttl of its last read, the session is served as cached.
    assert_eq!(browse(&s.gw.url("/"), Some(&cookie)).await.status(), 200);
    // No session yet: 503, not a redirect to the IdP that cannot be finished.
    assert_eq!(browse(&s.gw.url("/"), None).await.status(), 503);
    // Past cache_ttl: the 503 page.
    let mut r = browse(&s.gw.url("/"), Some(&cookie)).await;
    while r.status() == 200 {
        assert!(
            last_read.elapsed() < Duration::from_secs(4),
            "a cached session outlived cache_ttl (2 s) by 2 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = browse(&s.gw.url("/"), Some(&cookie)).await;
    }
    assert!(
        last_read.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        last_read.elapsed()
    );
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("Temporarily unavailable"));
    assert_eq!(ready().await, 503);
    let body = metrics().await;
    let fallbacks = body
        .lines()
        .find_map(|l| l.strip_prefix("ssogate_session_outage_fallbacks_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(fallbacks >= 1, "{body}");
    // Public routes do not need the store.
    assert_eq!(browse(&s.gw.url("/public/"), None).await.status(), 200);

    s._redis.as_ref().unwrap().restart();
    let mut status = 0;
    for _ in 0..50 {
        status = browse(&s.gw.url("/"), None).await.status().as_u16();
        if status == 302 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 302, "recovers without a restart");
    assert_eq!(ready().await, 200);
    // Redis restarted empty (no persistence): the old session is gone, sign in again works.
    assert_eq!(browse(&s.gw.url("/"), Some(&cookie)).await.status(), 302);
    let cookie = sign_in(&s, "/", "alice@contoso.example", &[ADMINS]).await;
    assert_eq!(browse(&s.gw.url("/"), Some(&cookie)).await.status(), 200);
}

#[tokio::test]
async fn sp_metadata_is_served_for_upload_to_entra() {
    let s = setup().await;
    let r = reqwest::get(s.gw.url("/saml/metadata")).await.unwrap();
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(
        doc.root_element().attribute("entityID"),
        Some(s.gw.url("/saml").as_str())
    );
    assert!(xml.contains(&s.gw.url("/saml/acs")));
}

#[tokio::test]
async fn a_sign_in_finishes_only_in_the_browser_that_started_it() {
    let s = setup().await;
    let response = |id: String| {
        s.idp
            .sign_response(&response_spec(&s, "alice@contoso.example", &[], Some(id)))
    };
    // The response comes back through a browser that did not start the sign-in (a
    // login-CSRF, or a link handed on): refused. The browser that did start it can still
    // finish that sign-in.
    let (id, relay, binding) = start_login(&s, "/one").await;
    let r = post_acs(&s, &response(id.clone()).unwrap(), &relay, None).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("another browser"));
    let r = post_acs(&s, &response(id).unwrap(), &relay, Some(&binding)).await;
    assert_eq!((r.status().as_u16(), location(&r)), (302, "/one".into()));
    let (other, relay2, binding2) = start_login(&s, "/two").await;
    let r = post_acs(
        &s,
        &response(other).unwrap(),
        &relay2,
        Some(&format!("{binding2}x")),
    )
    .await;
    assert_eq!(r.status(), 403, "a wrong token is no binding");

    // Two tabs signing in at once: each response finds its own binding among both.
    let (a, relay_a, binding_a) = start_login(&s, "/tab-a").await;
    let (b, relay_b, binding_b) = start_login(&s, "/tab-b").await;
    let both = format!("{binding_a}; {binding_b}");
    let rb = post_acs(&s, &response(b).unwrap(), &relay_b, Some(&both)).await;
    assert_eq!(
        (rb.status().as_u16(), location(&rb)),
        (302, "/tab-b".into())
    );
    let cleared: Vec<_> = rb.headers().get_all("set-cookie").iter().collect();
    assert!(
        cleared.iter().any(|c| {
            let c = c.to_str().unwrap();
            c.starts_with(binding_b.split('=').next().unwrap()) && c.contains("Max-Age=0")
        }),
        "the used binding is cleared: {cleared:?}"
    );
    let ra = post_acs(&s, &response(a).unwrap(), &relay_a, Some(&both)).await;
    assert_eq!(
        (ra.status().as_u16(), location(&ra)),
        (302, "/tab-a".into())
    );
    let metrics = s.gw.metrics().await;
    assert!(
        metrics.contains("ssogate_login_failures_total{app=\"wiki\",reason=\"other_browser\"} 2"),
        "{metrics}"
    );
}
