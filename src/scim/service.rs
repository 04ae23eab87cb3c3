//! The SCIM 2.0 endpoints, independent of HTTP plumbing: `ScimService::handle` takes the
//! method, path (after `/scim/v2`), query, Authorization header and body, and answers a
//! status, a JSON body and the events the gateway acts on (deactivations end sessions).
//! Resources live in the session store's documents, so every replica sees one directory.

use super::filter::{self, get_ci, AttrPath, Filter, Op};
use super::resource::{self, Kind, LIST_RESPONSE};
use super::{patch, ScimError};
use crate::config::Secret;
use crate::session::{DocIndex, DocWrite, MemberChange, SessionError, SessionStore};
use serde_json::{json, Value};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Largest page (`count`) served.
pub const MAX_PAGE: usize = 200;
/// Read-modify-write attempts before answering 409 (the resource keeps changing).
const WRITE_ATTEMPTS: usize = 64;

/// A short random pause before attempt `n` (n >= 1) of a contended write.
async fn backoff(n: usize) {
    if n > 0 {
        let cap = (2 * n as u64).min(40);
        tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(
            1..=cap,
        )))
        .await;
    }
}

fn busy() -> ScimError {
    ScimError::new(
        409,
        None,
        "the resource changed concurrently; retry the request",
    )
}

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

pub const USERS: &str = "scim-users";
pub const GROUPS: &str = "scim-groups";

fn collection(kind: Kind) -> &'static str {
    match kind {
        Kind::User => USERS,
        Kind::Group => GROUPS,
    }
}

/// One SCIM request.
#[derive(Debug)]
pub struct ScimRequest<'a> {
    pub method: &'a str,
    /// After `/scim/v2`, e.g. `/Users/2819c223`.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a [u8]>,
    pub body: &'a [u8],
    /// `https://host/scim/v2`, for `meta.location`.
    pub base_url: &'a str,
}

/// What changed, for the gateway (sessions) and the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScimEvent {
    /// A user became inactive (or was created inactive).
    UserDeactivated {
        id: String,
        user_name: String,
        external_id: Option<String>,
    },
    UserDeleted {
        id: String,
        user_name: String,
        external_id: Option<String>,
    },
    /// A user's userName changed (Entra: a UPN change).
    UserRenamed { id: String, old_user_name: String },
    /// An inactive user became active again.
    UserReactivated { id: String },
    /// A group's members changed.
    Membership {
        group: String,
        added: usize,
        removed: usize,
    },
    Changed {
        resource: &'static str,
        id: String,
        op: &'static str,
    },
}

#[derive(Debug)]
pub struct ScimResponse {
    pub status: u16,
    pub body: Option<Value>,
    pub location: Option<String>,
    pub events: Vec<ScimEvent>,
    /// Metric label: `Users`, `Groups`, `ServiceProviderConfig`, ... or `unknown`.
    pub resource: &'static str,
    /// Metric label: the request method from a fixed set (`GET` ... `DELETE`, `other`).
    pub method_label: &'static str,
    /// The limit the request exceeded, when that is why it was refused.
    pub over_limit: Option<&'static str>,
}

impl ScimResponse {
    fn ok(status: u16, body: Value, resource: &'static str) -> Self {
        Self {
            status,
            body: Some(body),
            location: None,
            events: Vec::new(),
            resource,
            method_label: "other",
            over_limit: None,
        }
    }

    /// 413: the body was over [`MAX_BODY`] and was not read.
    pub fn too_large() -> Self {
        Self::error(
            ScimError::new(413, None, "request body too large").over_limit("body_size"),
            "unknown",
        )
    }

    fn error(e: ScimError, resource: &'static str) -> Self {
        Self {
            status: e.status,
            body: Some(e.body()),
            location: None,
            events: Vec::new(),
            resource,
            method_label: "other",
            over_limit: e.limit,
        }
    }
}

pub struct ScimService {
    store: Arc<dyn SessionStore>,
    tokens: Vec<Secret<Vec<u8>>>,
}

impl std::fmt::Debug for ScimService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimService")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

fn store_error(e: SessionError) -> ScimError {
    match e {
        SessionError::Corrupt => ScimError::new(500, None, "a stored resource is unreadable"),
        other => ScimError::new(503, None, format!("directory store unavailable: {other}")),
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.into_owned())
}

/// The parsed `filter` of a query, if it has one.
fn filter_of(query: Option<&str>) -> Result<Option<Filter>, ScimError> {
    match query_param(query, "filter") {
        Some(f) if !f.trim().is_empty() => Ok(Some(filter::parse(&f)?)),
        _ => Ok(None),
    }
}

/// `startIndex` (1-based) and `count` (at most [`MAX_PAGE`]).
fn paging(query: Option<&str>) -> (usize, usize) {
    let start = query_param(query, "startIndex")
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(1)
        .max(1) as usize;
    let count = query_param(query, "count")
        .and_then(|s| s.parse::<i64>().ok())
        .map(|c| c.max(0) as usize)
        .unwrap_or(MAX_PAGE)
        .min(MAX_PAGE);
    (start, count)
}

/// An equality an index answers: (index name, or "id"; the compared value).
fn indexed_equality(kind: Kind, f: &Filter) -> Option<(&'static str, String)> {
    use resource::index;
    let core = |p: &AttrPath| p.urn.as_deref().is_none_or(filter::is_core_urn);
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    match f {
        Filter::Compare(p, Op::Eq, v) if core(p) => {
            let value = text(v)?;
            let name = match (kind, p.attr.as_str(), p.sub.as_deref()) {
                (_, a, None) if is(a, "id") => "id",
                (_, a, None) if is(a, "externalId") => index::EXTERNAL_ID,
                (Kind::User, a, None) if is(a, "userName") => index::USER_NAME,
                (Kind::Group, a, None) if is(a, "displayName") => index::DISPLAY_NAME,
                (Kind::User, a, Some(s)) if is(a, "emails") && is(s, "value") => index::EMAIL,
                (Kind::Group, a, Some(s)) if is(a, "members") && is(s, "value") => index::MEMBER,
                _ => return None,
            };
            Some((name, value))
        }
        // `emails[type eq "work"].value eq "x"`, `emails[value eq "x"]`,
        // `members[value eq "id"]`
        Filter::ValuePath { attr, filter, then } if core(attr) && attr.sub.is_none() => {
            let inner = match then.as_deref() {
                Some(t) => t,
                None => filter.as_ref(),
            };
            let Filter::Compare(p, Op::Eq, v) = inner else {
                return None;
            };
            if p.urn.is_some() || p.sub.is_some() || !is(&p.attr, "value") {
                return None;
            }
            let name = match kind {
                Kind::User if is(&attr.attr, "emails") => index::EMAIL,
                Kind::Group if is(&attr.attr, "members") => index::MEMBER,
                _ => return None,
            };
            Some((name, text(v)?))
        }
        _ => None,
    }
}

/// A request method as a metric label, from a fixed set (a client picks the method).
pub fn method_label(method: &str) -> &'static str {
    ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .into_iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .unwrap_or("other")
}

/// The path after `/scim/v2`, as segments.
fn segments(path: &str) -> Vec<&str> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// The metric label of a request's resource (a fixed set).
fn resource_of(segments: &[&str]) -> &'static str {
    match segments.first().copied() {
        Some(s) if s.eq_ignore_ascii_case("Users") => "Users",
        Some(s) if s.eq_ignore_ascii_case("Groups") => "Groups",
        Some(s) if s.eq_ignore_ascii_case("ServiceProviderConfig") => "ServiceProviderConfig",
        Some(s) if s.eq_ignore_ascii_case("ResourceTypes") => "ResourceTypes",
        Some(s) if s.eq_ignore_ascii_case("Schemas") => "Schemas",
        Some(s) if s.eq_ignore_ascii_case(".search") => ".search",
        _ => "unknown",
    }
}

fn user_event_fields(res: &Value) -> (String, String, Option<String>) {
    (
        res.get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        get_ci(res, "userName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        get_ci(res, "externalId")
            .and_then(Value::as_str)
            .map(str::to_string),
    )
}

pub(crate) fn is_active(res: &Value) -> bool {
    get_ci(res, "active")
        .and_then(resource::coerce_bool)
        .unwrap_or(true)
}

impl ScimService {
    pub fn new(store: Arc<dyn SessionStore>, tokens: Vec<Secret<Vec<u8>>>) -> Self {
        Self { store, tokens }
    }

    /// The store holding the directory (and the sessions its effects end).
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// Bearer token against every configured token, in constant time per comparison.
    fn authorized(&self, header: Option<&[u8]>) -> bool {
        let Some(h) = header else { return false };
        let Some(token) = h
            .strip_prefix(b"Bearer ")
            .or_else(|| h.strip_prefix(b"bearer "))
        else {
            return false;
        };
        let token = token.trim_ascii();
        let mut ok = subtle::Choice::from(0);
        for t in &self.tokens {
            ok |= t.expose().as_slice().ct_eq(token);
        }
        bool::from(ok) && !token.is_empty()
    }

    /// The 401 answer for a request without a valid token, decided before its body is
    /// read; `None` when the token is good.
    pub fn refuse_unauthorized(
        &self,
        path: &str,
        authorization: Option<&[u8]>,
    ) -> Option<ScimResponse> {
        (!self.authorized(authorization)).then(|| {
            ScimResponse::error(
                ScimError::new(
                    401,
                    None,
                    "a valid bearer token (the Secret Token) is required",
                ),
                resource_of(&segments(path)),
            )
        })
    }

    pub async fn handle(&self, req: ScimRequest<'_>) -> ScimResponse {
        let mut response = self.handle_labelled(&req).await;
        response.method_label = method_label(req.method);
        response
    }

    async fn handle_labelled(&self, req: &ScimRequest<'_>) -> ScimResponse {
        let segments = segments(req.path);
        let resource = resource_of(&segments);
        if let Some(refusal) = self.refuse_unauthorized(req.path, req.authorization) {
            return refusal;
        }
        if req.body.len() > MAX_BODY {
            return ScimResponse::error(
                ScimError::new(413, None, "request body too large").over_limit("body_size"),
                resource,
            );
        }
        let result = self.route(req, &segments).await;
        match result {
            Ok(mut r) => {
                r.resource = resource;
                r
            }
            Err(e) => ScimResponse::error(e, resource),
        }
    }

    async fn route(&self, req: &ScimRequest<'_>, seg: &[&str]) -> Result<ScimResponse, ScimError> {
        let base = req.base_url;
        let kind = |s: &str| {
            if s.eq_ignore_ascii_case("Users") {
                Some(Kind::User)
            } else if s.eq_ignore_ascii_case("Groups") {
                Some(Kind::Group)
            } else {
                None
            }
        };
        let body = || -> Result<Value, ScimError> {
            serde_json::from_slice(req.body)
                .map_err(|_| ScimError::bad_request("invalidSyntax", "the body is not valid JSON"))
        };
        let method = req.method.to_ascii_uppercase();
        match (method.as_str(), seg) {
            ("GET", [s]) if s.eq_ignore_ascii_case("ServiceProviderConfig") => Ok(
                ScimResponse::ok(200, resource::service_provider_config(base), ""),
            ),
            ("GET", [s]) if s.eq_ignore_ascii_case("ResourceTypes") => {
                let all = vec![
                    resource::resource_type(Kind::User, base),
                    resource::resource_type(Kind::Group, base),
                ];
                Ok(ScimResponse::ok(200, list_response(all.len(), 1, all), ""))
            }
            ("GET", [s, id]) if s.eq_ignore_ascii_case("ResourceTypes") => {
                match kind(&format!("{id}s")) {
                    Some(k) => Ok(ScimResponse::ok(200, resource::resource_type(k, base), "")),
                    None => Err(ScimError::not_found("no such resource type")),
                }
            }
            ("GET", [s]) if s.eq_ignore_ascii_case("Schemas") => {
                let all = resource::schemas(base);
                Ok(ScimResponse::ok(200, list_response(all.len(), 1, all), ""))
            }
            ("GET", [s, id]) if s.eq_ignore_ascii_case("Schemas") => resource::schemas(base)
                .into_iter()
                .find(|sc| {
                    sc.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|i| i.eq_ignore_ascii_case(id))
                })
                .map(|sc| ScimResponse::ok(200, sc, ""))
                .ok_or_else(|| ScimError::not_found("no such schema")),
            ("POST", [s]) if *s == ".search" => {
                let b = body()?;
                let query = search_query(&b);
                self.search_all(Some(&query)).await
            }
            (_, [s, ..])
                if ["ServiceProviderConfig", "ResourceTypes", "Schemas"]
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(s)) =>
            {
                Err(ScimError::new(
                    405,
                    None,
                    "discovery endpoints are read-only",
                ))
            }
            ("GET", [r]) if kind(r).is_some() => {
                let k = kind(r).ok_or_else(|| ScimError::not_found("no such endpoint"))?;
                self.list(k, req.query).await
            }
            ("POST", [r, s]) if kind(r).is_some() && s.eq_ignore_ascii_case(".search") => {
                let k = kind(r).ok_or_else(|| ScimError::not_found("no such endpoint"))?;
                let b = body()?;
                let query = search_query(&b);
                self.list(k, Some(&query)).await
            }
            ("POST", [r]) if kind(r).is_some() => {
                let k = kind(r).ok_or_else(|| ScimError::not_found("no such endpoint"))?;
                self.create(k, body()?, base).await
            }
            ("GET", [r, id]) if kind(r).is_some() => {
                let k = kind(r).ok_or_else(|| ScimError::not_found("no such endpoint"))?;
                let attrs = query_param(req.query, "attributes");
                let excl = query_param(req.query, "excludedAttributes");
                let members = resource::shows(attrs.as_deref(), excl.as_deref(), "members");
                let res = self.get_shown(k, id, members).await?;
                Ok(ScimResponse::ok(
                    200,
                    resource::project(&res, attrs.as_deref(), excl.as_deref()),
                    "",
                ))
            }
            ("PUT", [r, id]) if kind(r).is_some() => {
                let k = kind(r).ok_or_else(|| ScimError::not_found("no such endpoint"))?;
                self.replace(k, id, body()?, base).await
            }
            ("PATCH", [r, id]) if kind(r).is_some() => {
                let k = kind(r).ok_or_else(|| ScimError::not_found("no such endpoint"))?;
                self.patch(k, id, body()?, base).await
            }
            ("DELETE", [r, id]) if kind(r).is_some() => {
                let k = kind(r).ok_or_else(|| ScimError::not_found("no such endpoint"))?;
                self.delete(k, id).await
            }
            (_, [r, ..]) if kind(r).is_some() => {
                Err(ScimError::new(405, None, "method not allowed here"))
            }
            _ => Err(ScimError::not_found("no such SCIM endpoint")),
        }
    }

    /// A resource as clients see it (a group with its members).
    pub async fn get(&self, kind: Kind, id: &str) -> Result<Value, ScimError> {
        self.get_shown(kind, id, true).await
    }

    /// A resource; a group with its members only when `members` (Entra reads groups
    /// with `excludedAttributes=members`: a group of any size is then one small read).
    async fn get_shown(&self, kind: Kind, id: &str, members: bool) -> Result<Value, ScimError> {
        let (doc, _) = self.get_raw(kind, id).await?;
        self.shown(kind, vec![doc], members)
            .await?
            .pop()
            .ok_or_else(|| store_error(SessionError::Corrupt))
    }

    /// Stored documents as clients see them: groups get their members (kept beside them
    /// by the store) when `members`, else none.
    async fn shown(
        &self,
        kind: Kind,
        mut docs: Vec<Value>,
        members: bool,
    ) -> Result<Vec<Value>, ScimError> {
        if kind != Kind::Group {
            return Ok(docs);
        }
        if !members {
            for d in &mut docs {
                resource::take_members(d);
            }
            return Ok(docs);
        }
        let ids = ids_of(&docs);
        let mut lists = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            lists.extend(
                self.store
                    .doc_members_many(GROUPS, chunk)
                    .await
                    .map_err(store_error)?,
            );
        }
        if lists.len() != docs.len() {
            return Err(store_error(SessionError::Corrupt));
        }
        Ok(docs
            .into_iter()
            .zip(lists)
            .map(|(d, m)| resource::with_members(d, m))
            .collect())
    }

    /// The ids of a group's members.
    async fn member_ids(&self, id: &str) -> Result<Vec<String>, ScimError> {
        Ok(self
            .store
            .doc_members(GROUPS, id)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|(m, _)| m)
            .collect())
    }

    /// A stored resource and its stored bytes (for a compare-and-set write).
    async fn get_raw(&self, kind: Kind, id: &str) -> Result<(Value, Vec<u8>), ScimError> {
        let bytes = self
            .store
            .doc_get(collection(kind), id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ScimError::not_found(format!("{} {id} not found", kind.name())))?;
        let v = serde_json::from_slice(&bytes).map_err(|_| store_error(SessionError::Corrupt))?;
        Ok((v, bytes))
    }

    /// Every resource of a kind as clients see it (groups with their members).
    pub async fn all(&self, kind: Kind) -> Result<Vec<Value>, ScimError> {
        let docs = self.all_stored(kind).await?;
        self.shown(kind, docs, true).await
    }

    /// Every resource of a kind as stored (groups without their members).
    async fn all_stored(&self, kind: Kind) -> Result<Vec<Value>, ScimError> {
        let docs = self
            .store
            .doc_list(collection(kind))
            .await
            .map_err(store_error)?;
        Ok(docs
            .into_iter()
            .filter_map(|d| serde_json::from_slice::<Value>(&d).ok())
            .collect())
    }

    /// The user whose userName is `user_name` (case-insensitive).
    pub async fn user_by_name(&self, user_name: &str) -> Result<Option<Value>, ScimError> {
        let id = self
            .store
            .doc_find(USERS, resource::index::USER_NAME, &user_name.to_lowercase())
            .await
            .map_err(store_error)?;
        match id {
            None => Ok(None),
            Some(id) => match self.get(Kind::User, &id).await {
                Ok(u) => Ok(Some(u)),
                Err(e) if e.status == 404 => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// One page of a kind in creation order (`start` 0-based): the total and the page,
    /// groups without their member lists (see [`Self::member_counts`]).
    pub async fn page_of(
        &self,
        kind: Kind,
        start: usize,
        count: usize,
    ) -> Result<(usize, Vec<Value>), ScimError> {
        let coll = collection(kind);
        let total = self.store.doc_count(coll).await.map_err(store_error)?;
        let docs = self
            .store
            .doc_page(coll, start, count)
            .await
            .map_err(store_error)?;
        let docs = docs
            .iter()
            .filter_map(|(_, d)| serde_json::from_slice(d).ok())
            .collect();
        Ok((total, self.shown(kind, docs, false).await?))
    }

    /// The resources a SCIM filter selects (through an index when it can).
    pub async fn search(&self, kind: Kind, filter: &str) -> Result<Vec<Value>, ScimError> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filter", filter)
            .finish();
        self.matching(kind, Some(&query)).await
    }

    /// [`Self::search`] with groups' member lists left out (read only where the filter
    /// needs them): listings of large groups never load their lists.
    pub async fn search_without_members(
        &self,
        kind: Kind,
        filter: &str,
    ) -> Result<Vec<Value>, ScimError> {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filter", filter)
            .append_pair("excludedAttributes", "members")
            .finish();
        let found = self.matching(kind, Some(&query)).await?;
        self.shown(kind, found, false).await
    }

    /// How many members each group has, counted beside it (the lists are not read).
    pub async fn member_counts(&self, groups: &[Value]) -> Result<Vec<usize>, ScimError> {
        let ids = ids_of(groups);
        let mut counts = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            counts.extend(
                self.store
                    .doc_member_counts(GROUPS, chunk)
                    .await
                    .map_err(store_error)?,
            );
        }
        Ok(counts)
    }

    /// Rebuild both collections' indexes from the documents (the repair when they ever
    /// disagree); the number of documents and index entries per kind.
    pub async fn reindex(&self) -> Result<Vec<(Kind, usize, usize)>, ScimError> {
        let mut out = Vec::new();
        for kind in [Kind::User, Kind::Group] {
            let coll = collection(kind);
            let total = self.store.doc_count(coll).await.map_err(store_error)?;
            let mut entries = Vec::with_capacity(total);
            let mut start = 0;
            while start < total {
                let page = self
                    .store
                    .doc_page(coll, start, 1000)
                    .await
                    .map_err(store_error)?;
                if page.is_empty() {
                    break;
                }
                start += page.len();
                let docs: Vec<Value> = page
                    .iter()
                    .filter_map(|(_, d)| serde_json::from_slice::<Value>(d).ok())
                    .collect();
                // A group's member entries come from its members (beside it).
                for v in self.shown(kind, docs, true).await? {
                    if let Some(id) = v.get("id").and_then(Value::as_str) {
                        entries.push((id.to_string(), resource::index_of(kind, &v)));
                    }
                }
            }
            let n = self
                .store
                .doc_reindex(coll, &entries)
                .await
                .map_err(store_error)?;
            out.push((kind, entries.len(), n));
        }
        Ok(out)
    }

    /// The users whose externalId is `external_id` (case-exact).
    pub async fn users_by_external_id(&self, external_id: &str) -> Result<Vec<Value>, ScimError> {
        let ids = self
            .store
            .doc_find_all(USERS, resource::index::EXTERNAL_ID, external_id)
            .await
            .map_err(store_error)?;
        self.get_many(Kind::User, ids).await
    }

    /// (route identity, display name) of the groups whose members include `member_id`:
    /// the member index and the groups' summaries, never their member lists (two round
    /// trips, whatever the groups' sizes).
    pub async fn group_refs_of_member(
        &self,
        member_id: &str,
    ) -> Result<Vec<(String, String)>, ScimError> {
        Ok(self
            .store
            .doc_find_summaries(GROUPS, resource::index::MEMBER, member_id)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|s| match s.split_once('\t') {
                Some((r, name)) => (r.to_string(), name.to_string()),
                None => (s.clone(), s),
            })
            .collect())
    }

    /// The groups whose members include `member_id` (from the member index).
    pub async fn groups_of_member(&self, member_id: &str) -> Result<Vec<Value>, ScimError> {
        let ids = self
            .store
            .doc_find_all(GROUPS, resource::index::MEMBER, member_id)
            .await
            .map_err(store_error)?;
        self.get_many(Kind::Group, ids).await
    }

    /// `POST /.search`: Users and Groups at once.
    async fn search_all(&self, query: Option<&str>) -> Result<ScimResponse, ScimError> {
        let mut resources = self.matching(Kind::User, query).await?;
        resources.extend(self.matching(Kind::Group, query).await?);
        Ok(self.page(resources, query))
    }

    async fn list(&self, kind: Kind, query: Option<&str>) -> Result<ScimResponse, ScimError> {
        if filter_of(query)?.is_some() {
            let resources = self.matching(kind, query).await?;
            return Ok(self.page(resources, query));
        }
        // No filter: a page straight from the store, in creation order.
        let (start, count) = paging(query);
        let total = self
            .store
            .doc_count(collection(kind))
            .await
            .map_err(store_error)?;
        let docs = self
            .store
            .doc_page(collection(kind), start - 1, count)
            .await
            .map_err(store_error)?;
        let attrs = query_param(query, "attributes");
        let excl = query_param(query, "excludedAttributes");
        let docs = docs
            .iter()
            .filter_map(|(_, d)| serde_json::from_slice::<Value>(d).ok())
            .collect();
        let members = resource::shows(attrs.as_deref(), excl.as_deref(), "members");
        let page: Vec<Value> = self
            .shown(kind, docs, members)
            .await?
            .iter()
            .map(|r| resource::project(r, attrs.as_deref(), excl.as_deref()))
            .collect();
        Ok(ScimResponse::ok(200, list_response(total, start, page), ""))
    }

    /// The resources of a kind that the query's filter selects, in a stable order. An
    /// equality on an indexed attribute (what Entra asks) reads only the documents the
    /// index names; anything else scans the collection.
    async fn matching(&self, kind: Kind, query: Option<&str>) -> Result<Vec<Value>, ScimError> {
        let filter = filter_of(query)?;
        let candidates = match &filter {
            Some(f) => match self.candidates(kind, f).await? {
                Some(ids) => Some(self.get_many(kind, ids).await?),
                None => None,
            },
            None => None,
        };
        let docs = match candidates {
            Some(docs) => docs,
            None => self.all_stored(kind).await?,
        };
        // Members are read when the filter or the response needs them.
        let members = filter.as_ref().is_some_and(mentions_members)
            || resource::shows(
                query_param(query, "attributes").as_deref(),
                query_param(query, "excludedAttributes").as_deref(),
                "members",
            );
        let docs = self.shown(kind, docs, members).await?;
        let mut all: Vec<Value> = docs
            .into_iter()
            .filter(|r| filter.as_ref().is_none_or(|f| filter::matches(f, r)))
            .collect();
        // A stable order for pagination: creation time, then id.
        all.sort_by(|a, b| {
            let key = |v: &Value| {
                (
                    v.pointer("/meta/created")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    v.get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(all)
    }

    /// Documents by id (missing ones left out).
    async fn get_many(&self, kind: Kind, mut ids: Vec<String>) -> Result<Vec<Value>, ScimError> {
        ids.sort();
        ids.dedup();
        let docs = self
            .store
            .doc_get_many(collection(kind), &ids)
            .await
            .map_err(store_error)?;
        Ok(docs
            .into_iter()
            .flatten()
            .filter_map(|d| serde_json::from_slice::<Value>(&d).ok())
            .collect())
    }

    /// The ids an index names for this filter (a superset of the matches: the filter is
    /// applied to them afterwards), or `None` when no index answers it.
    async fn candidates(&self, kind: Kind, f: &Filter) -> Result<Option<Vec<String>>, ScimError> {
        use resource::index;
        let coll = collection(kind);
        let store_err = |e| store_error(e);
        match f {
            Filter::And(a, b) => match Box::pin(self.candidates(kind, a)).await? {
                Some(ids) => Ok(Some(ids)),
                None => Box::pin(self.candidates(kind, b)).await,
            },
            Filter::Or(a, b) => {
                let (Some(mut x), Some(y)) = (
                    Box::pin(self.candidates(kind, a)).await?,
                    Box::pin(self.candidates(kind, b)).await?,
                ) else {
                    return Ok(None);
                };
                x.extend(y);
                Ok(Some(x))
            }
            _ => {
                let Some((attr, value)) = indexed_equality(kind, f) else {
                    return Ok(None);
                };
                let ids = match attr {
                    "id" => vec![value],
                    index::USER_NAME | index::DISPLAY_NAME => self
                        .store
                        .doc_find(coll, attr, &value.to_lowercase())
                        .await
                        .map_err(store_err)?
                        .into_iter()
                        .collect(),
                    index::EMAIL => self
                        .store
                        .doc_find_all(coll, attr, &value.to_lowercase())
                        .await
                        .map_err(store_err)?,
                    _ => self
                        .store
                        .doc_find_all(coll, attr, &value)
                        .await
                        .map_err(store_err)?,
                };
                Ok(Some(ids))
            }
        }
    }

    /// startIndex / count / attributes / excludedAttributes over `all`.
    fn page(&self, all: Vec<Value>, query: Option<&str>) -> ScimResponse {
        let (start, count) = paging(query);
        let total = all.len();
        let attrs = query_param(query, "attributes");
        let excl = query_param(query, "excludedAttributes");
        let page: Vec<Value> = all
            .iter()
            .skip(start - 1)
            .take(count)
            .map(|r| resource::project(r, attrs.as_deref(), excl.as_deref()))
            .collect();
        ScimResponse::ok(200, list_response(total, start, page), "")
    }

    async fn create(&self, kind: Kind, body: Value, base: &str) -> Result<ScimResponse, ScimError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let location = format!("{base}/{}/{id}", kind.endpoint());
        let res = resource::normalize(kind, body, &id, &now, &now, 1, &location)?;
        resource::unique_value(kind, &res)?;
        // A group is stored without its members: the store keeps them beside it.
        let mut stored = res.clone();
        let mut members = MemberChange::default();
        if kind == Kind::Group {
            members = resource::replace_members(&[], &resource::take_members(&mut stored));
            self.check_members(members.add.iter().map(|(m, _)| m.clone()).collect())
                .await?;
        }
        let bytes =
            serde_json::to_vec(&stored).map_err(|e| ScimError::new(500, None, e.to_string()))?;
        match self
            .store
            .doc_update(
                collection(kind),
                &id,
                &bytes,
                &resource::index_of(kind, &stored),
                &DocIndex::default(),
                None,
                &members,
            )
            .await
            .map_err(store_error)?
            .write
        {
            DocWrite::Conflict | DocWrite::Stale => Err(ScimError::conflict(format!(
                "a {} with this {} already exists",
                kind.name(),
                kind.unique_attr()
            ))),
            DocWrite::Written => {
                let mut events = vec![ScimEvent::Changed {
                    resource: kind.endpoint(),
                    id: id.clone(),
                    op: "create",
                }];
                if kind == Kind::User && !is_active(&res) {
                    let (id, user_name, external_id) = user_event_fields(&res);
                    events.push(ScimEvent::UserDeactivated {
                        id,
                        user_name,
                        external_id,
                    });
                }
                Ok(ScimResponse {
                    status: 201,
                    body: Some(res),
                    location: Some(location),
                    events,
                    resource: "",
                    method_label: "other",
                    over_limit: None,
                })
            }
        }
    }

    /// Members must name existing users or groups: `ids`, the members a write adds, in
    /// two round trips whatever their number.
    async fn check_members(&self, mut ids: Vec<String>) -> Result<(), ScimError> {
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(());
        }
        let users = self
            .store
            .doc_get_many(USERS, &ids)
            .await
            .map_err(store_error)?;
        let not_users: Vec<String> = ids
            .iter()
            .zip(users)
            .filter(|(_, u)| u.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        let groups = self
            .store
            .doc_get_many(GROUPS, &not_users)
            .await
            .map_err(store_error)?;
        if let Some((missing, _)) = not_users.iter().zip(groups).find(|(_, g)| g.is_none()) {
            return Err(ScimError::bad_request(
                "invalidValue",
                format!("member {missing} does not exist"),
            ));
        }
        Ok(())
    }

    /// Write `new` over `old` (whose stored bytes are `old_raw`), a group's `members`
    /// changed in the same step; `None` when the stored resource changed meanwhile (the
    /// caller reads again and retries). The answer shows `shown` (else `new`).
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        kind: Kind,
        old_raw: &[u8],
        old: &Value,
        new: Value,
        shown: Option<Value>,
        op: &'static str,
        members: &MemberChange,
    ) -> Result<Option<ScimResponse>, ScimError> {
        let id = new
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let unique = resource::unique_value(kind, &new)?;
        let previous = resource::unique_value(kind, old).ok();
        let bytes =
            serde_json::to_vec(&new).map_err(|e| ScimError::new(500, None, e.to_string()))?;
        let update = self
            .store
            .doc_update(
                collection(kind),
                &id,
                &bytes,
                &resource::index_of(kind, &new),
                &resource::index_of(kind, old),
                Some(old_raw),
                members,
            )
            .await
            .map_err(store_error)?;
        match update.write {
            DocWrite::Stale => Ok(None),
            DocWrite::Conflict => Err(ScimError::conflict(format!(
                "another {} has this {}",
                kind.name(),
                kind.unique_attr()
            ))),
            DocWrite::Written => {
                let mut events = vec![ScimEvent::Changed {
                    resource: kind.endpoint(),
                    id: id.clone(),
                    op: "update",
                }];
                if kind == Kind::User && !is_active(old) && is_active(&new) {
                    events.push(ScimEvent::UserReactivated { id: id.clone() });
                }
                if kind == Kind::Group && update.added + update.removed > 0 {
                    events.push(ScimEvent::Membership {
                        group: id.clone(),
                        added: update.added,
                        removed: update.removed,
                    });
                }
                if kind == Kind::User && is_active(old) && !is_active(&new) {
                    let (id, user_name, external_id) = user_event_fields(&new);
                    events.push(ScimEvent::UserDeactivated {
                        id,
                        user_name,
                        external_id,
                    });
                }
                // A renamed user (a UPN change): sessions signed in under the old name
                // end (the app would see the old name); the person, found by object ID,
                // keeps one record and signs in again under the new name.
                if kind == Kind::User && previous.as_deref() != Some(unique.as_str()) {
                    let (id, old_user_name, _) = user_event_fields(old);
                    events.push(ScimEvent::UserRenamed { id, old_user_name });
                }
                // Entra expects 204 for group PATCH; users get the resource.
                let (status, body) = if kind == Kind::Group && op == "patch" {
                    (204, None)
                } else {
                    (200, Some(shown.unwrap_or(new)))
                };
                Ok(Some(ScimResponse {
                    status,
                    body,
                    location: None,
                    events,
                    resource: "",
                    method_label: "other",
                    over_limit: None,
                }))
            }
        }
    }

    fn bump_meta(kind: Kind, res: &mut Value, old: &Value) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let version = old
            .pointer("/meta/version")
            .and_then(Value::as_str)
            .and_then(|v| {
                v.trim_start_matches("W/")
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            + 1;
        if let Some(meta) = res.get_mut("meta").and_then(Value::as_object_mut) {
            meta.insert("lastModified".into(), Value::String(now));
            meta.insert("version".into(), Value::String(format!("W/\"{version}\"")));
            meta.insert("resourceType".into(), Value::String(kind.name().into()));
        }
    }

    async fn replace(
        &self,
        kind: Kind,
        id: &str,
        body: Value,
        base: &str,
    ) -> Result<ScimResponse, ScimError> {
        for attempt in 0..WRITE_ATTEMPTS {
            backoff(attempt).await;
            let (old, raw) = self.get_raw(kind, id).await?;
            let created = old
                .pointer("/meta/created")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let location = format!("{base}/{}/{id}", kind.endpoint());
            let mut new =
                resource::normalize(kind, body.clone(), id, &created, &now, 1, &location)?;
            Self::bump_meta(kind, &mut new, &old);
            let shown = new.clone();
            let mut members = MemberChange::default();
            if kind == Kind::Group {
                let current = self.member_ids(id).await?;
                members = self.whole_list(&current, &old, &mut new).await?;
            }
            if let Some(r) = self
                .write(kind, &raw, &old, new, Some(shown), "replace", &members)
                .await?
            {
                return Ok(r);
            }
        }
        Err(busy())
    }

    async fn patch(
        &self,
        kind: Kind,
        id: &str,
        body: Value,
        _base: &str,
    ) -> Result<ScimResponse, ScimError> {
        // Read, apply, write only if nobody wrote meanwhile (concurrent membership
        // PATCHes from Entra, or through two replicas, lose nothing).
        for attempt in 0..WRITE_ATTEMPTS {
            backoff(attempt).await;
            let (old, raw) = self.get_raw(kind, id).await?;
            let (mut new, members) = match kind {
                Kind::User => {
                    let mut new = old.clone();
                    patch::apply(kind, &mut new, &body)?;
                    (new, MemberChange::default())
                }
                Kind::Group => self.patch_group(id, &old, &body).await?,
            };
            if new.get("id") != old.get("id") {
                return Err(ScimError::bad_request("mutability", "id cannot be changed"));
            }
            Self::bump_meta(kind, &mut new, &old);
            if let Some(r) = self
                .write(kind, &raw, &old, new, None, "patch", &members)
                .await?
            {
                return Ok(r);
            }
        }
        Err(busy())
    }

    /// The member change that makes the members of `new` (taken out of it) a group's whole
    /// list, its list being `current` and any members left inside the stored `old` (the
    /// layout before lists moved out). The members it adds must exist.
    async fn whole_list(
        &self,
        current: &[String],
        old: &Value,
        new: &mut Value,
    ) -> Result<MemberChange, ScimError> {
        let mut known: std::collections::HashSet<&str> =
            current.iter().map(String::as_str).collect();
        let inline = resource::take_members(&mut old.clone());
        let inline: Vec<(String, String)> =
            inline.iter().filter_map(resource::member_entry).collect();
        known.extend(inline.iter().map(|(m, _)| m.as_str()));
        let members = resource::replace_members(current, &resource::take_members(new));
        self.check_members(
            members
                .add
                .iter()
                .filter(|(m, _)| !known.contains(m.as_str()))
                .map(|(m, _)| m.clone())
                .collect(),
        )
        .await?;
        Ok(members)
    }

    /// A group PATCH applied to the stored group `old` (without members): the new stored
    /// group and the member change. Entra's membership operations become deltas that
    /// never read the member list (one member in or out of a group of any size is O(1));
    /// other forms patch the whole list.
    async fn patch_group(
        &self,
        id: &str,
        old: &Value,
        body: &Value,
    ) -> Result<(Value, MemberChange), ScimError> {
        use std::collections::{BTreeMap, BTreeSet};
        let inline = old.get("members").is_some(); // the layout before members moved out
        let split = if inline {
            None
        } else {
            patch::split_members(body)?
        };
        let Some((ops, rest)) = split else {
            // The whole list: read, patch, write it back.
            let current = self
                .store
                .doc_members(GROUPS, id)
                .await
                .map_err(store_error)?;
            let current_ids: Vec<String> = current.iter().map(|(m, _)| m.clone()).collect();
            let mut new = resource::with_members(old.clone(), current);
            patch::apply(Kind::Group, &mut new, body)?;
            let members = self.whole_list(&current_ids, old, &mut new).await?;
            return Ok((new, members));
        };
        let mut new = old.clone();
        patch::apply(Kind::Group, &mut new, &rest)?;
        resource::take_members(&mut new);
        let (mut clear, mut add, mut remove) = (false, BTreeMap::new(), BTreeSet::new());
        for op in ops {
            match op {
                patch::MemberOp::Clear => {
                    clear = true;
                    add.clear();
                    remove.clear();
                }
                patch::MemberOp::Add(entries) => {
                    for (m, attrs) in entries {
                        remove.remove(&m);
                        add.insert(m, attrs);
                    }
                }
                patch::MemberOp::Remove(ids) => {
                    for m in ids {
                        add.remove(&m);
                        if !clear {
                            remove.insert(m);
                        }
                    }
                }
            }
        }
        if clear {
            // Everyone out but those added back (read once; a concurrent change to the
            // group changes its document, and the compare-and-set write retries).
            for m in self.member_ids(id).await? {
                if !add.contains_key(&m) {
                    remove.insert(m);
                }
            }
        }
        self.check_members(add.keys().cloned().collect()).await?;
        Ok((
            new,
            MemberChange {
                index: resource::index::MEMBER.to_string(),
                add: add.into_iter().collect(),
                remove: remove.into_iter().collect(),
            },
        ))
    }

    async fn delete(&self, kind: Kind, id: &str) -> Result<ScimResponse, ScimError> {
        let old = self.get(kind, id).await?;
        let existed = self
            .store
            .doc_delete(collection(kind), id, &resource::index_of(kind, &old))
            .await
            .map_err(store_error)?;
        if !existed {
            return Err(ScimError::not_found(format!(
                "{} {id} not found",
                kind.name()
            )));
        }
        let mut events = vec![ScimEvent::Changed {
            resource: kind.endpoint(),
            id: id.to_string(),
            op: "delete",
        }];
        // Out of every group it was in (the member index names them; compare-and-set,
        // retried on a race).
        let groups = self
            .store
            .doc_find_all(GROUPS, resource::index::MEMBER, id)
            .await
            .map_err(store_error)?;
        let leave = json!({"Operations": [
            {"op": "remove", "path": "members", "value": [{"value": id}]}
        ]});
        for gid in &groups {
            for attempt in 0..WRITE_ATTEMPTS {
                backoff(attempt).await;
                let Ok((old_group, raw)) = self.get_raw(Kind::Group, gid).await else {
                    break;
                };
                // The PATCH Entra would send (a delta; the whole list for a group of the
                // earlier layout). The store failing fails the request; a group that
                // cannot take the PATCH is left as it is.
                let (mut group, members) = match self.patch_group(gid, &old_group, &leave).await {
                    Ok(done) => done,
                    Err(e) if e.status >= 500 => return Err(e),
                    Err(_) => break,
                };
                Self::bump_meta(Kind::Group, &mut group, &old_group);
                let bytes = serde_json::to_vec(&group)
                    .map_err(|e| ScimError::new(500, None, e.to_string()))?;
                let w = self
                    .store
                    .doc_update(
                        GROUPS,
                        gid,
                        &bytes,
                        &resource::index_of(Kind::Group, &group),
                        &resource::index_of(Kind::Group, &old_group),
                        Some(&raw),
                        &members,
                    )
                    .await
                    .map_err(store_error)?
                    .write;
                if w != DocWrite::Stale {
                    break;
                }
            }
        }
        if kind == Kind::User {
            let (id, user_name, external_id) = user_event_fields(&old);
            events.push(ScimEvent::UserDeleted {
                id,
                user_name,
                external_id,
            });
        }
        Ok(ScimResponse {
            status: 204,
            body: None,
            location: None,
            events,
            resource: "",
            method_label: "other",
            over_limit: None,
        })
    }
}

/// Whether a filter reads a group's members.
fn mentions_members(f: &Filter) -> bool {
    match f {
        Filter::Compare(a, _, _) | Filter::Present(a) => a.attr.eq_ignore_ascii_case("members"),
        Filter::ValuePath { attr, .. } => attr.attr.eq_ignore_ascii_case("members"),
        Filter::And(a, b) | Filter::Or(a, b) => mentions_members(a) || mentions_members(b),
        Filter::Not(a) => mentions_members(a),
    }
}

/// The `id`s of resources, in order ("" for one without).
fn ids_of(resources: &[Value]) -> Vec<String> {
    resources
        .iter()
        .map(|r| {
            r.get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// A `.search` body as the equivalent query string.
fn search_query(b: &Value) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for key in [
        "filter",
        "startIndex",
        "count",
        "attributes",
        "excludedAttributes",
    ] {
        if let Some(v) = get_ci(b, key) {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            q.append_pair(key, &text);
        }
    }
    q.finish()
}

fn list_response(total: usize, start: usize, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: Kind, f: &str) -> Option<(&'static str, String)> {
        indexed_equality(kind, &filter::parse(f).expect("filter"))
    }

    #[test]
    fn entras_lookups_are_answered_by_an_index() {
        use resource::index;
        for (kind, f, want) in [
            (
                Kind::User,
                r#"userName eq "Ann@X.com""#,
                (index::USER_NAME, "Ann@X.com"),
            ),
            (
                Kind::User,
                r#"externalId eq "6b2e""#,
                (index::EXTERNAL_ID, "6b2e"),
            ),
            (
                Kind::User,
                "externalId eq 6b2e-1",
                (index::EXTERNAL_ID, "6b2e-1"),
            ),
            (
                Kind::User,
                "externalId eq 12345",
                (index::EXTERNAL_ID, "12345"),
            ),
            (Kind::User, r#"id eq "u1""#, ("id", "u1")),
            (
                Kind::User,
                r#"emails[type eq "work"].value eq "a@x.com""#,
                (index::EMAIL, "a@x.com"),
            ),
            (
                Kind::User,
                r#"emails.value eq "a@x.com""#,
                (index::EMAIL, "a@x.com"),
            ),
            (
                Kind::User,
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a""#,
                (index::USER_NAME, "a"),
            ),
            (
                Kind::Group,
                r#"displayName eq "Admins""#,
                (index::DISPLAY_NAME, "Admins"),
            ),
            (
                Kind::Group,
                r#"members[value eq "u1"]"#,
                (index::MEMBER, "u1"),
            ),
            (
                Kind::Group,
                r#"members.value eq "u1""#,
                (index::MEMBER, "u1"),
            ),
        ] {
            assert_eq!(plan(kind, f), Some((want.0, want.1.to_string())), "{f}");
        }
        for (kind, f) in [
            (Kind::User, r#"userName co "a""#),
            (Kind::User, r#"userName ne "a""#),
            (Kind::User, r#"displayName eq "a""#),
            (Kind::Group, r#"userName eq "a""#),
            (Kind::User, r#"name.givenName eq "a""#),
            (
                Kind::User,
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1""#,
            ),
            (Kind::User, "active eq true"),
        ] {
            assert_eq!(plan(kind, f), None, "{f}");
        }
    }
}
