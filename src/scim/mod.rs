//! SCIM 2.0 provisioning (RFC 7643/7644) for Entra's provisioning service: Users and
//! Groups under `/scim/v2`, bearer-token authentication, filters, PATCH in Entra's
//! dialect, and events the gateway turns into effects on access (a deactivated or deleted
//! user's sessions end on every replica). Plain Rust: the proxy feeds it requests.
//!
//! Resources are JSON documents in the session store (Redis shared by the replicas, or
//! memory for one instance). Lookups by userName use the store's unique index; list
//! queries scan the collection (fine for the thousands of users a legacy app has).

pub mod effects;
pub mod filter;
pub mod migrate;
pub mod patch;
pub mod resource;
pub mod service;

pub use resource::Kind;
pub use service::{ScimEvent, ScimRequest, ScimResponse, ScimService, GROUPS, USERS};

use serde_json::{json, Value};

/// A SCIM error response: HTTP status, `scimType`, detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// Set when a request exceeded one of the service's limits (a metric label).
    pub limit: Option<&'static str>,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
            limit: None,
        }
    }

    /// A refusal because the request exceeded a limit, counted under `label`.
    pub fn over_limit(mut self, label: &'static str) -> Self {
        self.limit = Some(label);
        self
    }

    pub fn bad_request(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad_request("invalidFilter", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, Some("uniqueness"), detail)
    }

    /// The RFC 7644 §3.12 error body (status as a string).
    pub fn body(&self) -> Value {
        let mut v = json!({
            "schemas": [resource::ERROR],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            v["scimType"] = Value::String(t.to_string());
        }
        v
    }
}
