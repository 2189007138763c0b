//! Flow tokens (authentik's `FlowToken`): a stored plan that a link resumes, in
//! whichever browser opens it. The email stage mails one; the executor restores the
//! plan when the flow is opened with `flow_token=<key>` in its query.
//!
//! Keys are 256 random bits (64 hex characters), given out once; stores keep only
//! their [`token_digest`](crate::hashing::token_digest) and compare it in constant
//! time. A token is single-use: [`FlowTokens::consume`] marks it used atomically, so
//! two concurrent clicks resume the plan once. Used and expired tokens are kept until
//! [`FlowTokens::purge`] (the email stage purges tokens expired for a day), so an old
//! link gets a message saying what happened to it instead of "not found".

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::model::UserId;
use crate::plan::FlowPlan;

/// A stored flow token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowToken {
    /// `token_digest` of the key.
    pub digest: String,
    /// The slug of the flow it resumes.
    pub flow: String,
    /// The user it was made for (`None`: none known).
    pub user: Option<UserId>,
    /// The plan it resumes.
    pub plan: FlowPlan,
    /// Unix seconds when it was made.
    pub created: u64,
    /// Unix seconds after which it no longer resumes the plan.
    pub expires: u64,
    /// Unix seconds when it was used, if it was.
    pub used: Option<u64>,
}

/// What a key is, as far as the store knows.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenState {
    /// Unused and not expired.
    Valid(Box<FlowToken>),
    /// Not used, but expired.
    Expired(Box<FlowToken>),
    /// Already used (at this time).
    Used(Box<FlowToken>),
    /// No such token (never issued, or purged).
    Unknown,
}

impl TokenState {
    /// Classifies a found token at `now`.
    pub fn of(token: Option<FlowToken>, now: u64) -> Self {
        match token {
            None => TokenState::Unknown,
            Some(t) if t.used.is_some() => TokenState::Used(Box::new(t)),
            Some(t) if t.expires <= now => TokenState::Expired(Box::new(t)),
            Some(t) => TokenState::Valid(Box::new(t)),
        }
    }
}

/// The store of flow tokens.
#[async_trait]
pub trait FlowTokens: Send + Sync {
    /// Stores a new token (its digest is unique).
    async fn create(&self, token: FlowToken) -> Result<(), StoreError>;
    /// The token with this digest, used or not.
    async fn find(&self, digest: &str) -> Result<Option<FlowToken>, StoreError>;
    /// Marks the token used at `now`, atomically, if it is unused and not expired:
    /// returns it (with `used` set) when this call used it, `None` otherwise.
    async fn consume(&self, digest: &str, now: u64) -> Result<Option<FlowToken>, StoreError>;
    /// Deletes tokens that expired before `before`; returns how many.
    async fn purge(&self, before: u64) -> Result<u64, StoreError>;
}

/// A new random key (64 hex characters, 256 bits) and its digest.
pub fn new_flow_token_key(random: &dyn crate::random::Random) -> (crate::secret::Secret, String) {
    let key = super::generate_key(random);
    let digest = crate::hashing::token_digest(key.expose());
    (key, digest)
}

/// The digest of a key a client sent, or `None` when it cannot be a key we issued
/// (not 64 lowercase hex characters), so stores never see arbitrary input.
pub fn flow_token_digest(key: &str) -> Option<String> {
    (key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| crate::hashing::token_digest(key))
}
