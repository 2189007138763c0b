//! API tokens for `Authorization: Bearer …`, created by the host.

use std::collections::HashMap;
use std::sync::RwLock;

use sha2::Digest;

use crate::model::UserId;

/// API tokens. Only SHA-256 digests of the tokens are kept, so the lookup does not
/// compare secrets byte by byte and a memory dump does not reveal usable tokens.
#[derive(Debug, Default)]
pub struct ApiTokens {
    by_digest: RwLock<HashMap<[u8; 32], UserId>>,
}

fn digest(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl ApiTokens {
    /// No tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a token acting as `user` and returns it (show it once; it cannot be read back).
    pub fn create(&self, user: UserId) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        if let Ok(mut m) = self.by_digest.write() {
            m.insert(digest(&token), user);
        }
        token
    }

    /// Registers a token chosen by the host (e.g. from configuration) for `user`.
    pub fn insert(&self, token: &str, user: UserId) {
        if let Ok(mut m) = self.by_digest.write() {
            m.insert(digest(token), user);
        }
    }

    /// Revokes a token. Returns whether it existed.
    pub fn revoke(&self, token: &str) -> bool {
        self.by_digest
            .write()
            .map(|mut m| m.remove(&digest(token)).is_some())
            .unwrap_or(false)
    }

    /// The user a token acts as.
    pub fn user(&self, token: &str) -> Option<UserId> {
        self.by_digest.read().ok()?.get(&digest(token)).cloned()
    }
}
