//! Worker ↔ future messaging: store lookups the expression asks the async side for.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::model::{GroupId, UserField, UserId};
use crate::plan::is_secret_key;
use crate::policy::PolicyError;
use crate::store::UserDirectory;

use super::{LOG_FIELD_LIMIT, TIMED_OUT};

/// What an evaluation produced.
pub(super) struct Finished {
    pub(super) passing: bool,
    /// The exception text, if the expression raised.
    pub(super) error: Option<String>,
    pub(super) messages: Vec<String>,
    /// `(key, JSON or None, why not)` for each context entry, in order.
    pub(super) context: Vec<(String, Option<String>, Option<String>)>,
    /// A value expression's result as JSON.
    pub(super) value: Option<String>,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A store lookup the expression asks the async side for.
pub(super) enum Lookup {
    User(String),
    FindUser {
        field: String,
        value: String,
        case_insensitive: bool,
    },
    Group(String),
    GroupsOf(String),
}

/// The answer to a lookup: JSON (or `None`: not found), or the store's error text.
type Answer = Result<Option<String>, String>;

pub(super) enum ToHost {
    Lookup(Lookup, mpsc::Sender<Answer>),
    Done(Result<Finished, PolicyError>),
}

/// A single-consumer queue whose receiving end is a future.
#[derive(Default)]
pub(super) struct Mailbox {
    pub(super) inner: Mutex<Inbox>,
}

#[derive(Default)]
pub(super) struct Inbox {
    pub(super) queue: VecDeque<ToHost>,
    pub(super) waker: Option<Waker>,
    pub(super) closed: bool,
}

impl Mailbox {
    /// Queues a message; `false` when the receiver is gone.
    pub(super) fn send(&self, message: ToHost) -> bool {
        let waker = {
            let mut inbox = lock(&self.inner);
            if inbox.closed {
                return false;
            }
            inbox.queue.push_back(message);
            inbox.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    pub(super) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<ToHost> {
        let mut inbox = lock(&self.inner);
        match inbox.queue.pop_front() {
            Some(message) => Poll::Ready(message),
            None => {
                inbox.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Refuses further messages and drops queued ones (their reply senders with them,
    /// which unblocks a worker waiting for an answer).
    pub(super) fn close(&self) {
        let dropped = {
            let mut inbox = lock(&self.inner);
            inbox.closed = true;
            std::mem::take(&mut inbox.queue)
        };
        drop(dropped);
    }
}

/// Dropped with the evaluation future: stops the expression and closes the mailbox.
pub(super) struct Abandon {
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) cancel: Arc<AtomicBool>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.mailbox.close();
    }
}

/// Runs a lookup against the directory (on the caller's executor).
pub(super) async fn serve(users: &dyn UserDirectory, lookup: Lookup) -> Answer {
    let result = match lookup {
        // User ids are the host's keys, taken as they are.
        Lookup::User(pk) => users
            .user(UserId::from(pk))
            .await
            .map(|u| u.map(|u| json(&u))),
        Lookup::FindUser {
            field,
            value,
            case_insensitive,
        } => {
            let field = match field.as_str() {
                "username" => Some(UserField::Username),
                "email" => Some(UserField::Email),
                "upn" => Some(UserField::Upn),
                _ => None,
            };
            match field {
                Some(field) => users
                    .find_user(field, &value, case_insensitive)
                    .await
                    .map(|u| u.map(|u| json(&u))),
                None => Ok(None),
            }
        }
        Lookup::Group(pk) => match GroupId::from_str(&pk) {
            Ok(pk) => users.group(pk).await.map(|g| g.map(|g| json(&g))),
            Err(_) => Ok(None),
        },
        Lookup::GroupsOf(pk) => users
            .groups_of(UserId::from(pk))
            .await
            .map(|g| Some(json(&g))),
    };
    result.map_err(|e| e.to_string())
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

// ---------------------------------------------------------------------------------------
// Python-side objects

/// The expression's way to the host: store lookups and logging.
#[pyclass(frozen)]
pub(super) struct Bridge {
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) deadline: Instant,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) timeout_type: Py<PyType>,
    pub(super) policy: String,
}

impl Bridge {
    pub(super) fn timed_out(&self, py: Python<'_>) -> PyErr {
        PyErr::from_type(self.timeout_type.bind(py).clone(), TIMED_OUT)
    }

    /// Sends a lookup to the async side and waits (without the GIL) for the answer.
    pub(super) fn ask(&self, py: Python<'_>, lookup: Lookup) -> PyResult<Option<String>> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(self.timed_out(py));
        }
        let (tx, rx) = mpsc::channel();
        if !self.mailbox.send(ToHost::Lookup(lookup, tx)) {
            return Err(self.timed_out(py));
        }
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        match py.detach(move || rx.recv_timeout(remaining)) {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(store_error)) => Err(PyRuntimeError::new_err(store_error)),
            Err(_) => Err(self.timed_out(py)),
        }
    }
}

#[pymethods]
impl Bridge {
    /// A user record (JSON) by pk.
    pub(super) fn user(&self, py: Python<'_>, pk: String) -> PyResult<Option<String>> {
        self.ask(py, Lookup::User(pk))
    }

    /// A user record (JSON) by `username`, `email` or `upn`.
    pub(super) fn find_user(
        &self,
        py: Python<'_>,
        field: String,
        value: String,
        case_insensitive: bool,
    ) -> PyResult<Option<String>> {
        self.ask(
            py,
            Lookup::FindUser {
                field,
                value,
                case_insensitive,
            },
        )
    }

    /// A group record (JSON) by pk.
    pub(super) fn group(&self, py: Python<'_>, pk: String) -> PyResult<Option<String>> {
        self.ask(py, Lookup::Group(pk))
    }

    /// The user's groups with their ancestors (JSON list).
    pub(super) fn groups_of(&self, py: Python<'_>, pk: String) -> PyResult<String> {
        Ok(self
            .ask(py, Lookup::GroupsOf(pk))?
            .unwrap_or_else(|| "[]".into()))
    }

    /// `ak_logger`: logs through `tracing`, redacting secret-looking fields.
    pub(super) fn log(&self, level: &str, event: &str, fields: Vec<(String, String)>) {
        let fields = fields
            .into_iter()
            .map(|(k, v)| {
                let v = if is_secret_key(&k) {
                    "'********'".to_owned()
                } else {
                    v.chars().take(LOG_FIELD_LIMIT).collect()
                };
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join(" ");
        let event: String = event.chars().take(LOG_FIELD_LIMIT).collect();
        let policy = self.policy.as_str();
        match level {
            "debug" => {
                tracing::debug!(target: "authflow::python", policy, fields = %fields, "{event}")
            }
            "info" => {
                tracing::info!(target: "authflow::python", policy, fields = %fields, "{event}")
            }
            "warning" => {
                tracing::warn!(target: "authflow::python", policy, fields = %fields, "{event}")
            }
            _ => tracing::error!(target: "authflow::python", policy, fields = %fields, "{event}"),
        }
    }
}
