//! Every certificate the gateway trusts or presents, and when each expires: IdP signing
//! certificates (per app, as currently trusted), pinned metadata signers, the SP
//! certificate, the public listener's TLS certificate and the CAs trusted for an
//! upstream. Published as `ssogate_certificate_expiry_timestamp_seconds{kind, app,
//! thumbprint}`, logged at 30 and 7 days, and judged at start-up: `check-config` and
//! `run` refuse an expired one. An IdP's expired certificate is refused only when the IdP
//! has no valid one left and `[app.idp] allow_expired_certificate` is not set (Entra keeps
//! signing with a certificate past its date, and its tenant metadata lists expired keys).
//!
//! JWT signing keys are bare keys, with no date: nothing to watch.

use super::apps::App;
use crate::metrics::METRICS;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use std::sync::Arc;

/// Warn this many days ahead.
pub const WARN_DAYS: i64 = 30;
/// And loudly from this many days ahead.
pub const URGENT_DAYS: i64 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    IdpSigning,
    MetadataSigner,
    Sp,
    ListenerTls,
    UpstreamCa,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::IdpSigning => "idp_signing",
            Kind::MetadataSigner => "idp_metadata_signer",
            Kind::Sp => "sp",
            Kind::ListenerTls => "listener_tls",
            Kind::UpstreamCa => "upstream_ca",
        }
    }
}

/// One certificate and its dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    pub kind: Kind,
    /// The app it belongs to; empty for the listener.
    pub app: String,
    /// SHA-1 of the DER, upper-case hex: what Entra's portal shows as "Thumbprint".
    pub thumbprint: String,
    pub subject: String,
    /// Unix time of notAfter.
    pub not_after: i64,
}

/// Where a certificate stands at `now` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Valid,
    /// Within [`WARN_DAYS`]; whole days left.
    Expiring {
        days: i64,
    },
    Expired,
}

impl Cert {
    /// Read a DER certificate; `None` if it is not one (checked elsewhere).
    pub fn from_der(kind: Kind, app: &str, der: &[u8]) -> Option<Cert> {
        let x = X509::from_der(der).ok()?;
        let epoch = Asn1Time::from_unix(0).ok()?;
        let diff = epoch.diff(x.not_after()).ok()?;
        let not_after = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
        let thumbprint = x
            .digest(MessageDigest::sha1())
            .ok()?
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let subject = subject_of(&x);
        Some(Cert {
            kind,
            app: app.to_owned(),
            thumbprint,
            subject,
            not_after,
        })
    }

    pub fn standing(&self, now: i64) -> Standing {
        if self.not_after <= now {
            Standing::Expired
        } else {
            let days = (self.not_after - now) / 86_400;
            if days < WARN_DAYS {
                Standing::Expiring { days }
            } else {
                Standing::Valid
            }
        }
    }

    /// "app \"wiki\": sp certificate CN=… (thumbprint …)".
    pub fn describe(&self) -> String {
        let owner = if self.app.is_empty() {
            String::new()
        } else {
            format!("app \"{}\": ", self.app)
        };
        format!(
            "{owner}{} certificate \"{}\" (thumbprint {})",
            self.kind.label(),
            self.subject,
            self.thumbprint
        )
    }

    fn date(&self) -> String {
        chrono::DateTime::from_timestamp(self.not_after, 0)
            .map_or_else(|| self.not_after.to_string(), |d| d.to_rfc3339())
    }
}

/// A certificate's subject as its values joined ("contoso.example, Contoso Ltd").
pub fn subject_of(cert: &openssl::x509::X509Ref) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| e.data().to_string().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every certificate of these apps (IdP keys as trusted right now) and the listener.
pub fn inventory(apps: &[Arc<App>], listener: &[Vec<u8>]) -> Vec<Cert> {
    let mut out = Vec::new();
    for app in apps {
        let trust = app.trust();
        let mut add = |kind, der: &[u8]| out.extend(Cert::from_der(kind, &app.name, der));
        for der in &trust.settings.signing_certs {
            add(Kind::IdpSigning, der);
        }
        for der in &app.metadata_signers {
            add(Kind::MetadataSigner, der);
        }
        if let Some(keys) = &app.sp_keys {
            add(Kind::Sp, &keys.cert_der);
        }
        for der in &app.upstream.ca {
            add(Kind::UpstreamCa, der);
        }
    }
    for der in listener {
        out.extend(Cert::from_der(Kind::ListenerTls, "", der));
    }
    out
}

/// What start-up makes of the certificates at `now`: problems that refuse the config,
/// and warnings. `allow_expired_idp(app)`: that app's IdP may sign with expired ones.
pub fn judge(
    certs: &[Cert],
    now: i64,
    allow_expired_idp: impl Fn(&str) -> bool,
) -> (Vec<String>, Vec<String>) {
    let mut refused = Vec::new();
    let mut warnings = Vec::new();
    for c in certs {
        match c.standing(now) {
            Standing::Valid => {}
            Standing::Expiring { days } => warnings.push(format!(
                "{} expires in {days} day(s), on {}",
                c.describe(),
                c.date()
            )),
            Standing::Expired if c.kind == Kind::IdpSigning => {
                let others_valid = certs.iter().any(|o| {
                    o.kind == Kind::IdpSigning
                        && o.app == c.app
                        && o.standing(now) != Standing::Expired
                });
                let note = format!("{} expired on {}", c.describe(), c.date());
                if others_valid || allow_expired_idp(&c.app) {
                    warnings.push(note);
                } else {
                    refused.push(format!(
                        "{note}, and the IdP has no valid one (upload the new certificate or metadata; if the IdP really still signs with it, set [app.idp] allow_expired_certificate = true)"
                    ));
                }
            }
            Standing::Expired => refused.push(format!("{} expired on {}", c.describe(), c.date())),
        }
    }
    (refused, warnings)
}

/// Replace the expiry gauge's series with these certificates.
pub fn publish(certs: &[Cert]) {
    let gauge = &METRICS.certificate_expiry;
    gauge.reset();
    for c in certs {
        gauge
            .with_label_values(&[c.kind.label(), c.app.as_str(), c.thumbprint.as_str()])
            .set(c.not_after);
    }
}

/// Log each certificate within [`WARN_DAYS`] (an error within [`URGENT_DAYS`] or past).
pub fn log_standing(certs: &[Cert], now: i64) {
    for c in certs {
        match c.standing(now) {
            Standing::Valid => {}
            Standing::Expiring { days } if days >= URGENT_DAYS => tracing::warn!(
                kind = c.kind.label(), app = %c.app, thumbprint = %c.thumbprint, days,
                "certificate expires within {WARN_DAYS} days: {}", c.describe()
            ),
            Standing::Expiring { days } => tracing::error!(
                kind = c.kind.label(), app = %c.app, thumbprint = %c.thumbprint, days,
                "certificate expires within {URGENT_DAYS} days: {}", c.describe()
            ),
            Standing::Expired => tracing::error!(
                kind = c.kind.label(), app = %c.app, thumbprint = %c.thumbprint,
                "certificate expired: {}", c.describe()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::bn::BigNum;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder};

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    fn der(cn: &str, not_after: i64) -> Vec<u8> {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(NOW - 400 * DAY).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(not_after).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    }

    fn cert(kind: Kind, app: &str, not_after: i64) -> Cert {
        Cert::from_der(kind, app, &der("cert.contoso.example", not_after)).unwrap()
    }

    #[test]
    fn reads_the_date_subject_and_thumbprint() {
        let d = der("idp.contoso.example", NOW + 10 * DAY);
        let c = Cert::from_der(Kind::Sp, "wiki", &d).unwrap();
        assert_eq!(c.not_after, NOW + 10 * DAY);
        assert_eq!(c.subject, "idp.contoso.example");
        let sha1 = openssl::hash::hash(MessageDigest::sha1(), &d).unwrap();
        let hex: String = sha1.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(c.thumbprint, hex);
        assert_eq!(c.thumbprint.len(), 40);
        assert!(Cert::from_der(Kind::Sp, "wiki", b"not a certificate").is_none());
    }

    #[test]
    fn stands_by_days_left() {
        let at = |secs| cert(Kind::Sp, "wiki", NOW + secs).standing(NOW);
        assert_eq!(at(400 * DAY), Standing::Valid);
        assert_eq!(at(30 * DAY), Standing::Valid);
        assert_eq!(at(30 * DAY - 1), Standing::Expiring { days: 29 });
        assert_eq!(at(6 * DAY + 5), Standing::Expiring { days: 6 });
        assert_eq!(at(1), Standing::Expiring { days: 0 });
        assert_eq!(at(0), Standing::Expired);
        assert_eq!(at(-DAY), Standing::Expired);
    }

    #[test]
    fn refuses_expired_certificates_but_an_idp_with_a_valid_one_or_the_override() {
        let sp_expired = cert(Kind::Sp, "wiki", NOW - DAY);
        let (refused, warnings) = judge(std::slice::from_ref(&sp_expired), NOW, |_| true);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].contains("app \"wiki\": sp certificate"),
            "{refused:?}"
        );
        assert!(warnings.is_empty());

        // An IdP's only certificate, expired: refused, with the way out named ...
        let idp_old = cert(Kind::IdpSigning, "wiki", NOW - DAY);
        let (refused, _) = judge(std::slice::from_ref(&idp_old), NOW, |_| false);
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].contains("allow_expired_certificate"),
            "{refused:?}"
        );
        // ... allowed by the override, as a warning ...
        let (refused, warnings) = judge(std::slice::from_ref(&idp_old), NOW, |app| app == "wiki");
        assert!(refused.is_empty());
        assert_eq!(warnings.len(), 1);
        // ... and only a warning beside a valid key (Entra metadata lists old keys).
        let idp_new = cert(Kind::IdpSigning, "wiki", NOW + 900 * DAY);
        let (refused, warnings) = judge(&[idp_old.clone(), idp_new], NOW, |_| false);
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(warnings.len(), 1);
        // Another app's valid key does not count.
        let other = cert(Kind::IdpSigning, "crm", NOW + 900 * DAY);
        let (refused, _) = judge(&[idp_old, other], NOW, |_| false);
        assert_eq!(refused.len(), 1);

        let soon = cert(Kind::ListenerTls, "", NOW + 3 * DAY);
        let (refused, warnings) = judge(&[soon], NOW, |_| false);
        assert!(refused.is_empty());
        assert!(
            warnings[0].starts_with("listener_tls certificate"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("expires in 3 day(s)"), "{warnings:?}");
    }
}
