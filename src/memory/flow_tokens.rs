//! Flow tokens in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::poisoned;
use crate::secret::constant_time_eq;
use crate::store::{FlowToken, FlowTokens, StoreError};

/// Flow tokens in a map keyed by digest (found by lookup, then compared in constant
/// time).
#[derive(Debug, Default)]
pub struct MemoryFlowTokens {
    tokens: Mutex<HashMap<String, FlowToken>>,
}

impl MemoryFlowTokens {
    /// No tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many tokens are stored (used and expired ones included).
    pub fn len(&self) -> usize {
        self.tokens.lock().map(|t| t.len()).unwrap_or(0)
    }

    /// Whether none are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl FlowTokens for MemoryFlowTokens {
    async fn create(&self, token: FlowToken) -> Result<(), StoreError> {
        let mut tokens = self.tokens.lock().map_err(|_| poisoned())?;
        if tokens.contains_key(&token.digest) {
            return Err(StoreError::Conflict);
        }
        tokens.insert(token.digest.clone(), token);
        Ok(())
    }

    async fn find(&self, digest: &str) -> Result<Option<FlowToken>, StoreError> {
        let tokens = self.tokens.lock().map_err(|_| poisoned())?;
        Ok(tokens
            .get(digest)
            .filter(|t| constant_time_eq(&t.digest, digest))
            .cloned())
    }

    async fn consume(&self, digest: &str, now: u64) -> Result<Option<FlowToken>, StoreError> {
        let mut tokens = self.tokens.lock().map_err(|_| poisoned())?;
        match tokens.get_mut(digest) {
            Some(t)
                if constant_time_eq(&t.digest, digest) && t.used.is_none() && t.expires > now =>
            {
                t.used = Some(now);
                Ok(Some(t.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn purge(&self, before: u64) -> Result<u64, StoreError> {
        let mut tokens = self.tokens.lock().map_err(|_| poisoned())?;
        let n = tokens.len();
        tokens.retain(|_, t| t.expires >= before);
        Ok((n - tokens.len()) as u64)
    }
}
