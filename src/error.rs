//! What kind of failure an error is.
//!
//! Each module keeps its own error type beside the code that raises it (`saml::SamlError`,
//! `session::SessionError`, `gateway::login::LoginError`, `gateway::logout::LogoutError`,
//! `scim::ScimError`, `config::ConfigError`), with a fixed snake_case `reason()` for
//! metrics and audit lines. The errors that reach a client also say here, once, which
//! [`Kind`] of failure they are; `gateway::reply` turns a kind into a status and a page,
//! and is the only place that does.

/// The kinds of failure a client can be told apart, and nothing finer: the reason and the
/// details go to the log under the reference the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something the gateway depends on (session store, user directory, the IdP's
    /// signing keys) is not available now; the same request may succeed later (503).
    Unavailable,
    /// A cap on state that unauthenticated clients can create was reached (429).
    TooMany,
    /// A message failed before its signature was verified. Every such failure looks the
    /// same from outside, so that the answer is no decryption or parsing oracle (403).
    Unverified,
    /// A verified message, or the request, failed a check that may be named (403).
    Refused,
    /// A protocol message that is malformed or not acceptable here (400).
    BadMessage,
    /// The feature the request asks for is not configured for this app (404).
    NotConfigured,
}

#[cfg(test)]
mod tests {
    use super::Kind;
    use crate::gateway::login::LoginError;
    use crate::gateway::logout::LogoutError;
    use crate::saml::SamlError;
    use crate::session::SessionError;

    #[test]
    fn each_error_has_its_kind() {
        let unavailable = SessionError::Unavailable("down".into());
        assert_eq!(unavailable.kind(), Kind::Unavailable);
        assert_eq!(LoginError::Store(unavailable).kind(), Kind::Unavailable);
        assert_eq!(LoginError::IdpNotReady.kind(), Kind::Unavailable);
        assert_eq!(
            LoginError::Directory("timeout".into()).kind(),
            Kind::Unavailable
        );
        assert_eq!(LoginError::TooManyPending.kind(), Kind::TooMany);
        assert_eq!(
            LoginError::Saml(SamlError::Decryption).kind(),
            Kind::Unverified
        );
        assert_eq!(LoginError::Saml(SamlError::Expired).kind(), Kind::Refused);
        assert_eq!(LoginError::Replay.kind(), Kind::Refused);
        assert_eq!(LogoutError::NotConfigured.kind(), Kind::NotConfigured);
        assert_eq!(
            LogoutError::Saml(SamlError::Signature).kind(),
            Kind::BadMessage
        );
        assert_eq!(LogoutError::Replay.kind(), Kind::BadMessage);
    }
}
