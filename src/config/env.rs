//! Environment overrides. Every variable the gateway reads is a named constant here,
//! read through the `Env` trait so tests can use a map instead of the process env.

use std::collections::HashMap;

/// Redis URL (may carry credentials); overrides `[session] redis_url`.
pub const ENV_REDIS_URL: &str = "SSOGATE_REDIS_URL";
/// Redis password; overrides the URL's and `[session] redis_password_file`.
pub const ENV_REDIS_PASSWORD: &str = "SSOGATE_REDIS_PASSWORD";
/// Redis ACL user; overrides the URL's and `[session] redis_username`.
pub const ENV_REDIS_USERNAME: &str = "SSOGATE_REDIS_USERNAME";
/// The Redis Sentinels' password; overrides `[session] redis_sentinel_password_file`.
pub const ENV_REDIS_SENTINEL_PASSWORD: &str = "SSOGATE_REDIS_SENTINEL_PASSWORD";
/// SCIM bearer token(s), comma-separated; added to `[scim] token_file`'s.
pub const ENV_SCIM_TOKEN: &str = "SSOGATE_SCIM_TOKEN";
/// Overrides `[listen] public`.
pub const ENV_LISTEN_PUBLIC: &str = "SSOGATE_LISTEN_PUBLIC";
/// Overrides `[listen] admin`.
pub const ENV_LISTEN_ADMIN: &str = "SSOGATE_LISTEN_ADMIN";

pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment. Empty values count as unset.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}
