//! Session IDs. We never panic on hostile input: `parse` accepts only the exact
//! shape `generate` produces and rejects everything else with `None`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Number of random bytes in a session ID.
const ID_BYTES: usize = 32;
/// Length of the base64url (unpadded) form of [`ID_BYTES`] bytes.
const ENCODED_LEN: usize = 43;

/// Session ID: 32 random bytes, base64url without padding in the cookie.
///
/// `Debug` is redacted and there is no `Display`: the value is a bearer secret.
/// Equality is constant-time.
#[derive(Clone)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh ID from the thread-local CSPRNG (ChaCha, seeded from the OS).
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Strict parse of a cookie value: exactly 43 base64url characters that decode
    /// (canonically) to 32 bytes.
    pub fn parse(cookie_value: &str) -> Option<Self> {
        let bytes = cookie_value.as_bytes();
        // Branch-free over the bytes (vectorises): every one in the base64url alphabet.
        if bytes.len() != ENCODED_LEN
            || !bytes.iter().fold(true, |ok, &b| {
                ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_'))
            })
        {
            return None;
        }
        // 43 characters carry 258 bits for 32 bytes: the last character's two low bits
        // are padding, and must be zero (canonical), so one ID has exactly one spelling.
        // Checked directly rather than by decoding: this runs on every request.
        let last = bytes[ENCODED_LEN - 1];
        let sextet = match last {
            b'A'..=b'Z' => last - b'A',
            b'a'..=b'z' => last - b'a' + 26,
            b'0'..=b'9' => last - b'0' + 52,
            b'-' => 62,
            _ => 63,
        };
        (sextet & 0b11 == 0).then(|| Self(cookie_value.to_owned()))
    }

    /// The value to put in the cookie.
    pub fn as_cookie_value(&self) -> &str {
        &self.0
    }

    /// What the store keys on: lowercase hex SHA-256 of the cookie value (the 43
    /// characters), so a leaked store dump holds no usable cookie.
    pub fn store_key(&self) -> String {
        // Into a buffer, then one String: hex::encode builds its String char by char, and
        // this runs on every request.
        let mut out = [0u8; 64];
        // Only fails on a wrong length: 32 bytes -> 64 digits.
        let _ = hex::encode_to_slice(Sha256::digest(self.0.as_bytes()), &mut out);
        std::str::from_utf8(&out)
            .map(str::to_owned)
            .unwrap_or_default()
    }
}

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SessionId {}

/// Consistent with the constant-time equality: both look at the same bytes.
impl std::hash::Hash for SessionId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_parse_roundtrip() {
        let id = SessionId::generate();
        assert_eq!(id.as_cookie_value().len(), ENCODED_LEN);
        let parsed = SessionId::parse(id.as_cookie_value());
        assert_eq!(parsed.as_ref(), Some(&id));
        assert_ne!(SessionId::generate(), id);
    }

    #[test]
    fn store_key_is_hex_sha256_of_cookie_value() {
        let id = SessionId::generate();
        let key = id.store_key();
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!key.contains(id.as_cookie_value()));
        assert_eq!(key, hex::encode(Sha256::digest(id.as_cookie_value())));
    }

    #[test]
    fn parse_rejects_tampered_values() {
        let good = SessionId::generate();
        let v = good.as_cookie_value();
        assert!(SessionId::parse(&v[..42]).is_none());
        assert!(SessionId::parse(&format!("{v}A")).is_none());
        assert!(SessionId::parse("").is_none());
        // standard base64 alphabet, padding, whitespace, non-ASCII
        assert!(SessionId::parse(&format!("{}+", &v[..42])).is_none());
        assert!(SessionId::parse(&format!("{}/", &v[..42])).is_none());
        assert!(SessionId::parse(&format!("{}=", &v[..42])).is_none());
        assert!(SessionId::parse(&format!(" {}", &v[..42])).is_none());
        assert!(SessionId::parse(&format!("{}é", &v[..41])).is_none());
        // non-canonical last character (low bits set): 'B' encodes 000001
        assert!(SessionId::parse(&format!("{}B", "A".repeat(42))).is_none());
        assert!(SessionId::parse(&format!("{}A", "A".repeat(42))).is_some());
    }

    #[test]
    fn parse_accepts_exactly_what_decodes_canonically() {
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let id = SessionId::generate();
        let head = &id.as_cookie_value()[..42];
        for last in alphabet.chars() {
            let v = format!("{head}{last}");
            let mut out = [0u8; ID_BYTES];
            let decodes = URL_SAFE_NO_PAD.decode_slice(&v, &mut out) == Ok(ID_BYTES);
            assert_eq!(
                SessionId::parse(&v).is_some(),
                decodes,
                "last character {last}"
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let id = SessionId::generate();
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(id.as_cookie_value()));
        assert!(dbg.contains("redacted"));
    }
}
