//! Reading response fields the way authentik's serializers do, collecting errors
//! instead of failing on the first.

use serde_json::Value;

use super::Response;
use crate::challenge::{ErrorDetail, ResponseErrors};
use crate::model::NON_FIELD_ERRORS;

/// Longest string any field accepts unless a stage says otherwise.
pub const DEFAULT_MAX_LEN: usize = 4096;

/// One field error.
pub type FieldError = ErrorDetail;

/// Reads typed fields from a [`Response`], collecting DRF-style errors.
#[derive(Debug)]
pub struct Fields<'a> {
    response: &'a Response,
    errors: ResponseErrors,
}

impl<'a> Fields<'a> {
    /// Starts reading a response.
    pub fn new(response: &'a Response) -> Self {
        Self {
            response,
            errors: ResponseErrors::new(),
        }
    }

    /// The field's value as sent, unchecked.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.response.get(key)
    }

    /// Adds an error for a field.
    pub fn error(&mut self, field: &str, error: ErrorDetail) {
        self.errors.entry(field.to_owned()).or_default().push(error);
    }

    /// Adds a `non_field_errors` entry with code `invalid`.
    pub fn non_field(&mut self, message: impl Into<String>) {
        self.error(NON_FIELD_ERRORS, ErrorDetail::invalid(message));
    }

    /// Whether an error was recorded.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The recorded errors.
    pub fn into_errors(self) -> ResponseErrors {
        self.errors
    }

    /// A string field (numbers are accepted as their text, like DRF). `trim` strips
    /// surrounding whitespace (not for passwords). Missing, null or blank required
    /// fields, other types and values over `max_len` characters are errors.
    pub fn string(
        &mut self,
        key: &str,
        required: bool,
        trim: bool,
        max_len: usize,
    ) -> Option<String> {
        let value = match self.response.get(key) {
            None => {
                if required {
                    self.error(key, ErrorDetail::new("This field is required.", "required"));
                }
                return None;
            }
            Some(Value::Null) => {
                if required {
                    self.error(key, ErrorDetail::new("This field may not be null.", "null"));
                }
                return None;
            }
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                self.error(key, ErrorDetail::invalid("Not a valid string."));
                return None;
            }
        };
        let value = if trim { value.trim().to_owned() } else { value };
        if value.chars().count() > max_len {
            self.error(
                key,
                ErrorDetail::new(
                    format!("Ensure this field has no more than {max_len} characters."),
                    "max_length",
                ),
            );
            return None;
        }
        if value.is_empty() {
            if required {
                self.error(
                    key,
                    ErrorDetail::new("This field may not be blank.", "blank"),
                );
            }
            return None;
        }
        Some(value)
    }

    /// A boolean field (`true`/`false`, or the strings and numbers DRF accepts).
    pub fn boolean(&mut self, key: &str, required: bool) -> Option<bool> {
        match self.response.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.error(key, ErrorDetail::new("This field is required.", "required"));
                }
                None
            }
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Some(true),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Some(false),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "on" | "1" | "yes" => Some(true),
                "false" | "off" | "0" | "no" | "" => Some(false),
                _ => {
                    self.error(key, ErrorDetail::invalid("Must be a valid boolean."));
                    None
                }
            },
            Some(_) => {
                self.error(key, ErrorDetail::invalid("Must be a valid boolean."));
                None
            }
        }
    }
}
