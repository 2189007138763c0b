//! App passwords in memory.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::{Clock, SystemClock};
use crate::model::UserId;
use crate::random::{OsRandom, Random};
use crate::secret::{Password, Secret};
use crate::store::{
    AppPasswordInfo, AppPasswords, StoreError, check_description, generate_identifier,
    generate_key, matching_digest,
};

use super::poisoned;

/// App passwords in memory (one process), keys stored as
/// [`token_digest`](crate::hashing::token_digest)s. The default of
/// [`EngineBuilder`](crate::EngineBuilder): empty, so the token backend never matches
/// until the host creates app passwords in it.
pub struct MemoryAppPasswords {
    rows: Mutex<Vec<(AppPasswordInfo, String)>>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
}

impl MemoryAppPasswords {
    /// No app passwords; the system clock (creation times) and random generator (keys).
    pub fn new() -> Self {
        Self::with(Arc::new(SystemClock), Arc::new(OsRandom))
    }

    /// No app passwords, with this clock and random generator.
    pub fn with(clock: Arc<dyn Clock>, random: Arc<dyn Random>) -> Self {
        Self {
            rows: Mutex::new(Vec::new()),
            clock,
            random,
        }
    }

    /// The stored digest of an app password (for tests that check the key is not kept
    /// in clear).
    pub fn stored_hash(&self, identifier: &str) -> Option<String> {
        let rows = self.rows.lock().ok()?;
        rows.iter()
            .find(|(i, _)| i.identifier == identifier)
            .map(|(_, h)| h.clone())
    }
}

impl Default for MemoryAppPasswords {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryAppPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAppPasswords").finish_non_exhaustive()
    }
}

#[async_trait]
impl AppPasswords for MemoryAppPasswords {
    async fn create(
        &self,
        user: UserId,
        description: &str,
        expires: Option<u64>,
    ) -> Result<(AppPasswordInfo, Secret), StoreError> {
        check_description(description)?;
        let key = generate_key(self.random.as_ref());
        let info = AppPasswordInfo {
            identifier: generate_identifier(self.random.as_ref()),
            user,
            description: description.to_owned(),
            created: self.clock.now(),
            expires,
            last_used: None,
        };
        let hash = crate::hashing::token_digest(key.expose());
        self.rows
            .lock()
            .map_err(|_| poisoned())?
            .push((info.clone(), hash));
        Ok((info, key))
    }

    async fn verify(&self, user: &UserId, key: &Password, now: u64) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().map_err(|_| poisoned())?;
        let mut candidates: Vec<&mut (AppPasswordInfo, String)> = rows
            .iter_mut()
            .filter(|(i, _)| &i.user == user && !i.expired(now))
            .collect();
        let found = matching_digest(key, candidates.iter().map(|(_, h)| h.as_str()));
        match found.and_then(|i| candidates.get_mut(i)) {
            Some((info, _)) => {
                info.last_used = Some(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn list(&self, user: &UserId) -> Result<Vec<AppPasswordInfo>, StoreError> {
        let rows = self.rows.lock().map_err(|_| poisoned())?;
        Ok(rows
            .iter()
            .filter(|(i, _)| &i.user == user)
            .map(|(i, _)| i.clone())
            .collect())
    }

    async fn delete(&self, user: &UserId, identifier: &str) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().map_err(|_| poisoned())?;
        let before = rows.len();
        rows.retain(|(i, _)| !(&i.user == user && i.identifier == identifier));
        Ok(rows.len() != before)
    }
}
