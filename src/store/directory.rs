//! The host's users: [`UserDirectory`], what the engine reads (three required methods,
//! enough for a login-only host), and [`UserAdmin`], the optional management a
//! directory offers through [`UserDirectory::admin`].

use async_trait::async_trait;

use super::{Group, NewUser, StoreError, User};
use crate::model::{GroupId, UserField, UserId};
use crate::secret::Password;

/// The host's users and groups, as the engine reads them.
///
/// A login-only host implements the three required methods ([`user`](Self::user),
/// [`find_user`](Self::find_user), [`verify_password`](Self::verify_password)). Groups
/// are optional: the default bodies answer that there are none, so group-membership
/// policies never match and no user is a superuser (superusers come from
/// [`Group::is_superuser`]; the admin API then refuses everyone). Management (creating,
/// updating and deleting users, setting passwords, writing groups) is a separate
/// [`UserAdmin`] the directory hands out through [`admin`](Self::admin); without one,
/// the stages and imports that need it deny with a message naming the operation
/// ([`StoreError::Unsupported`]).
///
/// A login-only directory over the host's own table, keyed by integers:
///
/// ```
/// use authflow::hashing::{DangerFastHasher, PasswordHashing, verify_dummy};
/// use authflow::model::{UserField, UserId};
/// use authflow::secret::Password;
/// use authflow::store::{StoreError, User, UserDirectory};
///
/// struct HostUsers {
///     rows: Vec<(i64, String, String)>, // id, username, password hash
///     hasher: DangerFastHasher,         // a real host uses argon2id
/// }
///
/// #[async_trait::async_trait]
/// impl UserDirectory for HostUsers {
///     async fn user(&self, pk: UserId) -> Result<Option<User>, StoreError> {
///         Ok(self.rows.iter().find(|r| UserId::from(r.0) == pk).map(|r| User::new(r.0, &r.1)))
///     }
///     async fn find_user(
///         &self,
///         field: UserField,
///         value: &str,
///         _case_insensitive: bool,
///     ) -> Result<Option<User>, StoreError> {
///         let row = match field {
///             UserField::Username => self.rows.iter().find(|r| r.1 == value),
///             _ => None,
///         };
///         Ok(row.map(|r| User::new(r.0, &r.1)))
///     }
///     async fn verify_password(
///         &self,
///         user: Option<UserId>,
///         password: &Password,
///     ) -> Result<bool, StoreError> {
///         let row = user.and_then(|pk| self.rows.iter().find(|r| UserId::from(r.0) == pk));
///         Ok(match row {
///             Some(r) => self.hasher.verify(&r.2, password.expose()),
///             // Same work for an unknown user, so timing does not tell.
///             None => verify_dummy(&self.hasher, password.expose()),
///         })
///     }
/// }
/// ```
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// A user by id.
    async fn user(&self, pk: UserId) -> Result<Option<User>, StoreError>;
    /// The one user whose `field` equals `value`: compared as
    /// [`canonical_identifier`](super::canonical_identifier) (NFKC + case folding) when `case_insensitive`, else
    /// NFKC-normalised only. `None` when no user or more than one matches — an ambiguous
    /// value must never pick one of them.
    async fn find_user(
        &self,
        field: UserField,
        value: &str,
        case_insensitive: bool,
    ) -> Result<Option<User>, StoreError>;
    /// Checks a password. With `None` (unknown user) it must do the same work as for a
    /// real user and answer `false`, so timing does not reveal whether a user exists
    /// ([`crate::hashing::verify_dummy`] does that work).
    async fn verify_password(
        &self,
        user: Option<UserId>,
        password: &Password,
    ) -> Result<bool, StoreError>;

    /// Every group the user is in, with all their ancestors. Default: none.
    async fn groups_of(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
        let _ = user;
        Ok(Vec::new())
    }
    /// A group by id. Default: none.
    async fn group(&self, pk: GroupId) -> Result<Option<Group>, StoreError> {
        let _ = pk;
        Ok(None)
    }
    /// A group by name. Default: none.
    async fn find_group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        let _ = name;
        Ok(None)
    }

    /// The directory's management, if it offers any. Default: `None` (read-only; the
    /// engine denies what needs management with [`StoreError::Unsupported`]).
    fn admin(&self) -> Option<&dyn UserAdmin> {
        None
    }
}

impl dyn UserDirectory + '_ {
    /// The directory's [`UserAdmin`] for `operation` (a phrase such as
    /// [`operation::CREATE_USER`]), or [`StoreError::Unsupported`] naming it.
    pub fn require_admin(&self, operation: &str) -> Result<&dyn UserAdmin, StoreError> {
        self.admin()
            .ok_or_else(|| StoreError::Unsupported(operation.to_owned()))
    }
}

/// The operations of [`UserAdmin`], as named in [`StoreError::Unsupported`] and in the
/// denial the user sees ("This server's user directory does not support creating
/// users.").
pub mod operation {
    /// [`UserAdmin::set_password`](super::UserAdmin::set_password).
    pub const SET_PASSWORD: &str = "setting passwords";
    /// [`UserAdmin::create_user`](super::UserAdmin::create_user).
    pub const CREATE_USER: &str = "creating users";
    /// [`UserAdmin::update_user`](super::UserAdmin::update_user).
    pub const UPDATE_USER: &str = "updating users";
    /// [`UserAdmin::delete_user`](super::UserAdmin::delete_user).
    pub const DELETE_USER: &str = "deleting users";
    /// [`UserAdmin::put_group`](super::UserAdmin::put_group).
    pub const PUT_GROUP: &str = "writing groups";
}

/// Managing the host's users (enrollment, password changes, account deletion, blueprint
/// imports), offered through [`UserDirectory::admin`].
///
/// A directory that supports only some of these answers the others with
/// [`StoreError::Unsupported`] (`StoreError::Unsupported(operation::DELETE_USER.into())`).
///
/// Identifier rules: directories enforce, atomically with the write (a unique index, or
/// the check under the write lock), that usernames and emails compared as
/// [`canonical_identifier`](super::canonical_identifier) are unique *across both fields* (no user's username or
/// email equals another user's username or email) and that the username passes
/// [`validate_username`](super::validate_username). A violation is a [`StoreError::Validation`] on `username` or
/// `email`.
#[async_trait]
pub trait UserAdmin: Send + Sync {
    /// Sets a user's password.
    async fn set_password(&self, user: UserId, password: &Password) -> Result<(), StoreError>;
    /// Creates a user, with the identifier rules above. `user.pk == None` lets the
    /// directory choose the id.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    /// Updates a user's fields (not the password), with the identifier rules above.
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;
    /// Deletes a user. Returns whether it existed.
    async fn delete_user(&self, pk: UserId) -> Result<bool, StoreError>;
    /// Creates or replaces a group (names are unique).
    async fn put_group(&self, group: Group) -> Result<(), StoreError>;
}
