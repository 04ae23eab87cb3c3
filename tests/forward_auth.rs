//! Forward-auth with a real nginx (Debian) in front of an echo upstream: nginx asks
//! ssogate's `/_ssogate/auth` (auth_request) and passes the identity headers on. Signed
//! in: 200 with the identity; not signed in: 401 → nginx redirects to sign in; denied: 403.
//! The Traefik style (302 from the endpoint itself) is checked directly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod utils;

use ssogate::identity::claims;
use ssogate::saml::DevIdp;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use utils::echo::{echoed, EchoUpstream};
use utils::gateway::{free_port, Gateway};
use utils::http::{client, cookie_of};
use utils::signin;

const STAFF: &str = "5a1d2c3b-0000-4000-8000-000000000002";
const ADMINS: &str = "e7f3c0ba-0000-4000-8000-000000000001";

struct Nginx {
    child: Child,
    port: u16,
    /// Holds the config and logs for as long as nginx runs.
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(gateway_port: u16, echo_port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let p = dir.path().display();
        // The recipe from the README, on loopback ports.
        let conf = format!(
            r#"
worker_processes 1;
error_log {p}/error.log info;
pid {p}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {p}/body;
  proxy_temp_path {p}/proxy;
  fastcgi_temp_path {p}/fastcgi;
  uwsgi_temp_path {p}/uwsgi;
  scgi_temp_path {p}/scgi;
  upstream ssogate {{ server 127.0.0.1:{gateway_port}; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_request /_ssogate/auth;
      auth_request_set $sso_user $upstream_http_x_remote_user;
      auth_request_set $sso_groups $upstream_http_x_remote_groups;
      proxy_set_header X-Remote-User $sso_user;
      proxy_set_header X-Remote-Groups $sso_groups;
      proxy_set_header X-Original-URL "";
      proxy_set_header X-Rewrite-URL "";
      error_page 401 = @signin;
      proxy_pass http://127.0.0.1:{echo_port};
    }}
    location = /_ssogate/auth {{
      internal;
      proxy_pass http://ssogate;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $host;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
    location /saml/ {{
      proxy_pass http://ssogate;
      proxy_set_header Host $host;
    }}
    location @signin {{
      return 302 /saml/login?return_to=$request_uri;
    }}
  }}
}}
"#
        );
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&file)
            .args(["-e", "stderr", "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("nginx (scripts/test.sh installs nginx-light)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

fn config(echo_port: u16, style: &str) -> String {
    format!(
        r#"
[listen]
public = "127.0.0.1:{{public}}"
admin = "127.0.0.1:{{admin}}"

[server]
trusted_proxies = ["127.0.0.1"]

[forward_auth]
style = "{style}"

[session]
store = "memory"
cookie_secure = false

[[app]]
name = "wiki"
hosts = ["127.0.0.1"]
upstream = "http://127.0.0.1:{echo_port}"
allow_idp_initiated = true

[app.sp]
entity_id = "https://wiki.example.test/saml"
acs_url = "https://wiki.example.test/saml/acs"

[app.idp]
entity_id = "https://idp.example.test/"
sso_url = "https://idp.example.test/saml2"
certificate_file = "idp.pem"

[app.headers]
"X-Remote-User" = "name_id"
"X-Remote-Groups" = "groups"

[app.groups]
admins = "{ADMINS}"

[[app.route]]
path = "/admin/"
allow_groups = ["admins"]

[[app.route]]
path = "/public/"
public = true
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_protects_an_app() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let pem = idp.certificate_pem();
    let gw = Gateway::start(&config(echo.port, "nginx"), &[("idp.pem", pem.as_bytes())]).await;
    let nginx = tokio::task::spawn_blocking({
        let (g, e) = (gw.public, echo.port);
        move || Nginx::start(g, e)
    })
    .await
    .unwrap();

    // Not signed in: nginx turns ssogate's 401 into a redirect to sign in.
    let r = client()
        .get(nginx.url("/private/page?x=1"))
        .header("x-remote-user", "spoofed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.ends_with("/saml/login?return_to=/private/page?x=1"),
        "{to}"
    );
    // ... and /saml/login, reached through nginx, goes to the IdP.
    let r = client()
        .get(nginx.url("/saml/login?return_to=/private/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("https://idp.example.test/saml2?SAMLRequest="));

    // Sign in through nginx (the ACS is proxied to ssogate).
    let cookie = sign_in(&idp, &nginx.url("/saml/acs")).await;
    // Signed in: the app gets the identity from ssogate, never the client's value, in
    // either spelling, and no path override.
    let r = client()
        .get(nginx.url("/private/page"))
        .header("cookie", &cookie)
        .header("x-remote-user", "spoofed")
        .header("x_remote_user", "spoofed")
        .header("x-original-url", "/admin/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert_eq!(echoed(&body, "x-remote-user"), ["bob@contoso.example"]);
    assert_eq!(echoed(&body, "x-remote-groups"), [STAFF]);
    assert!(echoed(&body, "x_remote_user").is_empty(), "{body}");
    assert!(echoed(&body, "x-original-url").is_empty(), "{body}");
    // The endpoint is nginx-internal: a client cannot ask it (or get a JWT from it).
    let r = client()
        .get(nginx.url("/_ssogate/auth"))
        .header("cookie", &cookie)
        .header("x-original-uri", "/private/page")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);

    // Denied by route policy: 403.
    let r = client()
        .get(nginx.url("/admin/settings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A public route needs no session.
    let r = client()
        .get(nginx.url("/public/info"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Sign in (IdP-initiated) at `acs` as bob, in the staff group; the session cookie.
async fn sign_in(idp: &DevIdp, acs: &str) -> String {
    let r = signin::idp_initiated(
        idp,
        &signin::sp("https://wiki.example.test"),
        acs,
        "bob@contoso.example",
        vec![(claims::GROUPS.into(), vec![STAFF.into()])],
    )
    .await;
    assert_eq!(r.status(), 302);
    cookie_of(&r)
}

#[tokio::test]
async fn traefik_and_envoy_styles_read_their_own_headers() {
    let echo = EchoUpstream::start().await;
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let pem = idp.certificate_pem();

    // Traefik style: the endpoint itself redirects navigations and answers the identity.
    let gw = Gateway::start(
        &config(echo.port, "traefik"),
        &[("idp.pem", pem.as_bytes())],
    )
    .await;
    let cookie = sign_in(&idp, &gw.url("/saml/acs")).await;
    let r = client()
        .get(gw.url("/_ssogate/auth"))
        .header("x-forwarded-uri", "/private/report")
        .header("x-forwarded-method", "GET")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = client()
        .get(gw.url("/_ssogate/auth"))
        .header("x-forwarded-uri", "/private/report")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-remote-user"], "bob@contoso.example");
    // nginx's header means nothing to a Traefik deployment.
    let r = client()
        .get(gw.url("/_ssogate/auth"))
        .header("x-original-uri", "/admin/settings")
        .header("x-forwarded-uri", "/public/x")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "judged on X-Forwarded-Uri only");

    // Envoy ext_authz style: the original path appended to the endpoint's path.
    let gw = Gateway::start(&config(echo.port, "envoy"), &[("idp.pem", pem.as_bytes())]).await;
    let cookie = sign_in(&idp, &gw.url("/saml/acs")).await;
    let r = client()
        .get(gw.url("/_ssogate/auth/admin/settings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .get(gw.url("/_ssogate/auth/private/report?q=1"))
        .header("cookie", &cookie)
        .header("x-forwarded-uri", "/admin/settings")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// `GET target` through a front proxy on `port`, exactly as written.
async fn raw_get(port: u16, target: &str, extra: &[&str]) -> utils::raw::RawResponse {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    utils::raw::RawConn::connect(port)
        .await
        .roundtrip(req.as_bytes())
        .await
}

/// The app's view (gunicorn + Flask answers JSON): handler and headers.
fn seen(r: &utils::raw::RawResponse) -> (Option<String>, serde_json::Value) {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    (
        v["handler"].as_str().map(str::to_string),
        v["headers"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_protects_an_app_as_the_readme_says() {
    let app = tokio::task::spawn_blocking(utils::servers::Gunicorn::start)
        .await
        .unwrap();
    let idp = DevIdp::generate("https://idp.example.test/").unwrap();
    let pem = idp.certificate_pem();
    let gw = Gateway::start(&config(app.port, "caddy"), &[("idp.pem", pem.as_bytes())]).await;
    let caddy = tokio::task::spawn_blocking({
        let (g, a) = (gw.public, app.port);
        move || utils::servers::Caddy::start(g, a)
    })
    .await
    .unwrap();
    let forged = [
        "X-Remote-User: admin@contoso.example",
        "X_Remote_User: admin@contoso.example",
        "x_remote_groups: e7f3c0ba-0000-4000-8000-000000000001",
    ];

    // A public route: the app gets no identity, neither the client's nor a placeholder.
    let r = raw_get(caddy.port, "/public/info", &forged).await;
    let (handler, headers) = seen(&r);
    assert_eq!(handler.as_deref(), Some("public"), "{}", r.text());
    let user = headers
        .get("X-Remote-User")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    assert_eq!(user, "", "the app saw {headers}");
    assert!(headers
        .get("X-Remote-Groups")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .is_empty());

    // Not signed in: Caddy passes ssogate's redirect to sign in.
    let r = raw_get(caddy.port, "/private/page", &["Accept: text/html"]).await;
    assert_eq!(r.status, 302, "{}", r.text());
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("https://idp.example.test/saml2?SAMLRequest="));

    // Signed in (through Caddy's /saml/*): exactly ssogate's identity reaches the app.
    let cookie = sign_in(&idp, &caddy.url("/saml/acs")).await;
    let with = |extra: &[&str]| {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.push(format!("Cookie: {cookie}"));
        v
    };
    let h = with(&forged);
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    let r = raw_get(caddy.port, "/private/page", &h).await;
    let (handler, headers) = seen(&r);
    assert_eq!(handler.as_deref(), Some("other"), "{}", r.text());
    assert_eq!(headers["X-Remote-User"], "bob@contoso.example", "{headers}");
    assert_eq!(headers["X-Remote-Groups"], STAFF);

    // The admin route, and the tricks: judged on the target Caddy passes, byte for byte.
    let h = with(&[]);
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    assert_eq!(raw_get(caddy.port, "/admin/x", &h).await.status, 403);
    for trick in [
        "/admin/../public/x",
        "/admin/users/1%2F..%2F..%2F..%2Fpublic",
        "/public/..;/admin/",
        "foo:/admin/x",
    ] {
        let r = raw_get(caddy.port, trick, &h).await;
        assert_ne!(
            seen(&r).0.as_deref(),
            Some("admin"),
            "{trick}: {}",
            r.text()
        );
        assert!(matches!(r.status, 400 | 403), "{trick}: {}", r.status);
    }
}
