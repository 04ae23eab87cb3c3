//! The application layer: the protected apps built from the config, and every decision
//! about a request, in plain Rust (no pingora types; `proxy/` only translates).
//!
//! | file | owns |
//! |---|---|
//! | `apps.rs` | `Gateway` (apps by host, sessions, clock) and `App` (one SP: IdP trust, routes, headers) |
//! | `build.rs` | `Config` → `Gateway`, every problem reported at once |
//! | `live.rs` | `Live`: the serving `Gateway` and `Config`, swapped whole on reload |
//! | `listener_tls.rs` | the public listener's certificate chain and key, renewed by a reload |
//! | `target.rs` | the request target, parsed once: canonical or refused |
//! | `access.rs` | `admit`: request facts → `Outcome` (forward with an identity, or answer) |
//! | `reply.rs` | `Answer` → status, page, headers, metric and audit line (the one place) |
//! | `login.rs`, `logout.rs` | sign-in (AuthnRequest, ACS) and Single Logout flows |
//! | `metadata.rs` | the IdP metadata follower (URL refresh, key rollover) |
//! | `pages.rs` | the HTML pages |

pub mod access;
mod apps;
mod build;
pub mod certs;
pub mod listener_tls;
mod live;
pub mod login;
pub mod logout;
pub mod metadata;
pub mod pages;
pub mod reply;
pub mod target;

pub use apps::{App, Gateway, IdpTrust, MetadataRefresh, MAX_SAML_RESPONSE_BYTES};
pub use live::{Live, Reloaded};
