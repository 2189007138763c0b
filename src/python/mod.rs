//! Python expression policies (feature `python`): [`PythonEvaluator`] runs authentik's
//! expression policies in the system CPython, embedded through PyO3.
//!
//! ```no_run
//! # async fn demo() {
//! use std::{sync::Arc, time::Duration};
//! use authflow::{memory, python::PythonEvaluator};
//!
//! let stores = memory::Stores::new();
//! let engine = stores
//!     .engine()
//!     .expressions(Arc::new(PythonEvaluator::new().with_timeout(Duration::from_secs(5))))
//!     .build();
//! // Validate expressions when they are imported or edited:
//! assert!(PythonEvaluator::check("return request.user.is_authenticated").is_ok());
//! assert!(PythonEvaluator::check("return (").is_err());
//! # }
//! ```
//!
//! # Security
//!
//! **Expressions run with the host's privileges, as in authentik: this is not a
//! sandbox.** An expression can import any module, read files, open connections and
//! see every value of the plan context (prompt data, passwords typed in a prompt
//! stage). Only administrators should be able to write them.
//!
//! # How an expression runs
//!
//! As in authentik, the source is the body of a function, `def handler(...):` with the
//! source indented; its return value's truthiness is the verdict (`None` fails).
//! The wrapped source is compiled once per policy id and source hash (SHA-256) and
//! cached. In scope:
//!
//! | name | what |
//! |---|---|
//! | `request` | `.user`, `.context`, `.http_request`, `.obj` (the flow: `slug`, `name`, `title`, `designation`), `.debug` (`False`) |
//! | `request.user` | the policy subject ([`PolicyRequest::user`]): `pk` (str), `username`, `email`, `name`, `is_authenticated`, `is_active`, `attributes`, `path`, `type`, `groups` (direct groups: `.all()`, `.filter(name=…)`), `all_groups()` (with ancestors). Anonymous: `username` `"AnonymousUser"`, `pk` `None`, `is_authenticated`/`is_anonymous` `False`/`True`; a pretended (unknown) user has `pk` `None` and the typed `username` |
//! | `context`, `request.context` | one dict, as authentik's `request.context`: a copy of the plan context's keys and, for a stage binding's policies ([`PolicyRequest::flow_plan`]), `context["flow_plan"]`, the `flow_plan` object. Flow-level policies (authentik runs them before the plan exists) get the copy without `flow_plan`. `pending_user` is a user object (with `.backend` when the context has `user_backend`) |
//! | `flow_plan`, `flow_plan.context` | the plan and the plan context itself (`None` for flow-level policies) |
//! | `http_request` | `.client_ip` and `.META` (`REMOTE_ADDR`) |
//! | `ak_message(msg)` | adds a message to the result |
//! | `ak_user_by(**filters)` | a user by `username=`, `email=`, `pk=` or `attributes__upn=` (also `…__iexact`), other filters narrow it; `None` when none matches. Looked up through the [`UserDirectory`](crate::store::UserDirectory) |
//! | `ak_is_group_member(user, **filters)` | whether the user is in a matching group or one of its children (`name=`, `pk=`, `name__iexact=`, …) |
//! | `ak_is_sso_flow` | the context's `is_sso` (default `False`) |
//! | `ak_client_ip` | the client IP as an `ipaddress` object (`255.255.255.255` when unknown), as in authentik: `ak_client_ip in ip_network("10.0.0.0/8")`; `str(ak_client_ip)` is the text |
//! | `ak_logger` | `.debug/.info/.warning/.error(event, **fields)`: logged through `tracing` (target `authflow::python`); fields whose names look secret ([`is_secret_key`](crate::plan::is_secret_key)) are redacted |
//! | `ip_address`, `ip_network`, `regex_match`, `regex_replace`, `list_flatten` | authentik's helpers |
//!
//! After the expression returns (or raises), `flow_plan.context` is copied back into the
//! [`PlanContext`](crate::plan::PlanContext): keys it added, changed or deleted are
//! added, changed or deleted, so later stages see them. Writes to `context` /
//! `request.context` are dropped, as in authentik (where `context["redirect"] = …` in a
//! policy does not change where the flow ends). Values are converted to JSON
//! (a user object becomes the `pending_user` record `{pk, username, email, name}`, a
//! group its pk, a set a list, an IP address its text); a value that cannot be converted
//! keeps its previous value (or stays absent) and a warning is logged with its key (never
//! its value).
//!
//! An exception (or a syntax error) yields [`PolicyError`] with the exception's text
//! (`str(exc)`, e.g. `"division by zero"`); the engine then applies the binding's
//! `failure_result` with that text as message. Messages from `ak_message` are dropped in
//! that case, as in authentik.
//!
//! # Threads, the GIL and timeouts
//!
//! [`ExpressionEvaluator::evaluate`] never touches Python on the calling (async)
//! thread: each evaluation runs on its own worker thread, which holds the GIL only
//! while Python runs. The returned future waits on a channel; store lookups the
//! expression makes (`ak_user_by`, groups) are sent back to the future, which runs them
//! on the caller's executor and answers (the worker releases the GIL while it waits).
//!
//! The evaluator enforces its own deadline ([`PythonEvaluator::with_timeout`], default
//! [`DEFAULT_TIMEOUT`]), whether or not the engine has a [`Timer`](crate::clock::Timer):
//! - the worker runs the expression under a trace function (`sys.settrace`) that checks
//!   the deadline at every line and call and raises `ExpressionTimeout` (a
//!   `BaseException`, so `except Exception:` does not swallow it) into the expression
//!   once it has passed: `while True: pass` stops;
//! - a watchdog thread answers the future with "Policy timed out." at the deadline even
//!   if the expression cannot be interrupted (blocked in C code such as `time.sleep`,
//!   or catching `BaseException`). Such a thread is left to finish on its own; it cannot
//!   be killed.
//!
//! If the engine's own timer fires first (the binding's `timeout`), the future is dropped
//! and the running expression is stopped the same way at its next line.
//!
//! The trace function costs a call into Rust per executed line: negligible for the
//! usual few-line policy, but a tight loop runs several times slower than untraced.
//! Each evaluation starts two short-lived threads (worker and watchdog).
//!
//! Not provided (authentik helpers that need services authflow does not have):
//! `ak_call_policy`, `ak_create_event`, `ak_send_email`, `ak_create_jwt`,
//! `ak_user_has_authenticator`, `requests`, `resolve_dns`, `reverse_dns`, `slugify`.
//! Using one raises `NameError`, i.e. the binding's `failure_result`.
//!
//! # Building
//!
//! PyO3 links the system CPython, which needs its shared library and headers (Debian:
//! `python3-dev`; `ci/install-python.sh` installs it). Point PyO3 at it:
//! `PYO3_PYTHON=/usr/bin/python3 cargo test --features python`.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;
use sha2::Digest;

use crate::model::Policy;
use crate::policy::{ExpressionEvaluator, PolicyError, PolicyOutcome, PolicyRequest, ValueRequest};

mod bridge;
mod job;
mod tracer;

use bridge::{Abandon, Mailbox, ToHost, lock, serve};
use job::{Job, apply_context, describe, prelude};

/// The evaluator's default deadline per evaluation (authentik's binding default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The error text of an evaluation that ran past its deadline (the engine's own text).
pub const TIMED_OUT: &str = "Policy timed out.";

/// How many compiled expressions are kept before the cache is emptied.
pub(crate) const CACHE_LIMIT: usize = 1024;

/// Longest log field value passed on to `tracing`, in characters.
pub(crate) const LOG_FIELD_LIMIT: usize = 1024;

pub(crate) const PRELUDE: &str = include_str!("prelude.py");

pub(crate) static PRELUDE_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Runs expression policies in the embedded CPython (see the [module docs](self)).
///
/// Expressions run with the host's privileges: this is not a sandbox.
pub struct PythonEvaluator {
    timeout: Duration,
    /// Compiled handlers by `"<policy pk>:<sha256 of source>"`.
    cache: Arc<Mutex<HashMap<String, Py<PyAny>>>>,
}

impl PythonEvaluator {
    /// An evaluator with the [`DEFAULT_TIMEOUT`]. Initializes the interpreter if needed.
    pub fn new() -> Self {
        Python::initialize();
        Self {
            timeout: DEFAULT_TIMEOUT,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Sets the deadline of each evaluation (enforced even without an engine
    /// [`Timer`](crate::clock::Timer)).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The deadline of each evaluation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many compiled expressions are cached.
    pub fn cached_expressions(&self) -> usize {
        lock(&self.cache).len()
    }

    /// Checks that `source` compiles as an expression (for import and edit forms).
    /// The error is Python's message, e.g. `"invalid syntax (<expression>, line 1)"`.
    ///
    /// Runs on the calling thread and briefly holds the GIL.
    pub fn check(source: &str) -> Result<(), String> {
        Python::attach(|py| {
            let prelude = prelude(py).map_err(|e| describe(py, &e))?;
            prelude
                .call_method1("compile_handler", (source, "<expression>"))
                .map(drop)
                .map_err(|e| describe(py, &e))
        })
    }
}

impl Default for PythonEvaluator {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PythonEvaluator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PythonEvaluator")
            .field("timeout", &self.timeout)
            .field("cached_expressions", &self.cached_expressions())
            .finish()
    }
}

impl PythonEvaluator {
    /// Runs one job on a worker thread under the deadline, serving its store lookups.
    async fn run(
        &self,
        key: String,
        name: &str,
        source: &str,
        inputs: String,
        value: bool,
        users: Arc<dyn crate::store::UserDirectory>,
    ) -> Result<bridge::Finished, PolicyError> {
        let deadline = Instant::now() + self.timeout;
        let mailbox = Arc::new(Mailbox::default());
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            key,
            source: source.to_owned(),
            policy: name.to_owned(),
            inputs,
            deadline,
            cancel: cancel.clone(),
            mailbox: mailbox.clone(),
            cache: self.cache.clone(),
            value,
        };
        // Closes the mailbox and stops the expression if this future is dropped early
        // (e.g. the engine's timer fired).
        let _guard = Abandon {
            mailbox: mailbox.clone(),
            cancel: cancel.clone(),
        };

        let (done_tx, done_rx) = mpsc::channel::<()>();
        let worker_mailbox = mailbox.clone();
        std::thread::Builder::new()
            .name("authflow-python".into())
            .spawn(move || {
                let _done = done_tx;
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| job.run()))
                    .unwrap_or_else(|_| Err(PolicyError("the Python worker panicked".into())));
                worker_mailbox.send(ToHost::Done(result));
            })
            .map_err(|e| PolicyError(format!("cannot start a Python worker thread: {e}")))?;

        let watchdog_mailbox = mailbox.clone();
        let watchdog_cancel = cancel.clone();
        let timeout = self.timeout;
        let watchdog = std::thread::Builder::new()
            .name("authflow-python-watchdog".into())
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
                    watchdog_cancel.store(true, Ordering::SeqCst);
                    watchdog_mailbox.send(ToHost::Done(Err(PolicyError(TIMED_OUT.into()))));
                }
            });
        if let Err(e) = watchdog {
            // The trace function still enforces the deadline inside Python.
            tracing::warn!(target: "authflow::python", error = %e, "cannot start a watchdog thread");
        }

        loop {
            match std::future::poll_fn(|cx| mailbox.poll_recv(cx)).await {
                ToHost::Lookup(lookup, reply) => {
                    // The worker may have given up (deadline); nobody listens then.
                    let _ = reply.send(serve(users.as_ref(), lookup).await);
                }
                ToHost::Done(result) => break result,
            }
        }
    }
}

fn source_hash(source: &str) -> String {
    let digest = sha2::Sha256::digest(source.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl ExpressionEvaluator for PythonEvaluator {
    async fn evaluate(
        &self,
        policy: &Policy,
        expression: &str,
        request: &mut PolicyRequest<'_>,
    ) -> Result<PolicyOutcome, PolicyError> {
        let inputs = serde_json::json!({
            "context": &*request.context,
            "user": request.user,
            "username": request.username,
            "client_ip": request.client_ip,
            "flow": request.flow,
            "flow_plan": request.flow_plan,
        })
        .to_string();
        let key = format!("{}:{}", policy.pk, source_hash(expression));
        let users = request.env.users.clone();
        let finished = self
            .run(key, &policy.name, expression, inputs, false, users)
            .await?;
        apply_context(request.context, finished.context, &policy.name);
        match finished.error {
            Some(error) => Err(PolicyError(error)),
            None => Ok(PolicyOutcome::new(finished.passing, finished.messages)),
        }
    }

    async fn evaluate_value(
        &self,
        expression: &str,
        request: &ValueRequest<'_>,
    ) -> Result<serde_json::Value, PolicyError> {
        let inputs = serde_json::json!({
            "user": request.user,
            "client_ip": request.client_ip,
            "prompt_context": request.prompt_context,
        })
        .to_string();
        let key = format!("value:{}:{}", request.key, source_hash(expression));
        let users = request.env.users.clone();
        let finished = self
            .run(key, request.name, expression, inputs, true, users)
            .await?;
        if let Some(error) = finished.error {
            tracing::warn!(target: "authflow::python", expression = request.name, error = %error, "prompt expression failed; the value is left empty");
            return Err(PolicyError(error));
        }
        finished
            .value
            .map(|json| serde_json::from_str(&json).map_err(|e| PolicyError(e.to_string())))
            .unwrap_or(Ok(serde_json::Value::Null))
    }
}
