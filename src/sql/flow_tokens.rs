//! Flow tokens in SQL: one row of `authflow_flow_tokens` per token, keyed by the
//! key's [`token_digest`](crate::hashing::token_digest); the plan as JSON. Using a
//! token is one conditional `UPDATE` (unused and unexpired), so two concurrent
//! clicks resume the plan once.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, int, uint, unavailable};
use crate::model::UserId;
use crate::secret::constant_time_eq;
use crate::store::{FlowToken, FlowTokens, StoreError};

const COLUMNS: &str = "digest, flow, user_pk, plan, created, expires, used";

fn token(row: &AnyRow) -> Result<FlowToken, StoreError> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(unavailable);
    let num = |c: &str| row.try_get::<i64, _>(c).map(uint).map_err(unavailable);
    let plan = serde_json::from_str(&get("plan")?).map_err(unavailable)?;
    Ok(FlowToken {
        digest: get("digest")?,
        flow: get("flow")?,
        user: row
            .try_get::<Option<String>, _>("user_pk")
            .map_err(unavailable)?
            .map(UserId::new),
        plan,
        created: num("created")?,
        expires: num("expires")?,
        used: row
            .try_get::<Option<i64>, _>("used")
            .map_err(unavailable)?
            .map(uint),
    })
}

#[async_trait]
impl FlowTokens for SqlStore {
    async fn create(&self, t: FlowToken) -> Result<(), StoreError> {
        let plan = serde_json::to_string(&t.plan).map_err(unavailable)?;
        self.bounded(
            sqlx::query(&format!(
                "INSERT INTO authflow_flow_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .bind(t.digest)
            .bind(t.flow)
            .bind(t.user.map(|u| u.as_str().to_owned()))
            .bind(plan)
            .bind(int(t.created))
            .bind(int(t.expires))
            .bind(t.used.map(int))
            .execute(&self.pool),
        )
        .await
        .map(|_| ())
    }

    async fn find(&self, digest: &str) -> Result<Option<FlowToken>, StoreError> {
        let row = self
            .bounded(
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM authflow_flow_tokens WHERE digest = $1"
                ))
                .bind(digest.to_owned())
                .fetch_optional(&self.pool),
            )
            .await?;
        let found = row.as_ref().map(token).transpose()?;
        Ok(found.filter(|t| constant_time_eq(&t.digest, digest)))
    }

    async fn consume(&self, digest: &str, now: u64) -> Result<Option<FlowToken>, StoreError> {
        let done = self
            .bounded(
                sqlx::query(
                    "UPDATE authflow_flow_tokens SET used = $2 \
                     WHERE digest = $1 AND used IS NULL AND expires > $2",
                )
                .bind(digest.to_owned())
                .bind(int(now))
                .execute(&self.pool),
            )
            .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        self.find(digest).await
    }

    async fn purge(&self, before: u64) -> Result<u64, StoreError> {
        self.bounded(
            sqlx::query("DELETE FROM authflow_flow_tokens WHERE expires < $1")
                .bind(int(before))
                .execute(&self.pool),
        )
        .await
        .map(|r| r.rows_affected())
    }
}
