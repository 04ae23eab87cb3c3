//! A private PKI made in the test (a CA, a server certificate for `localhost`, a client
//! certificate) and a `redis-server` speaking only TLS with ACL users, for the
//! `rediss://` tests. Debian's redis-server is built with TLS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step should panic with its message"
)]

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ACL user the TLS server knows (the `default` user is off).
pub const USER: &str = "ssogate";
pub const PASSWORD: &str = "a-long-acl-password-for-tests";

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn name(cn: &str) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

/// A certificate for `cn`, signed by `issuer` (self-signed when `None`).
fn issue(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    ca: bool,
    dns: Option<&str>,
    client: bool,
) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_slice(&rand::random::<[u8; 8]>()).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name(cn)).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
    }
    if let Some(dns) = dns {
        let san = SubjectAlternativeName::new()
            .dns(dns)
            .build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
            .unwrap();
    }
    if client {
        b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
            .unwrap();
    }
    let (issuer_name, signer) = match issuer {
        Some((c, k)) => (c.subject_name().to_owned().unwrap(), k),
        None => (name(cn), key),
    };
    b.set_issuer_name(&issuer_name).unwrap();
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

/// CA, server (`localhost`) and client certificates, as PEM files in a temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: Vec<u8>,
    pub client_cert_pem: Vec<u8>,
    pub client_key_pem: Vec<u8>,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = key();
        let ca = issue("ssogate test CA", &ca_key, None, true, None, false);
        let server_key = key();
        let server = issue(
            "localhost",
            &server_key,
            Some((&ca, &ca_key)),
            false,
            Some("localhost"),
            false,
        );
        let client_key = key();
        let client = issue(
            "ssogate",
            &client_key,
            Some((&ca, &ca_key)),
            false,
            None,
            true,
        );
        let write = |n: &str, b: &[u8]| std::fs::write(dir.path().join(n), b).unwrap();
        let ca_pem = ca.to_pem().unwrap();
        write("ca.pem", &ca_pem);
        write("server.pem", &server.to_pem().unwrap());
        write(
            "server.key",
            &server_key.private_key_to_pem_pkcs8().unwrap(),
        );
        Pki {
            ca_pem,
            client_cert_pem: client.to_pem().unwrap(),
            client_key_pem: client_key.private_key_to_pem_pkcs8().unwrap(),
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Another CA, which signed nothing the server presents.
    pub fn stranger_ca() -> Vec<u8> {
        let k = key();
        issue("another CA", &k, None, true, None, false)
            .to_pem()
            .unwrap()
    }
}

/// A redis-server listening only with TLS on a free loopback port.
pub struct TlsRedis {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    /// `client_certs`: "yes" (mutual TLS required), "optional" or "no". The user
    /// [`USER`] may do anything.
    pub fn start(pki: &Pki, client_certs: &str) -> TlsRedis {
        Self::start_with_acl(pki, client_certs, &["~*", "&*", "+@all"])
    }

    /// As [`Self::start`], with [`USER`]'s ACL rules (after `on >password`) given.
    pub fn start_with_acl(pki: &Pki, client_certs: &str, rules: &[&str]) -> TlsRedis {
        let mut last = String::new();
        for _ in 0..5 {
            let port = super::ports::free_port();
            match Self::try_start(pki, client_certs, rules, port) {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("TLS redis-server did not start: {last}");
    }

    fn try_start(
        pki: &Pki,
        client_certs: &str,
        rules: &[&str],
        port: u16,
    ) -> Result<TlsRedis, String> {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("redis.log");
        let p = |n: &str| pki.path(n).display().to_string();
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &p("server.pem")])
            .args(["--tls-key-file", &p("server.key")])
            .args(["--tls-ca-cert-file", &p("ca.pem")])
            .args(["--tls-auth-clients", client_certs])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--user", "default", "off"])
            .args(["--user", USER, "on", &format!(">{PASSWORD}")])
            .args(rules)
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "exited {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("not listening after 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(TlsRedis {
            port,
            child,
            _dir: dir,
        })
    }

    /// `rediss://HOST:PORT/0` (the certificate names `localhost` only).
    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}/0", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ACL rules of the README's `user ssogate on >PASSWORD …` line (after the password).
pub fn documented_acl_rules() -> Vec<String> {
    readme_acl_line("user ssogate on >PASSWORD ")
}

/// The rules of the README's ACL line for ssogate's user on the Sentinels.
pub fn documented_sentinel_acl_rules() -> Vec<String> {
    readme_acl_line("user ssogate-sentinel on >PASSWORD ")
}

fn readme_acl_line(start: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/redis.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("docs/redis.md has no ACL line starting {start:?}"));
    line[start.len()..]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Write `bytes` to `dir/name`, private (mode 600), as an admin keeps keys.
pub fn private_file(dir: &Path, name: &str, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
}
