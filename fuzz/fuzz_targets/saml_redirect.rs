//! The HTTP-Redirect binding as the SLO endpoint receives it (`GET <slo_url>?SAMLRequest=…`
//! or `?SAMLResponse=…`, `gateway::logout::handle`): query split, signature check,
//! percent/base64/inflate, then the LogoutRequest / LogoutResponse checks.
//!
//! Input: the raw query string.
//!
//! Asserts: no panic; no query verifies against the Entra certificate or the harness'
//! key (neither can be forged); checked logout messages have bounded, non-empty IDs and a
//! NameID. Round trip: the inflated message (or the input itself) and RelayState, encoded
//! by `redirect_url` (signed one time in eight), parse back to the same XML and RelayState
//! and verify exactly when signed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openssl::pkey::{PKey, Public};
use ssogate::saml::logout::LogoutChecks;
use ssogate::saml::redirect::{
    parse_redirect_query, public_keys, redirect_url, MessageParam, MAX_INFLATED_BYTES,
};
use ssogate::saml::SamlError;
use ssogate_fuzz::{coin, dev_now, dev_sp_key, entra_cert_der, DEV_IDP};
use std::sync::OnceLock;

const SLO_URL: &str = "https://wiki.example.com/saml/slo";

fn keys() -> &'static [PKey<Public>] {
    static K: OnceLock<Vec<PKey<Public>>> = OnceLock::new();
    K.get_or_init(|| {
        let mut k = public_keys(&[entra_cert_der().to_vec()]).unwrap();
        k.push(dev_public());
        k
    })
}

fn dev_public() -> PKey<Public> {
    PKey::public_key_from_der(&dev_sp_key().pkey().public_key_to_der().unwrap()).unwrap()
}

fn checks() -> LogoutChecks<'static> {
    LogoutChecks {
        idp_entity_id: DEV_IDP,
        slo_url: SLO_URL,
        now: dev_now(),
        clock_skew: std::time::Duration::from_secs(180),
    }
}

/// What `logout::handle` does with the inflated XML.
fn check_message(param: MessageParam, xml: &str) {
    match param {
        MessageParam::Request => {
            if let Ok(r) = checks().logout_request(xml) {
                assert!(!r.id.is_empty() && r.id.len() <= 256);
                assert!(!r.name_id.trim().is_empty());
                assert!(r.session_indexes.iter().all(|s| !s.is_empty()));
            }
        }
        MessageParam::Response => {
            if let Ok(r) = checks().logout_response(xml) {
                assert!(!r.in_response_to.is_empty() && r.in_response_to.len() <= 256);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let mut xml = None;
    let mut relay = None;
    let mut param = if coin(data, 2) {
        MessageParam::Request
    } else {
        MessageParam::Response
    };
    if let Ok(q) = parse_redirect_query(query) {
        param = q.param;
        relay = q.relay_state();
        for allow_sha1 in [false, true] {
            let v = q.verify(keys(), allow_sha1);
            assert!(v.is_err(), "a forged Redirect-binding signature verified");
            if !q.is_signed() {
                assert_eq!(v, Err(SamlError::MessageNotSigned));
            }
        }
        if let Ok(x) = q.xml() {
            assert!(x.len() as u64 <= MAX_INFLATED_BYTES);
            check_message(q.param, &x);
            xml = Some(x);
        }
    }

    // Round trip through the sending side.
    let xml = xml.unwrap_or_else(|| query.to_string());
    let relay = relay.unwrap_or_default();
    let signer = coin(data, 8).then(dev_sp_key);
    let Ok(url) = redirect_url(SLO_URL, param, &xml, Some(&relay), signer) else {
        return;
    };
    let (_, back) = url.split_once('?').expect("a query");
    let Ok(q) = parse_redirect_query(back) else {
        assert!(
            back.len() > 64 * 1024,
            "our own query does not parse: {back:?}"
        );
        return;
    };
    assert_eq!(q.param, param);
    assert_eq!(
        q.relay_state(),
        Some(relay.clone()).filter(|r| !r.is_empty())
    );
    match q.xml() {
        Ok(x) => assert_eq!(x, xml, "inflate(deflate(x)) != x"),
        Err(e) => assert!(
            e == SamlError::TooLarge && xml.len() as u64 > MAX_INFLATED_BYTES,
            "{e:?} on our own message of {} bytes",
            xml.len()
        ),
    }
    match signer {
        Some(_) => {
            assert_eq!(q.verify(&[dev_public()], false), Ok(()), "our signature");
            if xml.len() as u64 <= MAX_INFLATED_BYTES {
                check_message(param, &xml);
            }
        }
        None => assert_eq!(q.verify(keys(), false), Err(SamlError::MessageNotSigned)),
    }
});
