//! PATCH (RFC 7644 §3.5.2) on a resource held as JSON, in Entra's dialect as well as the
//! RFC's: `Add`/`Replace`/`Remove` in any case; operations without `path` whose value
//! holds dotted (`name.givenName`) or URN-qualified keys; paths with value filters
//! (`emails[type eq "work"].value`, `members[value eq "…"]`); member removal by path
//! filter or by a value list; booleans as strings.
//!
//! We never panic on hostile input: every malformed operation is a SCIM error.

use super::filter::is_core_urn;
use super::filter::{self, get_ci, parse_attr_path, AttrPath, Filter};
use super::resource::{canonical, coerce_booleans, unwrap_single, Kind};
use super::ScimError;
use serde_json::{Map, Value};

const MAX_OPERATIONS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Add,
    Replace,
    Remove,
}

/// A PATCH path: attribute, optional value filter, optional sub-attribute after it.
struct PatchPath {
    attr: AttrPath,
    filter: Option<Filter>,
    /// `.sub` after the filter (`emails[…].value`).
    sub_after: Option<String>,
}

fn parse_path(s: &str) -> Result<PatchPath, ScimError> {
    let bad = |m: &str| ScimError::bad_request("invalidPath", m.to_string());
    match s.find('[') {
        None => Ok(PatchPath {
            attr: parse_attr_path(s).map_err(|_| bad("not an attribute path"))?,
            filter: None,
            sub_after: None,
        }),
        Some(open) => {
            let close = s.rfind(']').ok_or_else(|| bad("missing ']'"))?;
            if close < open {
                return Err(bad("misplaced ']'"));
            }
            let attr = parse_attr_path(&s[..open]).map_err(|_| bad("not an attribute path"))?;
            if attr.sub.is_some() {
                return Err(bad("a value filter applies to a top-level attribute"));
            }
            let f = filter::parse(&s[open + 1..close])
                .map_err(|e| ScimError::bad_request("invalidPath", e.detail))?;
            let rest = &s[close + 1..];
            let sub_after = match rest.strip_prefix('.') {
                Some(sub) if !sub.is_empty() => Some(sub.to_string()),
                None if rest.is_empty() => None,
                _ => return Err(bad("unexpected text after ']'")),
            };
            Ok(PatchPath {
                attr,
                filter: Some(f),
                sub_after,
            })
        }
    }
}

/// The object holding `path.attr`: the resource, or its extension object.
fn container<'a>(
    res: &'a mut Value,
    urn: Option<&str>,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    let obj = res.as_object_mut()?;
    match urn {
        Some(u) if !is_core_urn(u) => {
            let key = obj
                .keys()
                .find(|k| k.eq_ignore_ascii_case(u))
                .cloned()
                .unwrap_or_else(|| canonical(u));
            if !obj.contains_key(&key) {
                if !create {
                    return None;
                }
                obj.insert(key.clone(), Value::Object(Map::new()));
                // Keep `schemas` listing the extension.
            }
            obj.get_mut(&key)?.as_object_mut()
        }
        _ => Some(obj),
    }
}

fn key_ci(obj: &Map<String, Value>, name: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| canonical(name))
}

fn immutable(attr: &AttrPath) -> bool {
    attr.urn.is_none()
        && ["id", "meta"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&attr.attr))
}

/// Two elements of a multi-valued attribute are the same member when their `value`s
/// (attribute names are case-insensitive) are equal.
fn same_member(a: &Value, b: &Value) -> bool {
    match (get_ci(a, "value"), get_ci(b, "value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Merge `value` into `target` by `op` (add: append to arrays, merge objects; replace:
/// merge objects, overwrite the rest).
fn put(target: &mut Map<String, Value>, name: &str, value: Value, op: OpKind) {
    let key = key_ci(target, name);
    match (target.get_mut(&key), value) {
        (Some(Value::Array(existing)), Value::Array(new)) if op == OpKind::Add => {
            for v in new {
                if !existing.iter().any(|e| same_member(e, &v)) {
                    existing.push(v);
                }
            }
        }
        (Some(Value::Array(existing)), v) if op == OpKind::Add && !v.is_array() => {
            if !existing.iter().any(|e| same_member(e, &v)) {
                existing.push(v);
            }
        }
        (Some(Value::Object(existing)), Value::Object(new)) => {
            for (k, v) in new {
                let k2 = key_ci(existing, &k);
                existing.insert(k2, v);
            }
        }
        (_, v) => {
            target.insert(key, v);
        }
    }
}

fn apply_one(
    res: &mut Value,
    op: OpKind,
    path: Option<&str>,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let Some(path) = path.filter(|p| !p.trim().is_empty()) else {
        // No path: the value is an object of attributes to add or replace.
        if op == OpKind::Remove {
            return Err(ScimError::bad_request("noTarget", "remove needs a path"));
        }
        let Some(Value::Object(attrs)) = value else {
            return Err(ScimError::bad_request(
                "invalidValue",
                "without a path the value must be an object",
            ));
        };
        for (k, v) in attrs {
            // A whole extension object: merge its attributes.
            if v.is_object() && looks_like_schema_urn(&k) && !is_core_urn(&k) {
                let Value::Object(inner) = v else { continue };
                for (ik, iv) in inner {
                    apply_one(res, op, Some(&format!("{k}:{ik}")), Some(iv))?;
                }
                continue;
            }
            apply_one(res, op, Some(&k), Some(v))?;
        }
        return Ok(());
    };
    // The path is a whole extension (`urn:…:enterprise:2.0:User`).
    if looks_like_schema_urn(path.trim()) && !is_core_urn(path.trim()) {
        return apply_extension(res, op, path.trim(), value);
    }
    let p = parse_path(path.trim())?;
    if immutable(&p.attr) {
        return Err(ScimError::bad_request(
            "mutability",
            format!("{} cannot be changed", p.attr.attr),
        ));
    }
    let Some(target) = container(res, p.attr.urn.as_deref(), op != OpKind::Remove) else {
        return Ok(()); // removing from an absent extension: nothing to do
    };
    let name = key_ci(target, &p.attr.attr);

    match (&p.filter, op) {
        (None, OpKind::Remove) => {
            match (&p.attr.sub, value) {
                (Some(sub), _) => match target.get_mut(&name) {
                    Some(Value::Object(o)) => {
                        let k = key_ci(o, sub);
                        o.remove(&k);
                    }
                    Some(Value::Array(a)) => {
                        for e in a.iter_mut() {
                            if let Value::Object(o) = e {
                                let k = key_ci(o, sub);
                                o.remove(&k);
                            }
                        }
                    }
                    _ => {}
                },
                // Entra: {"op":"Remove","path":"members","value":[{"value":"id"}]}
                (None, Some(Value::Array(drop))) if !drop.is_empty() => {
                    if let Some(Value::Array(a)) = target.get_mut(&name) {
                        a.retain(|e| !drop.iter().any(|d| same_member(e, d)));
                    }
                }
                (None, _) => {
                    target.remove(&name);
                }
            }
            Ok(())
        }
        (None, _) => {
            let value =
                value.ok_or_else(|| ScimError::bad_request("invalidValue", "value missing"))?;
            let leaf = p.attr.sub.as_deref().unwrap_or(&p.attr.attr);
            let mut value = unwrap_single(leaf, value);
            if leaf.eq_ignore_ascii_case("active") {
                if let Some(b) = super::resource::coerce_bool(&value) {
                    value = Value::Bool(b);
                }
            }
            match &p.attr.sub {
                None => put(target, &name, value, op),
                Some(sub) => {
                    let entry = target
                        .entry(name)
                        .or_insert_with(|| Value::Object(Map::new()));
                    match entry {
                        Value::Object(o) => put(o, sub, value, op),
                        Value::Array(a) => {
                            for e in a.iter_mut() {
                                if let Value::Object(o) = e {
                                    put(o, sub, value.clone(), op);
                                }
                            }
                        }
                        other => {
                            let mut o = Map::new();
                            put(&mut o, sub, value, op);
                            *other = Value::Object(o);
                        }
                    }
                }
            }
            Ok(())
        }
        (Some(f), _) => {
            let elements = target
                .entry(name)
                .or_insert_with(|| Value::Array(Vec::new()));
            if !elements.is_array() {
                let single = elements.take();
                *elements = Value::Array(if single.is_null() {
                    vec![]
                } else {
                    vec![single]
                });
            }
            let Value::Array(items) = elements else {
                return Ok(());
            };
            match op {
                OpKind::Remove => {
                    match &p.sub_after {
                        None => items.retain(|e| !filter::matches(f, e)),
                        Some(sub) => {
                            for e in items.iter_mut().filter(|e| filter::matches(f, e)) {
                                if let Value::Object(o) = e {
                                    let k = key_ci(o, sub);
                                    o.remove(&k);
                                }
                            }
                        }
                    }
                    Ok(())
                }
                OpKind::Add | OpKind::Replace => {
                    let value = value
                        .ok_or_else(|| ScimError::bad_request("invalidValue", "value missing"))?;
                    let mut matched = false;
                    for e in items.iter_mut().filter(|e| filter::matches(f, e)) {
                        matched = true;
                        match (&p.sub_after, e) {
                            (Some(sub), Value::Object(o)) => {
                                put(o, sub, value.clone(), OpKind::Replace)
                            }
                            (None, Value::Object(o)) => {
                                if let Value::Object(new) = &value {
                                    for (k, v) in new {
                                        let k2 = key_ci(o, k);
                                        o.insert(k2, v.clone());
                                    }
                                }
                            }
                            (_, e) => *e = value.clone(),
                        }
                    }
                    if !matched {
                        // Build the element the filter describes (`type eq "work"`), as
                        // Entra expects for `emails[type eq "work"].value`.
                        let mut o = Map::new();
                        seed_from_filter(f, &mut o);
                        match (&p.sub_after, value) {
                            (Some(sub), v) => {
                                o.insert(canonical(sub), v);
                            }
                            (None, Value::Object(new)) => o.extend(new),
                            (None, _) => {}
                        }
                        items.push(Value::Object(o));
                    }
                    Ok(())
                }
            }
        }
    }
}

/// add / replace / remove a whole extension object.
fn apply_extension(
    res: &mut Value,
    op: OpKind,
    urn: &str,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let Some(obj) = res.as_object_mut() else {
        return Ok(());
    };
    let key = key_ci(obj, urn);
    match op {
        OpKind::Remove => {
            obj.remove(&key);
            if let Some(Value::Array(schemas)) = obj.get_mut("schemas") {
                schemas.retain(|s| !s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)));
            }
            Ok(())
        }
        OpKind::Add | OpKind::Replace => {
            let Some(Value::Object(new)) = value else {
                return Err(ScimError::bad_request(
                    "invalidValue",
                    "an extension value must be an object",
                ));
            };
            if op == OpKind::Replace {
                obj.insert(key, Value::Object(new));
            } else {
                let ext = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(e) = ext {
                    for (k, v) in new {
                        let k2 = key_ci(e, &k);
                        e.insert(k2, v);
                    }
                }
            }
            Ok(())
        }
    }
}

fn looks_like_schema_urn(k: &str) -> bool {
    let lower = k.to_ascii_lowercase();
    lower.starts_with("urn:ietf:params:scim:schemas:") && !lower.ends_with(":user:") && {
        // The URN itself ends with the resource name (`…:2.0:User`), no attribute after it.
        lower.ends_with(":user") || lower.ends_with(":group")
    }
}

/// `type eq "work" and primary eq true` gives {"type": "work", "primary": true}.
fn seed_from_filter(f: &Filter, o: &mut Map<String, Value>) {
    match f {
        Filter::Compare(p, filter::Op::Eq, v) if p.sub.is_none() => {
            o.insert(canonical(&p.attr), v.clone());
        }
        Filter::And(a, b) => {
            seed_from_filter(a, o);
            seed_from_filter(b, o);
        }
        _ => {}
    }
}

/// Apply a PatchOp body to `res` (a stored resource of `kind`).
/// A PatchOp's operations, within the limit.
fn operations(body: &Value) -> Result<&Vec<Value>, ScimError> {
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::bad_request("invalidSyntax", "PatchOp without Operations"))?;
    if ops.len() > MAX_OPERATIONS {
        return Err(
            ScimError::bad_request("tooMany", "too many operations").over_limit("patch_operations")
        );
    }
    Ok(ops)
}

/// One operation: its kind, path and value (booleans coerced).
fn parse_op(o: &Value) -> Result<(OpKind, Option<&str>, Option<Value>), ScimError> {
    let op = match get_ci(o, "op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => OpKind::Add,
        Some("replace") => OpKind::Replace,
        Some("remove") => OpKind::Remove,
        _ => {
            return Err(ScimError::bad_request(
                "invalidSyntax",
                "op must be add, replace or remove",
            ))
        }
    };
    let path = get_ci(o, "path").and_then(Value::as_str);
    let mut value = get_ci(o, "value").cloned();
    if let Some(v) = value.as_mut() {
        coerce_booleans(v);
        // A bare string boolean for `active`.
        if path.is_some_and(|p| p.eq_ignore_ascii_case("active")) {
            if let Some(b) = super::resource::coerce_bool(v) {
                *v = Value::Bool(b);
            }
        }
    }
    Ok((op, path, value))
}

/// A change to a group's member list that the store applies without the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberOp {
    /// Add these members (id, other attributes; see `resource::member_entry`).
    Add(Vec<(String, String)>),
    /// Remove these member ids.
    Remove(Vec<String>),
    /// Remove every member.
    Clear,
}

/// Whether an attribute path names a group's `members` as a whole (`members`, or
/// qualified by the core Group URN).
fn is_members(attr: &AttrPath) -> bool {
    attr.attr.eq_ignore_ascii_case("members")
        && attr.sub.is_none()
        && attr.urn.as_deref().is_none_or(is_core_urn)
}

/// The member entries of an add or replace value: a list of member objects, or one.
fn member_entries(value: &Value) -> Option<Vec<(String, String)>> {
    match value {
        Value::Array(a) => Some(a.iter().filter_map(super::resource::member_entry).collect()),
        Value::Object(_) => Some(super::resource::member_entry(value).into_iter().collect()),
        _ => None,
    }
}

/// A replace takes a list (a single object would replace the list with that object:
/// the whole-list patch keeps that odd meaning); an add takes a list or one member.
fn list_or_add(op: OpKind, value: &Value) -> bool {
    op == OpKind::Add || value.is_array()
}

/// Split a group PATCH into member changes the store applies as deltas (Entra's forms:
/// add or replace `members`, remove `members` with a value list or `members[value eq
/// "id"]`, an add or replace without path whose value holds `members`) and a PatchOp of
/// every other operation, in order. `None` when an operation touches members in another
/// form (a sub-attribute, another filter): the caller then patches the whole list.
pub fn split_members(body: &Value) -> Result<Option<(Vec<MemberOp>, Value)>, ScimError> {
    let mut members = Vec::new();
    let mut rest = Vec::new();
    for o in operations(body)? {
        let (op, path, value) = parse_op(o)?;
        let Some(path) = path.filter(|p| !p.trim().is_empty()) else {
            let Some(Value::Object(attrs)) = value else {
                return Ok(None);
            };
            let mut others = Map::new();
            for (k, v) in attrs {
                match parse_attr_path(&k) {
                    Ok(a) if is_members(&a) => {
                        let Some(entries) = member_entries(&v).filter(|_| list_or_add(op, &v))
                        else {
                            return Ok(None);
                        };
                        if op == OpKind::Replace {
                            members.push(MemberOp::Clear);
                        }
                        members.push(MemberOp::Add(entries));
                    }
                    Ok(a) if a.attr.eq_ignore_ascii_case("members") => return Ok(None),
                    _ => {
                        others.insert(k, v);
                    }
                }
            }
            if !others.is_empty() {
                let mut kept = o.clone();
                if let Some(obj) = kept.as_object_mut() {
                    let key = key_ci(obj, "value");
                    obj.insert(key, Value::Object(others));
                }
                rest.push(kept);
            }
            continue;
        };
        let Ok(p) = parse_path(path.trim()) else {
            return Ok(None);
        };
        if !p.attr.attr.eq_ignore_ascii_case("members") {
            rest.push(o.clone());
            continue;
        }
        if !is_members(&p.attr) || p.sub_after.is_some() {
            return Ok(None);
        }
        match (&p.filter, op, value) {
            (None, OpKind::Add | OpKind::Replace, Some(v)) => {
                let Some(entries) = member_entries(&v).filter(|_| list_or_add(op, &v)) else {
                    return Ok(None);
                };
                if op == OpKind::Replace {
                    members.push(MemberOp::Clear);
                }
                members.push(MemberOp::Add(entries));
            }
            (None, OpKind::Remove, Some(Value::Array(drop))) if !drop.is_empty() => {
                let mut ids = Vec::with_capacity(drop.len());
                for d in &drop {
                    match super::resource::member_entry(d) {
                        Some((id, _)) => ids.push(id),
                        None => return Ok(None),
                    }
                }
                members.push(MemberOp::Remove(ids));
            }
            (None, OpKind::Remove, _) => members.push(MemberOp::Clear),
            (Some(Filter::Compare(a, filter::Op::Eq, Value::String(id))), OpKind::Remove, _)
                if a.attr.eq_ignore_ascii_case("value") && a.sub.is_none() && a.urn.is_none() =>
            {
                members.push(MemberOp::Remove(vec![id.clone()]));
            }
            _ => return Ok(None),
        }
    }
    Ok(Some((
        members,
        serde_json::json!({ "schemas": [super::resource::PATCH_OP], "Operations": rest }),
    )))
}

pub fn apply(kind: Kind, res: &mut Value, body: &Value) -> Result<(), ScimError> {
    let ops = operations(body)?;
    for o in ops {
        let (op, path, value) = parse_op(o)?;
        apply_one(res, op, path, value)?;
    }
    if let Some(obj) = res.as_object_mut() {
        // Extensions added by a patch are listed in `schemas`.
        let exts: Vec<String> = obj
            .keys()
            .filter(|k| k.to_ascii_lowercase().starts_with("urn:"))
            .cloned()
            .collect();
        if let Some(Value::Array(schemas)) = obj.get_mut("schemas") {
            for e in exts {
                if !schemas.iter().any(|s| s.as_str() == Some(e.as_str())) {
                    schemas.push(Value::String(e));
                }
            }
        }
    }
    super::resource::unique_value(kind, res).map_err(|_| {
        ScimError::bad_request(
            "mutability",
            format!("{} is required and cannot be removed", kind.unique_attr()),
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({"schemas": [super::super::resource::USER_SCHEMA], "id": "u1", "userName": "a@x.com", "active": true,
               "name": {"givenName": "A"}, "emails": [{"type": "work", "value": "a@x.com", "primary": true}]})
    }

    fn patch(res: &mut Value, ops: Value) -> Result<(), ScimError> {
        apply(
            Kind::User,
            res,
            &json!({"schemas": [super::super::resource::PATCH_OP], "Operations": ops}),
        )
    }

    #[test]
    fn entra_user_patches() {
        let mut u = user();
        patch(
            &mut u,
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .unwrap();
        assert_eq!(u["active"], json!(false));
        patch(&mut u, json!([{"op": "Add", "value": {"name.givenName": "Zoë", "name.familyName": "Z", "displayName": "Zoë Z"}}])).unwrap();
        assert_eq!(u["name"], json!({"givenName": "Zoë", "familyName": "Z"}));
        assert_eq!(u["displayName"], "Zoë Z");
        patch(&mut u, json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "z@x.com"}])).unwrap();
        assert_eq!(
            u["emails"],
            json!([{"type": "work", "value": "z@x.com", "primary": true}])
        );
        patch(&mut u, json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}])).unwrap();
        assert_eq!(
            u["phoneNumbers"],
            json!([{"type": "mobile", "value": "+1 555"}])
        );
        patch(&mut u, json!([{"op": "Replace", "value": {"active": "True", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D"}}])).unwrap();
        assert_eq!(u["active"], json!(true));
        assert_eq!(
            u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "R&D"
        );
        patch(&mut u, json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": {"value": "boss"}}])).unwrap();
        assert_eq!(
            u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"],
            json!({"value": "boss"})
        );
        assert!(u["schemas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
        patch(&mut u, json!([{"op": "remove", "path": "name.familyName"}])).unwrap();
        assert_eq!(u["name"], json!({"givenName": "Zoë"}));
        assert!(patch(&mut u, json!([{"op": "Remove", "path": "userName"}])).is_err());
        assert!(patch(
            &mut u,
            json!([{"op": "Replace", "path": "id", "value": "x"}])
        )
        .is_err());
        assert!(patch(&mut u, json!([{"op": "frobnicate", "path": "x"}])).is_err());
    }

    #[test]
    fn single_valued_attributes_sent_as_a_value_list_are_stored_as_the_value() {
        let mut u = user();
        patch(
            &mut u,
            json!([
                {"op": "Add", "path": "nickName", "value": [{"value": "Babs"}]},
                {"op": "Replace", "path": "name.familyName", "value": [{"value": "Jensen"}]},
                {"op": "Replace", "path": "active", "value": [{"value": "False"}]},
                {"op": "Add", "value": {"title": [{"value": "CEO"}]}},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": [{"value": "R&D"}]}
            ]),
        )
        .unwrap();
        assert_eq!(u["nickName"], "Babs");
        assert_eq!(u["name"]["familyName"], "Jensen");
        assert_eq!(u["active"], json!(false));
        assert_eq!(u["title"], "CEO");
        assert_eq!(
            u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "R&D"
        );
        // Multi-valued attributes keep their lists.
        patch(
            &mut u,
            json!([{"op": "Add", "path": "roles", "value": [{"value": "Reader"}]}]),
        )
        .unwrap();
        assert_eq!(u["roles"], json!([{"value": "Reader"}]));
    }

    #[test]
    fn entra_group_member_patches() {
        let mut g = json!({"id": "g1", "displayName": "G", "members": []});
        let p = |g: &mut Value, ops: Value| apply(Kind::Group, g, &json!({"Operations": ops}));
        p(
            &mut g,
            json!([{"op": "Add", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}]),
        )
        .unwrap();
        p(
            &mut g,
            json!([{"op": "Add", "path": "members", "value": [{"value": "u1"}]}]),
        )
        .unwrap();
        assert_eq!(g["members"], json!([{"value": "u1"}, {"value": "u2"}]));
        p(
            &mut g,
            json!([{"op": "Remove", "path": "members[value eq \"u1\"]"}]),
        )
        .unwrap();
        assert_eq!(g["members"], json!([{"value": "u2"}]));
        p(
            &mut g,
            json!([{"op": "Remove", "path": "members", "value": [{"value": "u2"}]}]),
        )
        .unwrap();
        assert_eq!(g["members"], json!([]));
        p(
            &mut g,
            json!([{"op": "Replace", "path": "displayName", "value": "H"}]),
        )
        .unwrap();
        assert_eq!(g["displayName"], "H");
    }

    #[test]
    fn garbage_never_panics() {
        let mut u = user();
        for ops in [
            json!(null),
            json!([1]),
            json!([{"op": "add"}]),
            json!([{"op": "add", "path": "[[["}]),
            json!([{"op": "add", "path": "emails[type eq", "value": 1}]),
            json!([{"op": "remove"}]),
            json!([{"op": "add", "path": "a]b[", "value": 1}]),
            json!([{"op": "replace", "value": [1]}]),
            json!([{"op": "add", "path": "emails[type eq \"x\"]junk", "value": 1}]),
            json!([{"op": "add", "path": "name.givenName.x", "value": 1}]),
        ] {
            let _ = patch(&mut u, ops);
        }
        let _ = apply(
            Kind::User,
            &mut json!("x"),
            &json!({"Operations": [{"op": "add", "path": "a", "value": 1}]}),
        );
    }

    /// Entra's membership operations split into deltas give the member list that
    /// patching the whole list gives; every other operation stays in the rest, in order;
    /// forms the deltas cannot express fall back to the whole list.
    #[test]
    fn member_deltas_agree_with_patching_the_whole_list() {
        use std::collections::BTreeMap;
        let start = json!({"id": "g1", "displayName": "G",
                           "members": [{"value": "u1"}, {"value": "u2", "display": "Two"}]});
        let cases = [
            json!([{"op": "Add", "path": "members", "value": [{"value": "u3"}, {"value": "u1"}]}]),
            json!([{"op": "add", "path": "members", "value": {"value": "u4"}}]),
            json!([{"op": "Remove", "path": "members[value eq \"u1\"]"}]),
            json!([{"op": "Remove", "path": "members", "value": [{"value": "u2"}, {"value": "u9"}]}]),
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "Value": "u2"}]}]),
            json!([{"op": "remove", "path": "members"}, {"op": "add", "path": "members", "value": [{"value": "u5"}]}]),
            json!([{"op": "Replace", "path": "members", "value": [{"value": "u2"}, {"value": "u6"}]}]),
            json!([{"op": "Add", "value": {"members": [{"value": "u7"}], "displayName": "H"}}]),
            json!([{"op": "Replace", "value": {"members": [{"value": "u8"}]}}]),
            json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members", "value": [{"value": "u3"}]},
                   {"op": "Replace", "path": "displayName", "value": "H"},
                   {"op": "Remove", "path": "members[value eq \"u3\"]"}]),
        ];
        for ops in cases {
            let body = json!({"Operations": ops.clone()});
            let mut whole = start.clone();
            apply(Kind::Group, &mut whole, &body).unwrap();
            let (deltas, rest) = split_members(&body).unwrap().expect("Entra's forms split");
            let mut split = start.clone();
            let mut members: BTreeMap<String, String> =
                super::super::resource::take_members(&mut split)
                    .iter()
                    .filter_map(super::super::resource::member_entry)
                    .collect();
            apply(Kind::Group, &mut split, &rest).unwrap();
            assert!(
                split.get("members").is_none(),
                "{ops}: members left in the rest"
            );
            for d in deltas {
                match d {
                    MemberOp::Clear => members.clear(),
                    MemberOp::Add(e) => members.extend(e),
                    MemberOp::Remove(ids) => {
                        for m in ids {
                            members.remove(&m);
                        }
                    }
                }
            }
            let expected: BTreeMap<String, String> =
                super::super::resource::take_members(&mut whole)
                    .iter()
                    .filter_map(super::super::resource::member_entry)
                    .collect();
            let got: Vec<&String> = members.keys().collect();
            assert_eq!(got, expected.keys().collect::<Vec<_>>(), "{ops}");
            assert_eq!(split, whole, "{ops}: the other attributes differ");
        }
        for ops in [
            json!([{"op": "Replace", "path": "members[value eq \"u1\"].display", "value": "One"}]),
            json!([{"op": "Remove", "path": "members[display eq \"Two\"]"}]),
            json!([{"op": "Add", "path": "members.display", "value": "x"}]),
            json!([{"op": "Add", "path": "members", "value": "u1"}]),
            json!([{"op": "Remove", "path": "members", "value": [{"display": "Two"}]}]),
            json!([{"op": "Add", "value": {"members.value": "u1"}}]),
        ] {
            assert_eq!(
                split_members(&json!({"Operations": ops.clone()})).unwrap(),
                None,
                "{ops}"
            );
        }
        assert!(split_members(&json!({"Operations": [{"op": "move"}]})).is_err());
    }
}
