//! The user directory in SQL, reading side: users, lookups, password checks, groups.
//! The writes (the admin side) are in `users_admin.rs`; the
//! [`UserDirectory`] impl at the end of this file delegates to both, grouped so that
//! the coming `UserDirectory` / `UserAdmin` split is a move of the admin methods.
//!
//! Tables: `authflow_users` (one row per user, attributes as JSON, the password hash),
//! `authflow_user_identifiers` (each user's canonical username and email: its primary
//! key makes identifiers unique across both fields, atomically with the write),
//! `authflow_groups` (with `parent_pk`) and `authflow_group_members` (ordered by
//! `position`). Ids are stored as `TEXT`.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, corrupt, unavailable};
use crate::model::{GroupId, UserField, UserId};
use crate::secret::Password;
use crate::store::{
    Group, NewUser, StoreError, User, UserAdmin, UserDirectory, canonical_identifier,
};

/// A user id as stored (`TEXT`).
pub(crate) fn uid(u: &UserId) -> String {
    u.to_string()
}

/// A stored user id.
pub(crate) fn parse_uid(s: &str) -> Result<UserId, StoreError> {
    s.parse().map_err(|e| corrupt("user id", e))
}

/// A stored group id.
pub(crate) fn parse_gid(s: &str) -> Result<GroupId, StoreError> {
    s.parse().map_err(|e| corrupt("group id", e))
}

fn attributes(
    what: &str,
    raw: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
    serde_json::from_str(raw).map_err(|e| corrupt(what, e))
}

pub(crate) const USER_COLUMNS: &str =
    "pk, username, name, email, is_active, path, user_type, attributes";

fn user_of(row: &AnyRow) -> Result<User, StoreError> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(unavailable);
    Ok(User {
        pk: parse_uid(&get("pk")?)?,
        username: get("username")?,
        name: get("name")?,
        email: get("email")?,
        is_active: row.try_get::<i64, _>("is_active").map_err(unavailable)? != 0,
        path: get("path")?,
        user_type: get("user_type")?,
        attributes: attributes("user attributes", &get("attributes")?)?,
        groups: Vec::new(),
    })
}

fn group_of(row: &AnyRow) -> Result<Group, StoreError> {
    let get = |c: &str| row.try_get::<String, _>(c).map_err(unavailable);
    let parent: Option<String> = row.try_get("parent_pk").map_err(unavailable)?;
    Ok(Group {
        pk: parse_gid(&get("pk")?)?,
        name: get("name")?,
        parent: parent.as_deref().map(parse_gid).transpose()?,
        is_superuser: row.try_get::<i64, _>("is_superuser").map_err(unavailable)? != 0,
        attributes: attributes("group attributes", &get("attributes")?)?,
    })
}

fn field_value(user: &User, field: UserField) -> Option<&str> {
    match field {
        UserField::Username => Some(&user.username),
        UserField::Email => Some(&user.email)
            .filter(|e| !e.is_empty())
            .map(String::as_str),
        UserField::Upn => user.attributes.get("upn").and_then(|v| v.as_str()),
    }
}

const GROUP_COLUMNS: &str = "pk, name, parent_pk, is_superuser, attributes";

impl SqlStore {
    async fn direct_groups(&self, user: &str) -> Result<Vec<GroupId>, StoreError> {
        let rows = self
            .bounded(
                sqlx::query(
                    "SELECT group_pk FROM authflow_group_members WHERE user_pk = $1 \
                     ORDER BY position",
                )
                .bind(user)
                .fetch_all(&self.pool),
            )
            .await?;
        rows.iter()
            .map(|r| parse_gid(&r.try_get::<String, _>("group_pk").map_err(unavailable)?))
            .collect()
    }

    async fn user_by_text(&self, pk: &str) -> Result<Option<User>, StoreError> {
        let row = self
            .bounded(
                sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM authflow_users WHERE pk = $1"
                ))
                .bind(pk)
                .fetch_optional(&self.pool),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut user = user_of(&row)?;
        user.groups = self.direct_groups(pk).await?;
        Ok(Some(user))
    }

    /// Number of users.
    pub async fn user_count(&self) -> Result<u64, StoreError> {
        let row = self
            .bounded(sqlx::query("SELECT COUNT(*) AS n FROM authflow_users").fetch_one(&self.pool))
            .await?;
        row.try_get::<i64, _>("n")
            .map(super::uint)
            .map_err(unavailable)
    }

    pub(crate) async fn read_user(&self, pk: UserId) -> Result<Option<User>, StoreError> {
        self.user_by_text(&uid(&pk)).await
    }

    pub(crate) async fn read_find_user(
        &self,
        field: UserField,
        value: &str,
        case_insensitive: bool,
    ) -> Result<Option<User>, StoreError> {
        use unicode_normalization::UnicodeNormalization;
        let want = if case_insensitive {
            canonical_identifier(value)
        } else {
            value.trim().nfkc().collect()
        };
        if want.is_empty() {
            return Ok(None);
        }
        let matches = |u: &User| match field_value(u, field) {
            Some(v) if case_insensitive => canonical_identifier(v) == want,
            Some(v) => v.trim().nfkc().eq(want.chars()),
            None => false,
        };
        let candidates: Vec<String> = match field {
            // NFKC-equal values are equal canonically too: the identifier index finds
            // the one user who can match, across usernames and emails.
            UserField::Username | UserField::Email => self
                .bounded(
                    sqlx::query(
                        "SELECT user_pk FROM authflow_user_identifiers WHERE identifier = $1",
                    )
                    .bind(canonical_identifier(value))
                    .fetch_all(&self.pool),
                )
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("user_pk").map_err(unavailable))
                .collect::<Result<_, _>>()?,
            UserField::Upn => self
                .bounded(
                    sqlx::query("SELECT pk FROM authflow_users WHERE attributes LIKE $1")
                        .bind("%\"upn\"%")
                        .fetch_all(&self.pool),
                )
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("pk").map_err(unavailable))
                .collect::<Result<_, _>>()?,
        };
        let mut found = None;
        for pk in candidates {
            if let Some(u) = self.user_by_text(&pk).await?.filter(|u| matches(u)) {
                if found.is_some() {
                    // Never pick one of several: an ambiguous value matches no one.
                    return Ok(None);
                }
                found = Some(u);
            }
        }
        Ok(found)
    }

    pub(crate) async fn read_verify_password(
        &self,
        user: Option<UserId>,
        password: &Password,
    ) -> Result<bool, StoreError> {
        let hash: Option<String> = match &user {
            Some(pk) => self
                .bounded(
                    sqlx::query("SELECT password_hash FROM authflow_users WHERE pk = $1")
                        .bind(uid(pk))
                        .fetch_optional(&self.pool),
                )
                .await?
                .map(|r| r.try_get::<Option<String>, _>("password_hash"))
                .transpose()
                .map_err(unavailable)?
                .flatten(),
            None => None,
        };
        let hasher = &self.config.hasher;
        let Some(hash) = hash else {
            // Same work as a real check, then fail.
            let _ = hasher.verify(&self.dummy_hash, password.expose());
            return Ok(false);
        };
        let ok = hasher.verify(&hash, password.expose());
        if ok && hasher.needs_rehash(&hash) {
            if let (Some(pk), Ok(new)) = (user.as_ref(), hasher.hash(password.expose())) {
                self.store_hash(&uid(pk), Some(new)).await?;
            }
        }
        Ok(ok)
    }

    pub(crate) async fn read_group(&self, pk: GroupId) -> Result<Option<Group>, StoreError> {
        self.bounded(
            sqlx::query(&format!(
                "SELECT {GROUP_COLUMNS} FROM authflow_groups WHERE pk = $1"
            ))
            .bind(pk.to_string())
            .fetch_optional(&self.pool),
        )
        .await?
        .as_ref()
        .map(group_of)
        .transpose()
    }

    pub(crate) async fn read_find_group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        self.bounded(
            sqlx::query(&format!(
                "SELECT {GROUP_COLUMNS} FROM authflow_groups WHERE name = $1"
            ))
            .bind(name)
            .fetch_optional(&self.pool),
        )
        .await?
        .as_ref()
        .map(group_of)
        .transpose()
    }

    pub(crate) async fn read_groups_of(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
        let pk = uid(&user);
        let direct = self.direct_groups(&pk).await?;
        if direct.is_empty() {
            return Ok(Vec::new());
        }
        // The direct groups and all their ancestors in one query (UNION stops cycles).
        let rows = self
            .bounded(
                sqlx::query(&format!(
                    "WITH RECURSIVE chain (pk) AS ( \
                       SELECT group_pk FROM authflow_group_members WHERE user_pk = $1 \
                       UNION \
                       SELECT g.parent_pk FROM authflow_groups g JOIN chain c ON g.pk = c.pk \
                       WHERE g.parent_pk IS NOT NULL) \
                     SELECT {GROUP_COLUMNS} FROM authflow_groups \
                     WHERE pk IN (SELECT pk FROM chain)"
                ))
                .bind(pk)
                .fetch_all(&self.pool),
            )
            .await?;
        let groups: std::collections::HashMap<GroupId, Group> = rows
            .iter()
            .map(|r| group_of(r).map(|g| (g.pk, g)))
            .collect::<Result<_, _>>()?;
        // The memory directory's order: each direct group, then its ancestors.
        let mut out: Vec<Group> = Vec::new();
        for g in direct {
            let mut cur = groups.get(&g);
            for _ in 0..64 {
                let Some(group) = cur else { break };
                if out.iter().any(|o| o.pk == group.pk) {
                    break;
                }
                out.push(group.clone());
                cur = group.parent.and_then(|p| groups.get(&p));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl UserDirectory for SqlStore {
    // Reading (stays in `UserDirectory`).

    async fn user(&self, pk: UserId) -> Result<Option<User>, StoreError> {
        self.read_user(pk).await
    }

    async fn find_user(
        &self,
        field: UserField,
        value: &str,
        case_insensitive: bool,
    ) -> Result<Option<User>, StoreError> {
        self.read_find_user(field, value, case_insensitive).await
    }

    async fn verify_password(
        &self,
        user: Option<UserId>,
        password: &Password,
    ) -> Result<bool, StoreError> {
        self.read_verify_password(user, password).await
    }

    async fn group(&self, pk: GroupId) -> Result<Option<Group>, StoreError> {
        self.read_group(pk).await
    }

    async fn find_group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        self.read_find_group(name).await
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
        self.read_groups_of(user).await
    }

    fn admin(&self) -> Option<&dyn UserAdmin> {
        Some(self)
    }
}

/// Management (`users_admin.rs`).
#[async_trait]
impl UserAdmin for SqlStore {
    async fn set_password(&self, user: UserId, password: &Password) -> Result<(), StoreError> {
        self.admin_set_password(user, password).await
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.admin_create_user(user).await
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        self.admin_update_user(user).await
    }

    async fn delete_user(&self, pk: UserId) -> Result<bool, StoreError> {
        self.admin_delete_user(pk).await
    }

    async fn put_group(&self, group: Group) -> Result<(), StoreError> {
        self.admin_put_group(group).await
    }
}
