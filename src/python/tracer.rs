//! The trace function that stops an expression at its deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::PyType;

use super::TIMED_OUT;

/// The trace function (`sys.settrace`) that stops an expression at its deadline.
#[pyclass(frozen)]
pub(super) struct Tracer {
    pub(super) deadline: Instant,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) timeout_type: Py<PyType>,
}

#[pymethods]
impl Tracer {
    /// Called by CPython for every call (global trace) and line (local trace); returns
    /// itself to keep tracing, raises `ExpressionTimeout` past the deadline.
    pub(super) fn __call__<'py>(
        slf: &Bound<'py, Self>,
        _frame: &Bound<'py, PyAny>,
        _event: &Bound<'py, PyAny>,
        _arg: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        let me = slf.get();
        if me.cancel.load(Ordering::Relaxed) || Instant::now() >= me.deadline {
            return Err(PyErr::from_type(
                me.timeout_type.bind(slf.py()).clone(),
                TIMED_OUT,
            ));
        }
        Ok(slf.clone())
    }
}
