//! Field-level validation errors that serialise to authentik's HTTP 400 body.

use std::fmt;

use indexmap::IndexMap;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// The key authentik uses for errors that concern the whole object.
pub const NON_FIELD_ERRORS: &str = "non_field_errors";

/// Validation errors keyed by field, as authentik's API answers them with HTTP 400:
/// `{"slug": ["…"], "non_field_errors": ["…"], "code": "invalid"}`.
///
/// ```
/// use authflow::model::ValidationErrors;
/// let mut errors = ValidationErrors::new();
/// errors.add("slug", "Enter a valid slug.");
/// assert_eq!(
///     serde_json::to_value(&errors).unwrap(),
///     serde_json::json!({"slug": ["Enter a valid slug."], "code": "invalid"})
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    fields: IndexMap<String, Vec<String>>,
}

impl ValidationErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(field, message);
        e
    }

    /// Adds an error for `field` (use [`NON_FIELD_ERRORS`] for the whole object).
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// True when no error was added.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The messages for one field.
    pub fn get(&self, field: &str) -> &[String] {
        self.fields.get(field).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Iterates over `(field, messages)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl Serialize for ValidationErrors {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len() + 1))?;
        for (k, v) in &self.fields {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("code", "invalid")?;
        map.end()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (field, messages) in &self.fields {
            for m in messages {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                write!(f, "`{field}`: {m}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// A string that is not one of an enumeration's wire values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} value `{value}`")]
pub struct UnknownValue {
    /// The enumeration's name.
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
}

/// Checks a slug: 1–50 characters of `[-a-zA-Z0-9_]`.
pub fn validate_slug(slug: &str) -> Result<(), String> {
    if slug.is_empty() {
        return Err("This field may not be blank.".into());
    }
    if slug.chars().count() > 50 {
        return Err("Ensure this field has no more than 50 characters.".into());
    }
    if !slug
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(
            "Enter a valid \u{201c}slug\u{201d} consisting of letters, numbers, underscores or hyphens."
                .into(),
        );
    }
    Ok(())
}
