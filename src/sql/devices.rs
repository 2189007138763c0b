//! MFA devices in SQL: one row of `authflow_devices` per device, with the semantics of
//! [`MemoryDevices`](crate::memory::MemoryDevices).
//!
//! The secret is stored as its JSON in `secret`; the parts a use changes live in
//! columns of their own so that [`DeviceStore::record_use`] is one guarded statement
//! and never a read-then-write:
//! - TOTP: `last_step` (authoritative over the JSON's): `UPDATE … WHERE last_step IS
//!   NULL OR last_step < $step` — of concurrent uses of one step, one updates the row.
//! - WebAuthn: `sign_count`, likewise `WHERE sign_count < $count` (or both 0).
//! - Static: the remaining token digests are the JSON; a use is a compare-and-swap on
//!   `version`: read the row, remove the code, `UPDATE … WHERE version = $read`; when
//!   another use won the race the row is read again (the code may be gone by then).
//!
//! `id` is the primary key and `credential_id` (WebAuthn only, else NULL) is unique, so
//! a duplicate is refused by the database, atomically with the insert.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::users::{parse_uid, uid};
use super::{SqlStore, corrupt, int, is_unique_violation, uint, unavailable};
use crate::model::{UserId, ValidationErrors};
use crate::store::{Device, DeviceSecret, DeviceStore, DeviceUse, StoreError};

const COLUMNS: &str =
    "id, user_pk, name, created, last_used, confirmed, secret, last_step, sign_count, version";

/// A compare-and-swap of a static device is retried at most this often (each retry
/// means another use of the same device committed in between).
const CAS_ATTEMPTS: usize = 64;

/// A counter column that a use moves forward, and the condition (on the new value,
/// `$6`) under which it may.
struct Counter {
    class: &'static str,
    guard: &'static str,
    set: &'static str,
}

const TOTP_STEP: Counter = Counter {
    class: "totp",
    guard: "last_step IS NULL OR last_step < $6",
    set: "last_step",
};

const WEBAUTHN_COUNT: Counter = Counter {
    class: "webauthn",
    guard: "sign_count < $6 OR (sign_count = 0 AND $6 = 0)",
    set: "sign_count",
};

fn device_of(row: &AnyRow) -> Result<Device, StoreError> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(unavailable);
    let opt = |c: &str| row.try_get::<Option<i64>, _>(c).map_err(unavailable);
    let mut secret: DeviceSecret =
        serde_json::from_str(&get("secret")?).map_err(|e| corrupt("device secret", e))?;
    match &mut secret {
        DeviceSecret::Totp { last_step, .. } => *last_step = opt("last_step")?.map(uint),
        DeviceSecret::Webauthn { sign_count, .. } => {
            *sign_count = u32::try_from(opt("sign_count")?.unwrap_or(0)).unwrap_or(u32::MAX);
        }
        DeviceSecret::Static { .. } => {}
    }
    Ok(Device {
        id: get("id")?,
        user: parse_uid(&get("user_pk")?)?,
        name: get("name")?,
        created: uint(row.try_get::<i64, _>("created").map_err(unavailable)?),
        last_used: opt("last_used")?.map(uint),
        confirmed: row.try_get::<i64, _>("confirmed").map_err(unavailable)? != 0,
        secret,
    })
}

fn credential_id(secret: &DeviceSecret) -> Option<String> {
    match secret {
        DeviceSecret::Webauthn { credential_id, .. } => Some(credential_id.clone()),
        _ => None,
    }
}

impl SqlStore {
    async fn device_where(&self, condition: &str, value: &str) -> Result<Vec<Device>, StoreError> {
        let rows = self
            .bounded(
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM authflow_devices WHERE {condition} ORDER BY created, id"
                ))
                .bind(value.to_owned())
                .fetch_all(&self.pool),
            )
            .await?;
        rows.iter().map(device_of).collect()
    }

    /// The validation errors of a refused insert: which of `id` and `credential_id`
    /// is taken.
    async fn duplicate(&self, id: &str, cid: Option<&str>) -> Result<StoreError, StoreError> {
        let mut errors = ValidationErrors::default();
        if self.device(id).await?.is_some() {
            errors.add("id", "A device with this id already exists.");
        }
        if let Some(cid) = cid
            && self.webauthn_device(cid).await?.is_some()
        {
            errors.add("credential_id", "This credential is already registered.");
        }
        if errors.is_empty() {
            // Taken at insert time, removed since: still a duplicate of the moment.
            errors.add("id", "A device with this id already exists.");
        }
        Ok(StoreError::Validation(errors))
    }

    /// One guarded `UPDATE` of a counter column (`last_step` / `sign_count`).
    async fn forward(
        &self,
        (user, id): (&UserId, &str),
        counter: &Counter,
        value: i64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let Counter { class, guard, set } = counter;
        let done = self
            .bounded(
                sqlx::query(&format!(
                    "UPDATE authflow_devices SET {set} = $1, last_used = $2, version = version + 1 \
                     WHERE id = $3 AND user_pk = $4 AND class = $5 AND ({guard})"
                ))
                .bind(value)
                .bind(int(now))
                .bind(id.to_owned())
                .bind(uid(user))
                .bind(class)
                .bind(value)
                .execute(&self.pool),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes one static code by compare-and-swap on the row's `version`.
    async fn use_static(
        &self,
        user: &UserId,
        id: &str,
        digest: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let row = self
                .bounded(
                    sqlx::query(
                        "SELECT secret, version FROM authflow_devices \
                         WHERE id = $1 AND user_pk = $2 AND class = 'static'",
                    )
                    .bind(id.to_owned())
                    .bind(uid(user))
                    .fetch_optional(&self.pool),
                )
                .await?;
            let Some(row) = row else { return Ok(false) };
            let version: i64 = row.try_get("version").map_err(unavailable)?;
            let raw: String = row.try_get("secret").map_err(unavailable)?;
            let secret: DeviceSecret =
                serde_json::from_str(&raw).map_err(|e| corrupt("device secret", e))?;
            let DeviceSecret::Static { mut tokens } = secret else {
                return Ok(false);
            };
            let Some(i) =
                crate::store::matching_digest_str(digest, tokens.iter().map(String::as_str))
            else {
                return Ok(false);
            };
            tokens.remove(i);
            let json = serde_json::to_string(&DeviceSecret::Static { tokens })
                .map_err(|e| corrupt("device secret", e))?;
            let done = self
                .bounded(
                    sqlx::query(
                        "UPDATE authflow_devices SET secret = $1, last_used = $2, \
                         version = version + 1 WHERE id = $3 AND user_pk = $4 AND version = $5",
                    )
                    .bind(json)
                    .bind(int(now))
                    .bind(id.to_owned())
                    .bind(uid(user))
                    .bind(version)
                    .execute(&self.pool),
                )
                .await?;
            if done.rows_affected() == 1 {
                return Ok(true);
            }
        }
        Err(StoreError::Conflict)
    }
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn devices(&self, user: &UserId) -> Result<Vec<Device>, StoreError> {
        self.device_where("user_pk = $1", &uid(user)).await
    }

    async fn device(&self, id: &str) -> Result<Option<Device>, StoreError> {
        Ok(self.device_where("id = $1", id).await?.into_iter().next())
    }

    async fn webauthn_device(&self, credential_id: &str) -> Result<Option<Device>, StoreError> {
        Ok(self
            .device_where("credential_id = $1", credential_id)
            .await?
            .into_iter()
            .next())
    }

    async fn add(&self, device: Device) -> Result<(), StoreError> {
        let cid = credential_id(&device.secret);
        let (last_step, sign_count) = match &device.secret {
            DeviceSecret::Totp { last_step, .. } => (last_step.map(int), None),
            DeviceSecret::Webauthn { sign_count, .. } => (None, Some(i64::from(*sign_count))),
            DeviceSecret::Static { .. } => (None, None),
        };
        let secret =
            serde_json::to_string(&device.secret).map_err(|e| corrupt("device secret", e))?;
        let insert = sqlx::query(
            "INSERT INTO authflow_devices (id, user_pk, class, name, created, last_used, \
             confirmed, secret, credential_id, last_step, sign_count, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0)",
        )
        .bind(device.id.clone())
        .bind(uid(&device.user))
        .bind(device.class().as_str())
        .bind(device.name.clone())
        .bind(int(device.created))
        .bind(device.last_used.map(int))
        .bind(i64::from(device.confirmed))
        .bind(secret)
        .bind(cid.clone())
        .bind(last_step)
        .bind(sign_count)
        .execute(&self.pool);
        match tokio::time::timeout(self.config.timeout, insert).await {
            Ok(Ok(_)) => Ok(()),
            // The primary key or the unique credential id refused the row.
            Ok(Err(e)) if is_unique_violation(&e) => {
                Err(self.duplicate(&device.id, cid.as_deref()).await?)
            }
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("timed out")),
        }
    }

    async fn remove(&self, user: &UserId, id: &str) -> Result<bool, StoreError> {
        let done = self
            .bounded(
                sqlx::query("DELETE FROM authflow_devices WHERE id = $1 AND user_pk = $2")
                    .bind(id.to_owned())
                    .bind(uid(user))
                    .execute(&self.pool),
            )
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_all(&self, user: &UserId) -> Result<usize, StoreError> {
        let done = self
            .bounded(
                sqlx::query("DELETE FROM authflow_devices WHERE user_pk = $1")
                    .bind(uid(user))
                    .execute(&self.pool),
            )
            .await?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn record_use(
        &self,
        user: &UserId,
        id: &str,
        use_: DeviceUse,
        now: u64,
    ) -> Result<bool, StoreError> {
        match use_ {
            DeviceUse::TotpStep(step) => self.forward((user, id), &TOTP_STEP, int(step), now).await,
            DeviceUse::WebauthnCounter(count) => {
                self.forward((user, id), &WEBAUTHN_COUNT, i64::from(count), now)
                    .await
            }
            DeviceUse::StaticToken(digest) => self.use_static(user, id, &digest, now).await,
        }
    }
}
