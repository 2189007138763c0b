//! Audit events: what happened, to whom, from where. Never carries secrets.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What an event records (authentik's event action names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventAction {
    /// A user logged in.
    Login,
    /// A credential check failed.
    LoginFailed,
    /// A user logged out.
    Logout,
    /// A user was created or updated by a flow.
    UserWrite,
    /// A user deleted their account.
    UserDelete,
    /// A policy raised an error or timed out.
    PolicyException,
    /// A policy with `execution_logging` ran.
    PolicyExecution,
    /// A flow denied access (not applicable, deny stage, lockout, bad `next`).
    FlowDenied,
    /// An unexpected error inside a stage.
    SystemException,
    /// A user set up an MFA device (context: `device_class`, `device`, `stage`).
    DeviceAdded,
    /// A user removed one of their MFA devices (context: `device_class`, `device`,
    /// `name`).
    DeviceRemoved,
    /// A user proved a second factor (context: `device_class`, `device`, `stage`). A
    /// wrong code is a [`EventAction::LoginFailed`] with `stage` and `message`, as in
    /// authentik.
    MfaValidated,
    /// An invitation was applied by an invitation stage.
    InvitationUsed,
    /// The email stage sent a link.
    EmailSent,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub action: EventAction,
    /// The username concerned, if any.
    pub user: Option<String>,
    /// The flow slug, if any.
    pub flow: Option<String>,
    /// The client IP, if known.
    pub client_ip: Option<String>,
    /// Details (never secrets).
    pub context: Map<String, Value>,
}

impl Event {
    /// An event with no details.
    pub fn new(action: EventAction) -> Self {
        Self {
            action,
            user: None,
            flow: None,
            client_ip: None,
            context: Map::new(),
        }
    }

    /// Adds a detail.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.context.insert(key.to_owned(), value.into());
        self
    }
}

/// Receives events. Implementations must not block for long: buffer and ship elsewhere.
pub trait EventSink: Send + Sync {
    /// Records an event.
    fn emit(&self, event: Event);
}

/// Drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopEventSink;

impl EventSink for NoopEventSink {
    fn emit(&self, _event: Event) {}
}

/// Keeps every event in memory (tests, small deployments).
#[derive(Debug, Default)]
pub struct MemoryEventSink {
    events: Mutex<Vec<Event>>,
}

impl MemoryEventSink {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the recorded events.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The recorded events of one action.
    pub fn of(&self, action: EventAction) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }
}

impl EventSink for MemoryEventSink {
    fn emit(&self, event: Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event);
        }
    }
}
