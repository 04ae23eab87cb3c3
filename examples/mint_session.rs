//! Creates a real signed-in session in a Redis session store, exactly as the ACS does
//! after a successful login (SessionManager::create), and prints the Cookie header value
//! for it. Load tests use it so that every measured request is an authenticated one.
//!
//! Usage: mint_session REDIS_URL APP NAME_ID [GROUP_ID...]

use ssogate::identity::{claims, Identity};
use ssogate::session::{CookieSettings, RedisStore, SessionManager};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(app), Some(name_id)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: mint_session REDIS_URL APP NAME_ID [GROUP_ID...]");
        std::process::exit(2);
    };
    let store = match RedisStore::new(url, None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mint_session: {e}");
            std::process::exit(1);
        }
    };
    let m = SessionManager::new(
        Arc::new(store),
        Duration::from_secs(8 * 3600),
        Duration::from_secs(8 * 3600),
    );
    let mut identity = Identity {
        name_id: name_id.clone(),
        ..Default::default()
    };
    identity
        .attributes
        .insert(claims::EMAIL.into(), vec![name_id.clone()]);
    identity
        .attributes
        .insert(claims::GROUPS.into(), args[4..].to_vec());
    let now = chrono::Utc::now().timestamp();
    match m.create(app, identity, now, None).await {
        Ok((id, _)) => {
            let cookie = CookieSettings {
                name: "ssogate".into(),
                secure: false,
            };
            let set = cookie.set_cookie(&id);
            println!("{}", set.split(';').next().unwrap_or_default());
        }
        Err(e) => {
            eprintln!("mint_session: {e}");
            std::process::exit(1);
        }
    }
}
