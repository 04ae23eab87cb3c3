//! The one error type of the session module.

/// Everything that can go wrong in the session layer.
///
/// Messages never carry session IDs, store keys or Redis credentials.
#[derive(thiserror::Error, Debug)]
pub enum SessionError {
    /// The store is unreachable, timed out or refused the command: the gateway answers 503
    /// and `/readyz` reports not ready.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be decoded: treated as "no session".
    #[error("stored session record is corrupt")]
    Corrupt,
    /// The session would already be expired when created (e.g. `SessionNotOnOrAfter`
    /// in the past).
    #[error("session would be expired at creation")]
    Expired,
    /// Bad store configuration (e.g. an invalid Redis URL): a startup error.
    #[error("invalid session store configuration: {0}")]
    Config(String),
    /// A record could not be serialized.
    #[error("could not encode session record: {0}")]
    Encode(String),
}

impl SessionError {
    /// What kind of failure this is (`crate::error`): only an expired-at-birth session is
    /// the request's fault; everything else is the store's.
    pub fn kind(&self) -> crate::error::Kind {
        match self {
            SessionError::Expired | SessionError::Corrupt => crate::error::Kind::Refused,
            SessionError::Unavailable(_) | SessionError::Config(_) | SessionError::Encode(_) => {
                crate::error::Kind::Unavailable
            }
        }
    }
}
