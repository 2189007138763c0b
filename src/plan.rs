//! Flow plans and the per-session state the [`SessionStore`](crate::store::SessionStore) keeps.

use std::fmt;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{BindingId, FlowId, UserId};

/// Plan-context keys with a fixed meaning (authentik's names).
pub mod keys {
    /// The user the flow is about (`{pk, username, email, name}`; `pk` null for a pretended user).
    pub const PENDING_USER: &str = "pending_user";
    /// The identifier shown instead of the matched user when `show_matched_user` is off.
    pub const PENDING_USER_IDENTIFIER: &str = "pending_user_identifier";
    /// Values submitted to prompt stages.
    pub const PROMPT_DATA: &str = "prompt_data";
    /// Where to go when the flow finishes (overrides `next`; set by trusted code only).
    pub const REDIRECT: &str = "redirect";
    /// Set when the flow was reached through a redirect stage (the originating flow's slug).
    pub const IS_REDIRECTED: &str = "is_redirected";
    /// A message the deny stage shows instead of its own.
    pub const DENY_MESSAGE: &str = "deny_message";
    /// The application being authorized (`{slug, name}`), for consent and titles.
    pub const APPLICATION: &str = "application";
    /// Consent permissions requested (`[{id, name}]`).
    pub const CONSENT_PERMISSIONS: &str = "consent_permissions";
    /// Consent header text.
    pub const CONSENT_HEADER: &str = "consent_header";
    /// Target URL or `ak-flow://slug` for a redirect stage.
    pub const REDIRECT_STAGE_TARGET: &str = "redirect_stage_target";
    /// Groups the user-write stage adds (`[group pk]`).
    pub const GROUPS: &str = "groups";
    /// How the user authenticated (`password`, …).
    pub const AUTH_METHOD: &str = "auth_method";
    /// Details of `auth_method`.
    pub const AUTH_METHOD_ARGS: &str = "auth_method_args";
    /// The backend that authenticated the user.
    pub const USER_BACKEND: &str = "user_backend";
    /// The token of the engine's pending confirmation challenge (set by the engine;
    /// see [`StageKind::confirmation`](crate::stages::StageKind::confirmation)).
    pub const CONFIRMATION_TOKEN: &str = "confirmation_token";
    /// The binding whose confirmation the user gave (set by the engine; cleared when
    /// that stage is done).
    pub const CONFIRMED_BINDING: &str = "confirmed_binding";
    /// Set by a stage that finishes: the pk of a stage to run next (authentik's
    /// `plan.insert_stage`); only stages the definition lets the finishing stage
    /// insert (an authenticator-validation stage's `configuration_stages`) are.
    pub const INSERT_STAGE: &str = "authflow/insert_stage";
    /// Set when the plan was resumed from a flow token (authentik's `is_restored`):
    /// `{"digest": …, "user": pk}`.
    pub const IS_RESTORED: &str = "is_restored";
    /// Set by the email stage when a recovery link was followed: the login at the end
    /// of the flow ends the user's other sessions.
    pub const END_OTHER_SESSIONS: &str = "end_other_sessions";
    /// The email stage's link was sent (authentik's `email_sent`).
    pub const EMAIL_SENT: &str = "email_sent";
    /// An address that overrides the pending user's (authentik's `email`).
    pub const EMAIL_OVERRIDE: &str = "email";
}

/// The opaque id of a session: a 256-bit random bearer credential. Its `Debug`
/// output is redacted.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random id from the operating system (see [`SessionId::random`]).
    pub fn generate() -> Self {
        Self::random(&crate::random::OsRandom)
    }

    /// A fresh id from `random` (two v4 UUIDs, 244 random bits, hex).
    pub fn random(random: &dyn crate::random::Random) -> Self {
        Self(format!("{}{}", random.token(), random.token()))
    }

    /// Wraps an id received from a client (e.g. a cookie). Returns `None` for values
    /// that cannot be an id we issued (empty, over 128 bytes, non-alphanumeric), so
    /// stores never see arbitrary input as a key.
    pub fn parse(value: &str) -> Option<Self> {
        (!value.is_empty()
            && value.len() <= 128
            && value.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| Self(value.to_owned()))
    }

    /// The id as a string (for cookies and store keys).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the id, hex: what the inspector shows instead of the id.
    pub fn hashed(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.0.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(***)")
    }
}

/// How many flows one session may have state for; older ones are dropped.
pub const MAX_FLOWS_PER_SESSION: usize = 16;
/// How many passed-stage snapshots the inspector history keeps per flow.
pub const MAX_HISTORY: usize = 32;

/// Everything the engine remembers about one session between requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionState {
    /// The logged-in user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// Unix seconds when the user logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_at: Option<u64>,
    /// Seconds the login lasts (`None`: until the browser session ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_expires_at: Option<u64>,
    /// Unix seconds when a read of the logged-in session last refreshed its idle
    /// expiry ([`Engine::session_user`](crate::Engine::session_user)); see
    /// [`session_touch`](crate::session_touch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touched_at: Option<u64>,
    /// Per-flow state, keyed by flow slug. Several flows can run at once.
    #[serde(default)]
    pub flows: IndexMap<String, FlowState>,
}

impl SessionState {
    /// The state of one flow, created empty when missing. Keeps at most
    /// [`MAX_FLOWS_PER_SESSION`] flows, dropping the least recently created.
    pub fn flow_mut(&mut self, slug: &str) -> &mut FlowState {
        if !self.flows.contains_key(slug) && self.flows.len() >= MAX_FLOWS_PER_SESSION {
            self.flows.shift_remove_index(0);
        }
        self.flows.entry(slug.to_owned()).or_default()
    }
}

/// The state of one flow within a session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowState {
    /// The running plan, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<FlowPlan>,
    /// The `query` of the latest request (holds `next`).
    #[serde(default)]
    pub query: String,
    /// Snapshots of the plan before each passed stage (for the inspector).
    #[serde(default)]
    pub history: Vec<FlowPlan>,
    /// Why stages were included, skipped or dropped (for the inspector).
    #[serde(default)]
    pub decisions: Vec<Decision>,
}

impl FlowState {
    /// Appends a snapshot, keeping at most [`MAX_HISTORY`].
    pub(crate) fn push_history(&mut self, plan: FlowPlan) {
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
        }
        self.history.push(plan);
    }

    /// Records a decision, keeping at most 64.
    pub(crate) fn record(&mut self, decision: Decision) {
        if self.decisions.len() >= 64 {
            self.decisions.remove(0);
        }
        self.decisions.push(decision);
    }
}

/// One recorded planning or execution decision: which binding, what happened, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The stage binding concerned (`None` for the flow itself).
    pub binding: Option<BindingId>,
    /// The stage's name (or the flow's slug).
    pub subject: String,
    /// `planned`, `skipped_on_plan`, `dropped_on_reevaluation`, `kept`, `denied`, `not_applicable`.
    pub outcome: String,
    /// Policy messages that led to it.
    #[serde(default)]
    pub messages: Vec<String>,
}

/// Whether a planned stage's policies are checked again when it becomes current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Marker {
    /// Run as planned (authentik's `StageMarker`).
    Stage,
    /// Re-evaluate the binding's policies at stage entry (authentik's `ReevaluateMarker`).
    Reevaluate,
}

/// A planned stage: the binding and its marker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStage {
    /// The flow-stage binding.
    pub binding: BindingId,
    /// Its marker.
    pub marker: Marker,
    /// Messages of the binding's policies when they let the stage in (a negated
    /// failing policy keeps its messages): a deny stage shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

/// A plan: the stages still to run (index 0 is current) and the context they share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowPlan {
    /// The planned flow.
    pub flow_pk: FlowId,
    /// Stages still to run, current first.
    pub bindings: Vec<PlannedStage>,
    /// Data shared between stages.
    pub context: PlanContext,
}

impl FlowPlan {
    /// The markers in order (authentik's `plan.markers`).
    pub fn markers(&self) -> Vec<Marker> {
        self.bindings.iter().map(|b| b.marker).collect()
    }
}

/// The user a flow is about, as stored in the plan context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingUser {
    /// `None` for a pretended (unknown) user.
    pub pk: Option<UserId>,
    /// Username (the typed identifier for a pretended user).
    pub username: String,
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// Data shared between the stages of a plan: an ordered JSON map with typed helpers
/// for the well-known [`keys`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlanContext(IndexMap<String, Value>);

impl PlanContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A mutable value.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.0.get_mut(key)
    }

    /// Sets a value.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        self.0.insert(key.into(), value)
    }

    /// Removes a value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.shift_remove(key)
    }

    /// Whether a key is set.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Iterates over entries.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pending user, if set and well-formed.
    pub fn pending_user(&self) -> Option<PendingUser> {
        self.0
            .get(keys::PENDING_USER)
            .and_then(|v| PendingUser::deserialize(v).ok())
    }

    /// Sets the pending user.
    pub fn set_pending_user(&mut self, user: &PendingUser) {
        if let Ok(v) = serde_json::to_value(user) {
            self.0.insert(keys::PENDING_USER.into(), v);
        }
    }

    /// The submitted prompt data.
    pub fn prompt_data(&self) -> Option<&Map<String, Value>> {
        self.0.get(keys::PROMPT_DATA).and_then(Value::as_object)
    }

    /// Changes the prompt data (created empty when missing or not an object).
    pub fn update_prompt_data<R>(&mut self, f: impl FnOnce(&mut Map<String, Value>) -> R) -> R {
        let mut map = match self.0.shift_remove(keys::PROMPT_DATA) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let r = f(&mut map);
        self.0
            .insert(keys::PROMPT_DATA.to_owned(), Value::Object(map));
        r
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// A copy with secrets replaced by `"********"` (for the inspector and events):
    /// any key containing `password`, `token`, `secret`, `code`, `otp`, `private`,
    /// `api_key` or `credential`, at any depth ([`is_secret_key`]).
    pub fn redacted(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), redact(k, v)))
            .collect()
    }
}

/// Whether a context key names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "token",
        "secret",
        "code",
        "otp",
        "private",
        "api_key",
        "apikey",
        "credential",
    ]
    .iter()
    .any(|s| k.contains(s))
        && k != "pending_user_identifier"
}

fn redact(key: &str, value: &Value) -> Value {
    if is_secret_key(key) && !value.is_null() {
        return Value::String("********".into());
    }
    match value {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), redact(k, v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| redact("", v)).collect()),
        other => other.clone(),
    }
}
