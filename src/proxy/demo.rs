//! The demo's two helper services: a development IdP and an echo upstream.
//!
//! NOT FOR PRODUCTION. The development IdP signs Entra-shaped responses for a fixed set
//! of demo users with a key generated at start; anyone who can reach it can sign in as
//! anyone. It refuses to listen on anything but loopback.

use crate::saml::{self, DevIdp, ResponseSpec};
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::fmt::Write as _;
use std::time::Duration;

pub struct DemoUser {
    pub login: &'static str,
    pub given_name: &'static str,
    pub surname: &'static str,
    pub object_id: &'static str,
    pub groups: &'static [&'static str],
}

pub const DEMO_TENANT: &str = "00000000-0000-4000-8000-00000000d3e0";
pub const DEMO_ADMINS_GROUP: &str = "e7f3c0ba-0000-4000-8000-000000000001";
pub const DEMO_STAFF_GROUP: &str = "5a1d2c3b-0000-4000-8000-000000000002";

pub const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        login: "alice@demo.example",
        given_name: "Alice",
        surname: "Admin",
        object_id: "a11ce000-0000-4000-8000-000000000001",
        groups: &[DEMO_ADMINS_GROUP, DEMO_STAFF_GROUP],
    },
    DemoUser {
        login: "bob@demo.example",
        given_name: "Bob",
        surname: "Staff",
        object_id: "b0b00000-0000-4000-8000-000000000002",
        groups: &[DEMO_STAFF_GROUP],
    },
];

/// The development IdP as an HTTP service: `GET /saml2` shows the user picker,
/// `POST /saml2/login` answers with the auto-posting form to the ACS.
pub struct DevIdpApp {
    idp: DevIdp,
    sp_entity_id: String,
    acs_url: String,
}

impl DevIdpApp {
    pub fn new(idp: DevIdp, sp_entity_id: &str, acs_url: &str) -> Self {
        DevIdpApp {
            idp,
            sp_entity_id: sp_entity_id.to_string(),
            acs_url: acs_url.to_string(),
        }
    }

    fn picker(&self, query: &str) -> Result<String, String> {
        let saml_request = form_value(query, "SAMLRequest").ok_or("no SAMLRequest")?;
        let relay = form_value(query, "RelayState").unwrap_or_default();
        let xml = saml::decode_redirect_request(&saml_request).map_err(|e| e.to_string())?;
        let doc = roxmltree::Document::parse(&xml).map_err(|e| e.to_string())?;
        let request_id = doc
            .root_element()
            .attribute("ID")
            .ok_or("AuthnRequest without ID")?;
        let mut html = String::from(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>ssogate development IdP</title></head>\
             <body style=\"font-family:system-ui;max-width:36rem;margin:3rem auto\">\
             <p style=\"background:#fee;padding:.5rem\"><b>Development IdP &mdash; NOT FOR PRODUCTION.</b> \
             It signs in anyone as anyone.</p><h1>Sign in as</h1>",
        );
        for u in DEMO_USERS {
            let _ = write!(
                html,
                "<form method=\"post\" action=\"/saml2/login\">\
                 <input type=\"hidden\" name=\"request_id\" value=\"{}\">\
                 <input type=\"hidden\" name=\"relay\" value=\"{}\">\
                 <input type=\"hidden\" name=\"user\" value=\"{}\">\
                 <button type=\"submit\">{} {} ({})</button></form><br>",
                esc(request_id),
                esc(&relay),
                esc(u.login),
                esc(u.given_name),
                esc(u.surname),
                esc(u.login),
            );
        }
        html.push_str("</body></html>");
        Ok(html)
    }

    fn sign_in(&self, body: &str) -> Result<String, String> {
        let request_id = form_value(body, "request_id").ok_or("no request_id")?;
        let relay = form_value(body, "relay").unwrap_or_default();
        let login = form_value(body, "user").ok_or("no user")?;
        let user = DEMO_USERS
            .iter()
            .find(|u| u.login == login)
            .ok_or("unknown demo user")?;
        let response = self
            .idp
            .sign_response(&demo_response_spec(
                user,
                &self.sp_entity_id,
                &self.acs_url,
                Some(request_id),
            ))
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "<!DOCTYPE html><html><body onload=\"document.forms[0].submit()\">\
             <form method=\"post\" action=\"{}\">\
             <input type=\"hidden\" name=\"SAMLResponse\" value=\"{}\">\
             <input type=\"hidden\" name=\"RelayState\" value=\"{}\">\
             <noscript><button type=\"submit\">Continue</button></noscript></form></body></html>",
            esc(&self.acs_url),
            esc(&response),
            esc(&relay)
        ))
    }
}

/// The claims Entra sends by default (plus groups as object IDs) for a demo user.
pub fn demo_response_spec(
    user: &DemoUser,
    audience: &str,
    acs_url: &str,
    in_response_to: Option<String>,
) -> ResponseSpec {
    use crate::identity::claims;
    let one = |uri: &str, v: &str| (uri.to_string(), vec![v.to_string()]);
    ResponseSpec {
        issuer: None,
        name_id: user.login.to_string(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
        audience: audience.to_string(),
        recipient: acs_url.to_string(),
        in_response_to,
        attributes: vec![
            one(claims::TENANT_ID, DEMO_TENANT),
            one(claims::OBJECT_ID, user.object_id),
            one(
                claims::DISPLAY_NAME,
                &format!("{} {}", user.given_name, user.surname),
            ),
            one(
                claims::IDENTITY_PROVIDER,
                &format!("https://sts.windows.net/{DEMO_TENANT}/"),
            ),
            one(
                claims::AUTHN_METHODS,
                "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
            ),
            one(claims::GIVEN_NAME, user.given_name),
            one(claims::SURNAME, user.surname),
            one(claims::EMAIL, user.login),
            one(claims::NAME, user.login),
            (
                claims::GROUPS.to_string(),
                user.groups.iter().map(|g| g.to_string()).collect(),
            ),
        ],
        now: chrono::Utc::now(),
        lifetime: Duration::from_secs(3600),
        assertion_id: None,
        session_index: None,
        session_not_on_or_after: None,
        signing: Default::default(),
        encrypt_for: None,
    }
}

fn esc(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

fn form_value(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn html(status: u16, body: String) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body.into_bytes())
        .unwrap_or_default()
}

#[async_trait]
impl ServeHttp for DevIdpApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path().to_string();
        let query = req.uri.query().unwrap_or("").to_string();
        let is_post = req.method == http::Method::POST;
        let result = match (path.as_str(), is_post) {
            ("/saml2", false) => self.picker(&query),
            ("/saml2/login", true) => {
                let mut body = Vec::new();
                while let Ok(Some(chunk)) = session.read_request_body().await {
                    if body.len() + chunk.len() > 64 * 1024 {
                        return html(413, "too large".into());
                    }
                    body.extend_from_slice(&chunk);
                }
                self.sign_in(&String::from_utf8_lossy(&body))
            }
            _ => return html(404, "not found".into()),
        };
        match result {
            Ok(page) => html(200, page),
            Err(e) => html(400, format!("development IdP: {}", esc(&e))),
        }
    }
}

/// An upstream that answers every request with what it received, so the demo shows
/// the identity headers the app gets.
pub struct EchoApp;

#[async_trait]
impl ServeHttp for EchoApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let mut text = format!("{} {}\n\n", req.method, req.uri);
        let mut names: Vec<_> = req.headers.iter().collect();
        names.sort_by_key(|(n, _)| n.as_str().to_string());
        for (name, value) in names {
            let _ = writeln!(
                text,
                "{}: {}",
                name,
                String::from_utf8_lossy(value.as_bytes())
            );
        }
        http::Response::builder()
            .status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .header("content-length", text.len())
            .body(text.into_bytes())
            .unwrap_or_default()
    }
}

/// The development IdP signs anyone in as anyone: it may only listen on loopback.
pub fn loopback_only(addr: &str) -> Result<String, String> {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_loopback() => Ok(addr.to_string()),
        _ => Err(format!(
            "the development IdP refuses to listen on {addr}: loopback addresses only (it is NOT FOR PRODUCTION)"
        )),
    }
}

/// Loopback ports of the demo's four listeners.
pub struct DemoPorts {
    pub public: u16,
    pub admin: u16,
    pub idp: u16,
    pub echo: u16,
}

/// The whole demo in one server: gateway (memory store), development IdP, echo upstream.
pub fn demo_server(ports: &DemoPorts) -> Result<pingora::server::Server, String> {
    use crate::config;
    use crate::gateway::Gateway;
    use pingora::services::listening::Service;
    use std::sync::Arc;

    let idp_url = format!("http://127.0.0.1:{}/saml2", ports.idp);
    let idp = DevIdp::generate(&format!("http://127.0.0.1:{}/", ports.idp))
        .map_err(|e| format!("development IdP: {e}"))?;
    // One directory per demo port, rewritten at each start (not one per process).
    let dir = std::env::temp_dir().join(format!("ssogate-demo-{}", ports.public));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("dev-idp.pem"), idp.certificate_pem())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let base = format!("http://127.0.0.1:{}", ports.public);
    let toml = format!(
        r#"
[listen]
public = "127.0.0.1:{public}"
admin = "127.0.0.1:{admin}"

[session]
store = "memory"
cookie_secure = false

[[app]]
name = "demo"
hosts = ["127.0.0.1", "localhost"]
upstream = "http://127.0.0.1:{echo}"

[app.sp]
entity_id = "{base}/saml"
acs_url = "{base}/saml/acs"
name_id_format = "emailAddress"

[app.idp]
entity_id = "{idp_entity}"
sso_url = "{idp_url}"
certificate_file = "dev-idp.pem"

[app.headers]
"X-Remote-User" = "name_id"
"X-Remote-Email" = "email"
"X-Remote-Name" = "display_name"
"X-Remote-Groups" = "groups"

[app.groups]
admins = "{admins}"

[[app.route]]
path = "/public/"
public = true

[[app.route]]
path = "/admin/"
allow_groups = ["admins"]
"#,
        public = ports.public,
        admin = ports.admin,
        echo = ports.echo,
        idp_entity = idp.entity_id(),
        admins = DEMO_ADMINS_GROUP,
    );
    let cfg = config::from_str(&toml, &dir, &config::ProcessEnv).map_err(|e| e.to_string())?;
    let gw = Gateway::build(&cfg, Arc::new(saml::SystemClock)).map_err(|e| e.to_string())?;
    // Its config is made here, not read from a file: nothing to reload.
    let live = crate::gateway::Live::new(cfg, gw, None);
    let mut server = super::build_server(&live.config(), live.clone(), false);

    let app = DevIdpApp::new(idp, &format!("{base}/saml"), &format!("{base}/saml/acs"));
    let mut idp_service = Service::new("development IdP (NOT FOR PRODUCTION)".into(), app);
    idp_service.add_tcp(&loopback_only(&format!("127.0.0.1:{}", ports.idp))?);
    server.add_service(idp_service);

    let mut echo = Service::new("demo echo upstream".into(), EchoApp);
    echo.add_tcp(&format!("127.0.0.1:{}", ports.echo));
    server.add_service(echo);
    Ok(server)
}

#[cfg(test)]
mod tests {
    #[test]
    fn development_idp_refuses_non_loopback_binds() {
        assert!(super::loopback_only("127.0.0.1:8081").is_ok());
        assert!(super::loopback_only("[::1]:8081").is_ok());
        for bad in [
            "0.0.0.0:8081",
            "192.0.2.10:8081",
            "[::]:8081",
            "localhost:8081",
        ] {
            assert!(super::loopback_only(bad).is_err(), "{bad}");
        }
    }
}
