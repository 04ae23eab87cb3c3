//! The TOML the integration tests run the gateway with, from parts: a head (`[listen]`
//! on the harness's `{public}`/`{admin}` placeholders, `[server]`, an in-memory
//! `[session]`) and apps trusting the development IdP's `idp.pem`.

/// The gateway's own public base URL, for an app served on the test's address.
pub const GATEWAY: &str = "http://127.0.0.1:{public}";
/// The development IdP's entity ID the apps trust.
pub const IDP_ENTITY: &str = "https://idp.example.test/";

/// `[listen]`, `[server]` (two threads, then `server`'s lines) and `[session]` in memory
/// with cookies for plain HTTP.
pub fn head(server: &str) -> String {
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[server]
threads = 2
{server}

[session]
store = "memory"
cookie_secure = false
"#
    )
}

/// An app `name` for `hosts` (TOML array items, e.g. `"*"`) in front of
/// 127.0.0.1:`upstream_port`, its SP at `sp_base` (`/saml`, `/saml/acs`), trusting
/// `idp.pem`; then `routes` (TOML `[[app.route]]` tables).
pub fn app(name: &str, hosts: &str, upstream_port: u16, sp_base: &str, routes: &str) -> String {
    format!(
        r#"
[[app]]
name = "{name}"
hosts = [{hosts}]
upstream = "http://127.0.0.1:{upstream_port}"

[app.sp]
entity_id = "{sp_base}/saml"
acs_url = "{sp_base}/saml/acs"

[app.idp]
entity_id = "{IDP_ENTITY}"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"
{routes}
"#
    )
}

/// A `[[app.route]]` open to everyone under `path`.
pub fn public_route(path: &str) -> String {
    format!("\n[[app.route]]\npath = \"{path}\"\npublic = true\n")
}
