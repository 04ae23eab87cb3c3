//! `saml::dsig`, the libxmlsec1 verification the ACS runs with the IdP keys loaded once, on
//! documents signed by libxmlsec1 itself (through the development IdP): what it accepts,
//! and what it refuses even where the signature is mathematically valid (the xmlsec1
//! command-line tool, with its defaults, accepts those documents: the refusal is ours).
//!
//! The ACS checks algorithms and references before it gets here (tests/saml_attacks.rs);
//! these tests call the verifier directly, so each rule is shown to hold on its own.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use chrono::{DateTime, Utc};
use ssogate::saml::dsig::{self, DsigError, VerifyKeys};
use ssogate::saml::{DevIdp, ResponseSpec, SpSettings};
use std::process::Command;
use std::sync::OnceLock;

const IDP_ENTITY: &str = "https://sts.windows.net/00000000-0000-0000-0000-000000000001/";

fn idp() -> &'static DevIdp {
    static IDP: OnceLock<DevIdp> = OnceLock::new();
    IDP.get_or_init(|| DevIdp::generate(IDP_ENTITY).unwrap())
}

fn other() -> &'static DevIdp {
    static IDP: OnceLock<DevIdp> = OnceLock::new();
    IDP.get_or_init(|| DevIdp::generate(IDP_ENTITY).unwrap())
}

fn keys(idps: &[&DevIdp]) -> VerifyKeys {
    let certs: Vec<Vec<u8>> = idps.iter().map(|i| i.certificate_der()).collect();
    VerifyKeys::from_certificates(&certs).unwrap()
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-06-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn spec() -> ResponseSpec {
    let sp = SpSettings {
        entity_id: "https://app.example.com/saml".into(),
        acs_url: "https://app.example.com/saml/acs".into(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    let mut s = ResponseSpec::for_sp(&sp, "zoë@contoso.example", now());
    s.assertion_id = Some("_a1".into());
    s
}

/// The unsigned template (Assertion `_a1` holds the signature template), changed by `edit`,
/// then signed by `signer` through libxmlsec1.
fn signed_by(signer: &DevIdp, edit: impl Fn(String) -> String) -> String {
    let template = edit(signer.response_template(&spec()).unwrap());
    signer.sign_template(&template).unwrap()
}

fn signed(edit: impl Fn(String) -> String) -> String {
    signed_by(idp(), edit)
}

/// The xmlsec1 tool's verdict with its default settings and the IdP's certificate.
fn xmlsec1_accepts(xml: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.xml");
    let cert = dir.path().join("cert.pem");
    std::fs::write(&doc, xml).unwrap();
    std::fs::write(&cert, idp().certificate_pem()).unwrap();
    // setup.sh installs xmlsec1; a missing tool is a failed test, not a skipped one.
    Command::new("xmlsec1")
        .args(["--verify", "--pubkey-cert-pem"])
        .arg(&cert)
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .arg(&doc)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn a_signed_assertion_verifies_and_yields_the_bytes_that_were_hashed() {
    let xml = signed(|t| t);
    let predigests = dsig::verify(&xml, &keys(&[idp()]), false).unwrap();
    assert_eq!(predigests.len(), 1);
    let p = &predigests[0];
    assert!(p.starts_with("<Assertion"), "{p}");
    assert!(p.contains("zoë@contoso.example"));
    assert!(
        !p.contains("<Signature"),
        "the enveloped signature is not hashed"
    );
    assert!(xmlsec1_accepts(&xml));
}

#[test]
fn only_our_keys_count_never_the_one_keyinfo_carries() {
    // Signed by another key, whose certificate rides in KeyInfo.
    let forged = signed_by(other(), |t| t);
    assert!(matches!(
        dsig::verify(&forged, &keys(&[idp()]), false),
        Err(DsigError::Invalid)
    ));
    assert!(dsig::verify(&forged, &keys(&[other()]), false).is_ok());
    // No keys at all: nothing verifies.
    assert!(matches!(
        dsig::verify(&forged, &VerifyKeys::empty(), false),
        Err(DsigError::Invalid)
    ));
}

#[test]
fn the_signing_key_is_found_among_several_in_any_order() {
    let xml = signed(|t| t);
    let third = DevIdp::generate(IDP_ENTITY).unwrap();
    for order in [
        [other(), &third, idp()],
        [idp(), other(), &third],
        [other(), idp(), &third],
    ] {
        assert!(dsig::verify(&xml, &keys(&order), false).is_ok());
    }
    // KeyInfo naming no key of ours (or nothing) still finds the right one.
    let no_keyinfo = xml.replacen(
        &xml[xml.find("<KeyInfo>").unwrap()..xml.find("</KeyInfo>").unwrap() + 10],
        "",
        1,
    );
    assert!(dsig::verify(&no_keyinfo, &keys(&[other(), idp()]), false).is_ok());
}

#[test]
fn any_change_after_signing_is_refused() {
    let xml = signed(|t| t);
    let tampered = xml.replace("zoë@contoso.example", "mallory@contoso.example");
    assert!(matches!(
        dsig::verify(&tampered, &keys(&[idp()]), false),
        Err(DsigError::Invalid)
    ));
    let unsigned = idp().response_template(&spec()).unwrap();
    assert!(dsig::verify(&unsigned, &keys(&[idp()]), false).is_err());
    let none = unsigned.replacen(
        &unsigned
            [unsigned.find("<Signature").unwrap()..unsigned.find("</Signature>").unwrap() + 12],
        "",
        1,
    );
    assert!(matches!(
        dsig::verify(&none, &keys(&[idp()]), false),
        Err(DsigError::NoSignature)
    ));
    assert!(matches!(
        dsig::verify("<a><b></a>", &keys(&[idp()]), false),
        Err(DsigError::Parse)
    ));
}

#[test]
fn an_xpath_transform_is_refused_though_the_signature_is_valid() {
    let xml = signed(|t| {
        t.replace(
            "<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
            concat!(
                "<Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\">",
                "<XPath>not(self::*[local-name()='Attribute'])</XPath></Transform>",
                "<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
            ),
        )
    });
    assert!(xml.contains("REC-xpath-19991116"));
    assert!(xmlsec1_accepts(&xml), "the signature itself is valid");
    assert!(matches!(
        dsig::verify(&xml, &keys(&[idp()]), false),
        Err(DsigError::Invalid)
    ));
}

#[test]
fn a_reference_outside_the_document_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside.xml");
    std::fs::write(&outside, "<Outside/>").unwrap();
    let uri = format!("file://{}", outside.display());
    let xml = signed(|t| {
        let start = t.find("<Reference URI=\"#_a1\">").unwrap();
        let end = t.find("<DigestMethod").unwrap();
        format!("{}<Reference URI=\"{uri}\">{}", &t[..start], &t[end..])
    });
    assert!(xml.contains(&uri));
    assert!(xmlsec1_accepts(&xml), "the signature itself is valid");
    assert!(matches!(
        dsig::verify(&xml, &keys(&[idp()]), false),
        Err(DsigError::Invalid)
    ));
}

#[test]
fn sha1_needs_the_operators_opt_in() {
    let xml = signed(|t| {
        t.replace(
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        )
        .replace(
            "http://www.w3.org/2001/04/xmlenc#sha256",
            "http://www.w3.org/2000/09/xmldsig#sha1",
        )
    });
    assert!(xml.contains("xmldsig#rsa-sha1"));
    assert!(matches!(
        dsig::verify(&xml, &keys(&[idp()]), false),
        Err(DsigError::Invalid)
    ));
    assert!(dsig::verify(&xml, &keys(&[idp()]), true).is_ok());
}

#[test]
fn ids_must_be_unique_and_xml_id_cannot_shadow_one() {
    let xml = signed(|t| t);
    // A second element claiming the signed element's ID, before or after it.
    let twice = xml.replacen(
        "<samlp:Status>",
        "<samlp:Extensions><x ID=\"_a1\" xmlns=\"urn:x\"/></samlp:Extensions><samlp:Status>",
        1,
    );
    assert!(matches!(
        dsig::verify(&twice, &keys(&[idp()]), false),
        Err(DsigError::Id)
    ));
    let shadow = xml.replacen("<samlp:Status>", "<x xml:id=\"_a1\"/><samlp:Status>", 1);
    assert!(matches!(
        dsig::verify(&shadow, &keys(&[idp()]), false),
        Err(DsigError::Id)
    ));
    let not_ncname = xml.replacen(
        "<samlp:Status>",
        "<x ID=\"1 2\" xmlns=\"urn:x\"/><samlp:Status>",
        1,
    );
    assert!(matches!(
        dsig::verify(&not_ncname, &keys(&[idp()]), false),
        Err(DsigError::Id)
    ));
}

#[test]
fn an_encoding_declaration_does_not_change_what_is_read() {
    // Read as Latin-1, "ë" would be two other characters and the digest would differ;
    // the bytes are UTF-8 whatever the declaration says, as for every other check.
    let xml = signed(|t| t);
    let body = xml
        .trim_start()
        .strip_prefix("<?xml")
        .map_or(xml.as_str(), |r| r.split_once("?>").unwrap().1);
    let declared = format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{body}");
    let predigests = dsig::verify(&declared, &keys(&[idp()]), false).unwrap();
    assert!(predigests[0].contains("zoë@contoso.example"));
}
