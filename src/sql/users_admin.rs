//! The user directory in SQL, writing side (what moves to `UserAdmin`): create, update
//! and delete users, set passwords, put groups.
//!
//! Identifier uniqueness is enforced by the database, not read-then-write: each write
//! claims the user's canonical username and email as rows of
//! `authflow_user_identifiers` with `INSERT … ON CONFLICT DO NOTHING` inside the
//! write's transaction; a claim that inserts nothing is taken by another user (a
//! concurrent claim waits for the other transaction, then sees its row), and the whole
//! write is rolled back.

use sqlx::AnyConnection;

use super::users::{USER_COLUMNS, uid};
use super::{SqlStore, int, is_unique_violation, unavailable};
use crate::model::{UserId, ValidationErrors};
use crate::secret::Password;
use crate::store::{Group, NewUser, StoreError, User, canonical_identifier, validate_username};

fn invalid(field: &str, message: &str) -> StoreError {
    StoreError::Validation(ValidationErrors::field(field, message))
}

/// Inserts one identifier claim; `false` when another user holds it.
async fn claim(conn: &mut AnyConnection, identifier: &str, pk: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO authflow_user_identifiers (identifier, user_pk) VALUES ($1, $2) \
         ON CONFLICT (identifier) DO NOTHING",
    )
    .bind(identifier)
    .bind(pk)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected() == 1)
}

/// Claims the canonical username and email of `user` (whose own claims were removed
/// first). On a clash returns the errors the memory directory gives.
async fn claim_identifiers(conn: &mut AnyConnection, user: &User) -> Result<(), StoreError> {
    let pk = uid(&user.pk);
    let username = canonical_identifier(&user.username);
    let email = Some(canonical_identifier(&user.email)).filter(|e| !e.is_empty());
    let username_taken = !claim(conn, &username, &pk).await?;
    let email_taken = match &email {
        Some(e) if *e == username => username_taken,
        Some(e) => !claim(conn, e, &pk).await?,
        None => false,
    };
    let mut errors = ValidationErrors::new();
    if username_taken {
        errors.add("username", "Username is already taken.");
    }
    if email_taken {
        errors.add("email", "Email address is already in use.");
    }
    errors.into_result().map_err(StoreError::Validation)
}

async fn write_memberships(conn: &mut AnyConnection, user: &User) -> Result<(), StoreError> {
    let pk = uid(&user.pk);
    sqlx::query("DELETE FROM authflow_group_members WHERE user_pk = $1")
        .bind(pk.as_str())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    let mut seen = std::collections::HashSet::new();
    for (position, g) in user.groups.iter().enumerate() {
        if !seen.insert(*g) {
            continue;
        }
        sqlx::query(
            "INSERT INTO authflow_group_members (user_pk, group_pk, position) VALUES ($1, $2, $3)",
        )
        .bind(pk.as_str())
        .bind(g.to_string())
        .bind(int(position as u64))
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

fn attributes_json(user: &User) -> Result<String, StoreError> {
    serde_json::to_string(&user.attributes).map_err(unavailable)
}

impl SqlStore {
    pub(crate) async fn store_hash(
        &self,
        pk: &str,
        hash: Option<String>,
    ) -> Result<u64, StoreError> {
        self.bounded(
            sqlx::query("UPDATE authflow_users SET password_hash = $1 WHERE pk = $2")
                .bind(hash)
                .bind(pk)
                .execute(&self.pool),
        )
        .await
        .map(|r| r.rows_affected())
    }

    /// Imports a user with an existing hash (e.g. Django `pbkdf2_sha256$…` from
    /// authentik), with the identifier rules of
    /// [`UserAdmin::create_user`](crate::store::UserAdmin::create_user).
    pub async fn import_user(&self, user: User, hash: Option<String>) -> Result<(), StoreError> {
        validate_username(&user.username).map_err(|m| invalid("username", m))?;
        self.insert_user(&user, hash).await
    }

    async fn insert_user(&self, user: &User, hash: Option<String>) -> Result<(), StoreError> {
        let attributes = attributes_json(user)?;
        self.deadline(async {
            let mut tx = self.pool.begin().await.map_err(unavailable)?;
            let done = sqlx::query(&format!(
                "INSERT INTO authflow_users ({USER_COLUMNS}, password_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (pk) DO NOTHING"
            ))
            .bind(uid(&user.pk))
            .bind(user.username.as_str())
            .bind(user.name.as_str())
            .bind(user.email.as_str())
            .bind(i64::from(user.is_active))
            .bind(user.path.as_str())
            .bind(user.user_type.as_str())
            .bind(attributes)
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            if done.rows_affected() == 0 {
                return Err(invalid("username", "Username is already taken."));
            }
            // An error drops `tx`: nothing of the user is written.
            claim_identifiers(&mut tx, user).await?;
            write_memberships(&mut tx, user).await?;
            tx.commit().await.map_err(unavailable)
        })
        .await
    }

    pub(crate) async fn admin_set_password(
        &self,
        user: UserId,
        password: &Password,
    ) -> Result<(), StoreError> {
        let hash = self
            .config
            .hasher
            .hash(password.expose())
            .map_err(StoreError::Unavailable)?;
        match self.store_hash(&uid(&user), Some(hash)).await? {
            0 => Err(StoreError::NotFound(format!("user `{user}`"))),
            _ => Ok(()),
        }
    }

    pub(crate) async fn admin_create_user(&self, new: NewUser) -> Result<User, StoreError> {
        validate_username(&new.username).map_err(|m| invalid("username", m))?;
        let hash = match &new.password {
            Some(p) => Some(
                self.config
                    .hasher
                    .hash(p.expose())
                    .map_err(StoreError::Unavailable)?,
            ),
            None => None,
        };
        let user = User {
            pk: new.pk.unwrap_or_else(UserId::new_v4),
            username: new.username,
            name: new.name,
            email: new.email,
            is_active: new.is_active,
            path: new.path,
            user_type: new.user_type,
            attributes: new.attributes,
            groups: new.groups,
        };
        self.insert_user(&user, hash).await?;
        Ok(user)
    }

    pub(crate) async fn admin_update_user(&self, user: &User) -> Result<(), StoreError> {
        validate_username(&user.username).map_err(|m| invalid("username", m))?;
        let attributes = attributes_json(user)?;
        self.deadline(async {
            let mut tx = self.pool.begin().await.map_err(unavailable)?;
            let pk = uid(&user.pk);
            let done = sqlx::query(
                "UPDATE authflow_users SET username = $1, name = $2, email = $3, is_active = $4, \
                 path = $5, user_type = $6, attributes = $7 WHERE pk = $8",
            )
            .bind(user.username.as_str())
            .bind(user.name.as_str())
            .bind(user.email.as_str())
            .bind(i64::from(user.is_active))
            .bind(user.path.as_str())
            .bind(user.user_type.as_str())
            .bind(attributes)
            .bind(pk.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            sqlx::query("DELETE FROM authflow_user_identifiers WHERE user_pk = $1")
                .bind(pk.as_str())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            claim_identifiers(&mut tx, user).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("user `{}`", user.pk)));
            }
            write_memberships(&mut tx, user).await?;
            tx.commit().await.map_err(unavailable)
        })
        .await
    }

    pub(crate) async fn admin_delete_user(&self, pk: UserId) -> Result<bool, StoreError> {
        self.deadline(async {
            let mut tx = self.pool.begin().await.map_err(unavailable)?;
            let pk = uid(&pk);
            for table in ["authflow_user_identifiers", "authflow_group_members"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE user_pk = $1"))
                    .bind(pk.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            let done = sqlx::query("DELETE FROM authflow_users WHERE pk = $1")
                .bind(pk.as_str())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    pub(crate) async fn admin_put_group(&self, group: Group) -> Result<(), StoreError> {
        let attributes = serde_json::to_string(&group.attributes).map_err(unavailable)?;
        let result = tokio::time::timeout(
            self.config.timeout,
            sqlx::query(
                "INSERT INTO authflow_groups (pk, name, parent_pk, is_superuser, attributes) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (pk) DO UPDATE SET name = excluded.name, \
                 parent_pk = excluded.parent_pk, is_superuser = excluded.is_superuser, \
                 attributes = excluded.attributes",
            )
            .bind(group.pk.to_string())
            .bind(group.name.as_str())
            .bind(group.parent.map(|p| p.to_string()))
            .bind(i64::from(group.is_superuser))
            .bind(attributes)
            .execute(&self.pool),
        )
        .await;
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if is_unique_violation(&e) => {
                Err(invalid("name", "group with this name already exists."))
            }
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("timed out")),
        }
    }
}
