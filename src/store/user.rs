//! Users and groups as the engine sees them. Password hashes stay inside the
//! [`UserDirectory`](super::UserDirectory) and never appear here.

use serde::{Deserialize, Serialize};

use crate::model::{GroupId, UserId};
use crate::secret::Password;

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Primary key.
    pub pk: UserId,
    /// Unique username.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Email address.
    #[serde(default)]
    pub email: String,
    /// Inactive users cannot log in.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Path (authentik's folder-like grouping).
    #[serde(default)]
    pub path: String,
    /// Type (`internal`, `external`, `service_account`, …).
    #[serde(default)]
    pub user_type: String,
    /// Free-form attributes (`attributes.upn` is matched by identification).
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Direct group memberships.
    #[serde(default)]
    pub groups: Vec<GroupId>,
}

fn yes() -> bool {
    true
}

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// The id to use (`None`: a fresh random one).
    pub pk: Option<UserId>,
    /// Unique username (required, non-empty).
    pub username: String,
    /// Display name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Active flag.
    pub is_active: bool,
    /// Path.
    pub path: String,
    /// Type.
    pub user_type: String,
    /// Attributes.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Direct group memberships.
    pub groups: Vec<GroupId>,
    /// Initial password; `None` leaves the password unusable.
    pub password: Option<Password>,
}

impl NewUser {
    /// An active internal user with this username.
    pub fn new(username: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            is_active: true,
            user_type: "internal".into(),
            ..Self::default()
        }
    }

    /// Sets the email.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = email.into();
        self
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the password.
    pub fn password(mut self, password: impl Into<Password>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds a group.
    pub fn group(mut self, group: GroupId) -> Self {
        self.groups.push(group);
        self
    }
}

/// A group. Members of a child group count as members of its ancestors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Primary key.
    pub pk: GroupId,
    /// Unique name.
    pub name: String,
    /// Parent group.
    #[serde(default)]
    pub parent: Option<GroupId>,
    /// Members are superusers.
    #[serde(default)]
    pub is_superuser: bool,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl Group {
    /// A group with a fresh id.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            pk: GroupId::new(),
            name: name.into(),
            parent: None,
            is_superuser: false,
            attributes: Default::default(),
        }
    }

    /// Makes members superusers.
    pub fn superuser(mut self) -> Self {
        self.is_superuser = true;
        self
    }

    /// Sets the parent group.
    pub fn child_of(mut self, parent: GroupId) -> Self {
        self.parent = Some(parent);
        self
    }
}
