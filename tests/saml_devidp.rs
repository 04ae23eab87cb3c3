//! Response validation against responses signed by the development IdP: the happy path and
//! the attacks (unsigned, foreign key, injected or wrapped assertions, comment truncation,
//! DTD, oversize, weak algorithms), plus a cross-check with the xmlsec1 command-line tool.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ssogate::identity::claims;
use ssogate::saml::{
    authn_request_redirect, decode_redirect_request, DevIdp, IdpSettings, ResponseSpec,
    ResponseValidator, SamlError, SpSettings,
};
use std::sync::OnceLock;
use std::time::Duration;

const IDP_ENTITY: &str = "https://sts.windows.net/00000000-0000-0000-0000-000000000001/";
const NAME_ID: &str = "alice@contoso.example";
const GROUP_A: &str = "6b8b9f5e-8d5c-4d3b-9f33-0d8bbe7f8a01";
const GROUP_B: &str = "1f0e6f8c-2a55-4a5b-a9a3-5b7d5b3c9e02";

fn idp() -> &'static DevIdp {
    static IDP: OnceLock<DevIdp> = OnceLock::new();
    IDP.get_or_init(|| DevIdp::generate(IDP_ENTITY).unwrap())
}

fn other_idp() -> &'static DevIdp {
    static IDP: OnceLock<DevIdp> = OnceLock::new();
    IDP.get_or_init(|| DevIdp::generate(IDP_ENTITY).unwrap())
}

fn sp() -> SpSettings {
    SpSettings {
        entity_id: "https://app.example.com/saml".into(),
        acs_url: "https://app.example.com/saml/acs".into(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-06-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn validator() -> ResponseValidator {
    ResponseValidator::new(sp(), &idp().idp_settings("https://idp.example.com/sso"))
}

fn spec() -> ResponseSpec {
    let mut s = ResponseSpec::for_sp(&sp(), NAME_ID, now());
    s.in_response_to = Some("_0123456789abcdef0123456789abcdef".into());
    s.session_index = Some("_session-1".into());
    s.attributes = vec![
        (claims::GROUPS.into(), vec![GROUP_A.into(), GROUP_B.into()]),
        (
            claims::DISPLAY_NAME.into(),
            vec!["Alice <Admin> & Co".into()],
        ),
        (claims::EMAIL.into(), vec![NAME_ID.into()]),
    ];
    s
}

/// Signed response XML (not base64).
fn signed_xml(spec: &ResponseSpec) -> String {
    String::from_utf8(STANDARD.decode(idp().sign_response(spec).unwrap()).unwrap()).unwrap()
}

fn b64(xml: &str) -> String {
    STANDARD.encode(xml)
}

/// The `<Assertion ...>...</Assertion>` substring of a response.
fn assertion_of(xml: &str) -> &str {
    let start = xml.find("<Assertion ").unwrap();
    let end = xml.find("</Assertion>").unwrap() + "</Assertion>".len();
    &xml[start..end]
}

#[test]
fn signed_response_round_trips_the_identity() {
    let v = validator()
        .validate(&idp().sign_response(&spec()).unwrap(), now())
        .unwrap();
    let id = &v.identity;
    assert_eq!(id.name_id, NAME_ID);
    assert_eq!(
        id.name_id_format.as_deref(),
        Some(sp().name_id_format.as_str())
    );
    assert_eq!(id.groups(), [GROUP_A, GROUP_B]);
    assert_eq!(id.claim(claims::DISPLAY_NAME), ["Alice <Admin> & Co"]);
    assert_eq!(id.lookup("email"), [NAME_ID]);
    assert_eq!(id.session_index.as_deref(), Some("_session-1"));
    assert_eq!(id.auth_instant, Some(now().timestamp()));
    assert_eq!(
        v.in_response_to.as_deref(),
        Some("_0123456789abcdef0123456789abcdef")
    );
    assert_eq!(v.not_on_or_after, now().timestamp() + 300);
    assert!(v.assertion_id.starts_with('_'));
    // the same assertion validates twice: replay detection is the caller's (step 8)
    let s = spec();
    let again = idp().sign_response(&s).unwrap();
    assert!(validator().validate(&again, now()).is_ok());
}

#[test]
fn idp_initiated_has_no_in_response_to() {
    let mut s = spec();
    s.in_response_to = None;
    let v = validator()
        .validate(&idp().sign_response(&s).unwrap(), now())
        .unwrap();
    assert_eq!(v.in_response_to, None);
}

#[test]
fn metadata_of_the_dev_idp_loads() {
    let md = idp().metadata_xml("https://idp.example.com/sso");
    let settings = IdpSettings::from_metadata(md.as_bytes()).unwrap();
    assert_eq!(settings, idp().idp_settings("https://idp.example.com/sso"));
    let mut with_bom = vec![0xef, 0xbb, 0xbf];
    with_bom.extend_from_slice(md.as_bytes());
    assert!(IdpSettings::from_metadata(&with_bom).is_ok());
}

#[test]
fn a_second_unsigned_assertion_is_refused() {
    let xml = signed_xml(&spec());
    let evil = assertion_of(&xml)
        .replace(NAME_ID, "mallory@contoso.example")
        .replacen("ID=\"_", "ID=\"_evil", 1);
    // after the signed one
    let after = xml.replace("</Assertion>", &format!("</Assertion>{evil}"));
    assert_eq!(
        validator().validate(&b64(&after), now()).unwrap_err(),
        SamlError::AssertionCount(2)
    );
    // before it
    let before = xml.replace("<Assertion ", &format!("{evil}<Assertion "));
    assert_eq!(
        validator().validate(&b64(&before), now()).unwrap_err(),
        SamlError::AssertionCount(2)
    );
}

#[test]
fn unsigned_responses_are_refused() {
    // the template with an empty SignatureValue
    let template = idp().response_template(&spec()).unwrap();
    let err = validator().validate(&b64(&template), now()).unwrap_err();
    assert_eq!(err, SamlError::Signature);
    // no Signature element at all
    let start = template.find("<Signature ").unwrap();
    let end = template.find("</Signature>").unwrap() + "</Signature>".len();
    let bare = format!("{}{}", &template[..start], &template[end..]);
    assert_eq!(
        validator().validate(&b64(&bare), now()).unwrap_err(),
        SamlError::Signature
    );
}

#[test]
fn a_response_signed_by_another_key_is_refused() {
    let forged = other_idp().sign_response(&spec()).unwrap();
    assert_eq!(
        validator().validate(&forged, now()).unwrap_err(),
        SamlError::Signature
    );
    // trusting both keys (rollover) accepts both
    let mut v = validator();
    let mut certs = v.signing_certs().to_vec();
    certs.push(other_idp().certificate_der());
    v.set_signing_certs(certs).unwrap();
    assert!(v.validate(&forged, now()).is_ok());
}

#[test]
fn a_doctype_is_refused() {
    let xml = signed_xml(&spec());
    let body = xml.trim_start_matches(|c| c != '<');
    let body = body.strip_prefix("<?xml version=\"1.0\"?>").unwrap_or(body);
    for dtd in [
        "<!DOCTYPE Response>",
        "<!DOCTYPE r [<!ENTITY x \"y\">]>",
        "<!DOCTYPE r SYSTEM \"http://attacker.example/x.dtd\">",
    ] {
        let with_dtd = format!("<?xml version=\"1.0\"?>{dtd}{body}");
        let err = validator().validate(&b64(&with_dtd), now()).unwrap_err();
        assert_eq!(err, SamlError::XmlDtd);
        assert_eq!(err.reason(), "xml_dtd");
    }
}

#[test]
fn oversize_and_garbage_are_refused() {
    let v = validator();
    let huge = "A".repeat(v.max_response_bytes * 2);
    assert_eq!(v.validate(&huge, now()).unwrap_err(), SamlError::TooLarge);
    // decoded size is checked too (a limit below this response's size)
    let mut small = validator();
    small.max_response_bytes = 1024;
    let ok = idp().sign_response(&spec()).unwrap();
    assert_eq!(small.validate(&ok, now()).unwrap_err(), SamlError::TooLarge);
    assert_eq!(v.validate("%%%", now()).unwrap_err(), SamlError::BadBase64);
    assert_eq!(
        v.validate(&STANDARD.encode([0xff, 0xfe, 0x00]), now())
            .unwrap_err(),
        SamlError::BadEncoding
    );
    assert_eq!(
        v.validate(&b64("<a><b></a>"), now()).unwrap_err().reason(),
        "xml_parse"
    );
    let deep = "<a>".repeat(10_000) + &"</a>".repeat(10_000);
    assert_eq!(
        v.validate(&b64(&deep), now()).unwrap_err(),
        SamlError::XmlTooDeep
    );
}

#[test]
fn base64_with_line_breaks_is_accepted() {
    let raw = idp().sign_response(&spec()).unwrap();
    let wrapped: Vec<String> = raw
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert!(validator().validate(&wrapped.join("\r\n"), now()).is_ok());
}

#[test]
fn a_wrapped_signed_assertion_is_refused() {
    let xml = signed_xml(&spec());
    let signed = assertion_of(&xml).to_string();
    let evil =
        signed
            .replace(NAME_ID, "mallory@contoso.example")
            .replacen("ID=\"_", "ID=\"_evil", 1);
    // evil assertion at the normal place, the signed one hidden in samlp:Extensions
    let ext = xml.replace(
        &signed,
        &format!("<samlp:Extensions>{signed}</samlp:Extensions>{evil}"),
    );
    let err = validator().validate(&b64(&ext), now()).unwrap_err();
    assert_eq!(err, SamlError::AssertionCount(2));
    // the signed one inside the evil one's Signature/Object
    let object = xml.replace(
        &signed,
        &evil.replace(
            "</Signature>",
            &format!("<Object>{signed}</Object></Signature>"),
        ),
    );
    let err = validator().validate(&b64(&object), now()).unwrap_err();
    assert_eq!(err, SamlError::AssertionCount(2));
    // the signed one renamed into a foreign element, the evil one keeps its ID
    let renamed = signed
        .replacen("<Assertion ", "<Wrapped ", 1)
        .replace("</Assertion>", "</Wrapped>")
        .replacen("ID=\"_", "ID=\"_moved", 1);
    let hidden = xml.replace(&signed, &format!("{renamed}{evil}"));
    assert!(validator().validate(&b64(&hidden), now()).is_err());
    // and with evil re-using the signed ID (duplicate IDs)
    let same_id = signed.replace(NAME_ID, "mallory@contoso.example");
    let dup = xml.replace(
        &signed,
        &format!("<samlp:Extensions>{signed}</samlp:Extensions>{same_id}"),
    );
    assert!(validator().validate(&b64(&dup), now()).is_err());
}

#[test]
fn a_comment_in_the_name_id_does_not_truncate_it() {
    let mut s = spec();
    s.name_id = "user@evil.com.example.com".into();
    s.attributes = vec![(
        claims::EMAIL.into(),
        vec!["user@evil.com.example.com".into()],
    )];
    let template = idp()
        .response_template(&s)
        .unwrap()
        .replace(
            ">user@evil.com.example.com</NameID>",
            ">user@evil.com<!---->.example.com</NameID>",
        )
        .replace(
            "<AttributeValue>user@evil.com.example.com",
            "<AttributeValue>user@evil.com<!-- x --><?pi x?>.example.com",
        );
    assert!(template.contains("<!---->"));
    let signed = idp().sign_template(&template).unwrap();
    let v = validator().validate(&b64(&signed), now()).unwrap();
    assert_eq!(v.identity.name_id, "user@evil.com.example.com");
    assert_eq!(
        v.identity.claim(claims::EMAIL),
        ["user@evil.com.example.com"]
    );
}

#[test]
fn a_comment_added_after_signing_is_harmless_or_refused() {
    // Adding a comment after signing keeps the exclusive-c14n digest valid; the value read
    // must still be the full one.
    let xml = signed_xml(&spec());
    let commented = xml.replace("alice@contoso", "alice<!---->@contoso");
    let v = validator().validate(&b64(&commented), now()).unwrap();
    assert_eq!(v.identity.name_id, NAME_ID);
}

#[test]
fn an_idp_error_status_is_reported_with_its_words() {
    let xml = format!(
        concat!(
            "<samlp:Response ID=\"_e1\" Version=\"2.0\" IssueInstant=\"2024-06-01T10:00:00Z\" ",
            "Destination=\"https://app.example.com/saml/acs\" InResponseTo=\"_r1\" ",
            "xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">",
            "<Issuer xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\">{}</Issuer>",
            "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Requester\">",
            "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:RequestDenied\"/></samlp:StatusCode>",
            "<samlp:StatusMessage>AADSTS50105: Your administrator has configured the application ",
            "to block users unless they are specifically granted access.\n</samlp:StatusMessage>",
            "</samlp:Status></samlp:Response>"
        ),
        IDP_ENTITY
    );
    match validator().validate(&b64(&xml), now()).unwrap_err() {
        SamlError::Status { codes, message } => {
            assert_eq!(
                codes,
                [
                    "urn:oasis:names:tc:SAML:2.0:status:Requester",
                    "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
                ]
            );
            let m = message.unwrap();
            assert!(m.starts_with("AADSTS50105: "));
            assert!(!m.contains('\n'));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn protocol_checks_refuse_wrong_values() {
    let v = validator();
    let mut s = spec();
    s.issuer = Some("https://sts.windows.net/evil/".into());
    assert_eq!(
        v.validate(&idp().sign_response(&s).unwrap(), now())
            .unwrap_err(),
        SamlError::Issuer
    );

    let mut s = spec();
    s.audience = "https://other.example.com/saml".into();
    assert_eq!(
        v.validate(&idp().sign_response(&s).unwrap(), now())
            .unwrap_err(),
        SamlError::Audience
    );

    let mut s = spec();
    s.recipient = "https://other.example.com/saml/acs".into();
    assert_eq!(
        v.validate(&idp().sign_response(&s).unwrap(), now())
            .unwrap_err(),
        SamlError::Destination
    );
    // Recipient alone (no Destination on the unsigned Response)
    let xml = signed_xml(&s);
    let no_dest = xml.replace(" Destination=\"https://other.example.com/saml/acs\"", "");
    assert_eq!(
        v.validate(&b64(&no_dest), now()).unwrap_err(),
        SamlError::Recipient
    );

    // not bearer
    let template = idp()
        .response_template(&spec())
        .unwrap()
        .replace(":cm:bearer", ":cm:holder-of-key");
    let signed = idp().sign_template(&template).unwrap();
    assert_eq!(
        v.validate(&b64(&signed), now()).unwrap_err(),
        SamlError::SubjectConfirmation
    );

    // empty NameID
    let mut s = spec();
    s.name_id = String::new();
    assert_eq!(
        v.validate(&idp().sign_response(&s).unwrap(), now())
            .unwrap_err(),
        SamlError::MissingNameId
    );

    // time windows with skew
    let s = spec();
    let r = idp().sign_response(&s).unwrap();
    let skew = v.clock_skew;
    let after = now() + chrono::Duration::from_std(s.lifetime + skew).unwrap();
    assert_eq!(v.validate(&r, after).unwrap_err(), SamlError::Expired);
    let just_inside = after - chrono::Duration::seconds(1);
    assert!(v.validate(&r, just_inside).is_ok());
    let before = now() - chrono::Duration::from_std(skew + Duration::from_secs(10)).unwrap();
    assert_eq!(v.validate(&r, before).unwrap_err(), SamlError::NotYetValid);
}

#[test]
fn in_response_to_mismatch_is_refused() {
    let xml = signed_xml(&spec());
    // the unsigned Response's InResponseTo differs from the signed SubjectConfirmationData's
    let changed = xml.replacen(
        "InResponseTo=\"_0123456789abcdef0123456789abcdef\"",
        "InResponseTo=\"_ffffffffffffffffffffffffffffffff\"",
        1,
    );
    assert_eq!(
        validator().validate(&b64(&changed), now()).unwrap_err(),
        SamlError::InResponseToMismatch
    );
}

#[test]
fn a_signed_response_and_both_signed_validate() {
    let template = idp().response_template(&spec()).unwrap();
    let start = template.find("<Signature ").unwrap();
    let end = template.find("</Signature>").unwrap() + "</Signature>".len();
    let sig_template = &template[start..end];
    let rid_start = template.find("ID=\"").unwrap() + 4;
    let rid_end = rid_start + template[rid_start..].find('"').unwrap();
    let rid = &template[rid_start..rid_end];
    let aid = assertion_of(&template)
        .split("ID=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let response_sig = sig_template.replace(&format!("URI=\"#{aid}\""), &format!("URI=\"#{rid}\""));
    let issuer_end = template.find("</Issuer>").unwrap() + "</Issuer>".len();

    // Response signed only
    let unsigned_assertion = format!("{}{}", &template[..start], &template[end..]);
    let resp_only = format!(
        "{}{}{}",
        &unsigned_assertion[..issuer_end],
        response_sig,
        &unsigned_assertion[issuer_end..]
    );
    let signed = idp().sign_template(&resp_only).unwrap();
    // refused by default (Entra signs the assertion by default), accepted when configured
    assert_eq!(
        validator().validate(&b64(&signed), now()).unwrap_err(),
        SamlError::AssertionNotSigned
    );
    let mut response_only = validator();
    response_only.want_assertions_signed = false;
    let v = response_only.validate(&b64(&signed), now()).unwrap();
    assert_eq!(v.identity.name_id, NAME_ID);

    // both: assertion first, then the Response
    let assertion_signed = idp().sign_template(&template).unwrap();
    let body = assertion_signed
        .split_once("?>")
        .map(|(_, b)| b.trim_start())
        .unwrap();
    let issuer_end = body.find("</Issuer>").unwrap() + "</Issuer>".len();
    let both = format!(
        "{}{}{}",
        &body[..issuer_end],
        response_sig,
        &body[issuer_end..]
    );
    let signed = idp().sign_template(&both).unwrap();
    let v = validator().validate(&b64(&signed), now()).unwrap();
    assert_eq!(v.identity.groups(), [GROUP_A, GROUP_B]);
    // a changed byte in the assertion breaks both
    let tampered = signed.replace(GROUP_A, &GROUP_A.replace('6', "7"));
    assert_eq!(
        validator().validate(&b64(&tampered), now()).unwrap_err(),
        SamlError::Signature
    );
}

#[test]
fn sha1_is_refused_unless_allowed() {
    let template = idp()
        .response_template(&spec())
        .unwrap()
        .replace(
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        )
        .replace(
            "http://www.w3.org/2001/04/xmlenc#sha256",
            "http://www.w3.org/2000/09/xmldsig#sha1",
        );
    let signed = idp().sign_template(&template).unwrap();
    let err = validator().validate(&b64(&signed), now()).unwrap_err();
    assert_eq!(err.reason(), "weak_algorithm");
    let mut v = validator();
    v.allow_sha1 = true;
    v.validate(&b64(&signed), now()).unwrap();
}

#[test]
fn encrypted_assertions_without_an_sp_key_are_refused() {
    let xml = format!(
        concat!(
            "<samlp:Response ID=\"_e1\" Version=\"2.0\" IssueInstant=\"2024-06-01T10:00:00Z\" ",
            "xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">",
            "<Issuer xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\">{}</Issuer>",
            "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>",
            "<EncryptedAssertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\"/></samlp:Response>"
        ),
        IDP_ENTITY
    );
    assert_eq!(
        validator().validate(&b64(&xml), now()).unwrap_err(),
        SamlError::EncryptedAssertionUnsupported
    );
}

#[test]
fn mangled_responses_never_panic() {
    let xml = signed_xml(&spec());
    let v = validator();
    let bytes = xml.as_bytes();
    for cut in (0..bytes.len()).step_by(97) {
        let _ = v.validate(&STANDARD.encode(&bytes[..cut]), now());
        let mut flipped = bytes.to_vec();
        flipped[cut] ^= 0x20;
        if let Ok(ok) = v.validate(&STANDARD.encode(&flipped), now()) {
            // Only bytes outside what was signed may change without breaking the signature
            // (the Response envelope, the Signature's own KeyInfo); the identity is intact.
            let signed_part = assertion_of(&xml);
            let sig_start = xml.find("<Signature ").unwrap();
            let key_info = xml.find("<KeyInfo>").unwrap()..xml.find("</Signature>").unwrap();
            let in_assertion = xml.find(signed_part).unwrap()..xml.find("</Assertion>").unwrap();
            assert!(
                !in_assertion.contains(&cut) || key_info.contains(&cut) || cut < sig_start,
                "flip at {cut} accepted"
            );
            assert_eq!(ok.identity.name_id, NAME_ID);
        }
    }
}

#[test]
fn authn_request_redirect_decodes_back() {
    let idp_settings = idp().idp_settings("https://idp.example.com/sso?tenant=x");
    let a = authn_request_redirect(&sp(), &idp_settings, "rs-1", now(), None).unwrap();
    let b = authn_request_redirect(&sp(), &idp_settings, "rs-1", now(), None).unwrap();
    assert_ne!(a.request_id, b.request_id);
    for r in [&a, &b] {
        assert!(!r.request_id.starts_with(|c: char| c.is_ascii_digit()));
        assert_eq!(r.request_id.len(), 33);
    }
    assert!(a
        .url
        .starts_with("https://idp.example.com/sso?tenant=x&SAMLRequest="));
    assert!(a.url.ends_with("&RelayState=rs-1"));
    let param = a
        .url
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("SAMLRequest="))
        .unwrap();
    let xml = decode_redirect_request(param).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.attribute("ID"), Some(a.request_id.as_str()));
    assert_eq!(
        root.attribute("AssertionConsumerServiceURL"),
        Some("https://app.example.com/saml/acs")
    );
    let issuer = root
        .children()
        .find(|n| n.has_tag_name(("urn:oasis:names:tc:SAML:2.0:assertion", "Issuer")))
        .unwrap();
    assert_eq!(issuer.text(), Some("https://app.example.com/saml"));
}

#[test]
fn xmlsec1_cli_verifies_a_dev_idp_response() {
    let Ok(out) = std::process::Command::new("xmlsec1")
        .arg("--version")
        .output()
    else {
        eprintln!("xmlsec1 not installed: skipping the cross-check");
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let resp = dir.path().join("response.xml");
    std::fs::write(&cert, idp().certificate_pem()).unwrap();
    std::fs::write(&resp, signed_xml(&spec())).unwrap();
    let verify = |cert: &std::path::Path| {
        std::process::Command::new("xmlsec1")
            .args(["--verify", "--pubkey-cert-pem"])
            .arg(cert)
            .args([
                "--id-attr:ID",
                "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            ])
            .arg(&resp)
            .output()
            .unwrap()
    };
    let ok = verify(&cert);
    assert!(
        ok.status.success(),
        "xmlsec1: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // and refuses it under another key
    let other = dir.path().join("other.pem");
    std::fs::write(&other, other_idp().certificate_pem()).unwrap();
    assert!(!verify(&other).status.success());
}
