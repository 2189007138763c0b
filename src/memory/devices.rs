//! MFA devices in memory.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::model::{UserId, ValidationErrors};
use crate::store::{Device, DeviceSecret, DeviceStore, DeviceUse, StoreError, apply_use};

use super::poisoned;

/// MFA devices in memory (one process). The default of
/// [`EngineBuilder`](crate::EngineBuilder): empty.
#[derive(Default)]
pub struct MemoryDevices {
    rows: Mutex<Vec<Device>>,
}

impl MemoryDevices {
    /// No devices.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.rows.lock().map(|r| r.len()).unwrap_or(0);
        f.debug_struct("MemoryDevices")
            .field("devices", &n)
            .finish()
    }
}

fn credential_id(d: &Device) -> Option<&str> {
    match &d.secret {
        DeviceSecret::Webauthn { credential_id, .. } => Some(credential_id),
        _ => None,
    }
}

#[async_trait]
impl DeviceStore for MemoryDevices {
    async fn devices(&self, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let rows = self.rows.lock().map_err(|_| poisoned())?;
        let mut mine: Vec<Device> = rows.iter().filter(|d| &d.user == user).cloned().collect();
        // Oldest first, as the trait says (stable: insertion order among equals).
        mine.sort_by_key(|d| d.created);
        Ok(mine)
    }

    async fn device(&self, id: &str) -> Result<Option<Device>, StoreError> {
        let rows = self.rows.lock().map_err(|_| poisoned())?;
        Ok(rows.iter().find(|d| d.id == id).cloned())
    }

    async fn webauthn_device(&self, id: &str) -> Result<Option<Device>, StoreError> {
        let rows = self.rows.lock().map_err(|_| poisoned())?;
        Ok(rows.iter().find(|d| credential_id(d) == Some(id)).cloned())
    }

    async fn add(&self, device: Device) -> Result<(), StoreError> {
        let mut rows = self.rows.lock().map_err(|_| poisoned())?;
        let mut errors = ValidationErrors::default();
        if rows.iter().any(|d| d.id == device.id) {
            errors.add("id", "A device with this id already exists.");
        }
        if let Some(cid) = credential_id(&device)
            && rows.iter().any(|d| credential_id(d) == Some(cid))
        {
            errors.add("credential_id", "This credential is already registered.");
        }
        if !errors.is_empty() {
            return Err(StoreError::Validation(errors));
        }
        rows.push(device);
        Ok(())
    }

    async fn remove(&self, user: &UserId, id: &str) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().map_err(|_| poisoned())?;
        let before = rows.len();
        rows.retain(|d| !(d.id == id && &d.user == user));
        Ok(rows.len() != before)
    }

    async fn remove_all(&self, user: &UserId) -> Result<usize, StoreError> {
        let mut rows = self.rows.lock().map_err(|_| poisoned())?;
        let before = rows.len();
        rows.retain(|d| &d.user != user);
        Ok(before - rows.len())
    }

    async fn record_use(
        &self,
        user: &UserId,
        id: &str,
        use_: DeviceUse,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().map_err(|_| poisoned())?;
        Ok(rows
            .iter_mut()
            .find(|d| d.id == id && &d.user == user)
            .is_some_and(|d| apply_use(d, &use_, now)))
    }
}
