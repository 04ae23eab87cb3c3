//! The negative corpus, generated here from validly signed responses (keys made in the
//! test): signature wrapping XSW1-XSW8 as catalogued by SAMLRaider, comment and
//! processing-instruction injection, signature removed/altered, digest altered, content
//! altered after signing, a second assertion (signed and unsigned), wrong audience /
//! recipient / destination / issuer, expired, not yet valid, non-Success status,
//! InResponseTo unknown, replay, DTD/XXE, billion laughs, oversize, malformed base64.
//! Each is refused with its own reason; the control is accepted. The store-dependent
//! checks (InResponseTo, replay) run through `login::finish` with the in-memory store.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ssogate::saml::{DevIdp, ResponseSpec, ResponseValidator, Signing, SpSettings};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const IDP_ENTITY: &str = "https://sts.windows.net/00000000-0000-0000-0000-0000000000aa/";
const NAME_ID: &str = "alice@contoso.example";
const EVIL: &str = "mallory@contoso.example";
const IRT: &str = "_0123456789abcdef0123456789abcdef";

fn idp() -> &'static DevIdp {
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

fn spec() -> ResponseSpec {
    let mut s = ResponseSpec::for_sp(&sp(), NAME_ID, now());
    s.in_response_to = Some(IRT.into());
    s
}

fn validator() -> ResponseValidator {
    ResponseValidator::new(sp(), &idp().idp_settings("https://idp.example.com/sso"))
}

fn response_signed_validator() -> ResponseValidator {
    let mut v = validator();
    v.want_assertions_signed = false;
    v.want_response_signed = true;
    v
}

fn xml_of(spec: &ResponseSpec) -> String {
    idp().response_xml(spec).unwrap()
}

fn b64(x: &str) -> String {
    STANDARD.encode(x)
}

/// (start, end) of the first `<tag ` element ... its closing tag.
fn span(x: &str, open: &str, close: &str) -> (usize, usize) {
    let s = x.find(open).unwrap();
    let e = x[s..].find(close).unwrap() + s + close.len();
    (s, e)
}

fn assertion(x: &str) -> &str {
    let (s, e) = span(x, "<Assertion ", "</Assertion>");
    &x[s..e]
}

/// The assertion with its signature removed and the NameID changed (the attacker's).
fn evil_assertion(x: &str) -> String {
    let a = assertion(x);
    let (s, e) = span(a, "<Signature ", "</Signature>");
    format!("{}{}", &a[..s], &a[e..])
        .replace(NAME_ID, EVIL)
        .replace("ID=\"_", "ID=\"_evil")
}

fn replace_assertion(x: &str, with: &str) -> String {
    let (s, e) = span(x, "<Assertion ", "</Assertion>");
    format!("{}{}{}", &x[..s], with, &x[e..])
}

fn reason(v: &ResponseValidator, saml_response: &str) -> &'static str {
    match v.validate(saml_response, now()) {
        Ok(a) => {
            assert_eq!(a.identity.name_id, NAME_ID, "accepted a changed identity");
            "accepted"
        }
        Err(e) => e.reason(),
    }
}

/// XSW1/XSW2 work on a signed Response.
fn xsw_response(variant: u8) -> String {
    let mut s = spec();
    s.signing = Signing::Response;
    let signed = xml_of(&s);
    let (ss, se) = span(&signed, "<Signature ", "</Signature>");
    let signature = &signed[ss..se];
    let unsigned_original = format!("{}{}", &signed[..ss], &signed[se..]);
    let evil = unsigned_original
        .replace(NAME_ID, EVIL)
        .replacen("ID=\"_", "ID=\"_evil", 1);
    let issuer_end = evil.find("</Issuer>").unwrap() + "</Issuer>".len();
    let inner = match variant {
        // XSW1: the original signed Response inside the Signature's Object.
        1 => signature.replace(
            "</Signature>",
            &format!("<Object>{signed}</Object></Signature>"),
        ),
        // XSW2: the original signed Response detached, before the signature.
        _ => format!("{signed}{signature}"),
    };
    let wrapped = format!("{}{}{}", &evil[..issuer_end], inner, &evil[issuer_end..]);
    b64(&wrapped)
}

/// XSW3-XSW8 work on a signed Assertion.
fn xsw_assertion(variant: u8) -> String {
    let signed = xml_of(&spec());
    let original = assertion(&signed).to_string();
    let evil = evil_assertion(&signed);
    let (ss, se) = span(&original, "<Signature ", "</Signature>");
    let signature = &original[ss..se];
    let original_unsigned = format!("{}{}", &original[..ss], &original[se..]);
    let wrapped = match variant {
        // XSW3: evil assertion first, the signed original after it.
        3 => replace_assertion(&signed, &format!("{evil}{original}")),
        // XSW4: evil assertion wrapping the signed original.
        4 => replace_assertion(
            &signed,
            &evil.replace("</Assertion>", &format!("{original}</Assertion>")),
        ),
        // XSW5: the signature moved into the evil assertion; the original (unsigned) last.
        5 => {
            let issuer_end = evil.find("</Issuer>").unwrap() + "</Issuer>".len();
            let evil_signed = format!("{}{}{}", &evil[..issuer_end], signature, &evil[issuer_end..]);
            replace_assertion(&signed, &evil_signed)
                .replace("</samlp:Response>", &format!("{original_unsigned}</samlp:Response>"))
        }
        // XSW6: the signature in the evil assertion, the original inside its Object.
        6 => {
            let issuer_end = evil.find("</Issuer>").unwrap() + "</Issuer>".len();
            let sig_with_original = signature.replace(
                "</Signature>",
                &format!("<Object>{original_unsigned}</Object></Signature>"),
            );
            replace_assertion(
                &signed,
                &format!("{}{}{}", &evil[..issuer_end], sig_with_original, &evil[issuer_end..]),
            )
        }
        // XSW7: the signed original in an Extensions element, the evil assertion after.
        7 => replace_assertion(
            &signed,
            &format!(
                "<Extensions xmlns=\"urn:oasis:names:tc:SAML:2.0:protocol\">{original}</Extensions>{evil}"
            ),
        ),
        // XSW8: the evil assertion's signature Object holds the original without signature.
        _ => {
            let issuer_end = evil.find("</Issuer>").unwrap() + "</Issuer>".len();
            let sig = signature.replace(
                "</Signature>",
                &format!("<Object>{original_unsigned}</Object></Signature>"),
            );
            replace_assertion(
                &signed,
                &format!("{}{}{}", &evil[..issuer_end], sig, &evil[issuer_end..]),
            )
        }
    };
    b64(&wrapped)
}

fn resigned(f: impl FnOnce(&mut ResponseSpec)) -> String {
    let mut s = spec();
    f(&mut s);
    idp().sign_response(&s).unwrap()
}

fn tampered(from: &str, to: &str) -> String {
    let x = xml_of(&spec());
    assert!(x.contains(from), "{from}");
    b64(&x.replacen(from, to, 1))
}

#[test]
fn every_attack_is_refused_with_its_own_reason() {
    let v = validator();
    let signed = xml_of(&spec());
    let mut cases: Vec<(&str, String, &str)> = vec![("control", b64(&signed), "accepted")];

    for n in 3..=8u8 {
        cases.push(("XSW on the assertion", xsw_assertion(n), "assertion_count"));
    }
    // Signature: removed, altered, digest altered, content altered after signing.
    let (ss, se) = span(&signed, "<Signature ", "</Signature>");
    cases.push((
        "signature removed",
        b64(&format!("{}{}", &signed[..ss], &signed[se..])),
        "signature",
    ));
    let sig_value = signed.find("<SignatureValue>").unwrap() + "<SignatureValue>".len();
    let mut altered = signed.clone().into_bytes();
    altered[sig_value + 10] = if altered[sig_value + 10] == b'A' {
        b'B'
    } else {
        b'A'
    };
    cases.push((
        "signature altered",
        b64(&String::from_utf8(altered).unwrap()),
        "signature",
    ));
    let digest = signed.find("<DigestValue>").unwrap() + "<DigestValue>".len();
    let mut altered = signed.clone().into_bytes();
    altered[digest + 5] = if altered[digest + 5] == b'A' {
        b'B'
    } else {
        b'A'
    };
    cases.push((
        "digest altered",
        b64(&String::from_utf8(altered).unwrap()),
        "signature",
    ));
    cases.push(("content altered", tampered(NAME_ID, EVIL), "signature"));
    // Injection after signing: a processing instruction inside the NameID breaks the
    // digest (c14n keeps PIs); a comment is dropped by c14n and never truncates.
    cases.push((
        "PI injected in NameID",
        tampered("alice@contoso.example<", "alice@contoso.example<?evil x?><"),
        "signature",
    ));
    cases.push((
        "comment injected in NameID",
        tampered("alice@contoso.example<", "alice@contoso<!---->.example<"),
        "accepted",
    ));
    // A second assertion, unsigned or signed (by the IdP, for another user).
    let other = xml_of(&ResponseSpec::for_sp(&sp(), EVIL, now()));
    cases.push((
        "second unsigned assertion",
        b64(&signed.replace(
            "</samlp:Response>",
            &format!("{}</samlp:Response>", evil_assertion(&signed)),
        )),
        "assertion_count",
    ));
    cases.push((
        "second signed assertion",
        b64(&signed.replace(
            "</samlp:Response>",
            &format!("{}</samlp:Response>", assertion(&other)),
        )),
        "assertion_count",
    ));
    // Protocol values, properly signed by the IdP.
    cases.push((
        "wrong audience",
        resigned(|s| s.audience = "https://other.example.com/saml".into()),
        "audience",
    ));
    cases.push((
        "wrong recipient",
        resigned(|s| s.recipient = "https://other.example.com/saml/acs".into()),
        "destination",
    ));
    cases.push((
        "wrong issuer",
        resigned(|s| s.issuer = Some("https://evil.example.com/".into())),
        "issuer",
    ));
    cases.push((
        "expired",
        resigned(|s| s.now = now() - chrono::Duration::hours(2)),
        "expired",
    ));
    cases.push((
        "not yet valid",
        resigned(|s| s.now = now() + chrono::Duration::hours(2)),
        "not_yet_valid",
    ));
    let x = xml_of(&spec());
    let dest_only = x.replacen(
        "Destination=\"https://app.example.com/saml/acs\"",
        "Destination=\"https://other.example.com/acs\"",
        1,
    );
    cases.push((
        "wrong destination (unsigned envelope)",
        b64(&dest_only),
        "destination",
    ));
    let recipient_only = idp()
        .sign_template(&idp().response_template(&spec()).unwrap().replace(
            "Recipient=\"https://app.example.com/saml/acs\"",
            "Recipient=\"https://other.example.com/acs\"",
        ))
        .unwrap();
    cases.push((
        "wrong recipient (signed)",
        b64(&recipient_only),
        "recipient",
    ));
    let status = idp().response_template(&spec()).unwrap().replace(
        "urn:oasis:names:tc:SAML:2.0:status:Success",
        "urn:oasis:names:tc:SAML:2.0:status:Requester",
    );
    cases.push(("non-Success status", b64(&status), "status"));
    // Parser attacks.
    let xxe = format!("<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{signed}");
    cases.push(("XXE", b64(&xxe), "xml_dtd"));
    let laughs = format!(
        "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>{}",
        signed.replace(NAME_ID, "&c;")
    );
    cases.push(("billion laughs", b64(&laughs), "xml_dtd"));
    let big = signed.replace(
        "</samlp:Response>",
        &format!("<!--{}--></samlp:Response>", "x".repeat(300 * 1024)),
    );
    cases.push(("oversize", b64(&big), "too_large"));
    cases.push((
        "malformed base64",
        "PHNhbWxwOlJlc3BvbnNl!!!".to_string(),
        "bad_base64",
    ));
    cases.push((
        "deep nesting",
        b64(&format!("{}{}", "<a>".repeat(200), "</a>".repeat(200))),
        "xml_too_deep",
    ));

    let mut failures = Vec::new();
    for (name, input, expected) in &cases {
        let got = reason(&v, input);
        if got != *expected {
            failures.push(format!("{name}: expected {expected}, got {got}"));
        }
    }
    // XSW1/XSW2 against an app that requires the Response signature.
    let rv = response_signed_validator();
    let mut s = spec();
    s.signing = Signing::Response;
    assert_eq!(reason(&rv, &idp().sign_response(&s).unwrap()), "accepted");
    for n in [1u8, 2] {
        let got = reason(&rv, &xsw_response(n));
        if got != "malformed" && got != "assertion_count" {
            failures.push(format!("XSW{n}: expected a structural refusal, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn unknown_in_response_to_and_replay_are_refused_by_the_login_flow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("idp.pem"), idp().certificate_pem()).unwrap();
    let text = format!(
        r#"
[listen]
public = "127.0.0.1:8080"
[session]
store = "memory"
[[app]]
name = "app"
hosts = ["app.example.com"]
upstream = "http://127.0.0.1:3000"
allow_idp_initiated = true
[app.sp]
entity_id = "https://app.example.com/saml"
acs_url = "https://app.example.com/saml/acs"
[app.idp]
entity_id = "{IDP_ENTITY}"
sso_url = "https://idp.example.com/sso"
certificate_file = "idp.pem"
"#
    );
    let env = std::collections::HashMap::<String, String>::new();
    let config = ssogate::config::from_str(&text, dir.path(), &env).unwrap();
    let clock = Arc::new(ssogate::saml::FixedClock(now()));
    let gw = ssogate::gateway::Gateway::build(&config, clock).unwrap();
    let app = gw.apps()[0].clone();

    // InResponseTo that no pending request has (IdP-initiated allowed all the same).
    let err = ssogate::gateway::login::finish(
        &gw,
        &app,
        &idp().sign_response(&spec()).unwrap(),
        None,
        &[],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.reason(), "in_response_to_unknown");

    // An unsolicited response: accepted once, then a replay.
    let mut s = spec();
    s.in_response_to = None;
    s.lifetime = Duration::from_secs(300);
    let r = idp().sign_response(&s).unwrap();
    assert!(ssogate::gateway::login::finish(&gw, &app, &r, None, &[])
        .await
        .is_ok());
    let err = ssogate::gateway::login::finish(&gw, &app, &r, None, &[])
        .await
        .err()
        .unwrap();
    assert_eq!(err.reason(), "replay");
}
