//! Typed identifiers: newtypes over [`Uuid`] so that a flow id can never be
//! passed where a stage id is expected, and [`UserId`], an opaque string holding the
//! host's own user key.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// Wraps an existing [`Uuid`].
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying [`Uuid`].
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

id_type!(
    /// Identifies a [`Flow`](crate::model::Flow) (authentik's `flow_uuid` / `pk`).
    FlowId
);
id_type!(
    /// Identifies a [`Stage`](crate::model::Stage) (authentik's `stage_uuid`).
    StageId
);
id_type!(
    /// Identifies a [`FlowStageBinding`](crate::model::FlowStageBinding) (authentik's `fsb_uuid`).
    BindingId
);
id_type!(
    /// Identifies a [`Policy`](crate::model::Policy) (authentik's `policy_uuid`).
    PolicyId
);
id_type!(
    /// Identifies a [`PolicyBinding`](crate::model::PolicyBinding).
    PolicyBindingId
);
id_type!(
    /// Identifies a [`Prompt`](crate::model::Prompt) field definition.
    PromptId
);
id_type!(
    /// Identifies a [`Group`](crate::store::Group).
    GroupId
);

/// Identifies a [`User`](crate::store::User): the host's own key, held as it is (an
/// integer, a UUID, a username, …) as an opaque string.
///
/// Ids are compared as strings: `UserId::from(42_i64)` equals `UserId::from("42")`.
/// They serialise as a plain string, so sessions and blueprints written when user ids
/// were UUIDs still read back (a UUID id is its hyphenated lower-case form).
/// [`crate::memory::MemoryUserDirectory`] and the blueprint importer give new users
/// [`UserId::new_v4`] ids.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Wraps the host's key.
    pub fn new(id: impl Into<String>) -> Self {
        Self(Arc::from(id.into()))
    }

    /// A fresh random id: a UUIDv4 in its hyphenated form.
    pub fn new_v4() -> Self {
        Self::from(Uuid::new_v4())
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key parsed as a [`Uuid`], when it is one (ids of the memory directory and
    /// of blueprint imports are).
    pub fn to_uuid(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.0).ok()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", &*self.0)
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for UserId {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(s))
    }
}

impl From<String> for UserId {
    fn from(id: String) -> Self {
        Self(Arc::from(id))
    }
}

impl From<&str> for UserId {
    fn from(id: &str) -> Self {
        Self(Arc::from(id))
    }
}

impl From<&String> for UserId {
    fn from(id: &String) -> Self {
        Self::from(id.as_str())
    }
}

impl From<i64> for UserId {
    fn from(id: i64) -> Self {
        Self::from(id.to_string())
    }
}

impl From<u64> for UserId {
    fn from(id: u64) -> Self {
        Self::from(id.to_string())
    }
}

impl From<i32> for UserId {
    fn from(id: i32) -> Self {
        Self::from(id.to_string())
    }
}

impl From<u32> for UserId {
    fn from(id: u32) -> Self {
        Self::from(id.to_string())
    }
}

impl From<Uuid> for UserId {
    fn from(id: Uuid) -> Self {
        Self::from(id.hyphenated().to_string())
    }
}

impl Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = UserId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a user id (a string or an integer)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UserId, E> {
                Ok(UserId::from(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<UserId, E> {
                Ok(UserId::from(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<UserId, E> {
                Ok(UserId::from(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_the_hosts_keys() {
        assert_eq!(UserId::from(42_i64), UserId::from("42"));
        assert_eq!(UserId::from(42_u64).as_str(), "42");
        let uuid = Uuid::parse_str("7F1B0C3E-9A2D-4E5F-8A6B-1C2D3E4F5A6B").unwrap();
        let id = UserId::from(uuid);
        assert_eq!(id.to_string(), "7f1b0c3e-9a2d-4e5f-8a6b-1c2d3e4f5a6b");
        assert_eq!(id.to_uuid(), Some(uuid));
        assert_eq!(UserId::new("alice").to_uuid(), None);
        assert_eq!("x".parse::<UserId>().unwrap(), UserId::new("x"));
    }

    #[test]
    fn user_ids_serialise_as_plain_strings() {
        let id = UserId::from(7_i64);
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""7""#);
        let back: UserId = serde_json::from_str(r#""7""#).unwrap();
        assert_eq!(back, id);
        // Integers on the wire (a host's own JSON) read as the same id.
        let int: UserId = serde_json::from_str("7").unwrap();
        assert_eq!(int, id);
    }
}
