//! Sign-in as a browser does it, shared by the integration tests: a page view (or
//! `/saml/login`) sends the browser to the IdP with an AuthnRequest and a binding
//! cookie; the development IdP signs a response to that request; the browser posts it
//! to the ACS with the cookie. Every step can be looked at or tampered with.

use super::http::{binding_of, client};
use ssogate::saml::{DevIdp, ResponseSpec, SpSettings};

/// The first half: where the gateway sent the browser, and what the browser holds.
pub struct Started {
    /// The IdP URL (the Redirect-binding AuthnRequest).
    pub location: String,
    /// The AuthnRequest's ID (InResponseTo of the answer).
    pub request_id: String,
    pub relay_state: String,
    /// `name=value` of the binding cookie.
    pub binding: Option<String>,
}

/// A page view of `url` with no session (an HTML navigation): the gateway's 302.
pub async fn start(url: &str) -> Started {
    let r = client()
        .get(url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        302,
        "a navigation without a session goes to the IdP"
    );
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let u = url::Url::parse(&location).unwrap();
    let q = |k: &str| {
        u.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let xml = ssogate::saml::decode_redirect_request(&q("SAMLRequest")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    Started {
        request_id: doc.root_element().attribute("ID").unwrap().to_string(),
        relay_state: q("RelayState"),
        binding: binding_of(&r),
        location,
    }
}

/// The IdP's answer to `started` for `user` with `attributes`, posted to `acs` with the
/// binding cookie (as the browser that started it); the ACS's response.
pub async fn finish(
    idp: &DevIdp,
    sp: &SpSettings,
    acs: &str,
    started: &Started,
    user: &str,
    attributes: Vec<(String, Vec<String>)>,
) -> reqwest::Response {
    let mut spec = ResponseSpec::for_sp(sp, user, chrono::Utc::now());
    spec.in_response_to = Some(started.request_id.clone());
    spec.attributes = attributes;
    let mut req = client().post(acs).form(&[
        ("SAMLResponse", idp.sign_response(&spec).unwrap()),
        ("RelayState", started.relay_state.clone()),
    ]);
    if let Some(b) = &started.binding {
        req = req.header("cookie", b);
    }
    req.send().await.unwrap()
}

/// The SP settings of a test app whose public URL is `public_url` (ACS at
/// `/saml/acs`, NameID format emailAddress).
pub fn sp(public_url: &str) -> SpSettings {
    SpSettings {
        entity_id: format!("{public_url}/saml"),
        acs_url: format!("{public_url}/saml/acs"),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    }
}

/// An IdP-initiated sign-in (no request, no binding): the IdP's response for `user`
/// posted to `acs` (the app needs `allow_idp_initiated`); the ACS's response.
pub async fn idp_initiated(
    idp: &DevIdp,
    sp: &SpSettings,
    acs: &str,
    user: &str,
    attributes: Vec<(String, Vec<String>)>,
) -> reqwest::Response {
    let mut spec = ResponseSpec::for_sp(sp, user, chrono::Utc::now());
    spec.attributes = attributes;
    client()
        .post(acs)
        .form(&[("SAMLResponse", idp.sign_response(&spec).unwrap())])
        .send()
        .await
        .unwrap()
}

/// A whole sign-in of `user` (no attributes) through `gw`: a page view of `/page`, the
/// development IdP's answer posted to the ACS by the browser that started it; the
/// session cookie (`name=value`).
pub async fn sign_in(gw: &super::gateway::Gateway, idp: &DevIdp, user: &str) -> String {
    let started = start(&gw.url("/page")).await;
    let r = finish(
        idp,
        &sp(&gw.url("")),
        &gw.url("/saml/acs"),
        &started,
        user,
        Vec::new(),
    )
    .await;
    assert_eq!(r.status(), 302, "{}", gw.log());
    super::http::cookie_of(&r)
}
