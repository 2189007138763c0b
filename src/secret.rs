//! Secret values: never printed, never compared with `==`.

use std::fmt;

use subtle::ConstantTimeEq;

/// A password (or any other secret string). Its `Debug` output is redacted and it
/// has no `PartialEq`: compare with [`Secret::ct_eq`].
#[derive(Clone, Default)]
pub struct Secret(String);

/// A password is a secret.
pub type Password = Secret;

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where it must be used (hashing, comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &str) -> bool {
        constant_time_eq(&self.0, other)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Compares two strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}
