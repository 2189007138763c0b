//! Settings of the MFA setup stages: authentik's `AuthenticatorTOTPStage` and
//! `AuthenticatorStaticStage` (behaviour in `crate::stages::authenticator_totp` and
//! `crate::stages::authenticator_static`).

use serde::{Deserialize, Deserializer, Serialize};

use super::{StageConfig, ValidationErrors};

/// Settings of the TOTP setup stage (authentik's `AuthenticatorTOTPStage`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthenticatorTotpStage {
    /// Digits of a code: 6 (default) or 8. authentik's blueprints write a number or a
    /// string (`"6"`); both are read.
    #[serde(default = "six", deserialize_with = "digits")]
    pub digits: u8,
    /// Name given to the new device (`None`: "TOTP Device").
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// Slug of the flow that sets up a device for a logged-in user
    /// (`GET /flows/-/configure/{stage_uuid}/` with the `http` feature).
    #[serde(default)]
    pub configure_flow: Option<String>,
}

fn six() -> u8 {
    6
}

/// Reads `6`, `8`, `"6"` or `"8"` (other values are kept and refused by validation).
fn digits<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Digits {
        Number(u64),
        Text(String),
    }
    let n = match Digits::deserialize(d)? {
        Digits::Number(n) => n,
        Digits::Text(s) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| serde::de::Error::custom(format!("`digits`: `{s}` is not 6 or 8")))?,
    };
    u8::try_from(n).map_err(|_| serde::de::Error::custom(format!("`digits`: {n} is not 6 or 8")))
}

impl Default for AuthenticatorTotpStage {
    fn default() -> Self {
        Self {
            digits: 6,
            friendly_name: None,
            configure_flow: None,
        }
    }
}

/// Settings of the static (recovery code) setup stage (authentik's
/// `AuthenticatorStaticStage`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthenticatorStaticStage {
    /// How many codes a device gets (default 6, at most [`MAX_STATIC_TOKENS`]).
    #[serde(default = "six_u32")]
    pub token_count: u32,
    /// Characters of a code (default 12, between [`MIN_STATIC_TOKEN_LENGTH`] and
    /// [`MAX_STATIC_TOKEN_LENGTH`]).
    #[serde(default = "twelve")]
    pub token_length: u32,
    /// Name given to the new device (`None`: "Static Token").
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// Slug of the flow that sets up a device for a logged-in user.
    #[serde(default)]
    pub configure_flow: Option<String>,
}

/// Most codes a static device may have.
pub const MAX_STATIC_TOKENS: u32 = 100;
/// Shortest static code accepted: each code is a password to the second factor, so it
/// must not be guessable within the throttle's limits (authentik allows any length).
pub const MIN_STATIC_TOKEN_LENGTH: u32 = 8;
/// Longest static code.
pub const MAX_STATIC_TOKEN_LENGTH: u32 = 100;

fn six_u32() -> u32 {
    6
}

fn twelve() -> u32 {
    12
}

impl Default for AuthenticatorStaticStage {
    fn default() -> Self {
        Self {
            token_count: 6,
            token_length: 12,
            friendly_name: None,
            configure_flow: None,
        }
    }
}

/// The WebAuthn user-verification requirements authentik knows.
pub const USER_VERIFICATION: &[&str] = &["required", "preferred", "discouraged"];

/// Checks the settings of the MFA stages (setup stages and the validation stage),
/// naming each bad field.
pub(crate) fn validate(config: &StageConfig, errors: &mut ValidationErrors) {
    match config {
        StageConfig::AuthenticatorTotp(t) if t.digits != 6 && t.digits != 8 => {
            errors.add(
                "digits",
                format!("`digits` is {}; it must be 6 or 8", t.digits),
            );
        }
        StageConfig::AuthenticatorStatic(s) => {
            if s.token_count == 0 || s.token_count > MAX_STATIC_TOKENS {
                errors.add(
                    "token_count",
                    format!(
                        "`token_count` is {}; it must be between 1 and {MAX_STATIC_TOKENS}",
                        s.token_count
                    ),
                );
            }
            if !(MIN_STATIC_TOKEN_LENGTH..=MAX_STATIC_TOKEN_LENGTH).contains(&s.token_length) {
                errors.add(
                    "token_length",
                    format!(
                        "`token_length` is {}; it must be between {MIN_STATIC_TOKEN_LENGTH} and {MAX_STATIC_TOKEN_LENGTH}",
                        s.token_length
                    ),
                );
            }
        }
        StageConfig::AuthenticatorValidate(a) => {
            if let Err(e) = super::parse_timedelta(&a.last_auth_threshold) {
                errors.add("last_auth_threshold", format!("`last_auth_threshold`: {e}"));
            }
            if !USER_VERIFICATION.contains(&a.webauthn_user_verification.as_str()) {
                errors.add(
                    "webauthn_user_verification",
                    format!(
                        "`webauthn_user_verification` is `{}`; authentik's values are {}",
                        a.webauthn_user_verification,
                        USER_VERIFICATION.join(", ")
                    ),
                );
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;

    #[test]
    fn digits_as_number_or_text() {
        let t: AuthenticatorTotpStage = serde_json::from_str(r#"{"digits": "8"}"#).unwrap();
        assert_eq!(t.digits, 8);
        let t: AuthenticatorTotpStage = serde_json::from_str(r#"{"digits": 6}"#).unwrap();
        assert_eq!(t.digits, 6);
        let t: AuthenticatorTotpStage = serde_json::from_str("{}").unwrap();
        assert_eq!(t.digits, 6);
        let t: AuthenticatorTotpStage = serde_json::from_str(r#"{"digits": 7}"#).unwrap();
        assert!(Stage::new("t", t).validate().is_err());
        assert!(serde_json::from_str::<AuthenticatorTotpStage>(r#"{"digits": "x"}"#).is_err());
    }

    #[test]
    fn static_limits() {
        let ok = AuthenticatorStaticStage::default();
        assert!(Stage::new("s", ok.clone()).validate().is_ok());
        for (count, len) in [(0, 12), (101, 12), (6, 4), (6, 101)] {
            let s = AuthenticatorStaticStage {
                token_count: count,
                token_length: len,
                ..ok.clone()
            };
            assert!(Stage::new("s", s).validate().is_err(), "{count} {len}");
        }
    }
}
