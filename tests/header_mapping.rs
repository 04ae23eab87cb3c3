//! Attribute mapping as Entra's tutorials show it (pymetrics: UserFirstName <-
//! user.givenname, UserLastName <- user.surname, UserEmail <- user.userprincipalname), with
//! a non-ASCII given name, through the real binary to a real upstream: each encoding,
//! constants, session facts, defaults, separators, and groups as aliases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use base64::Engine as _;
use ssogate::identity::claims;
use ssogate::saml::{DevIdp, ResponseSpec, SpSettings};
use std::time::Duration;
use utils::echo::{echoed, EchoUpstream};
use utils::gateway::Gateway;
use utils::http::cookie_of;

const ADMINS: &str = "e7f3c0ba-0000-4000-8000-000000000001";
const STAFF: &str = "5a1d2c3b-0000-4000-8000-000000000002";
const OTHER: &str = "99999999-0000-4000-8000-000000000003";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_tutorial_mapping_with_a_non_ascii_given_name() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let pem = idp.certificate_pem();
    let config = format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[session]
store = "memory"
cookie_secure = false

[[app]]
name = "pymetrics"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:{port}"
allow_idp_initiated = true

[app.sp]
entity_id = "https://pymetrics.example.test/saml"
acs_url = "https://pymetrics.example.test/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"

[app.groups]
admins = "{ADMINS}"
staff = "{STAFF}"

[app.headers]
"UserFirstName" = "claim:UserFirstName"
"UserLastName" = "claim:UserLastName"
"UserEmail" = "claim:UserEmail"
"X-First-Raw" = {{ source = "claim:UserFirstName", encoding = "utf8" }}
"X-First-Rfc2047" = {{ source = "claim:UserFirstName", encoding = "rfc2047" }}
"X-First-Base64" = {{ source = "claim:UserFirstName", encoding = "base64" }}
"X-Groups" = {{ source = "groups", groups_as = "alias", separator = ";" }}
"X-Group-Ids" = "groups"
"X-Tenant" = "const:Contoso Ltd"
"X-Department" = {{ source = "claim:Department", default = "unknown" }}
"X-Missing" = "claim:NotSent"
"X-Auth-Time" = "auth_instant"
"#,
        port = echo.port
    );
    let gw = Gateway::start(&config, &[("idp.pem", pem.as_bytes())]).await;

    let sp = SpSettings {
        entity_id: "https://pymetrics.example.test/saml".into(),
        acs_url: "https://pymetrics.example.test/saml/acs".into(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    let mut spec = ResponseSpec::for_sp(&sp, "zoe@contoso.example", chrono::Utc::now());
    spec.attributes = vec![
        ("UserFirstName".into(), vec!["Zoë".into()]),
        ("UserLastName".into(), vec!["Ångström".into()]),
        ("UserEmail".into(), vec!["zoe@contoso.example".into()]),
        (
            claims::GROUPS.into(),
            vec![ADMINS.into(), OTHER.into(), STAFF.into()],
        ),
    ];
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = client
        .post(gw.url("/saml/acs"))
        .form(&[("SAMLResponse", idp.sign_response(&spec).unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", gw.log());
    let cookie = cookie_of(&r);
    let body = client
        .get(gw.url("/"))
        .header("cookie", cookie)
        .header("userfirstname", "Mallory")
        .header("x-tenant", "Evil Corp")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let one = |name: &str| {
        let v = echoed(&body, name);
        assert!(v.len() <= 1, "{name}: {v:?}");
        v.into_iter().next()
    };
    // Default encoding: percent for non-ASCII only; ASCII unchanged.
    assert_eq!(one("userfirstname").as_deref(), Some("Zo%C3%AB"));
    assert_eq!(one("userlastname").as_deref(), Some("%C3%85ngstr%C3%B6m"));
    assert_eq!(one("useremail").as_deref(), Some("zoe@contoso.example"));
    assert_eq!(one("x-first-raw").as_deref(), Some("Zoë"));
    assert_eq!(
        one("x-first-rfc2047").as_deref(),
        Some("=?UTF-8?B?Wm/Dqw==?=")
    );
    let b64 = one("x-first-base64").unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        "Zoë".as_bytes()
    );
    // Groups as aliases (unknown IDs stay IDs), with the configured separator.
    assert_eq!(
        one("x-groups").as_deref(),
        Some(format!("admins;{OTHER};staff").as_str())
    );
    assert_eq!(
        one("x-group-ids").as_deref(),
        Some(format!("{ADMINS},{OTHER},{STAFF}").as_str())
    );
    // Constants, defaults, absent claims, session facts; client values never pass.
    assert_eq!(one("x-tenant").as_deref(), Some("Contoso Ltd"));
    assert_eq!(one("x-department").as_deref(), Some("unknown"));
    assert_eq!(one("x-missing"), None);
    let at = one("x-auth-time").unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(&at).is_ok(), "{at}");
}
