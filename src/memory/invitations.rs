//! Invitations in memory.

use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;

use super::poisoned;
use crate::store::{Invitation, InvitationStore, StoreError, duplicate_invitation};

/// Invitations in memory (one process). The default of
/// [`EngineBuilder`](crate::EngineBuilder): empty.
#[derive(Default)]
pub struct MemoryInvitations {
    rows: Mutex<Vec<Invitation>>,
}

impl MemoryInvitations {
    /// No invitations.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryInvitations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.rows.lock().map(|r| r.len()).unwrap_or(0);
        f.debug_struct("MemoryInvitations")
            .field("invitations", &n)
            .finish()
    }
}

#[async_trait]
impl InvitationStore for MemoryInvitations {
    async fn create(&self, invitation: Invitation) -> Result<(), StoreError> {
        let mut rows = self.rows.lock().map_err(|_| poisoned())?;
        if rows.iter().any(|i| i.pk == invitation.pk) {
            return Err(duplicate_invitation("pk"));
        }
        if rows.iter().any(|i| i.name == invitation.name) {
            return Err(duplicate_invitation("name"));
        }
        rows.push(invitation);
        Ok(())
    }

    async fn invitations(&self) -> Result<Vec<Invitation>, StoreError> {
        let rows = self.rows.lock().map_err(|_| poisoned())?;
        let mut all = rows.clone();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn invitation(&self, pk: Uuid) -> Result<Option<Invitation>, StoreError> {
        let rows = self.rows.lock().map_err(|_| poisoned())?;
        Ok(rows.iter().find(|i| i.pk == pk).cloned())
    }

    async fn delete(&self, pk: Uuid) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().map_err(|_| poisoned())?;
        let before = rows.len();
        rows.retain(|i| i.pk != pk);
        Ok(rows.len() != before)
    }

    async fn consume(&self, pk: Uuid, now: u64) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().map_err(|_| poisoned())?;
        match rows.iter().position(|i| i.pk == pk && !i.is_expired(now)) {
            Some(at) => {
                rows.remove(at);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
