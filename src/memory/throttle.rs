//! Login throttle

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::store::{StoreError, ThrottleCounter, ThrottleStore};

use super::poisoned;

/// Login-throttle counters in memory (one process). Expired counters are swept whenever
/// the map has doubled since the last sweep, so memory stays proportional to the keys
/// with an open window.
#[derive(Debug, Default)]
pub struct MemoryThrottle {
    inner: Mutex<ThrottleData>,
}

#[derive(Debug, Default)]
struct ThrottleData {
    /// key → (count, since, expires_at)
    counters: HashMap<String, (u32, u64, u64)>,
    swept_len: usize,
}

impl MemoryThrottle {
    /// No counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored (possibly expired) counters.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|d| d.counters.len()).unwrap_or(0)
    }

    /// True when no counter is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ThrottleStore for MemoryThrottle {
    async fn get(&self, key: &str, now: u64, window: u64) -> Result<ThrottleCounter, StoreError> {
        let d = self.inner.lock().map_err(|_| poisoned())?;
        Ok(match d.counters.get(key) {
            Some(&(count, since, _)) if now < since.saturating_add(window) => {
                ThrottleCounter { count, since }
            }
            _ => ThrottleCounter::default(),
        })
    }

    async fn hit(&self, key: &str, now: u64, window: u64) -> Result<ThrottleCounter, StoreError> {
        let mut d = self.inner.lock().map_err(|_| poisoned())?;
        if d.counters.len() >= d.swept_len.saturating_mul(2).max(1024) {
            d.counters.retain(|_, &mut (_, _, expires)| expires > now);
            d.swept_len = d.counters.len();
        }
        let e = d.counters.entry(key.to_owned()).or_insert((0, now, 0));
        if now >= e.1.saturating_add(window) || e.0 == 0 {
            *e = (0, now, now.saturating_add(window));
        }
        e.0 = e.0.saturating_add(1);
        Ok(ThrottleCounter {
            count: e.0,
            since: e.1,
        })
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.inner
            .lock()
            .map_err(|_| poisoned())?
            .counters
            .remove(key);
        Ok(())
    }
}
