//! IdP settings (from Entra Federation Metadata XML or from a downloaded certificate), SP
//! settings and SP metadata.
//!
//! We never panic on hostile input: metadata may come from a URL, so it is screened
//! (no DTD, bounded depth) like a SAMLResponse before samael's parser sees it.

use super::xml::{self, BINDING_HTTP_POST, BINDING_HTTP_REDIRECT};
use super::SamlError;
use base64::Engine as _;
use samael::metadata::EntityDescriptor;

/// What the gateway needs to know about the IdP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdpSettings {
    pub entity_id: String,
    /// HTTP-Redirect SingleSignOnService location.
    pub sso_url: String,
    /// HTTP-Redirect SingleLogoutService location.
    pub slo_url: Option<String>,
    /// DER X.509 signing certificates; all are trusted (key rollover).
    pub signing_certs: Vec<Vec<u8>>,
}

impl IdpSettings {
    /// Entra Federation Metadata XML (UTF-8 BOM allowed, default namespace, WS-Fed
    /// RoleDescriptors before the IDPSSODescriptor, several signing KeyDescriptors: all are
    /// kept). Prefers the HTTP-Redirect SingleSignOnService; SLO from the HTTP-Redirect
    /// SingleLogoutService. Refuses metadata without signing certificates.
    ///
    /// The metadata's own signature is not checked here (trust comes from how the admin
    /// obtained the document: a file, or HTTPS from login.microsoftonline.com).
    pub fn from_metadata(bytes: &[u8]) -> Result<Self, SamlError> {
        let text = std::str::from_utf8(bytes).map_err(|_| SamlError::BadEncoding)?;
        let text = xml::strip_bom(text).trim_start();
        xml::screen(text)?;
        // Well-formedness with DTDs refused, before the serde parser.
        xml::parse(text)?;
        let ed: EntityDescriptor = text
            .parse()
            .map_err(|_| SamlError::Metadata("not a SAML EntityDescriptor".into()))?;
        let entity_id = ed
            .entity_id
            .clone()
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| SamlError::Metadata("entityID missing".into()))?;
        let idp = ed
            .idp_sso_descriptors
            .as_deref()
            .and_then(|d| d.first())
            .ok_or_else(|| SamlError::Metadata("no IDPSSODescriptor".into()))?;

        let mut signing_certs: Vec<Vec<u8>> = Vec::new();
        for kd in &idp.key_descriptors {
            // `use` absent means the key serves both signing and encryption.
            if kd.key_use.as_deref().is_some_and(|u| u != "signing") {
                continue;
            }
            for c in kd.key_info.x509_data.iter().flat_map(|d| &d.certificates) {
                let der = load_certificate(c.as_bytes())?;
                if !signing_certs.contains(&der) {
                    signing_certs.push(der);
                }
            }
        }
        if signing_certs.is_empty() {
            return Err(SamlError::NoSigningCerts);
        }

        let sso_url = idp
            .single_sign_on_services
            .iter()
            .find(|e| e.binding == BINDING_HTTP_REDIRECT)
            .map(|e| e.location.clone())
            .ok_or_else(|| SamlError::Metadata("no HTTP-Redirect SingleSignOnService".into()))?;
        let slo_url = idp
            .single_logout_services
            .iter()
            .find(|e| e.binding == BINDING_HTTP_REDIRECT)
            .map(|e| e.location.clone());

        Ok(Self {
            entity_id,
            sso_url,
            slo_url,
            signing_certs,
        })
    }
}

/// Largest metadata document accepted (Entra's tenant metadata is about 20 KiB).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;

const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";

impl IdpSettings {
    /// Metadata whose own signature must verify against one of `signer_certs` (DER):
    /// the EntityDescriptor carries an enveloped ds:Signature (SHA-256 or stronger) that
    /// covers it; the settings are read from the verified bytes only.
    pub fn from_signed_metadata(bytes: &[u8], signer_certs: &[Vec<u8>]) -> Result<Self, SamlError> {
        use samael::crypto::{
            AllowedSignatureAlgorithm as A, CertificateDer, Crypto, CryptoProvider, ReduceMode,
        };
        if bytes.len() > MAX_METADATA_BYTES {
            return Err(SamlError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| SamlError::BadEncoding)?;
        let text = xml::strip_bom(text).trim_start();
        xml::screen(text)?;
        let doc = xml::parse(text)?;
        let root = doc.root_element();
        if !xml::is(root, NS_METADATA, "EntityDescriptor") {
            return Err(SamlError::Metadata(
                "root is not an EntityDescriptor".into(),
            ));
        }
        let signatures = doc
            .descendants()
            .filter(|n| xml::is(*n, xml::NS_DSIG, "Signature"))
            .count();
        if signatures == 0 {
            return Err(SamlError::Metadata(
                "the metadata is not signed, but a metadata signing certificate is pinned".into(),
            ));
        }
        let certs: Vec<CertificateDer> = signer_certs
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect();
        let allowed = [
            A::RsaSha256,
            A::RsaSha384,
            A::RsaSha512,
            A::EcdsaSha256,
            A::EcdsaSha384,
            A::EcdsaSha512,
        ];
        let verified = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
            text,
            &certs,
            ReduceMode::PreDigest,
            Some(&allowed),
        )
        .map_err(|_| SamlError::Signature)?;
        let vdoc = xml::parse(&verified)?;
        let vroot = vdoc.root_element();
        let same = xml::is(vroot, NS_METADATA, "EntityDescriptor")
            && vroot.attribute("entityID") == root.attribute("entityID")
            && vroot.attribute("ID") == root.attribute("ID");
        if !same {
            return Err(SamlError::SignatureReference);
        }
        Self::from_metadata(verified.as_bytes())
    }
}

/// A certificate as an admin downloads it from Entra: PEM (`-----BEGIN CERTIFICATE-----`),
/// a bare Base64 body (Entra "Certificate (Base64)"), or DER. Returns DER after checking it
/// parses as X.509. Validity dates are not checked (SAML signing keys are trusted as keys;
/// Entra's metadata routinely lists expired certificates).
pub fn load_certificate(bytes: &[u8]) -> Result<Vec<u8>, SamlError> {
    let unmarked = bytes
        .strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(bytes);
    let trimmed = unmarked.trim_ascii();
    let der = if let [0x30, len @ 0x81..=0x84, rest @ ..] = unmarked {
        // DER (Entra "Certificate (Raw)"): a SEQUENCE with a long-form length (every
        // certificate is over 127 bytes): exactly the bytes that length names, and only
        // whitespace after them (a newline a tool added). Trimming instead would cut a last
        // signature byte that happens to read as whitespace (about 1 certificate in 50).
        let n = usize::from(len & 0x7f);
        let body = rest.get(..n).map_or(0, |b| {
            b.iter().fold(0usize, |acc, &x| acc << 8 | usize::from(x))
        });
        match (2 + n)
            .checked_add(body)
            .and_then(|end| unmarked.split_at_checked(end))
        {
            Some((der, tail)) if tail.iter().all(u8::is_ascii_whitespace) => der.to_vec(),
            _ => return Err(SamlError::Certificate),
        }
    } else if trimmed.windows(10).any(|w| w == b"-----BEGIN") {
        openssl::x509::X509::from_pem(trimmed)
            .and_then(|c| c.to_der())
            .map_err(|_| SamlError::Certificate)?
    } else if !trimmed.is_empty()
        && trimmed
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b) || b.is_ascii_whitespace())
    {
        let compact: Vec<u8> = trimmed
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| SamlError::Certificate)?
    } else {
        trimmed.to_vec()
    };
    let cert = openssl::x509::X509::from_der(&der).map_err(|_| SamlError::Certificate)?;
    // Re-encode: refuses trailing garbage after the certificate.
    let canonical = cert.to_der().map_err(|_| SamlError::Certificate)?;
    if canonical != der {
        return Err(SamlError::Certificate);
    }
    Ok(der)
}

/// This app as a Service Provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpSettings {
    /// Entra "Identifier (Entity ID)".
    pub entity_id: String,
    /// Entra "Reply URL (Assertion Consumer Service URL)".
    pub acs_url: String,
    /// Full URN, e.g. `urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress`.
    pub name_id_format: String,
}

const NAME_ID_FORMATS: &[(&str, &str)] = &[
    (
        "emailaddress",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    ),
    (
        "persistent",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    ),
    (
        "transient",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    ),
    (
        "unspecified",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    ),
];

/// Known NameID format URNs accepted as-is besides the four short names.
const NAME_ID_FORMAT_URNS: &[&str] = &[
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:unspecified",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:entity",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:encrypted",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:WindowsDomainQualifiedName",
];

/// `emailAddress` | `persistent` | `transient` | `unspecified` (case-insensitive) to the full
/// URN; a known full URN passes through; anything else is `None`.
pub fn name_id_format_urn(short: &str) -> Option<&'static str> {
    let s = short.trim();
    NAME_ID_FORMATS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(s))
        .map(|(_, v)| *v)
        .or_else(|| NAME_ID_FORMAT_URNS.iter().find(|u| **u == s).copied())
}

/// What the SP metadata publishes beyond [`SpSettings`].
#[derive(Clone, Debug, Default)]
pub struct SpPublish {
    /// Our SLO URL (Redirect binding).
    pub slo_url: Option<String>,
    /// DER certificate of the SP key: published for signing and for encryption.
    pub certificate: Option<Vec<u8>>,
    pub authn_requests_signed: bool,
    pub want_assertions_signed: bool,
}

/// SP metadata for the IdP admin: EntityDescriptor/SPSSODescriptor with the signing flags,
/// the SP certificate (use="signing" and use="encryption") when there is one, the
/// NameIDFormat, the SingleLogoutService (HTTP-Redirect) when configured and one HTTP-POST
/// AssertionConsumerService (index 0).
pub fn sp_metadata_xml(sp: &SpSettings, publish: &SpPublish) -> String {
    let mut keys = String::new();
    if let Some(cert) = &publish.certificate {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert);
        for usage in ["signing", "encryption"] {
            keys.push_str(&format!(
                concat!(
                    "    <md:KeyDescriptor use=\"{usage}\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">",
                    "<ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\n"
                ),
                usage = usage,
                cert = b64,
            ));
        }
    }
    let slo = publish
        .slo_url
        .as_deref()
        .map(|u| {
            format!(
                "    <md:SingleLogoutService Binding=\"{}\" Location=\"{}\"/>\n",
                BINDING_HTTP_REDIRECT,
                xml::escape(u)
            )
        })
        .unwrap_or_default();
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"{entity}\">\n",
            "  <md:SPSSODescriptor AuthnRequestsSigned=\"{ars}\" WantAssertionsSigned=\"{was}\" ",
            "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\n",
            "{keys}{slo}",
            "    <md:NameIDFormat>{format}</md:NameIDFormat>\n",
            "    <md:AssertionConsumerService Binding=\"{binding}\" Location=\"{acs}\" index=\"0\" isDefault=\"true\"/>\n",
            "  </md:SPSSODescriptor>\n",
            "</md:EntityDescriptor>\n"
        ),
        entity = xml::escape(&sp.entity_id),
        ars = publish.authn_requests_signed,
        was = publish.want_assertions_signed,
        keys = keys,
        slo = slo,
        format = xml::escape(&sp.name_id_format),
        binding = BINDING_HTTP_POST,
        acs = xml::escape(&sp.acs_url),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_map_to_urns() {
        assert_eq!(
            name_id_format_urn("EmailAddress"),
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress")
        );
        assert_eq!(
            name_id_format_urn("persistent"),
            Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
        );
        assert_eq!(
            name_id_format_urn("TRANSIENT"),
            Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient")
        );
        assert_eq!(
            name_id_format_urn("unspecified"),
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified")
        );
        assert_eq!(
            name_id_format_urn("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"),
            Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
        );
        assert_eq!(name_id_format_urn("email"), None);
        assert_eq!(name_id_format_urn("urn:example:unknown"), None);
    }

    #[test]
    fn sp_metadata_parses_and_escapes() {
        let sp = SpSettings {
            entity_id: "https://app.example.com/?a=1&b=\"2\"".into(),
            acs_url: "https://app.example.com/saml/acs".into(),
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
        };
        let md = sp_metadata_xml(
            &sp,
            &SpPublish {
                want_assertions_signed: true,
                ..SpPublish::default()
            },
        );
        let doc = roxmltree::Document::parse(&md).unwrap();
        let root = doc.root_element();
        assert_eq!(root.attribute("entityID"), Some(sp.entity_id.as_str()));
        let spsso = root.first_element_child().unwrap();
        assert_eq!(spsso.attribute("WantAssertionsSigned"), Some("true"));
        assert_eq!(spsso.attribute("AuthnRequestsSigned"), Some("false"));
        let acs = spsso
            .children()
            .find(|n| n.has_tag_name("AssertionConsumerService"))
            .unwrap();
        assert_eq!(acs.attribute("Location"), Some(sp.acs_url.as_str()));
        assert_eq!(acs.attribute("index"), Some("0"));
    }

    #[test]
    fn metadata_without_signing_certs_is_refused() {
        let md = r#"<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp">
  <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp/sso"/>
  </IDPSSODescriptor></EntityDescriptor>"#;
        assert_eq!(
            IdpSettings::from_metadata(md.as_bytes()),
            Err(SamlError::NoSigningCerts)
        );
    }

    /// A DER certificate whose last signature byte reads as whitespace (0x0a) loads as
    /// itself (it was trimmed, then refused; found by the `idp_metadata` fuzz target).
    #[test]
    fn der_ending_in_a_whitespace_byte_loads_as_itself() {
        let pem = include_bytes!("../../config/example-idp.pem");
        let mut der = load_certificate(pem).unwrap();
        for last in [b'\n', b' ', b'\t', b'\r', 0x0c] {
            *der.last_mut().unwrap() = last;
            assert_eq!(load_certificate(&der).as_ref(), Ok(&der));
        }
        // A newline a tool added after the DER is still dropped.
        let with_newline = [der.as_slice(), b"\n"].concat();
        assert_eq!(load_certificate(&with_newline), Ok(der));
    }

    #[test]
    fn garbage_certificates_are_refused() {
        assert_eq!(load_certificate(b""), Err(SamlError::Certificate));
        assert_eq!(load_certificate(b"QUJD"), Err(SamlError::Certificate));
        assert_eq!(
            load_certificate(b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----"),
            Err(SamlError::Certificate)
        );
        assert_eq!(
            load_certificate(&[0x30, 0x82, 0xff]),
            Err(SamlError::Certificate)
        );
    }
}
