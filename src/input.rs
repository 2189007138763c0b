//! [`Input`]: what the client sent to the flow executor.

use serde_json::{Map, Value};

/// What the client sent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    /// GET: show the current challenge.
    Get,
    /// POST with a JSON object.
    Post(&'a Map<String, Value>),
    /// POST whose body was JSON but not an object: refused with this message.
    NotAnObject(&'a str),
}
