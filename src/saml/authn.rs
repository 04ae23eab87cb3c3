//! AuthnRequest over the HTTP-Redirect binding (SAML bindings §3.4): raw DEFLATE, base64,
//! URL-encode (see `redirect`); signed with the SP key when the app has one.
//!
//! We never panic on hostile input: `decode_redirect_request` bounds the inflated size and
//! maps every failure to a `SamlError`.

use super::metadata::{IdpSettings, SpSettings};
use super::redirect::{inflate_param, redirect_url, MessageParam, SigningKey};
use super::xml::{self, BINDING_HTTP_POST};
use super::SamlError;
use chrono::{DateTime, SecondsFormat, Utc};

/// Where to send the browser, and the request ID to remember (InResponseTo check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnRedirect {
    pub request_id: String,
    pub url: String,
}

/// `_` + 32 hex characters of 128 random bits: an xs:ID (NCName, never starts with a digit).
pub fn new_request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("_{}", hex::encode(bytes))
}

/// The AuthnRequest XML (unsigned).
fn authn_request_xml(sp: &SpSettings, idp: &IdpSettings, id: &str, now: DateTime<Utc>) -> String {
    format!(
        concat!(
            "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ",
            "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ",
            "ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{dest}\" ",
            "AssertionConsumerServiceURL=\"{acs}\" ProtocolBinding=\"{binding}\">",
            "<saml:Issuer>{issuer}</saml:Issuer>",
            "<samlp:NameIDPolicy Format=\"{format}\" AllowCreate=\"true\"/>",
            "</samlp:AuthnRequest>"
        ),
        id = xml::escape(id),
        instant = now.to_rfc3339_opts(SecondsFormat::Millis, true),
        dest = xml::escape(&idp.sso_url),
        acs = xml::escape(&sp.acs_url),
        binding = BINDING_HTTP_POST,
        issuer = xml::escape(&sp.entity_id),
        format = xml::escape(&sp.name_id_format),
    )
}

/// HTTP-Redirect binding: the IdP's SSO URL with `SAMLRequest` (and `RelayState` when not
/// empty, and `SigAlg` + `Signature` when `signer` is given) appended; `&` when the SSO URL
/// already has a query string.
pub fn authn_request_redirect(
    sp: &SpSettings,
    idp: &IdpSettings,
    relay_state: &str,
    now: DateTime<Utc>,
    signer: Option<&SigningKey>,
) -> Result<AuthnRedirect, SamlError> {
    let request_id = new_request_id();
    let xml = authn_request_xml(sp, idp, &request_id, now);
    let url = redirect_url(
        &idp.sso_url,
        MessageParam::Request,
        &xml,
        Some(relay_state),
        signer,
    )
    .map_err(|e| match e {
        SamlError::Url(_) => SamlError::Url("IdP SSO URL"),
        e => e,
    })?;
    Ok(AuthnRedirect { request_id, url })
}

/// The XML of a redirect-binding `SAMLRequest` value (still percent-encoded or already
/// decoded: both work, since base64 has no `%`). Inflated size is capped at 64 KiB.
pub fn decode_redirect_request(saml_request_param: &str) -> Result<String, SamlError> {
    inflate_param(saml_request_param)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp() -> SpSettings {
        SpSettings {
            entity_id: "https://app.example.com/saml".into(),
            acs_url: "https://app.example.com/saml/acs?x=1&y=\"2\"".into(),
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
        }
    }

    fn idp(sso: &str) -> IdpSettings {
        IdpSettings {
            entity_id: "https://idp.example.com/".into(),
            sso_url: sso.into(),
            slo_url: None,
            signing_certs: vec![],
        }
    }

    fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
        let q = url.split_once('?')?.1;
        q.split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    }

    #[test]
    fn redirect_round_trips() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = authn_request_redirect(
            &sp(),
            &idp("https://idp.example.com/sso"),
            "/a b?c=d",
            now,
            None,
        )
        .unwrap();
        assert!(r
            .url
            .starts_with("https://idp.example.com/sso?SAMLRequest="));
        assert_eq!(query_param(&r.url, "RelayState"), Some("%2Fa%20b%3Fc%3Dd"));
        let xml = decode_redirect_request(query_param(&r.url, "SAMLRequest").unwrap()).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "AuthnRequest");
        assert_eq!(root.attribute("ID"), Some(r.request_id.as_str()));
        assert_eq!(root.attribute("Version"), Some("2.0"));
        assert_eq!(
            root.attribute("IssueInstant"),
            Some("2024-05-01T12:00:00.000Z")
        );
        assert_eq!(
            root.attribute("Destination"),
            Some("https://idp.example.com/sso")
        );
        assert_eq!(
            root.attribute("AssertionConsumerServiceURL"),
            Some(sp().acs_url.as_str())
        );
        assert_eq!(root.attribute("ProtocolBinding"), Some(BINDING_HTTP_POST));
        let issuer = root.first_element_child().unwrap();
        assert_eq!(issuer.text(), Some("https://app.example.com/saml"));
        let policy = issuer.next_sibling_element().unwrap();
        assert_eq!(policy.attribute("AllowCreate"), Some("true"));
        assert_eq!(
            policy.attribute("Format"),
            Some(sp().name_id_format.as_str())
        );
    }

    #[test]
    fn existing_query_string_is_extended() {
        let now = Utc::now();
        let r = authn_request_redirect(
            &sp(),
            &idp("https://idp.example.com/sso?tenant=1"),
            "",
            now,
            None,
        )
        .unwrap();
        assert!(r
            .url
            .starts_with("https://idp.example.com/sso?tenant=1&SAMLRequest="));
        assert!(!r.url.contains("RelayState"));
    }

    #[test]
    fn request_ids_are_ncnames_and_unique() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 33);
        assert!(a.starts_with('_'));
        assert!(a[1..].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn bad_sso_url_and_bad_request_are_errors() {
        assert!(authn_request_redirect(&sp(), &idp("not a url"), "", Utc::now(), None).is_err());
        assert!(
            authn_request_redirect(&sp(), &idp("javascript:alert(1)"), "", Utc::now(), None)
                .is_err()
        );
        assert_eq!(
            decode_redirect_request("!!!"),
            Err(SamlError::BadRequestEncoding)
        );
        assert_eq!(
            decode_redirect_request("QUJD"),
            Err(SamlError::BadRequestEncoding)
        );
    }

    #[test]
    fn inflate_bomb_is_capped() {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        use flate2::{write::DeflateEncoder, Compression};
        use std::io::Write as _;
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&vec![b'a'; 10 * 1024 * 1024]).unwrap();
        let b64 = STANDARD.encode(enc.finish().unwrap());
        assert_eq!(decode_redirect_request(&b64), Err(SamlError::TooLarge));
    }
}
