//! SCIM resources as JSON: the schema URNs, normalisation of what a client sends (server
//! attributes assigned, Entra's string booleans coerced), `attributes` /
//! `excludedAttributes` projection, and the discovery documents (`/ServiceProviderConfig`,
//! `/ResourceTypes`, `/Schemas`).

use super::filter::get_ci;
use super::ScimError;
use serde_json::{json, Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Entra adds this to group creations; accepted and kept, it carries nothing we need.
pub const ENTRA_GROUP_SCHEMA: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

/// Users or Groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }

    pub fn schema(self) -> &'static str {
        match self {
            Kind::User => USER_SCHEMA,
            Kind::Group => GROUP_SCHEMA,
        }
    }

    /// The attribute that must be unique (case-insensitive) and present.
    pub fn unique_attr(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }
}

/// Canonical spelling of the attributes we know, so `USERNAME` is stored as `userName`.
const KNOWN: &[&str] = &[
    "id",
    "externalId",
    "meta",
    "schemas",
    "userName",
    "name",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "active",
    "password",
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509Certificates",
    "members",
    "formatted",
    "familyName",
    "givenName",
    "middleName",
    "honorificPrefix",
    "honorificSuffix",
    "value",
    "display",
    "type",
    "primary",
    "$ref",
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
    "manager",
    "streetAddress",
    "locality",
    "region",
    "postalCode",
    "country",
];

pub fn canonical(name: &str) -> String {
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| k.to_string())
        .unwrap_or_else(|| {
            if name.eq_ignore_ascii_case(ENTERPRISE_USER) {
                ENTERPRISE_USER.to_string()
            } else {
                name.to_string()
            }
        })
}

/// Single-valued simple attributes (RFC 7643 §4.1, §4.3, §4.2; the enterprise extension),
/// top level or under `name`, as `(parent, attribute)`.
const SINGLE_VALUED: &[&str] = &[
    "userName",
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "active",
    "externalId",
    "formatted",
    "familyName",
    "givenName",
    "middleName",
    "honorificPrefix",
    "honorificSuffix",
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
];

/// Whether `name` (the last part of a path, `nickName` or `name.givenName`'s `givenName`)
/// is a single-valued simple attribute.
pub fn is_single_valued(name: &str) -> bool {
    SINGLE_VALUED.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Entra sends some single-valued attributes as a one-element list of `{"value": x}`
/// (`{"op":"Add","path":"nickName","value":[{"value":"Babs"}]}`): that is `x`.
pub fn unwrap_single(name: &str, value: Value) -> Value {
    if !is_single_valued(name) {
        return value;
    }
    match value {
        Value::Array(mut items) if items.len() == 1 => match items.pop() {
            Some(Value::Object(o))
                if o.len() == 1 && o.keys().all(|k| k.eq_ignore_ascii_case("value")) =>
            {
                o.into_iter().next().map_or(Value::Null, |(_, v)| v)
            }
            Some(other) => Value::Array(vec![other]),
            None => Value::Array(items),
        },
        other => other,
    }
}

/// `"True"`/`"False"` (any case) to a boolean, as Entra sends them without
/// `aadOptscim062020`.
pub fn coerce_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn canonicalize(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (canonical(&k), canonicalize(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(canonicalize).collect()),
        v => v,
    }
}

/// Booleans sent as strings become booleans (`active`, `primary`).
pub fn coerce_booleans(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, val) in o.iter_mut() {
                if k == "active" || k == "primary" {
                    if let Some(b) = coerce_bool(val) {
                        *val = Value::Bool(b);
                    }
                }
                coerce_booleans(val);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(coerce_booleans),
        _ => {}
    }
}

/// Index names of the directory (see [`index_of`]).
pub mod index {
    /// Users: lower-cased userName (unique). Groups: lower-cased displayName (unique).
    pub const USER_NAME: &str = "userName";
    pub const DISPLAY_NAME: &str = "displayName";
    /// Both: externalId as given (case-exact, several documents may share one).
    pub const EXTERNAL_ID: &str = "externalId";
    /// Users: every e-mail value, lower-cased.
    pub const EMAIL: &str = "email";
    /// Groups: each member's value (a user or group id): who is in which groups.
    pub const MEMBER: &str = "member";
}

/// The secondary-index entries of a stored resource: what the directory's lookups
/// (Entra's `userName eq`, `externalId eq`, `emails[type eq "work"].value eq`,
/// `displayName eq`, and sign-in's "which groups is this user in") find it by.
pub fn index_of(kind: Kind, res: &Value) -> crate::session::DocIndex {
    let mut ix = crate::session::DocIndex::default();
    let text = |name: &str| get_ci(res, name).and_then(Value::as_str);
    if let Ok(u) = unique_value(kind, res) {
        let name = match kind {
            Kind::User => index::USER_NAME,
            Kind::Group => index::DISPLAY_NAME,
        };
        ix.unique.push((name.to_string(), u));
    }
    if let Some(e) = text("externalId").filter(|e| !e.is_empty()) {
        ix.multi
            .push((index::EXTERNAL_ID.to_string(), e.to_string()));
    }
    let values = |attr: &str| -> Vec<String> {
        get_ci(res, attr)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| get_ci(m, "value").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut add = |name: &str, mut keys: Vec<String>| {
        keys.sort();
        keys.dedup();
        ix.multi
            .extend(keys.into_iter().map(|k| (name.to_string(), k)));
    };
    match kind {
        Kind::User => add(
            index::EMAIL,
            values("emails").iter().map(|e| e.to_lowercase()).collect(),
        ),
        Kind::Group => add(index::MEMBER, values("members")),
    }
    // A group's identity for routes (externalId = Entra object ID, else displayName)
    // and its display name, read at sign-in without its member list.
    if kind == Kind::Group {
        let name = text("displayName").unwrap_or_default();
        let route = text("externalId").filter(|e| !e.is_empty()).unwrap_or(name);
        ix.summary = Some(format!(
            "{}\t{}",
            route.replace('\t', " "),
            name.replace('\t', " ")
        ));
    }
    ix
}

/// A group member as the store keeps it beside the group: (member id, the member's other
/// attributes as a JSON object, or "" when it has none, as Entra sends them); `None`
/// without a string `value`.
pub fn member_entry(m: &Value) -> Option<(String, String)> {
    let obj = m.as_object()?;
    let key = obj
        .keys()
        .find(|k| k.eq_ignore_ascii_case("value"))?
        .clone();
    let id = obj.get(&key)?.as_str()?.to_string();
    let rest: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| **k != key)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let attrs = if rest.is_empty() {
        String::new()
    } else {
        Value::Object(rest).to_string()
    };
    Some((id, attrs))
}

/// The member change that makes a group's members exactly `members` (its current ones:
/// `current`): every given member written (attributes may have changed), the others
/// removed.
pub fn replace_members(current: &[String], members: &[Value]) -> crate::session::MemberChange {
    let add: Vec<(String, String)> = members.iter().filter_map(member_entry).collect();
    let keep: std::collections::HashSet<&str> = add.iter().map(|(m, _)| m.as_str()).collect();
    crate::session::MemberChange {
        index: index::MEMBER.to_string(),
        remove: current
            .iter()
            .filter(|m| !keep.contains(m.as_str()))
            .cloned()
            .collect(),
        add,
    }
}

/// Take a group's `members` out of it (the stored form has none: the store keeps them
/// beside it); the member objects it held.
pub fn take_members(group: &mut Value) -> Vec<Value> {
    let Some(obj) = group.as_object_mut() else {
        return Vec::new();
    };
    let keys: Vec<String> = obj
        .keys()
        .filter(|k| k.eq_ignore_ascii_case("members"))
        .cloned()
        .collect();
    let mut out = Vec::new();
    for k in keys {
        if let Some(Value::Array(a)) = obj.remove(&k) {
            out.extend(a);
        }
    }
    out
}

/// A group as clients see it: the stored document with its members (kept beside it by
/// the store) under `members`, ordered by id. Members still inside the document (the
/// layout before members moved out) are kept as well.
pub fn with_members(mut group: Value, stored: Vec<(String, String)>) -> Value {
    let mut by_id = std::collections::BTreeMap::new();
    for m in take_members(&mut group) {
        if let Some((id, _)) = member_entry(&m) {
            by_id.insert(id, m);
        }
    }
    for (id, attrs) in stored {
        let mut o = serde_json::from_str::<Map<String, Value>>(&attrs).unwrap_or_default();
        o.insert("value".into(), Value::String(id.clone()));
        by_id.insert(id, Value::Object(o));
    }
    if let Some(obj) = group.as_object_mut() {
        obj.insert(
            "members".into(),
            Value::Array(by_id.into_values().collect()),
        );
    }
    group
}

/// Whether a response projected by `attributes` / `excludedAttributes` shows `name` (a
/// top-level attribute): when it does not, it need not be loaded.
pub fn shows(attributes: Option<&str>, excluded: Option<&str>, name: &str) -> bool {
    let name = name.to_lowercase();
    match (attributes, excluded) {
        (Some(a), _) if !a.trim().is_empty() => attribute_names(a).contains(&name),
        (_, Some(e)) if !e.trim().is_empty() => !attribute_names(e).contains(&name),
        _ => true,
    }
}

/// The top-level attributes (lower case) of a comma list of attribute paths:
/// `urn:…:User:userName` and `name.givenName` keep their top-level part.
fn attribute_names(s: &str) -> Vec<String> {
    s.split(',')
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(|a| {
            let a = if a.len() > 4 && a.as_bytes()[..4].eq_ignore_ascii_case(b"urn:") {
                let core = a.rsplit_once(':').map(|(urn, attr)| {
                    if super::filter::is_core_urn(urn) {
                        attr.split('.').next().unwrap_or(attr).to_string()
                    } else {
                        urn.to_string()
                    }
                });
                core.unwrap_or_else(|| a.to_string())
            } else {
                a.split('.').next().unwrap_or(a).to_string()
            };
            a.to_lowercase()
        })
        .collect()
}

/// The unique value (`userName` / `displayName`), lower-cased; an error when missing.
pub fn unique_value(kind: Kind, res: &Value) -> Result<String, ScimError> {
    match get_ci(res, kind.unique_attr()).and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => Ok(s.to_lowercase()),
        _ => Err(ScimError::bad_request(
            "invalidValue",
            format!("{} is required", kind.unique_attr()),
        )),
    }
}

/// What a client sent for a new or replaced resource, as stored: server attributes
/// (`id`, `meta`) from us, `schemas` completed, booleans coerced, `active` defaulting to
/// true for users, members only with a `value`.
pub fn normalize(
    kind: Kind,
    body: Value,
    id: &str,
    created: &str,
    now: &str,
    version: u64,
    location: &str,
) -> Result<Value, ScimError> {
    let Value::Object(obj) = canonicalize(body) else {
        return Err(ScimError::bad_request(
            "invalidSyntax",
            "the body must be a JSON object",
        ));
    };
    let mut out = Map::new();
    let mut schemas: Vec<String> = obj
        .get("schemas")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !schemas
        .iter()
        .any(|s| s.eq_ignore_ascii_case(kind.schema()))
    {
        schemas.insert(0, kind.schema().to_string());
    }
    for (k, v) in obj {
        if matches!(k.as_str(), "id" | "meta" | "schemas" | "password") {
            continue;
        }
        out.insert(k, v);
    }
    if out.contains_key(ENTERPRISE_USER) && !schemas.iter().any(|s| s == ENTERPRISE_USER) {
        schemas.push(ENTERPRISE_USER.to_string());
    }
    let mut v = Value::Object(out);
    coerce_booleans(&mut v);
    let Value::Object(mut out) = v else {
        return Err(ScimError::bad_request(
            "invalidSyntax",
            "the body must be a JSON object",
        ));
    };
    if kind == Kind::User && !out.contains_key("active") {
        out.insert("active".into(), Value::Bool(true));
    }
    if kind == Kind::Group {
        let members = out
            .remove("members")
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default();
        let mut kept: Vec<Value> = Vec::new();
        for m in members {
            if m.get("value").and_then(Value::as_str).is_some()
                && !kept.iter().any(|k| k.get("value") == m.get("value"))
            {
                kept.push(m);
            }
        }
        out.insert("members".into(), Value::Array(kept));
    }
    out.insert("id".into(), Value::String(id.to_string()));
    out.insert(
        "schemas".into(),
        Value::Array(schemas.into_iter().map(Value::String).collect()),
    );
    out.insert(
        "meta".into(),
        json!({
            "resourceType": kind.name(),
            "created": created,
            "lastModified": now,
            "version": format!("W/\"{version}\""),
            "location": location,
        }),
    );
    let res = Value::Object(out);
    unique_value(kind, &res)?;
    Ok(res)
}

/// The resource with only `attributes` (plus id, schemas, meta) or without
/// `excludedAttributes`; both are comma lists of attribute paths.
pub fn project(res: &Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Some(obj) = res.as_object() else {
        return res.clone();
    };
    let list = attribute_names;
    let always = ["id", "schemas", "meta"];
    match (attributes, excluded) {
        (Some(a), _) if !a.trim().is_empty() => {
            let keep = list(a);
            Value::Object(
                obj.iter()
                    .filter(|(k, _)| {
                        always.contains(&k.as_str()) || keep.contains(&k.to_lowercase())
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        }
        (_, Some(e)) if !e.trim().is_empty() => {
            let drop = list(e);
            Value::Object(
                obj.iter()
                    .filter(|(k, _)| {
                        always.contains(&k.as_str()) || !drop.contains(&k.to_lowercase())
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        }
        _ => res.clone(),
    }
}

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/ssogate/ssogate#scim",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": super::service::MAX_PAGE},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "The Secret Token configured in Entra provisioning",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    })
}

pub fn resource_type(kind: Kind, base: &str) -> Value {
    let mut v = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": kind.name(),
        "name": kind.name(),
        "endpoint": format!("/{}", kind.endpoint()),
        "description": format!("{} provisioned by Entra", kind.name()),
        "schema": kind.schema(),
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", kind.name())}
    });
    if kind == Kind::User {
        v["schemaExtensions"] = json!([{"schema": ENTERPRISE_USER, "required": false}]);
    }
    v
}

fn attr(name: &str, ty: &str, multi: bool, required: bool, unique: &str) -> Value {
    json!({
        "name": name, "type": ty, "multiValued": multi, "required": required,
        "caseExact": false, "mutability": "readWrite", "returned": "default",
        "uniqueness": unique, "description": name,
    })
}

fn complex(name: &str, multi: bool, subs: Vec<Value>) -> Value {
    let mut a = attr(name, "complex", multi, false, "none");
    a["subAttributes"] = Value::Array(subs);
    a
}

fn multi_valued_strings(name: &str) -> Value {
    complex(
        name,
        true,
        vec![
            attr("value", "string", false, false, "none"),
            attr("display", "string", false, false, "none"),
            attr("type", "string", false, false, "none"),
            attr("primary", "boolean", false, false, "none"),
        ],
    )
}

pub fn schemas(base: &str) -> Vec<Value> {
    let meta =
        |id: &str| json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")});
    let mut external_id = attr("externalId", "string", false, false, "none");
    external_id["caseExact"] = Value::Bool(true);
    let mut member_value = attr("value", "string", false, false, "none");
    member_value["mutability"] = json!("immutable");
    let mut member_ref = attr("$ref", "reference", false, false, "none");
    member_ref["referenceTypes"] = json!(["User", "Group"]);
    member_ref["mutability"] = json!("immutable");
    let mut member_type = attr("type", "string", false, false, "none");
    member_type["canonicalValues"] = json!(["User", "Group"]);
    member_type["mutability"] = json!("immutable");
    let mut manager_ref = attr("$ref", "reference", false, false, "none");
    manager_ref["referenceTypes"] = json!(["User"]);
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA, "name": "User", "description": "User Account",
        "attributes": [
            attr("userName", "string", false, true, "server"),
            external_id.clone(),
            complex("name", false, vec![
                attr("formatted", "string", false, false, "none"),
                attr("familyName", "string", false, false, "none"),
                attr("givenName", "string", false, false, "none"),
                attr("middleName", "string", false, false, "none"),
                attr("honorificPrefix", "string", false, false, "none"),
                attr("honorificSuffix", "string", false, false, "none"),
            ]),
            attr("displayName", "string", false, false, "none"),
            attr("nickName", "string", false, false, "none"),
            attr("title", "string", false, false, "none"),
            attr("userType", "string", false, false, "none"),
            attr("preferredLanguage", "string", false, false, "none"),
            attr("locale", "string", false, false, "none"),
            attr("timezone", "string", false, false, "none"),
            attr("active", "boolean", false, false, "none"),
            multi_valued_strings("emails"),
            multi_valued_strings("phoneNumbers"),
            multi_valued_strings("roles"),
        ],
        "meta": meta(USER_SCHEMA),
    });
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": GROUP_SCHEMA, "name": "Group", "description": "Group",
        "attributes": [
            attr("displayName", "string", false, true, "server"),
            external_id,
            complex("members", true, vec![member_value, member_ref, member_type, attr("display", "string", false, false, "none")]),
        ],
        "meta": meta(GROUP_SCHEMA),
    });
    let enterprise = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": ENTERPRISE_USER, "name": "EnterpriseUser", "description": "Enterprise User",
        "attributes": [
            attr("employeeNumber", "string", false, false, "none"),
            attr("costCenter", "string", false, false, "none"),
            attr("organization", "string", false, false, "none"),
            attr("division", "string", false, false, "none"),
            attr("department", "string", false, false, "none"),
            complex("manager", false, vec![
                attr("value", "string", false, false, "none"),
                manager_ref,
                attr("displayName", "string", false, false, "none"),
            ]),
        ],
        "meta": meta(ENTERPRISE_USER),
    });
    vec![user, group, enterprise]
}
