//! The ACS validation chain past the signature: the fuzzer writes a whole Response with an
//! empty `ds:Signature` template (as `DevIdp::response_template` makes), the harness signs
//! it with a development IdP's key (libxmlsec1 fills the template whose Reference it
//! names) and, when asked, encrypts the Assertion for the SP; the validator trusts that
//! IdP and holds that SP key.
//!
//! Input: one flag byte, then the XML. Flags: bit 0 encrypt the Assertion, bit 1 require a
//! Response signature, bit 2 accept SHA-1, bit 3 do not require an Assertion signature.
//!
//! Asserts: no panic; an accepted response has a non-empty NameID, an unexpired window,
//! and its NameID and assertion ID are those of the one Assertion of the document that
//! was signed (claims come from signed bytes only).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ssogate::saml::encryption::{encrypt_assertion, ContentAlgorithm};
use ssogate::saml::ResponseValidator;
use ssogate_fuzz::{dev_idp, dev_now, dev_sp, dev_sp_key};

const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

fn validator(flags: u8) -> ResponseValidator {
    let mut v = ResponseValidator::new(
        dev_sp(),
        &dev_idp().idp_settings("https://idp.example.com/sso"),
    );
    v.want_response_signed = flags & 2 != 0;
    v.allow_sha1 = flags & 4 != 0;
    v.want_assertions_signed = flags & 8 == 0;
    v.decryption_key = Some(dev_sp_key().clone());
    v
}

fn text_of(n: roxmltree::Node<'_, '_>) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect()
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, local: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| {
        c.is_element()
            && c.tag_name().name() == local
            && c.tag_name().namespace() == Some(NS_ASSERTION)
    })
}

/// `(NameID text, ID)` of the one Assertion in the signed document.
fn signed_facts(signed: &str) -> Option<(String, String)> {
    let doc = roxmltree::Document::parse(signed).ok()?;
    let mut assertions = doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "Assertion");
    let (Some(a), None) = (assertions.next(), assertions.next()) else {
        return None;
    };
    let name_id = child(child(a, "Subject")?, "NameID")?;
    Some((text_of(name_id), a.attribute("ID")?.to_string()))
}

/// The signed document with its (one) `<Assertion …>…</Assertion>` encrypted for the SP.
fn encrypted(signed: &str) -> Option<String> {
    let start = signed.find("<Assertion ")?;
    let end = signed.rfind("</Assertion>")? + "</Assertion>".len();
    if end <= start {
        return None;
    }
    let public =
        openssl::pkey::PKey::public_key_from_der(&dev_sp_key().pkey().public_key_to_der().ok()?)
            .ok()?;
    let enc = encrypt_assertion(&signed[start..end], &public, ContentAlgorithm::Aes256Gcm).ok()?;
    Some(format!("{}{}{}", &signed[..start], enc, &signed[end..]))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(template) = std::str::from_utf8(rest) else {
        return;
    };
    // The harness' own signing (samael/libxmlsec1) is not under test: guard it lightly.
    if template.len() > 64 * 1024 || !template.contains("<Signature") {
        return;
    }
    let Ok(signed) = dev_idp().sign_template(template) else {
        return;
    };
    let expected = signed_facts(&signed);
    let doc = if flags & 1 != 0 {
        match encrypted(&signed) {
            Some(d) => d,
            None => return,
        }
    } else {
        signed
    };
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &doc);
    let now = dev_now();
    let v = validator(flags);
    if let Ok(ok) = v.validate(&b64, now) {
        assert!(
            !ok.identity.name_id.trim().is_empty(),
            "empty NameID accepted"
        );
        let late = (now - chrono::Duration::from_std(v.clock_skew).unwrap()).timestamp();
        assert!(ok.not_on_or_after > late, "expired assertion accepted");
        if let Some(s) = ok.session_not_on_or_after {
            assert!(s > late, "expired session accepted");
        }
        let (name_id, id) = expected.expect("accepted, but the document has no single Assertion");
        assert_eq!(
            ok.identity.name_id, name_id,
            "NameID not from the signed Assertion"
        );
        assert_eq!(
            ok.assertion_id, id,
            "assertion ID not the signed Assertion's"
        );
    }
});
