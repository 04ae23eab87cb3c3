//! A development / test Identity Provider. **NOT FOR PRODUCTION.**
//!
//! It generates an RSA-2048 key and a self-signed certificate at construction, and signs
//! Entra-shaped SAML Responses (same namespaces and layout as Entra ID: an unsigned Response
//! wrapping one Assertion signed with RSA-SHA256 and exclusive c14n, the certificate in
//! KeyInfo). It authenticates nobody: whoever can reach it gets any identity they ask for.
//! It exists for `ssogate demo` (loopback only) and for tests.

use super::encryption::ContentAlgorithm;
use super::metadata::{IdpSettings, SpSettings};
use super::redirect::{redirect_url, MessageParam, SigningKey};
use super::xml::{self, BINDING_HTTP_REDIRECT};
use super::SamlError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509};
use samael::crypto::{Crypto, CryptoProvider};
use std::fmt::Write as _;
use std::time::Duration;

/// A development IdP with a freshly generated key. NOT FOR PRODUCTION.
pub struct DevIdp {
    entity_id: String,
    key_der: Vec<u8>,
    cert: X509,
    cert_der: Vec<u8>,
}

// The private key stays out of Debug output.
impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp")
            .field("entity_id", &self.entity_id)
            .finish_non_exhaustive()
    }
}

/// What the dev IdP asserts.
#[derive(Clone, Debug)]
pub struct ResponseSpec {
    /// Issuer of Response and Assertion; default: the IdP's entity ID.
    pub issuer: Option<String>,
    pub name_id: String,
    pub name_id_format: String,
    /// AudienceRestriction/Audience (the SP entity ID).
    pub audience: String,
    /// The ACS URL: SubjectConfirmationData Recipient and Response Destination.
    pub recipient: String,
    pub in_response_to: Option<String>,
    /// Claim URI -> values (several values become several AttributeValue elements).
    pub attributes: Vec<(String, Vec<String>)>,
    /// IssueInstant and AuthnInstant.
    pub now: DateTime<Utc>,
    /// NotOnOrAfter = now + lifetime; NotBefore = now - 5 s.
    pub lifetime: Duration,
    /// Default: `_` + a random UUID.
    pub assertion_id: Option<String>,
    /// Default: the assertion ID (as Entra does).
    pub session_index: Option<String>,
    /// AuthnStatement `SessionNotOnOrAfter`; default: none (as Entra).
    pub session_not_on_or_after: Option<DateTime<Utc>>,
    /// Which elements carry a signature (default: the Assertion, as Entra).
    pub signing: Signing,
    /// Encrypt the (signed) Assertion for this SP certificate (Entra "Token encryption").
    pub encrypt_for: Option<EncryptFor>,
}

/// Entra's "Signing Option": sign the assertion, the response, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Signing {
    #[default]
    Assertion,
    Response,
    Both,
}

impl Signing {
    fn assertion(self) -> bool {
        matches!(self, Signing::Assertion | Signing::Both)
    }
    fn response(self) -> bool {
        matches!(self, Signing::Response | Signing::Both)
    }
}

/// Encrypt assertions for this SP certificate (DER) with this content algorithm.
#[derive(Clone, Debug)]
pub struct EncryptFor {
    pub certificate_der: Vec<u8>,
    pub algorithm: ContentAlgorithm,
}

impl ResponseSpec {
    /// A response for `sp` about `name_id`, valid 5 minutes from `now`, no attributes.
    pub fn for_sp(sp: &SpSettings, name_id: &str, now: DateTime<Utc>) -> Self {
        Self {
            issuer: None,
            name_id: name_id.to_string(),
            name_id_format: sp.name_id_format.clone(),
            audience: sp.entity_id.clone(),
            recipient: sp.acs_url.clone(),
            in_response_to: None,
            attributes: Vec::new(),
            now,
            lifetime: Duration::from_secs(300),
            assertion_id: None,
            session_index: None,
            session_not_on_or_after: None,
            signing: Signing::Assertion,
            encrypt_for: None,
        }
    }
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl DevIdp {
    /// A new IdP with an RSA-2048 key and a self-signed certificate (10 years).
    pub fn generate(entity_id: &str) -> Result<Self, SamlError> {
        let rsa = Rsa::generate(2048)?;
        let key_der = rsa.private_key_to_der()?;
        let pkey = PKey::from_rsa(rsa)?;
        let cert = self_signed(&pkey)?;
        let cert_der = cert.to_der()?;
        Ok(Self {
            entity_id: entity_id.to_string(),
            key_der,
            cert,
            cert_der,
        })
    }

    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    pub fn certificate_pem(&self) -> String {
        self.cert
            .to_pem()
            .ok()
            .and_then(|p| String::from_utf8(p).ok())
            .unwrap_or_default()
    }

    pub fn certificate_der(&self) -> Vec<u8> {
        self.cert_der.clone()
    }

    /// IdpSettings for a gateway that trusts this IdP at `sso_url`.
    pub fn idp_settings(&self, sso_url: &str) -> IdpSettings {
        IdpSettings {
            entity_id: self.entity_id.clone(),
            sso_url: sso_url.to_string(),
            slo_url: None,
            signing_certs: vec![self.certificate_der()],
        }
    }

    /// Federation metadata for this IdP (one signing certificate, HTTP-Redirect SSO).
    pub fn metadata_xml(&self, sso_url: &str) -> String {
        format!(
            concat!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>",
                "<EntityDescriptor entityID=\"{entity}\" xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\">",
                "<IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">",
                "<KeyDescriptor use=\"signing\"><KeyInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\">",
                "<X509Data><X509Certificate>{cert}</X509Certificate></X509Data></KeyInfo></KeyDescriptor>",
                "<SingleSignOnService Binding=\"{binding}\" Location=\"{sso}\"/>",
                "</IDPSSODescriptor></EntityDescriptor>"
            ),
            entity = xml::escape(&self.entity_id),
            cert = STANDARD.encode(&self.cert_der),
            binding = BINDING_HTTP_REDIRECT,
            sso = xml::escape(sso_url),
        )
    }

    /// The signed Response, base64-encoded for the `SAMLResponse` form field.
    pub fn sign_response(&self, spec: &ResponseSpec) -> Result<String, SamlError> {
        Ok(STANDARD.encode(self.response_xml(spec)?))
    }

    /// The Response XML as `spec` asks: signed (assertion, response or both) and
    /// optionally with the assertion encrypted.
    pub fn response_xml(&self, spec: &ResponseSpec) -> Result<String, SamlError> {
        let template = self.response_template(spec)?;
        let mut doc = if spec.signing.assertion() {
            strip_xml_declaration(&self.sign_template(&template)?)
        } else {
            let start = template
                .find("<Signature ")
                .ok_or(SamlError::Malformed("template"))?;
            let end = template
                .find("</Signature>")
                .ok_or(SamlError::Malformed("template"))?
                + "</Signature>".len();
            format!("{}{}", &template[..start], &template[end..])
        };
        if let Some(enc) = &spec.encrypt_for {
            let start = doc
                .find("<Assertion ")
                .ok_or(SamlError::Malformed("template"))?;
            let end = doc
                .find("</Assertion>")
                .ok_or(SamlError::Malformed("template"))?
                + "</Assertion>".len();
            let recipient = X509::from_der(&enc.certificate_der)
                .and_then(|c| c.public_key())
                .map_err(|_| SamlError::Certificate)?;
            let encrypted =
                super::encryption::encrypt_assertion(&doc[start..end], &recipient, enc.algorithm)?;
            doc = format!("{}{}{}", &doc[..start], encrypted, &doc[end..]);
        }
        if spec.signing.response() {
            let rid = doc
                .split("ID=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .ok_or(SamlError::Malformed("template"))?
                .to_string();
            let issuer_end = doc
                .find("</Issuer>")
                .ok_or(SamlError::Malformed("template"))?
                + "</Issuer>".len();
            doc = format!(
                "{}{}{}",
                &doc[..issuer_end],
                self.signature_template(&rid),
                &doc[issuer_end..]
            );
            doc = strip_xml_declaration(&self.sign_template(&doc)?);
        }
        Ok(doc)
    }

    /// An empty enveloped `ds:Signature` (RSA-SHA256, exclusive c14n) over the element
    /// with this ID, with our certificate in KeyInfo.
    fn signature_template(&self, reference_id: &str) -> String {
        format!(
            concat!(
                "<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo>",
                "<CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
                "<SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>",
                "<Reference URI=\"#{id}\"><Transforms>",
                "<Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
                "<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></Transforms>",
                "<DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><DigestValue></DigestValue>",
                "</Reference></SignedInfo><SignatureValue></SignatureValue>",
                "<KeyInfo><X509Data><X509Certificate>{cert}</X509Certificate></X509Data></KeyInfo></Signature>"
            ),
            id = xml::escape(reference_id),
            cert = STANDARD.encode(&self.cert_der),
        )
    }

    /// The IdP's key, for Redirect-binding signatures.
    fn signing_key(&self) -> Result<SigningKey, SamlError> {
        SigningKey::from_pkey(PKey::private_key_from_der(&self.key_der)?)
    }

    /// A signed IdP-initiated LogoutRequest to the SP's SLO URL: `(request ID, URL)`.
    pub fn logout_request_url(
        &self,
        sp_slo_url: &str,
        name_id: &str,
        session_index: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(String, String), SamlError> {
        let id = super::new_request_id();
        let xml = super::logout::logout_request_xml(&super::logout::LogoutRequestSpec {
            id: &id,
            issuer: &self.entity_id,
            destination: sp_slo_url,
            name_id,
            name_id_format: None,
            session_index,
            now,
        });
        let key = self.signing_key()?;
        let url = redirect_url(sp_slo_url, MessageParam::Request, &xml, None, Some(&key))?;
        Ok((id, url))
    }

    /// A signed LogoutResponse (Success) to the SP's SLO URL.
    pub fn logout_response_url(
        &self,
        sp_slo_url: &str,
        in_response_to: &str,
        now: DateTime<Utc>,
    ) -> Result<String, SamlError> {
        let id = super::new_request_id();
        let xml = super::logout::logout_response_xml(&super::logout::LogoutResponseSpec {
            id: &id,
            issuer: &self.entity_id,
            destination: sp_slo_url,
            in_response_to,
            status: super::logout::STATUS_SUCCESS,
            now,
        });
        let key = self.signing_key()?;
        redirect_url(sp_slo_url, MessageParam::Response, &xml, None, Some(&key))
    }

    /// The unsigned Response XML with an empty `ds:Signature` template in the Assertion.
    /// Tests may alter it before [`DevIdp::sign_template`].
    pub fn response_template(&self, spec: &ResponseSpec) -> Result<String, SamlError> {
        let lifetime = chrono::Duration::from_std(spec.lifetime)
            .map_err(|_| SamlError::Crypto("lifetime out of range".into()))?;
        let issuer = xml::escape(spec.issuer.as_deref().unwrap_or(&self.entity_id));
        let aid = spec
            .assertion_id
            .clone()
            .unwrap_or_else(|| format!("_{}", uuid::Uuid::new_v4()));
        let rid = format!("_{}", uuid::Uuid::new_v4());
        let now = instant(spec.now);
        let not_before = instant(spec.now - chrono::Duration::seconds(5));
        let not_on_or_after = instant(spec.now + lifetime);
        let recipient = xml::escape(&spec.recipient);
        let irt = spec
            .in_response_to
            .as_deref()
            .map(|i| format!(" InResponseTo=\"{}\"", xml::escape(i)))
            .unwrap_or_default();
        let session_index = xml::escape(spec.session_index.as_deref().unwrap_or(&aid));
        let signature = self.signature_template(&aid);
        let aid = xml::escape(&aid);

        let mut x = String::with_capacity(4096);
        // Infallible: writing to a String.
        let _ = write!(
            x,
            concat!(
                "<samlp:Response ID=\"{rid}\" Version=\"2.0\" IssueInstant=\"{now}\" Destination=\"{recipient}\"{irt} ",
                "xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">",
                "<Issuer xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\">{issuer}</Issuer>",
                "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>",
                "<Assertion ID=\"{aid}\" IssueInstant=\"{now}\" Version=\"2.0\" xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\">",
                "<Issuer>{issuer}</Issuer>{signature}",
                "<Subject><NameID Format=\"{format}\">{name_id}</NameID>",
                "<SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">",
                "<SubjectConfirmationData{irt} NotOnOrAfter=\"{noa}\" Recipient=\"{recipient}\"/>",
                "</SubjectConfirmation></Subject>",
                "<Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{noa}\"><AudienceRestriction>",
                "<Audience>{audience}</Audience></AudienceRestriction></Conditions>"
            ),
            rid = rid,
            now = now,
            recipient = recipient,
            irt = irt,
            issuer = issuer,
            aid = aid,
            signature = signature,
            format = xml::escape(&spec.name_id_format),
            name_id = xml::escape(&spec.name_id),
            noa = not_on_or_after,
            nb = not_before,
            audience = xml::escape(&spec.audience),
        );
        if !spec.attributes.is_empty() {
            x.push_str("<AttributeStatement>");
            for (name, values) in &spec.attributes {
                let _ = write!(x, "<Attribute Name=\"{}\">", xml::escape(name));
                for v in values {
                    let _ = write!(x, "<AttributeValue>{}</AttributeValue>", xml::escape(v));
                }
                x.push_str("</Attribute>");
            }
            x.push_str("</AttributeStatement>");
        }
        let _ = write!(
            x,
            concat!(
                "<AuthnStatement AuthnInstant=\"{now}\" SessionIndex=\"{si}\"{snoa}><AuthnContext>",
                "<AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</AuthnContextClassRef>",
                "</AuthnContext></AuthnStatement></Assertion></samlp:Response>"
            ),
            now = now,
            si = session_index,
            snoa = spec
                .session_not_on_or_after
                .map(|t| format!(" SessionNotOnOrAfter=\"{}\"", instant(t)))
                .unwrap_or_default(),
        );
        Ok(x)
    }

    /// Sign the first `ds:Signature` template of `xml` (its Reference names the element by
    /// `ID`). Returns the signed XML (not base64).
    pub fn sign_template(&self, xml: &str) -> Result<String, SamlError> {
        Crypto::sign_xml(xml, &self.key_der).map_err(|e| SamlError::Crypto(e.to_string()))
    }
}

fn strip_xml_declaration(x: &str) -> String {
    match x.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or(x, |(_, body)| body.trim_start())
            .to_string(),
        None => x.to_string(),
    }
}

/// A self-signed certificate for `pkey` (10 years), e.g. an SP key pair for tests.
pub fn self_signed_certificate(pkey: &PKey<Private>) -> Result<X509, SamlError> {
    self_signed(pkey)
}

fn self_signed(pkey: &PKey<Private>) -> Result<X509, SamlError> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "ssogate development IdP - NOT FOR PRODUCTION")?;
    let name = name.build();
    let serial_bytes: [u8; 16] = rand::random();
    let serial = BigNum::from_slice(&serial_bytes)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(Asn1Integer::from_bn(&serial)?.as_ref())?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(pkey)?;
    b.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
    b.set_not_after(Asn1Time::days_from_now(3650)?.as_ref())?;
    b.sign(pkey, MessageDigest::sha256())?;
    Ok(b.build())
}
