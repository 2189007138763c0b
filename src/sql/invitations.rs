//! Invitations in SQL: one row of `authflow_invitations` per invitation, its
//! `fixed_data` as JSON text. Consuming one is a single `DELETE … WHERE` whose row
//! count says whether this call removed it (atomic in both databases).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{SqlStore, corrupt, int, is_unique_violation, uint, unavailable};
use crate::model::{FlowId, UserId};
use crate::store::{Invitation, InvitationStore, StoreError, duplicate_invitation};

const COLUMNS: &str = "pk, name, expires, fixed_data, single_use, flow_pk, created_by";

fn invitation(row: &AnyRow) -> Result<Invitation, StoreError> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(unavailable);
    let opt = |c: &str| row.try_get::<Option<String>, _>(c).map_err(unavailable);
    let pk = text("pk")?;
    let fixed_data = text("fixed_data")?;
    Ok(Invitation {
        pk: Uuid::parse_str(&pk).map_err(|e| corrupt("invitation pk", e))?,
        name: text("name")?,
        expires: row
            .try_get::<Option<i64>, _>("expires")
            .map_err(unavailable)?
            .map(uint),
        fixed_data: serde_json::from_str(&fixed_data)
            .map_err(|e| corrupt("invitation fixed_data", e))?,
        single_use: row.try_get::<i64, _>("single_use").map_err(unavailable)? != 0,
        flow: opt("flow_pk")?
            .map(|f| f.parse::<FlowId>())
            .transpose()
            .map_err(|e| corrupt("invitation flow", e))?,
        created_by: opt("created_by")?.map(UserId::new),
    })
}

#[async_trait]
impl InvitationStore for SqlStore {
    async fn create(&self, inv: Invitation) -> Result<(), StoreError> {
        let fixed = serde_json::to_string(&inv.fixed_data).map_err(unavailable)?;
        let sql = format!(
            "INSERT INTO authflow_invitations ({COLUMNS}, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        let insert = sqlx::query(&sql)
            .bind(inv.pk.to_string())
            .bind(inv.name.clone())
            .bind(inv.expires.map(int))
            .bind(fixed)
            .bind(i64::from(inv.single_use))
            .bind(inv.flow.map(|f| f.to_string()))
            .bind(inv.created_by.as_ref().map(|u| u.as_str().to_owned()))
            .bind(int(self.now()))
            .execute(&self.pool);
        let result = self
            .deadline(async {
                match insert.await {
                    Ok(_) => Ok(Ok(())),
                    Err(e) if is_unique_violation(&e) => Ok(Err(())),
                    Err(e) => Err(unavailable(e)),
                }
            })
            .await?;
        if result.is_ok() {
            return Ok(());
        }
        // Which unique field was taken.
        match self.invitation(inv.pk).await? {
            Some(_) => Err(duplicate_invitation("pk")),
            None => Err(duplicate_invitation("name")),
        }
    }

    async fn invitations(&self) -> Result<Vec<Invitation>, StoreError> {
        let rows = self
            .bounded(
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM authflow_invitations ORDER BY name"
                ))
                .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(invitation).collect()
    }

    async fn invitation(&self, pk: Uuid) -> Result<Option<Invitation>, StoreError> {
        let row = self
            .bounded(
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM authflow_invitations WHERE pk = $1"
                ))
                .bind(pk.to_string())
                .fetch_optional(&self.pool),
            )
            .await?;
        row.as_ref().map(invitation).transpose()
    }

    async fn delete(&self, pk: Uuid) -> Result<bool, StoreError> {
        let done = self
            .bounded(
                sqlx::query("DELETE FROM authflow_invitations WHERE pk = $1")
                    .bind(pk.to_string())
                    .execute(&self.pool),
            )
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn consume(&self, pk: Uuid, now: u64) -> Result<bool, StoreError> {
        let done = self
            .bounded(
                sqlx::query(
                    "DELETE FROM authflow_invitations WHERE pk = $1 \
                     AND (expires IS NULL OR expires > $2)",
                )
                .bind(pk.to_string())
                .bind(int(now))
                .execute(&self.pool),
            )
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
