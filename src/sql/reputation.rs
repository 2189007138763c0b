//! Reputation scores in SQL: one row of `authflow_reputation` per key (`ip:…`,
//! `user:…`), clamped to the memory store's limits in the same upsert.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqlStore, unavailable};
use crate::memory::{REPUTATION_LOWER_LIMIT, REPUTATION_UPPER_LIMIT};
use crate::store::{ReputationStore, StoreError};

fn keys(ip: Option<&str>, username: Option<&str>) -> Vec<String> {
    ip.map(|i| format!("ip:{i}"))
        .into_iter()
        .chain(username.map(|u| format!("user:{u}")))
        .collect()
}

#[async_trait]
impl ReputationStore for SqlStore {
    async fn score(&self, ip: Option<&str>, username: Option<&str>) -> Result<i64, StoreError> {
        let mut total = 0;
        for key in keys(ip, username) {
            let row = self
                .bounded(
                    sqlx::query("SELECT score FROM authflow_reputation WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool),
                )
                .await?;
            if let Some(row) = row {
                total += row.try_get::<i64, _>("score").map_err(unavailable)?;
            }
        }
        Ok(total)
    }

    async fn adjust(
        &self,
        ip: Option<&str>,
        username: Option<&str>,
        delta: i64,
    ) -> Result<(), StoreError> {
        let (lo, hi) = (REPUTATION_LOWER_LIMIT, REPUTATION_UPPER_LIMIT);
        let delta = delta.clamp(2 * lo - 1, 2 * hi + 1);
        for key in keys(ip, username) {
            self.bounded(
                sqlx::query(
                    "INSERT INTO authflow_reputation (key, score) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET score = CASE \
                       WHEN authflow_reputation.score + $3 < $4 THEN $4 \
                       WHEN authflow_reputation.score + $3 > $5 THEN $5 \
                       ELSE authflow_reputation.score + $3 END",
                )
                .bind(key)
                .bind(delta.clamp(lo, hi))
                .bind(delta)
                .bind(lo)
                .bind(hi)
                .execute(&self.pool),
            )
            .await?;
        }
        Ok(())
    }
}
