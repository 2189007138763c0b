//! Storage traits the host implements (or takes from [`crate::memory`]):
//! [`FlowSource`] and [`FlowAdmin`] (together [`FlowStore`]), [`SessionStore`], [`UserDirectory`] (with the optional [`UserAdmin`]), [`ReputationStore`] and
//! [`ThrottleStore`], [`AppPasswords`], [`DeviceStore`] and [`FlowTokens`].
//!
//! All are async and object-safe so hosts can hold `Arc<dyn …>`.

mod app_passwords;
mod definition;
mod devices;
mod directory;
mod flow_tokens;
mod invitations;
mod password_backend;
mod user;

use async_trait::async_trait;

pub(crate) use app_passwords::check_description;
pub use app_passwords::{
    AppPasswordInfo, AppPasswords, generate_identifier, generate_key, matching_digest,
    matching_digest_str,
};
pub use definition::*;
pub use devices::{Device, DeviceSecret, DeviceStore, DeviceUse, apply_use};
pub use directory::{UserAdmin, UserDirectory, operation};
pub use flow_tokens::{FlowToken, FlowTokens, TokenState, flow_token_digest, new_flow_token_key};
pub(crate) use invitations::duplicate as duplicate_invitation;
pub use invitations::{Invitation, InvitationStore};
pub use password_backend::PasswordBackend;
pub use user::*;

use crate::model::{
    BindingId, Flow, FlowDesignation, FlowStageBinding, Policy, PolicyBinding, PolicyBindingId,
    PolicyId, Stage, StageId, ValidationErrors,
};
use crate::plan::{SessionId, SessionState};

/// Errors of the storage traits.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A compare-and-swap write found a newer version: reload and retry.
    #[error("concurrent update: the stored version changed")]
    Conflict,
    /// The input is invalid; maps to authentik's HTTP 400 body.
    #[error("invalid input: {0}")]
    Validation(ValidationErrors),
    /// A referenced object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend cannot be reached or failed; nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Too much concurrent work (the password-hashing pool is full); nothing ran.
    /// The flow executor answers it with a challenge error, the HTTP API with 503.
    #[error("busy: too much concurrent work, try again")]
    Busy,
    /// The store does not support this operation (a login-only [`UserDirectory`]
    /// without [`UserAdmin`], or one that offers only part of it); the string names
    /// it ([`operation`]: "creating users"). Nothing was written. The flow executor
    /// answers it with a denial "This server's user directory does not support
    /// creating users.", the HTTP API with 403 `{"code": "unsupported"}`.
    #[error("unsupported: the user directory does not support {0}")]
    Unsupported(String),
}

/// What the engine reads of the flows: a flow's definition by slug and its revision.
///
/// [`FlowSource::flow`] returns a whole [`FlowDefinition`]; the engine caches it per
/// flow and checks [`FlowSource::revision`] on every request (or, with
/// [`EngineBuilder::revision_check_interval`](crate::EngineBuilder::revision_check_interval),
/// once per interval and after each of [`FlowSource::local_writes`]), so a store must bump the
/// revision of every flow a write touches (the flow, its bindings, its stages, the
/// policies bound to them). [`crate::catalogue::Catalogue`] does this bookkeeping.
#[async_trait]
pub trait FlowSource: Send + Sync {
    /// The loaded definition of the flow with this slug.
    async fn flow(&self, slug: &str) -> Result<Option<FlowDefinition>, StoreError>;
    /// The revision of the flow with this slug; changes whenever its definition does.
    async fn revision(&self, slug: &str) -> Result<Option<u64>, StoreError>;
    /// Every flow, ordered by slug.
    async fn flows(&self) -> Result<Vec<Flow>, StoreError>;

    /// A counter of the catalogue writes made through this store handle (and its
    /// clones) in this process, bumped after each commits. An engine with
    /// [`EngineBuilder::revision_check_interval`](crate::EngineBuilder::revision_check_interval)
    /// trusts a recently checked revision only while this is unchanged, so local edits
    /// are seen at once. Default: always 0 (the store does not count: edits are seen
    /// within the interval).
    fn local_writes(&self) -> u64 {
        0
    }

    /// Flows of one designation, ordered by slug.
    async fn flows_by_designation(
        &self,
        designation: FlowDesignation,
    ) -> Result<Vec<Flow>, StoreError> {
        Ok(self
            .flows()
            .await?
            .into_iter()
            .filter(|f| f.designation == designation)
            .collect())
    }
}

/// What admins (the HTTP API, blueprints, [`crate::defaults`]) write: flows, stages,
/// bindings and policies. Stores enforce the rules of [`crate::catalogue::Catalogue`]
/// (most simply by applying a [`crate::catalogue::Op`] to one).
#[async_trait]
pub trait FlowAdmin: FlowSource {
    /// Creates or replaces a flow (matched by `pk`). Validates the fields and that the
    /// slug is unique.
    async fn put_flow(&self, flow: Flow) -> Result<(), StoreError>;
    /// Deletes a flow with its bindings. Returns whether it existed.
    async fn delete_flow(&self, slug: &str) -> Result<bool, StoreError>;
    /// Creates or replaces a stage (matched by `pk`; names are unique).
    async fn put_stage(&self, stage: Stage) -> Result<(), StoreError>;
    /// Deletes a stage and the bindings that use it.
    async fn delete_stage(&self, pk: StageId) -> Result<bool, StoreError>;
    /// Creates or replaces a flow-stage binding. Flow and stage must exist.
    async fn put_binding(&self, binding: FlowStageBinding) -> Result<(), StoreError>;
    /// Deletes a flow-stage binding.
    async fn delete_binding(&self, pk: BindingId) -> Result<bool, StoreError>;
    /// Creates or replaces a policy (names are unique).
    async fn put_policy(&self, policy: Policy) -> Result<(), StoreError>;
    /// Deletes a policy and its bindings.
    async fn delete_policy(&self, pk: PolicyId) -> Result<bool, StoreError>;
    /// Creates or replaces a policy binding. Its target must exist.
    async fn put_policy_binding(&self, binding: PolicyBinding) -> Result<(), StoreError>;
    /// Deletes a policy binding.
    async fn delete_policy_binding(&self, pk: PolicyBindingId) -> Result<bool, StoreError>;
}

/// A flow store that is both read by the engine and written by admins: every
/// [`FlowAdmin`] is one (blanket impl), so `Arc<dyn FlowStore>` keeps working.
pub trait FlowStore: FlowAdmin {}

impl<T: FlowAdmin + ?Sized> FlowStore for T {}

/// A value with the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version, to pass back to [`SessionStore::save`].
    pub version: u64,
}

/// Where per-session flow state lives (plans, history, the logged-in user).
///
/// Writes are compare-and-swap: `save` with a stale `expected` version fails with
/// [`StoreError::Conflict`] and writes nothing, so concurrent requests never lose an
/// update silently.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Loads a session's state. Expired or unknown sessions are `None`.
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned<SessionState>>, StoreError>;
    /// Saves a session's state if its stored version is `expected` (`None`: the session
    /// must not exist yet). Returns the new version.
    async fn save(
        &self,
        id: &SessionId,
        state: &SessionState,
        expected: Option<u64>,
    ) -> Result<u64, StoreError>;
    /// Deletes a session.
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError>;
    /// Deletes every session logged in as `user` except `keep` (the user-login stage's
    /// `terminate_other_sessions`). Stores keep a per-user index of sessions for this;
    /// a session whose state no longer names `user` is not deleted. Returns how many
    /// sessions were deleted.
    async fn delete_user_sessions(
        &self,
        user: crate::model::UserId,
        keep: &SessionId,
    ) -> Result<usize, StoreError>;
}

/// Reputation scores per client IP and per username (authentik's `Reputation`):
/// failed logins lower them, successful logins raise them.
#[async_trait]
pub trait ReputationStore: Send + Sync {
    /// The summed score of the IP (when given) and the username (when given).
    async fn score(&self, ip: Option<&str>, username: Option<&str>) -> Result<i64, StoreError>;
    /// Adds `delta` to both the IP's and the username's score.
    async fn adjust(
        &self,
        ip: Option<&str>,
        username: Option<&str>,
        delta: i64,
    ) -> Result<(), StoreError>;
}

/// A counter in a [`ThrottleStore`]: how many hits since its window opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleCounter {
    /// Hits in the open window (0 when none is open).
    pub count: u32,
    /// When the open window started (its first hit), seconds since the epoch.
    pub since: u64,
}

/// Windowed counters for login throttling ([`crate::throttle`]), shared by every server
/// instance (memory for one process, Redis for many; a SQL store implements it as one
/// row per key `(key, count, since)` updated in one statement).
///
/// A counter's window opens at its first hit and lasts `window` seconds; once it has
/// passed, the counter reads as empty and the next hit opens a new window. `now` comes
/// from the engine's clock, so stores never read the wall clock for these decisions
/// (they may expire keys on their own later than `since + window` to reclaim space).
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// The counter under `key` at `now` (empty if none or its window has passed).
    async fn get(&self, key: &str, now: u64, window: u64) -> Result<ThrottleCounter, StoreError>;
    /// Adds one hit, atomically (concurrent hits are never lost), opening a new window at
    /// `now` if none is open. Returns the counter after the hit.
    async fn hit(&self, key: &str, now: u64, window: u64) -> Result<ThrottleCounter, StoreError>;
    /// Removes the counter.
    async fn clear(&self, key: &str) -> Result<(), StoreError>;
}

impl StoreError {
    /// The message a user sees when a flow needs an operation the store does not
    /// support: "This server's user directory does not support creating users."
    pub fn unsupported_message(operation: &str) -> String {
        format!("This server's user directory does not support {operation}.")
    }
}
