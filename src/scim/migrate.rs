//! Moves a directory written by versions before the indexes (Redis: one key per
//! document, its id hashed, a set of ids and one unique key per document) into the
//! current layout, indexes included. Users and groups keep their SCIM ids, so group
//! members and Entra's own references stay right; just-in-time user records move too.
//! Without it, an upgraded gateway would see an empty directory while Entra, which sends
//! only changes once it has provisioned a user, would never send those users again.
//!
//! Groups written with their member list inside the document (versions before members
//! moved beside it) get the list moved out, so that a membership change never rewrites
//! the list again.
//!
//! Runs at start-up (a check of three keys and a read of the groups' documents when
//! there is nothing to move) and as
//! `ssogate directory migrate`. A document already in the current layout wins. Safe to
//! repeat, and to run from several replicas at once (each document is read, written if
//! absent, then forgotten).

use super::effects::JIT_USERS;
use super::{resource, Kind, GROUPS, USERS};
use crate::session::{DocIndex, DocWrite, MemberChange, SessionError, SessionStore};
use serde_json::Value;

/// What a migration did to one collection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub collection: &'static str,
    /// Written in the current layout.
    pub moved: usize,
    /// Not written: the current layout already had the document, or another document
    /// holds its userName / displayName there.
    pub kept: usize,
    /// Dropped: missing or not JSON.
    pub unreadable: usize,
}

impl Migrated {
    pub fn any(&self) -> bool {
        self.moved + self.kept + self.unreadable > 0
    }
}

/// Documents read per step.
const BATCH: usize = 500;

/// Move every legacy document of the three collections; per collection, what happened.
pub async fn migrate_legacy(store: &dyn SessionStore) -> Result<Vec<Migrated>, SessionError> {
    let mut out = Vec::new();
    for (collection, kind) in [
        (USERS, Some(Kind::User)),
        (GROUPS, Some(Kind::Group)),
        (JIT_USERS, None),
    ] {
        let mut m = Migrated {
            collection,
            ..Migrated::default()
        };
        loop {
            let batch = store.legacy_docs(collection, BATCH).await?;
            if batch.is_empty() {
                break;
            }
            let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
            for (id, doc) in batch {
                move_one(store, collection, kind, &id, doc, &mut m).await?;
            }
            store.legacy_forget(collection, &ids).await?;
        }
        out.push(m);
    }
    out.push(move_member_lists(store).await?);
    Ok(out)
}

/// What [`migrate_legacy`] reports for groups whose member list moved out.
pub const MEMBER_LISTS: &str = "scim-groups (member lists)";

/// Groups holding their member list inside the document get it moved beside it (the
/// document rewritten only if nobody changed it meanwhile; else it is left for the next
/// run, and a SCIM write moves it anyway).
async fn move_member_lists(store: &dyn SessionStore) -> Result<Migrated, SessionError> {
    let mut m = Migrated {
        collection: MEMBER_LISTS,
        ..Migrated::default()
    };
    let mut start = 0;
    loop {
        let page = store.doc_page(GROUPS, start, BATCH).await?;
        if page.is_empty() {
            break;
        }
        start += page.len();
        for (id, raw) in page {
            let Ok(old) = serde_json::from_slice::<Value>(&raw) else {
                continue;
            };
            if old.get("members").is_none() {
                continue;
            }
            let mut group = old.clone();
            let members = resource::replace_members(&[], &resource::take_members(&mut group));
            let bytes = serde_json::to_vec(&group).map_err(|_| SessionError::Corrupt)?;
            let written = store
                .doc_update(
                    GROUPS,
                    &id,
                    &bytes,
                    &resource::index_of(Kind::Group, &group),
                    &resource::index_of(Kind::Group, &old),
                    Some(&raw),
                    &members,
                )
                .await?
                .write;
            match written {
                DocWrite::Written => m.moved += 1,
                _ => m.kept += 1,
            }
        }
    }
    Ok(m)
}

async fn move_one(
    store: &dyn SessionStore,
    collection: &'static str,
    kind: Option<Kind>,
    id: &str,
    doc: Option<Vec<u8>>,
    m: &mut Migrated,
) -> Result<(), SessionError> {
    let Some(bytes) = doc else {
        m.unreadable += 1;
        return Ok(());
    };
    let mut bytes = bytes;
    let mut members = MemberChange::default();
    let index = match (kind, serde_json::from_slice::<Value>(&bytes)) {
        (_, Err(_)) => {
            tracing::warn!(
                collection,
                "a legacy directory document is not JSON; dropped"
            );
            m.unreadable += 1;
            return Ok(());
        }
        (Some(Kind::Group), Ok(mut v)) => {
            // The member list goes beside the group.
            members = resource::replace_members(&[], &resource::take_members(&mut v));
            bytes = serde_json::to_vec(&v).map_err(|_| SessionError::Corrupt)?;
            resource::index_of(Kind::Group, &v)
        }
        (Some(kind), Ok(v)) => resource::index_of(kind, &v),
        (None, Ok(_)) => DocIndex::default(),
    };
    if store.doc_get(collection, id).await?.is_some() {
        m.kept += 1;
        return Ok(());
    }
    match store
        .doc_update(
            collection,
            id,
            &bytes,
            &index,
            &DocIndex::default(),
            None,
            &members,
        )
        .await?
        .write
    {
        DocWrite::Written => m.moved += 1,
        DocWrite::Conflict | DocWrite::Stale => {
            tracing::warn!(
                collection,
                id,
                "a legacy directory document's unique name belongs to another document now; the current one stays"
            );
            m.kept += 1;
        }
    }
    Ok(())
}
