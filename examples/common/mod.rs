//! What the load examples that sign users in share: stopping with a message, and the
//! development IdP whose certificate the gateway under test trusts.

use ssogate::saml::DevIdp;
use std::time::{Duration, Instant};

pub fn fail(msg: String) -> ! {
    eprintln!("{}: {msg}", env!("CARGO_CRATE_NAME"));
    std::process::exit(1)
}

/// Generates a development IdP, writes its certificate to DIR/idp.pem (the load script
/// starts the gateway with it), then waits up to 30 s for the gateway at `base`.
pub async fn idp_for_gateway(dir: &str, base: &str, client: &reqwest::Client) -> DevIdp {
    let idp = DevIdp::generate("https://idp.example.test/").unwrap_or_else(|e| fail(e.to_string()));
    std::fs::write(format!("{dir}/idp.pem"), idp.certificate_pem())
        .unwrap_or_else(|e| fail(e.to_string()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/saml/metadata"))
        .send()
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            fail("gateway did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    idp
}
