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
use crate::authz::Decision;
use crate::error::Kind;
use crate::metrics::METRICS;
use bytes::Bytes;
use tracing::{info, warn};

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

/// The reference shown on error pages and logged with the request: 16 hex digits, kept
/// inline (made for every request, shown on few).
#[derive(Clone, Copy)]
pub struct Reference([u8; 16]);

impl Reference {
    pub fn new() -> Self {
        let mut out = [0u8; 16];
        // hex::encode_to_slice only fails on a wrong length: 8 bytes -> 16 digits.
        let _ = hex::encode_to_slice(rand::random::<u64>().to_be_bytes(), &mut out);
        Reference(out)
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
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or("0000000000000000")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
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
            info!(target: "ssogate::audit", event = "login", app = %app.name, result = "success", assertion_id = %assertion_id, reference = %reference);
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
            info!(target: "ssogate::audit", event = "logout", app = %app.name, initiator = "sp", had_session, at_idp, reference = %reference);
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
            info!(target: "ssogate::audit", event = "logout_confirmed", app = %app.name, reference = %reference);
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
            info!(target: "ssogate::audit", event = "logout", app = %app.name, initiator = "idp", sessions_ended = ended, reference = %reference);
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
        Answer::Scim(response) => scim(response, reference),
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

fn scim(response: crate::scim::ScimResponse, reference: &Reference) -> Reply {
    METRICS
        .scim_requests
        .with_label_values(&[
            response.resource,
            response.method_label,
            status_label(response.status),
        ])
        .inc();
    if response.status == 401 {
        warn!(target: "ssogate::audit", event = "scim_unauthorized", reference = %reference);
    }
    if let Some(limit) = response.over_limit {
        METRICS.scim_refused.with_label_values(&[limit]).inc();
        warn!(target: "ssogate::audit", event = "scim_refused", limit, status = response.status, reference = %reference);
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
            warn!(target: "ssogate::audit", event = "request_refused", reason = e.reason(), reference = %reference);
            page(400, "Bad request", e.explain(), reference)
        }
        Refusal::ForwardUntrusted => {
            METRICS
                .requests_refused
                .with_label_values(&["forward_auth_untrusted"])
                .inc();
            warn!(target: "ssogate::audit", event = "request_refused", reason = "forward_auth_untrusted", reference = %reference);
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
            warn!(target: "ssogate::audit", event = "request_refused", reason = "cross_site", reference = %reference);
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
            info!(target: "ssogate::audit", event = "access_denied", app = %app.name, route = %route, reason, reference = %reference);
            page(403, "Access denied", &message, reference)
        }
        Refusal::StoreUnavailable { op, error } => {
            METRICS.store_errors.with_label_values(&[op]).inc();
            warn!(op, error = %error, reference = %reference, "session store unavailable");
            page(
                503,
                "Temporarily unavailable",
                "The sign-in service cannot reach its session store right now. Please try again in a moment.",
                reference,
            )
        }
        Refusal::DirectoryUnavailable { error } => {
            warn!(error = %error, reference = %reference, "user directory unavailable");
            page(
                503,
                "Temporarily unavailable",
                "The gateway cannot reach its user directory right now. Please try again in a moment.",
                reference,
            )
        }
        Refusal::IdpNotReady { app } => {
            warn!(target: "ssogate::audit", event = "login_start_failed", app = %app.name, reason = "idp_not_ready", reference = %reference);
            page(
                503,
                "Sign-in temporarily unavailable",
                "The gateway has not loaded the identity provider's metadata (its signing keys) yet. Please try again in a moment.",
                reference,
            )
        }
        Refusal::LoginStart { app, error } => {
            warn!(target: "ssogate::audit", event = "login_start_failed", app = %app.name, error = %error, reference = %reference);
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
    warn!(target: "ssogate::audit", event = "login", app, result = "failure", reason, detail, reference = %reference);
    page(status, "Sign-in failed", message, reference)
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
        _ => login_failed(
            app,
            error.reason(),
            status,
            &format!("Sign-in failed: {error}."),
            None,
            reference,
        ),
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
        warn!(op = "logout", error = %e, reference = %reference, "session store unavailable");
    }
    warn!(target: "ssogate::audit", event = "logout", app, initiator, result = "failure", reason = error.reason(), reference = %reference);
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
}
