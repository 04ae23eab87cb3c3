//! Guards the cost of a login at the ACS: the whole validation of a posted SAMLResponse
//! in-process (base64 -> size/DTD checks -> parse -> xmlsec signature verification ->
//! every check of the chain -> `Identity`). Store work (pending request, replay cache,
//! session) is not included: see session_path_store for that side.
//!
//! Inputs: an Entra-shaped response signed by the development IdP (about 6 KB, 8 claims
//! plus 20 group object IDs), signed three ways (assertion, response, both), and the real
//! Entra response from tests/fixtures/entra at its 2022 instant.

use base64::Engine;
use chrono::{DateTime, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ssogate::identity::claims;
use ssogate::saml::{DevIdp, IdpSettings, ResponseSpec, ResponseValidator, Signing, SpSettings};
use std::time::Duration;

/// The binary's allocator (src/main.rs): the bench measures what the gateway runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn entra_shaped(idp: &DevIdp, sp: &SpSettings, now: DateTime<Utc>, signing: Signing) -> String {
    let mut spec = ResponseSpec::for_sp(sp, "alice@contoso.example", now);
    spec.signing = signing;
    spec.in_response_to = Some("_0123456789abcdef0123456789abcdef".into());
    spec.lifetime = Duration::from_secs(3600);
    let one = |uri: &str, v: &str| (uri.to_string(), vec![v.to_string()]);
    spec.attributes = vec![
        one(claims::TENANT_ID, "5b5c94c6-14cf-42da-85bc-4e08722b253b"),
        one(claims::OBJECT_ID, "814bd554-0000-4000-8000-00000000a11c"),
        one(claims::DISPLAY_NAME, "Alice Example"),
        one(
            claims::IDENTITY_PROVIDER,
            "https://sts.windows.net/5b5c94c6-14cf-42da-85bc-4e08722b253b/",
        ),
        one(
            claims::AUTHN_METHODS,
            "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
        ),
        one(claims::GIVEN_NAME, "Alice"),
        one(claims::SURNAME, "Example"),
        one(claims::EMAIL, "alice@contoso.example"),
        (
            claims::GROUPS.to_string(),
            (0..20)
                .map(|i| format!("e7f3c0ba-0000-4000-8000-{i:012}"))
                .collect(),
        ),
    ];
    idp.sign_response(&spec)
        .unwrap_or_else(|e| panic!("sign: {e}"))
}

fn bench(c: &mut Criterion) {
    let idp = DevIdp::generate("https://sts.windows.net/5b5c94c6-14cf-42da-85bc-4e08722b253b/")
        .unwrap_or_else(|e| panic!("{e}"));
    let sp = SpSettings {
        entity_id: "https://wiki.example.com/saml".into(),
        acs_url: "https://wiki.example.com/saml/acs".into(),
        name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
    };
    let now = Utc::now();
    let idp_settings = idp.idp_settings("https://login.example.test/saml2");
    for (name, signing) in [
        ("assertion_signed", Signing::Assertion),
        ("response_signed", Signing::Response),
        ("both_signed", Signing::Both),
    ] {
        let response = entra_shaped(&idp, &sp, now, signing);
        let mut validator = ResponseValidator::new(sp.clone(), &idp_settings);
        validator.want_assertions_signed = signing != Signing::Response;
        validator.want_response_signed = signing != Signing::Assertion;
        assert!(
            validator.validate(&response, now).is_ok(),
            "control must validate"
        );
        eprintln!(
            "acs_verify/{name}: Entra-shaped response is {} bytes of XML",
            base64::engine::general_purpose::STANDARD
                .decode(&response)
                .map(|x| x.len())
                .unwrap_or(0)
        );
        c.bench_function(&format!("acs_verify/{name}"), |b| {
            b.iter(|| black_box(validator.validate(black_box(&response), now)))
        });
    }

    // The real Entra fixture in its original context.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/entra");
    if let (Ok(xml), Ok(pem)) = (
        std::fs::read(format!("{dir}/response-assertion-signed.xml")),
        std::fs::read(format!("{dir}/signing-cert.pem")),
    ) {
        let entra_sp = SpSettings {
            entity_id: "https://devpg.tercen.com/_service/sso/auth/saml".into(),
            acs_url: "https://devpg.tercen.com/_service/sso/auth/saml".into(),
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
        };
        let entra_idp = IdpSettings {
            entity_id: "https://sts.windows.net/5b5c94c6-14cf-42da-85bc-4e08722b253b/".into(),
            sso_url: "https://login.microsoftonline.com/x/saml2".into(),
            slo_url: None,
            signing_certs: vec![
                ssogate::saml::load_certificate(&pem).unwrap_or_else(|e| panic!("{e}"))
            ],
        };
        let v = ResponseValidator::new(entra_sp, &entra_idp);
        let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
        let at = DateTime::parse_from_rfc3339("2022-02-23T17:50:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            v.validate(&b64, at).is_ok(),
            "the Entra fixture must validate"
        );
        c.bench_function("acs_verify/entra_fixture", |b| {
            b.iter(|| black_box(v.validate(black_box(&b64), at)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
