//! App passwords in SQL: one row of `authflow_app_passwords` per key, the key stored
//! as its [`token_digest`](crate::hashing::token_digest) in `key_hash`. Deleting the
//! user deletes its app passwords (`ON DELETE CASCADE`).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, int, uint, unavailable};
use crate::model::UserId;
use crate::random::OsRandom;
use crate::secret::{Password, Secret};
use crate::store::{
    AppPasswordInfo, AppPasswords, StoreError, UserDirectory, check_description,
    generate_identifier, generate_key, matching_digest,
};

const COLUMNS: &str = "pk, user_pk, identifier, key_hash, description, created, expires, last_used";

/// A row as the info it lists, and its stored digest.
fn info(row: &AnyRow) -> Result<(String, AppPasswordInfo, String), StoreError> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(unavailable);
    let opt = |c: &str| {
        row.try_get::<Option<i64>, _>(c)
            .map(|v| v.map(uint))
            .map_err(unavailable)
    };
    Ok((
        get("pk")?,
        AppPasswordInfo {
            identifier: get("identifier")?,
            user: UserId::new(get("user_pk")?),
            description: get("description")?,
            created: uint(row.try_get::<i64, _>("created").map_err(unavailable)?),
            expires: opt("expires")?,
            last_used: opt("last_used")?,
        },
        get("key_hash")?,
    ))
}

impl SqlStore {
    /// The stored digest of an app password (for tests that check the key is not kept
    /// in clear).
    pub async fn app_password_hash(&self, identifier: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .bounded(
                sqlx::query("SELECT key_hash FROM authflow_app_passwords WHERE identifier = $1")
                    .bind(identifier.to_owned())
                    .fetch_optional(&self.pool),
            )
            .await?;
        row.map(|r| r.try_get::<String, _>("key_hash").map_err(unavailable))
            .transpose()
    }

    async fn app_password_rows(
        &self,
        user: &UserId,
    ) -> Result<Vec<(String, AppPasswordInfo, String)>, StoreError> {
        let rows = self
            .bounded(
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM authflow_app_passwords WHERE user_pk = $1 \
                     ORDER BY created, identifier"
                ))
                .bind(user.as_str().to_owned())
                .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(info).collect()
    }
}

#[async_trait]
impl AppPasswords for SqlStore {
    async fn create(
        &self,
        user: UserId,
        description: &str,
        expires: Option<u64>,
    ) -> Result<(AppPasswordInfo, Secret), StoreError> {
        check_description(description)?;
        let key = generate_key(&OsRandom);
        let info = AppPasswordInfo {
            identifier: generate_identifier(&OsRandom),
            user,
            description: description.to_owned(),
            created: self.now(),
            expires,
            last_used: None,
        };
        let result = self
            .bounded(
                sqlx::query(&format!(
                    "INSERT INTO authflow_app_passwords ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"
                ))
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(info.user.as_str().to_owned())
                .bind(info.identifier.clone())
                .bind(crate::hashing::token_digest(key.expose()))
                .bind(info.description.clone())
                .bind(int(info.created))
                .bind(info.expires.map(int))
                .execute(&self.pool),
            )
            .await;
        match result {
            Ok(_) => Ok((info, key)),
            // The user does not exist (the foreign key refuses the row).
            Err(e) => {
                // The user does not exist (the foreign key refuses the row)?
                match UserDirectory::user(self, info.user.clone()).await? {
                    None => Err(StoreError::NotFound(format!("user {}", info.user))),
                    Some(_) => Err(e),
                }
            }
        }
    }

    async fn verify(&self, user: &UserId, key: &Password, now: u64) -> Result<bool, StoreError> {
        // Every key of the user is read and compared (the expired ones are skipped
        // after reading), so the work does not depend on which one matches.
        let rows = self.app_password_rows(user).await?;
        let live: Vec<&(String, AppPasswordInfo, String)> =
            rows.iter().filter(|(_, i, _)| !i.expired(now)).collect();
        let Some(found) =
            matching_digest(key, live.iter().map(|(_, _, h)| h.as_str())).and_then(|i| live.get(i))
        else {
            return Ok(false);
        };
        self.bounded(
            sqlx::query("UPDATE authflow_app_passwords SET last_used = $1 WHERE pk = $2")
                .bind(int(now))
                .bind(found.0.clone())
                .execute(&self.pool),
        )
        .await?;
        Ok(true)
    }

    async fn list(&self, user: &UserId) -> Result<Vec<AppPasswordInfo>, StoreError> {
        Ok(self
            .app_password_rows(user)
            .await?
            .into_iter()
            .map(|(_, i, _)| i)
            .collect())
    }

    async fn delete(&self, user: &UserId, identifier: &str) -> Result<bool, StoreError> {
        let done = self
            .bounded(
                sqlx::query(
                    "DELETE FROM authflow_app_passwords WHERE user_pk = $1 AND identifier = $2",
                )
                .bind(user.as_str().to_owned())
                .bind(identifier.to_owned())
                .execute(&self.pool),
            )
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
