//! XML-DSig verification on libxmlsec1 with the IdP's keys loaded once.
//!
//! samael hands libxmlsec1 the certificate's DER on every verification, and OpenSSL 3
//! decodes it again each time: about 100 µs, most of a login's CPU. Here each trusted
//! certificate's public key becomes a libxmlsec1 key when the trust is built (start-up or
//! a metadata refresh); a verification only duplicates that handle (a reference count on
//! the `EVP_PKEY`). samael keeps the rest of SAML (metadata, the development IdP).
//!
//! Beyond libxmlsec1's defaults, every rule fails closed:
//! - the key is always one of ours, never one from `KeyInfo` (KeyInfo's certificate only
//!   decides which of our keys is tried first);
//! - references may point into the same document only: no remote URIs are ever fetched;
//! - only the algorithms listed here may run (the C14N family, enveloped-signature, SHA-2
//!   digests and RSA/ECDSA signatures; SHA-1 on the operator's opt-in): no XSLT, no XPath;
//! - `ID` attributes must be NCNames and unique (an `xml:id` cannot shadow one);
//! - the bytes are read as UTF-8 whatever the XML declaration says, as the checks before
//!   this one read them.
//!
//! What it returns is what `validate` reads claims from: each verified reference's
//! pre-digest bytes (exactly what was hashed).

#[allow(
    dead_code,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/xmlsec_ffi.rs"));
}

use base64::Engine as _;
use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::{null, null_mut, NonNull};

const NS_DSIG: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";

/// Why a verification failed. Callers map every variant to one refusal; the variant is for
/// the debug log.
#[derive(Debug, thiserror::Error)]
pub enum DsigError {
    #[error("certificate #{0}: {1}")]
    Key(usize, String),
    #[error("not well-formed XML")]
    Parse,
    #[error("an ID attribute is not an NCName, or is used twice")]
    Id,
    #[error("no ds:Signature in the document")]
    NoSignature,
    #[error("a ds:Signature does not verify with any trusted key")]
    Invalid,
    #[error("libxmlsec1 could not set up a verification")]
    Internal,
}

/// One trusted public key, loaded into libxmlsec1.
struct Key {
    ptr: NonNull<ffi::_xmlSecKey>,
    /// The certificate it came from: matched against KeyInfo to pick the first key to try.
    cert_der: Vec<u8>,
}

// SAFETY: after loading, the key is never modified: verifications only pass it to
// xmlSecKeyDuplicate, which reads it and takes a reference on the EVP_PKEY (an atomic
// increment in OpenSSL). It is destroyed once, in Drop, when no verification can hold it.
unsafe impl Send for Key {}
// SAFETY: see Send: shared use is read-only.
unsafe impl Sync for Key {}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: the pointer came from xmlSecOpenSSLAppKeyLoadMemory and is owned here.
        unsafe { ffi::xmlSecKeyDestroy(self.ptr.as_ptr()) }
    }
}

/// The IdP's signing keys, ready for libxmlsec1.
pub struct VerifyKeys {
    keys: Vec<Key>,
}

impl std::fmt::Debug for VerifyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyKeys({} keys)", self.keys.len())
    }
}

impl VerifyKeys {
    /// Load the public key of each DER certificate. Any certificate that cannot be loaded
    /// is an error naming it (the trust is not built half).
    pub fn from_certificates(certs: &[Vec<u8>]) -> Result<Self, DsigError> {
        super::xmlsec_log::route_xmlsec_errors_to_tracing(); // initialises libxmlsec1 once
        let mut keys = Vec::with_capacity(certs.len());
        for (i, der) in certs.iter().enumerate() {
            let pem = openssl::x509::X509::from_der(der)
                .and_then(|c| c.public_key())
                .and_then(|k| k.public_key_to_pem())
                .map_err(|e| DsigError::Key(i + 1, e.to_string()))?;
            let size = u32::try_from(pem.len())
                .map_err(|_| DsigError::Key(i + 1, "key too large".into()))?;
            // SAFETY: `pem` is a valid buffer of `size` bytes for the duration of the call;
            // no password callback is given. The returned key (or null) is ours.
            let ptr = unsafe {
                ffi::xmlSecOpenSSLAppKeyLoadMemory(
                    pem.as_ptr(),
                    size as _,
                    ffi::xmlSecKeyDataFormat_xmlSecKeyDataFormatPem,
                    null(),
                    null_mut(),
                    null_mut(),
                )
            };
            let ptr = NonNull::new(ptr)
                .ok_or_else(|| DsigError::Key(i + 1, "libxmlsec1 refused the key".into()))?;
            keys.push(Key {
                ptr,
                cert_der: der.clone(),
            });
        }
        Ok(Self { keys })
    }

    /// No keys: every verification fails.
    pub fn empty() -> Self {
        Self { keys: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Our keys in the order to try them: the one whose certificate the signature's
    /// KeyInfo names first (saves a failed RSA check per extra key), then the others.
    fn order(&self, hint: Option<&[u8]>) -> impl Iterator<Item = &Key> {
        let hinted = hint.and_then(|h| self.keys.iter().position(|k| k.cert_der == h));
        hinted.map(|i| &self.keys[i]).into_iter().chain(
            self.keys
                .iter()
                .enumerate()
                .filter(move |(i, _)| Some(*i) != hinted)
                .map(|(_, k)| k),
        )
    }
}

/// Verify every `ds:Signature` of `xml` against `keys`, each with the first key that
/// verifies it. Returns the pre-digest bytes of every verified reference, in document
/// order of the signatures. Any signature that does not verify fails the whole document.
pub fn verify(xml: &str, keys: &VerifyKeys, allow_sha1: bool) -> Result<Vec<String>, DsigError> {
    if keys.is_empty() {
        return Err(DsigError::Invalid);
    }
    let doc = Doc::parse(xml)?;
    let signatures = doc.register_ids_and_find_signatures()?;
    if signatures.is_empty() {
        return Err(DsigError::NoSignature);
    }
    let mut predigests = Vec::with_capacity(signatures.len());
    for sig in signatures {
        let hint = certificate_hint(sig);
        let mut verified = None;
        for key in keys.order(hint.as_deref()) {
            let ctx = Ctx::new(key, allow_sha1)?;
            // SAFETY: `sig` is an element of `doc`, which outlives this loop.
            if unsafe { ctx.verify(sig) } {
                verified = Some(ctx);
                break;
            }
        }
        verified
            .ok_or(DsigError::Invalid)?
            .predigests(&mut predigests)?;
    }
    Ok(predigests)
}

/// A libxml2 document, freed on drop.
struct Doc(NonNull<ffi::xmlDoc>);

impl Drop for Doc {
    fn drop(&mut self) {
        // SAFETY: the document came from xmlReadMemory and is owned here.
        unsafe { ffi::xmlFreeDoc(self.0.as_ptr()) }
    }
}

impl Doc {
    fn parse(xml: &str) -> Result<Self, DsigError> {
        let len = c_int::try_from(xml.len()).map_err(|_| DsigError::Parse)?;
        let options = ffi::xmlParserOption_XML_PARSE_NONET
            | ffi::xmlParserOption_XML_PARSE_NOERROR
            | ffi::xmlParserOption_XML_PARSE_NOWARNING
            | ffi::xmlParserOption_XML_PARSE_IGNORE_ENC;
        // SAFETY: the buffer is valid for `len` bytes; the encoding is a NUL-terminated
        // literal. No entity substitution, no DTD loading, no network.
        let ptr = unsafe {
            ffi::xmlReadMemory(
                xml.as_ptr().cast::<c_char>(),
                len,
                null(),
                c"UTF-8".as_ptr(),
                options as c_int,
            )
        };
        NonNull::new(ptr).map(Doc).ok_or(DsigError::Parse)
    }

    /// Tell libxml2 which attributes are IDs (unprefixed `ID`, as SAML uses), refusing
    /// invalid and duplicate values, and collect every `ds:Signature` element.
    fn register_ids_and_find_signatures(&self) -> Result<Vec<*mut ffi::xmlNode>, DsigError> {
        let doc = self.0.as_ptr();
        let mut signatures = Vec::new();
        // SAFETY: every pointer followed below belongs to the tree of `doc`, which is alive
        // and not modified during the walk except for its ID table (xmlAddID).
        unsafe {
            let root = ffi::xmlDocGetRootElement(doc);
            if root.is_null() {
                return Err(DsigError::Parse);
            }
            let mut stack = vec![root];
            while let Some(node) = stack.pop() {
                let n = &*node;
                if n.type_ != ffi::xmlElementType_XML_ELEMENT_NODE {
                    continue;
                }
                if name_is(n.name, b"Signature") && ns_is(n.ns, NS_DSIG) {
                    signatures.push(node);
                }
                let mut attr = n.properties;
                while !attr.is_null() {
                    let a = &*attr;
                    if a.ns.is_null() && name_is(a.name, b"ID") {
                        let value = CString::new(text_content(a.children).ok_or(DsigError::Id)?)
                            .map_err(|_| DsigError::Id)?;
                        let value = value.as_ptr().cast::<u8>();
                        if ffi::xmlValidateNCName(value, 0) != 0
                            || ffi::xmlAddID(null_mut(), doc, value, attr).is_null()
                        {
                            return Err(DsigError::Id);
                        }
                    }
                    attr = a.next;
                }
                let mut child = n.children;
                while !child.is_null() {
                    stack.push(child);
                    child = (*child).next;
                }
            }
        }
        signatures.reverse();
        Ok(signatures)
    }
}

/// The concatenated text of an attribute's value nodes; `None` if it holds anything but
/// text.
///
/// # Safety
/// `first` is null or the first of a valid sibling list of libxml2 nodes.
unsafe fn text_content(mut first: *mut ffi::xmlNode) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while !first.is_null() {
        let n = &*first;
        if n.type_ != ffi::xmlElementType_XML_TEXT_NODE {
            return None;
        }
        if !n.content.is_null() {
            out.extend_from_slice(CStr::from_ptr(n.content.cast::<c_char>()).to_bytes());
        }
        first = n.next;
    }
    Some(out)
}

/// # Safety
/// `name` is null or a NUL-terminated libxml2 string.
unsafe fn name_is(name: *const u8, expected: &[u8]) -> bool {
    !name.is_null() && CStr::from_ptr(name.cast::<c_char>()).to_bytes() == expected
}

/// # Safety
/// `ns` is null or a valid libxml2 namespace.
unsafe fn ns_is(ns: *mut ffi::xmlNs, href: &[u8]) -> bool {
    !ns.is_null() && name_is((*ns).href, href)
}

/// The DER certificate named by `Signature/KeyInfo/X509Data/X509Certificate`, if any. Only
/// used to order our own keys.
fn certificate_hint(sig: *mut ffi::xmlNode) -> Option<Vec<u8>> {
    // SAFETY: `sig` is an element of a live document; only its subtree is read.
    unsafe {
        let child_named = |parent: *mut ffi::xmlNode, name: &[u8]| {
            let mut c = (*parent).children;
            while !c.is_null() {
                let n = &*c;
                if n.type_ == ffi::xmlElementType_XML_ELEMENT_NODE
                    && name_is(n.name, name)
                    && ns_is(n.ns, NS_DSIG)
                {
                    return Some(c);
                }
                c = n.next;
            }
            None
        };
        let cert = child_named(sig, b"KeyInfo")
            .and_then(|k| child_named(k, b"X509Data"))
            .and_then(|d| child_named(d, b"X509Certificate"))?;
        let mut b64 = text_content((*cert).children)?;
        b64.retain(|b| !b.is_ascii_whitespace());
        base64::engine::general_purpose::STANDARD.decode(b64).ok()
    }
}

/// A libxmlsec1 signature context holding a duplicate of one of our keys.
struct Ctx(NonNull<ffi::_xmlSecDSigCtx>);

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: created by xmlSecDSigCtxCreate and owned here; destroying it also
        // destroys the duplicated key it holds.
        unsafe { ffi::xmlSecDSigCtxDestroy(self.0.as_ptr()) }
    }
}

impl Ctx {
    fn new(key: &Key, allow_sha1: bool) -> Result<Self, DsigError> {
        // SAFETY: a NULL keys manager is allowed (the key is set directly below).
        let ctx = NonNull::new(unsafe { ffi::xmlSecDSigCtxCreate(null_mut()) })
            .map(Ctx)
            .ok_or(DsigError::Internal)?;
        let p = ctx.0.as_ptr();
        // SAFETY: `p` is a live context owned by `ctx`; the transform ids are libxmlsec1's
        // static klasses; the duplicated key becomes the context's (freed with it).
        unsafe {
            (*p).flags |= ffi::XMLSEC_DSIG_FLAGS_STORE_SIGNEDINFO_REFERENCES;
            (*p).enabledReferenceUris =
                (ffi::xmlSecTransformUriTypeEmpty | ffi::xmlSecTransformUriTypeSameDocument) as _;
            let c14n = [
                ffi::xmlSecTransformExclC14NGetKlass(),
                ffi::xmlSecTransformExclC14NWithCommentsGetKlass(),
                ffi::xmlSecTransformInclC14NGetKlass(),
                ffi::xmlSecTransformInclC14NWithCommentsGetKlass(),
                ffi::xmlSecTransformInclC14N11GetKlass(),
                ffi::xmlSecTransformInclC14N11WithCommentsGetKlass(),
            ];
            let mut digests = vec![
                ffi::xmlSecOpenSSLTransformSha256GetKlass(),
                ffi::xmlSecOpenSSLTransformSha384GetKlass(),
                ffi::xmlSecOpenSSLTransformSha512GetKlass(),
            ];
            let mut methods = vec![
                ffi::xmlSecOpenSSLTransformRsaSha256GetKlass(),
                ffi::xmlSecOpenSSLTransformRsaSha384GetKlass(),
                ffi::xmlSecOpenSSLTransformRsaSha512GetKlass(),
                ffi::xmlSecOpenSSLTransformEcdsaSha256GetKlass(),
                ffi::xmlSecOpenSSLTransformEcdsaSha384GetKlass(),
                ffi::xmlSecOpenSSLTransformEcdsaSha512GetKlass(),
            ];
            if allow_sha1 {
                digests.push(ffi::xmlSecOpenSSLTransformSha1GetKlass());
                methods.push(ffi::xmlSecOpenSSLTransformRsaSha1GetKlass());
            }
            let enveloped = [ffi::xmlSecTransformEnvelopedGetKlass()];
            let reference = c14n.iter().chain(&digests).chain(&enveloped);
            for id in reference {
                if ffi::xmlSecDSigCtxEnableReferenceTransform(p, *id) < 0 {
                    return Err(DsigError::Internal);
                }
            }
            for id in c14n.iter().chain(&methods) {
                if ffi::xmlSecDSigCtxEnableSignatureTransform(p, *id) < 0 {
                    return Err(DsigError::Internal);
                }
            }
            let dup = ffi::xmlSecKeyDuplicate(key.ptr.as_ptr());
            if dup.is_null() {
                return Err(DsigError::Internal);
            }
            (*p).signKey = dup;
        }
        Ok(ctx)
    }

    /// Whether the signature verifies with this context's key. A processing error (a
    /// refused algorithm, a reference that does not resolve, a key of the wrong type)
    /// counts as "does not verify".
    ///
    /// # Safety
    /// `sig` is a `ds:Signature` element of a live document.
    unsafe fn verify(&self, sig: *mut ffi::xmlNode) -> bool {
        let p = self.0.as_ptr();
        ffi::xmlSecDSigCtxVerify(p, sig) == 0
            && (*p).status == ffi::xmlSecDSigStatus_xmlSecDSigStatusSucceeded
    }

    /// Append the pre-digest bytes of each reference of a verified signature.
    fn predigests(&self, out: &mut Vec<String>) -> Result<(), DsigError> {
        let p = self.0.as_ptr();
        // SAFETY: the context is alive and its verification has completed; the list holds
        // xmlSecDSigReferenceCtx pointers and the buffers belong to them.
        unsafe {
            let list = std::ptr::addr_of_mut!((*p).signedInfoReferences);
            let count = ffi::xmlSecPtrListGetSize(list);
            if count == 0 {
                return Err(DsigError::Invalid);
            }
            for i in 0..count {
                let r = ffi::xmlSecPtrListGetItem(list, i).cast::<ffi::_xmlSecDSigReferenceCtx>();
                if r.is_null() || (*r).status != ffi::xmlSecDSigStatus_xmlSecDSigStatusSucceeded {
                    return Err(DsigError::Invalid);
                }
                let buf = ffi::xmlSecDSigReferenceCtxGetPreDigestBuffer(r);
                if buf.is_null() {
                    return Err(DsigError::Invalid);
                }
                let data = ffi::xmlSecBufferGetData(buf);
                let size = ffi::xmlSecBufferGetSize(buf) as usize;
                let bytes = if size == 0 {
                    &[][..]
                } else if data.is_null() {
                    return Err(DsigError::Invalid);
                } else {
                    std::slice::from_raw_parts(data, size)
                };
                out.push(
                    std::str::from_utf8(bytes)
                        .map_err(|_| DsigError::Invalid)?
                        .to_owned(),
                );
            }
        }
        Ok(())
    }
}
