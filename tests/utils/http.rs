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
