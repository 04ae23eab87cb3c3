//! `SamlError`: one variant per failed check, each with a short metric label
//! (`reason()`). Messages never carry assertion contents (NameID, attribute
//! values); the only IdP-supplied text kept is a non-Success status (codes and
//! StatusMessage), which the error page may show, HTML-escaped.

use thiserror::Error;

/// Every way the SAML module can refuse something.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SamlError {
    // === transport and XML ===
    #[error("SAML message larger than the configured limit")]
    TooLarge,
    #[error("SAML message is not valid base64")]
    BadBase64,
    #[error("SAML message is not UTF-8")]
    BadEncoding,
    #[error("SAML message contains a DTD or entity declaration")]
    XmlDtd,
    #[error("SAML message is not well-formed XML (line {line}, column {column})")]
    XmlParse { line: u32, column: u32 },
    #[error("SAML message nests elements too deeply")]
    XmlTooDeep,
    #[error("SAML message has an unexpected structure: {0}")]
    Malformed(&'static str),
    #[error("SAML version is not 2.0")]
    Version,

    // === signature ===
    #[error("the response holds an EncryptedAssertion but this app has no SP key to decrypt it")]
    EncryptedAssertionUnsupported,
    #[error("the encrypted assertion could not be decrypted with this SP's key")]
    Decryption,
    #[error("encryption algorithm not allowed: {0}")]
    EncryptionAlgorithm(String),
    #[error("the Assertion is not signed, and this app requires a signed Assertion")]
    AssertionNotSigned,
    #[error("the Response is not signed, and this app requires a signed Response")]
    ResponseNotSigned,
    #[error("expected exactly one Assertion, found {0}")]
    AssertionCount(usize),
    #[error("signature algorithm not allowed: {0}")]
    WeakAlgorithm(String),
    #[error("signature missing or invalid for the IdP's signing certificates")]
    Signature,
    #[error("the signed element is not the Assertion (or its Response) that would be read")]
    SignatureReference,

    // === protocol checks ===
    #[error("Issuer does not match the IdP entity ID")]
    Issuer,
    #[error("IdP returned status {}{}", .codes.join(" / "), .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// Top-level StatusCode first, then nested ones.
        codes: Vec<String>,
        /// StatusMessage (e.g. Entra's `AADSTS50105: ...`), control characters removed, truncated.
        message: Option<String>,
    },
    #[error("Response Destination is not this app's ACS URL")]
    Destination,
    #[error("SubjectConfirmationData Recipient is not this app's ACS URL")]
    Recipient,
    #[error("no usable bearer SubjectConfirmation")]
    SubjectConfirmation,
    #[error("assertion not yet valid")]
    NotYetValid,
    #[error("assertion expired")]
    Expired,
    #[error("AudienceRestriction does not contain this SP's entity ID")]
    Audience,
    #[error("assertion has no NameID")]
    MissingNameId,
    #[error("assertion has no AuthnStatement")]
    MissingAuthnStatement,
    #[error("InResponseTo of the Response and of the SubjectConfirmationData differ")]
    InResponseToMismatch,

    // === configuration: metadata, certificates ===
    #[error("IdP metadata: {0}")]
    Metadata(String),
    #[error("IdP has no signing certificate; refusing (unsigned responses would be accepted)")]
    NoSigningCerts,
    #[error("certificate is not a valid X.509 certificate (PEM, Base64 or DER)")]
    Certificate,
    #[error("invalid URL: {0}")]
    Url(&'static str),

    // === redirect binding ===
    #[error("SAMLRequest could not be decoded")]
    BadRequestEncoding,
    #[error("the Redirect-binding query is malformed: {0}")]
    BadRedirectQuery(&'static str),
    #[error("the message is not signed, and this app requires signed logout messages")]
    MessageNotSigned,
    #[error("the message answers no pending logout request")]
    UnknownLogoutRequest,

    // === local crypto (dev IdP, key generation) ===
    #[error("crypto error: {0}")]
    Crypto(String),
}

impl SamlError {
    /// A failure before the response's signature was verified (transport, XML,
    /// decryption, signature): answered alike, whatever the cause, so the answer tells
    /// nothing about the ciphertext or the document (no padding or parsing oracle).
    pub fn before_verification(&self) -> bool {
        matches!(
            self,
            Self::TooLarge
                | Self::BadBase64
                | Self::BadEncoding
                | Self::XmlDtd
                | Self::XmlParse { .. }
                | Self::XmlTooDeep
                | Self::Malformed(_)
                | Self::Version
                | Self::EncryptedAssertionUnsupported
                | Self::Decryption
                | Self::EncryptionAlgorithm(_)
                | Self::AssertionNotSigned
                | Self::ResponseNotSigned
                | Self::AssertionCount(_)
                | Self::WeakAlgorithm(_)
                | Self::Signature
                | Self::SignatureReference
        )
    }

    /// What kind of failure this is for a sign-in (`crate::error`).
    pub fn kind(&self) -> crate::error::Kind {
        if self.before_verification() {
            crate::error::Kind::Unverified
        } else {
            crate::error::Kind::Refused
        }
    }

    /// Short snake_case label for metrics and audit logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::BadBase64 => "bad_base64",
            Self::BadEncoding => "bad_encoding",
            Self::XmlDtd => "xml_dtd",
            Self::XmlParse { .. } => "xml_parse",
            Self::XmlTooDeep => "xml_too_deep",
            Self::Malformed(_) => "malformed",
            Self::Version => "version",
            Self::EncryptedAssertionUnsupported => "encrypted_assertion",
            Self::Decryption => "decryption",
            Self::EncryptionAlgorithm(_) => "encryption_algorithm",
            Self::AssertionNotSigned => "assertion_not_signed",
            Self::ResponseNotSigned => "response_not_signed",
            Self::AssertionCount(_) => "assertion_count",
            Self::WeakAlgorithm(_) => "weak_algorithm",
            Self::Signature => "signature",
            Self::SignatureReference => "signature_reference",
            Self::Issuer => "issuer",
            Self::Status { .. } => "status",
            Self::Destination => "destination",
            Self::Recipient => "recipient",
            Self::SubjectConfirmation => "subject_confirmation",
            Self::NotYetValid => "not_yet_valid",
            Self::Expired => "expired",
            Self::Audience => "audience",
            Self::MissingNameId => "missing_name_id",
            Self::MissingAuthnStatement => "missing_authn_statement",
            Self::InResponseToMismatch => "in_response_to_mismatch",
            Self::Metadata(_) => "metadata",
            Self::NoSigningCerts => "no_signing_certs",
            Self::Certificate => "certificate",
            Self::Url(_) => "url",
            Self::BadRequestEncoding => "bad_request_encoding",
            Self::BadRedirectQuery(_) => "bad_redirect_query",
            Self::MessageNotSigned => "message_not_signed",
            Self::UnknownLogoutRequest => "logout_unknown_request",
            Self::Crypto(_) => "crypto",
        }
    }
}

impl From<openssl::error::ErrorStack> for SamlError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::Crypto(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_display_keeps_idp_words() {
        let e = SamlError::Status {
            codes: vec![
                "urn:oasis:names:tc:SAML:2.0:status:Requester".into(),
                "urn:oasis:names:tc:SAML:2.0:status:RequestDenied".into(),
            ],
            message: Some("AADSTS50105: not assigned".into()),
        };
        let s = e.to_string();
        assert!(s.contains("AADSTS50105"));
        assert!(s.contains("RequestDenied"));
        assert_eq!(e.reason(), "status");
    }
}
