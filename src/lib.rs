//! ssogate: a reverse-proxy SAML SSO gateway for Microsoft Entra ID (and any SAML 2.0 IdP).
//!
//! Library layout (see ../shared/DESIGN.md): `config` turns the TOML file into a typed,
//! validated `Config`; `gateway` assembles it into runtime state; `saml`, `session`,
//! `authz`, `headers` and `login` are plain Rust; `proxy` is the only module that knows
//! pingora.

pub mod authz;
pub mod config;
pub mod gateway;
pub mod headers;
pub mod identity;
pub mod inspect;
pub mod jwt;
pub mod logging;
pub mod login;
pub mod logout;
pub mod metadata_refresh;
pub mod metrics;
pub mod provisioning;
pub mod proxy;
pub mod saml;
pub mod scim;
pub mod session;
