//! Invitations (authentik's `Invitation`): links that let someone through an
//! enrollment flow, with data fixed in advance. [`InvitationStore`] keeps them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::StoreError;
use crate::model::{FlowId, UserId};

/// One invitation. Its `pk` is the token of the link (`?itoken=<pk>`): random, so
/// unguessable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    /// The token (authentik's `invite_uuid`).
    pub pk: Uuid,
    /// A unique name (authentik's slug-like `name`).
    pub name: String,
    /// When it stops working (Unix seconds; `None`: never).
    #[serde(default)]
    pub expires: Option<u64>,
    /// Merged into the prompt data of the flow it is used in.
    #[serde(default)]
    pub fixed_data: Map<String, Value>,
    /// Consumed when the account it enrolls is created.
    #[serde(default)]
    pub single_use: bool,
    /// The only flow it works in (`None`: any flow with an invitation stage).
    #[serde(default)]
    pub flow: Option<FlowId>,
    /// Who created it.
    #[serde(default)]
    pub created_by: Option<UserId>,
}

impl Invitation {
    /// An invitation with a fresh token, never expiring, reusable, for any flow.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            pk: Uuid::new_v4(),
            name: name.into(),
            expires: None,
            fixed_data: Map::new(),
            single_use: false,
            flow: None,
            created_by: None,
        }
    }

    /// Whether it has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// Keeps invitations. Implemented in memory
/// ([`MemoryInvitations`](crate::memory::MemoryInvitations)) and in SQL (`SqlStore`).
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Stores a new invitation. A `pk` or `name` already in use is a
    /// [`StoreError::Validation`] naming the field.
    async fn create(&self, invitation: Invitation) -> Result<(), StoreError>;

    /// Every invitation (expired ones too), ordered by name.
    async fn invitations(&self) -> Result<Vec<Invitation>, StoreError>;

    /// One invitation (expired or not).
    async fn invitation(&self, pk: Uuid) -> Result<Option<Invitation>, StoreError>;

    /// Deletes an invitation; whether it existed.
    async fn delete(&self, pk: Uuid) -> Result<bool, StoreError>;

    /// Consumes an invitation **atomically**: removes it if it still exists and has
    /// not expired at `now`, and answers whether *this* call removed it. Of two
    /// concurrent calls for one invitation, exactly one gets `true`.
    async fn consume(&self, pk: Uuid, now: u64) -> Result<bool, StoreError>;
}

/// The validation error of a duplicate field.
pub(crate) fn duplicate(field: &str) -> StoreError {
    StoreError::Validation(crate::model::ValidationErrors::field(
        field,
        format!("invitation with this {field} already exists."),
    ))
}
