//! Sessions: IDs and cookies, the `SessionStore` contract with an in-memory and a Redis
//! backend, and `SessionManager`, which applies idle and absolute timeouts on top of a
//! store.
//!
//! The store keys on a hash of the session ID (`SessionId::store_key`), so a leaked
//! store dump holds no usable cookie. A per-user index (app + name_id -> session keys)
//! lets SLO, SCIM deactivation and "log out everywhere" revoke all of a user's sessions.

mod cache;
pub mod cookie;
mod error;
mod id;
mod manager;
mod memory;
mod redis;
mod store;
mod timed;

pub use cache::SessionCache;
pub use cookie::CookieSettings;
pub use error::SessionError;
pub use id::SessionId;
pub use manager::{SessionManager, DEFAULT_TOUCH_INTERVAL};
pub use memory::{MemoryStore, DEFAULT_MAX_ENTRIES};
pub use redis::{
    RedisOptions, RedisStore, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEY_PREFIX, DEFAULT_RESPONSE_TIMEOUT,
};
pub use store::{
    object_id_user, DocIndex, DocUpdate, DocWrite, MemberChange, PendingLogin, Revocation,
    SessionRecord, SessionStore,
};
pub use timed::Timed;
