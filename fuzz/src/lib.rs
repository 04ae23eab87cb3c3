//! What the fuzz targets share: the real Entra artefacts of `tests/fixtures/entra` and the
//! SP/IdP context they were issued in, a clock stopped inside that response's window, a
//! development IdP for targets that need a signature the fuzzer cannot forge, and one
//! tokio runtime for the async entry points.
//!
//! Everything here is built once per process (`OnceLock`); each target's input only
//! decides what is parsed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "fuzz harness set-up"
)]

use chrono::{DateTime, Utc};
use ssogate::saml::{
    load_certificate, DevIdp, IdpSettings, ResponseValidator, SigningKey, SpSettings,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The real Entra response (assertion signed, RSA-SHA256, exclusive c14n).
pub const ENTRA_RESPONSE: &str =
    include_str!("../../tests/fixtures/entra/response-assertion-signed.xml");
/// The certificate that signed it.
pub const ENTRA_CERT_PEM: &[u8] = include_bytes!("../../tests/fixtures/entra/signing-cert.pem");
/// A real Entra tenant federation metadata document (BOM, signed, three certificates).
pub const ENTRA_METADATA: &[u8] =
    include_bytes!("../../tests/fixtures/entra/tenant-federation-metadata.xml");

/// The context the Entra response was issued in (tests/fixtures/entra/README.md).
pub const ENTRA_SP: &str = "https://devpg.tercen.com/_service/sso/auth/saml";
pub const ENTRA_IDP: &str = "https://sts.windows.net/5b5c94c6-14cf-42da-85bc-4e08722b253b/";
pub const ENTRA_SSO: &str =
    "https://login.microsoftonline.com/5b5c94c6-14cf-42da-85bc-4e08722b253b/saml2";

/// An instant inside the Entra response's validity window.
pub fn entra_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2022-02-23T17:50:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// The instant the development-IdP targets run at (their seeds are dated around it).
pub fn dev_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn entra_cert_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| load_certificate(ENTRA_CERT_PEM).unwrap())
}

pub fn entra_idp() -> IdpSettings {
    IdpSettings {
        entity_id: ENTRA_IDP.into(),
        sso_url: ENTRA_SSO.into(),
        slo_url: Some(ENTRA_SSO.into()),
        signing_certs: vec![entra_cert_der().to_vec()],
    }
}

pub fn entra_sp() -> SpSettings {
    SpSettings {
        entity_id: ENTRA_SP.into(),
        acs_url: ENTRA_SP.into(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    }
}

/// The ACS validator of an app configured for the Entra fixture (the defaults: assertion
/// signature required, SHA-256+, 3 min skew, 256 KiB).
pub fn entra_validator() -> &'static ResponseValidator {
    static V: OnceLock<ResponseValidator> = OnceLock::new();
    V.get_or_init(|| {
        quiet();
        ResponseValidator::new(entra_sp(), &entra_idp())
    })
}

/// The SP of the development-IdP targets.
pub fn dev_sp() -> SpSettings {
    SpSettings {
        entity_id: "https://wiki.example.com/saml".into(),
        acs_url: "https://wiki.example.com/saml/acs".into(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    }
}

pub const DEV_IDP: &str = "https://idp.example.com/";

/// A development IdP (RSA-2048, generated once per process): the harness signs with it
/// what the fuzzer wrote, so the checks after the signature are reached.
pub fn dev_idp() -> &'static DevIdp {
    static IDP: OnceLock<DevIdp> = OnceLock::new();
    IDP.get_or_init(|| {
        quiet();
        DevIdp::generate(DEV_IDP).unwrap()
    })
}

/// The SP's decryption key (RSA-2048, generated once per process).
pub fn dev_sp_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        SigningKey::from_pkey(openssl::pkey::PKey::from_rsa(rsa).unwrap()).unwrap()
    })
}

/// libxmlsec1's errors go to `tracing` (no subscriber here: silent) instead of stderr.
pub fn quiet() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(ssogate::saml::route_xmlsec_errors_to_tracing);
}

/// One current-thread runtime (with time: SCIM's write retries sleep) for the whole run.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

/// A private directory for the files a config names, one per process
/// (`$TMPDIR/ssogate-fuzz-<tag>-<pid>`); those of processes that are gone are removed first
/// (libFuzzer exits without running destructors).
pub fn private_dir(tag: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = std::env::temp_dir();
    let prefix = format!("ssogate-fuzz-{tag}-");
    for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let d = tmp.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

/// Split `data` at the first `sep` (the fuzzer learns separators from the seeds).
pub fn split_once<'a>(data: &'a [u8], sep: &[u8]) -> (&'a [u8], Option<&'a [u8]>) {
    match data.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (&data[..i], Some(&data[i + sep.len()..])),
        None => (data, None),
    }
}

/// A cheap, deterministic coin from the input (so a reproducer replays the same way).
pub fn coin(data: &[u8], one_in: u32) -> bool {
    let h = data.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h % one_in == 0
}
