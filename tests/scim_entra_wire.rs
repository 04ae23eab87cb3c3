//! SCIM with Entra's exact bytes: the provisioning service and Microsoft's SCIM validator
//! put the filter's comparison value in raw double quotes, spaces as `+`
//! (`GET /scim/v2/Users?filter=userName+eq+"a%40b.com"`), which an HTTP library would
//! re-encode. These requests go over a plain socket, several on one keep-alive connection
//! (so the request-line rewrite must re-arm per request and leave JSON bodies alone),
//! in the order of Microsoft's validator: create, get, filter, patch, disable, delete,
//! for users and groups.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use serde_json::Value;
use ssogate::saml::DevIdp;
use utils::gateway::Gateway;
use utils::raw::{with_body, RawConn};

const TOKEN: &str = "entra-secret-token-0123456789abcdef";

async fn gateway() -> Gateway {
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let config = r#"
[listen]
public = "127.0.0.1:{public}"
admin = "127.0.0.1:{admin}"

[session]
store = "memory"
cookie_secure = false

[scim]
enabled = true
token_file = "scim-token"

[[app]]
name = "wiki"
hosts = ["*"]
upstream = "http://127.0.0.1:9"

[app.sp]
entity_id = "https://wiki.example.test/saml"
acs_url = "https://wiki.example.test/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"
"#;
    Gateway::start(
        config,
        &[
            ("idp.pem", idp.certificate_pem().as_bytes()),
            ("scim-token", format!("{TOKEN}\n").as_bytes()),
        ],
    )
    .await
}

fn get(target: &str) -> Vec<u8> {
    format!(
        "GET /scim/v2{target} HTTP/1.1\r\nHost: wiki.example.test\r\nAuthorization: Bearer {TOKEN}\r\nAccept: application/scim+json\r\n\r\n"
    )
    .into_bytes()
}

fn send(method: &str, target: &str, body: &str) -> Vec<u8> {
    with_body(
        &format!(
            "{method} /scim/v2{target} HTTP/1.1\r\nHost: wiki.example.test\r\nAuthorization: Bearer {TOKEN}"
        ),
        body,
    )
}

fn total(v: &Value) -> u64 {
    v["totalResults"].as_u64().unwrap()
}

#[tokio::test]
async fn microsofts_validator_sequence_with_raw_quotes_on_one_connection() {
    let gw = gateway().await;
    let mut c = RawConn::connect(gw.public).await;

    // Entra's "Test Connection": a user that does not exist.
    let r = c
        .roundtrip(&get(
            "/Users?filter=userName+eq+\"ab6490ee-1e48-479e-a20b-2d77186b5dd1\"",
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("server"), None, "answered by ssogate, not pingora");
    assert_eq!(total(&r.json()), 0);

    // Create User, with raw quotes and `<` in the JSON body on the same connection.
    let r = c
        .roundtrip(&send(
            "POST",
            "/Users",
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@testuser.com","active":true,"emails":[{"primary":true,"type":"work","value":"Test_User_fd0ea19b@testuser.com"}],"meta":{"resourceType":"User"},"name":{"formatted":"givenName <familyName>","familyName":"familyName","givenName":"givenName"},"roles":[]}"#,
        ))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let user = r.json();
    let id = user["id"].as_str().unwrap().to_string();
    assert_eq!(user["name"]["formatted"], "givenName <familyName>");

    // Get User by query, the match-before-create: `+` spaces, raw quotes, `%40`.
    let r = c
        .roundtrip(&get(
            "/Users?filter=userName+eq+\"Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1%40testuser.com\"",
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(total(&r.json()), 1);
    assert_eq!(r.json()["Resources"][0]["id"], id.as_str());

    // The same with `%20` spaces, by externalId quoted and unquoted, and by e-mail.
    for q in [
        "/Users?filter=userName%20eq%20\"test_user_ab6490ee-1e48-479e-a20b-2d77186b5dd1@testuser.com\"",
        "/Users?filter=externalId+eq+\"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef\"",
        "/Users?filter=externalId+eq+0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "/Users?filter=emails[type+eq+\"work\"].value+eq+\"Test_User_fd0ea19b%40testuser.com\"",
    ] {
        let r = c.roundtrip(&get(q)).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        assert_eq!(total(&r.json()), 1, "{q}");
    }

    // Zero results.
    let r = c
        .roundtrip(&get("/Users?filter=userName+eq+\"non-existent user\""))
        .await;
    assert_eq!((r.status, total(&r.json())), (200, 0));

    // Get User.
    let r = c.roundtrip(&get(&format!("/Users/{id}"))).await;
    assert_eq!(r.status, 200);

    // Update User: multi-valued and single-valued properties; a single-valued attribute
    // as a one-element value list.
    let r = c
        .roundtrip(&send(
            "PATCH",
            &format!("/Users/{id}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},{"op":"Add","path":"nickName","value":[{"value":"Babs"}]}]}"#,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(r.json()["nickName"], "Babs");
    let r = c
        .roundtrip(&send(
            "PATCH",
            &format!("/Users/{id}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"userName","value":"5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]}"#,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c
        .roundtrip(&get(
            "/Users?filter=userName+eq+\"5b50642d-79fc-4410-9e90-4c077cdd1a59%40testuser.com\"",
        ))
        .await;
    assert_eq!(total(&r.json()), 1);

    // Disable User.
    let r = c
        .roundtrip(&send(
            "PATCH",
            &format!("/Users/{id}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":false}]}"#,
        ))
        .await;
    assert_eq!(
        (r.status, r.json()["active"].clone()),
        (200, Value::Bool(false))
    );

    // Groups: create, get without members, find by displayName, rename, members in and
    // out, delete.
    let r = c
        .roundtrip(&send(
            "POST",
            "/Groups",
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],"externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"displayName","meta":{"resourceType":"Group"}}"#,
        ))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let gid = r.json()["id"].as_str().unwrap().to_string();
    let r = c
        .roundtrip(&get(&format!("/Groups/{gid}?excludedAttributes=members")))
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .roundtrip(&get(
            "/Groups?excludedAttributes=members&filter=displayName+eq+\"displayName\"",
        ))
        .await;
    assert_eq!((r.status, total(&r.json())), (200, 1), "{}", r.text());
    for body in [
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]}"#.to_string(),
        format!(r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"Add","path":"members","value":[{{"$ref":null,"value":"{id}"}}]}}]}}"#),
    ] {
        let r = c.roundtrip(&send("PATCH", &format!("/Groups/{gid}"), &body)).await;
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let r = c
        .roundtrip(&get(&format!(
            "/Groups?filter=members[value+eq+\"{id}\"]&excludedAttributes=members"
        )))
        .await;
    assert_eq!((r.status, total(&r.json())), (200, 1), "{}", r.text());
    let r = c
        .roundtrip(&send(
            "PATCH",
            &format!("/Groups/{gid}"),
            &format!(r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"Remove","path":"members","value":[{{"$ref":null,"value":"{id}"}}]}}]}}"#),
        ))
        .await;
    assert_eq!(r.status, 204);
    for target in [format!("/Groups/{gid}"), format!("/Users/{id}")] {
        let r = c
            .roundtrip(
                format!(
                    "DELETE /scim/v2{target} HTTP/1.1\r\nHost: wiki.example.test\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
        assert_eq!(r.status, 204, "{target}");
    }
    let r = c
        .roundtrip(&get(
            "/Users?filter=userName+eq+\"5b50642d-79fc-4410-9e90-4c077cdd1a59%40testuser.com\"",
        ))
        .await;
    assert_eq!((r.status, total(&r.json())), (200, 0));

    // Past a limit: a clear SCIM error, counted.
    let r = c
        .roundtrip(&send(
            "POST",
            "/Users",
            r#"{"userName":"limits@testuser.com"}"#,
        ))
        .await;
    assert_eq!(r.status, 201);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let ops: Vec<String> = (0..1001)
        .map(|i| format!(r#"{{"op":"Add","path":"title","value":"t{i}"}}"#))
        .collect();
    let r = c
        .roundtrip(&send(
            "PATCH",
            &format!("/Users/{id}"),
            &format!(r#"{{"Operations":[{}]}}"#, ops.join(",")),
        ))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["scimType"], "tooMany");

    // What the operator sees: each kind of change, and the refusal.
    let metrics = gw.metrics().await;
    for line in [
        r#"ssogate_scim_changes_total{change="create",resource="Users"} 2"#,
        r#"ssogate_scim_changes_total{change="update",resource="Users"} 3"#,
        r#"ssogate_scim_changes_total{change="disable",resource="Users"} 1"#,
        r#"ssogate_scim_changes_total{change="rename",resource="Users"} 1"#,
        r#"ssogate_scim_changes_total{change="delete",resource="Users"} 1"#,
        r#"ssogate_scim_changes_total{change="members_added",resource="Groups"} 1"#,
        r#"ssogate_scim_changes_total{change="members_removed",resource="Groups"} 1"#,
        r#"ssogate_scim_refused_total{limit="patch_operations"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
}

#[tokio::test]
async fn every_byte_the_http_crate_refuses_reaches_the_scim_parser() {
    let gw = gateway().await;
    let mut c = RawConn::connect(gw.public).await;
    // `<`, `>` and a backtick in the query or path: answered by SCIM (a filter error or
    // a 404 of its own), never by pingora's bare 400.
    for target in [
        "/Users?filter=userName+eq+\"<script>\"",
        "/Users?filter=displayName+eq+\"a`b\"",
        "/Users/<x>",
    ] {
        let r = c.roundtrip(&get(target)).await;
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("application/scim+json")),
            "{target}: {} {:?}",
            r.status,
            r.headers
        );
    }
    let r = c
        .roundtrip(&get("/Users?filter=userName+eq+\"<script>\""))
        .await;
    assert_eq!((r.status, total(&r.json())), (200, 0));
}
