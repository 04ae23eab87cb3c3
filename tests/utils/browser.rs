//! A real browser for the tests: Debian's headless Chromium driven through chromedriver
//! over the W3C WebDriver HTTP protocol (reqwest + serde_json). It enforces what HTTP
//! libraries do not: SameSite, Secure, the `__Host-` prefix, Sec-Fetch-* and Origin on a
//! form post. Only what the tests need: navigate, read the page, find and click, tabs,
//! cookies.
//!
//! `Chromedriver::start()` runs chromedriver on a free loopback port (its own process
//! group; dropped: killed with every browser it started). `Chromedriver::browser()` opens
//! one browser (a WebDriver session) with a fresh profile (`--user-data-dir`, a temp dir),
//! so two browsers of one test share no cookie. Missing Chromium is a failure with a
//! clear message, never a skip (`scripts/test.sh` installs it).

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long the `wait_*` helpers wait for the page to get there.
pub const WAIT: Duration = Duration::from_secs(15);

/// Headless Chromium on this closed network: no background traffic (without these it
/// hangs on requests that never get an answer), no GPU, no sandbox (root in a container),
/// /tmp instead of a small /dev/shm, TCP only, no proxy.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--no-proxy-server",
    "--window-size=1024,768",
];

/// A chromedriver process.
pub struct Chromedriver {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Chromedriver {
    /// Start chromedriver and wait until it accepts sessions. Panics (the test fails)
    /// when Chromium or chromedriver is not installed.
    pub async fn start() -> Chromedriver {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser tests need Debian's `chromium` and \
                 `chromium-driver` (apt-get install chromium chromium-driver; \
                 scripts/test.sh installs them); package {package}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let port = super::gateway::free_port();
        let log = std::fs::File::create(dir.path().join("chromedriver.log")).unwrap();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.verbose.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(log);
        // Its own process group: Drop kills chromedriver and the browsers it started.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut driver = Chromedriver {
            port,
            child,
            dir,
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = driver
                .http
                .get(format!("http://127.0.0.1:{port}/status"))
                .send()
                .await;
            if let Ok(r) = status {
                let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                if v["value"]["ready"] == json!(true) {
                    return driver;
                }
            }
            if let Ok(Some(exit)) = driver.child.try_wait() {
                panic!("chromedriver exited ({exit}):\n{}", driver.log());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start:\n{}",
                driver.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// chromedriver's own output (its errors, the browser's stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// A new browser with its own fresh profile.
    pub async fn browser(&self) -> Browser {
        self.browser_with(&[]).await
    }

    /// A new browser that also trusts `cert_pem`, a test CA (or a server certificate):
    /// `--ignore-certificate-errors-spki-list` with the SHA-256 of its public key, so a
    /// server whose chain holds that key is accepted (with its cookies, `Secure` and
    /// `__Host-` ones included); any other server's certificate is still checked.
    pub async fn browser_trusting(&self, cert_pem: &[u8]) -> Browser {
        let spki = format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_hash(cert_pem)
        );
        self.browser_with(&[spki]).await
    }

    async fn browser_with(&self, extra: &[String]) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra.iter().cloned());
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": 20000, "script": 10000, "implicit": 0 },
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
                }
            }
        });
        let r = self
            .http
            .post(format!("http://127.0.0.1:{}/session", self.port))
            .header("content-type", "application/json")
            .body(caps.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        let Some(id) = v["value"]["sessionId"].as_str() else {
            panic!(
                "chromedriver refused a new session ({status}): {v}\n{}",
                self.log()
            );
        };
        Browser {
            driver_port: self.port,
            session: id.to_string(),
            http: self.http.clone(),
            _profile: profile,
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser a failed test left open.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate, as Chromium's
/// `--ignore-certificate-errors-spki-list` wants it.
pub fn spki_hash(cert_pem: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let cert = openssl::x509::X509::from_pem(cert_pem).unwrap();
    let spki = cert.public_key().unwrap().public_key_to_der().unwrap();
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki))
}

/// A cookie as the browser keeps it.
#[derive(Clone, Debug)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    /// "Lax", "Strict", "None"; `None` when the cookie did not say (CDP only).
    pub same_site: Option<String>,
}

impl Cookie {
    fn from_json(v: &Value) -> Cookie {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Cookie {
            name: s("name"),
            value: s("value"),
            domain: s("domain"),
            path: s("path"),
            secure: v["secure"] == json!(true),
            http_only: v["httpOnly"] == json!(true),
            same_site: v["sameSite"].as_str().map(str::to_string),
        }
    }
}

/// An element reference of the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

/// One browser (a WebDriver session). Dropped: the browser is closed.
pub struct Browser {
    driver_port: u16,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// One WebDriver command; a WebDriver error is `Err(value)`.
    async fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!(
            "http://127.0.0.1:{}/session/{}{path}",
            self.driver_port, self.session
        );
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let ok = r.status().is_success();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_cmd(method.clone(), path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {method} {path} failed: {e}"),
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.cmd(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    /// Navigate the current tab to `url` (returns once the page has loaded).
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The current tab's URL.
    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_string()
    }

    /// The current page's HTML (as the DOM has it now).
    pub async fn source(&self) -> String {
        self.get("/source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The rendered text of the page's body (a text/plain page: its text).
    pub async fn body_text(&self) -> String {
        // One script call, not find-then-read: a page that replaces its document between
        // the two (a redirect finishing) left a stale element reference.
        self.script("return document.body ? document.body.innerText : '';")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching the CSS selector, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        let found = self
            .try_cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .ok()?;
        found[ELEMENT].as_str().map(|id| Element(id.to_string()))
    }

    /// The first element matching the CSS selector, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if Instant::now() > deadline {
                panic!(
                    "no element `{css}` at {}:\n{}",
                    self.url().await,
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text(&self, e: &Element) -> String {
        self.get(&format!("/element/{}/text", e.0))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// An attribute as written in the HTML.
    pub async fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        self.get(&format!("/element/{}/attribute/{name}", e.0))
            .await
            .as_str()
            .map(str::to_string)
    }

    /// Click the first element matching `css` (a link or a form's button: the browser
    /// navigates; wait for where it should land with `wait_for_url`).
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{}/click", e.0), json!({}))
            .await;
    }

    /// Wait until the current URL satisfies `ok` (`what` names it in the failure); the URL.
    pub async fn wait_for_url(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.url().await;
            if ok(&url) {
                return url;
            }
            if Instant::now() > deadline {
                panic!(
                    "the browser did not get to {what}; it is at {url}:\n{}",
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until the page is exactly `url`; its body text.
    pub async fn wait_for_page(&self, url: &str) -> String {
        self.wait_for_url(url, |u| u == url).await;
        self.body_text().await
    }

    /// Wait until the page's text contains `needle`; the text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.body_text().await;
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("no `{needle}` on the page at {}:\n{text}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Run `script` (a function body) in the page; what it returns.
    pub async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// The HTTP status of the current page's navigation (Navigation Timing's
    /// `responseStatus`; the last response of a redirect chain).
    pub async fn status(&self) -> u16 {
        let v = self
            .script("return performance.getEntriesByType('navigation')[0].responseStatus;")
            .await;
        v.as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or_else(|| panic!("no navigation status: {v}"))
    }

    /// The current tab's handle.
    pub async fn window(&self) -> String {
        self.get("/window").await.as_str().unwrap().to_string()
    }

    /// Open a new tab (not switched to); its handle.
    pub async fn new_tab(&self) -> String {
        let v = self.post("/window/new", json!({ "type": "tab" })).await;
        v["handle"].as_str().unwrap().to_string()
    }

    /// Make the tab `handle` the current one.
    pub async fn switch_to(&self, handle: &str) {
        self.post("/window", json!({ "handle": handle })).await;
    }

    /// The cookies the current page's origin would get (WebDriver `Get All Cookies`).
    pub async fn cookies(&self) -> Vec<Cookie> {
        let v = self.get("/cookie").await;
        v.as_array()
            .unwrap()
            .iter()
            .map(Cookie::from_json)
            .collect()
    }

    /// The current page's cookie named `name`.
    pub async fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookies().await.into_iter().find(|c| c.name == name)
    }

    /// Every cookie the browser holds, for every site, with the SameSite it was set
    /// with (Chrome DevTools `Storage.getCookies` through chromedriver): lets a test look
    /// at the gateway's cookies while the browser is at the IdP.
    pub async fn all_cookies(&self) -> Vec<Cookie> {
        let v = self
            .post(
                "/goog/cdp/execute",
                json!({ "cmd": "Storage.getCookies", "params": {} }),
            )
            .await;
        v["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .map(Cookie::from_json)
            .collect()
    }
}

impl Drop for Browser {
    /// Close the browser (WebDriver `Delete Session`), synchronously: Drop cannot await.
    fn drop(&mut self) {
        use std::io::{Read as _, Write as _};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.driver_port)) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
        let req = format!(
            "DELETE /session/{} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            self.session, self.driver_port
        );
        if s.write_all(req.as_bytes()).is_err() {
            return;
        }
        // Until the whole answer is in (chromedriver keeps the connection open).
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = s.read(&mut chunk) {
            got.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    return;
                }
            }
        }
    }
}
