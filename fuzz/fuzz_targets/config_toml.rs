//! The configuration: TOML text -> `FileConfig` (serde, unknown keys refused) -> validated
//! `Config` (`config::from_str`, every problem at once) -> `Gateway::build` (IdP metadata
//! and certificates, routes, header mappings, JWT keys), what `check-config` and `run` do.
//!
//! Files named in the TOML resolve in a private directory made once per process holding
//! what `config/*.toml` name (`entra-metadata.xml`, `example-idp.pem`,
//! `example-idp-base64.cer`, `sp-key.pem`, `sp-cert.pem`, `scim-token`) plus `idp.pem` (the
//! Entra fixture's certificate). A TOML with an absolute path or `..` in any string is only
//! parsed (the harness never reads files outside that directory, nor devices).
//!
//! Asserts: no panic; the result is deterministic; an error report never echoes a secret
//! read from a file (the SCIM token, the SP key); a config that validates builds a gateway
//! or reports why, without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ssogate::config::{self, FileConfig};
use ssogate::gateway::Gateway;
use ssogate::saml::FixedClock;
use ssogate_fuzz::{dev_now, dev_sp_key, private_dir, quiet, ENTRA_CERT_PEM};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

const SCIM_TOKEN: &str = "fuzz-scim-token-3b1f9d2c7a6e4058b1c2d3e4f5a69788";

fn write(dir: &Path, name: &str, bytes: &[u8], private: bool) {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let mode = if private { 0o600 } else { 0o644 };
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn key_pem() -> &'static [u8] {
    static PEM: OnceLock<Vec<u8>> = OnceLock::new();
    PEM.get_or_init(|| dev_sp_key().pkey().private_key_to_pem_pkcs8().unwrap())
}

fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        quiet();
        let d = private_dir("config");
        write(
            &d,
            "entra-metadata.xml",
            include_bytes!("../../config/entra-metadata.xml"),
            false,
        );
        write(
            &d,
            "example-idp.pem",
            include_bytes!("../../config/example-idp.pem"),
            false,
        );
        write(
            &d,
            "example-idp-base64.cer",
            include_bytes!("../../config/example-idp-base64.cer"),
            false,
        );
        write(&d, "idp.pem", ENTRA_CERT_PEM, false);
        write(&d, "scim-token", format!("{SCIM_TOKEN}\n").as_bytes(), true);
        write(&d, "sp-key.pem", key_pem(), true);
        let cert = ssogate::saml::devidp::self_signed_certificate(dev_sp_key().pkey()).unwrap();
        write(&d, "sp-cert.pem", &cert.to_pem().unwrap(), false);
        d
    })
}

/// Every string in the document is a plain relative name (no absolute path, no `..`).
fn confined(v: &toml::Value) -> bool {
    match v {
        toml::Value::String(s) => !s.starts_with('/') && !s.contains("..") && !s.contains('\0'),
        toml::Value::Array(a) => a.iter().all(confined),
        toml::Value::Table(t) => t
            .iter()
            .all(|(k, v)| confined(&toml::Value::String(k.clone())) && confined(v)),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = dir();
    let parsed: Result<FileConfig, _> = toml::from_str(text);
    let Ok(value) = toml::from_str::<toml::Value>(text) else {
        assert!(
            parsed.is_err(),
            "FileConfig parses what toml::Value does not"
        );
        return;
    };
    if parsed.is_err() || !confined(&value) {
        return;
    }
    let env = HashMap::<String, String>::new();
    let first = config::from_str(text, base, &env);
    let second = config::from_str(text, base, &env);
    match (&first, &second) {
        (Err(a), Err(b)) => {
            assert_eq!(a.0, b.0, "not deterministic");
            let report = a.to_string();
            assert!(
                !report.contains(SCIM_TOKEN),
                "the SCIM token echoed: {report}"
            );
            let key = String::from_utf8_lossy(key_pem());
            for line in key.lines().filter(|l| !l.starts_with("-----")) {
                assert!(!report.contains(line), "the SP key echoed");
            }
        }
        (Ok(_), Ok(_)) => {}
        _ => panic!("validation not deterministic"),
    }
    if let Ok(config) = first {
        let _ = Gateway::build(&config, Arc::new(FixedClock(dev_now())));
    }
});
