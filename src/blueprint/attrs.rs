//! Reading an entry's attributes: typed values with a message naming the attribute.

use serde_json::{Map, Value as Json};

/// An entry-level result: the error is the message recorded for the entry.
pub(super) type EntryResult<T> = Result<T, String>;

/// An optional boolean attribute.
pub(super) fn bool_attr(m: &Map<String, Json>, key: &str) -> EntryResult<Option<bool>> {
    match m.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(format!("`{key}`: expected a boolean, got `{other}`")),
    }
}

/// An optional string attribute.
pub(super) fn string_attr(m: &Map<String, Json>, key: &str) -> EntryResult<Option<String>> {
    match m.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{key}`: expected a string, got `{other}`")),
    }
}
