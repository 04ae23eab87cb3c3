//! The ACS path for a POSTed SAMLResponse, against an app configured for the real Entra
//! fixture (its certificate, SP and IdP entity IDs) at an instant inside its window.
//!
//! The same bytes are fed three ways: as the decoded XML (base64-encoded here, as the
//! browser posts it), as the raw form body (`form_value(body, "SAMLResponse")`, what
//! `gateway::access::acs` does) and as the form value itself (the base64 layer).
//!
//! Asserts: no panic; and since nobody but Entra can sign, any response that validates
//! carries exactly the identity, assertion ID, InResponseTo and validity of the genuine
//! signed assertion (claims are read from the signed bytes only, whatever the fuzzer wraps
//! around them).

#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use ssogate::gateway::access::form_value;
use ssogate::saml::ValidatedAssertion;
use ssogate_fuzz::{entra_now, entra_validator, ENTRA_RESPONSE};
use std::sync::OnceLock;

fn genuine() -> &'static ValidatedAssertion {
    static G: OnceLock<ValidatedAssertion> = OnceLock::new();
    G.get_or_init(|| {
        entra_validator()
            .validate(&STANDARD.encode(ENTRA_RESPONSE), entra_now())
            .expect("the Entra fixture validates")
    })
}

fn check(saml_response: &str) {
    if let Ok(v) = entra_validator().validate(saml_response, entra_now()) {
        let g = genuine();
        assert_eq!(
            v.identity, g.identity,
            "accepted identity differs from the signed one"
        );
        assert_eq!(v.assertion_id, g.assertion_id);
        assert_eq!(v.in_response_to, g.in_response_to);
        assert_eq!(v.not_on_or_after, g.not_on_or_after);
        assert_eq!(v.session_not_on_or_after, g.session_not_on_or_after);
    }
}

fuzz_target!(|data: &[u8]| {
    genuine();
    // 1. The bytes are the XML.
    check(&STANDARD.encode(data));
    // 2. The bytes are the form body.
    if let Some(v) = form_value(data, "SAMLResponse") {
        check(&v);
    }
    // 3. The bytes are the form value (base64 with whatever a browser or IdP adds).
    if let Ok(s) = std::str::from_utf8(data) {
        check(s);
    }
});
