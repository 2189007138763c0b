//! In-memory implementations of the storage traits: the embedded default for a
//! single process. Passwords are stored as real argon2id hashes.
//!
//! For several server instances, use a shared [`SessionStore`](crate::store::SessionStore) (e.g. Redis) instead of
//! [`MemorySessionStore`].

use std::sync::Arc;

use crate::store::StoreError;

mod app_passwords;
mod devices;
mod flow_tokens;
mod flows;
mod invitations;
mod reputation;
mod sessions;
mod throttle;
mod users;

/// Moved to [`crate::catalogue::CatalogueSnapshot`]; kept here for old imports.
pub use crate::catalogue::CatalogueSnapshot as Catalogue;
pub use app_passwords::MemoryAppPasswords;
pub use devices::MemoryDevices;
pub use flow_tokens::MemoryFlowTokens;
pub use flows::MemoryFlowStore;
pub use invitations::MemoryInvitations;
pub use reputation::{MemoryReputation, REPUTATION_LOWER_LIMIT, REPUTATION_UPPER_LIMIT};
pub use sessions::{DEFAULT_SESSION_CAPACITY, MemorySessionStore, SWEEP_EVERY};
pub use throttle::MemoryThrottle;
pub use users::MemoryUserDirectory;

/// A poisoned lock: the store answers as unavailable instead of panicking.
fn poisoned() -> StoreError {
    StoreError::Unavailable("in-memory store lock poisoned".into())
}

/// All in-memory stores, ready to hand to [`Engine::builder`](crate::Engine::builder).
#[derive(Clone)]
pub struct Stores {
    /// Flows.
    pub flows: Arc<MemoryFlowStore>,
    /// Sessions.
    pub sessions: Arc<MemorySessionStore>,
    /// Users.
    pub users: Arc<MemoryUserDirectory>,
    /// Reputation.
    pub reputation: Arc<MemoryReputation>,
}

impl Stores {
    /// Empty stores with argon2id hashing and the system clock.
    pub fn new() -> Self {
        Self {
            flows: Arc::new(MemoryFlowStore::new()),
            sessions: Arc::new(MemorySessionStore::new()),
            users: Arc::new(MemoryUserDirectory::new()),
            reputation: Arc::new(MemoryReputation::new()),
        }
    }

    /// An engine builder over these stores.
    pub fn engine(&self) -> crate::EngineBuilder {
        crate::Engine::builder(
            self.flows.clone(),
            self.sessions.clone(),
            self.users.clone(),
        )
        .reputation(self.reputation.clone())
    }
}

impl Default for Stores {
    fn default() -> Self {
        Self::new()
    }
}
