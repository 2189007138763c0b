//! One evaluation on its worker thread: the job, its result, the prelude module and
//! copying the context back.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyModule, PyType};
use serde_json::Value;

use crate::plan::PlanContext;
use crate::policy::PolicyError;

use super::bridge::{Bridge, Finished, Mailbox, lock};
use super::tracer::Tracer;
use super::{CACHE_LIMIT, PRELUDE, PRELUDE_MODULE, TIMED_OUT};

/// One evaluation, moved to the worker thread.
pub(super) struct Job {
    pub(super) key: String,
    pub(super) source: String,
    pub(super) policy: String,
    pub(super) inputs: String,
    pub(super) deadline: Instant,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) cache: Arc<Mutex<HashMap<String, Py<PyAny>>>>,
    /// A value expression (prompt placeholder / initial value), not a policy.
    pub(super) value: bool,
}

impl Job {
    /// Runs on the worker thread: attaches to Python, compiles (or takes the cached
    /// handler), evaluates under the deadline's trace function.
    pub(super) fn run(self) -> Result<Finished, PolicyError> {
        Python::attach(|py| {
            let error = |e: PyErr| PolicyError(describe(py, &e));
            let prelude = prelude(py).map_err(error)?;
            let timeout_type = prelude
                .getattr("ExpressionTimeout")
                .and_then(|t| t.cast_into::<PyType>().map_err(PyErr::from))
                .map_err(error)?;
            let code = self.code(py, &prelude).map_err(error)?;
            let tracer = Tracer {
                deadline: self.deadline,
                cancel: self.cancel.clone(),
                timeout_type: timeout_type.clone().unbind(),
            };
            let bridge = Bridge {
                mailbox: self.mailbox.clone(),
                deadline: self.deadline,
                cancel: self.cancel.clone(),
                timeout_type: timeout_type.clone().unbind(),
                policy: self.policy.clone(),
            };
            let entry = if self.value {
                "evaluate_value"
            } else {
                "evaluate"
            };
            let out = prelude.call_method1(entry, (code, bridge, tracer, &self.inputs));
            let out = match out {
                Ok(out) => out,
                Err(e) if e.is_instance(py, timeout_type.as_any()) => {
                    return Err(PolicyError(TIMED_OUT.into()));
                }
                Err(e) => return Err(error(e)),
            };
            if self.value {
                let (value, error_text) = out
                    .extract::<(Option<String>, Option<String>)>()
                    .map_err(error)?;
                return Ok(Finished {
                    passing: false,
                    error: error_text,
                    messages: Vec::new(),
                    context: Vec::new(),
                    value,
                });
            }
            let (passing, error_text, messages, context) = out
                .extract::<(
                    bool,
                    Option<String>,
                    Vec<String>,
                    Vec<(String, Option<String>, Option<String>)>,
                )>()
                .map_err(error)?;
            Ok(Finished {
                passing,
                error: error_text,
                messages,
                context,
                value: None,
            })
        })
    }

    /// The compiled handler: from the cache, or compiled and cached.
    pub(super) fn code<'py>(
        &self,
        py: Python<'py>,
        prelude: &Bound<'py, PyModule>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(code) = lock(&self.cache).get(&self.key) {
            return Ok(code.clone_ref(py).into_bound(py));
        }
        let code =
            prelude.call_method1("compile_handler", (&self.source, &self.policy, self.value))?;
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(self.key.clone(), code.clone().unbind());
        Ok(code)
    }
}

/// The prelude module (`prelude.py`), loaded once per interpreter.
pub(super) fn prelude(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    PRELUDE_MODULE
        .get_or_try_init(py, || {
            let code = CString::new(PRELUDE)
                .map_err(|e| PyRuntimeError::new_err(format!("invalid prelude: {e}")))?;
            PyModule::from_code(
                py,
                &code,
                c"authflow/python/prelude.py",
                c"_authflow_expression",
            )
            .map(Bound::unbind)
        })
        .map(|m| m.bind(py).clone())
}

/// An exception's text as authentik reports it: `str(exc)`, or its type name if empty.
pub(super) fn describe(py: Python<'_>, err: &PyErr) -> String {
    let value = err.value(py);
    let text = value
        .str()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if text.is_empty() {
        value
            .get_type()
            .name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "exception".into())
    } else {
        text
    }
}

/// Copies the exported context dict back into the plan context.
pub(super) fn apply_context(
    context: &mut PlanContext,
    exported: Vec<(String, Option<String>, Option<String>)>,
    policy: &str,
) {
    let mut next = PlanContext::new();
    for (key, json, reason) in exported {
        let parsed = json.map(|j| serde_json::from_str::<Value>(&j));
        match parsed {
            Some(Ok(value)) => {
                next.insert(key, value);
            }
            other => {
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => reason.unwrap_or_default(),
                };
                tracing::warn!(
                    target: "authflow::python",
                    policy,
                    key = %key,
                    reason = %why,
                    "expression left a plan-context value that is not JSON; it is not saved"
                );
                if let Some(old) = context.get(&key) {
                    next.insert(key, old.clone());
                }
            }
        }
    }
    *context = next;
}
