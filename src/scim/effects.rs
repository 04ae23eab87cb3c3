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

/// The identity's cache key -> (when looked up, its SCIM groups).
type GroupCache = HashMap<String, (Instant, Arc<ScimGroups>)>;

/// How a SAML sign-in finds its SCIM user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchUsers {
    /// NameID = userName (case-insensitive).
    UserName,
    /// The objectidentifier claim = externalId (Entra's object ID: stable through UPN
    /// changes, and what a persistent NameID does not show).
    ExternalId,
    /// By object ID when the token has one and a user holds it, else by userName.
    Both,
}

impl MatchUsers {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "username" => Some(Self::UserName),
            "externalid" => Some(Self::ExternalId),
            "both" => Some(Self::Both),
            _ => None,
        }
    }
}

/// A user's SCIM groups: what routes match (externalId = Entra object ID, else the
/// display name) and, in the same order, their display names (for headers that show
/// names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScimGroups {
    pub refs: Vec<String>,
    pub names: Vec<String>,
}

/// SCIM at run time.
pub struct Provisioning {
    pub service: ScimService,
    pub authoritative_groups: bool,
    pub require_provisioned_user: bool,
    pub match_users: MatchUsers,
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
            match_users: MatchUsers::Both,
            groups_ttl,
            groups: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_match_users(mut self, m: MatchUsers) -> Self {
        self.match_users = m;
        self
    }

    /// The SCIM user of a signed-in identity (see [`MatchUsers`]). Several users with one
    /// object ID (a soft-deleted copy beside a re-created one): the active one first.
    pub async fn user_for(&self, identity: &Identity) -> Result<Option<Value>, ScimError> {
        if self.match_users != MatchUsers::UserName {
            if let Some(oid) = identity
                .claim(claims::OBJECT_ID)
                .first()
                .filter(|o| !o.is_empty())
            {
                let mut found = self.service.users_by_external_id(oid).await?;
                found.sort_by_key(|u| !super::service::is_active(u));
                if let Some(u) = found.into_iter().next() {
                    return Ok(Some(u));
                }
            }
        }
        if self.match_users == MatchUsers::ExternalId {
            return Ok(None);
        }
        self.service.user_by_name(&identity.name_id).await
    }

    /// The SCIM groups of a signed-in identity; `None` when the user is not provisioned.
    /// Cached for the session cache's TTL.
    pub async fn groups_of(
        &self,
        identity: &Identity,
    ) -> Result<Option<Arc<ScimGroups>>, ScimError> {
        let oid = identity
            .claim(claims::OBJECT_ID)
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        let key = format!("{oid}\n{}", identity.name_id.to_lowercase());
        if let Some((at, g)) = self.groups.lock().get(&key) {
            if at.elapsed() < self.groups_ttl {
                return Ok(Some(g.clone()));
            }
        }
        let Some(user) = self.user_for(identity).await? else {
            return Ok(None);
        };
        let id = user.get("id").and_then(Value::as_str).unwrap_or_default();
        // The member index names this user's groups: O(groups of the user).
        let mut out = ScimGroups::default();
        for (r, name) in self.service.group_refs_of_member(id).await? {
            out.refs.push(r);
            out.names.push(name);
        }
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

/// An identity whose groups are its SCIM groups: the groups claim replaced (and the
/// overage link gone), the groups' display names beside them (`claims::GROUP_NAMES`,
/// which only this sets).
pub fn with_groups(identity: &Identity, groups: &ScimGroups) -> Identity {
    let mut id = identity.clone();
    id.attributes.remove(claims::GROUPS_OVERAGE);
    id.attributes
        .insert(claims::GROUPS.to_string(), groups.refs.clone());
    id.attributes
        .insert(claims::GROUP_NAMES.to_string(), groups.names.clone());
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
                METRICS
                    .scim_changes
                    .with_label_values(&[resource, op])
                    .inc();
                crate::audit::scim_change(resource, id, op);
                if *resource == "Groups" || *op == "delete" {
                    p.forget_groups();
                }
            }
            ScimEvent::UserReactivated { id } => {
                METRICS
                    .scim_changes
                    .with_label_values(&["Users", "enable"])
                    .inc();
                crate::audit::scim_user_enabled(id);
                p.forget_groups();
            }
            ScimEvent::Membership {
                group,
                added,
                removed,
            } => {
                METRICS
                    .scim_changes
                    .with_label_values(&["Groups", "members_added"])
                    .inc_by(*added as u64);
                METRICS
                    .scim_changes
                    .with_label_values(&["Groups", "members_removed"])
                    .inc_by(*removed as u64);
                crate::audit::scim_membership(group, *added, *removed);
            }
            ScimEvent::UserRenamed { id, old_user_name } => {
                METRICS
                    .scim_changes
                    .with_label_values(&["Users", "rename"])
                    .inc();
                let apps = p.apps.iter().map(String::as_str);
                match revoke_user(p.service.store().as_ref(), apps, old_user_name).await {
                    Ok(n) => {
                        METRICS
                            .sessions_revoked
                            .with_label_values(&["scim_renamed"])
                            .inc_by(n as u64);
                        crate::audit::sessions_revoked("scim_renamed", Some(id), n);
                    }
                    Err(err) => {
                        crate::audit::sessions_revoke_failed(
                            "scim_renamed",
                            Some(id),
                            &err.to_string(),
                        );
                    }
                }
                p.forget_groups();
            }
            ScimEvent::UserDeactivated {
                id,
                user_name,
                external_id,
            }
            | ScimEvent::UserDeleted {
                id,
                user_name,
                external_id,
            } => {
                let cause = if matches!(e, ScimEvent::UserDeleted { .. }) {
                    "scim_deleted"
                } else {
                    METRICS
                        .scim_changes
                        .with_label_values(&["Users", "disable"])
                        .inc();
                    crate::audit::scim_user_disabled(id);
                    "scim_deactivated"
                };
                // Sessions are indexed by NameID and by object ID: both end, so a user
                // whose NameID is persistent (or who was renamed) is signed out too.
                let store = p.service.store().as_ref();
                let by_name = revoke_user(store, p.apps.iter().map(String::as_str), user_name);
                let by_oid = async {
                    match external_id.as_deref().filter(|e| !e.is_empty()) {
                        Some(oid) => {
                            revoke_user(
                                store,
                                p.apps.iter().map(String::as_str),
                                &crate::session::object_id_user(oid),
                            )
                            .await
                        }
                        None => Ok(0),
                    }
                };
                let result = match (by_name.await, by_oid.await) {
                    (Ok(a), Ok(b)) => Ok(a + b),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                match result {
                    Ok(n) => {
                        METRICS
                            .sessions_revoked
                            .with_label_values(&[cause])
                            .inc_by(n as u64);
                        crate::audit::sessions_revoked(cause, Some(id), n);
                    }
                    Err(err) => {
                        crate::audit::sessions_revoke_failed(cause, Some(id), &err.to_string());
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
