//! XML Encryption of assertions (Entra "Token encryption"): an `EncryptedAssertion` holds
//! `xenc:EncryptedData` whose key travels RSA-OAEP-encrypted for the SP's certificate.
//! samael decrypts neither AES-256-CBC nor keeps the inner signature checkable, so this is
//! ours, on the openssl crate.
//!
//! Accepted: key transport `rsa-oaep-mgf1p` (digest SHA-1 or SHA-256) and xmlenc 1.1
//! `rsa-oaep` (digest and MGF from the document, SHA-1/224/256/384/512); content
//! AES-128/192/256 in CBC or GCM. Refused: RSA PKCS#1 v1.5 key transport (Bleichenbacher)
//! and 3DES. Every failure after the algorithm checks is the same `Decryption` error, so
//! a sender learns nothing about where a crafted ciphertext failed.
//!
//! `encrypt_assertion` is the other side, for the development IdP and tests.

use super::xml::{child, is, text_of};
use super::SamlError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use openssl::encrypt::{Decrypter, Encrypter};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use roxmltree::Node;

pub const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

pub const KT_RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
pub const KT_RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
const KT_RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";

/// Content encryption algorithms we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentAlgorithm {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    Aes128Gcm,
    Aes192Gcm,
    Aes256Gcm,
}

impl ContentAlgorithm {
    pub fn uri(self) -> &'static str {
        match self {
            Self::Aes128Cbc => "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
            Self::Aes192Cbc => "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
            Self::Aes256Cbc => "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
            Self::Aes128Gcm => "http://www.w3.org/2009/xmlenc11#aes128-gcm",
            Self::Aes192Gcm => "http://www.w3.org/2009/xmlenc11#aes192-gcm",
            Self::Aes256Gcm => "http://www.w3.org/2009/xmlenc11#aes256-gcm",
        }
    }

    pub fn from_uri(uri: &str) -> Option<Self> {
        [
            Self::Aes128Cbc,
            Self::Aes192Cbc,
            Self::Aes256Cbc,
            Self::Aes128Gcm,
            Self::Aes192Gcm,
            Self::Aes256Gcm,
        ]
        .into_iter()
        .find(|a| a.uri() == uri)
    }

    fn cipher(self) -> Cipher {
        match self {
            Self::Aes128Cbc => Cipher::aes_128_cbc(),
            Self::Aes192Cbc => Cipher::aes_192_cbc(),
            Self::Aes256Cbc => Cipher::aes_256_cbc(),
            Self::Aes128Gcm => Cipher::aes_128_gcm(),
            Self::Aes192Gcm => Cipher::aes_192_gcm(),
            Self::Aes256Gcm => Cipher::aes_256_gcm(),
        }
    }

    fn is_gcm(self) -> bool {
        matches!(self, Self::Aes128Gcm | Self::Aes192Gcm | Self::Aes256Gcm)
    }

    fn key_len(self) -> usize {
        self.cipher().key_len()
    }

    fn iv_len(self) -> usize {
        if self.is_gcm() {
            12
        } else {
            16
        }
    }
}

const GCM_TAG_LEN: usize = 16;

fn digest_from_uri(uri: &str) -> Option<MessageDigest> {
    match uri {
        "http://www.w3.org/2000/09/xmldsig#sha1" => Some(MessageDigest::sha1()),
        "http://www.w3.org/2001/04/xmldsig-more#sha224" => Some(MessageDigest::sha224()),
        "http://www.w3.org/2001/04/xmlenc#sha256" => Some(MessageDigest::sha256()),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Some(MessageDigest::sha384()),
        "http://www.w3.org/2001/04/xmlenc#sha512" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

fn mgf_from_uri(uri: &str) -> Option<MessageDigest> {
    match uri {
        "http://www.w3.org/2009/xmlenc11#mgf1sha1" => Some(MessageDigest::sha1()),
        "http://www.w3.org/2009/xmlenc11#mgf1sha224" => Some(MessageDigest::sha224()),
        "http://www.w3.org/2009/xmlenc11#mgf1sha256" => Some(MessageDigest::sha256()),
        "http://www.w3.org/2009/xmlenc11#mgf1sha384" => Some(MessageDigest::sha384()),
        "http://www.w3.org/2009/xmlenc11#mgf1sha512" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

fn refused(alg: Option<&str>) -> SamlError {
    SamlError::EncryptionAlgorithm(
        alg.unwrap_or("(none)")
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect(),
    )
}

fn xenc_child<'a, 'i>(n: Node<'a, 'i>, local: &'static str) -> Option<Node<'a, 'i>> {
    child(n, NS_XENC, local)
}

fn cipher_value(n: Node<'_, '_>) -> Result<Vec<u8>, SamlError> {
    let value = xenc_child(n, "CipherData")
        .and_then(|d| xenc_child(d, "CipherValue"))
        .ok_or(SamlError::Malformed("CipherValue missing"))?;
    let compact: String = text_of(value)
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(compact).map_err(|_| SamlError::BadBase64)
}

/// The EncryptedKey of an EncryptedData: inside its ds:KeyInfo, or a sibling inside the
/// EncryptedAssertion (Shibboleth and AD FS put it there).
fn encrypted_key<'a, 'i>(
    encrypted_assertion: Node<'a, 'i>,
    data: Node<'a, 'i>,
) -> Result<Node<'a, 'i>, SamlError> {
    let in_key_info = child(data, NS_DSIG, "KeyInfo").and_then(|ki| xenc_child(ki, "EncryptedKey"));
    let sibling = || xenc_child(encrypted_assertion, "EncryptedKey");
    in_key_info
        .or_else(sibling)
        .ok_or(SamlError::Malformed("EncryptedKey missing"))
}

/// Decrypt an `EncryptedAssertion` element with the SP's private key; returns the
/// plaintext (the serialized Assertion element).
pub fn decrypt_assertion(
    encrypted_assertion: Node<'_, '_>,
    key: &PKey<Private>,
) -> Result<String, SamlError> {
    let mut data_nodes = encrypted_assertion
        .children()
        .filter(|n| is(*n, NS_XENC, "EncryptedData"));
    let (Some(data), None) = (data_nodes.next(), data_nodes.next()) else {
        return Err(SamlError::Malformed("expected one EncryptedData"));
    };
    let content_uri = xenc_child(data, "EncryptionMethod").and_then(|m| m.attribute("Algorithm"));
    let content = content_uri
        .and_then(ContentAlgorithm::from_uri)
        .ok_or_else(|| refused(content_uri))?;

    let ek = encrypted_key(encrypted_assertion, data)?;
    let method = xenc_child(ek, "EncryptionMethod");
    let kt = method.and_then(|m| m.attribute("Algorithm"));
    let digest_uri = method
        .and_then(|m| child(m, NS_DSIG, "DigestMethod"))
        .and_then(|d| d.attribute("Algorithm"));
    let (oaep_md, mgf_md) = match kt {
        Some(KT_RSA_OAEP_MGF1P) => {
            let md = match digest_uri {
                None => MessageDigest::sha1(),
                Some(u) => digest_from_uri(u).ok_or_else(|| refused(Some(u)))?,
            };
            (md, MessageDigest::sha1())
        }
        Some(KT_RSA_OAEP) => {
            let md = match digest_uri {
                None => MessageDigest::sha1(),
                Some(u) => digest_from_uri(u).ok_or_else(|| refused(Some(u)))?,
            };
            let mgf_uri = method
                .and_then(|m| child(m, NS_XENC11, "MGF"))
                .and_then(|m| m.attribute("Algorithm"));
            let mgf = match mgf_uri {
                None => MessageDigest::sha1(),
                Some(u) => mgf_from_uri(u).ok_or_else(|| refused(Some(u)))?,
            };
            (md, mgf)
        }
        Some(KT_RSA_1_5) | Some(_) | None => return Err(refused(kt)),
    };
    if method
        .and_then(|m| xenc_child(m, "OAEPparams"))
        .is_some_and(|p| !text_of(p).trim().is_empty())
    {
        return Err(refused(Some("OAEPparams")));
    }

    let wrapped = cipher_value(ek)?;
    let aes_key = rsa_oaep_decrypt(key, &wrapped, oaep_md, mgf_md).ok_or(SamlError::Decryption)?;
    if aes_key.len() != content.key_len() {
        return Err(SamlError::Decryption);
    }
    let body = cipher_value(data)?;
    let plain = symmetric_decrypt(content, &aes_key, &body).ok_or(SamlError::Decryption)?;
    String::from_utf8(plain).map_err(|_| SamlError::Decryption)
}

fn rsa_oaep_decrypt(
    key: &PKey<Private>,
    wrapped: &[u8],
    md: MessageDigest,
    mgf: MessageDigest,
) -> Option<Vec<u8>> {
    let mut d = Decrypter::new(key).ok()?;
    d.set_rsa_padding(Padding::PKCS1_OAEP).ok()?;
    d.set_rsa_oaep_md(md).ok()?;
    d.set_rsa_mgf1_md(mgf).ok()?;
    let mut out = vec![0u8; d.decrypt_len(wrapped).ok()?];
    let n = d.decrypt(wrapped, &mut out).ok()?;
    out.truncate(n);
    Some(out)
}

fn symmetric_decrypt(alg: ContentAlgorithm, key: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let iv_len = alg.iv_len();
    let iv = body.get(..iv_len)?;
    if alg.is_gcm() {
        let rest = body.get(iv_len..)?;
        let split = rest.len().checked_sub(GCM_TAG_LEN)?;
        let (ct, tag) = rest.split_at(split);
        let mut c = Crypter::new(alg.cipher(), Mode::Decrypt, key, Some(iv)).ok()?;
        let mut out = vec![0u8; ct.len() + 32];
        let mut n = c.update(ct, &mut out).ok()?;
        c.set_tag(tag).ok()?;
        n += c.finalize(&mut out[n..]).ok()?;
        out.truncate(n);
        Some(out)
    } else {
        let ct = body.get(iv_len..)?;
        if ct.is_empty() || ct.len() % 16 != 0 {
            return None;
        }
        // XML Encryption padding (ISO 10126): only the last byte (the pad length) is
        // defined, so openssl's PKCS#7 check is off and the length is checked here.
        let mut c = Crypter::new(alg.cipher(), Mode::Decrypt, key, Some(iv)).ok()?;
        c.pad(false);
        let mut out = vec![0u8; ct.len() + 32];
        let mut n = c.update(ct, &mut out).ok()?;
        n += c.finalize(&mut out[n..]).ok()?;
        out.truncate(n);
        let pad = usize::from(*out.last()?);
        if pad == 0 || pad > 16 || pad > out.len() {
            return None;
        }
        out.truncate(out.len() - pad);
        Some(out)
    }
}

/// Encrypt a serialized Assertion for the holder of `recipient` (RSA-OAEP-MGF1P with
/// SHA-1, as Entra and most IdPs send), as an `EncryptedAssertion` element.
pub fn encrypt_assertion(
    assertion_xml: &str,
    recipient: &PKey<Public>,
    alg: ContentAlgorithm,
) -> Result<String, SamlError> {
    let mut aes_key = vec![0u8; alg.key_len()];
    openssl::rand::rand_bytes(&mut aes_key)?;
    let mut iv = vec![0u8; alg.iv_len()];
    openssl::rand::rand_bytes(&mut iv)?;

    let mut c = Crypter::new(alg.cipher(), Mode::Encrypt, &aes_key, Some(&iv))?;
    let mut body = iv.clone();
    if alg.is_gcm() {
        let mut out = vec![0u8; assertion_xml.len() + 32];
        let mut n = c.update(assertion_xml.as_bytes(), &mut out)?;
        n += c.finalize(&mut out[n..])?;
        out.truncate(n);
        let mut tag = [0u8; GCM_TAG_LEN];
        c.get_tag(&mut tag)?;
        body.extend_from_slice(&out);
        body.extend_from_slice(&tag);
    } else {
        c.pad(false);
        let mut padded = assertion_xml.as_bytes().to_vec();
        let pad = 16 - padded.len() % 16;
        let mut filler = vec![0u8; pad - 1];
        openssl::rand::rand_bytes(&mut filler)?;
        padded.extend_from_slice(&filler);
        padded.push(pad as u8);
        let mut out = vec![0u8; padded.len() + 32];
        let mut n = c.update(&padded, &mut out)?;
        n += c.finalize(&mut out[n..])?;
        out.truncate(n);
        body.extend_from_slice(&out);
    }

    let mut e = Encrypter::new(recipient)?;
    e.set_rsa_padding(Padding::PKCS1_OAEP)?;
    e.set_rsa_oaep_md(MessageDigest::sha1())?;
    e.set_rsa_mgf1_md(MessageDigest::sha1())?;
    let mut wrapped = vec![0u8; e.encrypt_len(&aes_key)?];
    let n = e.encrypt(&aes_key, &mut wrapped)?;
    wrapped.truncate(n);

    Ok(format!(
        concat!(
            "<saml:EncryptedAssertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">",
            "<xenc:EncryptedData xmlns:xenc=\"{xenc}\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\">",
            "<xenc:EncryptionMethod Algorithm=\"{content}\"/>",
            "<ds:KeyInfo xmlns:ds=\"{dsig}\"><xenc:EncryptedKey>",
            "<xenc:EncryptionMethod Algorithm=\"{kt}\">",
            "<ds:DigestMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#sha1\"/></xenc:EncryptionMethod>",
            "<xenc:CipherData><xenc:CipherValue>{key}</xenc:CipherValue></xenc:CipherData>",
            "</xenc:EncryptedKey></ds:KeyInfo>",
            "<xenc:CipherData><xenc:CipherValue>{body}</xenc:CipherValue></xenc:CipherData>",
            "</xenc:EncryptedData></saml:EncryptedAssertion>"
        ),
        xenc = NS_XENC,
        content = alg.uri(),
        dsig = NS_DSIG,
        kt = KT_RSA_OAEP_MGF1P,
        key = STANDARD.encode(wrapped),
        body = STANDARD.encode(body),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::rsa::Rsa;

    const ASSERTION: &str = "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a\">caf\u{e9}</saml:Assertion>";

    fn keypair() -> (PKey<Private>, PKey<Public>) {
        let k = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let p = PKey::public_key_from_der(&k.public_key_to_der().unwrap()).unwrap();
        (k, p)
    }

    fn decrypt(xml: &str, key: &PKey<Private>) -> Result<String, SamlError> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        decrypt_assertion(doc.root_element(), key)
    }

    #[test]
    fn every_content_algorithm_round_trips() {
        let (k, p) = keypair();
        for alg in [
            ContentAlgorithm::Aes128Cbc,
            ContentAlgorithm::Aes192Cbc,
            ContentAlgorithm::Aes256Cbc,
            ContentAlgorithm::Aes128Gcm,
            ContentAlgorithm::Aes192Gcm,
            ContentAlgorithm::Aes256Gcm,
        ] {
            let enc = encrypt_assertion(ASSERTION, &p, alg).unwrap();
            assert_eq!(decrypt(&enc, &k).unwrap(), ASSERTION, "{alg:?}");
        }
    }

    #[test]
    fn wrong_key_and_tampering_give_one_error() {
        let (_, p) = keypair();
        let (other, _) = keypair();
        let enc = encrypt_assertion(ASSERTION, &p, ContentAlgorithm::Aes256Gcm).unwrap();
        assert_eq!(decrypt(&enc, &other), Err(SamlError::Decryption));
        let (k, p) = keypair();
        let enc = encrypt_assertion(ASSERTION, &p, ContentAlgorithm::Aes256Gcm).unwrap();
        // flip one base64 character in the content cipher value (GCM tag fails)
        let body_start = enc.rfind("<xenc:CipherValue>").unwrap() + "<xenc:CipherValue>".len();
        let mut bytes = enc.into_bytes();
        bytes[body_start + 30] = if bytes[body_start + 30] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(decrypt(&tampered, &k), Err(SamlError::Decryption));
    }

    #[test]
    fn weak_algorithms_are_refused() {
        let (k, p) = keypair();
        let enc = encrypt_assertion(ASSERTION, &p, ContentAlgorithm::Aes128Cbc).unwrap();
        let v15 = enc.replace(KT_RSA_OAEP_MGF1P, KT_RSA_1_5);
        assert_eq!(
            decrypt(&v15, &k).unwrap_err().reason(),
            "encryption_algorithm"
        );
        let tdes = enc.replace(
            ContentAlgorithm::Aes128Cbc.uri(),
            "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
        );
        assert_eq!(
            decrypt(&tdes, &k).unwrap_err().reason(),
            "encryption_algorithm"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let (k, _) = keypair();
        for x in [
            "<saml:EncryptedAssertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"/>",
            "<e xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\"><xenc:EncryptedData><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#aes128-gcm\"/><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\"/><xenc:CipherData><xenc:CipherValue>AAAA</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey><xenc:CipherData><xenc:CipherValue></xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></e>",
        ] {
            assert!(decrypt(x, &k).is_err());
        }
        assert_eq!(
            symmetric_decrypt(ContentAlgorithm::Aes128Gcm, &[0; 16], &[1, 2, 3]),
            None
        );
        assert_eq!(
            symmetric_decrypt(ContentAlgorithm::Aes128Cbc, &[0; 16], &[0; 16]),
            None
        );
    }
}
