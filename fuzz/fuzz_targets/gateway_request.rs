//! One request through the gateway's whole decision (`gateway::access::admit`, then
//! `with_body` when it asks for the body, then `gateway::reply`), as `proxy` drives it:
//! target, host, app, own endpoints (ACS, login, logout, SLO, metadata, JWKS,
//! forward-auth), SCIM behind its token, route, session cookie, sign-in, authorisation.
//!
//! One gateway per process (building one costs milliseconds of OpenSSL key loading), with
//! fresh state per input: a new memory store, session manager and SCIM service wired as
//! `Gateway::build` wires them, so every input runs alone. The clock stands inside the
//! Entra fixture's window. App `entra`: the fixture's SP and IdP, SLO (unsigned messages
//! accepted, so the fuzzer reaches the LogoutRequest checks), IdP-initiated sign-in, an
//! identity JWT, routes `/public/` public, `/admin/` for the admins group, `/api/` GET
//! only, `/files/` with encoded slashes. App `iis`: case-insensitive paths. SCIM, and
//! forward-auth (nginx style, 127.0.0.1 trusted). Two sessions exist: `@STAFF@` and
//! `@ADMIN@` in the input stand for their cookie values; the fixture's AuthnRequest ID is
//! pending, so the real Entra response signs in at the ACS.
//!
//! Input: an HTTP/1-style request: `METHOD TARGET` line, `Name: value` header lines
//! (`:peer ADDR` sets the TCP peer, `:authority HOST` the HTTP/2 authority), a blank line,
//! the body. The target is escaped as `proxy::wire` does; one pingora would refuse (control
//! bytes, not an `http::Uri`) is skipped, as are header lines `http` refuses.
//!
//! Asserts: no panic; a forwarded request's route is the route of its canonical target,
//! its method is allowed there, a signed-in route has a user the policy allows (so no
//! path trick reaches `/admin/` without the group), its rewrite is exactly when the
//! canonical form differs and is a valid `http::Uri`, its identity headers and JWT build;
//! every reply has a valid status and header values (no CR/LF), and every `Location` is a
//! safe path on the app, or the IdP, or an allowed host (no open redirect).

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use ssogate::authz::{self, Access, Decision};
use ssogate::config::{self, Config};
use ssogate::gateway::access::{self, Outcome, RequestFacts};
use ssogate::gateway::login::is_safe_relative_path;
use ssogate::gateway::reply::{reply, Reference, Reply};
use ssogate::gateway::target;
use ssogate::gateway::Gateway;
use ssogate::identity::{claims, Identity};
use ssogate::saml::FixedClock;
use ssogate::scim::effects::{MatchUsers, Provisioning};
use ssogate::scim::ScimService;
use ssogate::session::{MemoryStore, PendingLogin, SessionManager, SessionStore};
use ssogate_fuzz::{entra_now, private_dir, quiet, runtime, split_once, ENTRA_CERT_PEM};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const ADMINS: &str = "e7f3c0ba-0000-4000-8000-000000000001";
const SCIM_TOKEN: &str = "fuzz-scim-token-3b1f9d2c7a6e4058b1c2d3e4f5a69788";
const PENDING: &str = "id6491e192-e2d9-4970-ab03-e38ffda6e033";

const CONFIG: &str = r#"
[listen]
public = "127.0.0.1:8080"
[server]
trusted_proxies = ["127.0.0.1/32"]
[forward_auth]
style = "nginx"
[session]
store = "memory"
cache_ttl = "0s"
[scim]
enabled = true
token_file = "scim-token"

[[app]]
name = "entra"
hosts = ["devpg.tercen.com"]
upstream = "http://127.0.0.1:3000"
allow_idp_initiated = true
redirect_allow_hosts = ["portal.example.com"]
post_replay_max_bytes = 4096
logout_return_path = "/bye"
[app.sp]
entity_id = "https://devpg.tercen.com/_service/sso/auth/saml"
acs_url = "https://devpg.tercen.com/_service/sso/auth/saml"
slo_url = "https://devpg.tercen.com/saml/slo"
[app.idp]
entity_id = "https://sts.windows.net/5b5c94c6-14cf-42da-85bc-4e08722b253b/"
sso_url = "https://login.microsoftonline.com/5b5c94c6-14cf-42da-85bc-4e08722b253b/saml2"
slo_url = "https://login.microsoftonline.com/5b5c94c6-14cf-42da-85bc-4e08722b253b/saml2"
certificate_file = "idp.pem"
allow_expired_certificate = true
require_signed_logout = false
[app.jwt]
key_file = "jwt-key.pem"
[app.headers]
"X-Remote-User" = "name_id"
"X-Remote-Groups" = "groups"
"X-Display" = { source = "display_name", encoding = "rfc2047" }
[app.groups]
admins = "e7f3c0ba-0000-4000-8000-000000000001"
[[app.route]]
path = "/public/"
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

[[app]]
name = "iis"
hosts = ["iis.example.com"]
upstream = "http://127.0.0.1:3001"
case_insensitive_paths = true
[app.sp]
entity_id = "https://iis.example.com/saml"
acs_url = "https://iis.example.com/saml/acs"
[app.idp]
entity_id = "https://sts.windows.net/5b5c94c6-14cf-42da-85bc-4e08722b253b/"
sso_url = "https://login.microsoftonline.com/5b5c94c6-14cf-42da-85bc-4e08722b253b/saml2"
certificate_file = "idp.pem"
allow_expired_certificate = true
[[app.route]]
path = "/Admin/"
allow_groups = ["e7f3c0ba-0000-4000-8000-000000000001"]
"#;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt as _;
        quiet();
        let d = private_dir("gateway");
        let put = |name: &str, bytes: &[u8]| {
            std::fs::write(d.join(name), bytes).unwrap();
            std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        put("idp.pem", ENTRA_CERT_PEM);
        put("scim-token", SCIM_TOKEN.as_bytes());
        // ES256: the pure-Rust RSA of the JWT crate is slow under the sanitizer.
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key = openssl::ec::EcKey::generate(&group).unwrap();
        put(
            "jwt-key.pem",
            &openssl::pkey::PKey::from_ec_key(key)
                .unwrap()
                .private_key_to_pem_pkcs8()
                .unwrap(),
        );
        let env = std::collections::HashMap::<String, String>::new();
        config::from_str(CONFIG, &d, &env).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn gateway() -> &'static Mutex<Gateway> {
    static GW: OnceLock<Mutex<Gateway>> = OnceLock::new();
    GW.get_or_init(|| {
        let gw = Gateway::build(config(), Arc::new(FixedClock(entra_now()))).expect("gateway");
        Mutex::new(gw)
    })
}

/// A new store, session manager and SCIM service, as `Gateway::build` makes them.
fn reset(gw: &mut Gateway) {
    let c = config();
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    gw.sessions = Arc::new(
        SessionManager::new(
            store.clone(),
            c.session.idle_timeout,
            c.session.absolute_timeout,
        )
        .with_cache(c.session.cache_ttl, c.session.cache_max_entries),
    );
    gw.provisioning = Some(
        Provisioning::new(
            ScimService::new(store, c.scim.tokens.clone()),
            c.scim.authoritative_groups,
            c.scim.require_provisioned_user,
            c.session.cache_ttl,
            gw.apps().iter().map(|a| a.name.clone()).collect(),
        )
        .with_match_users(MatchUsers::parse(&c.scim.match_users).unwrap_or(MatchUsers::Both)),
    );
}

struct Request {
    method: Method,
    target: Vec<u8>,
    headers: HeaderMap,
    authority: Option<String>,
    peer: Option<IpAddr>,
    body: Vec<u8>,
}

/// The target as `proxy::wire` hands it on: `"`, `<`, `>`, `` ` `` escaped, `#` too in the
/// query.
fn wire_escaped(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 8);
    let mut query = false;
    for &b in raw {
        match b {
            b'"' => out.extend_from_slice(b"%22"),
            b'<' => out.extend_from_slice(b"%3C"),
            b'>' => out.extend_from_slice(b"%3E"),
            b'`' => out.extend_from_slice(b"%60"),
            b'#' if query => out.extend_from_slice(b"%23"),
            b => {
                query |= b == b'?';
                out.push(b);
            }
        }
    }
    out
}

/// `data` with every `from` replaced by `to`.
fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    loop {
        match split_once(rest, from) {
            (head, Some(tail)) => {
                out.extend_from_slice(head);
                out.extend_from_slice(to);
                rest = tail;
            }
            (head, None) => {
                out.extend_from_slice(head);
                return out;
            }
        }
    }
}

fn parse_request(data: &[u8]) -> Option<Request> {
    let (head, body) = match split_once(data, b"\r\n\r\n") {
        (h, Some(b)) => (h, b),
        _ => match split_once(data, b"\n\n") {
            (h, b) => (h, b.unwrap_or_default()),
        },
    };
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next()?;
    let (method, rest) = split_once(line, b" ");
    let method = Method::from_bytes(method).ok()?;
    let target = wire_escaped(split_once(rest?, b" ").0);
    // What pingora refuses itself (400) never reaches the gateway.
    if target.iter().any(|&b| b <= 0x20 || b == 0x7f)
        || http::Uri::try_from(target.as_slice()).is_err()
    {
        return None;
    }
    let mut r = Request {
        method,
        target,
        headers: HeaderMap::new(),
        authority: None,
        peer: Some(IpAddr::from([203, 0, 113, 9])),
        body: body.to_vec(),
    };
    for l in lines {
        if let Some(p) = l.strip_prefix(b":peer ") {
            r.peer = std::str::from_utf8(p)
                .ok()
                .and_then(|p| p.trim().parse().ok());
            continue;
        }
        if let Some(a) = l.strip_prefix(b":authority ") {
            r.authority = std::str::from_utf8(a).ok().map(|a| a.trim().to_string());
            continue;
        }
        let (name, value) = split_once(l, b":");
        let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(name.trim_ascii()),
            value.map(|v| HeaderValue::from_bytes(v.trim_ascii())),
        ) else {
            continue;
        };
        r.headers.append(name, value);
    }
    Some(r)
}

/// Valid headers; where a redirect may send the browser (SCIM's 201 names the resource
/// created, under the request's own host).
fn check_reply(r: &Reply, host: &str) {
    let scim = format!("https://{host}/scim/v2/");
    assert!((100..=599).contains(&r.status));
    for (name, value) in &r.headers {
        assert!(
            HeaderName::from_bytes(name.as_bytes()).is_ok(),
            "header name {name:?}"
        );
        assert!(
            HeaderValue::from_str(value).is_ok(),
            "header {name}: {value:?}"
        );
        if name.eq_ignore_ascii_case("location") {
            let ok = is_safe_relative_path(value)
                || value.starts_with(
                    "https://login.microsoftonline.com/5b5c94c6-14cf-42da-85bc-4e08722b253b/saml2?",
                )
                || value.starts_with("https://portal.example.com/")
                || value.starts_with("http://portal.example.com/")
                || (r.status == 201 && value.starts_with(&scim));
            assert!(ok, "redirect to {value:?}");
        }
    }
}

async fn run(gw: &Gateway, data: &[u8]) {
    let now = entra_now();
    let mut staff = Identity {
        name_id: "bob@contoso.example".into(),
        ..Default::default()
    };
    staff.attributes.insert(
        claims::DISPLAY_NAME.into(),
        vec!["Bob \"Builder\" Ö".into()],
    );
    let mut admin = Identity {
        name_id: "ann@contoso.example".into(),
        ..Default::default()
    };
    admin
        .attributes
        .insert(claims::GROUPS.into(), vec![ADMINS.into()]);
    let t = now.timestamp();
    let (staff_id, _) = gw
        .sessions
        .create("entra", staff, t, None)
        .await
        .expect("session");
    let (admin_id, _) = gw
        .sessions
        .create("entra", admin, t, None)
        .await
        .expect("session");
    let pending = PendingLogin {
        app: "entra".into(),
        return_to: "/wiki/page?x=1".into(),
        created_at: t,
        post_body: None,
        binding: None,
    };
    gw.sessions
        .store()
        .put_pending(PENDING, &pending, Duration::from_secs(600))
        .await
        .expect("pending");

    let data = replace(data, b"@STAFF@", staff_id.as_cookie_value().as_bytes());
    let data = replace(&data, b"@ADMIN@", admin_id.as_cookie_value().as_bytes());
    let Some(req) = parse_request(&data) else {
        return;
    };
    let facts = RequestFacts {
        method: &req.method,
        target: &req.target,
        headers: &req.headers,
        authority: req.authority.as_deref(),
        peer: req.peer,
    };
    let host = facts.host().to_string();
    let answer = match access::admit(gw, &facts).await {
        Outcome::Forward(a) => {
            let host = facts.host();
            let t = target::parse(&req.target, host, a.app.target_rules)
                .expect("forwarded, yet refused");
            let route = a.app.policy.route(&t.match_path);
            assert_eq!(route.name, a.route, "the route judged is not the target's");
            assert!(authz::method_allowed(route, req.method.as_str()));
            assert!(
                !t.encoded_slash || route.allow_encoded_slash,
                "%2F forwarded to {}",
                route.name
            );
            if &*a.route == "/admin/" || &*a.route == "/Admin/" {
                let groups = a
                    .user
                    .as_ref()
                    .map(|u| u.identity().claim(claims::GROUPS).to_vec());
                assert!(
                    groups.is_some_and(|g| g.iter().any(|g| g == ADMINS)),
                    "{} reached without the admins group",
                    a.route
                );
            }
            if let Access::SignedIn(_) = route.access {
                let user = a
                    .user
                    .as_ref()
                    .expect("a signed-in route forwarded without a user");
                assert_eq!(
                    authz::decide(user.identity(), route, req.method.as_str()),
                    Decision::Allow,
                    "forwarded against the policy"
                );
            }
            assert_eq!(a.rewrite.is_some(), t.rewritten);
            if let Some(rw) = &a.rewrite {
                assert!(
                    rw.parse::<http::Uri>().is_ok(),
                    "canonical target {rw:?} is not a URI"
                );
            }
            if let Some(user) = &a.user {
                let _ = user.headers(&a.app);
                if let (Some(jwt), Some(key)) = (&a.app.jwt, &user.jwt_key) {
                    jwt.token(key, user.identity(), now.timestamp())
                        .expect("identity JWT");
                }
            }
            return;
        }
        Outcome::Answer(x) => x,
        Outcome::Body(step) => {
            let body = (req.body.len() <= step.limit()).then_some(req.body);
            access::with_body(gw, step, body).await
        }
    };
    check_reply(&reply(answer, &Reference::new()), &host);
}

fuzz_target!(|data: &[u8]| {
    let mut gw = gateway().lock().unwrap_or_else(|e| e.into_inner());
    reset(&mut gw);
    runtime().block_on(run(&gw, data));
});
