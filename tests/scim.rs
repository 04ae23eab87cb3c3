//! SCIM provisioning end to end: the real binary (two replicas on one real Redis) answering
//! Entra's provisioning requests as Microsoft documents them, request by request, and the
//! effects on access: deactivation or deletion ends sessions on every replica within a
//! second and blocks sign-in; SCIM memberships drive group routes despite group overage;
//! `require_provisioned_user`; just-in-time records and `ssogate users`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use serde_json::{json, Value};
use ssogate::identity::claims;
use ssogate::saml::{DevIdp, ResponseSpec, SpSettings};
use std::time::{Duration, Instant};
use utils::echo::{echoed, EchoUpstream};
use utils::gateway::Gateway;
use utils::http::{client, cookie_of};

const TOKEN: &str = "s3cret-token-for-entra-provisioning";
const PUBLIC_URL: &str = "https://wiki.example.test";
const ADMINS: &str = "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159";

fn config(redis: Option<&str>, echo_port: u16, scim: &str) -> String {
    let store = match redis {
        Some(url) => format!("store = \"redis\"\nredis_url = \"{url}\""),
        None => "store = \"memory\"".into(),
    };
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[session]
{store}
cookie_secure = false
cache_ttl = "1s"

{scim}

[[app]]
name = "wiki"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:{echo_port}"
allow_idp_initiated = true

[app.sp]
entity_id = "{PUBLIC_URL}/saml"
acs_url = "{PUBLIC_URL}/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"

[app.headers]
"X-Remote-Groups" = "groups"

[app.groups]
admins = "{ADMINS}"

[[app.route]]
path = "/admin/"
allow_groups = ["admins"]
"#
    )
}

const SCIM_ON: &str = "[scim]\nenabled = true\ntoken_file = \"scim-token\"";

async fn gateway(idp: &DevIdp, text: &str) -> Gateway {
    let pem = idp.certificate_pem();
    let token = format!("# Entra Secret Token\n{TOKEN}\n");
    Gateway::start(
        text,
        &[
            ("idp.pem", pem.as_bytes()),
            ("scim-token", token.as_bytes()),
        ],
    )
    .await
}

async fn scim(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    scim_with(gw, method, path, body, TOKEN).await
}

async fn scim_with(
    gw: &Gateway,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> (u16, Value) {
    let mut req = client()
        .request(method.parse().unwrap(), gw.url(&format!("/scim/v2{path}")))
        .header("authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    if status != 204 {
        assert_eq!(
            r.headers().get("content-type").unwrap(),
            "application/scim+json"
        );
    }
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sign in (IdP-initiated) as `user`, optionally with Entra's group overage claim instead
/// of groups; returns the cookie or the refusal status.
async fn sign_in(gw: &Gateway, idp: &DevIdp, user: &str, overage: bool) -> Result<String, u16> {
    let sp = SpSettings {
        entity_id: format!("{PUBLIC_URL}/saml"),
        acs_url: format!("{PUBLIC_URL}/saml/acs"),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    let mut spec = ResponseSpec::for_sp(&sp, user, chrono::Utc::now());
    if overage {
        spec.attributes.push((
            claims::GROUPS_OVERAGE.into(),
            vec!["https://graph.windows.net/tenant/users/x/getMemberObjects".into()],
        ));
    }
    let r = client()
        .post(gw.url("/saml/acs"))
        .form(&[("SAMLResponse", idp.sign_response(&spec).unwrap())])
        .send()
        .await
        .unwrap();
    if r.status() != 302 {
        return Err(r.status().as_u16());
    }
    Ok(cookie_of(&r))
}

async fn status_of(gw: &Gateway, path: &str, cookie: &str) -> u16 {
    client()
        .get(gw.url(path))
        .header("accept", "text/html")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_provisioning_requests_as_documented() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let gw = gateway(
        &idp,
        &config(Some(&utils::redis::shared_url()), echo.port, SCIM_ON),
    )
    .await;

    // Entra's "Test Connection": a filter that matches nobody; still a ListResponse.
    let probe = unique("Test_User");
    let (s, body) = scim(
        &gw,
        "GET",
        &format!("/Users?filter=userName+eq+%22{probe}%22"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(body["totalResults"], 0);
    assert_eq!(body["Resources"], json!([]));

    // Create with the enterprise extension.
    let user_name = unique("Test_User");
    let create = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": user_name,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": format!("{user_name}@testuser.com")}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "employeeNumber": "701984"}
    });
    let (s, user) = scim(&gw, "POST", "/Users", Some(create.clone())).await;
    assert_eq!(s, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_string();
    assert_eq!(user["userName"], user_name.as_str());
    assert_eq!(user["meta"]["resourceType"], "User");
    assert!(user["meta"]["location"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/scim/v2/Users/{id}")));
    assert_eq!(
        user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Sales"
    );

    // Duplicate userName (any case) -> 409 uniqueness.
    let mut dup = create.clone();
    dup["userName"] = json!(user_name.to_uppercase());
    let (s, err) = scim(&gw, "POST", "/Users", Some(dup)).await;
    assert_eq!(s, 409);
    assert_eq!(err["scimType"], "uniqueness");
    assert_eq!(err["status"], "409");

    // Filter finds it; by id and externalId too; pagination.
    let (_, found) = scim(
        &gw,
        "GET",
        &format!("/Users?filter=userName+eq+%22{user_name}%22"),
        None,
    )
    .await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], id.as_str());
    let (_, found) = scim(&gw, "GET", "/Users?filter=externalId+eq+%220a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef%22+and+active+eq+true&count=1&startIndex=1", None).await;
    assert!(found["totalResults"].as_u64().unwrap() >= 1);
    assert_eq!(found["itemsPerPage"], 1);

    // PATCH as Entra sends it: capitalised ops, filtered paths, dotted keys.
    let (s, patched) = scim(&gw, "PATCH", &format!("/Users/{id}"), Some(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Add", "value": {"name.givenName": "Zoë", "displayName": "Zoë Ångström"}}
        ]
    }))).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(patched["name"]["familyName"], "updatedFamilyName");
    assert_eq!(patched["name"]["givenName"], "Zoë");

    // "False" as a string (no aadOptscim062020): inactive, still readable.
    let (s, patched) = scim(
        &gw,
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
        })),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(patched["active"], false);
    let (s, got) = scim(&gw, "GET", &format!("/Users/{id}"), None).await;
    assert_eq!((s, got["active"].clone()), (200, json!(false)));

    // Groups: Entra's extra schema, empty members.
    let group_name = unique("Group");
    let (s, group) = scim(&gw, "POST", "/Groups", Some(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": group_name,
        "meta": {"resourceType": "Group"},
        "members": []
    }))).await;
    assert_eq!(s, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();
    let (s, _) = scim(&gw, "POST", "/Groups", Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": group_name}))).await;
    assert_eq!(s, 409);

    // Membership: add, then both forms of removal; 204 each.
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": id}]}]});
    assert_eq!(
        scim(&gw, "PATCH", &format!("/Groups/{gid}"), Some(add.clone()))
            .await
            .0,
        204
    );
    let (_, g) = scim(&gw, "GET", &format!("/Groups/{gid}"), None).await;
    assert_eq!(g["members"][0]["value"], id.as_str());
    let (_, g) = scim(
        &gw,
        "GET",
        &format!("/Groups/{gid}?excludedAttributes=members"),
        None,
    )
    .await;
    assert!(
        g.get("members").is_none() && g["displayName"] == group_name.as_str(),
        "{g}"
    );
    let (_, list) = scim(
        &gw,
        "GET",
        &format!("/Groups?filter=displayName+eq+%22{group_name}%22&excludedAttributes=members"),
        None,
    )
    .await;
    assert_eq!(list["totalResults"], 1);
    assert!(list["Resources"][0].get("members").is_none());
    let remove_by_value = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": id}]}]});
    assert_eq!(
        scim(
            &gw,
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(remove_by_value)
        )
        .await
        .0,
        204
    );
    assert_eq!(
        scim(&gw, "GET", &format!("/Groups/{gid}"), None).await.1["members"],
        json!([])
    );
    assert_eq!(
        scim(&gw, "PATCH", &format!("/Groups/{gid}"), Some(add))
            .await
            .0,
        204
    );
    let remove_by_filter = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Remove", "path": format!("members[value eq \"{id}\"]")}]});
    assert_eq!(
        scim(
            &gw,
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(remove_by_filter)
        )
        .await
        .0,
        204
    );
    assert_eq!(
        scim(&gw, "GET", &format!("/Groups/{gid}"), None).await.1["members"],
        json!([])
    );

    // Wrong or missing token: 401 with a SCIM error body.
    let (s, err) = scim_with(&gw, "GET", "/Users", None, "not-the-token-at-all").await;
    assert_eq!(s, 401);
    assert_eq!(
        err["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    let r = client().get(gw.url("/scim/v2/Users")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Discovery documents.
    let (s, spc) = scim(&gw, "GET", "/ServiceProviderConfig", None).await;
    assert_eq!((s, spc["patch"]["supported"].clone()), (200, json!(true)));
    assert_eq!(
        scim(&gw, "GET", "/ResourceTypes", None).await.1["totalResults"],
        2
    );
    assert_eq!(
        scim(&gw, "GET", "/Schemas", None).await.1["totalResults"],
        3
    );

    // DELETE removes it.
    assert_eq!(
        scim(&gw, "DELETE", &format!("/Users/{id}"), None).await.0,
        204
    );
    assert_eq!(scim(&gw, "GET", &format!("/Users/{id}"), None).await.0, 404);
    assert_eq!(
        scim(&gw, "DELETE", &format!("/Groups/{gid}"), None).await.0,
        204
    );

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            "ssogate_scim_requests_total{method=\"PATCH\",resource=\"Groups\",status=\"204\"}"
        ),
        "{metrics}"
    );
    assert!(gw.log().contains("event=\"scim_change\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_ends_sessions_on_every_replica_and_blocks_sign_in() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let text = config(Some(&utils::redis::shared_url()), echo.port, SCIM_ON);
    let a = gateway(&idp, &text).await;
    let b = gateway(&idp, &text).await;
    let user = format!("{}@contoso.example", unique("dora"));
    let (s, created) = scim(
        &a,
        "POST",
        "/Users",
        Some(json!({"userName": user, "active": true})),
    )
    .await;
    assert_eq!(s, 201);
    let id = created["id"].as_str().unwrap().to_string();

    // Signed in on both replicas (NameID = userName, any case).
    let on_a = sign_in(&a, &idp, &user.to_uppercase(), false)
        .await
        .unwrap();
    let on_b = sign_in(&b, &idp, &user, false).await.unwrap();
    for gw in [&a, &b] {
        assert_eq!(status_of(gw, "/", &on_a).await, 200);
        assert_eq!(status_of(gw, "/", &on_b).await, 200);
    }

    // Entra disables the user through replica B: every session ends everywhere within 1 s.
    let (s, _) = scim(
        &b,
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
        })),
    )
    .await;
    assert_eq!(s, 200);
    for gw in [&a, &b] {
        for c in [&on_a, &on_b] {
            assert!(
                within(Duration::from_secs(1), async || status_of(gw, "/", c).await
                    == 302)
                .await,
                "a session survived deactivation: {}",
                gw.log()
            );
        }
    }
    // No new sign-in while inactive: a clear page after the SAML checks.
    assert_eq!(sign_in(&a, &idp, &user, false).await.err(), Some(403));
    assert!(a.log().contains("reason=\"user_inactive\""));
    let metrics = b.metrics().await;
    assert!(
        metrics.contains("ssogate_sessions_revoked_total{cause=\"scim_deactivated\"} 2"),
        "{metrics}"
    );

    // Active again: sign-in works; DELETE ends it again.
    let (s, _) = scim(
        &a,
        "PATCH",
        &format!("/Users/{id}"),
        Some(json!({
            "Operations": [{"op": "replace", "value": {"active": true}}]
        })),
    )
    .await;
    assert_eq!(s, 200);
    let again = sign_in(&b, &idp, &user, false).await.unwrap();
    assert_eq!(status_of(&a, "/", &again).await, 200);
    assert_eq!(
        scim(&a, "DELETE", &format!("/Users/{id}"), None).await.0,
        204
    );
    for gw in [&a, &b] {
        assert!(
            within(Duration::from_secs(1), async || status_of(gw, "/", &again)
                .await
                == 302)
            .await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_groups_decide_routes_despite_group_overage() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let user = format!("{}@contoso.example", unique("olga"));

    // Without SCIM groups: the overage user gets the page that names the fix.
    let plain = gateway(&idp, &config(None, echo.port, "")).await;
    let cookie = sign_in(&plain, &idp, &user, true).await.unwrap();
    let r = client()
        .get(plain.url("/admin/"))
        .header("accept", "text/html")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Groups assigned to the application"));

    // With authoritative SCIM groups.
    let gw = gateway(
        &idp,
        &config(
            Some(&utils::redis::shared_url()),
            echo.port,
            "[scim]\nenabled = true\ntoken_file = \"scim-token\"\nauthoritative_groups = true",
        ),
    )
    .await;
    let (_, u) = scim(&gw, "POST", "/Users", Some(json!({"userName": user}))).await;
    let uid = u["id"].as_str().unwrap().to_string();
    let (s, g) = scim(
        &gw,
        "POST",
        "/Groups",
        Some(json!({
            "displayName": unique("Wiki admins"), "externalId": ADMINS, "members": [{"value": uid}]
        })),
    )
    .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let cookie = sign_in(&gw, &idp, &user, true).await.unwrap();
    assert_eq!(
        status_of(&gw, "/admin/", &cookie).await,
        200,
        "{}",
        gw.log()
    );
    // The identity judged is the identity forwarded: the app sees the SCIM groups too.
    let groups_seen = async |path: &str| {
        let body = client()
            .get(gw.url(path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        echoed(&body, "x-remote-groups")
    };
    assert_eq!(groups_seen("/wiki").await, [ADMINS]);

    // Membership removed: the route closes from the next request (cache bounded by 1 s).
    let (s, _) = scim(
        &gw,
        "PATCH",
        &format!("/Groups/{gid}"),
        Some(json!({
            "Operations": [{"op": "Remove", "path": format!("members[value eq \"{uid}\"]")}]
        })),
    )
    .await;
    assert_eq!(s, 204);
    assert!(
        within(Duration::from_secs(3), async || status_of(
            &gw, "/admin/", &cookie
        )
        .await
            == 403)
        .await
    );
    assert!(
        groups_seen("/wiki").await.is_empty(),
        "the removed group left the headers too"
    );
    assert_eq!(
        scim(&gw, "DELETE", &format!("/Groups/{gid}"), None).await.0,
        204
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_provisioned_user_and_just_in_time_records() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();

    let gw = gateway(
        &idp,
        &config(
            None,
            echo.port,
            "[scim]\nenabled = true\ntoken_file = \"scim-token\"\nrequire_provisioned_user = true",
        ),
    )
    .await;
    assert_eq!(
        sign_in(&gw, &idp, "stranger@contoso.example", false)
            .await
            .err(),
        Some(403)
    );
    assert!(gw.log().contains("reason=\"not_provisioned\""));
    scim(
        &gw,
        "POST",
        "/Users",
        Some(json!({"userName": "member@contoso.example"})),
    )
    .await;
    assert!(sign_in(&gw, &idp, "member@contoso.example", false)
        .await
        .is_ok());

    // Without SCIM: sign-ins leave records, which `ssogate users` shows; revoke ends sessions.
    let redis = utils::redis::shared_url();
    let jit = gateway(&idp, &config(Some(&redis), echo.port, "")).await;
    let user = format!("{}@contoso.example", unique("jit"));
    let cookie = sign_in(&jit, &idp, &user, false).await.unwrap();
    sign_in(&jit, &idp, &user, false).await.unwrap();
    let cfg = jit.dir.path().join("ssogate.toml");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssogate"))
            .arg("users")
            .arg("-c")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = cli(&["list", "--per-page", "1000"]);
    assert!(ok, "{out}");
    assert!(out.contains(&user) && out.contains("sign-ins 2"), "{out}");
    let (ok, out) = cli(&["show", &user]);
    assert!(ok && out.contains("live sessions in wiki: 2"), "{out}");
    let (ok, out) = cli(&["revoke", &user]);
    assert!(ok && out.contains("ended 2 session(s)"), "{out}");
    assert!(
        within(Duration::from_secs(1), async || status_of(
            &jit, "/", &cookie
        )
        .await
            == 302)
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_membership_patches_through_two_replicas_lose_nothing() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let text = config(Some(&utils::redis::shared_url()), echo.port, SCIM_ON);
    let a = gateway(&idp, &text).await;
    let b = gateway(&idp, &text).await;
    let (_, g) = scim(
        &a,
        "POST",
        "/Groups",
        Some(json!({"displayName": unique("crowd")})),
    )
    .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for i in 0..24 {
        let (s, u) = scim(
            &a,
            "POST",
            "/Users",
            Some(json!({"userName": unique(&format!("member{i}"))})),
        )
        .await;
        assert_eq!(s, 201);
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    let patches = ids.iter().enumerate().map(|(i, id)| {
        let gw = if i % 2 == 0 { &a } else { &b };
        let body =
            json!({"Operations": [{"op": "Add", "path": "members", "value": [{"value": id}]}]});
        let path = format!("/Groups/{gid}");
        async move { scim(gw, "PATCH", &path, Some(body)).await.0 }
    });
    let statuses = futures_util::future::join_all(patches).await;
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    let (_, g) = scim(&b, "GET", &format!("/Groups/{gid}"), None).await;
    let members: Vec<&str> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members.len(), ids.len(), "lost updates: {members:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_answer_lookups_and_reindex_repairs_them() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    // A Redis of its own: the test breaks the indexes on purpose.
    let redis = utils::redis::TestRedis::start();
    let gw = gateway(&idp, &config(Some(&redis.url()), echo.port, SCIM_ON)).await;
    let (s, u) = scim(
        &gw,
        "POST",
        "/Users",
        Some(
            json!({"userName": "Ida@Contoso.example", "externalId": "0d1c-ida",
                    "emails": [{"type": "work", "value": "Ida@Contoso.example", "primary": true}]}),
        ),
    )
    .await;
    assert_eq!(s, 201);
    let uid = u["id"].as_str().unwrap().to_string();
    let (s, _) = scim(
        &gw,
        "POST",
        "/Groups",
        Some(
            json!({"displayName": "Wiki editors", "externalId": "e0e0-editors",
                    "members": [{"value": uid}]}),
        ),
    )
    .await;
    assert_eq!(s, 201);
    let found = |filter: &'static str, kind: &'static str| {
        let gw = &gw;
        async move {
            let q: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
            let (s, v) = scim(gw, "GET", &format!("/{kind}?filter={q}"), None).await;
            assert_eq!(s, 200, "{v}");
            v["totalResults"].as_u64().unwrap()
        }
    };
    for (filter, kind) in [
        (r#"userName eq "ida@contoso.example""#, "Users"),
        ("externalId eq 0d1c-ida", "Users"),
        (
            r#"emails[type eq "work"].value eq "IDA@contoso.example""#,
            "Users",
        ),
        (r#"displayName eq "wiki EDITORS""#, "Groups"),
        (r#"externalId eq "e0e0-editors""#, "Groups"),
    ] {
        assert_eq!(found(filter, kind).await, 1, "{filter}");
    }

    // Break the indexes behind the gateway's back: the lookups find nothing now.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("ssogate:doc:{scim-*}:[um]:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.len() >= 5, "{keys:?}");
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        found(r#"userName eq "ida@contoso.example""#, "Users").await,
        0
    );

    // The repair command rebuilds them from the documents.
    let cfg = gw.dir.path().join("ssogate.toml");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ssogate"))
            .arg(args[0])
            .arg("-c")
            .arg(&cfg)
            .args(&args[1..])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };
    let out = cli(&["directory", "reindex"]);
    assert!(
        out.contains("Users: 1 documents") && out.contains("Groups: 1 documents"),
        "{out}"
    );
    for (filter, kind) in [
        (r#"userName eq "ida@contoso.example""#, "Users"),
        ("externalId eq 0d1c-ida", "Users"),
        (r#"displayName eq "wiki editors""#, "Groups"),
    ] {
        assert_eq!(found(filter, kind).await, 1, "{filter}");
    }
    // The operator's views, from the same indexes.
    let out = cli(&["groups", "show", "Wiki editors"]);
    assert!(
        out.contains("e0e0-editors") && out.contains("Ida@Contoso.example"),
        "{out}"
    );
    let out = cli(&["groups", "list"]);
    assert!(
        out.contains("SCIM groups 1-1 of 1") && out.contains("members=1"),
        "{out}"
    );
    let out = cli(&["users", "search", "externalId eq 0d1c-ida"]);
    assert!(
        out.contains("1 user(s)") && out.contains("Ida@Contoso.example"),
        "{out}"
    );
    let out = cli(&["users", "show", "ida@contoso.example"]);
    assert!(out.contains("groups: Wiki editors (e0e0-editors)"), "{out}");
}

/// Sign in (IdP-initiated) with a NameID and Entra's objectidentifier claim, plus extra
/// attributes; the cookie or the refusal status.
async fn sign_in_as(
    gw: &Gateway,
    idp: &DevIdp,
    name_id: &str,
    object_id: &str,
    extra: Vec<(String, Vec<String>)>,
) -> Result<String, u16> {
    let mut attributes = vec![(claims::OBJECT_ID.to_string(), vec![object_id.to_string()])];
    attributes.extend(extra);
    let r = utils::signin::idp_initiated(
        idp,
        &utils::signin::sp(PUBLIC_URL),
        &gw.url("/saml/acs"),
        name_id,
        attributes,
    )
    .await;
    if r.status() != 302 {
        return Err(r.status().as_u16());
    }
    Ok(cookie_of(&r))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_through_persistent_name_ids_upn_changes_and_guest_names() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let redis = utils::redis::TestRedis::start();
    let text = config(
        Some(&redis.url()),
        echo.port,
        "[scim]\nenabled = true\ntoken_file = \"scim-token\"\nauthoritative_groups = true\nrequire_provisioned_user = true",
    )
    .replace(
        "\"X-Remote-Groups\" = \"groups\"",
        "\"X-Remote-Groups\" = \"groups\"\n\"X-Group-Names\" = { source = \"groups\", groups_as = \"name\", separator = \";\" }\n\"X-Remote-User\" = \"name_id\"",
    );
    let gw = gateway(&idp, &text).await;
    let oid = "6b2e5f7a-31f4-4c2b-9b5e-0e6c8d2b1f3a";
    let (s, u) = scim(
        &gw,
        "POST",
        "/Users",
        Some(json!({"userName": "ann@contoso.example", "externalId": oid})),
    )
    .await;
    assert_eq!(s, 201);
    let uid = u["id"].as_str().unwrap().to_string();
    let (s, _) = scim(
        &gw,
        "POST",
        "/Groups",
        Some(json!({"displayName": "Wiki admins", "externalId": ADMINS, "members": [{"value": uid}]})),
    )
    .await;
    assert_eq!(s, 201);
    let seen = async |cookie: &str| {
        let r = client()
            .get(gw.url("/admin/page"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    };

    // A persistent (opaque) NameID: the person is found by object ID = externalId. A
    // token that claims group names of its own changes nothing.
    let persistent = sign_in_as(
        &gw,
        &idp,
        "u7Q2x0Pv-persistent-id",
        oid,
        vec![(claims::GROUP_NAMES.into(), vec!["Forged admins".into()])],
    )
    .await
    .expect("provisioned by object ID");
    let (status, body) = seen(&persistent).await;
    assert_eq!(status, 200, "{}", gw.log());
    assert_eq!(echoed(&body, "x-remote-groups"), [ADMINS]);
    assert_eq!(
        echoed(&body, "x-group-names"),
        ["Wiki admins"],
        "names from SCIM"
    );
    // Unknown object ID and unknown name: not provisioned.
    assert_eq!(
        sign_in_as(&gw, &idp, "stranger@contoso.example", "0000-none", vec![]).await,
        Err(403)
    );

    // The UPN changes: Entra renames the SCIM user. One record, one person: signing in
    // under the new name works, and the session by object ID is not split off.
    let renamed = sign_in_as(&gw, &idp, "ann.new@contoso.example", oid, vec![])
        .await
        .expect("the new UPN, before Entra's rename arrives");
    let (s, _) = scim(
        &gw,
        "PATCH",
        &format!("/Users/{uid}"),
        Some(json!({"Operations": [{"op": "Replace", "path": "userName", "value": "ann.new@contoso.example"}]})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = scim(
        &gw,
        "GET",
        "/Users?filter=externalId%20eq%20%226b2e5f7a-31f4-4c2b-9b5e-0e6c8d2b1f3a%22",
        None,
    )
    .await;
    assert_eq!((s, v["totalResults"].as_u64()), (200, Some(1)));
    assert_eq!(seen(&renamed).await.0, 200);
    assert_eq!(seen(&persistent).await.0, 200);

    // Disabled in Entra: every session of the person ends, whatever its NameID.
    let (s, _) = scim(
        &gw,
        "PATCH",
        &format!("/Users/{uid}"),
        Some(json!({"Operations": [{"op": "Replace", "path": "active", "value": "False"}]})),
    )
    .await;
    assert_eq!(s, 200);
    for cookie in [&persistent, &renamed] {
        assert!(
            within(Duration::from_secs(2), async || seen(cookie).await.0 != 200).await,
            "a session outlived the deactivation"
        );
    }

    // A guest (#EXT# in the UPN), looked up as Entra sends it: `#` raw or encoded.
    let guest = "ann_gmail.com#EXT#@contoso.onmicrosoft.com";
    let (s, _) = scim(&gw, "POST", "/Users", Some(json!({"userName": guest}))).await;
    assert_eq!(s, 201);
    let mut c = utils::raw::RawConn::connect(gw.public).await;
    for target in [
        "/scim/v2/Users?filter=userName+eq+\"ann_gmail.com#EXT#@contoso.onmicrosoft.com\"",
        "/scim/v2/Users?filter=userName+eq+\"ann_gmail.com%23EXT%23%40contoso.onmicrosoft.com\"",
    ] {
        let r = c
            .roundtrip(
                format!(
                    "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        assert_eq!(r.json()["totalResults"], 1, "{target}");
    }
}

/// A directory as versions before the indexes wrote it (one key per document, the id
/// hashed, a set of ids, one unique key per document) moves to the indexed layout when
/// the gateway starts: the same SCIM ids, found by Entra's lookups, members intact, the
/// old keys gone; `directory migrate` then finds nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_an_earlier_version_moves_to_the_indexed_layout_at_start() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let redis = utils::redis::TestRedis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let sha = |s: &str| hex::encode(openssl::sha::sha256(s.as_bytes()));
    let user = |id: &str, name: &str, ext: &str| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id,
               "userName": name, "externalId": ext, "active": true,
               "meta": {"resourceType": "User"}})
    };
    let legacy: Vec<(&str, &str, Value)> = vec![
        (
            "scim-users",
            "u-ann",
            user("u-ann", "Ann@Contoso.example", "ext-ann"),
        ),
        (
            "scim-users",
            "u-bob",
            user("u-bob", "bob@contoso.example", "ext-bob"),
        ),
        (
            "scim-groups",
            "g-ed",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g-ed",
                   "displayName": "Wiki editors", "externalId": "e0e0-editors",
                   "members": [{"value": "u-ann"}], "meta": {"resourceType": "Group"}}),
        ),
        (
            "jit-users",
            "carl@contoso.example",
            json!({"userName": "carl@contoso.example"}),
        ),
    ];
    for (collection, id, doc) in &legacy {
        let _: () = redis::pipe()
            .cmd("SADD")
            .arg(format!("ssogate:doc:{collection}:ids"))
            .arg(*id)
            .ignore()
            .cmd("SET")
            .arg(format!("ssogate:doc:{collection}:{}", sha(id)))
            .arg(doc.to_string())
            .ignore()
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // The old unique keys, and an id whose document is gone.
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(format!(
            "ssogate:doc:scim-users:unique:{}",
            sha("ann@contoso.example")
        ))
        .arg("u-ann")
        .ignore()
        .cmd("SADD")
        .arg("ssogate:doc:scim-users:ids")
        .arg("u-gone")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    // A group of the indexed layout before member lists moved beside the document.
    let ops = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "g-ops",
                     "displayName": "Operators", "externalId": "e0e0-ops",
                     "members": [{"value": "u-bob"}], "meta": {"resourceType": "Group"}});
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(format!("ssogate:doc:{{scim-groups}}:{}", sha("g-ops")))
        .arg(ops.to_string())
        .ignore()
        .cmd("ZADD")
        .arg("ssogate:doc:{scim-groups}:order")
        .arg(1)
        .arg("g-ops")
        .ignore()
        .cmd("SET")
        .arg("ssogate:doc:{scim-groups}:seq")
        .arg(1)
        .ignore()
        .cmd("HSET")
        .arg("ssogate:doc:{scim-groups}:u:displayName")
        .arg("operators")
        .arg("g-ops")
        .ignore()
        .cmd("HSET")
        .arg("ssogate:doc:{scim-groups}:summary")
        .arg("g-ops")
        .arg("e0e0-ops\tOperators")
        .ignore()
        .cmd("SADD")
        .arg(format!(
            "ssogate:doc:{{scim-groups}}:m:member:{}",
            sha("u-bob")
        ))
        .arg("g-ops")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    let gw = gateway(&idp, &config(Some(&redis.url()), echo.port, SCIM_ON)).await;
    let q = |f: &str| url::form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let found = loop {
        let (s, v) = scim(
            &gw,
            "GET",
            &format!(
                "/Users?filter={}",
                q(r#"userName eq "ann@contoso.example""#)
            ),
            None,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        if v["totalResults"] == 1 {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "{}", gw.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(found["Resources"][0]["id"], "u-ann");
    let (s, v) = scim(&gw, "GET", "/Users/u-bob", None).await;
    assert_eq!(
        (s, v["userName"].as_str()),
        (200, Some("bob@contoso.example"))
    );
    let (_, v) = scim(
        &gw,
        "GET",
        &format!("/Users?filter={}", q("externalId eq ext-bob")),
        None,
    )
    .await;
    assert_eq!(v["totalResults"], 1, "{v}");
    let (_, v) = scim(
        &gw,
        "GET",
        &format!("/Groups?filter={}", q(r#"displayName eq "wiki editors""#)),
        None,
    )
    .await;
    assert_eq!(v["Resources"][0]["members"][0]["value"], "u-ann", "{v}");
    let (_, v) = scim(&gw, "GET", "/Users", None).await;
    assert_eq!(v["totalResults"], 2, "{v}");

    // Nothing of the old layout is left (the current one's keys carry `{…}` tags).
    for pattern in ["ssogate:doc:scim-*", "ssogate:doc:jit-*"] {
        let old: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(old.is_empty(), "{old:?}");
    }
    let jit: bool = redis::cmd("EXISTS")
        .arg(format!(
            "ssogate:doc:{{jit-users}}:{}",
            sha("carl@contoso.example")
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(jit, "the sign-in record was not moved");
    let log = gw.log();
    assert!(
        log.contains("moved to the indexed layout") && log.contains("moved=2"),
        "{log}"
    );

    // Both groups' member lists now live beside their documents.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for (group, member) in [("g-ed", "u-ann"), ("g-ops", "u-bob")] {
        let list = format!("ssogate:doc:{{scim-groups}}:members:{}", sha(group));
        loop {
            let doc: String = redis::cmd("GET")
                .arg(format!("ssogate:doc:{{scim-groups}}:{}", sha(group)))
                .query_async(&mut conn)
                .await
                .unwrap();
            let members: Vec<String> = redis::cmd("HKEYS")
                .arg(&list)
                .query_async(&mut conn)
                .await
                .unwrap();
            if !doc.contains("members") && members == [member] {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{group}: {doc} {members:?}\n{}",
                gw.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, v) = scim(&gw, "GET", &format!("/Groups/{group}"), None).await;
        assert_eq!(v["members"], json!([{"value": member}]), "{v}");
    }
    let (_, v) = scim(
        &gw,
        "GET",
        &format!("/Groups?filter={}", q(r#"members[value eq "u-bob"]"#)),
        None,
    )
    .await;
    assert_eq!(v["Resources"][0]["id"], "g-ops", "{v}");

    let cfg = gw.config_path();
    let (code, out) = utils::cli::ssogate(&["directory", "-c", cfg.to_str().unwrap(), "migrate"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("scim-users: 0 moved"), "{out}");
    assert!(out.contains("scim-groups (member lists): 0 moved"), "{out}");
}

/// A group's members live beside its document, not in it: Entra's membership PATCHes
/// add or remove one member without reading or rewriting the list, whatever its size, a
/// read with `excludedAttributes=members` and `ssogate groups list|search` never load it,
/// and full reads, filters, replacements, user deletions and group deletion see one
/// consistent list.
#[tokio::test(flavor = "multi_thread")]
async fn membership_changes_never_read_or_rewrite_a_large_groups_member_list() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let redis = utils::redis::TestRedis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let gw = gateway(&idp, &config(Some(&redis.url()), echo.port, SCIM_ON)).await;
    let sha = |s: &str| hex::encode(openssl::sha::sha256(s.as_bytes()));
    let q = |f: &str| url::form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>();

    // 205 users, 8 requests at a time.
    let mut users: Vec<String> = Vec::new();
    for chunk in (0..205).collect::<Vec<_>>().chunks(8) {
        let created = futures_util::future::join_all(chunk.iter().map(|i| {
            let gw = &gw;
            async move {
                let (s, v) = scim(
                    gw,
                    "POST",
                    "/Users",
                    Some(json!({"userName": format!("u{i}@contoso.example"), "active": true})),
                )
                .await;
                assert_eq!(s, 201, "{v}");
                v["id"].as_str().unwrap().to_string()
            }
        }))
        .await;
        users.extend(created);
    }
    let member = |i: usize| json!({"value": users[i]});
    let (s, g) = scim(
        &gw,
        "POST",
        "/Groups",
        Some(
            json!({"displayName": "All staff", "externalId": "0a11-staff",
                    "members": (0..200).map(member).collect::<Vec<_>>()}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{g}");
    assert_eq!(g["members"].as_array().unwrap().len(), 200);
    let gid = g["id"].as_str().unwrap().to_string();
    let doc_key = format!("ssogate:doc:{{scim-groups}}:{}", sha(&gid));
    let list_key = format!("ssogate:doc:{{scim-groups}}:members:{}", sha(&gid));
    let doc: String = redis::cmd("GET")
        .arg(&doc_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        doc.len() < 1024 && !doc.contains(&users[0]),
        "the stored group holds its member list: {} bytes",
        doc.len()
    );
    let n: usize = redis::cmd("HLEN")
        .arg(&list_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 200);

    // Entra's membership PATCHes, and its group read: no command reads the list.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let path = format!("/Groups/{gid}");
    for ops in [
        json!([{"op": "Add", "path": "members", "value": [member(200)]}]),
        json!([{"op": "Remove", "path": format!("members[value eq \"{}\"]", users[0])}]),
        json!([{"op": "Remove", "path": "members", "value": [member(1)]}]),
        json!([{"op": "Replace", "path": "displayName", "value": "All staff (EU)"},
               {"op": "Add", "path": "members", "value": [member(201), member(202)]}]),
    ] {
        let (s, v) = scim(&gw, "PATCH", &path, Some(patch(ops))).await;
        assert_eq!(s, 204, "{v}");
    }
    let (s, v) = scim(
        &gw,
        "GET",
        &format!("{path}?excludedAttributes=members"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("members").is_none(), "{v}");
    assert_eq!(v["displayName"], "All staff (EU)");
    // The operator's listings count members beside the group, never loading the list.
    let cfg = gw.config_path();
    for args in [
        vec!["groups", "list"],
        vec!["groups", "search", r#"displayName eq "all staff (eu)""#],
    ] {
        let (code, out) =
            utils::cli::ssogate(&[&[args[0], "-c", cfg.to_str().unwrap()], &args[1..]].concat());
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("All staff (EU)") && out.contains("members=201"),
            "{out}"
        );
    }
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    for read in [
        "cmdstat_hgetall",
        "cmdstat_hkeys",
        "cmdstat_hvals",
        "cmdstat_hscan",
    ] {
        assert!(
            !stats.contains(read),
            "a membership change, a members-less read or a listing loaded the list:\n{stats}"
        );
    }
    let doc: String = redis::cmd("GET")
        .arg(&doc_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(doc.len() < 1024, "{doc}");

    // A full read puts the list back together.
    let ids = |v: &Value| -> Vec<String> {
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, v) = scim(&gw, "GET", &path, None).await;
    let now = ids(&v);
    assert_eq!(now.len(), 201, "{v}");
    for (i, present) in [(0, false), (1, false), (2, true), (200, true), (202, true)] {
        assert_eq!(now.contains(&users[i]), present, "user {i}");
    }
    let with = |i: usize| {
        format!(
            "/Groups?filter={}",
            q(&format!("members[value eq \"{}\"]", users[i]))
        )
    };
    let (_, v) = scim(&gw, "GET", &with(200), None).await;
    assert_eq!(v["totalResults"], 1, "{v}");
    let (_, v) = scim(&gw, "GET", &with(0), None).await;
    assert_eq!(v["totalResults"], 0, "{v}");
    let (_, v) = scim(
        &gw,
        "GET",
        &format!(
            "/Groups?filter={}&excludedAttributes=members",
            q(&format!(
                "id eq \"{gid}\" and members[value eq \"{}\"]",
                users[2]
            ))
        ),
        None,
    )
    .await;
    assert_eq!(v["totalResults"], 1, "{v}");

    // A deleted user leaves the group.
    let (s, _) = scim(&gw, "DELETE", &format!("/Users/{}", users[2]), None).await;
    assert_eq!(s, 204);
    let (_, v) = scim(&gw, "GET", &path, None).await;
    assert_eq!(ids(&v).len(), 200);
    assert!(!ids(&v).contains(&users[2]));

    // A replaced list is exactly the new one, in the member index too.
    let (s, v) = scim(
        &gw,
        "PATCH",
        &path,
        Some(patch(
            json!([{"op": "Replace", "path": "members", "value": [member(3), member(4)]}]),
        )),
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let (_, v) = scim(&gw, "GET", &path, None).await;
    let mut expected = vec![users[3].clone(), users[4].clone()];
    expected.sort();
    assert_eq!(ids(&v), expected);
    let (_, v) = scim(&gw, "GET", &with(5), None).await;
    assert_eq!(v["totalResults"], 0, "{v}");
    let (s, v) = scim(
        &gw,
        "PUT",
        &path,
        Some(json!({"displayName": "All staff", "members": [member(6)]})),
    )
    .await;
    assert_eq!((s, ids(&v)), (200, vec![users[6].clone()]), "{v}");
    let (_, v) = scim(&gw, "GET", &with(3), None).await;
    assert_eq!(v["totalResults"], 0, "{v}");

    // A deleted group takes its list and its member index entries along.
    let (s, _) = scim(&gw, "DELETE", &path, None).await;
    assert_eq!(s, 204);
    let n: usize = redis::cmd("EXISTS")
        .arg(&list_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let of_6: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!(
            "ssogate:doc:{{scim-groups}}:m:member:{}",
            sha(&users[6])
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(of_6.is_empty(), "{of_6:?}");
}
