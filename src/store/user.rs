//! Users and groups as the engine sees them. Password hashes stay inside the
//! [`UserDirectory`](super::UserDirectory) and never appear here.

use serde::{Deserialize, Serialize};

use crate::model::{GroupId, UserId};
use crate::secret::Password;

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Primary key.
    pub pk: UserId,
    /// Unique username.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Email address.
    #[serde(default)]
    pub email: String,
    /// Inactive users cannot log in.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Path (authentik's folder-like grouping).
    #[serde(default)]
    pub path: String,
    /// Type (`internal`, `external`, `service_account`, …).
    #[serde(default)]
    pub user_type: String,
    /// Free-form attributes (`attributes.upn` is matched by identification).
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Direct group memberships.
    #[serde(default)]
    pub groups: Vec<GroupId>,
}

impl User {
    /// An active internal user with this id and username; other fields empty.
    pub fn new(pk: impl Into<UserId>, username: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            username: username.into(),
            name: String::new(),
            email: String::new(),
            is_active: true,
            path: String::new(),
            user_type: "internal".into(),
            attributes: Default::default(),
            groups: Vec::new(),
        }
    }

    /// Sets the email.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = email.into();
        self
    }

    /// Sets the display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the active flag (inactive users cannot log in).
    pub fn with_active(mut self, is_active: bool) -> Self {
        self.is_active = is_active;
        self
    }

    /// Sets one attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.attributes.insert(key.into(), value);
        self
    }

    /// Adds a direct group membership.
    pub fn with_group(mut self, group: GroupId) -> Self {
        self.groups.push(group);
        self
    }
}

fn yes() -> bool {
    true
}

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// The id to use (`None`: a fresh random one).
    pub pk: Option<UserId>,
    /// Unique username (required, non-empty).
    pub username: String,
    /// Display name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Active flag.
    pub is_active: bool,
    /// Path.
    pub path: String,
    /// Type.
    pub user_type: String,
    /// Attributes.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Direct group memberships.
    pub groups: Vec<GroupId>,
    /// Initial password; `None` leaves the password unusable.
    pub password: Option<Password>,
}

impl NewUser {
    /// An active internal user with this username.
    pub fn new(username: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            is_active: true,
            user_type: "internal".into(),
            ..Self::default()
        }
    }

    /// Sets the email.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = email.into();
        self
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the password.
    pub fn password(mut self, password: impl Into<Password>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds a group.
    pub fn group(mut self, group: GroupId) -> Self {
        self.groups.push(group);
        self
    }
}

/// A group. Members of a child group count as members of its ancestors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Primary key.
    pub pk: GroupId,
    /// Unique name.
    pub name: String,
    /// Parent group.
    #[serde(default)]
    pub parent: Option<GroupId>,
    /// Members are superusers.
    #[serde(default)]
    pub is_superuser: bool,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl Group {
    /// A group with a fresh id.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            pk: GroupId::new(),
            name: name.into(),
            parent: None,
            is_superuser: false,
            attributes: Default::default(),
        }
    }

    /// Makes members superusers.
    pub fn superuser(mut self) -> Self {
        self.is_superuser = true;
        self
    }

    /// Sets the parent group.
    pub fn child_of(mut self, parent: GroupId) -> Self {
        self.parent = Some(parent);
        self
    }
}

/// The form in which identifiers (usernames, emails) are compared: NFKC-normalised,
/// then lower-cased with Unicode's default case mapping, without surrounding
/// whitespace. Fullwidth `ＡＫＡＤＭＩＮ` and `AkAdmin` are both `akadmin`.
pub fn canonical_identifier(value: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    // NFKC after lower-casing too: lower-casing can produce non-normalised sequences.
    let nfkc: String = value.trim().nfkc().collect();
    nfkc.to_lowercase().nfkc().collect()
}

/// Longest accepted username, in characters (authentik's 150).
pub const USERNAME_MAX_LEN: usize = 150;

/// Checks a username for creation or renaming: not blank, at most
/// [`USERNAME_MAX_LEN`] characters, and no control, zero-width, bidirectional-override
/// or other invisible formatting characters (they make look-alike names). Returns the
/// message for the `username` field.
pub fn validate_username(username: &str) -> Result<(), &'static str> {
    if username.trim().is_empty() {
        return Err("This field may not be blank.");
    }
    if username.chars().count() > USERNAME_MAX_LEN {
        return Err("Ensure this field has no more than 150 characters.");
    }
    if username.chars().any(invisible) {
        return Err("Username contains invisible or control characters.");
    }
    Ok(())
}

/// Control characters, zero-width characters, bidi controls and other format (Cf)
/// characters that render as nothing.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'                 // soft hyphen
            | '\u{034F}'               // combining grapheme joiner
            | '\u{061C}'               // Arabic letter mark
            | '\u{115F}' | '\u{1160}'  // Hangul fillers
            | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'  // Mongolian variation selectors, vowel separator
            | '\u{200B}'..='\u{200F}'  // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}'  // bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}'  // word joiner, invisible operators, bidi isolates
            | '\u{3164}'               // Hangul filler
            | '\u{FE00}'..='\u{FE0F}'  // variation selectors
            | '\u{FEFF}'               // zero-width no-break space (BOM)
            | '\u{FFA0}'               // halfwidth Hangul filler
            | '\u{FFF9}'..='\u{FFFB}'  // interlinear annotation
            | '\u{E0000}'..='\u{E007F}' // tags
            | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
        )
}

/// Built here, where users are defined, so the plan stays plain data.
impl crate::plan::PendingUser {
    /// The pending-user record of a real user.
    pub fn of(user: &User) -> Self {
        Self {
            pk: Some(user.pk.clone()),
            username: user.username.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_identifier("ＡＫＡＤＭＩＮ"), "akadmin");
        assert_eq!(canonical_identifier(" AkAdmin "), "akadmin");
        assert_eq!(
            canonical_identifier("Carol@Corp.Example"),
            "carol@corp.example"
        );
    }

    #[test]
    fn usernames() {
        assert!(validate_username("akadmin").is_ok());
        assert!(validate_username("jürgen.müller").is_ok());
        for bad in [
            "",
            "  ",
            "ak\u{200B}admin",
            "ak\u{202E}nimda",
            "a\u{0007}b",
            "a\nb",
            "ak\u{2066}x",
        ] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        assert!(validate_username(&"a".repeat(150)).is_ok());
        assert!(validate_username(&"a".repeat(151)).is_err());
    }
}
