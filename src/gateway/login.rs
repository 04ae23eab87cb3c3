//! The login flow between the proxy and the SAML module: start an SP-initiated login
//! (AuthnRequest + pending record), and finish it at the ACS (validation chain steps
//! 1-4, 6, 7 in `saml`, then InResponseTo consumption, replay cache and the session
//! here, because they need the store). See `saml/LIFECYCLE.md`.

use crate::error::Kind;
use crate::gateway::{App, Gateway};
use crate::saml::{self, SamlError};
use crate::session::{PendingLogin, SessionError, SessionId};
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Saml(#[from] SamlError),
    #[error(
        "the response answers no pending sign-in request (expired, already used, or never sent)"
    )]
    UnknownRequest,
    #[error("the response answers a sign-in request made for another app")]
    WrongApp,
    #[error("unsolicited (IdP-initiated) sign-in is not allowed for this app")]
    Unsolicited,
    #[error("this response was already used (replay)")]
    Replay,
    #[error("session store unavailable: {0}")]
    Store(SessionError),
    #[error("the identity provider ended this session already (SessionNotOnOrAfter)")]
    SessionOver,
    #[error("the identity provider's metadata (signing keys) has not been loaded yet")]
    IdpNotReady,
    #[error("this account is deactivated in the directory (provisioning)")]
    UserInactive,
    #[error("this account is not provisioned for this application")]
    NotProvisioned,
    #[error("the user directory is unavailable: {0}")]
    Directory(String),
    #[error("too many sign-ins are pending from this client")]
    TooManyPending,
    #[error("this sign-in was started in another browser, or the browser did not keep its sign-in cookie")]
    OtherBrowser,
}

impl LoginError {
    /// Metric / audit label of the failed check.
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::Saml(e) => e.reason(),
            LoginError::UnknownRequest => "in_response_to_unknown",
            LoginError::WrongApp => "in_response_to_other_app",
            LoginError::Unsolicited => "unsolicited_refused",
            LoginError::Replay => "replay",
            LoginError::Store(_) => "store_unavailable",
            LoginError::SessionOver => "session_not_on_or_after",
            LoginError::IdpNotReady => "idp_not_ready",
            LoginError::UserInactive => "user_inactive",
            LoginError::NotProvisioned => "not_provisioned",
            LoginError::Directory(_) => "directory_unavailable",
            LoginError::TooManyPending => "too_many_pending",
            LoginError::OtherBrowser => "other_browser",
        }
    }

    /// What kind of failure this is (`crate::error`), which sets the status.
    pub fn kind(&self) -> Kind {
        match self {
            LoginError::Saml(e) => e.kind(),
            LoginError::Store(e) => e.kind(),
            LoginError::IdpNotReady | LoginError::Directory(_) => Kind::Unavailable,
            LoginError::TooManyPending => Kind::TooMany,
            LoginError::UnknownRequest
            | LoginError::WrongApp
            | LoginError::Unsolicited
            | LoginError::Replay
            | LoginError::SessionOver
            | LoginError::UserInactive
            | LoginError::NotProvisioned
            | LoginError::OtherBrowser => Kind::Refused,
        }
    }
}

impl From<SessionError> for LoginError {
    fn from(e: SessionError) -> Self {
        match e {
            // The assertion's SessionNotOnOrAfter is already past: the IdP's word, not a
            // store failure.
            SessionError::Expired => LoginError::SessionOver,
            e => LoginError::Store(e),
        }
    }
}

/// Longest `return_to` kept with a pending sign-in; a longer one lands on the app's
/// default path.
pub const MAX_RETURN_TO: usize = 2048;

/// A sign-in started: where the browser goes, and the cookie binding it to this browser.
#[derive(Debug)]
pub struct Started {
    pub location: String,
    pub binding_cookie: Option<String>,
}

/// Where a sign-in may return: a same-origin relative path of bounded length, else the
/// app's default path. Checked where a `return_to` is created and again where it is used.
pub fn safe_return_to(app: &App, return_to: &str) -> String {
    if is_safe_relative_path(return_to) && return_to.len() <= MAX_RETURN_TO {
        return_to.to_string()
    } else {
        app.default_path.clone()
    }
}

/// Start an SP-initiated sign-in for a request to `return_to` (path + query), keeping
/// an urlencoded form body to post again afterwards (PostReplay) when given. `client`
/// is the client's address, for the cap on pending sign-ins.
pub async fn start(
    gw: &Gateway,
    app: &App,
    return_to: &str,
    post_body: Option<String>,
    client: Option<IpAddr>,
) -> Result<Started, LoginError> {
    let now = gw.clock.now();
    let trust = app.trust();
    if !trust.is_ready() {
        return Err(LoginError::IdpNotReady);
    }
    // Pending sign-ins are unauthenticated storage: capped per client and in total.
    let store = gw.sessions.store();
    let window = gw.login_timeout;
    if let Some(ip) = client {
        if store
            .count_event(&format!("pending:client:{ip}"), window)
            .await?
            > gw.max_pending_per_client
        {
            return Err(LoginError::TooManyPending);
        }
    }
    let bucket = now.timestamp() / i64::try_from(window.as_secs().max(1)).unwrap_or(600);
    if store
        .count_event(&format!("pending:total:{bucket}"), window)
        .await?
        > gw.max_pending_total
    {
        return Err(LoginError::TooManyPending);
    }
    // RelayState is an opaque random token; the return URL stays in the store.
    let relay = SessionId::generate();
    let redirect = saml::authn_request_redirect(
        &app.sp,
        &trust.settings,
        relay.as_cookie_value(),
        now,
        app.authn_signer(),
    )?;
    // The browser binding: a random token in a cookie, its hash with the pending record.
    let (binding, binding_cookie) = if gw.bind_sign_in {
        let token = SessionId::generate();
        let hash = sha256_hex(token.as_cookie_value());
        let cookie = gw
            .cookie
            .binding_cookie(token.as_cookie_value(), &hash, gw.login_timeout);
        (Some(hash), Some(cookie))
    } else {
        (None, None)
    };
    let pending = PendingLogin {
        app: app.name.clone(),
        return_to: safe_return_to(app, return_to),
        created_at: now.timestamp(),
        post_body,
        binding,
    };
    store
        .put_pending(&redirect.request_id, &pending, gw.login_timeout)
        .await?;
    Ok(Started {
        location: redirect.url,
        binding_cookie,
    })
}

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest as _, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub struct Completed {
    pub session: SessionId,
    pub return_to: String,
    /// Removes the sign-in's binding cookie.
    pub clear_binding: Option<String>,
    /// A form body to post again to `return_to` (the session had expired on a POST).
    pub post_body: Option<String>,
    /// For the audit log only.
    pub assertion_id: String,
}

/// Validate a posted SAMLResponse and create the session. `cookies` are the request's
/// `Cookie` header values (the browser binding of an SP-initiated sign-in).
pub async fn finish(
    gw: &Gateway,
    app: &App,
    saml_response: &str,
    relay_state: Option<&str>,
    cookies: &[&str],
) -> Result<Completed, LoginError> {
    let now = gw.clock.now();
    let trust = app.trust();
    let mut validated = trust.validator.validate(saml_response, now)?;
    // Only the gateway says what a user's SCIM group names are, never a token.
    validated
        .identity
        .attributes
        .remove(crate::identity::claims::GROUP_NAMES);

    let (return_to, post_body, clear_binding) = match &validated.in_response_to {
        Some(id) => {
            let pending = gw
                .sessions
                .store()
                .take_pending(id)
                .await?
                .ok_or(LoginError::UnknownRequest)?;
            if pending.app != app.name {
                return Err(LoginError::WrongApp);
            }
            let clear = match &pending.binding {
                None => None,
                Some(hash) => {
                    let token = gw.cookie.read_binding(hash, cookies.iter().copied());
                    let held = token.map(sha256_hex).unwrap_or_default();
                    if !bool::from(subtle::ConstantTimeEq::ct_eq(
                        held.as_bytes(),
                        hash.as_bytes(),
                    )) {
                        // Put the request back for the browser that did start it (the
                        // response is refused here whatever happens to the record).
                        let age = now.timestamp().saturating_sub(pending.created_at);
                        let left = gw
                            .login_timeout
                            .saturating_sub(Duration::from_secs(u64::try_from(age).unwrap_or(0)));
                        if !left.is_zero() {
                            gw.sessions.store().put_pending(id, &pending, left).await?;
                        }
                        return Err(LoginError::OtherBrowser);
                    }
                    Some(gw.cookie.clear_binding_cookie(hash))
                }
            };
            (
                safe_return_to(app, &pending.return_to),
                pending.post_body,
                clear,
            )
        }
        None if app.allow_idp_initiated => (idp_relay_target(app, relay_state), None, None),
        None => return Err(LoginError::Unsolicited),
    };

    // Remember the assertion until it could no longer be accepted anyway.
    let ttl_secs = (validated.not_on_or_after - now.timestamp()).max(0) as u64
        + trust.validator.clock_skew.as_secs()
        + 1;
    let first_use = gw
        .sessions
        .store()
        .remember_assertion(&validated.assertion_id, Duration::from_secs(ttl_secs))
        .await?;
    if !first_use {
        return Err(LoginError::Replay);
    }

    // Provisioning: an inactive (or, when required, an unprovisioned) user stops here,
    // after every SAML check.
    if let Some(p) = &gw.provisioning {
        let user = p
            .user_for(&validated.identity)
            .await
            .map_err(|e| LoginError::Directory(e.detail))?;
        let active = user.as_ref().map(|u| {
            u.get("active")
                .and_then(crate::scim::resource::coerce_bool)
                .unwrap_or(true)
        });
        match active {
            Some(false) => return Err(LoginError::UserInactive),
            None if p.require_provisioned_user => return Err(LoginError::NotProvisioned),
            _ => {}
        }
    } else {
        crate::scim::effects::record_sign_in(
            gw.sessions.store().as_ref(),
            &app.name,
            &validated.identity,
            now.timestamp(),
        )
        .await;
    }

    let (session, _) = gw
        .sessions
        .create(
            &app.name,
            validated.identity,
            now.timestamp(),
            validated.session_not_on_or_after,
        )
        .await?;
    Ok(Completed {
        session,
        return_to,
        clear_binding,
        post_body,
        assertion_id: validated.assertion_id,
    })
}

/// RelayState of an IdP-initiated login: honoured when it is a relative path on this app
/// or an http(s) URL whose host is in the app's `redirect_allow_hosts`; anything else
/// lands on `default_path`.
fn idp_relay_target(app: &App, relay_state: Option<&str>) -> String {
    match relay_state {
        Some(r) if is_safe_relative_path(r) => r.to_string(),
        Some(r) if is_allowed_absolute_url(r, &app.redirect_allow_hosts) => r.to_string(),
        _ => app.default_path.clone(),
    }
}

/// An absolute http(s) URL, without credentials or control characters, whose host is
/// one of `allowed` (lower-case, exact match).
pub fn is_allowed_absolute_url(r: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() || r.len() > 4096 || !r.bytes().all(|b| b > 0x20 && b != 0x7f) {
        return false;
    }
    let Ok(u) = url::Url::parse(r) else {
        return false;
    };
    matches!(u.scheme(), "http" | "https")
        && u.username().is_empty()
        && u.password().is_none()
        && u.host_str()
            .is_some_and(|h| allowed.iter().any(|a| a.eq_ignore_ascii_case(h)))
}

/// A path on this host: starts with one '/', no scheme-relative `//` or `/\`, no
/// control characters.
pub fn is_safe_relative_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && p.len() <= 4096
        && p.bytes().all(|b| b > 0x20 && b != 0x7f)
}

#[cfg(test)]
mod tests {
    use super::{is_allowed_absolute_url, is_safe_relative_path};

    #[test]
    fn absolute_relay_urls_need_an_allowed_host() {
        let allowed = vec!["portal.example.com".to_string()];
        assert!(is_allowed_absolute_url(
            "https://portal.example.com/x?y=1",
            &allowed
        ));
        assert!(is_allowed_absolute_url(
            "https://PORTAL.example.com/",
            &allowed
        ));
        for bad in [
            "https://evil.com/",
            "https://portal.example.com.evil.com/",
            "https://portal.example.com@evil.com/",
            "https://user:pw@portal.example.com/",
            "javascript://portal.example.com/%0aalert(1)",
            "ftp://portal.example.com/",
            "https://portal.example.com/\r\n",
        ] {
            assert!(!is_allowed_absolute_url(bad, &allowed), "{bad}");
        }
        assert!(!is_allowed_absolute_url("https://portal.example.com/", &[]));
    }

    #[test]
    fn only_plain_relative_paths_are_safe() {
        assert!(is_safe_relative_path("/wiki/page?x=1"));
        for bad in [
            "//evil.com/",
            "/\\evil.com",
            "https://evil.com/",
            "wiki",
            "/a b",
            "/a\r\n",
        ] {
            assert!(!is_safe_relative_path(bad), "{bad}");
        }
    }
}
