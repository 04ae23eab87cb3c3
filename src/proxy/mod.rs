//! The pingora service: the only module that knows pingora. It translates between
//! pingora and the application layer (`gateway`), and decides nothing itself.
//!
//! ```text
//! wire (HTTP/1)            request line as real clients send it (raw `"` in a query)
//! request_filter           facts ─► gateway::access::admit ─► Outcome
//!                            Forward  ─► keep it in Ctx, go upstream
//!                            Answer   ─► gateway::reply ─► write it
//!                            Body     ─► read it (bounded) ─► access::with_body ─► write
//! upstream_peer            the app's upstream (built at start-up)
//! upstream_request_filter  strip client identity headers, set the judged target,
//!                          inject the admitted identity (headers, JWT), X-Forwarded-*,
//!                          X-Request-Id
//! response_filter          upstream latency
//! fail_to_proxy            upstream unreachable / timed out: gateway::reply's page
//! logging                  metrics, access log
//! ```
//!
//! Each request gets an ID (`reply::Reference`: a trusted proxy's `X-Request-Id`, or a
//! new one) and a span (`logging::request_span`) that the work of every step runs in, so
//! every log line of the request carries the ID; the page of an error shows it.
//!
//! ```text
//! ```

mod admin;
pub mod demo;
mod server;
pub mod wire;

pub use admin::AdminApp;
pub use server::{build_server, run};

use crate::gateway::access::{self, Admitted, Outcome, RequestFacts};
use crate::gateway::reply::{self, ProxyFailure, Reference, Reply};
use crate::gateway::{App, Gateway, Live};
use crate::headers::client::{self, Circumstances};
use crate::metrics::METRICS;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument as _;

pub struct GatewayProxy {
    live: Arc<Live>,
    /// What each request runs with, rebuilt when a reload changed the gateway.
    serving: arc_swap::ArcSwap<Serving>,
    rebuilding: parking_lot::Mutex<()>,
}

/// A gateway and the upstream peers of its apps: one consistent snapshot per request.
pub struct Serving {
    generation: u64,
    gw: Arc<Gateway>,
    /// Each app's upstream, by `App::index`.
    peers: Vec<HttpPeer>,
}

impl GatewayProxy {
    pub fn new(live: Arc<Live>) -> Self {
        let serving = Serving::new(live.generation(), live.gateway());
        GatewayProxy {
            live,
            serving: arc_swap::ArcSwap::from_pointee(serving),
            rebuilding: parking_lot::Mutex::new(()),
        }
    }

    /// The snapshot for a new request: the current one, or (once after a reload) a new one.
    fn serving(&self) -> Arc<Serving> {
        let s = self.serving.load_full();
        if s.generation == self.live.generation() {
            return s;
        }
        let _one = self.rebuilding.lock();
        let s = self.serving.load_full();
        let generation = self.live.generation();
        if s.generation == generation {
            return s;
        }
        let fresh = Arc::new(Serving::new(generation, self.live.gateway()));
        self.serving.store(fresh.clone());
        fresh
    }
}

impl Serving {
    fn new(generation: u64, gw: Arc<Gateway>) -> Self {
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
                peer
            })
            .collect();
        Serving {
            generation,
            gw,
            peers,
        }
    }
}

/// Per-request state.
pub struct Ctx {
    /// The gateway (and its upstreams) this request runs with from start to end, even
    /// if a reload swaps it meanwhile.
    serving: Arc<Serving>,
    /// The admitted request, when it goes upstream.
    admitted: Option<Admitted>,
    /// For metrics and logs: the app and the route (or the endpoint) that answered.
    app: Option<Arc<App>>,
    route: Arc<str>,
    /// The request's ID, shown on error pages and sent upstream.
    reference: Reference,
    /// The span every step's work runs in (`request_filter` makes it).
    span: tracing::Span,
    start: Instant,
}

// === impl ProxyHttp ===

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            serving: self.serving(),
            admitted: None,
            app: None,
            route: Arc::from(""),
            reference: Reference::new(),
            span: tracing::Span::none(),
            start: Instant::now(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if self.live.is_draining() {
            // Shutting down or handing over: this answer closes the connection, so the
            // client's next request opens a new one (to whoever listens then) instead of
            // racing the close of an idle keep-alive connection.
            session.set_keepalive(None);
        }
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let req = session.req_header();
        // `new_ctx` made an ID; a trusted proxy's replaces it.
        if let Some(r) = Reference::from_trusted(
            req.headers.get("x-request-id").map(|v| v.as_bytes()),
            ctx.serving.gw.is_trusted_proxy(peer),
        ) {
            ctx.reference = r;
        }
        let trace_id = req
            .headers
            .get("traceparent")
            .and_then(|v| client::trace_id(v.as_bytes()));
        ctx.span = crate::logging::request_span(&ctx.reference, trace_id);
        let facts = RequestFacts {
            method: &req.method,
            target: req.raw_path(),
            headers: &req.headers,
            authority: req.uri.authority().map(|a| a.as_str()),
            peer,
        };
        match access::admit(&ctx.serving.gw, &facts)
            .instrument(ctx.span.clone())
            .await
        {
            Outcome::Forward(admitted) => {
                ctx.app = Some(admitted.app.clone());
                ctx.route = admitted.route.clone();
                ctx.admitted = Some(admitted);
                Ok(false)
            }
            Outcome::Answer(answer) => {
                (ctx.app, ctx.route) = answer.labels();
                let r = ctx.span.in_scope(|| reply::reply(answer, &ctx.reference));
                write(session, r, &ctx.reference).await?;
                Ok(true)
            }
            Outcome::Body(step) => {
                let body = read_body_limited(session, step.limit()).await?;
                let answer = access::with_body(&ctx.serving.gw, step, body)
                    .instrument(ctx.span.clone())
                    .await;
                (ctx.app, ctx.route) = answer.labels();
                let r = ctx.span.in_scope(|| reply::reply(answer, &ctx.reference));
                write(session, r, &ctx.reference).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let app = ctx
            .app
            .as_ref()
            .ok_or_else(|| Error::explain(InternalError, "no app selected"))?;
        let peer = ctx
            .serving
            .peers
            .get(app.index)
            .ok_or_else(|| Error::explain(InternalError, "no upstream for app"))?;
        Ok(Box::new(peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(a) = ctx.admitted.as_ref() else {
            return Ok(());
        };
        let app = &a.app;
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let gw = &ctx.serving.gw;
        let trusted_peer = gw.is_trusted_proxy(peer);
        strip_client_headers(
            upstream,
            gw,
            a,
            Circumstances {
                trusted_peer,
                strip_method_override: a.strip_method_override,
                allow_underscore: app.allow_underscore_headers,
            },
        )?;
        if let Some(target) = &a.rewrite {
            let uri = target
                .parse::<http::Uri>()
                .map_err(|e| Error::because(InternalError, "canonical target", e))?;
            upstream.set_uri(uri);
        }
        if let Some(user) = &a.user {
            let identity = user.identity();
            for (name, value) in user.headers(app).iter() {
                upstream.insert_header(name.clone(), value.clone())?;
            }
            if let (Some(jwt), Some(key)) = (&app.jwt, &user.jwt_key) {
                let now = gw.clock.now().timestamp();
                match jwt.token(key, identity, now) {
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
        if let Some(ip) = peer {
            let xff = client::forwarded_for(
                upstream
                    .headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok()),
                ip,
                trusted_peer,
            );
            upstream.insert_header("x-forwarded-for", xff)?;
        }
        upstream.insert_header("x-forwarded-proto", app.public_scheme)?;
        upstream.insert_header("x-request-id", &*ctx.reference)?;
        if let Some(host) = upstream.headers.get(http::header::HOST).cloned() {
            upstream.insert_header("x-forwarded-host", host)?;
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
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let app = ctx.app.as_ref().map_or("-", |a| a.name.as_str());
        METRICS
            .requests
            .with_label_values(&[app, &ctx.route, reply::status_label(status)])
            .inc();
        let _in_request = ctx.span.enter();
        tracing::info!(
            target: "ssogate::access",
            event = "request",
            app, route = %ctx.route, status,
            method = %session.req_header().method,
            elapsed_ms = ctx.start.elapsed().as_millis() as u64,
            error = e.map(|e| e.to_string()),
        );
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let app = ctx.app.as_ref().map_or("-", |a| a.name.as_str());
        let failure = match proxy_failure(e) {
            Failure::ConnectionGone => None,
            Failure::Status(code) => {
                ctx.span
                    .in_scope(|| tracing::warn!(app, status = code, error = %e, "request failed"));
                if let Err(err) = session.respond_error(code).await {
                    ctx.span.in_scope(
                        || tracing::debug!(error = %err, "could not send the error response"),
                    );
                }
                return FailToProxy {
                    error_code: code,
                    can_reuse_downstream: false,
                };
            }
            Failure::Page(f) => Some(f),
        };
        ctx.span.in_scope(|| match failure {
            Some(f) => tracing::warn!(app, reason = f.reason(), error = %e, "request failed"),
            None => tracing::debug!(app, error = %e, "client connection gone"),
        });
        let Some(failure) = failure else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        let r = reply::proxy_failure(app, failure, &ctx.reference);
        let status = r.status;
        // Too late for a page once the upstream's answer has begun: the connection closes.
        let started = session
            .response_written()
            .is_some_and(|r| !r.status.is_informational());
        if !started {
            session.set_keepalive(None);
            if let Err(err) = write(session, r, &ctx.reference).await {
                ctx.span
                    .in_scope(|| tracing::debug!(error = %err, "could not send the error page"));
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// `fail_to_proxy` logs every failure itself, inside the request's span.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _e: &Error) -> bool {
        true
    }
}

/// What to tell the client about a failed request.
enum Failure {
    /// Nobody to tell.
    ConnectionGone,
    /// The proxy library already chose a status.
    Status(u16),
    Page(ProxyFailure),
}

/// The translation of the proxy library's error.
fn proxy_failure(e: &Error) -> Failure {
    use pingora::ErrorSource as Source;
    use pingora::ErrorType as T;
    match (e.esource(), e.etype()) {
        (_, T::HTTPStatus(code)) => Failure::Status(*code),
        (Source::Upstream, T::ConnectTimedout | T::ReadTimedout | T::WriteTimedout) => {
            Failure::Page(ProxyFailure::UpstreamTimeout)
        }
        (
            Source::Upstream,
            T::ConnectRefused
            | T::ConnectNoRoute
            | T::ConnectError
            | T::BindError
            | T::SocketError
            | T::TLSHandshakeFailure
            | T::TLSHandshakeTimedout
            | T::InvalidCert
            | T::HandshakeError
            | T::ConnectProxyFailure,
        ) => Failure::Page(ProxyFailure::UpstreamUnreachable),
        (Source::Upstream, _) => Failure::Page(ProxyFailure::UpstreamBroken),
        (Source::Downstream, T::WriteError | T::ReadError | T::ConnectionClosed) => {
            Failure::ConnectionGone
        }
        (Source::Downstream, _) => Failure::Page(ProxyFailure::BadRequest),
        (Source::Internal | Source::Unset, _) => Failure::Page(ProxyFailure::Internal),
    }
}

// === helpers ===

/// Removes what `headers::client` and the app's mapping say must not reach the
/// upstream, and the gateway's own cookies from `Cookie`.
fn strip_client_headers(
    req: &mut RequestHeader,
    gw: &Gateway,
    a: &Admitted,
    c: Circumstances,
) -> Result<()> {
    // Nothing is allocated unless a header goes.
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            a.app.headers.must_strip(name) || client::must_drop(name, c)
        })
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
    let mut cookies: Option<Vec<String>> = None;
    for (i, v) in req.headers.get_all(http::header::COOKIE).iter().enumerate() {
        let value = v.to_str().unwrap_or_default();
        let kept = client::without_own_cookies(value, |n| gw.cookie.is_gateway_cookie(n));
        match (&mut cookies, kept) {
            (None, Some(std::borrow::Cow::Borrowed(_))) => {}
            (None, kept) => {
                // The first change: keep what came before it as it was.
                let mut before: Vec<String> = req
                    .headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .take(i)
                    .filter_map(|v| v.to_str().ok().map(str::to_string))
                    .collect();
                before.extend(kept.map(|k| k.into_owned()));
                cookies = Some(before);
            }
            (Some(list), kept) => list.extend(kept.map(|k| k.into_owned())),
        }
    }
    if let Some(list) = cookies {
        req.remove_header(&http::header::COOKIE);
        for v in list {
            req.append_header(http::header::COOKIE, v)?;
        }
    }
    Ok(())
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

/// Write a reply: the one place responses are written.
async fn write(session: &mut Session, r: Reply, reference: &Reference) -> Result<()> {
    let mut resp = ResponseHeader::build(r.status, Some(5 + r.headers.len()))?;
    resp.insert_header("content-type", r.content_type)?;
    resp.insert_header("x-request-id", &**reference)?;
    resp.insert_header("content-length", r.body.len().to_string())?;
    if !r
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
    {
        resp.insert_header("cache-control", "no-store")?;
    }
    for (name, value) in r.headers {
        resp.append_header(name, value.as_str())?;
    }
    let empty = r.body.is_empty();
    session.write_response_header(Box::new(resp), empty).await?;
    if !empty {
        session.write_response_body(Some(r.body), true).await?;
    }
    Ok(())
}
