//! Sessions

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::{Clock, SystemClock};
use crate::model::UserId;
use crate::plan::{SessionId, SessionState};
use crate::store::{SessionStore, StoreError, Versioned};

use super::poisoned;

struct Entry {
    state: SessionState,
    version: u64,
    touched: u64,
    created: u64,
}

/// Default [`MemorySessionStore`] capacity (sessions).
pub const DEFAULT_SESSION_CAPACITY: usize = 100_000;
/// A [`MemorySessionStore`] sweeps expired sessions every this many new sessions.
pub const SWEEP_EVERY: u64 = 1024;

struct Sessions {
    map: HashMap<SessionId, Entry>,
    /// Sessions saved with a user, per user. May name sessions that are gone or no
    /// longer logged in as that user (checked on use; pruned at every sweep).
    by_user: HashMap<UserId, HashSet<SessionId>>,
    /// New sessions since the last sweep.
    inserts: u64,
}

/// Sessions in memory, with compare-and-swap versions and idle/absolute expiry.
///
/// Memory is bounded without a background task:
/// - every [`SWEEP_EVERY`] new sessions (and whenever the store is full) a sweep drops
///   every expired session, so sessions that are never loaded again do not stay;
/// - at most `capacity` sessions are kept (default [`DEFAULT_SESSION_CAPACITY`]).
///   When a new session finds the store full, a batch of 1/64 of the capacity (at
///   least one) is evicted in this order: **anonymous sessions first** (no user, or
///   a login that has expired), least recently used first; **logged-in sessions only
///   when no anonymous one is left**, least recently used first. So a flood of
///   anonymous visitors can never log anyone out while an anonymous session remains.
pub struct MemorySessionStore {
    sessions: Mutex<Sessions>,
    clock: Arc<dyn Clock>,
    idle_ttl: u64,
    absolute_ttl: u64,
    capacity: usize,
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySessionStore {
    /// Sessions expire after 24 h idle or 30 days in all; at most
    /// [`DEFAULT_SESSION_CAPACITY`] are kept.
    pub fn new() -> Self {
        Self::with_expiry(Arc::new(SystemClock), 24 * 3600, 30 * 24 * 3600)
    }

    /// Custom clock and expiry (seconds).
    pub fn with_expiry(clock: Arc<dyn Clock>, idle_ttl: u64, absolute_ttl: u64) -> Self {
        Self {
            sessions: Mutex::new(Sessions {
                map: HashMap::new(),
                by_user: HashMap::new(),
                inserts: 0,
            }),
            clock,
            idle_ttl,
            absolute_ttl,
            capacity: DEFAULT_SESSION_CAPACITY,
        }
    }

    /// Keeps at most `capacity` sessions (at least 1); see the type's docs for the
    /// eviction order.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Number of stored (possibly expired) sessions.
    pub fn len(&self) -> usize {
        self.sessions.lock().map(|s| s.map.len()).unwrap_or(0)
    }

    /// True when no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired session now (also done automatically, see the type's docs).
    pub fn sweep(&self) {
        let now = self.clock.now();
        if let Ok(mut s) = self.sessions.lock() {
            self.sweep_locked(&mut s, now);
        }
    }

    fn expired(&self, e: &Entry, now: u64) -> bool {
        now.saturating_sub(e.touched) >= self.idle_ttl
            || now.saturating_sub(e.created) >= self.absolute_ttl
    }

    fn sweep_locked(&self, s: &mut Sessions, now: u64) {
        s.map.retain(|_, e| !self.expired(e, now));
        let Sessions { map, by_user, .. } = s;
        by_user.retain(|user, ids| {
            ids.retain(|id| {
                map.get(id)
                    .is_some_and(|e| e.state.user.as_ref() == Some(user))
            });
            !ids.is_empty()
        });
        s.inserts = 0;
    }

    /// Makes room for one new session: sweeps when due or full, then evicts a batch
    /// (anonymous first, least recently used first) if still full.
    fn make_room(&self, s: &mut Sessions, now: u64) {
        s.inserts += 1;
        if s.inserts >= SWEEP_EVERY || s.map.len() >= self.capacity {
            self.sweep_locked(s, now);
        }
        if s.map.len() < self.capacity {
            return;
        }
        let batch = (self.capacity / 64).max(1);
        let excess = s.map.len() + 1 - self.capacity;
        let evict = batch.max(excess).min(s.map.len());
        // (logged in, last use): anonymous sorts first, then the oldest.
        let mut order: Vec<((bool, u64), &SessionId)> = s
            .map
            .iter()
            .map(|(id, e)| {
                let logged_in =
                    e.state.user.is_some() && e.state.login_expires_at.is_none_or(|t| t > now);
                ((logged_in, e.touched), id)
            })
            .collect();
        if evict < order.len() {
            order.select_nth_unstable_by_key(evict, |(k, _)| *k);
        }
        let victims: Vec<SessionId> = order
            .into_iter()
            .take(evict)
            .map(|(_, id)| id.clone())
            .collect();
        for id in victims {
            s.map.remove(&id);
        }
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned<SessionState>>, StoreError> {
        let now = self.clock.now();
        let mut s = self.sessions.lock().map_err(|_| poisoned())?;
        match s.map.get(id) {
            Some(e) if self.expired(e, now) => {
                s.map.remove(id);
                Ok(None)
            }
            Some(e) => Ok(Some(Versioned {
                value: e.state.clone(),
                version: e.version,
            })),
            None => Ok(None),
        }
    }

    async fn save(
        &self,
        id: &SessionId,
        state: &SessionState,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut s = self.sessions.lock().map_err(|_| poisoned())?;
        let current = s
            .map
            .get(id)
            .filter(|e| !self.expired(e, now))
            .map(|e| (e.version, e.created));
        let saved = match (current, expected) {
            (None, None) => {
                s.map.remove(id);
                self.make_room(&mut s, now);
                s.map.insert(
                    id.clone(),
                    Entry {
                        state: state.clone(),
                        version: 1,
                        touched: now,
                        created: now,
                    },
                );
                Ok(1)
            }
            (Some((v, created)), Some(want)) if v == want => {
                s.map.insert(
                    id.clone(),
                    Entry {
                        state: state.clone(),
                        version: v + 1,
                        touched: now,
                        created,
                    },
                );
                Ok(v + 1)
            }
            _ => Err(StoreError::Conflict),
        };
        if let (Ok(_), Some(user)) = (&saved, &state.user) {
            s.by_user
                .entry(user.clone())
                .or_default()
                .insert(id.clone());
        }
        saved
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.sessions.lock().map_err(|_| poisoned())?.map.remove(id);
        Ok(())
    }

    async fn delete_user_sessions(
        &self,
        user: UserId,
        keep: &SessionId,
    ) -> Result<usize, StoreError> {
        let mut s = self.sessions.lock().map_err(|_| poisoned())?;
        let Some(ids) = s.by_user.remove(&user) else {
            return Ok(0);
        };
        let mut deleted = 0;
        for id in ids {
            if &id == keep {
                s.by_user.entry(user.clone()).or_default().insert(id);
            } else if s
                .map
                .get(&id)
                .is_some_and(|e| e.state.user.as_ref() == Some(&user))
            {
                s.map.remove(&id);
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
