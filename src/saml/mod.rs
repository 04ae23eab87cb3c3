//! SAML 2.0 Service Provider: AuthnRequest and Single Logout over the HTTP-Redirect
//! binding (signed with the SP key when configured), Response/Assertion validation
//! (DESIGN.md "SAML validation chain", encrypted assertions included), IdP metadata and
//! certificates, SP metadata, and a development IdP (`devidp`, NOT FOR PRODUCTION).
//!
//! We never panic on hostile input: every SAMLResponse, SAMLRequest, metadata document and
//! certificate is treated as attacker-controlled and every failure is a [`SamlError`].
//! See `LIFECYCLE.md` beside this file for the AuthnRequest -> ACS -> session -> redirect flow.
//!
//! No pingora types here: the proxy module maps [`SamlError`] to HTTP statuses.

mod authn;
pub mod devidp;
pub mod dsig;
pub mod encryption;
mod error;
pub mod logout;
mod metadata;
pub mod redirect;
mod validate;
pub(crate) mod xml;
mod xmlsec_log;

pub use authn::{authn_request_redirect, decode_redirect_request, new_request_id, AuthnRedirect};
pub use devidp::{DevIdp, EncryptFor, ResponseSpec, Signing};
pub use error::SamlError;
pub use metadata::{
    load_certificate, name_id_format_urn, sp_metadata_xml, IdpSettings, SpPublish, SpSettings,
    MAX_METADATA_BYTES,
};
pub use redirect::{SigningKey, SpKeys};
pub use validate::{
    ResponseValidator, ValidatedAssertion, DEFAULT_CLOCK_SKEW, DEFAULT_MAX_RESPONSE_BYTES,
};
pub use xmlsec_log::route_xmlsec_errors_to_tracing;

/// Source of the current time; injected so tests can validate at a fixed instant.
pub trait Clock: Send + Sync {
    fn now(&self) -> chrono::DateTime<chrono::Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// A clock stopped at one instant (tests, replays of recorded responses).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub chrono::DateTime<chrono::Utc>);

impl Clock for FixedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks() {
        let t = chrono::DateTime::from_timestamp(1_645_638_600, 0).unwrap();
        let clocks: [&dyn Clock; 2] = [&FixedClock(t), &SystemClock];
        assert_eq!(clocks[0].now(), t);
        assert!(clocks[1].now() > t);
    }
}
