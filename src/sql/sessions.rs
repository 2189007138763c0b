//! Sessions in SQL: one row of `authflow_sessions` per session, with the semantics of
//! [`MemorySessionStore`](crate::memory::MemorySessionStore).
//!
//! `save` is compare-and-swap in one statement: an `UPDATE … WHERE version = $expected`
//! (and not expired), or for a new session an `INSERT … ON CONFLICT DO UPDATE … WHERE`
//! the existing row has expired; no row written is [`StoreError::Conflict`]. The
//! `user_pk` column is the per-user index behind
//! [`SessionStore::delete_user_sessions`]: it always names the user of the stored
//! state, so a session that has since logged out is never ended. Expired rows are
//! skipped when read and swept every [`SWEEP_EVERY`](crate::memory::SWEEP_EVERY) new
//! sessions.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use sqlx::Row;

use super::{SqlStore, corrupt, int, uint, unavailable};
use crate::memory::SWEEP_EVERY;
use crate::model::UserId;
use crate::plan::{SessionId, SessionState};
use crate::store::{SessionStore, StoreError, Versioned};

/// A condition (SQL) that the row `authflow_sessions` is live at `$now` (bound as
/// `$n`): touched less than the idle TTL ago and created less than the absolute TTL ago.
fn live(now: usize, idle: usize, absolute: usize) -> String {
    format!(
        "(authflow_sessions.touched > ${now} - ${idle} AND authflow_sessions.created > ${now} - ${absolute})"
    )
}

impl SqlStore {
    fn session_ttls(&self) -> (i64, i64) {
        (
            int(self.config.session_idle_ttl),
            int(self.config.session_absolute_ttl),
        )
    }

    /// Deletes every expired session.
    pub async fn sweep_sessions(&self) -> Result<u64, StoreError> {
        let (idle, absolute) = self.session_ttls();
        let now = int(self.now());
        self.bounded(
            sqlx::query(
                "DELETE FROM authflow_sessions WHERE touched <= $1 - $2 OR created <= $1 - $3",
            )
            .bind(now)
            .bind(idle)
            .bind(absolute)
            .execute(&self.pool),
        )
        .await
        .map(|r| r.rows_affected())
    }
}

fn user_text(state: &SessionState) -> Option<String> {
    state.user.as_ref().map(super::users::uid)
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned<SessionState>>, StoreError> {
        let (idle, absolute) = self.session_ttls();
        let row = self
            .bounded(
                sqlx::query(&format!(
                    "SELECT version, state FROM authflow_sessions WHERE id = $1 AND {}",
                    live(2, 3, 4)
                ))
                .bind(id.as_str())
                .bind(int(self.now()))
                .bind(idle)
                .bind(absolute)
                .fetch_optional(&self.pool),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let version: i64 = row.try_get("version").map_err(unavailable)?;
        let state: String = row.try_get("state").map_err(unavailable)?;
        let value = serde_json::from_str(&state).map_err(|e| corrupt("session", e))?;
        Ok(Some(Versioned {
            value,
            version: uint(version),
        }))
    }

    async fn save(
        &self,
        id: &SessionId,
        state: &SessionState,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let payload = serde_json::to_string(state)
            .map_err(|e| unavailable(format!("cannot serialise session: {e}")))?;
        let (idle, absolute) = self.session_ttls();
        let now = int(self.now());
        let user = user_text(state);
        match expected {
            None => {
                if self.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                    self.sweep_sessions().await?;
                }
                // A new row, or one replacing an expired session with this id.
                let done = self
                    .bounded(
                        sqlx::query(&format!(
                            "INSERT INTO authflow_sessions (id, user_pk, version, created, touched, state) \
                             VALUES ($1, $2, 1, $3, $3, $4) ON CONFLICT (id) DO UPDATE SET \
                             user_pk = excluded.user_pk, version = 1, created = excluded.created, \
                             touched = excluded.touched, state = excluded.state WHERE NOT {}",
                            live(3, 5, 6)
                        ))
                        .bind(id.as_str())
                        .bind(user)
                        .bind(now)
                        .bind(payload)
                        .bind(idle)
                        .bind(absolute)
                        .execute(&self.pool),
                    )
                    .await?;
                if done.rows_affected() == 1 {
                    Ok(1)
                } else {
                    Err(StoreError::Conflict)
                }
            }
            Some(want) => {
                let done = self
                    .bounded(
                        sqlx::query(&format!(
                            "UPDATE authflow_sessions SET version = version + 1, user_pk = $1, \
                             touched = $2, state = $3 WHERE id = $4 AND version = $5 AND {}",
                            live(2, 6, 7)
                        ))
                        .bind(user)
                        .bind(now)
                        .bind(payload)
                        .bind(id.as_str())
                        .bind(int(want))
                        .bind(idle)
                        .bind(absolute)
                        .execute(&self.pool),
                    )
                    .await?;
                if done.rows_affected() == 1 && want < u64::MAX {
                    Ok(want + 1)
                } else {
                    Err(StoreError::Conflict)
                }
            }
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.bounded(
            sqlx::query("DELETE FROM authflow_sessions WHERE id = $1")
                .bind(id.as_str())
                .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    async fn delete_user_sessions(
        &self,
        user: UserId,
        keep: &SessionId,
    ) -> Result<usize, StoreError> {
        let (idle, absolute) = self.session_ttls();
        let done = self
            .bounded(
                sqlx::query(&format!(
                    "DELETE FROM authflow_sessions WHERE user_pk = $1 AND id <> $2 AND {}",
                    live(3, 4, 5)
                ))
                .bind(super::users::uid(&user))
                .bind(keep.as_str())
                .bind(int(self.now()))
                .bind(idle)
                .bind(absolute)
                .execute(&self.pool),
            )
            .await?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}
