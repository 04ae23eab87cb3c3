//! The pingora service: the only module that knows pingora.
//!
//! ```text
//! request_filter ──┬─ 1 app by Host (unknown host: 404 page)
//!                  ├─ 2 strip client-sent identity headers (prefix + every injected name)
//!                  ├─ 3 own endpoints: ACS (POST), /saml/metadata, /saml/login,
//!                  │     /saml/logout, the SLO URL (LogoutRequest/LogoutResponse)
//!                  ├─ 4 route by longest prefix; public routes go straight upstream
//!                  ├─ 5 session: cookie -> store (unreachable: 503 page)
//!                  │     none: navigational GET/HEAD -> 302 to IdP; anything else -> 401
//!                  └─ 6 authz: route policy x identity -> allow | 403 page
//! upstream_peer            app -> HttpPeer (built at start-up)
//! upstream_request_filter  identity headers, X-Forwarded-*
//! response_filter          upstream latency
//! logging                  metrics, access log
//! ```

mod admin;
pub mod demo;

mod server;
pub mod wire;

pub use admin::AdminApp;
pub use server::build_server;

use crate::authz::{self, Access, Decision};
use crate::gateway::login::{self, LoginError};
use crate::gateway::logout::{self, LogoutError, SignOut, SloOutcome};
use crate::gateway::pages;
use crate::gateway::{App, Gateway};
use crate::metrics::METRICS;
use crate::session::{SessionError, SessionRecord};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// Largest ACS form body read (the SAMLResponse inside is limited separately).
const MAX_ACS_BODY: usize = 512 * 1024;
/// SP metadata for the app of this host.
const METADATA_PATH: &str = "/saml/metadata";
/// Explicit sign-in (Entra's "Sign-on URL" may point here): `?return_to=/path`.
const LOGIN_PATH: &str = "/saml/login";
/// Forward-auth endpoint for proxies that keep their own routing.
const FORWARD_AUTH_PATH: &str = "/_ssogate/auth";
/// Envoy's ext_authz appends the original path to the endpoint's.
const FORWARD_AUTH_PREFIX: &str = "/_ssogate/auth/";
/// The app's identity-JWT signing keys.
const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Sign-out (SP-initiated Single Logout when configured).
const LOGOUT_PATH: &str = "/saml/logout";
/// SCIM 2.0 (Entra provisioning "Tenant URL": `https://<host>/scim/v2`).
const SCIM_PREFIX: &str = "/scim/v2";
const SCIM_PREFIX_SLASH: &str = "/scim/v2/";

pub struct GatewayProxy {
    gw: Arc<Gateway>,
    peers: HashMap<String, HttpPeer>,
}

impl GatewayProxy {
    pub fn new(gw: Arc<Gateway>) -> Self {
        let peers = gw
            .apps()
            .iter()
            .map(|a| {
                let u = &a.upstream;
                let mut peer = HttpPeer::new(u.authority(), u.tls, u.host.clone());
                if u.tls {
                    let ca: Vec<pingora::tls::x509::X509> =
                        u.ca.iter()
                            .filter_map(|der| pingora::tls::x509::X509::from_der(der).ok())
                            .collect();
                    if !ca.is_empty() {
                        peer.options.ca = Some(Arc::new(ca.into_boxed_slice()));
                    }
                    if u.http2 {
                        peer.options.set_http_version(2, 1);
                    }
                }
                (a.name.clone(), peer)
            })
            .collect();
        GatewayProxy { gw, peers }
    }
}

/// Per-request state.
pub struct Ctx {
    app: Option<Arc<App>>,
    route: String,
    session: Option<Arc<SessionRecord>>,
    /// Store key of the session (the identity JWT cache key).
    session_key: Option<String>,
    reference: Reference,
    start: Instant,
    host: String,
}

/// The reference shown on error pages and logged with the request: 16 hex digits, kept
/// inline (made for every request, shown on few).
#[derive(Clone, Copy)]
pub struct Reference([u8; 16]);

impl Reference {
    fn new() -> Self {
        let mut out = [0u8; 16];
        // hex::encode_to_slice only fails on a wrong length: 8 bytes -> 16 digits.
        let _ = hex::encode_to_slice(rand::random::<u64>().to_be_bytes(), &mut out);
        Reference(out)
    }
}

impl std::ops::Deref for Reference {
    type Target = str;
    fn deref(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or("0000000000000000")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

// === impl ProxyHttp ===

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            app: None,
            route: String::new(),
            session: None,
            session_key: None,
            reference: Reference::new(),
            start: Instant::now(),
            host: String::new(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.host = request_host(session.req_header());
        if self.gw.provisioning.is_some() {
            let path = session.req_header().uri.path();
            if path == SCIM_PREFIX || path.starts_with(SCIM_PREFIX_SLASH) {
                ctx.route = "(scim)".into();
                self.scim(session, ctx).await?;
                return Ok(true);
            }
        }
        let Some(app) = self.gw.app_for_host(&ctx.host).cloned() else {
            ctx.route = "(no app)".into();
            respond_page(
                session,
                404,
                "Unknown site",
                "No application is configured for this host name.",
                &ctx.reference,
            )
            .await?;
            return Ok(true);
        };
        ctx.app = Some(app.clone());

        strip_client_identity(session.req_header_mut(), &app);

        // Cloning the Uri shares its bytes: no copy of the path.
        let method = session.req_header().method.clone();
        let uri = session.req_header().uri.clone();
        let path = uri.path();
        let query = uri.query();

        if path == app.acs_path && query == app.acs_query.as_deref() && method == http::Method::POST
        {
            ctx.route = "(acs)".into();
            self.acs(session, ctx, &app).await?;
            return Ok(true);
        }
        if path == METADATA_PATH && method == http::Method::GET {
            ctx.route = "(metadata)".into();
            let xml = app.sp_metadata();
            respond(
                session,
                200,
                "application/samlmetadata+xml",
                &[],
                Bytes::from(xml),
            )
            .await?;
            return Ok(true);
        }
        if path == JWKS_PATH && method == http::Method::GET {
            ctx.route = "(jwks)".into();
            match &app.jwt {
                Some(j) => {
                    let body = Bytes::from(serde_json::to_vec(j.jwks()).unwrap_or_default());
                    respond(
                        session,
                        200,
                        "application/jwk-set+json",
                        &[("cache-control", "public, max-age=300".to_string())],
                        body,
                    )
                    .await?;
                }
                None => {
                    respond_page(
                        session,
                        404,
                        "Not found",
                        "This application has no identity JWT configured.",
                        &ctx.reference,
                    )
                    .await?;
                }
            }
            return Ok(true);
        }
        if path == LOGIN_PATH && method == http::Method::GET {
            ctx.route = "(login)".into();
            let return_to = query
                .and_then(|q| form_value(q.as_bytes(), "return_to"))
                .filter(|r| login::is_safe_relative_path(r))
                .unwrap_or_else(|| app.default_path.clone());
            self.redirect_to_idp(session, ctx, &app, &return_to).await?;
            return Ok(true);
        }
        if path == LOGOUT_PATH && matches!(method, http::Method::GET | http::Method::POST) {
            ctx.route = "(logout)".into();
            self.sign_out(session, ctx, &app).await?;
            return Ok(true);
        }
        if app.slo_path.as_deref() == Some(path) && method == http::Method::GET {
            ctx.route = "(slo)".into();
            self.slo(session, ctx, &app, query.unwrap_or("")).await?;
            return Ok(true);
        }

        // Forward-auth (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz): judge
        // the original request described by the proxy's headers, answer instead of proxying.
        let forward = (path == FORWARD_AUTH_PATH || path.starts_with(FORWARD_AUTH_PREFIX))
            .then(|| forward_mode(session.req_header()));
        let path_and_query: std::borrow::Cow<'_, str> = match forward {
            Some(_) => original_uri(session.req_header()).into(),
            None => uri.path_and_query().map_or("/", |p| p.as_str()).into(),
        };
        let route = app.policy.route(&path_and_query);
        ctx.route = route.name.clone();
        let route_method: std::borrow::Cow<'_, str> = match forward {
            Some(_) => original_method(session.req_header()).into(),
            None => method.as_str().into(),
        };
        if !authz::method_allowed(route, &route_method) {
            respond_page(
                session,
                405,
                "Method not allowed",
                &format!("\"{}\" does not accept this method.", route.name),
                &ctx.reference,
            )
            .await?;
            return Ok(true);
        }
        if route.access == Access::Public {
            if forward.is_some() {
                respond(session, 200, "text/plain; charset=utf-8", &[], Bytes::new()).await?;
                return Ok(true);
            }
            return Ok(false);
        }

        let session_id = self.session_cookie(session);
        let record = match &session_id {
            None => None,
            Some(id) => {
                let now = self.gw.clock.now().timestamp();
                match self.gw.sessions.load(id, &app.name, now).await {
                    Ok(r) => r,
                    Err(e) => {
                        store_unavailable(session, ctx, "session_load", &e).await?;
                        return Ok(true);
                    }
                }
            }
        };

        let Some(record) = record else {
            if forward == Some(ForwardMode::Status) {
                respond(
                    session,
                    401,
                    "text/plain; charset=utf-8",
                    &[],
                    Bytes::from_static(b"sign-in required\n"),
                )
                .await?;
                return Ok(true);
            }
            if is_navigational(session.req_header()) {
                self.redirect_to_idp(session, ctx, &app, &path_and_query)
                    .await?;
            } else if is_form_post(session.req_header()) && forward.is_none() {
                self.replay_after_sign_in(session, ctx, &app, &path_and_query)
                    .await?;
            } else {
                respond_page(
                    session,
                    401,
                    "Sign-in required",
                    "This request needs a signed-in session. Open the application in a browser to sign in.",
                    &ctx.reference,
                )
                .await?;
            }
            return Ok(true);
        };

        // SCIM-authoritative groups replace the token's groups claim for group-guarded routes.
        let scim_identity;
        let identity = match (&self.gw.provisioning, &route.access) {
            (Some(p), Access::SignedIn(rules)) if p.authoritative_groups && rules.uses_groups() => {
                match p.groups_of(&record.identity.name_id).await {
                    Ok(Some(groups)) => {
                        scim_identity =
                            crate::scim::effects::with_groups(&record.identity, &groups);
                        &scim_identity
                    }
                    Ok(None) => &record.identity,
                    Err(e) => {
                        warn!(error = %e, reference = %ctx.reference, "user directory unavailable");
                        respond_page(
                            session,
                            503,
                            "Temporarily unavailable",
                            "The gateway cannot reach its user directory right now. Please try again in a moment.",
                            &ctx.reference,
                        )
                        .await?;
                        return Ok(true);
                    }
                }
            }
            _ => &record.identity,
        };
        match authz::decide(identity, route, &route_method) {
            Decision::Allow => {
                if forward.is_some() {
                    // The identity as response headers, for the proxy to pass on.
                    let mut headers: Vec<(&str, String)> =
                        app.headers.build(&record.identity).into_iter().collect();
                    let token;
                    if let (Some(jwt), Some(id)) = (&app.jwt, &session_id) {
                        let now = self.gw.clock.now().timestamp();
                        token = jwt
                            .token(&id.store_key(), &record.identity, now)
                            .map_err(|e| Error::explain(InternalError, e.to_string()))?;
                        headers.push((jwt.header.as_str(), token.to_string()));
                    }
                    respond(
                        session,
                        200,
                        "text/plain; charset=utf-8",
                        &headers,
                        Bytes::new(),
                    )
                    .await?;
                    return Ok(true);
                }
                ctx.session = Some(record);
                if app.jwt.is_some() {
                    ctx.session_key = session_id.as_ref().map(|id| id.store_key());
                }
                Ok(false)
            }
            denial => {
                let (reason, message) = match denial {
                    Decision::GroupsUnknown => ("groups_unknown", format!(
                        "Access to \"{}\" depends on group membership, but your sign-in token listed too many groups to include them. An administrator can fix this in Entra: set the groups claim to \"Groups assigned to the application\".",
                        route.name
                    )),
                    Decision::Denied => ("denied_by_rule", format!(
                        "Your account may not open \"{}\". Ask an administrator if you need access.",
                        route.name
                    )),
                    _ => ("not_in_groups", format!(
                        "Your account is not allowed to open \"{}\". Ask an administrator for access.",
                        route.name
                    )),
                };
                METRICS
                    .denials
                    .with_label_values(&[&app.name, &route.name, reason])
                    .inc();
                info!(target: "ssogate::audit", event = "access_denied", app = %app.name, route = %route.name, reason, reference = %ctx.reference);
                respond_page(session, 403, "Access denied", &message, &ctx.reference).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let app = ctx
            .app
            .as_ref()
            .ok_or_else(|| Error::explain(InternalError, "no app selected"))?;
        let peer = self
            .peers
            .get(&app.name)
            .ok_or_else(|| Error::explain(InternalError, "no upstream for app"))?;
        Ok(Box::new(peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(app) = ctx.app.as_ref() else {
            return Ok(());
        };
        if let Some(session) = &ctx.session {
            for (name, value) in app.headers.build_wire(&session.identity) {
                upstream.insert_header(name, value)?;
            }
            if let (Some(jwt), Some(key)) = (&app.jwt, &ctx.session_key) {
                let now = self.gw.clock.now().timestamp();
                match jwt.token(key, &session.identity, now) {
                    Ok(token) => upstream.insert_header(jwt.header.clone(), token.as_bytes())?,
                    Err(e) => {
                        return Err(Error::explain(
                            InternalError,
                            format!("identity JWT could not be signed: {e}"),
                        ))
                    }
                }
            }
        }
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
            use std::fmt::Write as _;
            let mut xff = String::with_capacity(64);
            if let Some(prev) = upstream
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                xff.push_str(prev);
                xff.push_str(", ");
            }
            let _ = write!(xff, "{}", addr.ip()); // infallible into a String
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        upstream.insert_header("x-forwarded-proto", app.public_scheme)?;
        if !ctx.host.is_empty() {
            // Nothing reads ctx.host after this point of a proxied request.
            upstream.insert_header("x-forwarded-host", std::mem::take(&mut ctx.host))?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(app) = &ctx.app {
            app.upstream_latency
                .observe(ctx.start.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map(|r| r.status);
        let status_label = status.as_ref().map_or("0", http::StatusCode::as_str);
        let status = status.map_or(0, |s| s.as_u16());
        let app = ctx.app.as_ref().map(|a| a.name.as_str()).unwrap_or("-");
        METRICS
            .requests
            .with_label_values(&[app, &ctx.route, status_label])
            .inc();
        tracing::debug!(
            target: "ssogate::access",
            app, route = %ctx.route, status,
            method = %session.req_header().method,
            elapsed_ms = ctx.start.elapsed().as_millis() as u64,
            error = e.map(|e| e.to_string()),
            reference = %ctx.reference,
        );
    }
}

// === own endpoints ===

impl GatewayProxy {
    async fn redirect_to_idp(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        app: &App,
        return_to: &str,
    ) -> Result<()> {
        match login::start(&self.gw, app, return_to).await {
            Ok(url) => {
                respond(
                    session,
                    302,
                    "text/html; charset=utf-8",
                    &[("location", url)],
                    Bytes::new(),
                )
                .await
            }
            Err(LoginError::Store(e)) => store_unavailable(session, ctx, "put_pending", &e).await,
            Err(LoginError::IdpNotReady) => {
                warn!(target: "ssogate::audit", event = "login_start_failed", app = %app.name, reason = "idp_not_ready", reference = %ctx.reference);
                respond_page(
                    session,
                    503,
                    "Sign-in temporarily unavailable",
                    "The gateway has not loaded the identity provider's metadata (its signing keys) yet. Please try again in a moment.",
                    &ctx.reference,
                )
                .await
            }
            Err(e) => {
                warn!(target: "ssogate::audit", event = "login_start_failed", app = %app.name, error = %e, reference = %ctx.reference);
                respond_page(
                    session,
                    500,
                    "Sign-in unavailable",
                    "The sign-in request could not be built.",
                    &ctx.reference,
                )
                .await
            }
        }
    }

    /// A browser form POST without a session: keep the body (urlencoded, within the
    /// limit) with the pending sign-in and post it again afterwards (PostReplay).
    async fn replay_after_sign_in(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        app: &App,
        return_to: &str,
    ) -> Result<()> {
        let urlencoded = session
            .req_header()
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let body = if urlencoded && app.post_replay_max_bytes > 0 {
            read_body_limited(session, app.post_replay_max_bytes).await?
        } else {
            None
        };
        let Some(body) = body.and_then(|b| String::from_utf8(b).ok()) else {
            return respond_page(
                session,
                401,
                "Sign-in required",
                "Your session had ended, and this submission could not be kept (it is not a plain form, or it is too large). Sign in again, then submit it once more.",
                &ctx.reference,
            )
            .await;
        };
        match login::start_with_replay(&self.gw, app, return_to, Some(body)).await {
            Ok(url) => {
                // 303: the browser follows with GET.
                respond(
                    session,
                    303,
                    "text/html; charset=utf-8",
                    &[("location", url)],
                    Bytes::new(),
                )
                .await
            }
            Err(LoginError::Store(e)) => store_unavailable(session, ctx, "put_pending", &e).await,
            Err(e) => {
                warn!(target: "ssogate::audit", event = "login_start_failed", app = %app.name, error = %e, reference = %ctx.reference);
                respond_page(
                    session,
                    503,
                    "Sign-in unavailable",
                    "The sign-in request could not be built.",
                    &ctx.reference,
                )
                .await
            }
        }
    }

    async fn acs(&self, session: &mut Session, ctx: &mut Ctx, app: &App) -> Result<()> {
        let body = match read_body_limited(session, MAX_ACS_BODY).await? {
            Some(b) => b,
            None => {
                return self
                    .login_failed(
                        session,
                        ctx,
                        app,
                        "too_large",
                        413,
                        "The sign-in response is too large.",
                    )
                    .await;
            }
        };
        let Some(saml_response) = form_value(&body, "SAMLResponse") else {
            return self
                .login_failed(
                    session,
                    ctx,
                    app,
                    "missing_saml_response",
                    400,
                    "The request carries no SAMLResponse.",
                )
                .await;
        };
        let relay_state = form_value(&body, "RelayState");
        match login::finish(&self.gw, app, &saml_response, relay_state.as_deref()).await {
            Ok(done) => {
                METRICS
                    .logins
                    .with_label_values(&[&app.name, "success"])
                    .inc();
                info!(target: "ssogate::audit", event = "login", app = %app.name, result = "success", assertion_id = %done.assertion_id, reference = %ctx.reference);
                let cookie = self.gw.cookie.set_cookie(&done.session);
                if let Some(body) = &done.post_body {
                    // Post the kept form again, from the browser, now signed in.
                    let page = pages::replay_form(&done.return_to, body, &ctx.reference);
                    return respond(
                        session,
                        200,
                        "text/html; charset=utf-8",
                        &[("set-cookie", cookie)],
                        page,
                    )
                    .await;
                }
                respond(
                    session,
                    302,
                    "text/html; charset=utf-8",
                    &[("location", done.return_to), ("set-cookie", cookie)],
                    Bytes::new(),
                )
                .await
            }
            Err(LoginError::Store(e)) => {
                METRICS
                    .logins
                    .with_label_values(&[&app.name, "failure"])
                    .inc();
                METRICS
                    .login_failures
                    .with_label_values(&[&app.name, "store_unavailable"])
                    .inc();
                store_unavailable(session, ctx, "login", &e).await
            }
            Err(e @ LoginError::Directory(_)) => {
                self.login_failed(
                    session,
                    ctx,
                    app,
                    e.reason(),
                    503,
                    "The sign-in service cannot reach its user directory right now. Please try again in a moment.",
                )
                .await
            }
            Err(e) => {
                let message = format!("Sign-in failed: {e}.");
                self.login_failed(session, ctx, app, e.reason(), 403, &message)
                    .await
            }
        }
    }

    async fn scim(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let Some(p) = &self.gw.provisioning else {
            return Ok(());
        };
        let req = session.req_header();
        let method = req.method.as_str().to_string();
        let path = req.uri.path()[SCIM_PREFIX.len()..].to_string();
        let query = req.uri.query().map(str::to_string);
        let authorization = req
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let scheme = match self.gw.app_for_host(&ctx.host) {
            Some(a) => a.public_scheme,
            None => "https",
        };
        let base_url = format!("{scheme}://{}{SCIM_PREFIX}", ctx.host);
        let body = read_body_limited(session, crate::scim::service::MAX_BODY).await?;
        let oversized = body.is_none();
        let body = body.unwrap_or_default();
        let response = if oversized {
            crate::scim::ScimResponse {
                status: 413,
                body: Some(crate::scim::ScimError::new(413, None, "request body too large").body()),
                location: None,
                events: Vec::new(),
                resource: "unknown",
            }
        } else {
            p.service
                .handle(crate::scim::ScimRequest {
                    method: &method,
                    path: &path,
                    query: query.as_deref(),
                    authorization: authorization.as_deref(),
                    body: &body,
                    base_url: &base_url,
                })
                .await
        };
        METRICS
            .scim_requests
            .with_label_values(&[response.resource, &method, &response.status.to_string()])
            .inc();
        if response.status == 401 {
            warn!(target: "ssogate::audit", event = "scim_unauthorized", reference = %ctx.reference);
        }
        p.apply_events(&response.events).await;
        let mut headers = Vec::new();
        if let Some(l) = response.location {
            headers.push(("location", l));
        }
        if response.status == 401 {
            headers.push((
                "www-authenticate",
                "Bearer realm=\"ssogate SCIM\"".to_string(),
            ));
        }
        let body = response
            .body
            .map(|b| Bytes::from(serde_json::to_vec(&b).unwrap_or_default()))
            .unwrap_or_default();
        let mut resp = ResponseHeader::build(response.status, Some(4 + headers.len()))?;
        resp.insert_header("content-type", "application/scim+json")?;
        resp.insert_header("content-length", body.len().to_string())?;
        resp.insert_header("cache-control", "no-store")?;
        for (name, value) in headers {
            resp.append_header(name, value.as_str())?;
        }
        let empty = body.is_empty();
        session.write_response_header(Box::new(resp), empty).await?;
        if !empty {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }

    fn session_cookie(&self, session: &Session) -> Option<crate::session::SessionId> {
        let cookie_values = session
            .req_header()
            .headers
            .get_all(http::header::COOKIE)
            .into_iter()
            .filter_map(|v| v.to_str().ok());
        self.gw.cookie.read(cookie_values)
    }

    async fn sign_out(&self, session: &mut Session, ctx: &mut Ctx, app: &App) -> Result<()> {
        let id = self.session_cookie(session);
        let clear = ("set-cookie", self.gw.cookie.clear_cookie());
        match logout::start(&self.gw, app, id.as_ref()).await {
            Ok(outcome) => {
                METRICS
                    .logouts
                    .with_label_values(&[&app.name, "sp", "success"])
                    .inc();
                info!(target: "ssogate::audit", event = "logout", app = %app.name, initiator = "sp", had_session = id.is_some(), at_idp = matches!(outcome, SignOut::AtIdp(_)), reference = %ctx.reference);
                match outcome {
                    SignOut::AtIdp(url) | SignOut::Done(Some(url)) => {
                        respond(
                            session,
                            302,
                            "text/html; charset=utf-8",
                            &[("location", url), clear],
                            Bytes::new(),
                        )
                        .await
                    }
                    SignOut::Done(None) => signed_out_page(session, ctx, &[clear]).await,
                }
            }
            Err(e) => {
                METRICS
                    .logouts
                    .with_label_values(&[&app.name, "sp", e.reason()])
                    .inc();
                if let LogoutError::Store(err) = &e {
                    METRICS.store_errors.with_label_values(&["logout"]).inc();
                    warn!(op = "logout", error = %err, reference = %ctx.reference, "session store unavailable");
                }
                warn!(target: "ssogate::audit", event = "logout", app = %app.name, initiator = "sp", result = "failure", reason = e.reason(), reference = %ctx.reference);
                let body = pages::render(
                    "Sign-out incomplete",
                    "Your browser's session cookie was removed, but the sign-in service could not confirm the end of the session right now. Please try again in a moment.",
                    &ctx.reference,
                );
                respond(session, 503, "text/html; charset=utf-8", &[clear], body).await
            }
        }
    }

    async fn slo(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        app: &App,
        query: &str,
    ) -> Result<()> {
        match logout::handle(&self.gw, app, query).await {
            Ok(SloOutcome::SignedOut(target)) => {
                METRICS
                    .logouts
                    .with_label_values(&[&app.name, "sp", "confirmed"])
                    .inc();
                info!(target: "ssogate::audit", event = "logout_confirmed", app = %app.name, reference = %ctx.reference);
                let clear = ("set-cookie", self.gw.cookie.clear_cookie());
                match target {
                    Some(url) => {
                        respond(
                            session,
                            302,
                            "text/html; charset=utf-8",
                            &[("location", url), clear],
                            Bytes::new(),
                        )
                        .await
                    }
                    None => signed_out_page(session, ctx, &[clear]).await,
                }
            }
            Ok(SloOutcome::Answered {
                response_url,
                ended,
            }) => {
                METRICS
                    .logouts
                    .with_label_values(&[&app.name, "idp", "success"])
                    .inc();
                METRICS
                    .slo_sessions_ended
                    .with_label_values(&[&app.name])
                    .inc_by(ended as u64);
                info!(target: "ssogate::audit", event = "logout", app = %app.name, initiator = "idp", sessions_ended = ended, reference = %ctx.reference);
                let clear = ("set-cookie", self.gw.cookie.clear_cookie());
                respond(
                    session,
                    302,
                    "text/html; charset=utf-8",
                    &[("location", response_url), clear],
                    Bytes::new(),
                )
                .await
            }
            Err(LogoutError::Store(e)) => {
                METRICS
                    .logouts
                    .with_label_values(&[&app.name, "idp", "store_unavailable"])
                    .inc();
                store_unavailable(session, ctx, "slo", &e).await
            }
            Err(e) => {
                METRICS
                    .logouts
                    .with_label_values(&[&app.name, "idp", e.reason()])
                    .inc();
                warn!(target: "ssogate::audit", event = "logout", app = %app.name, result = "failure", reason = e.reason(), reference = %ctx.reference);
                let status = match e {
                    LogoutError::NotConfigured => 404,
                    _ => 400,
                };
                respond_page(
                    session,
                    status,
                    "Sign-out message refused",
                    &format!("The sign-out message was refused: {e}."),
                    &ctx.reference,
                )
                .await
            }
        }
    }

    async fn login_failed(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        app: &App,
        reason: &str,
        status: u16,
        message: &str,
    ) -> Result<()> {
        METRICS
            .logins
            .with_label_values(&[&app.name, "failure"])
            .inc();
        METRICS
            .login_failures
            .with_label_values(&[&app.name, reason])
            .inc();
        warn!(target: "ssogate::audit", event = "login", app = %app.name, result = "failure", reason, reference = %ctx.reference);
        respond_page(session, status, "Sign-in failed", message, &ctx.reference).await
    }
}

// === helpers ===

async fn store_unavailable(
    session: &mut Session,
    ctx: &Ctx,
    op: &str,
    e: &SessionError,
) -> Result<()> {
    METRICS.store_errors.with_label_values(&[op]).inc();
    warn!(op, error = %e, reference = %ctx.reference, "session store unavailable");
    respond_page(
        session,
        503,
        "Temporarily unavailable",
        "The sign-in service cannot reach its session store right now. Please try again in a moment.",
        &ctx.reference,
    )
    .await
}

/// The Host header (or the URI authority for HTTP/2).
fn request_host(req: &RequestHeader) -> String {
    req.headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// Removes every client header the gateway may inject, and the strip prefix.
fn strip_client_identity(req: &mut RequestHeader, app: &App) {
    // Nothing is allocated unless a header goes.
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|name| app.headers.must_strip(name.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
}

/// How a forward-auth caller wants "not signed in" answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ForwardMode {
    /// 401 (nginx `auth_request` turns it into its own redirect via `error_page`).
    Status,
    /// 302 to sign in for navigations (Traefik ForwardAuth passes the answer on).
    Redirect,
}

/// nginx sends `X-Original-URI`; Traefik `X-Forwarded-Uri`. `?mode=401|redirect` wins.
fn forward_mode(req: &RequestHeader) -> ForwardMode {
    match req
        .uri
        .query()
        .and_then(|q| form_value(q.as_bytes(), "mode"))
        .as_deref()
    {
        Some("401") => return ForwardMode::Status,
        Some("redirect") => return ForwardMode::Redirect,
        _ => {}
    }
    if req.headers.contains_key("x-original-uri") {
        ForwardMode::Status
    } else {
        ForwardMode::Redirect
    }
}

/// The original request's method (forward-auth), default GET.
fn original_method(req: &RequestHeader) -> String {
    ["x-original-method", "x-forwarded-method"]
        .iter()
        .find_map(|h| req.headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "GET".into())
}

/// The original request's path and query: from the forward-auth caller's headers, else
/// the path after `/_ssogate/auth` (Envoy ext_authz's path_prefix).
fn original_uri(req: &RequestHeader) -> String {
    if let Some(u) = ["x-original-uri", "x-forwarded-uri", "x-envoy-original-path"]
        .iter()
        .find_map(|h| req.headers.get(*h).and_then(|v| v.to_str().ok()))
        .filter(|u| u.starts_with('/'))
    {
        return u.to_string();
    }
    let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    match pq.strip_prefix(FORWARD_AUTH_PATH) {
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => "/".to_string(),
    }
}

/// A browser form submission: POST whose Accept includes HTML.
fn is_form_post(req: &RequestHeader) -> bool {
    req.method == http::Method::POST
        && req
            .headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"))
}

/// A browser navigation: GET/HEAD whose Accept includes HTML.
fn is_navigational(req: &RequestHeader) -> bool {
    (req.method == http::Method::GET || req.method == http::Method::HEAD)
        && req
            .headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"))
}

fn form_value(body: &[u8], key: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The whole request body, or None when it exceeds `limit`.
async fn read_body_limited(session: &mut Session, limit: usize) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

async fn respond(
    session: &mut Session,
    status: u16,
    content_type: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4 + headers.len()))?;
    resp.insert_header("content-type", content_type)?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    for (name, value) in headers {
        resp.append_header(name.to_string(), value.as_str())?;
    }
    let empty = body.is_empty();
    session.write_response_header(Box::new(resp), empty).await?;
    if !empty {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

async fn signed_out_page(
    session: &mut Session,
    ctx: &Ctx,
    headers: &[(&str, String)],
) -> Result<()> {
    let body = pages::render(
        "Signed out",
        "You have been signed out of this application. You can close this window.",
        &ctx.reference,
    );
    respond(session, 200, "text/html; charset=utf-8", headers, body).await
}

async fn respond_page(
    session: &mut Session,
    status: u16,
    title: &str,
    message: &str,
    reference: &str,
) -> Result<()> {
    let body = pages::render(title, message, reference);
    respond(session, status, "text/html; charset=utf-8", &[], body).await
}
