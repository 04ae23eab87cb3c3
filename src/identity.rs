//! The signed-in user as the gateway knows them: built from a validated SAML
//! assertion (and later from SCIM), stored in the session, read by authz and
//! by the header mapping. Plain data; knows nothing else in the crate.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Claim URIs Entra ID puts into SAML tokens by default (and a few it can be asked for).
pub mod claims {
    pub const EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
    pub const GIVEN_NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname";
    pub const SURNAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname";
    /// Entra fills `name` with user.userprincipalname by default.
    pub const NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
    pub const UPN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";
    pub const DISPLAY_NAME: &str = "http://schemas.microsoft.com/identity/claims/displayname";
    pub const OBJECT_ID: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
    pub const TENANT_ID: &str = "http://schemas.microsoft.com/identity/claims/tenantid";
    pub const IDENTITY_PROVIDER: &str =
        "http://schemas.microsoft.com/identity/claims/identityprovider";
    pub const AUTHN_METHODS: &str = "http://schemas.microsoft.com/claims/authnmethodsreferences";
    pub const GROUPS: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";
    pub const ROLES: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";
    /// Sent by Entra instead of `groups` when the user is in more than 150 groups.
    pub const GROUPS_OVERAGE: &str = "http://schemas.microsoft.com/claims/groups.link";
    /// The display names of the user's SCIM groups: set by the gateway itself (never
    /// taken from a token) when SCIM groups are authoritative.
    pub const GROUP_NAMES: &str = "urn:ssogate:scim:group-names";
}

/// Friendly claim aliases an admin may use in `[app.headers]`, each resolving to the
/// claim URIs tried in order (first one present wins).
pub const CLAIM_ALIASES: &[(&str, &[&str])] = &[
    ("email", &[claims::EMAIL]),
    ("given_name", &[claims::GIVEN_NAME]),
    ("surname", &[claims::SURNAME]),
    ("name", &[claims::NAME]),
    ("display_name", &[claims::DISPLAY_NAME]),
    ("object_id", &[claims::OBJECT_ID]),
    ("tenant_id", &[claims::TENANT_ID]),
    ("groups", &[claims::GROUPS]),
    ("roles", &[claims::ROLES]),
    // Entra has no upn claim unless configured; its default `name` claim carries the UPN.
    ("upn", &[claims::UPN, claims::NAME]),
    ("identity_provider", &[claims::IDENTITY_PROVIDER]),
    ("authn_methods", &[claims::AUTHN_METHODS]),
];

/// Resolve a friendly alias to its claim URIs.
pub fn alias_uris(alias: &str) -> Option<&'static [&'static str]> {
    CLAIM_ALIASES
        .iter()
        .find(|(name, _)| *name == alias)
        .map(|(_, uris)| *uris)
}

/// A verified identity. Attribute values are exactly what the IdP asserted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Identity {
    pub name_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_index: Option<String>,
    /// AuthnInstant, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_instant: Option<i64>,
    /// Claim name (URI) -> values, in assertion order.
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
}

// Identity carries personal data: keep it out of Debug output (and so out of logs).
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name_id", &"<redacted>")
            .field("attributes", &self.attributes.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Values of one claim by URI (empty when absent).
    pub fn claim(&self, uri: &str) -> &[String] {
        self.attributes.get(uri).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Values of a claim named by alias or URI; the first alias URI present wins.
    pub fn lookup(&self, alias_or_uri: &str) -> &[String] {
        match alias_uris(alias_or_uri) {
            Some(uris) => uris
                .iter()
                .map(|u| self.claim(u))
                .find(|v| !v.is_empty())
                .unwrap_or(&[]),
            None => self.claim(alias_or_uri),
        }
    }

    /// Entra group object IDs from the token.
    pub fn groups(&self) -> &[String] {
        self.claim(claims::GROUPS)
    }

    /// Entra app role values from the token.
    pub fn roles(&self) -> &[String] {
        self.claim(claims::ROLES)
    }

    /// True when Entra sent the overage link instead of the group list.
    pub fn groups_overage(&self) -> bool {
        !self.claim(claims::GROUPS_OVERAGE).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upn_alias_falls_back_to_name_claim() {
        let mut id = Identity::default();
        id.attributes
            .insert(claims::NAME.into(), vec!["a@example.com".into()]);
        assert_eq!(id.lookup("upn"), ["a@example.com".to_string()]);
        id.attributes
            .insert(claims::UPN.into(), vec!["b@example.com".into()]);
        assert_eq!(id.lookup("upn"), ["b@example.com".to_string()]);
        assert!(id.lookup("email").is_empty());
    }

    #[test]
    fn debug_hides_personal_data() {
        let id = Identity {
            name_id: "secret@example.com".into(),
            ..Default::default()
        };
        assert!(!format!("{id:?}").contains("secret"));
    }
}
