//! Signing modes (Entra's "Signing Option") and encrypted assertions (Entra's "Token
//! encryption"), in-process against the development IdP, plus both directions against
//! the xmlsec1 command-line tool: xmlsec1 decrypts what we encrypt, and we decrypt and
//! validate what xmlsec1 encrypts.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use ssogate::saml::devidp::self_signed_certificate;
use ssogate::saml::encryption::ContentAlgorithm;
use ssogate::saml::{
    DevIdp, EncryptFor, ResponseSpec, ResponseValidator, SamlError, Signing, SigningKey, SpSettings,
};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

const IDP_ENTITY: &str = "https://sts.windows.net/00000000-0000-0000-0000-000000000001/";
const NAME_ID: &str = "alice@contoso.example";

fn idp() -> &'static DevIdp {
    static IDP: OnceLock<DevIdp> = OnceLock::new();
    IDP.get_or_init(|| DevIdp::generate(IDP_ENTITY).unwrap())
}

/// The SP key pair: (private key, certificate DER).
fn sp_key() -> &'static (PKey<Private>, Vec<u8>) {
    static KEY: OnceLock<(PKey<Private>, Vec<u8>)> = OnceLock::new();
    KEY.get_or_init(|| {
        let k = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let cert = self_signed_certificate(&k).unwrap().to_der().unwrap();
        (k, cert)
    })
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
    let mut v = ResponseValidator::new(sp(), &idp().idp_settings("https://idp.example.com/sso"));
    v.decryption_key = Some(SigningKey::from_pkey(sp_key().0.clone()).unwrap());
    v
}

fn spec(signing: Signing, encrypt: Option<ContentAlgorithm>) -> ResponseSpec {
    let mut s = ResponseSpec::for_sp(&sp(), NAME_ID, now());
    s.in_response_to = Some("_0123456789abcdef0123456789abcdef".into());
    s.attributes = vec![(
        "http://schemas.microsoft.com/identity/claims/displayname".into(),
        vec!["Zoë Ångström".into()],
    )];
    s.signing = signing;
    s.encrypt_for = encrypt.map(|algorithm| EncryptFor {
        certificate_der: sp_key().1.clone(),
        algorithm,
    });
    s
}

fn response(signing: Signing, encrypt: Option<ContentAlgorithm>) -> String {
    idp().sign_response(&spec(signing, encrypt)).unwrap()
}

fn reason(r: Result<ssogate::saml::ValidatedAssertion, SamlError>) -> &'static str {
    r.map(|_| "accepted").unwrap_or_else(|e| e.reason())
}

#[test]
fn signing_modes_follow_configuration() {
    let assertion = response(Signing::Assertion, None);
    let resp = response(Signing::Response, None);
    let both = response(Signing::Both, None);

    // Default (Entra's default): the assertion must be signed.
    let v = validator();
    assert_eq!(reason(v.validate(&assertion, now())), "accepted");
    assert_eq!(reason(v.validate(&both, now())), "accepted");
    assert_eq!(reason(v.validate(&resp, now())), "assertion_not_signed");

    // "Sign SAML response" only.
    let mut v = validator();
    v.want_assertions_signed = false;
    v.want_response_signed = true;
    assert_eq!(reason(v.validate(&resp, now())), "accepted");
    assert_eq!(reason(v.validate(&both, now())), "accepted");
    assert_eq!(reason(v.validate(&assertion, now())), "response_not_signed");

    // Both required.
    let mut v = validator();
    v.want_response_signed = true;
    assert_eq!(reason(v.validate(&both, now())), "accepted");
    assert_eq!(reason(v.validate(&assertion, now())), "response_not_signed");
    assert_eq!(reason(v.validate(&resp, now())), "assertion_not_signed");

    // Neither required: either signature is enough, none is not.
    let mut v = validator();
    v.want_assertions_signed = false;
    for r in [&assertion, &resp, &both] {
        assert_eq!(reason(v.validate(r, now())), "accepted");
    }
}

#[test]
fn encrypted_assertions_decrypt_with_every_content_algorithm() {
    for alg in [
        ContentAlgorithm::Aes128Cbc,
        ContentAlgorithm::Aes192Cbc,
        ContentAlgorithm::Aes256Cbc,
        ContentAlgorithm::Aes128Gcm,
        ContentAlgorithm::Aes256Gcm,
    ] {
        let r = response(Signing::Assertion, Some(alg));
        let xml = String::from_utf8(STANDARD.decode(&r).unwrap()).unwrap();
        assert!(xml.contains("EncryptedAssertion") && !xml.contains(NAME_ID));
        let v = validator().validate(&r, now()).unwrap();
        assert_eq!(v.identity.name_id, NAME_ID, "{alg:?}");
        assert_eq!(
            v.identity.attributes.values().next().unwrap(),
            &vec!["Zoë Ångström".to_string()]
        );
        assert_eq!(
            v.in_response_to.as_deref(),
            Some("_0123456789abcdef0123456789abcdef")
        );
    }
}

#[test]
fn encrypted_assertion_signing_modes() {
    // Signed inside and the Response signed around the ciphertext.
    let both = response(Signing::Both, Some(ContentAlgorithm::Aes256Cbc));
    let mut v = validator();
    v.want_response_signed = true;
    assert_eq!(reason(v.validate(&both, now())), "accepted");

    // Response signed only (the ciphertext is covered): needs want_assertions_signed=false.
    let resp = response(Signing::Response, Some(ContentAlgorithm::Aes256Gcm));
    assert_eq!(
        reason(validator().validate(&resp, now())),
        "assertion_not_signed"
    );
    let mut v = validator();
    v.want_assertions_signed = false;
    assert_eq!(reason(v.validate(&resp, now())), "accepted");
}

#[test]
fn encrypted_assertion_failures_fail_closed() {
    let r = response(Signing::Assertion, Some(ContentAlgorithm::Aes256Gcm));
    // No SP key configured.
    let mut v = validator();
    v.decryption_key = None;
    assert_eq!(reason(v.validate(&r, now())), "encrypted_assertion");
    // Another SP's key.
    let mut v = validator();
    v.decryption_key =
        Some(SigningKey::from_pkey(PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()).unwrap());
    assert_eq!(reason(v.validate(&r, now())), "decryption");

    // The inner signature still counts: an assertion changed before encryption (the
    // attacker knows our public certificate) is refused.
    let signed = idp().response_xml(&spec(Signing::Assertion, None)).unwrap();
    let forged_plain = signed.replace(NAME_ID, "mallory@contoso.example");
    let start = forged_plain.find("<Assertion ").unwrap();
    let end = forged_plain.find("</Assertion>").unwrap() + "</Assertion>".len();
    let recipient = openssl::x509::X509::from_der(&sp_key().1)
        .unwrap()
        .public_key()
        .unwrap();
    let enc = ssogate::saml::encryption::encrypt_assertion(
        &forged_plain[start..end],
        &recipient,
        ContentAlgorithm::Aes256Cbc,
    )
    .unwrap();
    let forged = format!("{}{}{}", &forged_plain[..start], enc, &forged_plain[end..]);
    assert_eq!(
        reason(validator().validate(&STANDARD.encode(&forged), now())),
        "signature"
    );

    // An unsigned assertion, encrypted, in an unsigned response.
    let mut v = validator();
    v.want_assertions_signed = false;
    let unsigned = idp()
        .response_template(&spec(Signing::Assertion, None))
        .unwrap();
    let sig_start = unsigned.find("<Signature ").unwrap();
    let sig_end = unsigned.find("</Signature>").unwrap() + "</Signature>".len();
    let unsigned = format!("{}{}", &unsigned[..sig_start], &unsigned[sig_end..]);
    let start = unsigned.find("<Assertion ").unwrap();
    let end = unsigned.find("</Assertion>").unwrap() + "</Assertion>".len();
    let enc = ssogate::saml::encryption::encrypt_assertion(
        &unsigned[start..end],
        &recipient,
        ContentAlgorithm::Aes256Cbc,
    )
    .unwrap();
    let x = format!("{}{}{}", &unsigned[..start], enc, &unsigned[end..]);
    assert_eq!(reason(v.validate(&STANDARD.encode(&x), now())), "signature");

    // A plain assertion beside an encrypted one.
    let xml = String::from_utf8(STANDARD.decode(&r).unwrap()).unwrap();
    let plain = idp().response_xml(&spec(Signing::Assertion, None)).unwrap();
    let extra = &plain[plain.find("<Assertion ").unwrap()
        ..plain.find("</Assertion>").unwrap() + "</Assertion>".len()];
    let two = xml.replace("</samlp:Response>", &format!("{extra}</samlp:Response>"));
    assert_eq!(
        reason(validator().validate(&STANDARD.encode(&two), now())),
        "assertion_count"
    );
}

#[test]
fn a_previous_sp_key_still_decrypts_during_a_rollover() {
    // Entra still encrypts for the old certificate (sp_key) while the SP already runs with
    // its new key pair: the old key, kept as a previous key, opens the assertion.
    let r = response(Signing::Assertion, Some(ContentAlgorithm::Aes256Cbc));
    let new_key =
        || SigningKey::from_pkey(PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()).unwrap();
    let old_key = || SigningKey::from_pkey(sp_key().0.clone()).unwrap();

    let mut v = validator();
    v.decryption_key = Some(new_key());
    assert_eq!(reason(v.validate(&r, now())), "decryption");
    v.previous_decryption_keys = vec![new_key(), old_key()];
    let ok = v.validate(&r, now()).unwrap();
    assert_eq!(ok.identity.name_id, NAME_ID);

    // Keys of nobody involved still refuse it, and a refused algorithm stays refused
    // whichever key is tried (it is not turned into a key failure).
    v.previous_decryption_keys = vec![new_key()];
    assert_eq!(reason(v.validate(&r, now())), "decryption");
    let tripledes =
        r#"<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#tripledes-cbc"/>"#;
    let xml = String::from_utf8(STANDARD.decode(&r).unwrap()).unwrap();
    let start = xml.find("<xenc:EncryptionMethod").unwrap();
    let end = start + xml[start..].find("/>").unwrap() + 2;
    let weak = format!("{}{}{}", &xml[..start], tripledes, &xml[end..]);
    v.previous_decryption_keys = vec![old_key()];
    assert_eq!(
        reason(v.validate(&STANDARD.encode(&weak), now())),
        "encryption_algorithm"
    );
}

fn xmlsec1() -> Command {
    // setup.sh installs xmlsec1; a missing tool is a failed test, not a skipped one.
    Command::new("xmlsec1")
}

fn write_sp_key(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join("sp-key.pem");
    let cert = dir.join("sp-cert.pem");
    std::fs::write(&key, sp_key().0.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let pem = openssl::x509::X509::from_der(&sp_key().1)
        .unwrap()
        .to_pem()
        .unwrap();
    std::fs::write(&cert, pem).unwrap();
    (key, cert)
}

#[test]
fn xmlsec1_decrypts_what_we_encrypt() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = write_sp_key(dir.path());
    for alg in [ContentAlgorithm::Aes256Cbc, ContentAlgorithm::Aes128Gcm] {
        let file = dir.path().join("encrypted.xml");
        let r = response(Signing::Assertion, Some(alg));
        std::fs::write(&file, STANDARD.decode(&r).unwrap()).unwrap();
        let out = xmlsec1()
            .args(["--decrypt", "--privkey-pem"])
            .arg(&key)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "xmlsec1 --decrypt ({alg:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plain = String::from_utf8_lossy(&out.stdout);
        assert!(plain.contains(NAME_ID), "{plain}");
    }
}

#[test]
fn we_decrypt_and_validate_what_xmlsec1_encrypts() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert) = write_sp_key(dir.path());
    for (alg, session_key) in [
        ("http://www.w3.org/2001/04/xmlenc#aes256-cbc", "aes-256"),
        ("http://www.w3.org/2001/04/xmlenc#aes128-cbc", "aes-128"),
        ("http://www.w3.org/2009/xmlenc11#aes256-gcm", "aes-256"),
    ] {
        // The signed response with its Assertion wrapped in an EncryptedAssertion, which
        // xmlsec1 then encrypts in place.
        let signed = idp().response_xml(&spec(Signing::Assertion, None)).unwrap();
        let start = signed.find("<Assertion ").unwrap();
        let end = signed.find("</Assertion>").unwrap() + "</Assertion>".len();
        let data = format!(
            "{}<saml:EncryptedAssertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">{}</saml:EncryptedAssertion>{}",
            &signed[..start],
            &signed[start..end],
            &signed[end..]
        );
        let data_file = dir.path().join("data.xml");
        std::fs::write(&data_file, data).unwrap();
        let template = format!(
            concat!(
                "<xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\">",
                "<xenc:EncryptionMethod Algorithm=\"{}\"/>",
                "<ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey>",
                "<xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/>",
                "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>",
                "<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>"
            ),
            alg
        );
        let template_file = dir.path().join("template.xml");
        std::fs::write(&template_file, template).unwrap();
        let out = xmlsec1()
            .args(["--encrypt", "--pubkey-cert-pem"])
            .arg(&cert)
            .args(["--session-key", session_key, "--xml-data"])
            .arg(&data_file)
            .args(["--node-xpath", "//*[local-name()='Assertion']"])
            .arg(&template_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "xmlsec1 --encrypt ({alg}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let encrypted = String::from_utf8(out.stdout).unwrap();
        assert!(encrypted.contains("EncryptedData") && !encrypted.contains(NAME_ID));
        let v = validator()
            .validate(&STANDARD.encode(&encrypted), now())
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(v.identity.name_id, NAME_ID);
    }
}
