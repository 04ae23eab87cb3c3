//! The real Microsoft Entra ID artefacts in tests/fixtures/entra (copied byte for byte from ../shared; see its README):
//! the assertion-signed response validates at a 2022 instant; one changed byte anywhere
//! signed breaks it; the federation metadata and the certificate load in every form.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ssogate::identity::claims;
use ssogate::saml::{
    load_certificate, DevIdp, IdpSettings, ResponseValidator, SamlError, SpSettings,
};

const RESPONSE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/entra/response-assertion-signed.xml"
));
const CERT_PEM: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/entra/signing-cert.pem"
));
const METADATA: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/entra/tenant-federation-metadata.xml"
));

const SP: &str = "https://devpg.tercen.com/_service/sso/auth/saml";
const IDP: &str = "https://sts.windows.net/5b5c94c6-14cf-42da-85bc-4e08722b253b/";
const NAME_ID: &str = "test@alexandremaurelgmail.onmicrosoft.com";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn validator() -> ResponseValidator {
    let idp = IdpSettings {
        entity_id: IDP.into(),
        sso_url: "https://login.microsoftonline.com/5b5c94c6-14cf-42da-85bc-4e08722b253b/saml2"
            .into(),
        slo_url: None,
        signing_certs: vec![load_certificate(CERT_PEM).unwrap()],
    };
    let sp = SpSettings {
        entity_id: SP.into(),
        acs_url: SP.into(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    ResponseValidator::new(sp, &idp)
}

fn inside() -> DateTime<Utc> {
    at("2022-02-23T17:50:00Z")
}

fn b64(xml: &str) -> String {
    STANDARD.encode(xml)
}

/// A copy of the response with `from` (which must occur exactly once) replaced by `to`.
fn tampered(from: &str, to: &str) -> String {
    assert_eq!(RESPONSE.matches(from).count(), 1, "{from}");
    assert_eq!(from.len(), to.len());
    RESPONSE.replacen(from, to, 1)
}

#[test]
fn real_entra_response_validates() {
    let v = validator().validate(&b64(RESPONSE), inside()).unwrap();
    let id = &v.identity;
    assert_eq!(id.name_id, NAME_ID);
    assert_eq!(
        id.name_id_format.as_deref(),
        Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
    );
    assert_eq!(v.assertion_id, "_8c68ecbc-f68b-4f9b-bf66-e6afe9c0b001");
    assert_eq!(
        v.in_response_to.as_deref(),
        Some("id6491e192-e2d9-4970-ab03-e38ffda6e033")
    );
    assert_eq!(
        id.session_index.as_deref(),
        Some("_8c68ecbc-f68b-4f9b-bf66-e6afe9c0b001")
    );
    assert_eq!(
        id.auth_instant,
        Some(at("2022-02-23T10:17:10Z").timestamp())
    );
    assert_eq!(v.not_on_or_after, at("2022-02-23T18:49:18Z").timestamp());
    assert_eq!(v.session_not_on_or_after, None);
    assert_eq!(
        id.claim(claims::TENANT_ID),
        ["5b5c94c6-14cf-42da-85bc-4e08722b253b"]
    );
    assert_eq!(
        id.claim(claims::OBJECT_ID),
        ["814bd554-6a00-405c-91d5-4132d39ba4fb"]
    );
    assert_eq!(id.claim(claims::DISPLAY_NAME), ["test"]);
    assert_eq!(id.claim(claims::IDENTITY_PROVIDER), [IDP]);
    assert_eq!(
        id.claim(claims::AUTHN_METHODS),
        ["http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"]
    );
    assert_eq!(id.claim(claims::NAME), [NAME_ID]);
    assert_eq!(id.lookup("upn"), [NAME_ID]);
    assert_eq!(id.attributes.len(), 6);
}

#[test]
fn one_changed_byte_breaks_the_signature() {
    let v = validator();
    let cases = [
        // NameID
        (
            ">test@alexandremaurelgmail.onmicrosoft.com</NameID>",
            ">tesu@alexandremaurelgmail.onmicrosoft.com</NameID>",
        ),
        // Audience
        (
            "<Audience>https://devpg.tercen.com/_service/sso/auth/saml</Audience>",
            "<Audience>https://devpg.tercen.com/_service/sso/auth/samm</Audience>",
        ),
        // a claim value (objectidentifier)
        (
            "814bd554-6a00-405c-91d5-4132d39ba4fb",
            "814bd554-6a00-405c-91d5-4132d39ba4fc",
        ),
        // SignatureValue
        ("<SignatureValue>KQ6TXajg", "<SignatureValue>KQ6TXbjg"),
    ];
    for (from, to) in cases {
        let err = v.validate(&b64(&tampered(from, to)), inside()).unwrap_err();
        assert_eq!(err, SamlError::Signature, "{from}");
        assert_eq!(err.reason(), "signature");
    }
}

#[test]
fn outside_the_time_window_is_refused() {
    let v = validator();
    let late = v.validate(&b64(RESPONSE), at("2022-02-23T19:00:00Z"));
    assert_eq!(late.unwrap_err(), SamlError::Expired);
    let early = v.validate(&b64(RESPONSE), at("2022-02-23T17:30:00Z"));
    assert_eq!(early.unwrap_err(), SamlError::NotYetValid);
    // within the 3-minute skew after NotOnOrAfter (18:49:18.779)
    assert!(v
        .validate(&b64(RESPONSE), at("2022-02-23T18:51:00Z"))
        .is_ok());
}

#[test]
fn another_audience_is_refused() {
    let mut v = validator();
    v.sp.entity_id = "https://other.example.com/saml".into();
    assert_eq!(
        v.validate(&b64(RESPONSE), inside()).unwrap_err(),
        SamlError::Audience
    );
}

#[test]
fn another_acs_is_refused() {
    let mut v = validator();
    v.sp.acs_url = "https://devpg.tercen.com/other/acs".into();
    assert_eq!(
        v.validate(&b64(RESPONSE), inside()).unwrap_err(),
        SamlError::Destination
    );
}

#[test]
fn another_issuer_is_refused() {
    let mut v = validator();
    v.idp_entity_id = "https://sts.windows.net/8b966979-910b-487c-a604-69229b1ac75c/".into();
    assert_eq!(
        v.validate(&b64(RESPONSE), inside()).unwrap_err(),
        SamlError::Issuer
    );
}

#[test]
fn a_wrong_certificate_is_refused() {
    let mut v = validator();
    let other = DevIdp::generate(IDP).unwrap();
    v.set_signing_certs(vec![other.certificate_der()]).unwrap();
    assert_eq!(
        v.validate(&b64(RESPONSE), inside()).unwrap_err(),
        SamlError::Signature
    );
    // the right one among several (rollover) is found
    v.set_signing_certs(vec![
        other.certificate_der(),
        load_certificate(CERT_PEM).unwrap(),
    ])
    .unwrap();
    assert!(v.validate(&b64(RESPONSE), inside()).is_ok());
    // and no certificate at all refuses everything
    v.set_signing_certs(Vec::new()).unwrap();
    assert_eq!(
        v.validate(&b64(RESPONSE), inside()).unwrap_err(),
        SamlError::NoSigningCerts
    );
}

#[test]
fn sha1_only_when_allowed_is_not_needed_for_entra() {
    // Entra signs with RSA-SHA256: works with the default (SHA-256+) policy and with SHA-1 opt-in.
    let mut v = validator();
    v.allow_sha1 = true;
    assert!(v.validate(&b64(RESPONSE), inside()).is_ok());
}

#[test]
fn tenant_federation_metadata_loads() {
    let idp = IdpSettings::from_metadata(METADATA).unwrap();
    assert_eq!(
        idp.entity_id,
        "https://sts.windows.net/8b966979-910b-487c-a604-69229b1ac75c/"
    );
    let url = "https://login.microsoftonline.com/8b966979-910b-487c-a604-69229b1ac75c/saml2";
    assert_eq!(idp.sso_url, url);
    assert_eq!(idp.slo_url.as_deref(), Some(url));
    assert_eq!(idp.signing_certs.len(), 3);
    let mut distinct = idp.signing_certs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
    for c in &idp.signing_certs {
        openssl::x509::X509::from_der(c).unwrap();
    }
}

#[test]
fn certificate_loads_as_pem_base64_and_der() {
    let der = load_certificate(CERT_PEM).unwrap();
    let pem = std::str::from_utf8(CERT_PEM).unwrap();
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\r\n");
    assert_eq!(load_certificate(body.as_bytes()).unwrap(), der);
    assert_eq!(load_certificate(&der).unwrap(), der);
    // the certificate in the response's KeyInfo is the same one
    let key_info = RESPONSE
        .split("<X509Certificate>")
        .nth(1)
        .and_then(|s| s.split("</X509Certificate>").next())
        .unwrap();
    assert_eq!(load_certificate(key_info.as_bytes()).unwrap(), der);
    let sha256 = openssl::sha::sha256(&der);
    assert_eq!(
        hex::encode(sha256),
        "78d2be386a4167527f66b533b7b9de62ffb70bef17d10d65b76a29da8a823347"
    );
}

/// The certificate in the metadata's own ds:Signature KeyInfo (which Entra signs with).
fn metadata_signer() -> Vec<u8> {
    let text = std::str::from_utf8(METADATA)
        .unwrap()
        .trim_start_matches('\u{feff}');
    let doc = roxmltree::Document::parse(text).unwrap();
    let sig = doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name(("http://www.w3.org/2000/09/xmldsig#", "Signature")))
        .unwrap();
    let cert = sig
        .descendants()
        .find(|n| n.has_tag_name("X509Certificate"))
        .and_then(|n| n.text())
        .unwrap();
    load_certificate(cert.as_bytes()).unwrap()
}

#[test]
fn tenant_federation_metadata_signature_verifies_against_a_pinned_signer() {
    let signer = metadata_signer();
    let idp = IdpSettings::from_signed_metadata(METADATA, std::slice::from_ref(&signer)).unwrap();
    // The same settings as the unchecked parse, read from the verified bytes.
    assert_eq!(idp, IdpSettings::from_metadata(METADATA).unwrap());
    assert_eq!(idp.signing_certs.len(), 3);
    // Pinned to another certificate: refused.
    let other = DevIdp::generate(IDP).unwrap().certificate_der();
    assert_eq!(
        IdpSettings::from_signed_metadata(METADATA, &[other]),
        Err(SamlError::Signature)
    );
    // One certificate swapped in the signed document (an attacker's key injected): refused.
    let text = std::str::from_utf8(METADATA).unwrap();
    // (the first certificate after the signature: KeyInfo of the signature is not signed)
    let after_sig = text.find("</Signature>").unwrap();
    let first_cert_start = after_sig
        + text[after_sig..].find("<X509Certificate>").unwrap()
        + "<X509Certificate>".len();
    let mut tampered = text.as_bytes().to_vec();
    tampered[first_cert_start + 40] ^= 0x01;
    assert!(IdpSettings::from_signed_metadata(&tampered, std::slice::from_ref(&signer)).is_err());
    // The signature removed: refused while a signer is pinned.
    let start = text.find("<Signature").unwrap();
    let end = text.find("</Signature>").unwrap() + "</Signature>".len();
    let unsigned = format!("{}{}", &text[..start], &text[end..]);
    assert_eq!(
        IdpSettings::from_signed_metadata(unsigned.as_bytes(), &[signer])
            .unwrap_err()
            .reason(),
        "metadata"
    );
}
