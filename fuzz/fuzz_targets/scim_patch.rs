//! SCIM PATCH (`PATCH /scim/v2/Users/{id}`, RFC 7644 §3.5.2 and Entra's dialect): the JSON
//! body as the service parses it (`serde_json::from_slice`), applied by `patch::apply` to a
//! stored user or group.
//!
//! Input: one byte choosing the resource (even: a user, odd: a group), then the body.
//!
//! Asserts: no panic; a successful patch leaves a JSON object that still has its unique
//! value (userName / displayName), lists every extension it holds in `schemas`, and that
//! the store's indexing (`index_of`), projection (`project`) and a second application of
//! the same body handle without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
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
    if patch::apply(kind, &mut res, &body).is_err() {
        return;
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
