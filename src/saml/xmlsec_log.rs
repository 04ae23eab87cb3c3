//! libxmlsec1 reports every failed check (a refused signature, a bad digest) by printing
//! lines to stderr. A gateway that refuses hostile input all day must not spray
//! unstructured text into its logs, so route those reports through `tracing` instead
//! (target `ssogate::xmlsec`, level debug): the refusal itself is already logged, with
//! its reason, by the ACS.

use std::ffi::{c_char, c_int, CStr};

type XmlSecErrorsCallback = unsafe extern "C" fn(
    file: *const c_char,
    line: c_int,
    func: *const c_char,
    error_object: *const c_char,
    error_subject: *const c_char,
    reason: c_int,
    msg: *const c_char,
);

extern "C" {
    // libxmlsec1 (linked through samael): replaces the default stderr reporter.
    fn xmlSecErrorsSetCallback(callback: Option<XmlSecErrorsCallback>);
}

/// # Safety
/// Called by libxmlsec1 with NUL-terminated strings or null pointers.
unsafe extern "C" fn to_tracing(
    _file: *const c_char,
    _line: c_int,
    func: *const c_char,
    error_object: *const c_char,
    error_subject: *const c_char,
    reason: c_int,
    msg: *const c_char,
) {
    // SAFETY: libxmlsec1 passes valid C strings or null; `text` checks for null.
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let (func, object, subject, msg) = (
        text(func),
        text(error_object),
        text(error_subject),
        text(msg),
    );
    // Never unwind into C.
    let _ = std::panic::catch_unwind(|| {
        tracing::debug!(target: "ssogate::xmlsec", func, object, subject, reason, msg);
    });
}

/// Initialise libxmlsec1 (through samael, so that it is initialised exactly once) and
/// install the reporter, once per process; later calls do nothing. `dsig` relies on it.
///
/// libxmlsec1-openssl installs its own stderr reporter when samael first initialises
/// the library (lazily, on first use), so initialise it here first: load a throwaway
/// certificate and verify a document without a signature (which fails quietly).
pub fn route_xmlsec_errors_to_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use samael::crypto::{CertificateDer, Crypto, CryptoProvider};
        // samael initialises before loading the key, so an empty one (which fails to load,
        // noisily) still initialises the library if the throwaway cannot be made.
        let der = throwaway_certificate().unwrap_or_default();
        let _ = Crypto::verify_signed_xml("<a/>", &CertificateDer::from(der), None);
        // SAFETY: sets a global function pointer inside libxmlsec1; `to_tracing` has the
        // exact C signature of xmlSecErrorsCallback and is valid for the process lifetime.
        unsafe { xmlSecErrorsSetCallback(Some(to_tracing)) }
    });
}

fn throwaway_certificate() -> Result<Vec<u8>, openssl::error::ErrorStack> {
    use openssl::{ec, hash, nid::Nid, pkey::PKey, x509};
    let group = ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(ec::EcKey::generate(&group)?)?;
    let mut b = x509::X509::builder()?;
    b.set_pubkey(&key)?;
    b.set_not_before(openssl::asn1::Asn1Time::days_from_now(0)?.as_ref())?;
    b.set_not_after(openssl::asn1::Asn1Time::days_from_now(1)?.as_ref())?;
    b.sign(&key, hash::MessageDigest::sha256())?;
    b.build().to_der()
}
