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

pub use crate::clock::{Clock, FixedClock, SystemClock};
