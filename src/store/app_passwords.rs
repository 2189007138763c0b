//! App passwords: authentik's tokens of intent `app_password`, checked by the password
//! stage's [`TOKEN_BACKEND`](crate::model::TOKEN_BACKEND). A user (or an admin for
//! them) creates one for a program that cannot run a flow; the program then logs in
//! with the username and that key instead of the main password.
//!
//! Keys are drawn by the store (256 random bits, [`generate_key`]), shown once by
//! [`AppPasswords::create`] and stored only as [`token_digest`](crate::hashing::token_digest).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::model::UserId;
use crate::random::Random;
use crate::secret::{Password, Secret, constant_time_eq};

/// An app password as listed: everything but the key, which is never stored in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPasswordInfo {
    /// Unique identifier (authentik's token `identifier`), to list and delete it by.
    pub identifier: String,
    /// The user it logs in as.
    pub user: UserId,
    /// What it is for, as given at creation.
    pub description: String,
    /// When it was created, seconds since the epoch.
    pub created: u64,
    /// When it stops working (seconds since the epoch); `None`: never.
    pub expires: Option<u64>,
    /// When it last logged in, if ever.
    pub last_used: Option<u64>,
}

impl AppPasswordInfo {
    /// Whether it has expired at `now` (an expired key never matches).
    pub fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
}

/// The app passwords of the users ([`crate::memory::MemoryAppPasswords`], or a SQL
/// store's `authflow_app_passwords` table). Set with
/// [`EngineBuilder::app_passwords`](crate::EngineBuilder::app_passwords); stages see it
/// as [`Services::app_passwords`](crate::env::Services::app_passwords).
#[async_trait]
pub trait AppPasswords: Send + Sync {
    /// Creates an app password for `user` that expires at `expires` (seconds since the
    /// epoch; `None`: never). Returns it and its key; the key is shown only here.
    async fn create(
        &self,
        user: UserId,
        description: &str,
        expires: Option<u64>,
    ) -> Result<(AppPasswordInfo, Secret), StoreError>;
    /// Whether `key` is one of `user`'s app passwords, not expired at `now`; a match
    /// records `now` as its `last_used`. The comparison is constant-time and the work
    /// is the same for an unknown user (`false`).
    async fn verify(&self, user: &UserId, key: &Password, now: u64) -> Result<bool, StoreError>;
    /// The app passwords of `user` (expired ones included), oldest first.
    async fn list(&self, user: &UserId) -> Result<Vec<AppPasswordInfo>, StoreError>;
    /// Deletes `user`'s app password `identifier`. Returns whether it existed.
    async fn delete(&self, user: &UserId, identifier: &str) -> Result<bool, StoreError>;
}

/// A new key: 256 random bits as 64 lower-case hex characters.
pub fn generate_key(random: &dyn Random) -> Secret {
    let mut bytes = [0u8; 32];
    random.fill(&mut bytes);
    let mut key = String::with_capacity(64);
    for b in bytes {
        key.push_str(&format!("{b:02x}"));
    }
    Secret::new(key)
}

/// A new identifier: `app-password-` and 32 random hex characters.
pub fn generate_identifier(random: &dyn Random) -> String {
    format!("app-password-{}", random.token())
}

/// Which of `hashes` (stored [`token_digest`](crate::hashing::token_digest)s) `key`
/// matches: each is compared in constant time, and all are compared.
pub fn matching_digest<'a>(
    key: &Password,
    hashes: impl IntoIterator<Item = &'a str>,
) -> Option<usize> {
    let digest = crate::hashing::token_digest(key.expose());
    matching_digest_str(&digest, hashes)
}

/// Which of `hashes` equals `digest`: each is compared in constant time, and all are
/// compared.
pub fn matching_digest_str<'a>(
    digest: &str,
    hashes: impl IntoIterator<Item = &'a str>,
) -> Option<usize> {
    let mut found = None;
    for (i, hash) in hashes.into_iter().enumerate() {
        if constant_time_eq(digest, hash) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// Validates a new app password's description (at most 1000 characters).
pub(crate) fn check_description(description: &str) -> Result<(), StoreError> {
    if description.chars().count() > 1000 {
        let mut errors = crate::model::ValidationErrors::default();
        errors.add(
            "description",
            "Ensure this field has no more than 1000 characters.",
        );
        return Err(StoreError::Validation(errors));
    }
    Ok(())
}
