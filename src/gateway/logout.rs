//! Single Logout between the proxy and the SAML module, both directions, over the
//! Redirect binding (the only one Entra supports for logout):
//!
//! ```text
//! SP-initiated   GET /saml/logout ── end this session ── LogoutRequest ─► IdP SLO URL
//!                GET <sp.slo_url>?SAMLResponse=… ◄── IdP: check signature, issuer,
//!                    InResponseTo (a pending logout of this app) ── signed-out page
//! IdP-initiated  GET <sp.slo_url>?SAMLRequest=… ◄── IdP: check signature, issuer, age,
//!                    replay ── end the user's sessions (by SessionIndex, or all of this
//!                    app) on every replica ── signed LogoutResponse ─► IdP SLO URL
//! ```
//!
//! Plain Rust: the proxy maps outcomes and errors to HTTP.

use crate::gateway::{App, Gateway};
use crate::saml::logout::{
    logout_request_xml, logout_response_xml, LogoutChecks, LogoutRequestSpec, LogoutResponseSpec,
    STATUS_SUCCESS,
};
use crate::saml::redirect::{parse_redirect_query, redirect_url, MessageParam};
use crate::saml::{new_request_id, SamlError};
use crate::session::{PendingLogin, SessionError, SessionId};
use std::time::Duration;

/// Pending SP-initiated logouts and seen IdP LogoutRequests live under this prefix in
/// the store, apart from AuthnRequest IDs.
const PENDING_PREFIX: &str = "slo:";
/// How long a LogoutRequest ID is remembered against replays.
const REPLAY_WINDOW: Duration = Duration::from_secs(20 * 60);

#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error(transparent)]
    Saml(#[from] SamlError),
    #[error("the logout message answers a sign-out started for another app")]
    WrongApp,
    #[error("this logout request was already processed (replay)")]
    Replay,
    #[error("Single Logout is not configured for this app (sp.slo_url)")]
    NotConfigured,
    #[error("session store unavailable: {0}")]
    Store(#[from] SessionError),
}

impl LogoutError {
    pub fn reason(&self) -> &'static str {
        match self {
            LogoutError::Saml(e) => e.reason(),
            LogoutError::WrongApp => "logout_other_app",
            LogoutError::Replay => "replay",
            LogoutError::NotConfigured => "slo_not_configured",
            LogoutError::Store(_) => "store_unavailable",
        }
    }

    /// What kind of failure this is (`crate::error`), which sets the status.
    pub fn kind(&self) -> crate::error::Kind {
        match self {
            LogoutError::NotConfigured => crate::error::Kind::NotConfigured,
            LogoutError::Store(_) => crate::error::Kind::Unavailable,
            LogoutError::Saml(_) | LogoutError::WrongApp | LogoutError::Replay => {
                crate::error::Kind::BadMessage
            }
        }
    }
}

/// What to do after `GET /saml/logout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignOut {
    /// Continue the sign-out at the IdP.
    AtIdp(String),
    /// Done locally: redirect there, or show the signed-out page when `None`.
    Done(Option<String>),
}

/// SP-initiated sign-out: end the local session (if any); when both sides have an SLO
/// URL, send a LogoutRequest for that session to the IdP.
pub async fn start(
    gw: &Gateway,
    app: &App,
    session: Option<&SessionId>,
) -> Result<SignOut, LogoutError> {
    let Some(id) = session else {
        return Ok(SignOut::Done(app.logout_return_path.clone()));
    };
    let now = gw.clock.now();
    let record = gw.sessions.load(id, &app.name, now.timestamp()).await?;
    gw.sessions.destroy(id).await?;
    let trust = app.trust();
    let (Some(record), Some(idp_slo), Some(_)) = (
        record,
        trust.settings.slo_url.as_deref(),
        app.slo_url.as_deref(),
    ) else {
        return Ok(SignOut::Done(app.logout_return_path.clone()));
    };

    let request_id = new_request_id();
    let xml = logout_request_xml(&LogoutRequestSpec {
        id: &request_id,
        issuer: &app.sp.entity_id,
        destination: idp_slo,
        name_id: &record.identity.name_id,
        name_id_format: record.identity.name_id_format.as_deref(),
        session_index: record.identity.session_index.as_deref(),
        now,
    });
    let pending = PendingLogin {
        app: app.name.clone(),
        return_to: app.logout_return_path.clone().unwrap_or_default(),
        created_at: now.timestamp(),
        post_body: None,
        binding: None,
    };
    gw.sessions
        .store()
        .put_pending(
            &format!("{PENDING_PREFIX}{request_id}"),
            &pending,
            gw.login_timeout,
        )
        .await?;
    let url = redirect_url(
        idp_slo,
        MessageParam::Request,
        &xml,
        None,
        app.logout_signer(),
    )?;
    Ok(SignOut::AtIdp(url))
}

/// What a message at our SLO URL led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SloOutcome {
    /// The IdP confirmed our LogoutRequest: redirect there, or the signed-out page.
    SignedOut(Option<String>),
    /// The IdP asked us to end sessions: `ended` did; send the browser to `response_url`.
    Answered { response_url: String, ended: usize },
}

/// A GET at the app's SLO URL with this raw query string.
pub async fn handle(gw: &Gateway, app: &App, query: &str) -> Result<SloOutcome, LogoutError> {
    let slo_url = app.slo_url.as_deref().ok_or(LogoutError::NotConfigured)?;
    let q = parse_redirect_query(query)?;
    let trust = app.trust();
    if q.is_signed() {
        q.verify(&trust.keys, trust.validator.allow_sha1)?;
    } else if app.require_signed_logout {
        return Err(SamlError::MessageNotSigned.into());
    }
    let xml = q.xml()?;
    let now = gw.clock.now();
    let checks = LogoutChecks {
        idp_entity_id: &trust.settings.entity_id,
        slo_url,
        now,
        clock_skew: trust.validator.clock_skew,
    };
    match q.param {
        MessageParam::Response => {
            let resp = checks.logout_response(&xml)?;
            let pending = gw
                .sessions
                .store()
                .take_pending(&format!("{PENDING_PREFIX}{}", resp.in_response_to))
                .await?
                .ok_or(SamlError::UnknownLogoutRequest)?;
            if pending.app != app.name {
                return Err(LogoutError::WrongApp);
            }
            Ok(SloOutcome::SignedOut(
                Some(pending.return_to).filter(|r| !r.is_empty()),
            ))
        }
        MessageParam::Request => {
            let req = checks.logout_request(&xml)?;
            let idp_slo = trust
                .settings
                .slo_url
                .as_deref()
                .ok_or(SamlError::Url("the IdP has no SLO URL to answer to"))?;
            let first = gw
                .sessions
                .store()
                .remember_assertion(&format!("{PENDING_PREFIX}{}", req.id), REPLAY_WINDOW)
                .await?;
            if !first {
                return Err(LogoutError::Replay);
            }
            let ended = gw
                .sessions
                .end_user_sessions(&app.name, &req.name_id, &req.session_indexes)
                .await?;
            let response_id = new_request_id();
            let xml = logout_response_xml(&LogoutResponseSpec {
                id: &response_id,
                issuer: &app.sp.entity_id,
                destination: idp_slo,
                in_response_to: &req.id,
                status: STATUS_SUCCESS,
                now,
            });
            let relay = q.relay_state();
            let response_url = redirect_url(
                idp_slo,
                MessageParam::Response,
                &xml,
                relay.as_deref(),
                app.logout_signer(),
            )?;
            Ok(SloOutcome::Answered {
                response_url,
                ended,
            })
        }
    }
}
