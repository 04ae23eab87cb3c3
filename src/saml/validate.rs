//! SAMLResponse validation: steps 1-4, 6 and 7 of DESIGN.md's "SAML validation chain".
//! Step 5 (consume the pending AuthnRequest ID) and step 8 (assertion replay) need the
//! session store: the caller does them with `in_response_to`, `assertion_id` and
//! `not_on_or_after` from [`ValidatedAssertion`].
//!
//! We never panic on hostile input: the SAMLResponse is attacker-controlled bytes; every
//! check fails closed with its own `SamlError` variant.
//!
//! Signature-wrapping defence: the document must hold exactly one Assertion; xmlsec verifies
//! every `ds:Signature` against the IdP's certificates only (never KeyInfo), and we re-parse
//! and read claims ONLY from xmlsec's pre-digest output (the exact bytes that were hashed),
//! after checking that its root is that one Assertion (or the Response around it). Comments
//! inside values are dropped by canonicalization, so `a<!---->b` reads `ab`, never `a`.

use super::dsig::{self, VerifyKeys};
use super::metadata::{IdpSettings, SpSettings};
use super::redirect::SigningKey;
use super::xml::{
    self, child, children, instant_attr, is, text_of, NS_ASSERTION, NS_DSIG, NS_PROTOCOL,
};
use super::SamlError;
use crate::identity::Identity;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use roxmltree::{Document, Node};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Default cap on the decoded SAMLResponse.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Default clock skew tolerated on every time window.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(180);

const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const CM_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const MAX_STATUS_MESSAGE_CHARS: usize = 512;

/// Lenient about padding, strict about the alphabet.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const SIG_SHA2: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
const DIGEST_SHA2: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
const SIG_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const DIGEST_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
/// Canonicalization and transform algorithms accepted (no XPath, no XSLT).
const TRANSFORMS: &[&str] = &[
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
];

/// Validates SAMLResponses for one app (SP) against one IdP.
#[derive(Clone, Debug)]
pub struct ResponseValidator {
    pub sp: SpSettings,
    pub idp_entity_id: String,
    /// DER signing certificates of the IdP; all are tried. Empty: every response is refused.
    certs: Vec<Vec<u8>>,
    /// The same, loaded into libxmlsec1 once (see `dsig`).
    keys: Arc<VerifyKeys>,
    pub clock_skew: Duration,
    /// Accept rsa-sha1 / sha1 (operator opt-in only).
    pub allow_sha1: bool,
    /// Cap on the decoded response (default 256 KiB).
    pub max_response_bytes: usize,
    /// The Assertion must carry a verified signature (default true; Entra's default).
    pub want_assertions_signed: bool,
    /// The Response must carry a verified signature (default false).
    pub want_response_signed: bool,
    /// The SP key that decrypts `EncryptedAssertion`s; `None`: they are refused.
    pub decryption_key: Option<SigningKey>,
    /// Earlier SP keys, tried after `decryption_key` (a token-encryption rollover).
    pub previous_decryption_keys: Vec<SigningKey>,
}

/// The facts of a validated assertion. The caller still does InResponseTo consumption
/// (step 5) and replay detection (step 8).
#[derive(Clone, Debug)]
pub struct ValidatedAssertion {
    pub identity: Identity,
    pub assertion_id: String,
    /// From the (signed) SubjectConfirmationData; from the Response only when the Response
    /// itself is signed. `None`: IdP-initiated.
    pub in_response_to: Option<String>,
    /// Unix seconds: the earliest of Conditions and SubjectConfirmationData NotOnOrAfter
    /// (the replay-cache TTL).
    pub not_on_or_after: i64,
    /// AuthnStatement SessionNotOnOrAfter (unix seconds): caps the session.
    pub session_not_on_or_after: Option<i64>,
}

impl ResponseValidator {
    /// A validator with the defaults: 3 min skew, SHA-256+ only, 256 KiB.
    ///
    /// A certificate libxmlsec1 cannot load leaves the validator with no keys (every response
    /// refused) and is logged; [`Self::set_signing_certs`] reports it instead.
    pub fn new(sp: SpSettings, idp: &IdpSettings) -> Self {
        let (certs, keys) = match VerifyKeys::from_certificates(&idp.signing_certs) {
            Ok(keys) => (idp.signing_certs.clone(), keys),
            Err(e) => {
                tracing::error!(error = %e, "IdP signing certificate refused by libxmlsec1");
                (Vec::new(), VerifyKeys::empty())
            }
        };
        Self {
            sp,
            idp_entity_id: idp.entity_id.clone(),
            certs,
            keys: Arc::new(keys),
            clock_skew: DEFAULT_CLOCK_SKEW,
            allow_sha1: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            want_assertions_signed: true,
            want_response_signed: false,
            decryption_key: None,
            previous_decryption_keys: Vec::new(),
        }
    }

    /// Trust these DER signing certificates (and only these) from now on.
    pub fn set_signing_certs(&mut self, certs: Vec<Vec<u8>>) -> Result<(), SamlError> {
        let keys = VerifyKeys::from_certificates(&certs).map_err(|e| {
            tracing::error!(error = %e, "IdP signing certificate refused by libxmlsec1");
            SamlError::Certificate
        })?;
        self.certs = certs;
        self.keys = Arc::new(keys);
        Ok(())
    }

    /// The DER signing certificates trusted.
    pub fn signing_certs(&self) -> &[Vec<u8>] {
        &self.certs
    }

    /// Validate the base64 `SAMLResponse` form field at instant `now`.
    pub fn validate(
        &self,
        saml_response_b64: &str,
        now: DateTime<Utc>,
    ) -> Result<ValidatedAssertion, SamlError> {
        if self.keys.is_empty() {
            return Err(SamlError::NoSigningCerts);
        }
        let xml = self.decode(saml_response_b64)?;
        let xml = xml::strip_bom(&xml);
        xml::screen(xml)?;
        let doc = xml::parse(xml)?;
        let root = doc.root_element();
        if !is(root, NS_PROTOCOL, "Response") {
            return Err(SamlError::Malformed("root is not samlp:Response"));
        }
        if root.attribute("Version") != Some("2.0") {
            return Err(SamlError::Version);
        }

        // Step 3 first for the Response envelope: an IdP error response (Entra AADSTS...)
        // carries no assertion and no signature, and its status is what the user needs.
        if let Some(issuer) = child(root, NS_ASSERTION, "Issuer") {
            if text_of(issuer).trim() != self.idp_entity_id {
                return Err(SamlError::Issuer);
            }
        }
        check_status(root)?;

        if let Some(encrypted) = single_encrypted_assertion(&doc)? {
            return self.validate_encrypted(xml, &doc, encrypted, now);
        }

        // Step 2: structure, algorithms, signature.
        let assertion_in_doc = single_assertion(&doc)?;
        check_signature_algorithms(&doc, self.allow_sha1)?;
        let verified_xml = self.verify(xml)?;
        let verified_doc = xml::parse(&verified_xml)?;
        let (assertion, _) = verified_assertion(&verified_doc, root, assertion_in_doc)?;
        // Every ds:Signature in the document verified (xmlsec refuses otherwise); which
        // elements they cover decides the signing mode.
        let response_signed = signs(root, root);
        let assertion_signed = doc
            .descendants()
            .find(|n| is(*n, NS_ASSERTION, "Assertion"))
            .is_some_and(|a| signs(a, a));
        self.require_signing(assertion_signed, response_signed)?;
        self.finish(root, assertion, response_signed, now)
    }

    /// An `EncryptedAssertion`: verify the Response signature (if any) on the document as
    /// received, decrypt the EncryptedAssertion that signature covers, then verify the
    /// Assertion's own signature on the plaintext and read it from xmlsec's output.
    fn validate_encrypted(
        &self,
        xml: &str,
        doc: &Document<'_>,
        encrypted: Node<'_, '_>,
        now: DateTime<Utc>,
    ) -> Result<ValidatedAssertion, SamlError> {
        let key = self
            .decryption_key
            .as_ref()
            .ok_or(SamlError::EncryptedAssertionUnsupported)?;
        let root = doc.root_element();
        let signatures = doc
            .descendants()
            .filter(|n| is(*n, NS_DSIG, "Signature"))
            .count();
        let response_signed = signs(root, root);
        if signatures > usize::from(response_signed) {
            // A signature elsewhere than on the Response: nothing we would read.
            return Err(SamlError::SignatureReference);
        }
        if self.want_response_signed && !response_signed {
            return Err(SamlError::ResponseNotSigned);
        }

        // The EncryptedAssertion to decrypt comes from the verified bytes when signed.
        let verified_xml;
        let verified_doc;
        let trusted = if response_signed {
            check_signature_algorithms(doc, self.allow_sha1)?;
            verified_xml = self.verify(xml)?;
            verified_doc = xml::parse(&verified_xml)?;
            let vroot = verified_doc.root_element();
            let rid = root.attribute("ID").filter(|id| !id.is_empty());
            if !is(vroot, NS_PROTOCOL, "Response") || rid.is_none() || vroot.attribute("ID") != rid
            {
                return Err(SamlError::SignatureReference);
            }
            single_encrypted_assertion(&verified_doc)?.ok_or(SamlError::SignatureReference)?
        } else {
            encrypted
        };
        // The current key, then the previous ones. A refused algorithm is refused whatever
        // the key; only a key that does not open it moves on to the next.
        let mut opened = Err(SamlError::Decryption);
        for k in std::iter::once(key).chain(&self.previous_decryption_keys) {
            opened = super::encryption::decrypt_assertion(trusted, k.pkey());
            if !matches!(opened, Err(SamlError::Decryption)) {
                break;
            }
        }
        let plaintext = opened?;

        // The plaintext may use prefixes declared around the EncryptedAssertion: re-declare
        // them on a wrapper so it parses standalone.
        let wrapped = wrap_with_namespaces(trusted, &plaintext);
        xml::screen(&wrapped)?;
        let pdoc = xml::parse(&wrapped)?;
        let mut assertions = pdoc
            .descendants()
            .filter(|n| n.is_element() && n.tag_name().name().ends_with("Assertion"));
        let (Some(assertion), None) = (assertions.next(), assertions.next()) else {
            return Err(SamlError::AssertionCount(
                pdoc.descendants()
                    .filter(|n| n.is_element() && n.tag_name().name().ends_with("Assertion"))
                    .count(),
            ));
        };
        if !is(assertion, NS_ASSERTION, "Assertion")
            || assertion.parent_element() != Some(pdoc.root_element())
        {
            return Err(SamlError::Malformed(
                "decrypted content is not one Assertion",
            ));
        }
        let assertion_id = assertion
            .attribute("ID")
            .filter(|id| !id.is_empty())
            .ok_or(SamlError::Malformed("Assertion ID missing"))?;
        let assertion_signed = signs(assertion, assertion);
        self.require_signing(assertion_signed, response_signed)?;
        if assertion_signed {
            check_signature_algorithms(&pdoc, self.allow_sha1)?;
            let verified = self.verify(&wrapped)?;
            let vdoc = xml::parse(&verified)?;
            let va = vdoc.root_element();
            if !is(va, NS_ASSERTION, "Assertion") || va.attribute("ID") != Some(assertion_id) {
                return Err(SamlError::SignatureReference);
            }
            self.finish(root, va, response_signed, now)
        } else {
            // Covered by the Response signature: the ciphertext was signed.
            self.finish(root, assertion, response_signed, now)
        }
    }

    fn require_signing(
        &self,
        assertion_signed: bool,
        response_signed: bool,
    ) -> Result<(), SamlError> {
        if self.want_assertions_signed && !assertion_signed {
            return Err(SamlError::AssertionNotSigned);
        }
        if self.want_response_signed && !response_signed {
            return Err(SamlError::ResponseNotSigned);
        }
        if !assertion_signed && !response_signed {
            return Err(SamlError::Signature);
        }
        Ok(())
    }

    /// Steps 4, 6, 7 on the assertion to read, and InResponseTo.
    fn finish(
        &self,
        root: Node<'_, '_>,
        assertion: Node<'_, '_>,
        response_signed: bool,
        now: DateTime<Utc>,
    ) -> Result<ValidatedAssertion, SamlError> {
        // Step 4 (Response part).
        if let Some(dest) = root.attribute("Destination") {
            if dest != self.sp.acs_url {
                return Err(SamlError::Destination);
            }
        }

        let facts = self.check_assertion(assertion, now)?;
        let response_irt = root.attribute("InResponseTo");
        let in_response_to = match (facts.scd_in_response_to.as_deref(), response_irt) {
            (Some(a), Some(b)) if a != b => return Err(SamlError::InResponseToMismatch),
            (Some(a), _) => Some(a.to_string()),
            (None, Some(b)) if response_signed => Some(b.to_string()),
            (None, _) => None,
        };
        Ok(ValidatedAssertion {
            identity: facts.identity,
            assertion_id: facts.assertion_id,
            in_response_to,
            not_on_or_after: facts.not_on_or_after,
            session_not_on_or_after: facts.session_not_on_or_after,
        })
    }

    /// Step 1: size limit before and after base64.
    fn decode(&self, b64: &str) -> Result<String, SamlError> {
        let max = self.max_response_bytes;
        // base64 is 4/3 of the data, plus room for line breaks some IdPs insert.
        let max_b64 = max.saturating_mul(4) / 3 + max / 16 + 16;
        if b64.len() > max_b64 {
            return Err(SamlError::TooLarge);
        }
        let compact: Vec<u8> = b64.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        let bytes = B64.decode(compact).map_err(|_| SamlError::BadBase64)?;
        if bytes.len() > max {
            return Err(SamlError::TooLarge);
        }
        String::from_utf8(bytes).map_err(|_| SamlError::BadEncoding)
    }

    /// xmlsec verification against the IdP's keys; returns the pre-digest XML of the single
    /// verified reference, or of the Response when both it and the Assertion are signed.
    fn verify(&self, xml: &str) -> Result<String, SamlError> {
        let mut predigests = dsig::verify(xml, &self.keys, self.allow_sha1).map_err(|e| {
            tracing::debug!(target: "ssogate::xmlsec", error = %e, "signature refused");
            SamlError::Signature
        })?;
        if predigests.len() == 1 {
            return Ok(predigests.swap_remove(0));
        }
        let mut responses = predigests
            .into_iter()
            .filter(|p| xml::parse(p).is_ok_and(|d| is(d.root_element(), NS_PROTOCOL, "Response")));
        match (responses.next(), responses.next()) {
            (Some(response), None) => Ok(response),
            _ => Err(SamlError::Signature),
        }
    }

    /// Steps 3 (Issuer), 4 (Recipient, bearer), 6 (time) and 7 (audience) on the verified
    /// assertion, and the identity.
    fn check_assertion(
        &self,
        a: Node<'_, '_>,
        now: DateTime<Utc>,
    ) -> Result<AssertionFacts, SamlError> {
        let skew = chrono::Duration::from_std(self.clock_skew)
            .map_err(|_| SamlError::Malformed("clock skew"))?;
        let late = now - skew; // for NotOnOrAfter
        let early = now + skew; // for NotBefore / IssueInstant

        if a.attribute("Version") != Some("2.0") {
            return Err(SamlError::Version);
        }
        let assertion_id = a
            .attribute("ID")
            .filter(|s| !s.is_empty())
            .ok_or(SamlError::Malformed("Assertion ID missing"))?
            .to_string();
        let issuer = child(a, NS_ASSERTION, "Issuer").ok_or(SamlError::Issuer)?;
        if text_of(issuer).trim() != self.idp_entity_id {
            return Err(SamlError::Issuer);
        }
        let issue_instant =
            instant_attr(a, "IssueInstant")?.ok_or(SamlError::Malformed("IssueInstant"))?;
        if issue_instant > early {
            return Err(SamlError::NotYetValid);
        }

        // Subject: NameID and a bearer confirmation for this ACS.
        let subject = child(a, NS_ASSERTION, "Subject").ok_or(SamlError::MissingNameId)?;
        let name_id_node =
            child(subject, NS_ASSERTION, "NameID").ok_or(SamlError::MissingNameId)?;
        let name_id = text_of(name_id_node);
        if name_id.trim().is_empty() {
            return Err(SamlError::MissingNameId);
        }
        let scd = self.bearer_confirmation(subject, early, late)?;

        // Conditions: time window and audience.
        let conditions = child(a, NS_ASSERTION, "Conditions")
            .ok_or(SamlError::Malformed("Conditions missing"))?;
        if let Some(nb) = instant_attr(conditions, "NotBefore")? {
            if early < nb {
                return Err(SamlError::NotYetValid);
            }
        }
        let cond_noa = instant_attr(conditions, "NotOnOrAfter")?;
        if let Some(noa) = cond_noa {
            if late >= noa {
                return Err(SamlError::Expired);
            }
        }
        let mut restrictions = children(conditions, NS_ASSERTION, "AudienceRestriction").peekable();
        if restrictions.peek().is_none() {
            return Err(SamlError::Audience);
        }
        for r in restrictions {
            let ok = children(r, NS_ASSERTION, "Audience")
                .any(|aud| text_of(aud).trim() == self.sp.entity_id);
            if !ok {
                return Err(SamlError::Audience);
            }
        }
        let not_on_or_after = match cond_noa {
            Some(c) => c.min(scd.not_on_or_after),
            None => scd.not_on_or_after,
        }
        .timestamp();

        // AuthnStatement.
        let authn =
            child(a, NS_ASSERTION, "AuthnStatement").ok_or(SamlError::MissingAuthnStatement)?;
        let auth_instant =
            instant_attr(authn, "AuthnInstant")?.ok_or(SamlError::Malformed("AuthnInstant"))?;
        let session_noa = instant_attr(authn, "SessionNotOnOrAfter")?;
        if let Some(s) = session_noa {
            if late >= s {
                return Err(SamlError::Expired);
            }
        }

        let identity = Identity {
            name_id,
            name_id_format: name_id_node.attribute("Format").map(str::to_string),
            session_index: authn.attribute("SessionIndex").map(str::to_string),
            auth_instant: Some(auth_instant.timestamp()),
            attributes: collect_attributes(a)?,
        };
        Ok(AssertionFacts {
            identity,
            assertion_id,
            scd_in_response_to: scd.in_response_to,
            not_on_or_after,
            session_not_on_or_after: session_noa.map(|s| s.timestamp()),
        })
    }

    /// The first bearer SubjectConfirmation whose data passes; else the first failure.
    fn bearer_confirmation(
        &self,
        subject: Node<'_, '_>,
        early: DateTime<Utc>,
        late: DateTime<Utc>,
    ) -> Result<Confirmation, SamlError> {
        let mut first_error = None;
        for sc in children(subject, NS_ASSERTION, "SubjectConfirmation")
            .filter(|sc| sc.attribute("Method") == Some(CM_BEARER))
        {
            match self.check_confirmation_data(sc, early, late) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(SamlError::SubjectConfirmation))
    }

    fn check_confirmation_data(
        &self,
        sc: Node<'_, '_>,
        early: DateTime<Utc>,
        late: DateTime<Utc>,
    ) -> Result<Confirmation, SamlError> {
        let data = child(sc, NS_ASSERTION, "SubjectConfirmationData")
            .ok_or(SamlError::SubjectConfirmation)?;
        if data.attribute("Recipient") != Some(self.sp.acs_url.as_str()) {
            return Err(SamlError::Recipient);
        }
        if let Some(nb) = instant_attr(data, "NotBefore")? {
            if early < nb {
                return Err(SamlError::NotYetValid);
            }
        }
        let noa = instant_attr(data, "NotOnOrAfter")?.ok_or(SamlError::SubjectConfirmation)?;
        if late >= noa {
            return Err(SamlError::Expired);
        }
        Ok(Confirmation {
            in_response_to: data.attribute("InResponseTo").map(str::to_string),
            not_on_or_after: noa,
        })
    }
}

struct Confirmation {
    in_response_to: Option<String>,
    not_on_or_after: DateTime<Utc>,
}

struct AssertionFacts {
    identity: Identity,
    assertion_id: String,
    scd_in_response_to: Option<String>,
    not_on_or_after: i64,
    session_not_on_or_after: Option<i64>,
}

/// Status must be Success; otherwise keep the IdP's codes and message (sanitised).
pub(crate) fn check_status(root: Node<'_, '_>) -> Result<(), SamlError> {
    let status =
        child(root, NS_PROTOCOL, "Status").ok_or(SamlError::Malformed("Status missing"))?;
    let mut codes = Vec::new();
    let mut code = child(status, NS_PROTOCOL, "StatusCode");
    while let Some(c) = code {
        if codes.len() >= 4 {
            break;
        }
        codes.push(sanitize(c.attribute("Value").unwrap_or(""), 256));
        code = child(c, NS_PROTOCOL, "StatusCode");
    }
    if codes.first().map(String::as_str) == Some(STATUS_SUCCESS) {
        return Ok(());
    }
    let message = child(status, NS_PROTOCOL, "StatusMessage")
        .map(|m| sanitize(&text_of(m), MAX_STATUS_MESSAGE_CHARS))
        .filter(|m| !m.is_empty());
    if codes.is_empty() {
        return Err(SamlError::Malformed("StatusCode missing"));
    }
    Err(SamlError::Status { codes, message })
}

/// Control characters become spaces; at most `max` characters.
fn sanitize(s: &str, max: usize) -> String {
    s.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

/// Exactly one `Assertion` element anywhere (any namespace), no `EncryptedAssertion`,
/// exactly one `Response`. Returns the ID of the SAML Assertion.
fn single_assertion<'a>(doc: &'a Document<'_>) -> Result<&'a str, SamlError> {
    let mut assertions = Vec::new();
    let mut responses = 0usize;
    for n in doc.descendants().filter(|n| n.is_element()) {
        match n.tag_name().name() {
            "EncryptedAssertion" => return Err(SamlError::AssertionCount(2)),
            "Assertion" => assertions.push(n),
            "Response" => responses += 1,
            _ => {}
        }
    }
    if assertions.len() != 1 {
        return Err(SamlError::AssertionCount(assertions.len()));
    }
    if responses != 1 {
        return Err(SamlError::Malformed("nested Response"));
    }
    let a = assertions[0];
    if !is(a, NS_ASSERTION, "Assertion") {
        return Err(SamlError::AssertionCount(0));
    }
    a.attribute("ID")
        .filter(|id| !id.is_empty())
        .ok_or(SamlError::Malformed("Assertion ID missing"))
}

/// Does `node` have a direct ds:Signature child whose one Reference names `target`'s ID?
/// (Only meaningful after xmlsec verified every signature of the document.)
fn signs(node: Node<'_, '_>, target: Node<'_, '_>) -> bool {
    let Some(id) = target.attribute("ID").filter(|id| !id.is_empty()) else {
        return false;
    };
    children(node, NS_DSIG, "Signature").any(|sig| {
        child(sig, NS_DSIG, "SignedInfo")
            .and_then(|si| child(si, NS_DSIG, "Reference"))
            .and_then(|r| r.attribute("URI"))
            .and_then(|u| u.strip_prefix('#'))
            == Some(id)
    })
}

/// The document's one `EncryptedAssertion` directly under the Response, if any. Several,
/// or one mixed with a plain Assertion, or one elsewhere, is refused.
fn single_encrypted_assertion<'a, 'i>(
    doc: &'a Document<'i>,
) -> Result<Option<Node<'a, 'i>>, SamlError> {
    let mut found = None;
    let mut plain = 0usize;
    for n in doc.descendants().filter(|n| n.is_element()) {
        match n.tag_name().name() {
            "EncryptedAssertion" => {
                if found.is_some() {
                    return Err(SamlError::AssertionCount(2));
                }
                found = Some(n);
            }
            "Assertion" => plain += 1,
            _ => {}
        }
    }
    let Some(enc) = found else {
        return Ok(None);
    };
    if plain > 0 {
        return Err(SamlError::AssertionCount(plain + 1));
    }
    if !is(enc, NS_ASSERTION, "EncryptedAssertion")
        || enc.parent_element() != Some(doc.root_element())
    {
        return Err(SamlError::Malformed(
            "EncryptedAssertion outside the Response",
        ));
    }
    Ok(Some(enc))
}

/// `<ssogate:Decrypted …>plaintext</ssogate:Decrypted>` with every namespace in scope at
/// `at` declared, so a plaintext using an ancestor's prefix parses.
fn wrap_with_namespaces(at: Node<'_, '_>, plaintext: &str) -> String {
    let mut out = String::with_capacity(plaintext.len() + 512);
    out.push_str("<ssogate:Decrypted xmlns:ssogate=\"urn:ssogate:decrypted\"");
    for ns in at.namespaces() {
        match ns.name() {
            Some("ssogate") | Some("xml") => continue,
            Some(prefix) => {
                out.push_str(" xmlns:");
                out.push_str(prefix);
            }
            None => out.push_str(" xmlns"),
        }
        out.push_str("=\"");
        out.push_str(&xml::escape(ns.uri()));
        out.push('"');
    }
    out.push('>');
    let body = plaintext.trim_start_matches('\u{feff}').trim_start();
    // An XML declaration is allowed only at the start of a document.
    let body = match body.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(body, |(_, after)| after),
        None => body,
    };
    out.push_str(body);
    out.push_str("</ssogate:Decrypted>");
    out
}

/// Every ds:Signature must use allowed algorithms and same-document ID references only.
fn check_signature_algorithms(doc: &Document<'_>, allow_sha1: bool) -> Result<(), SamlError> {
    let sig_ok = |alg: &str| SIG_SHA2.contains(&alg) || (allow_sha1 && alg == SIG_SHA1);
    let digest_ok = |alg: &str| DIGEST_SHA2.contains(&alg) || (allow_sha1 && alg == DIGEST_SHA1);
    let weak = |alg: Option<&str>| SamlError::WeakAlgorithm(sanitize(alg.unwrap_or("(none)"), 128));

    for sig in doc.descendants().filter(|n| is(*n, NS_DSIG, "Signature")) {
        let si = child(sig, NS_DSIG, "SignedInfo").ok_or(SamlError::Signature)?;
        let c14n =
            child(si, NS_DSIG, "CanonicalizationMethod").and_then(|n| n.attribute("Algorithm"));
        if !c14n.is_some_and(|a| TRANSFORMS.contains(&a)) {
            return Err(weak(c14n));
        }
        let method = child(si, NS_DSIG, "SignatureMethod").and_then(|n| n.attribute("Algorithm"));
        if !method.is_some_and(sig_ok) {
            return Err(weak(method));
        }
        let mut refs = 0;
        for r in children(si, NS_DSIG, "Reference") {
            refs += 1;
            let uri = r.attribute("URI").unwrap_or("");
            let same_doc_id = uri.strip_prefix('#').is_some_and(|id| {
                !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
            });
            if !(uri.is_empty() || same_doc_id) {
                return Err(SamlError::SignatureReference);
            }
            let digest = child(r, NS_DSIG, "DigestMethod").and_then(|n| n.attribute("Algorithm"));
            if !digest.is_some_and(digest_ok) {
                return Err(weak(digest));
            }
            if let Some(ts) = child(r, NS_DSIG, "Transforms") {
                for t in children(ts, NS_DSIG, "Transform") {
                    let alg = t.attribute("Algorithm");
                    if !alg.is_some_and(|a| TRANSFORMS.contains(&a)) {
                        return Err(weak(alg));
                    }
                }
            }
        }
        if refs != 1 {
            return Err(SamlError::SignatureReference);
        }
    }
    Ok(())
}

/// The Assertion to read, from the verified (pre-digest) document: its root must be the
/// document's one Assertion, or the document's Response (then it holds that Assertion).
fn verified_assertion<'a, 'i>(
    verified: &'a Document<'i>,
    original_root: Node<'_, '_>,
    assertion_id: &str,
) -> Result<(Node<'a, 'i>, bool), SamlError> {
    let vroot = verified.root_element();
    if is(vroot, NS_ASSERTION, "Assertion") {
        if vroot.attribute("ID") != Some(assertion_id) {
            return Err(SamlError::SignatureReference);
        }
        return Ok((vroot, false));
    }
    if is(vroot, NS_PROTOCOL, "Response") {
        let rid = original_root.attribute("ID").filter(|id| !id.is_empty());
        if rid.is_none() || vroot.attribute("ID") != rid {
            return Err(SamlError::SignatureReference);
        }
        let mut inner = children(vroot, NS_ASSERTION, "Assertion");
        let (Some(a), None) = (inner.next(), inner.next()) else {
            return Err(SamlError::SignatureReference);
        };
        if a.attribute("ID") != Some(assertion_id) {
            return Err(SamlError::SignatureReference);
        }
        return Ok((a, true));
    }
    Err(SamlError::SignatureReference)
}

/// AttributeStatement/Attribute by Name, values in order (several AttributeValue elements
/// or several Attribute elements with one Name both append).
fn collect_attributes(a: Node<'_, '_>) -> Result<BTreeMap<String, Vec<String>>, SamlError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for stmt in children(a, NS_ASSERTION, "AttributeStatement") {
        for attr in children(stmt, NS_ASSERTION, "Attribute") {
            let name = attr
                .attribute("Name")
                .ok_or(SamlError::Malformed("Attribute without Name"))?;
            let values = out.entry(name.to_string()).or_default();
            values.extend(children(attr, NS_ASSERTION, "AttributeValue").map(text_of));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = concat!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r\">",
        "<Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a\"/></samlp:Response>"
    );

    fn check(verified: &str) -> Result<bool, SamlError> {
        let original = xml::parse(RESPONSE).unwrap();
        let verified = xml::parse(verified).unwrap();
        verified_assertion(&verified, original.root_element(), "_a").map(|(_, signed)| signed)
    }

    #[test]
    fn verified_element_must_be_the_assertion_read() {
        let a = "<Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a\"/>";
        assert_eq!(check(a), Ok(false));
        assert_eq!(check(RESPONSE), Ok(true));
        // another assertion (e.g. a signed one from elsewhere) is not the one in the document
        let other = "<Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_b\"/>";
        assert_eq!(check(other), Err(SamlError::SignatureReference));
        // right local name, wrong namespace
        let foreign = "<Assertion xmlns=\"urn:evil\" ID=\"_a\"/>";
        assert_eq!(check(foreign), Err(SamlError::SignatureReference));
        // a signed Response that is not this one
        let resp = RESPONSE.replace("ID=\"_r\"", "ID=\"_x\"");
        assert_eq!(check(&resp), Err(SamlError::SignatureReference));
        // a signed element that is neither
        let ext = "<samlp:Extensions xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>";
        assert_eq!(check(ext), Err(SamlError::SignatureReference));
    }

    #[test]
    fn references_must_be_same_document_ids() {
        let with_uri = |uri: &str| {
            format!(
                concat!(
                    "<r><Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo>",
                    "<CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
                    "<SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>",
                    "<Reference URI=\"{}\"><DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>",
                    "</Reference></SignedInfo></Signature></r>"
                ),
                uri
            )
        };
        let ok = with_uri("#_abc-1.2");
        assert_eq!(
            check_signature_algorithms(&xml::parse(&ok).unwrap(), false),
            Ok(())
        );
        for bad in ["http://evil/x", "#xpointer(/)", "file:///etc/passwd"] {
            let x = with_uri(bad);
            assert_eq!(
                check_signature_algorithms(&xml::parse(&x).unwrap(), false),
                Err(SamlError::SignatureReference)
            );
        }
        let xslt = ok.replace(
            "<DigestMethod",
            "<Transforms><Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/></Transforms><DigestMethod",
        );
        assert_eq!(
            check_signature_algorithms(&xml::parse(&xslt).unwrap(), false)
                .unwrap_err()
                .reason(),
            "weak_algorithm"
        );
    }
}
