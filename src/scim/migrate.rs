//! Moves a directory written by versions before the indexes (Redis: one key per
//! document, its id hashed, a set of ids and one unique key per document) into the
//! current layout, indexes included. Users and groups keep their SCIM ids, so group
//! members and Entra's own references stay right; just-in-time user records move too.
//! Without it, an upgraded gateway would see an empty directory while Entra, which sends
//! only changes once it has provisioned a user, would never send those users again.
//!
//! Runs at start-up (a check of three keys when there is nothing to move) and as
//! `ssogate directory migrate`. A document already in the current layout wins. Safe to
//! repeat, and to run from several replicas at once (each document is read, written if
//! absent, then forgotten).

use super::effects::JIT_USERS;
use super::{resource, Kind, GROUPS, USERS};
use crate::session::{DocIndex, DocWrite, SessionError, SessionStore};
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
    Ok(out)
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
    let index = match (kind, serde_json::from_slice::<Value>(&bytes)) {
        (_, Err(_)) => {
            tracing::warn!(
                collection,
                "a legacy directory document is not JSON; dropped"
            );
            m.unreadable += 1;
            return Ok(());
        }
        (Some(kind), Ok(v)) => resource::index_of(kind, &v),
        (None, Ok(_)) => DocIndex::default(),
    };
    if store.doc_get(collection, id).await?.is_some() {
        m.kept += 1;
        return Ok(());
    }
    match store
        .doc_put(collection, id, &bytes, &index, &DocIndex::default(), None)
        .await?
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
