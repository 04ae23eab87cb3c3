//! ssogate: a reverse-proxy SAML SSO gateway for Microsoft Entra ID (and any SAML 2.0 IdP).
//!
//! Library layout (docs/architecture.md): `config` turns the TOML file into a typed,
//! validated `Config`; `gateway` assembles it into apps and decides every request (access,
//! sign-in, sign-out); `saml`, `session`, `authz`, `headers` and `scim` are plain Rust;
//! `proxy` is the only module that knows pingora; `cli` holds the commands.

pub mod audit;
pub mod authz;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod gateway;
pub mod headers;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod saml;
pub mod scim;
pub mod session;
