//! One decision per request: [`admit`] takes the facts the proxy read off the request
//! (method, raw target, headers, peer address) and returns an [`Outcome`]: forward
//! upstream with the admitted identity and the exact target judged, answer from the
//! gateway (a page, a redirect, a document), or read the body first (ACS, SCIM,
//! PostReplay) and then answer.
//!
//! ```text
//! target ─ parse once (gateway::target): canonical, or 400 with a reason
//! host ──── app (unknown host: 404); SCIM answers on any host
//! own endpoints ─ /saml/acs /saml/metadata /saml/login /saml/logout <slo_url>
//!                 /.well-known/jwks.json /_ssogate/auth (trusted proxies only)
//! route ─── longest segment-boundary prefix of the decoded path; %2F only where allowed
//! method ── the route's methods (405)
//! public ── forward, no identity
//! session ─ cookie → cache → store (unreachable: 503)
//!   none:   navigation → sign-in; same-origin form POST → keep it, sign in; else 401
//! identity  the session's, SCIM groups when authoritative: this is what is judged AND
//!           what the headers and the JWT carry
//! authz ─── route rules × identity → forward, or 403
//! ```
//!
//! Plain Rust: no pingora type appears here, the clock is the gateway's, and the store
//! is behind its trait, so every decision is unit-tested in-process (see `tests` below)
//! and the `session_path` bench calls this very function.

use super::login::{self, LoginError};
use super::logout::{self, LogoutError, SignOut, SloOutcome};
use super::target::{self, BadTarget, Target};
use super::{App, Gateway};
use crate::authz::{self, Access, Decision, Route};
use crate::config::ForwardStyle;
use crate::identity::Identity;
use crate::scim::{ScimRequest, ScimResponse};
use crate::session::{SessionError, SessionId, SessionRecord};
use http::{header, HeaderMap, Method};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

/// SP metadata for the app of this host.
pub const METADATA_PATH: &str = "/saml/metadata";
/// Explicit sign-in (Entra's "Sign-on URL" may point here): `?return_to=/path`.
pub const LOGIN_PATH: &str = "/saml/login";
/// Sign-out (SP-initiated Single Logout when configured).
pub const LOGOUT_PATH: &str = "/saml/logout";
/// Forward-auth endpoint for proxies that keep their own routing.
pub const FORWARD_AUTH_PATH: &str = "/_ssogate/auth";
/// The app's identity-JWT signing keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// SCIM 2.0 (Entra provisioning "Tenant URL": `https://<host>/scim/v2`).
pub const SCIM_PREFIX: &str = "/scim/v2";
/// Largest ACS form body read (the SAMLResponse inside is limited separately).
pub const MAX_ACS_BODY: usize = 512 * 1024;

/// What the proxy read off a request. Borrowed: nothing is copied to decide.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    /// The request target exactly as received (after `proxy::wire`).
    pub target: &'a [u8],
    pub headers: &'a HeaderMap,
    /// The URI's authority (HTTP/2 `:authority`), which wins over `Host` as it does on
    /// the way upstream.
    pub authority: Option<&'a str>,
    /// The TCP peer.
    pub peer: Option<IpAddr>,
}

impl RequestFacts<'_> {
    fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The HTTP/2 authority, else the Host header.
    pub fn host(&self) -> &str {
        self.authority
            .or_else(|| self.header(header::HOST))
            .unwrap_or_default()
    }

    fn accepts_html(&self) -> bool {
        self.headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"))
    }
}

/// The outcome of [`admit`].
pub enum Outcome {
    /// Proxy the request upstream.
    Forward(Admitted),
    /// Answer it from the gateway.
    Answer(Answer),
    /// Read the body (up to [`BodyStep::limit`]), then call [`with_body`].
    Body(BodyStep),
}

/// An admitted request: what goes upstream.
pub struct Admitted {
    pub app: Arc<App>,
    pub route: Arc<str>,
    /// The signed-in user, on routes that need one.
    pub user: Option<SignedIn>,
    /// The canonical target, when it differs from the one received: the upstream
    /// request's target is replaced with it.
    pub rewrite: Option<String>,
    /// The route restricts methods: method-override headers must not reach the upstream.
    pub strip_method_override: bool,
}

/// A signed-in user as forwarded.
pub struct SignedIn {
    pub record: Arc<SessionRecord>,
    /// The identity forwarded (headers, JWT): the session's, or with SCIM groups.
    scim: Option<Arc<Identity>>,
    /// Key of the identity-JWT cache (the session's store key, plus the SCIM groups).
    pub jwt_key: Option<String>,
}

impl SignedIn {
    pub fn identity(&self) -> &Identity {
        self.scim.as_deref().unwrap_or(&self.record.identity)
    }

    /// The identity headers to forward to `app`: built once per cached session and
    /// shared, unless SCIM groups make this request's identity its own.
    pub fn headers(&self, app: &App) -> crate::headers::Prepared {
        if let Some(identity) = &self.scim {
            return app.headers.prepare(identity);
        }
        let (index, prepared) = self
            .record
            .headers
            .get_or_init(|| (app.index, app.headers.prepare(&self.record.identity)));
        if *index == app.index {
            prepared.clone()
        } else {
            app.headers.prepare(&self.record.identity)
        }
    }
}

/// Everything the gateway answers itself; `reply` turns each into status, headers,
/// body, metric and audit line.
pub enum Answer {
    Refused(Refusal),
    /// To the IdP after a sign-in started, with the cookie binding it to this browser.
    ToSignIn {
        location: String,
        status: u16,
        binding_cookie: Option<String>,
    },
    /// `GET /saml/logout`: a page whose button signs out (by a same-origin POST).
    LogoutConfirm,
    /// The ACS accepted a response: the session cookie, then the app (or the kept form).
    SignedIn {
        app: Arc<App>,
        cookie: String,
        /// Removes the sign-in's binding cookie.
        clear_binding: Option<String>,
        location: String,
        replay_body: Option<String>,
        assertion_id: String,
    },
    /// SP-initiated sign-out done (locally, or continued at the IdP).
    SignedOut {
        app: Arc<App>,
        location: Option<String>,
        cookie: String,
        at_idp: bool,
        had_session: bool,
    },
    /// The IdP confirmed our sign-out.
    SloConfirmed {
        app: Arc<App>,
        location: Option<String>,
        cookie: String,
    },
    /// The IdP asked us to end sessions; the browser goes back with our answer.
    SloAnswered {
        app: Arc<App>,
        location: String,
        cookie: String,
        ended: usize,
    },
    Metadata(String),
    Jwks(bytes::Bytes),
    Scim(ScimResponse),
    /// Forward-auth: allowed, with the identity as response headers.
    ForwardAllowed(Vec<(String, String)>),
    /// Forward-auth: no session, nginx style.
    ForwardSignInRequired,
}

impl Answer {
    /// The app (if any) and the route or endpoint label, for metrics and the access log.
    pub fn labels(&self) -> (Option<Arc<App>>, Arc<str>) {
        let endpoint = |app: &Arc<App>, label: &str| (Some(app.clone()), Arc::from(label));
        match self {
            Answer::SignedIn { app, .. } => endpoint(app, "(acs)"),
            Answer::SignedOut { app, .. } => endpoint(app, "(logout)"),
            Answer::SloConfirmed { app, .. } | Answer::SloAnswered { app, .. } => {
                endpoint(app, "(slo)")
            }
            Answer::Refused(Refusal::Denied { app, route, .. })
            | Answer::Refused(Refusal::MethodNotAllowed { app, route }) => {
                (Some(app.clone()), route.clone())
            }
            Answer::Refused(
                Refusal::Login { app, .. }
                | Refusal::LoginTooLarge { app }
                | Refusal::LoginMissingResponse { app },
            ) => endpoint(app, "(acs)"),
            Answer::Refused(Refusal::Logout { app, .. }) => endpoint(app, "(logout)"),
            Answer::Refused(Refusal::IdpNotReady { app } | Refusal::LoginStart { app, .. }) => {
                endpoint(app, "(sign-in)")
            }
            Answer::Refused(_) => (None, Arc::from("(refused)")),
            Answer::ToSignIn { .. } => (None, Arc::from("(sign-in)")),
            Answer::LogoutConfirm => (None, Arc::from("(logout)")),
            Answer::Metadata(_) => (None, Arc::from("(metadata)")),
            Answer::Jwks(_) => (None, Arc::from("(jwks)")),
            Answer::Scim(_) => (None, Arc::from("(scim)")),
            Answer::ForwardAllowed(_) | Answer::ForwardSignInRequired => {
                (None, Arc::from("(forward-auth)"))
            }
        }
    }
}

/// Why the gateway answered with an error page. `reply` maps each to its status, page,
/// metric reason and audit event.
#[derive(Debug)]
pub enum Refusal {
    UnknownHost,
    BadTarget(BadTarget),
    NotFound,
    MethodNotAllowed {
        app: Arc<App>,
        route: Arc<str>,
    },
    SignInRequired,
    ReplayNotKept,
    Denied {
        app: Arc<App>,
        route: Arc<str>,
        decision: Decision,
    },
    StoreUnavailable {
        op: &'static str,
        error: String,
    },
    DirectoryUnavailable {
        error: String,
    },
    IdpNotReady {
        app: Arc<App>,
    },
    LoginStart {
        app: Arc<App>,
        error: String,
    },
    Login {
        app: Arc<App>,
        error: LoginError,
    },
    LoginTooLarge {
        app: Arc<App>,
    },
    LoginMissingResponse {
        app: Arc<App>,
    },
    Logout {
        app: Arc<App>,
        initiator: &'static str,
        error: LogoutError,
        /// SP-initiated: the session cookie is cleared even so.
        clear_cookie: Option<String>,
    },
    /// A forward-auth call from an address that is not a trusted proxy.
    ForwardUntrusted,
    /// A state-changing request (sign-out) that did not come from the app's own pages.
    CrossSite,
}

/// The body-reading steps.
pub enum BodyStep {
    Acs {
        app: Arc<App>,
        /// The request's `Cookie` values: the browser binding of the sign-in.
        cookies: Vec<String>,
    },
    Scim {
        method: String,
        path: String,
        query: Option<String>,
        authorization: Option<Vec<u8>>,
        base_url: String,
    },
    Replay {
        app: Arc<App>,
        return_to: String,
        client: Option<IpAddr>,
    },
}

impl BodyStep {
    /// Largest body read for this step; a larger one is not read.
    pub fn limit(&self) -> usize {
        match self {
            BodyStep::Acs { .. } => MAX_ACS_BODY,
            BodyStep::Scim { .. } => crate::scim::service::MAX_BODY,
            BodyStep::Replay { app, .. } => app.post_replay_max_bytes,
        }
    }
}

fn refused(r: Refusal) -> Outcome {
    Outcome::Answer(Answer::Refused(r))
}

fn store_unavailable(op: &'static str, e: &SessionError) -> Refusal {
    Refusal::StoreUnavailable {
        op,
        error: e.to_string(),
    }
}

/// Judge one request (see the module docs).
pub async fn admit(gw: &Gateway, req: &RequestFacts<'_>) -> Outcome {
    let host = req.host();
    let app = gw.app_for_host(host).cloned();
    let rules = app.as_ref().map(|a| a.target_rules).unwrap_or_default();
    let target = match target::parse(req.target, host, rules) {
        Ok(t) => t,
        Err(e) => return refused(Refusal::BadTarget(e)),
    };
    let path: &str = &target.path;

    if gw.provisioning.is_some() && is_under(path, SCIM_PREFIX) {
        return scim_step(gw, req, &target, app.as_deref());
    }
    let Some(app) = app else {
        return refused(Refusal::UnknownHost);
    };
    let method = req.method;

    if path == app.acs_path && target.query == app.acs_query.as_deref() && method == Method::POST {
        let cookies = req
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        return Outcome::Body(BodyStep::Acs { app, cookies });
    }
    let client = client_ip(gw, req);
    match (path, method) {
        (METADATA_PATH, &Method::GET) => {
            return Outcome::Answer(Answer::Metadata(app.sp_metadata()));
        }
        (JWKS_PATH, &Method::GET) => {
            return match &app.jwt {
                Some(j) => Outcome::Answer(Answer::Jwks(bytes::Bytes::from(
                    serde_json::to_vec(j.jwks()).unwrap_or_default(),
                ))),
                None => refused(Refusal::NotFound),
            };
        }
        (LOGIN_PATH, &Method::GET) => {
            let return_to = target
                .query
                .and_then(|q| form_value(q.as_bytes(), "return_to"))
                .filter(|r| login::is_safe_relative_path(r))
                .unwrap_or_else(|| app.default_path.clone());
            return start_sign_in(gw, &app, &return_to, None, client).await;
        }
        // A GET never signs out (a cross-site link could): it shows a button that POSTs.
        (LOGOUT_PATH, &Method::GET) => return Outcome::Answer(Answer::LogoutConfirm),
        (LOGOUT_PATH, &Method::POST) => {
            if !same_origin(req, &app) {
                return refused(Refusal::CrossSite);
            }
            return sign_out(gw, req, app).await;
        }
        _ => {}
    }
    if app.slo_path.as_deref() == Some(path) && method == Method::GET {
        return slo(gw, app, target.query.unwrap_or("")).await;
    }
    if is_under(path, FORWARD_AUTH_PATH) {
        return forward_auth(gw, req, app, &target, client).await;
    }

    // A proxied request.
    let (route, user) = match judge(gw, &app, req, &target, method).await {
        Verdict::Refused(r) => return refused(r),
        Verdict::Public(route) => (route, None),
        Verdict::Allowed(route, user) => (route, Some(user)),
        Verdict::NoSession => {
            let return_to = target.path_and_query();
            return if is_navigation(req) {
                start_sign_in(gw, &app, &return_to, None, client).await
            } else if is_form_post(req)
                && is_urlencoded(req)
                && same_origin(req, &app)
                && app.post_replay_max_bytes > 0
            {
                // Only the app's own pages: a cross-site POST is never replayed.
                Outcome::Body(BodyStep::Replay {
                    app: app.clone(),
                    return_to: return_to.into_owned(),
                    client,
                })
            } else if is_form_post(req) {
                refused(Refusal::ReplayNotKept)
            } else {
                refused(Refusal::SignInRequired)
            };
        }
    };
    Outcome::Forward(Admitted {
        route: route.name.clone(),
        strip_method_override: !route.methods.is_empty(),
        user,
        rewrite: target
            .rewritten
            .then(|| target.path_and_query().into_owned()),
        app,
    })
}

/// What the route policy says about a request (shared by proxying and forward-auth).
enum Verdict<'r> {
    Public(&'r Route),
    Allowed(&'r Route, SignedIn),
    NoSession,
    Refused(Refusal),
}

async fn judge<'a>(
    gw: &Gateway,
    app: &'a Arc<App>,
    req: &RequestFacts<'_>,
    target: &Target<'_>,
    method: &Method,
) -> Verdict<'a> {
    let route = app.policy.route(&target.match_path);
    if target.encoded_slash && !route.allow_encoded_slash {
        return Verdict::Refused(Refusal::BadTarget(BadTarget::EncodedSlash));
    }
    if !authz::method_allowed(route, method.as_str()) {
        return Verdict::Refused(Refusal::MethodNotAllowed {
            app: app.clone(),
            route: route.name.clone(),
        });
    }
    if route.access == Access::Public {
        return Verdict::Public(route);
    }
    let cookies = req
        .headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok());
    let Some(id) = gw.cookie.read(cookies) else {
        return Verdict::NoSession;
    };
    let now = gw.clock.now().timestamp();
    let record = match gw.sessions.load(&id, &app.name, now).await {
        Ok(Some(r)) => r,
        Ok(None) => return Verdict::NoSession,
        Err(e) => return Verdict::Refused(store_unavailable("session_load", &e)),
    };
    // The identity judged is the identity forwarded: with authoritative SCIM groups,
    // both the decision and the headers/JWT use them.
    let mut scim = None;
    if let Some(p) = gw.provisioning.as_ref().filter(|p| p.authoritative_groups) {
        match p.groups_of(&record.identity).await {
            Ok(Some(groups)) => {
                scim = Some(Arc::new(crate::scim::effects::with_groups(
                    &record.identity,
                    &groups,
                )))
            }
            Ok(None) => {}
            Err(e) => {
                return Verdict::Refused(Refusal::DirectoryUnavailable {
                    error: e.to_string(),
                })
            }
        }
    }
    let jwt_key = app.jwt.as_ref().map(|_| match &scim {
        None => id.store_key(),
        Some(identity) => format!(
            "{}:{:016x}",
            id.store_key(),
            groups_fingerprint(identity.groups())
        ),
    });
    let user = SignedIn {
        record,
        scim,
        jwt_key,
    };
    match authz::decide(user.identity(), route, method.as_str()) {
        Decision::Allow => Verdict::Allowed(route, user),
        Decision::MethodNotAllowed => Verdict::Refused(Refusal::MethodNotAllowed {
            app: app.clone(),
            route: route.name.clone(),
        }),
        decision => Verdict::Refused(Refusal::Denied {
            app: app.clone(),
            route: route.name.clone(),
            decision,
        }),
    }
}

/// A stable fingerprint of a group list (the JWT cache follows SCIM membership changes).
fn groups_fingerprint(groups: &[String]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    groups.hash(&mut h);
    h.finish()
}

fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A request from the app's own pages: the browser says so (`Sec-Fetch-Site:
/// same-origin`) or, for browsers that do not send it, `Origin` is the app's.
fn same_origin(req: &RequestFacts<'_>, app: &App) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        return site.eq_ignore_ascii_case("same-origin");
    }
    req.header(header::ORIGIN).is_some_and(|o| {
        o == app.public_origin
            || o.strip_prefix(app.public_scheme)
                .and_then(|r| r.strip_prefix("://"))
                == Some(req.host())
    })
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the last
/// address it appended to `X-Forwarded-For`.
fn client_ip(gw: &Gateway, req: &RequestFacts<'_>) -> Option<IpAddr> {
    if gw.is_trusted_proxy(req.peer) {
        let last = req
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .next_back();
        if last.is_some() {
            return last;
        }
    }
    req.peer
}

/// A browser navigation: GET/HEAD whose Accept includes HTML.
fn is_navigation(req: &RequestFacts<'_>) -> bool {
    matches!(*req.method, Method::GET | Method::HEAD) && req.accepts_html()
}

/// A browser form submission: POST whose Accept includes HTML.
fn is_form_post(req: &RequestFacts<'_>) -> bool {
    *req.method == Method::POST && req.accepts_html()
}

/// A body of `application/x-www-form-urlencoded` (the only one PostReplay keeps).
fn is_urlencoded(req: &RequestFacts<'_>) -> bool {
    req.header(header::CONTENT_TYPE).is_some_and(|v| {
        v.trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    })
}

pub fn form_value(body: &[u8], key: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn start_sign_in(
    gw: &Gateway,
    app: &Arc<App>,
    return_to: &str,
    post_body: Option<String>,
    client: Option<IpAddr>,
) -> Outcome {
    let replay = post_body.is_some();
    match login::start(gw, app, return_to, post_body, client).await {
        Ok(started) => Outcome::Answer(Answer::ToSignIn {
            location: started.location,
            // 303: a kept POST is followed with GET.
            status: if replay { 303 } else { 302 },
            binding_cookie: started.binding_cookie,
        }),
        Err(LoginError::Store(e)) => refused(store_unavailable("put_pending", &e)),
        Err(LoginError::IdpNotReady) => refused(Refusal::IdpNotReady { app: app.clone() }),
        Err(error @ LoginError::TooManyPending) => refused(Refusal::Login {
            app: app.clone(),
            error,
        }),
        Err(e) => refused(Refusal::LoginStart {
            app: app.clone(),
            error: e.to_string(),
        }),
    }
}

// === own endpoints ===

async fn sign_out(gw: &Gateway, req: &RequestFacts<'_>, app: Arc<App>) -> Outcome {
    let cookies = req
        .headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|v| v.to_str().ok());
    let id = gw.cookie.read(cookies);
    let cookie = gw.cookie.clear_cookie();
    match logout::start(gw, &app, id.as_ref()).await {
        Ok(outcome) => {
            let (location, at_idp) = match outcome {
                SignOut::AtIdp(url) => (Some(url), true),
                SignOut::Done(url) => (url, false),
            };
            Outcome::Answer(Answer::SignedOut {
                app,
                location,
                cookie,
                at_idp,
                had_session: id.is_some(),
            })
        }
        Err(error) => refused(Refusal::Logout {
            app,
            initiator: "sp",
            error,
            clear_cookie: Some(cookie),
        }),
    }
}

async fn slo(gw: &Gateway, app: Arc<App>, query: &str) -> Outcome {
    let cookie = gw.cookie.clear_cookie();
    match logout::handle(gw, &app, query).await {
        Ok(SloOutcome::SignedOut(location)) => Outcome::Answer(Answer::SloConfirmed {
            app,
            location,
            cookie,
        }),
        Ok(SloOutcome::Answered {
            response_url,
            ended,
        }) => Outcome::Answer(Answer::SloAnswered {
            app,
            location: response_url,
            cookie,
            ended,
        }),
        Err(error) => refused(Refusal::Logout {
            app,
            initiator: "idp",
            error,
            clear_cookie: None,
        }),
    }
}

/// Forward-auth: judge the original request a trusted proxy describes, answer instead
/// of proxying. The original target and method come from the one place the configured
/// proxy puts them, and only a trusted proxy is listened to.
async fn forward_auth(
    gw: &Gateway,
    req: &RequestFacts<'_>,
    app: Arc<App>,
    own: &Target<'_>,
    client: Option<IpAddr>,
) -> Outcome {
    let Some(style) = gw.forward_auth else {
        return refused(Refusal::NotFound);
    };
    if !gw.is_trusted_proxy(req.peer) {
        return refused(Refusal::ForwardUntrusted);
    }
    let (raw_target, method): (Cow<'_, [u8]>, Cow<'_, str>) = match style {
        ForwardStyle::Nginx => (
            req.header("x-original-uri")
                .map(|u| Cow::Borrowed(u.as_bytes()))
                .unwrap_or_default(),
            req.header("x-original-method").unwrap_or("GET").into(),
        ),
        ForwardStyle::Traefik | ForwardStyle::Caddy => (
            req.header("x-forwarded-uri")
                .map(|u| Cow::Borrowed(u.as_bytes()))
                .unwrap_or_default(),
            req.header("x-forwarded-method").unwrap_or("GET").into(),
        ),
        ForwardStyle::Envoy => {
            let rest = own
                .path
                .strip_prefix(FORWARD_AUTH_PATH)
                .filter(|r| r.starts_with('/'))
                .unwrap_or("/");
            let t = match own.query {
                Some(q) => format!("{rest}?{q}"),
                None => rest.to_string(),
            };
            (Cow::Owned(t.into_bytes()), req.method.as_str().into())
        }
    };
    let host = match style {
        ForwardStyle::Traefik | ForwardStyle::Caddy => {
            req.header("x-forwarded-host").unwrap_or(req.host())
        }
        _ => req.host(),
    };
    let target = match target::parse(&raw_target, host, app.target_rules) {
        Ok(t) => t,
        Err(e) => return refused(Refusal::BadTarget(e)),
    };
    let Ok(method) = Method::from_bytes(method.trim().to_ascii_uppercase().as_bytes()) else {
        return refused(Refusal::BadTarget(BadTarget::Form));
    };
    match judge(gw, &app, req, &target, &method).await {
        // No identity, said explicitly: every identity header present and empty, so a
        // proxy that copies them (Caddy's copy_headers) never passes on a client's value
        // or a placeholder of its own.
        Verdict::Public(_) => Outcome::Answer(Answer::ForwardAllowed(
            app.headers
                .names()
                .map(|n| (n.to_string(), String::new()))
                .collect(),
        )),
        Verdict::Allowed(_, user) => {
            let mut headers: Vec<(String, String)> = app
                .headers
                .build(user.identity())
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect();
            if let (Some(jwt), Some(key)) = (&app.jwt, &user.jwt_key) {
                let now = gw.clock.now().timestamp();
                match jwt.token(key, user.identity(), now) {
                    Ok(t) => headers.push((jwt.header.clone(), t.to_string())),
                    Err(e) => {
                        return refused(Refusal::LoginStart {
                            app: app.clone(),
                            error: format!("identity JWT could not be signed: {e}"),
                        })
                    }
                }
            }
            Outcome::Answer(Answer::ForwardAllowed(headers))
        }
        Verdict::NoSession => {
            let wants_status = match own
                .query
                .and_then(|q| form_value(q.as_bytes(), "mode"))
                .as_deref()
            {
                Some("401") => true,
                Some("redirect") => false,
                _ => style == ForwardStyle::Nginx,
            };
            if wants_status {
                Outcome::Answer(Answer::ForwardSignInRequired)
            } else {
                start_sign_in(gw, &app, &target.path_and_query(), None, client).await
            }
        }
        Verdict::Refused(r) => refused(r),
    }
}

/// SCIM: the token is checked before the body is read; then the body, then the service.
fn scim_step(
    gw: &Gateway,
    req: &RequestFacts<'_>,
    target: &Target<'_>,
    app: Option<&App>,
) -> Outcome {
    let Some(p) = &gw.provisioning else {
        return refused(Refusal::NotFound);
    };
    let path = &target.path[SCIM_PREFIX.len()..];
    let authorization = req.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if let Some(mut refusal) = p.service.refuse_unauthorized(path, authorization) {
        refusal.method_label = crate::scim::service::method_label(req.method.as_str());
        return Outcome::Answer(Answer::Scim(refusal));
    }
    let scheme = app.map_or("https", |a| a.public_scheme);
    Outcome::Body(BodyStep::Scim {
        method: req.method.as_str().to_string(),
        path: path.to_string(),
        query: target.query.map(str::to_string),
        authorization: authorization.map(<[u8]>::to_vec),
        base_url: format!("{scheme}://{}{SCIM_PREFIX}", req.host()),
    })
}

/// The second half of a [`BodyStep`]: `body` is `None` when it was larger than the
/// step's limit.
pub async fn with_body(gw: &Gateway, step: BodyStep, body: Option<Vec<u8>>) -> Answer {
    match step {
        BodyStep::Acs { app, cookies } => acs(gw, app, body, &cookies).await,
        BodyStep::Scim {
            method,
            path,
            query,
            authorization,
            base_url,
        } => {
            let Some(p) = &gw.provisioning else {
                return Answer::Refused(Refusal::NotFound);
            };
            let response = match body {
                None => ScimResponse::too_large(),
                Some(body) => {
                    p.service
                        .handle(ScimRequest {
                            method: &method,
                            path: &path,
                            query: query.as_deref(),
                            authorization: authorization.as_deref(),
                            body: &body,
                            base_url: &base_url,
                        })
                        .await
                }
            };
            p.apply_events(&response.events).await;
            Answer::Scim(response)
        }
        BodyStep::Replay {
            app,
            return_to,
            client,
        } => {
            let Some(body) = body.and_then(|b| String::from_utf8(b).ok()) else {
                return Answer::Refused(Refusal::ReplayNotKept);
            };
            match start_sign_in(gw, &app, &return_to, Some(body), client).await {
                Outcome::Answer(a) => a,
                _ => Answer::Refused(Refusal::ReplayNotKept),
            }
        }
    }
}

async fn acs(gw: &Gateway, app: Arc<App>, body: Option<Vec<u8>>, cookies: &[String]) -> Answer {
    let Some(body) = body else {
        return Answer::Refused(Refusal::LoginTooLarge { app });
    };
    let Some(saml_response) = form_value(&body, "SAMLResponse") else {
        return Answer::Refused(Refusal::LoginMissingResponse { app });
    };
    let relay_state = form_value(&body, "RelayState");
    let cookies: Vec<&str> = cookies.iter().map(String::as_str).collect();
    match login::finish(gw, &app, &saml_response, relay_state.as_deref(), &cookies).await {
        Ok(done) => Answer::SignedIn {
            cookie: gw.cookie.set_cookie(&done.session),
            clear_binding: done.clear_binding,
            location: done.return_to,
            replay_body: done.post_body,
            assertion_id: done.assertion_id,
            app,
        },
        Err(error) => Answer::Refused(Refusal::Login { app, error }),
    }
}

/// The session ID a request carries, if any (sign-out, bench, tests).
pub fn session_of(gw: &Gateway, headers: &HeaderMap) -> Option<SessionId> {
    gw.cookie.read(
        headers
            .get_all(header::COOKIE)
            .into_iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

#[cfg(test)]
mod tests;

/// Shared by other modules' unit tests: an app built from a small config.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub fn app() -> Arc<App> {
        let dir = tempfile::tempdir().expect("tempdir");
        let idp = crate::saml::DevIdp::generate("https://idp.example.com/").expect("idp");
        std::fs::write(dir.path().join("idp.pem"), idp.certificate_pem()).expect("pem");
        let text = "[listen]\npublic = \"127.0.0.1:8080\"\n[[app]]\nname = \"wiki\"\nhosts = [\"wiki.example.com\"]\nupstream = \"http://127.0.0.1:3000\"\n[app.sp]\nentity_id = \"https://wiki.example.com/saml\"\nacs_url = \"https://wiki.example.com/saml/acs\"\n[app.idp]\nentity_id = \"https://idp.example.com/\"\nsso_url = \"https://idp.example.com/sso\"\ncertificate_file = \"idp.pem\"\n";
        let env = std::collections::HashMap::<String, String>::new();
        let config = crate::config::from_str(text, dir.path(), &env).expect("config");
        let gw = Gateway::build(&config, Arc::new(crate::clock::SystemClock)).expect("gateway");
        gw.apps()[0].clone()
    }
}
