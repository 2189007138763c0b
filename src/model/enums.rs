//! The enumerations of authentik's flow model. Their serde names are the wire and
//! database values authentik uses.

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal),+ $(,)? } default $default:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every value, in authentik's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire value (`"retry"`, `"authentication"`, …).
            pub const fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $wire,)+ }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::model::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    other => Err(crate::model::UnknownValue {
                        kind: stringify!($name),
                        value: other.to_owned(),
                    }),
                }
            }
        }
    };
}

wire_enum!(
    /// What a flow is for (`designation`).
    FlowDesignation {
        /// Log a user in.
        Authentication = "authentication",
        /// Authorize an application (consent).
        Authorization = "authorization",
        /// Log a user out.
        Invalidation = "invalidation",
        /// Create an account.
        Enrollment = "enrollment",
        /// Delete one's own account.
        Unenrollment = "unenrollment",
        /// Recover access (password reset).
        Recovery = "recovery",
        /// Configure a stage, e.g. change a password or set up MFA.
        StageConfiguration = "stage_configuration",
    } default StageConfiguration
);

wire_enum!(
    /// Who may start a flow (`authentication`).
    AuthenticationRequirement {
        /// Anyone.
        None = "none",
        /// Only logged-in users.
        RequireAuthenticated = "require_authenticated",
        /// Only anonymous users.
        RequireUnauthenticated = "require_unauthenticated",
        /// Only superusers.
        RequireSuperuser = "require_superuser",
        /// Only when reached through a redirect stage of another flow.
        RequireRedirect = "require_redirect",
        /// Only requests made by an outpost.
        RequireOutpost = "require_outpost",
    } default None
);

wire_enum!(
    /// How a set of policy bindings combines (`policy_engine_mode`).
    PolicyEngineMode {
        /// Every binding must pass.
        All = "all",
        /// One passing binding is enough (authentik's default).
        Any = "any",
    } default Any
);

wire_enum!(
    /// What happens when a flow does not apply to the request (`denied_action`).
    DeniedAction {
        /// Continue to `next` when one is given, else show the message.
        MessageContinue = "message_continue",
        /// Always show the message.
        Message = "message",
        /// Continue to `next`, or `/`.
        Continue = "continue",
    } default MessageContinue
);

wire_enum!(
    /// What an invalid response does (`invalid_response_action`).
    InvalidResponseAction {
        /// Show the same challenge again with `response_errors`.
        Retry = "retry",
        /// Plan the flow anew, dropping the context.
        Restart = "restart",
        /// Plan the flow anew, keeping the context.
        RestartWithContext = "restart_with_context",
    } default Retry
);

wire_enum!(
    /// The layout the flow interface uses (`layout`).
    FlowLayout {
        /// Default.
        Stacked = "stacked",
        /// Content on the left.
        ContentLeft = "content_left",
        /// Content on the right.
        ContentRight = "content_right",
        /// Sidebar on the left.
        SidebarLeft = "sidebar_left",
        /// Sidebar on the right.
        SidebarRight = "sidebar_right",
        /// Sidebar on the left, framed background.
        SidebarLeftFrameBackground = "sidebar_left_frame_background",
        /// Sidebar on the right, framed background.
        SidebarRightFrameBackground = "sidebar_right_frame_background",
    } default Stacked
);
