//! Login-throttle counters in SQL: one row `(key, count, since)` of
//! `authflow_throttle` per key; a hit is one upsert that opens a new window or counts
//! in the open one, so concurrent hits are never lost.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqlStore, int, uint, unavailable};
use crate::store::{StoreError, ThrottleCounter, ThrottleStore};

fn counter(row: &sqlx::any::AnyRow) -> Result<ThrottleCounter, StoreError> {
    let count: i64 = row.try_get("count").map_err(unavailable)?;
    let since: i64 = row.try_get("since").map_err(unavailable)?;
    Ok(ThrottleCounter {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        since: uint(since),
    })
}

#[async_trait]
impl ThrottleStore for SqlStore {
    async fn get(&self, key: &str, now: u64, window: u64) -> Result<ThrottleCounter, StoreError> {
        let row = self
            .bounded(
                sqlx::query("SELECT count, since FROM authflow_throttle WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool),
            )
            .await?;
        match row {
            Some(row) => {
                let c = counter(&row)?;
                Ok(if c.count > 0 && now < c.since.saturating_add(window) {
                    c
                } else {
                    ThrottleCounter::default()
                })
            }
            None => Ok(ThrottleCounter::default()),
        }
    }

    async fn hit(&self, key: &str, now: u64, window: u64) -> Result<ThrottleCounter, StoreError> {
        // Both SET expressions read the row as it was before the statement.
        let row = self
            .bounded(
                sqlx::query(
                    "INSERT INTO authflow_throttle (key, count, since) VALUES ($1, 1, $2) \
                     ON CONFLICT (key) DO UPDATE SET \
                       count = CASE WHEN authflow_throttle.count = 0 \
                         OR $2 >= authflow_throttle.since + $3 THEN 1 \
                         ELSE authflow_throttle.count + 1 END, \
                       since = CASE WHEN authflow_throttle.count = 0 \
                         OR $2 >= authflow_throttle.since + $3 THEN $2 \
                         ELSE authflow_throttle.since END \
                     RETURNING count, since",
                )
                .bind(key)
                .bind(int(now))
                .bind(int(window))
                .fetch_one(&self.pool),
            )
            .await?;
        counter(&row)
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.bounded(
            sqlx::query("DELETE FROM authflow_throttle WHERE key = $1")
                .bind(key)
                .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }
}

impl SqlStore {
    /// Deletes the throttle counters whose window closed before `before` (seconds since
    /// the epoch) for every window up to `max_window` seconds; run it now and then to
    /// reclaim space.
    pub async fn sweep_throttle(&self, before: u64, max_window: u64) -> Result<u64, StoreError> {
        self.bounded(
            sqlx::query("DELETE FROM authflow_throttle WHERE since + $1 < $2")
                .bind(int(max_window))
                .bind(int(before))
                .execute(&self.pool),
        )
        .await
        .map(|r| r.rows_affected())
    }
}
