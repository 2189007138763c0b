//! Users

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::hashing::{Argon2idHasher, PasswordHashing};
use crate::model::{GroupId, UserField, UserId, ValidationErrors};
use crate::secret::Password;
use crate::store::{
    Group, NewUser, StoreError, User, UserAdmin, UserDirectory, canonical_identifier,
    validate_username,
};

use super::poisoned;

struct UserRecord {
    user: User,
    hash: Option<String>,
}

/// Users and groups in memory; passwords hashed with argon2id by default. Implements
/// both [`UserDirectory`] and [`UserAdmin`] (its [`UserDirectory::admin`] is itself).
pub struct MemoryUserDirectory {
    users: RwLock<HashMap<UserId, UserRecord>>,
    groups: RwLock<HashMap<GroupId, Group>>,
    hasher: Arc<dyn PasswordHashing>,
    dummy_hash: String,
}

impl Default for MemoryUserDirectory {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryUserDirectory {
    /// An empty directory hashing with argon2id.
    pub fn new() -> Self {
        Self::with_hasher(Arc::new(Argon2idHasher))
    }

    /// An empty directory with another hasher.
    pub fn with_hasher(hasher: Arc<dyn PasswordHashing>) -> Self {
        // Unknown users are verified against this hash so they cost the same work.
        let dummy_hash = hasher
            .hash(&uuid::Uuid::new_v4().to_string())
            .unwrap_or_default();
        Self {
            users: RwLock::new(HashMap::new()),
            groups: RwLock::new(HashMap::new()),
            hasher,
            dummy_hash,
        }
    }

    /// Imports a user with an existing hash (e.g. Django `pbkdf2_sha256$…` from authentik).
    ///
    /// The same identifier rules as [`UserAdmin::create_user`] apply.
    pub fn import_user(&self, user: User, hash: Option<String>) -> Result<(), StoreError> {
        let mut users = self.users.write().map_err(|_| poisoned())?;
        check_identifiers(&users, &user)?;
        users.insert(user.pk.clone(), UserRecord { user, hash });
        Ok(())
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.read().map(|u| u.len()).unwrap_or(0)
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The directory's identifier rules, checked under the write lock together with the
/// write (so two concurrent enrollments cannot both take one identifier): a valid
/// username ([`validate_username`]); usernames and emails unique after
/// [`canonical_identifier`] (NFKC + case folding) *across both fields* — no user's
/// username or email may equal another user's username or email, so an identifier
/// never names two accounts (an email shaped like someone's username cannot take
/// their logins over).
fn check_identifiers(users: &HashMap<UserId, UserRecord>, user: &User) -> Result<(), StoreError> {
    validate_username(&user.username)
        .map_err(|m| StoreError::Validation(ValidationErrors::field("username", m)))?;
    let username = canonical_identifier(&user.username);
    let email = Some(canonical_identifier(&user.email)).filter(|e| !e.is_empty());
    let (mut username_taken, mut email_taken) = (false, false);
    for other in users.values().map(|r| &r.user).filter(|u| u.pk != user.pk) {
        let theirs = [
            Some(canonical_identifier(&other.username)),
            Some(canonical_identifier(&other.email)).filter(|e| !e.is_empty()),
        ];
        username_taken |= theirs.iter().flatten().any(|t| *t == username);
        email_taken |= email
            .as_ref()
            .is_some_and(|e| theirs.iter().flatten().any(|t| t == e));
    }
    let mut errors = ValidationErrors::new();
    if username_taken {
        errors.add("username", "Username is already taken.");
    }
    if email_taken {
        errors.add("email", "Email address is already in use.");
    }
    errors.into_result().map_err(StoreError::Validation)
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

#[async_trait]
impl UserDirectory for MemoryUserDirectory {
    async fn user(&self, pk: UserId) -> Result<Option<User>, StoreError> {
        Ok(self
            .users
            .read()
            .map_err(|_| poisoned())?
            .get(&pk)
            .map(|r| r.user.clone()))
    }

    async fn find_user(
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
        let users = self.users.read().map_err(|_| poisoned())?;
        let mut found = users
            .values()
            .map(|r| &r.user)
            .filter(|u| match field_value(u, field) {
                Some(v) if case_insensitive => canonical_identifier(v) == want,
                Some(v) => v.trim().nfkc().eq(want.chars()),
                None => false,
            });
        // Never pick one of several by map order: an ambiguous value matches no one.
        match (found.next(), found.next()) {
            (Some(u), None) => Ok(Some(u.clone())),
            _ => Ok(None),
        }
    }

    async fn verify_password(
        &self,
        user: Option<UserId>,
        password: &Password,
    ) -> Result<bool, StoreError> {
        let hash = match &user {
            Some(pk) => self
                .users
                .read()
                .map_err(|_| poisoned())?
                .get(pk)
                .and_then(|r| r.hash.clone()),
            None => None,
        };
        let Some(hash) = hash else {
            // Same work as a real check, then fail.
            let _ = self.hasher.verify(&self.dummy_hash, password.expose());
            return Ok(false);
        };
        let ok = self.hasher.verify(&hash, password.expose());
        if ok && self.hasher.needs_rehash(&hash) {
            if let (Some(pk), Ok(new)) = (&user, self.hasher.hash(password.expose())) {
                if let Some(r) = self.users.write().map_err(|_| poisoned())?.get_mut(pk) {
                    r.hash = Some(new);
                }
            }
        }
        Ok(ok)
    }

    async fn group(&self, pk: GroupId) -> Result<Option<Group>, StoreError> {
        Ok(self
            .groups
            .read()
            .map_err(|_| poisoned())?
            .get(&pk)
            .cloned())
    }

    async fn find_group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        Ok(self
            .groups
            .read()
            .map_err(|_| poisoned())?
            .values()
            .find(|g| g.name == name)
            .cloned())
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
        let direct = match self.users.read().map_err(|_| poisoned())?.get(&user) {
            Some(r) => r.user.groups.clone(),
            None => return Ok(Vec::new()),
        };
        let groups = self.groups.read().map_err(|_| poisoned())?;
        let mut out: Vec<Group> = Vec::new();
        for g in direct {
            let mut cur = groups.get(&g);
            // Parent chains are walked at most 64 deep (a cycle cannot hang us).
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

    fn admin(&self) -> Option<&dyn UserAdmin> {
        Some(self)
    }
}

#[async_trait]
impl UserAdmin for MemoryUserDirectory {
    async fn set_password(&self, user: UserId, password: &Password) -> Result<(), StoreError> {
        let hash = self
            .hasher
            .hash(password.expose())
            .map_err(StoreError::Unavailable)?;
        let mut users = self.users.write().map_err(|_| poisoned())?;
        let r = users
            .get_mut(&user)
            .ok_or_else(|| StoreError::NotFound(format!("user `{user}`")))?;
        r.hash = Some(hash);
        Ok(())
    }

    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        validate_username(&new.username)
            .map_err(|m| StoreError::Validation(ValidationErrors::field("username", m)))?;
        let hash = match &new.password {
            Some(p) => Some(
                self.hasher
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
        let mut users = self.users.write().map_err(|_| poisoned())?;
        if users.contains_key(&user.pk) {
            return Err(StoreError::Validation(ValidationErrors::field(
                "username",
                "Username is already taken.",
            )));
        }
        check_identifiers(&users, &user)?;
        users.insert(
            user.pk.clone(),
            UserRecord {
                user: user.clone(),
                hash,
            },
        );
        Ok(user)
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let mut users = self.users.write().map_err(|_| poisoned())?;
        check_identifiers(&users, user)?;
        let r = users
            .get_mut(&user.pk)
            .ok_or_else(|| StoreError::NotFound(format!("user `{}`", user.pk)))?;
        r.user = user.clone();
        Ok(())
    }

    async fn delete_user(&self, pk: UserId) -> Result<bool, StoreError> {
        Ok(self
            .users
            .write()
            .map_err(|_| poisoned())?
            .remove(&pk)
            .is_some())
    }

    async fn put_group(&self, group: Group) -> Result<(), StoreError> {
        let mut groups = self.groups.write().map_err(|_| poisoned())?;
        if groups
            .values()
            .any(|g| g.name == group.name && g.pk != group.pk)
        {
            return Err(StoreError::Validation(ValidationErrors::field(
                "name",
                "group with this name already exists.",
            )));
        }
        groups.insert(group.pk, group);
        Ok(())
    }
}
