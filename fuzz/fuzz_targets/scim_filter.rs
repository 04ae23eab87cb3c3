//! SCIM filters (`GET /scim/v2/Users?filter=…`, RFC 7644 §3.4.2.2, Entra's dialect) and
//! attribute paths: `filter::parse`, then `filter::matches` against stored resources
//! shaped like Entra's provisioning writes them (a user with the enterprise extension,
//! a group with members).
//!
//! Input: the filter text (already URL-decoded).
//!
//! Asserts: no panic; parsing is deterministic; evaluation obeys the logic it claims:
//! `not (f)` is the negation of `f`, `f and f` and `f or f` are `f`, `(f)` is `f`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use ssogate::scim::filter::{self, Filter};
use std::sync::OnceLock;

fn resources() -> &'static [Value] {
    static R: OnceLock<Vec<Value>> = OnceLock::new();
    R.get_or_init(|| {
        vec![
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "id": "2819c223-7f76-453a-919d-413861904646",
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "userName": "Test_User_ab6490ee@testuser.com",
                "active": true,
                "displayName": "Zoë Ångström",
                "name": {"givenName": "Zoë", "familyName": "Ångström", "formatted": "Zoë Ångström"},
                "emails": [{"type": "work", "value": "Test_User_ab6490ee@testuser.com", "primary": true},
                           {"type": "home", "value": "zoe@example.org"}],
                "roles": [],
                "count": 12345,
                "ratio": 0.5,
                "nothing": null,
                "legacy": "True",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "employeeNumber": "701984", "department": "Tour Operations",
                    "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
                },
                "meta": {"resourceType": "User", "created": "2024-05-01T12:00:00Z"}
            }),
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
                "externalId": "e0e0-editors",
                "displayName": "Wiki editors",
                "members": [{"value": "2819c223-7f76-453a-919d-413861904646", "display": "Zoë"},
                            {"value": "902c246b-6245-4190-8e05-00816be7344a"}]
            }),
            json!("not an object"),
            json!([{"value": 1}, null]),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Attribute paths on their own (PATCH paths, `attributes=` lists use them too).
    let _ = filter::parse_attr_path(text);
    let Ok(f) = filter::parse(text) else {
        return;
    };
    assert_eq!(
        filter::parse(text).ok().as_ref(),
        Some(&f),
        "parse is not deterministic"
    );
    if let Ok(g) = filter::parse(&format!("({text})")) {
        assert_eq!(g, f, "parentheses changed the filter");
    }
    let not = Filter::Not(Box::new(f.clone()));
    let and = Filter::And(Box::new(f.clone()), Box::new(f.clone()));
    let or = Filter::Or(Box::new(f.clone()), Box::new(f.clone()));
    for r in resources() {
        let m = filter::matches(&f, r);
        assert_eq!(filter::matches(&not, r), !m, "not");
        assert_eq!(filter::matches(&and, r), m, "and");
        assert_eq!(filter::matches(&or, r), m, "or");
    }
});
