//! The HTTP client side of the tests: a client that does not follow redirects, and the
//! session cookie of a response.

use std::time::Duration;

/// No redirects followed (the tests look at them), 10 s timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Like a browser: keeps cookies (a sign-in's binding cookie, the session), follows no
/// redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `name=value` of the response's Set-Cookie.
pub fn cookie_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// `name=value` of the sign-in binding cookie a response sets (the 302 to the IdP): a
/// browser sends it back with the IdP's POST to the ACS.
pub fn binding_of(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("-login-"))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}

/// Sign out as a browser does from the app's own page: a same-origin POST.
pub async fn sign_out(base: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(format!("{base}/saml/logout"))
        .header("sec-fetch-site", "same-origin");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}
