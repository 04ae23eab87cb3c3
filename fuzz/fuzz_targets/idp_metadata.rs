//! IdP federation metadata, which the gateway downloads from `metadata_url` (Entra's App
//! Federation Metadata Url) and refreshes: unsigned (`IdpSettings::from_metadata`) and with
//! a pinned signer (`from_signed_metadata`, pinned to the real Entra tenant document's own
//! signing certificates); and certificates as `load_certificate` takes them (PEM, bare
//! Base64, DER), the form metadata carries them in.
//!
//! Asserts: no panic; accepted metadata has an entity ID and at least one
//! signing certificate, each of which `load_certificate` takes back unchanged (signed or
//! not); `load_certificate` is idempotent on its DER output.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ssogate::saml::{load_certificate, IdpSettings, MAX_METADATA_BYTES};
use ssogate_fuzz::{quiet, ENTRA_METADATA};
use std::sync::OnceLock;

fn pinned() -> &'static [Vec<u8>] {
    static P: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    P.get_or_init(|| {
        quiet();
        IdpSettings::from_metadata(ENTRA_METADATA)
            .expect("the Entra metadata fixture loads")
            .signing_certs
    })
}

/// DER that happens to hold `-----BEGIN` (in a name, say) reads as PEM: not a DER input.
fn pem_marker(der: &[u8]) -> bool {
    der.windows(10).any(|w| w == b"-----BEGIN")
}

fn sane(s: &IdpSettings) {
    assert!(!s.entity_id.trim().is_empty());
    assert!(!s.signing_certs.is_empty());
    for c in &s.signing_certs {
        if !pem_marker(c) {
            assert_eq!(
                load_certificate(c).as_ref(),
                Ok(c),
                "a kept certificate does not reload"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_METADATA_BYTES {
        return;
    }
    if let Ok(s) = IdpSettings::from_metadata(data) {
        sane(&s);
    }
    if let Ok(s) = IdpSettings::from_signed_metadata(data, pinned()) {
        sane(&s);
    }
    if let Ok(der) = load_certificate(data) {
        if pem_marker(&der) {
            return;
        }
        assert_eq!(
            load_certificate(&der).as_ref(),
            Ok(&der),
            "DER does not reload as itself"
        );
    }
});
