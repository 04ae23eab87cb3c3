//! The HTTP-Redirect binding (SAML bindings §3.4) both ways, and the keys it signs with.
//!
//! Outgoing: raw DEFLATE, base64, percent-encode; when a key is given, the query
//! `SAMLRequest=…&RelayState=…&SigAlg=…` is signed (RSA-SHA256) and `&Signature=…` appended.
//! Incoming: the raw query is split without re-encoding, so the signature is checked over
//! the exact octets the sender signed (§3.4.4.1); the message inflates to at most 64 KiB.
//!
//! We never panic on hostile input: every malformed query, bad base64, oversized inflate
//! or bad signature is a [`SamlError`].

use super::SamlError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::sign::{Signer, Verifier};
use openssl::x509::X509;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt;
use std::io::{Read, Write};

/// Largest inflated message accepted from a Redirect-binding query.
pub const MAX_INFLATED_BYTES: u64 = 64 * 1024;
/// Largest query string looked at.
const MAX_QUERY_BYTES: usize = 64 * 1024;

pub const SIG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SIG_RSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
const SIG_RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
const SIG_RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Which query parameter carries the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageParam {
    Request,
    Response,
}

impl MessageParam {
    pub fn name(self) -> &'static str {
        match self {
            MessageParam::Request => "SAMLRequest",
            MessageParam::Response => "SAMLResponse",
        }
    }
}

/// An RSA private key that signs Redirect-binding queries (RSA-SHA256). `Debug` shows
/// nothing of the key.
#[derive(Clone)]
pub struct SigningKey {
    key: PKey<Private>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// PEM (PKCS#8 or PKCS#1) RSA private key of at least 2048 bits.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SamlError> {
        let key = PKey::private_key_from_pem(pem)
            .map_err(|_| SamlError::Crypto("not a PEM private key".into()))?;
        Self::from_pkey(key)
    }

    pub fn from_pkey(key: PKey<Private>) -> Result<Self, SamlError> {
        if key.rsa().is_err() {
            return Err(SamlError::Crypto("the key must be an RSA key".into()));
        }
        if key.bits() < 2048 {
            return Err(SamlError::Crypto(format!(
                "RSA key of {} bits; at least 2048 are required",
                key.bits()
            )));
        }
        Ok(Self { key })
    }

    pub fn pkey(&self) -> &PKey<Private> {
        &self.key
    }

    /// RSA-SHA256 (PKCS#1 v1.5) signature of `data`.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SamlError> {
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key)?;
        signer.update(data)?;
        Ok(signer.sign_to_vec()?)
    }
}

/// The SP's key pair: signs requests and responses, decrypts assertions; the
/// certificate goes into the SP metadata.
#[derive(Clone, Debug)]
pub struct SpKeys {
    pub key: SigningKey,
    pub cert_der: Vec<u8>,
}

impl SpKeys {
    /// A PEM private key and its PEM certificate; refuses a certificate of another key.
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<Self, SamlError> {
        let key = SigningKey::from_pem(key_pem)?;
        let cert = X509::from_pem(cert_pem).map_err(|_| SamlError::Certificate)?;
        let public = cert.public_key().map_err(|_| SamlError::Certificate)?;
        if !public.public_eq(key.pkey()) {
            return Err(SamlError::Crypto(
                "the certificate does not belong to the private key".into(),
            ));
        }
        Ok(Self {
            key,
            cert_der: cert.to_der()?,
        })
    }
}

/// The public keys of an IdP's signing certificates (parsed once, at start-up or refresh).
pub fn public_keys(certs_der: &[Vec<u8>]) -> Result<Vec<PKey<Public>>, SamlError> {
    certs_der
        .iter()
        .map(|der| {
            X509::from_der(der)
                .and_then(|c| c.public_key())
                .map_err(|_| SamlError::Certificate)
        })
        .collect()
}

/// `base_url` with the deflated, encoded message (and RelayState, and a signature when
/// `signer` is given) appended; `&` when `base_url` already has a query.
pub fn redirect_url(
    base_url: &str,
    param: MessageParam,
    xml: &str,
    relay_state: Option<&str>,
    signer: Option<&SigningKey>,
) -> Result<String, SamlError> {
    let parsed = url::Url::parse(base_url).map_err(|_| SamlError::Url("redirect target"))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.fragment().is_some() {
        return Err(SamlError::Url("redirect target"));
    }
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
    enc.write_all(xml.as_bytes())
        .map_err(|e| SamlError::Crypto(format!("deflate: {e}")))?;
    let deflated = enc
        .finish()
        .map_err(|e| SamlError::Crypto(format!("deflate: {e}")))?;
    let b64 = STANDARD.encode(deflated);

    let mut signed = String::with_capacity(b64.len() * 3 / 2 + 128);
    signed.push_str(param.name());
    signed.push('=');
    signed.extend(utf8_percent_encode(&b64, QUERY_VALUE));
    if let Some(relay) = relay_state.filter(|r| !r.is_empty()) {
        signed.push_str("&RelayState=");
        signed.extend(utf8_percent_encode(relay, QUERY_VALUE));
    }
    if let Some(key) = signer {
        signed.push_str("&SigAlg=");
        signed.extend(utf8_percent_encode(SIG_RSA_SHA256, QUERY_VALUE));
        let signature = STANDARD.encode(key.sign(signed.as_bytes())?);
        signed.push_str("&Signature=");
        signed.extend(utf8_percent_encode(&signature, QUERY_VALUE));
    }
    let mut url = String::with_capacity(base_url.len() + 1 + signed.len());
    url.push_str(base_url);
    url.push(if parsed.query().is_some() { '&' } else { '?' });
    url.push_str(&signed);
    Ok(url)
}

/// A Redirect-binding query as received: raw (still percent-encoded) values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectQuery<'q> {
    pub param: MessageParam,
    message: &'q str,
    relay_state: Option<&'q str>,
    sig_alg: Option<&'q str>,
    signature: Option<&'q str>,
}

/// Split a query string into the binding's parameters. Other parameters are ignored
/// (they are not signed); a repeated binding parameter, or both SAMLRequest and
/// SAMLResponse, is refused.
pub fn parse_redirect_query(query: &str) -> Result<RedirectQuery<'_>, SamlError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(SamlError::TooLarge);
    }
    let mut request = None;
    let mut response = None;
    let mut relay_state = None;
    let mut sig_alg = None;
    let mut signature = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "SAMLRequest" => &mut request,
            "SAMLResponse" => &mut response,
            "RelayState" => &mut relay_state,
            "SigAlg" => &mut sig_alg,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(SamlError::BadRedirectQuery("a parameter appears twice"));
        }
    }
    let (param, message) = match (request, response) {
        (Some(m), None) => (MessageParam::Request, m),
        (None, Some(m)) => (MessageParam::Response, m),
        (None, None) => return Err(SamlError::BadRedirectQuery("no SAMLRequest/SAMLResponse")),
        (Some(_), Some(_)) => {
            return Err(SamlError::BadRedirectQuery(
                "both SAMLRequest and SAMLResponse",
            ))
        }
    };
    if sig_alg.is_some() != signature.is_some() {
        return Err(SamlError::BadRedirectQuery(
            "SigAlg and Signature go together",
        ));
    }
    Ok(RedirectQuery {
        param,
        message,
        relay_state,
        sig_alg,
        signature,
    })
}

impl RedirectQuery<'_> {
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }

    /// The decoded RelayState.
    pub fn relay_state(&self) -> Option<String> {
        self.relay_state
            .and_then(|r| percent_decode_str(r).decode_utf8().ok())
            .map(|r| r.into_owned())
    }

    /// The inflated XML (at most 64 KiB).
    pub fn xml(&self) -> Result<String, SamlError> {
        inflate_param(self.message)
    }

    /// Check the query signature against any of `keys`. `Err(MessageNotSigned)` when
    /// there is none; SHA-1 only with `allow_sha1`.
    pub fn verify(&self, keys: &[PKey<Public>], allow_sha1: bool) -> Result<(), SamlError> {
        let (Some(alg_raw), Some(sig_raw)) = (self.sig_alg, self.signature) else {
            return Err(SamlError::MessageNotSigned);
        };
        let alg = percent_decode_str(alg_raw)
            .decode_utf8()
            .map_err(|_| SamlError::BadRedirectQuery("SigAlg"))?;
        let digest = match alg.as_ref() {
            SIG_RSA_SHA256 => MessageDigest::sha256(),
            SIG_RSA_SHA384 => MessageDigest::sha384(),
            SIG_RSA_SHA512 => MessageDigest::sha512(),
            SIG_RSA_SHA1 if allow_sha1 => MessageDigest::sha1(),
            other => {
                return Err(SamlError::WeakAlgorithm(
                    other
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(128)
                        .collect(),
                ))
            }
        };
        let sig_b64: String = percent_decode_str(sig_raw)
            .decode_utf8()
            .map_err(|_| SamlError::BadRedirectQuery("Signature"))?
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let signature = STANDARD
            .decode(sig_b64)
            .map_err(|_| SamlError::BadRedirectQuery("Signature"))?;

        let mut signed = String::with_capacity(self.message.len() + 256);
        signed.push_str(self.param.name());
        signed.push('=');
        signed.push_str(self.message);
        if let Some(relay) = self.relay_state {
            signed.push_str("&RelayState=");
            signed.push_str(relay);
        }
        signed.push_str("&SigAlg=");
        signed.push_str(alg_raw);

        for key in keys {
            if key.rsa().is_err() {
                continue;
            }
            let ok = Verifier::new(digest, key)
                .and_then(|mut v| {
                    v.update(signed.as_bytes())?;
                    v.verify(&signature)
                })
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
        }
        Err(SamlError::Signature)
    }
}

/// Percent-decode, base64-decode and inflate one Redirect-binding message value (at most
/// 64 KiB inflated).
pub fn inflate_param(raw: &str) -> Result<String, SamlError> {
    let unescaped = percent_decode_str(raw.trim())
        .decode_utf8()
        .map_err(|_| SamlError::BadRequestEncoding)?;
    let compact: String = unescaped
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let deflated = STANDARD
        .decode(compact)
        .map_err(|_| SamlError::BadRequestEncoding)?;
    let mut out = Vec::new();
    DeflateDecoder::new(deflated.as_slice())
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|_| SamlError::BadRequestEncoding)?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(SamlError::TooLarge);
    }
    String::from_utf8(out).map_err(|_| SamlError::BadEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::rsa::Rsa;

    fn key() -> SigningKey {
        SigningKey::from_pkey(PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()).unwrap()
    }

    fn public(k: &SigningKey) -> PKey<Public> {
        PKey::public_key_from_der(&k.pkey().public_key_to_der().unwrap()).unwrap()
    }

    fn query(url: &str) -> &str {
        url.split_once('?').unwrap().1
    }

    #[test]
    fn signed_redirect_round_trip() {
        let k = key();
        let url = redirect_url(
            "https://idp.example.com/slo",
            MessageParam::Request,
            "<x/>",
            Some("/a b?c=d&e"),
            Some(&k),
        )
        .unwrap();
        let q = parse_redirect_query(query(&url)).unwrap();
        assert_eq!(q.param, MessageParam::Request);
        assert_eq!(q.xml().unwrap(), "<x/>");
        assert_eq!(q.relay_state().as_deref(), Some("/a b?c=d&e"));
        q.verify(&[public(&k)], false).unwrap();
        // another key does not verify
        assert_eq!(
            q.verify(&[public(&key())], false),
            Err(SamlError::Signature)
        );
    }

    #[test]
    fn tampered_or_unsigned_queries_fail() {
        let k = key();
        let url = redirect_url(
            "https://idp.example.com/slo?tenant=1",
            MessageParam::Response,
            "<y/>",
            Some("r"),
            Some(&k),
        )
        .unwrap();
        assert!(url.starts_with("https://idp.example.com/slo?tenant=1&SAMLResponse="));
        let q = query(&url).replace("RelayState=r", "RelayState=s");
        assert_eq!(
            parse_redirect_query(&q)
                .unwrap()
                .verify(&[public(&k)], false),
            Err(SamlError::Signature)
        );
        let unsigned = redirect_url(
            "https://idp.example.com/slo",
            MessageParam::Response,
            "<y/>",
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            parse_redirect_query(query(&unsigned))
                .unwrap()
                .verify(&[public(&k)], false),
            Err(SamlError::MessageNotSigned)
        );
        let sha1 = query(&url).replace("rsa-sha256", "rsa-sha1");
        assert_eq!(
            parse_redirect_query(&sha1)
                .unwrap()
                .verify(&[public(&k)], false)
                .unwrap_err()
                .reason(),
            "weak_algorithm"
        );
    }

    #[test]
    fn malformed_queries_are_refused() {
        for q in [
            "",
            "RelayState=x",
            "SAMLRequest=a&SAMLRequest=b",
            "SAMLRequest=a&SAMLResponse=b",
            "SAMLRequest=a&SigAlg=x",
        ] {
            assert!(parse_redirect_query(q).is_err(), "{q}");
        }
        let q = parse_redirect_query("SAMLRequest=%%%").unwrap();
        assert_eq!(q.xml(), Err(SamlError::BadRequestEncoding));
    }

    #[test]
    fn inflate_is_bounded() {
        let big = "a".repeat(MAX_INFLATED_BYTES as usize + 10);
        let url = redirect_url(
            "https://idp.example.com/",
            MessageParam::Request,
            &big,
            None,
            None,
        )
        .unwrap();
        let q = parse_redirect_query(query(&url)).unwrap();
        assert_eq!(q.xml(), Err(SamlError::TooLarge));
    }

    #[test]
    fn small_or_mismatched_keys_are_refused() {
        let small = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        assert!(SigningKey::from_pkey(small).is_err());
    }
}
