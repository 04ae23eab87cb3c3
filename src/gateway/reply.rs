//! The one place that turns what the gateway decided into what the client gets: every
//! [`Answer`] and [`Refusal`] becomes a status, headers, a body (pages from `pages`),
//! a metric and an audit line. No other module picks a status or writes a page.
//!
//! Pages never echo assertion contents, attributes or groups; a refusal's details go to
//! the log, under the same reference the page shows.

use super::access::{Answer, Refusal};
use super::login::LoginError;
use super::logout::LogoutError;
use super::pages;
use crate::audit;
use crate::authz::Decision;
use crate::error::Kind;
use crate::metrics::METRICS;
use bytes::Bytes;
use tracing::warn;

/// A response, ready to write.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    /// Besides content type, length and `cache-control: no-store`.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// The request's ID: the reference shown on error pages, sent upstream as `X-Request-Id`,
/// and carried by every log line of the request. Made here (16 hex digits) unless a
/// trusted proxy sent one ([`Reference::for_request`]). Kept inline: made for every
/// request, shown on few.
#[derive(Clone, Copy)]
pub struct Reference {
    len: u8,
    bytes: [u8; Reference::MAX_LEN],
}

impl Reference {
    /// The longest request ID taken from a proxy.
    pub const MAX_LEN: usize = 64;

    pub fn new() -> Self {
        let mut bytes = [0u8; Self::MAX_LEN];
        // hex::encode_to_slice only fails on a wrong length: 8 bytes -> 16 digits.
        let _ = hex::encode_to_slice(rand::random::<u64>().to_be_bytes(), &mut bytes[..16]);
        Reference { len: 16, bytes }
    }

    /// A proxy's `X-Request-Id`, if it can be one here: 1 to 64 characters of
    /// `A-Z a-z 0-9 - _ . : + / = @` (UUIDs, hex, base64 and the usual prefixes), which
    /// are safe in a page, a header and a log line as they are.
    pub fn from_header(value: &[u8]) -> Option<Self> {
        let ok = |b: &u8| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(b);
        if value.is_empty() || value.len() > Self::MAX_LEN || !value.iter().all(ok) {
            return None;
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        bytes[..value.len()].copy_from_slice(value);
        Some(Reference {
            len: value.len() as u8,
            bytes,
        })
    }

    /// The ID of a request: the `X-Request-Id` it came with when its peer is a trusted
    /// proxy and the value is usable, else a new one (a client cannot choose the
    /// reference another request's log lines carry).
    pub fn for_request(header: Option<&[u8]>, trusted_peer: bool) -> Self {
        Self::from_trusted(header, trusted_peer).unwrap_or_default()
    }

    /// The proxy's ID alone, when it may be taken: what replaces the one a request
    /// context was made with (so a request makes one random ID, not two).
    pub fn from_trusted(header: Option<&[u8]>, trusted_peer: bool) -> Option<Self> {
        header.filter(|_| trusted_peer).and_then(Self::from_header)
    }
}

impl Default for Reference {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for Reference {
    type Target = str;
    fn deref(&self) -> &str {
        // ASCII by construction.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("0000000000000000")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reference({self})")
    }
}

fn page(status: u16, title: &str, message: &str, reference: &Reference) -> Reply {
    Reply {
        status,
        content_type: HTML,
        headers: Vec::new(),
        body: pages::render(title, message, reference),
    }
}

fn redirect(status: u16, location: String, cookie: Option<String>) -> Reply {
    let mut headers = vec![("location".to_string(), location)];
    if let Some(c) = cookie {
        headers.push(("set-cookie".to_string(), c));
    }
    Reply {
        status,
        content_type: HTML,
        headers,
        body: Bytes::new(),
    }
}

fn signed_out_page(cookie: String, reference: &Reference) -> Reply {
    let mut r = page(
        200,
        "Signed out",
        "You have been signed out of this application. You can close this window.",
        reference,
    );
    r.headers.push(("set-cookie".to_string(), cookie));
    r
}

/// What the client gets for `answer`; counts it and writes its audit line.
pub fn reply(answer: Answer, reference: &Reference) -> Reply {
    match answer {
        Answer::Refused(r) => refusal(r, reference),
        Answer::ToSignIn {
            location,
            status,
            binding_cookie,
        } => redirect(status, location, binding_cookie),
        Answer::LogoutConfirm => Reply {
            status: 200,
            content_type: HTML,
            headers: Vec::new(),
            body: pages::logout_confirm(reference),
        },
        Answer::SignedIn {
            app,
            cookie,
            clear_binding,
            location,
            replay_body,
            assertion_id,
        } => {
            METRICS
                .logins
                .with_label_values(&[&app.name, "success"])
                .inc();
            audit::login_succeeded(&app.name, &assertion_id);
            let mut r = match replay_body {
                // Post the kept form again, from the browser, now signed in.
                Some(body) => Reply {
                    status: 200,
                    content_type: HTML,
                    headers: vec![("set-cookie".to_string(), cookie)],
                    body: pages::replay_form(&location, &body, reference),
                },
                None => redirect(302, location, Some(cookie)),
            };
            if let Some(c) = clear_binding {
                r.headers.push(("set-cookie".to_string(), c));
            }
            r
        }
        Answer::SignedOut {
            app,
            location,
            cookie,
            at_idp,
            had_session,
        } => {
            METRICS
                .logouts
                .with_label_values(&[&app.name, "sp", "success"])
                .inc();
            audit::logout_sp(&app.name, had_session, at_idp);
            match location {
                Some(url) => redirect(302, url, Some(cookie)),
                None => signed_out_page(cookie, reference),
            }
        }
        Answer::SloConfirmed {
            app,
            location,
            cookie,
        } => {
            METRICS
                .logouts
                .with_label_values(&[&app.name, "sp", "confirmed"])
                .inc();
            audit::logout_confirmed(&app.name);
            match location {
                Some(url) => redirect(302, url, Some(cookie)),
                None => signed_out_page(cookie, reference),
            }
        }
        Answer::SloAnswered {
            app,
            location,
            cookie,
            ended,
        } => {
            METRICS
                .logouts
                .with_label_values(&[&app.name, "idp", "success"])
                .inc();
            METRICS
                .slo_sessions_ended
                .with_label_values(&[&app.name])
                .inc_by(ended as u64);
            audit::logout_idp(&app.name, ended);
            redirect(302, location, Some(cookie))
        }
        Answer::Metadata(xml) => Reply {
            status: 200,
            content_type: "application/samlmetadata+xml",
            headers: Vec::new(),
            body: Bytes::from(xml),
        },
        Answer::Jwks(json) => Reply {
            status: 200,
            content_type: "application/jwk-set+json",
            headers: vec![(
                "cache-control".to_string(),
                "public, max-age=300".to_string(),
            )],
            body: json,
        },
        Answer::Scim(response) => scim(response),
        Answer::ForwardAllowed(headers) => Reply {
            status: 200,
            content_type: TEXT,
            headers,
            body: Bytes::new(),
        },
        Answer::ForwardSignInRequired => Reply {
            status: 401,
            content_type: TEXT,
            headers: Vec::new(),
            body: Bytes::from_static(b"sign-in required\n"),
        },
    }
}

fn scim(response: crate::scim::ScimResponse) -> Reply {
    METRICS
        .scim_requests
        .with_label_values(&[
            response.resource,
            response.method_label,
            status_label(response.status),
        ])
        .inc();
    if response.status == 401 {
        audit::scim_unauthorized();
    }
    if let Some(limit) = response.over_limit {
        METRICS.scim_refused.with_label_values(&[limit]).inc();
        audit::scim_refused(limit, response.status);
    }
    let mut headers = Vec::new();
    if let Some(l) = response.location {
        headers.push(("location".to_string(), l));
    }
    if response.status == 401 {
        headers.push((
            "www-authenticate".to_string(),
            "Bearer realm=\"ssogate SCIM\"".to_string(),
        ));
    }
    Reply {
        status: response.status,
        content_type: "application/scim+json",
        headers,
        body: response
            .body
            .map(|b| Bytes::from(serde_json::to_vec(&b).unwrap_or_default()))
            .unwrap_or_default(),
    }
}

/// A status code as a metric label, from a fixed set.
pub fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        302 => "302",
        303 => "303",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        412 => "412",
        413 => "413",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

fn refusal(r: Refusal, reference: &Reference) -> Reply {
    match r {
        Refusal::UnknownHost => page(
            404,
            "Unknown site",
            "No application is configured for this host name.",
            reference,
        ),
        Refusal::NotFound => page(404, "Not found", "There is nothing here.", reference),
        Refusal::BadTarget(e) => {
            METRICS
                .requests_refused
                .with_label_values(&[e.reason()])
                .inc();
            audit::request_refused(e.reason());
            page(400, "Bad request", e.explain(), reference)
        }
        Refusal::ForwardUntrusted => {
            METRICS
                .requests_refused
                .with_label_values(&["forward_auth_untrusted"])
                .inc();
            audit::request_refused("forward_auth_untrusted");
            page(
                403,
                "Forbidden",
                "Forward-auth answers only the configured proxy.",
                reference,
            )
        }
        Refusal::CrossSite => {
            METRICS
                .requests_refused
                .with_label_values(&["cross_site"])
                .inc();
            audit::request_refused("cross_site");
            page(
                403,
                "Forbidden",
                "This action must come from the application's own pages. Go back to the application and try again.",
                reference,
            )
        }
        Refusal::MethodNotAllowed { route, .. } => page(
            405,
            "Method not allowed",
            &format!("\"{route}\" does not accept this method."),
            reference,
        ),
        Refusal::SignInRequired => page(
            401,
            "Sign-in required",
            "This request needs a signed-in session. Open the application in a browser to sign in.",
            reference,
        ),
        Refusal::ReplayNotKept => page(
            401,
            "Sign-in required",
            "Your session had ended, and this submission could not be kept (it is not a plain form from this site, or it is too large). Sign in again, then submit it once more.",
            reference,
        ),
        Refusal::Denied {
            app,
            route,
            decision,
        } => {
            let (reason, message) = match decision {
                Decision::GroupsUnknown => ("groups_unknown", format!(
                    "Access to \"{route}\" depends on group membership, but your sign-in token listed too many groups to include them. An administrator can fix this in Entra: set the groups claim to \"Groups assigned to the application\"."
                )),
                Decision::Denied => ("denied_by_rule", format!(
                    "Your account may not open \"{route}\". Ask an administrator if you need access."
                )),
                _ => ("not_in_groups", format!(
                    "Your account is not allowed to open \"{route}\". Ask an administrator for access."
                )),
            };
            METRICS
                .denials
                .with_label_values(&[app.name.as_str(), &route, reason])
                .inc();
            audit::access_denied(&app.name, &route, reason);
            page(403, "Access denied", &message, reference)
        }
        Refusal::StoreUnavailable { op, error } => {
            METRICS.store_errors.with_label_values(&[op]).inc();
            warn!(op, error = %error, "session store unavailable");
            page(
                503,
                "Temporarily unavailable",
                "The sign-in service cannot reach its session store right now. Please try again in a moment.",
                reference,
            )
        }
        Refusal::DirectoryUnavailable { error } => {
            warn!(error = %error, "user directory unavailable");
            page(
                503,
                "Temporarily unavailable",
                "The gateway cannot reach its user directory right now. Please try again in a moment.",
                reference,
            )
        }
        Refusal::IdpNotReady { app } => {
            audit::login_start_failed(&app.name, "idp_not_ready", None);
            page(
                503,
                "Sign-in temporarily unavailable",
                "The gateway has not loaded the identity provider's metadata (its signing keys) yet. Please try again in a moment.",
                reference,
            )
        }
        Refusal::LoginStart { app, error } => {
            audit::login_start_failed(&app.name, "request_failed", Some(&error.to_string()));
            page(
                500,
                "Sign-in unavailable",
                "The sign-in request could not be built.",
                reference,
            )
        }
        Refusal::LoginTooLarge { app } => login_failed(
            &app.name,
            "too_large",
            413,
            "The sign-in response is too large.",
            None,
            reference,
        ),
        Refusal::LoginMissingResponse { app } => login_failed(
            &app.name,
            "missing_saml_response",
            400,
            "The request carries no SAMLResponse.",
            None,
            reference,
        ),
        Refusal::Login { app, error } => login_error(&app.name, error, reference),
        Refusal::Logout {
            app,
            initiator,
            error,
            clear_cookie,
        } => logout_error(&app.name, initiator, error, clear_cookie, reference),
    }
}

fn login_failed(
    app: &str,
    reason: &str,
    status: u16,
    message: &str,
    detail: Option<&str>,
    reference: &Reference,
) -> Reply {
    METRICS.logins.with_label_values(&[app, "failure"]).inc();
    METRICS
        .login_failures
        .with_label_values(&[app, reason])
        .inc();
    audit::login_failed(app, reason, detail);
    page(status, "Sign-in failed", message, reference)
}

/// Why a request that went upstream (or was on its way) failed: the proxy's translation
/// of the proxy library's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyFailure {
    /// The app's server refused or could not be reached.
    UpstreamUnreachable,
    /// It did not answer in time.
    UpstreamTimeout,
    /// It answered something unusable or closed mid-answer.
    UpstreamBroken,
    /// The client's request could not be read as HTTP.
    BadRequest,
    Internal,
}

impl ProxyFailure {
    /// The metric and log label.
    pub fn reason(self) -> &'static str {
        match self {
            ProxyFailure::UpstreamUnreachable => "upstream_unreachable",
            ProxyFailure::UpstreamTimeout => "upstream_timeout",
            ProxyFailure::UpstreamBroken => "upstream_broken",
            ProxyFailure::BadRequest => "bad_request",
            ProxyFailure::Internal => "internal",
        }
    }
}

/// The page for a request the proxy could not complete (counted by app, `-` before one
/// was chosen); the caller logs the error.
pub fn proxy_failure(app: &str, failure: ProxyFailure, reference: &Reference) -> Reply {
    METRICS
        .upstream_errors
        .with_label_values(&[app, failure.reason()])
        .inc();
    match failure {
        ProxyFailure::UpstreamUnreachable | ProxyFailure::UpstreamBroken => page(
            502,
            "Application unavailable",
            "The application behind the gateway is not answering properly right now. Please try again in a moment; if this keeps happening, give the reference below to your administrator.",
            reference,
        ),
        ProxyFailure::UpstreamTimeout => page(
            504,
            "Application timed out",
            "The application behind the gateway did not answer in time. Please try again; if this keeps happening, give the reference below to your administrator.",
            reference,
        ),
        ProxyFailure::BadRequest => page(400, "Bad request", "The request could not be read.", reference),
        ProxyFailure::Internal => page(
            500,
            "Gateway error",
            "The gateway could not complete this request. If this keeps happening, give the reference below to your administrator.",
            reference,
        ),
    }
}

/// The status of each kind of failure (`crate::error`).
fn status_of(kind: Kind) -> u16 {
    match kind {
        Kind::Unavailable => 503,
        Kind::TooMany => 429,
        Kind::Unverified | Kind::Refused => 403,
        Kind::BadMessage => 400,
        Kind::NotConfigured => 404,
    }
}

fn login_error(app: &str, error: LoginError, reference: &Reference) -> Reply {
    let kind = error.kind();
    let status = status_of(kind);
    match (kind, &error) {
        (Kind::Unavailable, LoginError::Store(e)) => {
            METRICS.logins.with_label_values(&[app, "failure"]).inc();
            METRICS
                .login_failures
                .with_label_values(&[app, "store_unavailable"])
                .inc();
            refusal(
                Refusal::StoreUnavailable {
                    op: "login",
                    error: e.to_string(),
                },
                reference,
            )
        }
        (Kind::Unavailable, LoginError::IdpNotReady) => login_failed(
            app,
            error.reason(),
            status,
            "The gateway has not loaded the identity provider's metadata (its signing keys) yet. Please try again in a moment.",
            None,
            reference,
        ),
        (Kind::Unavailable, _) => login_failed(
            app,
            error.reason(),
            status,
            "The sign-in service cannot reach its user directory right now. Please try again in a moment.",
            Some(&error.to_string()),
            reference,
        ),
        (Kind::TooMany, _) => login_failed(
            app,
            error.reason(),
            status,
            "Too many sign-ins were started from here. Wait a few minutes, then open the application again.",
            None,
            reference,
        ),
        // Before the signature is verified, every failure looks the same from outside
        // (no decryption or parsing oracle); the reason and details go to the log.
        (Kind::Unverified, _) => login_failed(
            app,
            error.reason(),
            status,
            "The sign-in response could not be verified. Start again from the application; if this keeps happening, give the reference below to your administrator.",
            Some(&error.to_string()),
            reference,
        ),
        // Verified, or the IdP's own answer (its status codes and AADSTS message): the
        // log says what the page says.
        _ => {
            let detail = error.to_string();
            login_failed(
                app,
                error.reason(),
                status,
                &format!("Sign-in failed: {detail}."),
                Some(&detail),
                reference,
            )
        }
    }
}

fn logout_error(
    app: &str,
    initiator: &'static str,
    error: LogoutError,
    clear_cookie: Option<String>,
    reference: &Reference,
) -> Reply {
    METRICS
        .logouts
        .with_label_values(&[app, initiator, error.reason()])
        .inc();
    if let LogoutError::Store(e) = &error {
        if initiator == "idp" {
            return refusal(
                Refusal::StoreUnavailable {
                    op: "slo",
                    error: e.to_string(),
                },
                reference,
            );
        }
        METRICS.store_errors.with_label_values(&["logout"]).inc();
        warn!(op = "logout", error = %e, "session store unavailable");
    }
    audit::logout_failed(app, initiator, error.reason());
    if let Some(cookie) = clear_cookie {
        // SP-initiated: the cookie goes regardless, the browser is signed out here.
        let mut r = page(
            503,
            "Sign-out incomplete",
            "Your browser's session cookie was removed, but the sign-in service could not confirm the end of the session right now. Please try again in a moment.",
            reference,
        );
        r.headers.push(("set-cookie".to_string(), cookie));
        return r;
    }
    page(
        status_of(error.kind()),
        "Sign-out message refused",
        &format!("The sign-out message was refused: {error}."),
        reference,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::SamlError;

    /// The page and status of a refused ACS response, reference blanked out.
    fn outside_view(e: SamlError) -> (u16, String) {
        let app = crate::gateway::access::tests_support::app();
        let reference = Reference::new();
        let r = reply(
            Answer::Refused(Refusal::Login {
                app,
                error: LoginError::Saml(e),
            }),
            &reference,
        );
        let body = String::from_utf8_lossy(&r.body).replace(&*reference, "REF");
        (r.status, body)
    }

    #[test]
    fn failures_before_the_signature_look_alike_from_outside() {
        let before = [
            SamlError::Decryption,
            SamlError::XmlParse {
                line: 3,
                column: 17,
            },
            SamlError::BadBase64,
            SamlError::Signature,
            SamlError::EncryptionAlgorithm("aes128-cbc".into()),
            SamlError::Malformed("no Assertion"),
        ];
        let first = outside_view(before[0].clone());
        for e in before {
            assert_eq!(outside_view(e.clone()), first, "{e:?} is distinguishable");
        }
        assert!(!first.1.contains("line 3") && !first.1.contains("decrypt"));
        // After the signature is verified, the check that failed may be named.
        assert!(outside_view(SamlError::Expired).1.contains("expired"));
    }

    #[test]
    fn a_request_id_is_taken_only_from_a_trusted_proxy_and_only_when_usable() {
        let uuid = b"7f9c1e0a-3b2d-4c5e-8f6a-1b2c3d4e5f60";
        assert_eq!(
            &*Reference::for_request(Some(uuid), true),
            "7f9c1e0a-3b2d-4c5e-8f6a-1b2c3d4e5f60"
        );
        // From anyone else, or unusable: a new one.
        for (value, trusted) in [
            (&uuid[..], false),
            (&b"<script>"[..], true),
            (&b"a b"[..], true),
            (&b""[..], true),
            (&[b'a'; 65][..], true),
        ] {
            let r = Reference::for_request(Some(value), trusted);
            assert_eq!(r.len(), 16);
            assert!(r.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(Reference::for_request(Some(&[b'a'; 64]), true).len(), 64);
        assert_ne!(&*Reference::new(), &*Reference::new());
    }

    #[test]
    fn proxy_failures_get_a_page_with_the_reference() {
        let reference = Reference::for_request(Some(b"req-42"), true);
        for (failure, status) in [
            (ProxyFailure::UpstreamUnreachable, 502),
            (ProxyFailure::UpstreamTimeout, 504),
            (ProxyFailure::UpstreamBroken, 502),
            (ProxyFailure::BadRequest, 400),
            (ProxyFailure::Internal, 500),
        ] {
            let r = proxy_failure("wiki", failure, &reference);
            assert_eq!(r.status, status);
            assert!(String::from_utf8_lossy(&r.body).contains("req-42"));
        }
    }
}
