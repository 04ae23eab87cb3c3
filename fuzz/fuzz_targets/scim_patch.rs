//! SCIM PATCH (`PATCH /scim/v2/Users/{id}`, RFC 7644 §3.5.2 and Entra's dialect): the JSON
//! body as the service parses it (`serde_json::from_slice`), applied by `patch::apply` to a
//! stored user or group.
//!
//! Input: one byte choosing the resource (even: a user, odd: a group), then the body.
//!
//! Asserts: no panic; a successful patch leaves a JSON object that still has its unique
//! value (userName / displayName), lists every extension it holds in `schemas`, and that
//! the store's indexing (`index_of`), projection (`project`) and a second application of
//! the same body handle without panicking; for a group, the member deltas the service
//! applies without reading the list (`split_members`) agree with patching the list.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use ssogate::scim::{patch, resource, Kind};

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee@testuser.com",
        "active": true,
        "displayName": "Zoë Ångström",
        "name": {"givenName": "Zoë", "familyName": "Ångström"},
        "emails": [{"type": "work", "value": "Test_User_ab6490ee@testuser.com", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        },
        "meta": {"resourceType": "User", "created": "2024-05-01T12:00:00.000Z",
                 "lastModified": "2024-05-01T12:00:00.000Z", "version": "W/\"1\""}
    })
}

fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "externalId": "e0e0-editors",
        "displayName": "Wiki editors",
        "members": [{"value": "2819c223-7f76-453a-919d-413861904646"},
                    {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Ann"}],
        "meta": {"resourceType": "Group", "created": "2024-05-01T12:00:00.000Z",
                 "lastModified": "2024-05-01T12:00:00.000Z", "version": "W/\"1\""}
    })
}

/// The member ids of a group (members with a string `value`).
fn member_ids(group: &mut Value) -> BTreeMap<String, ()> {
    resource::take_members(group)
        .iter()
        .filter_map(resource::member_entry)
        .map(|(id, _)| (id, ()))
        .collect()
}

/// A group PATCH that `patch::split_members` splits into member deltas (what the service
/// applies to a stored group without reading its list) gives the members and the other
/// attributes that patching the whole list gave (`whole`). Value filters are left out:
/// the whole-list patch compares `members[value eq "…"]` case-insensitively, the delta
/// exactly (member values are ids, and the member index is exact).
fn same_as_member_deltas(before: &Value, whole: &Value, body: &Value) {
    let Ok(Some((ops, rest))) = patch::split_members(body) else {
        return;
    };
    let value_filter = |o: &Value| {
        o.as_object().is_some_and(|o| {
            o.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("path") && v.as_str().is_some_and(|p| p.contains('['))
            })
        })
    };
    let ops_of = body.as_object().and_then(|b| {
        b.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
            .and_then(|(_, v)| v.as_array())
    });
    if ops_of.is_some_and(|ops| ops.iter().any(value_filter)) {
        return;
    }
    let mut split = before.clone();
    let mut members = member_ids(&mut split);
    patch::apply(Kind::Group, &mut split, &rest)
        .expect("the other operations of a valid patch apply alone");
    for op in ops {
        match op {
            patch::MemberOp::Clear => members.clear(),
            patch::MemberOp::Add(e) => members.extend(e.into_iter().map(|(id, _)| (id, ()))),
            patch::MemberOp::Remove(ids) => {
                for id in ids {
                    members.remove(&id);
                }
            }
        }
    }
    let mut whole = whole.clone();
    assert_eq!(members, member_ids(&mut whole), "members differ for {body}");
    resource::take_members(&mut split);
    assert_eq!(split, whole, "other attributes differ for {body}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let (kind, mut res) = if which & 1 == 0 {
        (Kind::User, user())
    } else {
        (Kind::Group, group())
    };
    let before = res.clone();
    if patch::apply(kind, &mut res, &body).is_err() {
        let _ = patch::split_members(&body);
        return;
    }
    if kind == Kind::Group {
        same_as_member_deltas(&before, &res, &body);
    }
    let obj = res.as_object().expect("a patched resource is an object");
    assert!(
        resource::unique_value(kind, &res).is_ok(),
        "unique value lost"
    );
    if let Some(Value::Array(schemas)) = obj.get("schemas") {
        for k in obj
            .keys()
            .filter(|k| k.to_ascii_lowercase().starts_with("urn:"))
        {
            assert!(
                schemas.iter().any(|s| s.as_str() == Some(k)),
                "extension {k} missing from schemas"
            );
        }
    }
    let _ = resource::index_of(kind, &res);
    let _ = resource::project(&res, Some("userName,emails.value,urn:x:y"), None);
    let _ = resource::project(&res, None, Some("members,name.givenName"));
    let _ = patch::apply(kind, &mut res, &body);
});
