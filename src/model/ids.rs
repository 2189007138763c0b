//! Typed identifiers: newtypes over [`Uuid`] so that a flow id can never be
//! passed where a stage id is expected.

use std::fmt;
use std::str::FromStr;

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
    /// Identifies a [`User`](crate::store::User).
    UserId
);
id_type!(
    /// Identifies a [`Group`](crate::store::Group).
    GroupId
);
