//! What SCIM provisioning means for access, and just-in-time user records:
//!
//! - a user deactivated or deleted through SCIM loses every session, on every replica
//!   (the store announces each deletion; replicas evict their caches);
//! - an inactive user cannot sign in; with `require_provisioned_user`, nor can a user
//!   SCIM never created;
//! - with `authoritative_groups`, route groups come from SCIM memberships (the groups'
//!   externalId, which Entra fills with the group object ID), so Entra's group overage
//!   no longer matters; memberships are cached per replica for the session cache's
//!   lifetime;
//! - without SCIM, each successful sign-in records the user (first/last sign-in, names,
//!   email) for `ssogate users`.
//!
//! Users are joined by NameID = SCIM userName (Entra's defaults: NameID
//! user.userprincipalname, provisioning userName <- userPrincipalName), case-insensitive.

use crate::identity::{claims, Identity};
use crate::metrics::METRICS;
use crate::scim::{ScimError, ScimEvent, ScimService};
use crate::session::{DocIndex, SessionError, SessionStore};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Collection of just-in-time user records.
pub const JIT_USERS: &str = "jit-users";
const GROUP_CACHE_MAX: usize = 100_000;

/// Lower-cased NameID -> (when looked up, group IDs).
type GroupCache = HashMap<String, (Instant, Arc<Vec<String>>)>;

/// SCIM at run time.
pub struct Provisioning {
    pub service: ScimService,
    pub authoritative_groups: bool,
    pub require_provisioned_user: bool,
    groups_ttl: Duration,
    groups: Mutex<GroupCache>,
    /// Every app's name: a revocation ends the user's sessions in all of them.
    apps: Vec<String>,
}

impl Provisioning {
    pub fn new(
        service: ScimService,
        authoritative_groups: bool,
        require_provisioned_user: bool,
        groups_ttl: Duration,
        apps: Vec<String>,
    ) -> Self {
        Self {
            apps,
            service,
            authoritative_groups,
            require_provisioned_user,
            groups_ttl,
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// The SCIM user for a NameID, if provisioned.
    pub async fn user(&self, name_id: &str) -> Result<Option<Value>, ScimError> {
        self.service.user_by_name(name_id).await
    }

    /// Group IDs (externalId, else displayName) of the SCIM groups the user is a member
    /// of; `None` when the user is not provisioned. Cached for the session cache's TTL.
    pub async fn groups_of(&self, name_id: &str) -> Result<Option<Arc<Vec<String>>>, ScimError> {
        let key = name_id.to_lowercase();
        if let Some((at, g)) = self.groups.lock().get(&key) {
            if at.elapsed() < self.groups_ttl {
                return Ok(Some(g.clone()));
            }
        }
        let Some(user) = self.user(name_id).await? else {
            return Ok(None);
        };
        let id = user.get("id").and_then(Value::as_str).unwrap_or_default();
        // The member index names this user's groups: O(groups of the user).
        let out = self.service.group_refs_of_member(id).await?;
        let out = Arc::new(out);
        if self.groups_ttl > Duration::ZERO {
            let mut cache = self.groups.lock();
            if cache.len() >= GROUP_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), out.clone()));
        }
        Ok(Some(out))
    }

    /// Forget cached memberships (after a group change on this replica).
    pub fn forget_groups(&self) {
        self.groups.lock().clear();
    }
}

/// An identity whose groups claim is replaced by `groups` (and without the overage link).
pub fn with_groups(identity: &Identity, groups: &[String]) -> Identity {
    let mut id = identity.clone();
    id.attributes.remove(claims::GROUPS_OVERAGE);
    id.attributes
        .insert(claims::GROUPS.to_string(), groups.to_vec());
    id
}

/// End every session of `user_name` in each of `apps`; returns how many ended.
pub async fn revoke_user<'a>(
    store: &dyn SessionStore,
    apps: impl IntoIterator<Item = &'a str>,
    user_name: &str,
) -> Result<usize, SessionError> {
    let mut ended = 0;
    for app in apps {
        ended += store.delete_user_sessions(app, user_name).await?;
    }
    Ok(ended)
}

impl Provisioning {
    /// Act on SCIM events: sessions of deactivated or deleted users end in every app;
    /// audit lines.
    pub async fn apply_events(&self, events: &[ScimEvent]) {
        apply_events(self, events).await
    }
}

async fn apply_events(p: &Provisioning, events: &[ScimEvent]) {
    for e in events {
        match e {
            ScimEvent::Changed { resource, id, op } => {
                tracing::info!(target: "ssogate::audit", event = "scim_change", resource, id = %id, op);
                if *resource == "Groups" || *op == "delete" {
                    p.forget_groups();
                }
            }
            ScimEvent::UserDeactivated { id, user_name, .. }
            | ScimEvent::UserDeleted { id, user_name, .. } => {
                let cause = if matches!(e, ScimEvent::UserDeleted { .. }) {
                    "scim_deleted"
                } else {
                    "scim_deactivated"
                };
                let apps = p.apps.iter().map(String::as_str);
                match revoke_user(p.service.store().as_ref(), apps, user_name).await {
                    Ok(n) => {
                        METRICS
                            .sessions_revoked
                            .with_label_values(&[cause])
                            .inc_by(n as u64);
                        tracing::info!(target: "ssogate::audit", event = "sessions_revoked", cause, scim_id = %id, sessions = n);
                    }
                    Err(err) => {
                        tracing::error!(target: "ssogate::audit", event = "sessions_revoked", cause, scim_id = %id, error = %err, "could not end the user's sessions");
                    }
                }
                p.forget_groups();
            }
        }
    }
}

/// Record (or update) a just-in-time user after a successful sign-in.
pub async fn record_sign_in(store: &dyn SessionStore, app: &str, identity: &Identity, now: i64) {
    let id = identity.name_id.to_lowercase();
    let previous: Option<Value> = match store.doc_get(JIT_USERS, &id).await {
        Ok(Some(b)) => serde_json::from_slice(&b).ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the user record");
            return;
        }
    };
    let first = |uri: &str| identity.claim(uri).first().cloned();
    let mut apps: Vec<String> = previous
        .as_ref()
        .and_then(|p| p.get("apps"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !apps.iter().any(|a| a == app) {
        apps.push(app.to_string());
    }
    let record = json!({
        "name_id": identity.name_id,
        "object_id": first(claims::OBJECT_ID),
        "given_name": first(claims::GIVEN_NAME),
        "surname": first(claims::SURNAME),
        "display_name": first(claims::DISPLAY_NAME),
        "email": first(claims::EMAIL),
        "first_login": previous.as_ref().and_then(|p| p.get("first_login")).cloned().unwrap_or(json!(now)),
        "last_login": now,
        "logins": previous.as_ref().and_then(|p| p.get("logins")).and_then(Value::as_u64).unwrap_or(0) + 1,
        "apps": apps,
    });
    let Ok(bytes) = serde_json::to_vec(&record) else {
        return;
    };
    if let Err(e) = store
        .doc_put(
            JIT_USERS,
            &id,
            &bytes,
            &DocIndex::default(),
            &DocIndex::default(),
            None,
        )
        .await
    {
        tracing::warn!(error = %e, "could not write the user record");
    }
}
