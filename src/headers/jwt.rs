//! The identity JWT sent to the upstream (`[app.jwt]`): RS256 or ES256, `kid` in the
//! header, claims iss, aud, sub (NameID), email, name, groups, roles, oid, tid, iat, exp.
//! Minted once per session and app and reused until a fifth of its lifetime is left, so
//! an authenticated request normally pays a cache lookup, not a signature.
//!
//! Keys come from PEM files: `key_file` signs (and is published); `publish_key_files`
//! are only published. Rotation: publish the new key first, then make it the signing key
//! and keep the old one published until its tokens expired. `GET /.well-known/jwks.json`
//! on the public listener serves the app's published keys.

use crate::identity::{claims, Identity};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openssl::pkey::{Id, PKey};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Most cached tokens per app.
const MAX_CACHED: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("{0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A public key as a JWK, and its `kid`.
fn jwk_of(pem: &[u8]) -> Result<(String, Algorithm, Value), JwtError> {
    let bad = |m: &str| JwtError::Key(m.to_string());
    let (spki, pkey_id, jwk) = match PKey::private_key_from_pem(pem) {
        Ok(k) => (
            k.public_key_to_der(),
            k.id(),
            public_params(&k.public_key_to_der().map_err(|_| bad("key"))?)?,
        ),
        Err(_) => {
            let k = PKey::public_key_from_pem(pem).map_err(|_| bad("not a PEM RSA or EC key"))?;
            (
                k.public_key_to_der(),
                k.id(),
                public_params(&k.public_key_to_der().map_err(|_| bad("key"))?)?,
            )
        }
    };
    let spki = spki.map_err(|_| bad("key"))?;
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(&spki))[..16].to_string();
    let alg = match pkey_id {
        Id::RSA => Algorithm::RS256,
        Id::EC => Algorithm::ES256,
        _ => return Err(bad("only RSA (RS256) and EC P-256 (ES256) keys")),
    };
    let mut jwk = jwk;
    jwk["kid"] = Value::String(kid.clone());
    jwk["use"] = json!("sig");
    jwk["alg"] = json!(if alg == Algorithm::RS256 {
        "RS256"
    } else {
        "ES256"
    });
    Ok((kid, alg, jwk))
}

fn public_params(spki_der: &[u8]) -> Result<Value, JwtError> {
    let bad = |m: &str| JwtError::Key(m.to_string());
    let k = PKey::public_key_from_der(spki_der).map_err(|_| bad("key"))?;
    match k.id() {
        Id::RSA => {
            let rsa = k.rsa().map_err(|_| bad("RSA key"))?;
            if rsa.size() < 256 {
                return Err(bad("RSA keys must have at least 2048 bits"));
            }
            Ok(json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
                "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
            }))
        }
        Id::EC => {
            let ec = k.ec_key().map_err(|_| bad("EC key"))?;
            let group = ec.group();
            if group.curve_name() != Some(openssl::nid::Nid::X9_62_PRIME256V1) {
                return Err(bad("EC keys must be on P-256 (ES256)"));
            }
            let mut ctx = openssl::bn::BigNumContext::new().map_err(|_| bad("EC"))?;
            let mut x = openssl::bn::BigNum::new().map_err(|_| bad("EC"))?;
            let mut y = openssl::bn::BigNum::new().map_err(|_| bad("EC"))?;
            ec.public_key()
                .affine_coordinates(group, &mut x, &mut y, &mut ctx)
                .map_err(|_| bad("EC point"))?;
            let pad = |b: openssl::bn::BigNum| b.to_vec_padded(32).map_err(|_| bad("EC point"));
            Ok(json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(pad(x)?),
                "y": URL_SAFE_NO_PAD.encode(pad(y)?),
            }))
        }
        _ => Err(bad("only RSA and EC keys")),
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    groups: &'a [String],
    roles: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    oid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tid: Option<&'a str>,
    iat: i64,
    exp: i64,
}

/// One app's JWT settings, keys parsed at start-up.
pub struct JwtIssuer {
    pub header: String,
    issuer: String,
    audience: String,
    ttl: Duration,
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwks: Value,
    /// session key -> (exp, token)
    cache: Mutex<HashMap<String, (i64, Arc<str>)>>,
}

impl std::fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtIssuer")
            .field("header", &self.header)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtIssuer {
    pub fn new(
        header: &str,
        issuer: &str,
        audience: &str,
        ttl: Duration,
        key_pem: &[u8],
        publish_pems: &[Vec<u8>],
    ) -> Result<Self, JwtError> {
        let (kid, alg, jwk) = jwk_of(key_pem)?;
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(key_pem),
            _ => EncodingKey::from_ec_pem(key_pem),
        }
        .map_err(|e| JwtError::Key(format!("signing key: {e}")))?;
        let mut keys = vec![jwk];
        for pem in publish_pems {
            let (pkid, _, pjwk) = jwk_of(pem)?;
            if pkid != kid && !keys.iter().any(|k| k["kid"] == pkid.as_str()) {
                keys.push(pjwk);
            }
        }
        Ok(Self {
            header: header.to_string(),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            ttl,
            kid,
            alg,
            key,
            jwks: json!({ "keys": keys }),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// `{"keys": [...]}`: the signing key first, then the published ones.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The token for this session at `now`: cached while more than a fifth of its
    /// lifetime is left, else freshly signed.
    pub fn token(
        &self,
        session_key: &str,
        identity: &Identity,
        now: i64,
    ) -> Result<Arc<str>, JwtError> {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(300).max(1);
        let refresh_before = ttl / 5;
        if let Some((exp, token)) = self.cache.lock().get(session_key) {
            if exp - now > refresh_before {
                return Ok(token.clone());
            }
        }
        let first = |uri: &str| identity.claim(uri).first().map(String::as_str);
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: &identity.name_id,
            email: first(claims::EMAIL).or_else(|| first(claims::NAME)),
            name: first(claims::DISPLAY_NAME),
            groups: identity.groups(),
            roles: identity.roles(),
            oid: first(claims::OBJECT_ID),
            tid: first(claims::TENANT_ID),
            iat: now,
            exp: now + ttl,
        };
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        let token: Arc<str> = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| JwtError::Sign(e.to_string()))?
            .into();
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (exp, _)| *exp - now > refresh_before);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(session_key.to_string(), (now + ttl, token.clone()));
        Ok(token)
    }

    /// Forget a session's token (sign-out, revocation).
    pub fn forget(&self, session_key: &str) {
        self.cache.lock().remove(session_key);
    }
}
