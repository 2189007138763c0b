//! Reputation

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::store::{ReputationStore, StoreError};

use super::poisoned;

/// Reputation scores in memory, clamped to authentik's default limits (−5 … +5) per key.
#[derive(Debug, Default)]
pub struct MemoryReputation {
    scores: Mutex<HashMap<String, i64>>,
}

/// Lowest score one IP or username can reach.
pub const REPUTATION_LOWER_LIMIT: i64 = -5;
/// Highest score one IP or username can reach.
pub const REPUTATION_UPPER_LIMIT: i64 = 5;

impl MemoryReputation {
    /// No scores.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ReputationStore for MemoryReputation {
    async fn score(&self, ip: Option<&str>, username: Option<&str>) -> Result<i64, StoreError> {
        let s = self.scores.lock().map_err(|_| poisoned())?;
        let get = |k: String| s.get(&k).copied().unwrap_or(0);
        Ok(ip.map(|i| get(format!("ip:{i}"))).unwrap_or(0)
            + username.map(|u| get(format!("user:{u}"))).unwrap_or(0))
    }

    async fn adjust(
        &self,
        ip: Option<&str>,
        username: Option<&str>,
        delta: i64,
    ) -> Result<(), StoreError> {
        let mut s = self.scores.lock().map_err(|_| poisoned())?;
        let keys = ip
            .map(|i| format!("ip:{i}"))
            .into_iter()
            .chain(username.map(|u| format!("user:{u}")));
        for k in keys {
            let e = s.entry(k).or_insert(0);
            *e = (*e + delta).clamp(REPUTATION_LOWER_LIMIT, REPUTATION_UPPER_LIMIT);
        }
        Ok(())
    }
}
