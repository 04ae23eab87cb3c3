//! Creates a real signed-in session in a Redis session store, exactly as the ACS does
//! after a successful login (SessionManager::create), and prints the Cookie header value
//! for it. Load tests use it so that every measured request is an authenticated one.
//!
//! Usage: mint_session REDIS_URL APP NAME_ID [GROUP_ID...]
//! With `MINT_COUNT=N` in the environment it creates N sessions (users NAME_ID-0 ...)
//! and prints one Cookie header value per line.

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
    let count: usize = std::env::var("MINT_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let cookie = CookieSettings {
        name: "ssogate".into(),
        secure: false,
    };
    for i in 0..count {
        let mut identity = identity.clone();
        if count > 1 {
            identity.name_id = format!("{name_id}-{i}");
        }
        match m.create(app, identity, now, None).await {
            Ok((id, _)) => {
                let set = cookie.set_cookie(&id);
                println!("{}", set.split(';').next().unwrap_or_default());
            }
            Err(e) => {
                eprintln!("mint_session: {e}");
                std::process::exit(1);
            }
        }
    }
}
