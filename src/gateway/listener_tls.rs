//! The public listener's certificate chain and key, read from the config's files when the
//! gateway is built (at start and on every reload). The listener presents the one of the
//! gateway serving at handshake time, so a renewed certificate (certbot, cert-manager, a
//! company CA) takes effect on `ssogate reload` / SIGHUP with no connection refused; an
//! unusable pair refuses the reload and the running one stays.

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use std::path::Path;

/// A certificate chain (leaf first) and the private key of its leaf.
pub struct ListenerIdentity {
    pub leaf: X509,
    /// Intermediates sent after the leaf, in file order.
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
}

impl std::fmt::Debug for ListenerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerIdentity")
            .field("subject", &super::certs::subject_of(&self.leaf))
            .field("not_after", &self.leaf.not_after().to_string())
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ListenerIdentity {
    /// Reads and checks the pair; every problem, each naming its setting and file.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<ListenerIdentity, Vec<String>> {
        let mut problems = Vec::new();
        let certs = match std::fs::read(cert_file) {
            Ok(pem) => match X509::stack_from_pem(&pem) {
                Ok(v) if !v.is_empty() => Some(v),
                _ => {
                    problems.push(format!(
                        "listen.tls_cert_file {}: no PEM certificate",
                        cert_file.display()
                    ));
                    None
                }
            },
            Err(e) => {
                problems.push(format!("listen.tls_cert_file {}: {e}", cert_file.display()));
                None
            }
        };
        let key = match std::fs::read(key_file) {
            // The key's parse error is not echoed: it could quote the file.
            Ok(pem) => match PKey::private_key_from_pem(&pem) {
                Ok(k) => Some(k),
                Err(_) => {
                    problems.push(format!(
                        "listen.tls_key_file {}: not a PEM private key",
                        key_file.display()
                    ));
                    None
                }
            },
            Err(e) => {
                problems.push(format!("listen.tls_key_file {}: {e}", key_file.display()));
                None
            }
        };
        let (Some(mut certs), Some(key)) = (certs, key) else {
            return Err(problems);
        };
        let leaf = certs.remove(0);
        let matches = leaf
            .public_key()
            .map(|public| public.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(vec![format!(
                "listen.tls_key_file {}: not the key of the first certificate in listen.tls_cert_file {} (the leaf comes first, then its intermediates)",
                key_file.display(),
                cert_file.display()
            )]);
        }
        Ok(ListenerIdentity {
            leaf,
            chain: certs,
            key,
        })
    }
}

/// The listener's leaf in DER, as the certificate inventory takes it (none without TLS).
pub fn leaves(id: Option<&ListenerIdentity>) -> Vec<Vec<u8>> {
    id.and_then(|id| id.leaf.to_der().ok())
        .into_iter()
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    use super::*;
    use openssl::rsa::Rsa;

    /// A certificate (the development IdP's self-signed kind) and its key, as PEM.
    fn pair() -> (Vec<u8>, Vec<u8>) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let cert = crate::saml::devidp::self_signed_certificate(&key).unwrap();
        (
            cert.to_pem().unwrap(),
            key.private_key_to_pem_pkcs8().unwrap(),
        )
    }

    #[test]
    fn a_matching_pair_loads_with_its_chain_and_hides_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (leaf, key) = pair();
        let (intermediate, _) = pair();
        let mut chain = leaf.clone();
        chain.extend(&intermediate);
        std::fs::write(dir.path().join("c.pem"), &chain).unwrap();
        std::fs::write(dir.path().join("k.pem"), &key).unwrap();
        let id =
            ListenerIdentity::load(&dir.path().join("c.pem"), &dir.path().join("k.pem")).unwrap();
        assert_eq!(id.chain.len(), 1);
        let shown = format!("{id:?}");
        assert!(shown.contains("ssogate development IdP"), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (leaf, _) = pair();
        let (_, other_key) = pair();
        std::fs::write(dir.path().join("c.pem"), &leaf).unwrap();
        std::fs::write(dir.path().join("k.pem"), &other_key).unwrap();
        let e = ListenerIdentity::load(&dir.path().join("c.pem"), &dir.path().join("k.pem"))
            .unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].contains("not the key of the first certificate"),
            "{e:?}"
        );
    }

    #[test]
    fn every_problem_of_the_pair_is_named_at_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), "not a certificate").unwrap();
        let e = ListenerIdentity::load(&dir.path().join("c.pem"), &dir.path().join("missing"))
            .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("listen.tls_cert_file"), "{e:?}");
        assert!(e[1].contains("listen.tls_key_file"), "{e:?}");
    }
}
