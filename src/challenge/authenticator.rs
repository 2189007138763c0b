//! The MFA challenges: `ak-stage-authenticator-totp`, `ak-stage-authenticator-static`
//! and `ak-stage-authenticator-validate` (authentik's `AuthenticatorTOTPChallenge`,
//! `AuthenticatorStaticChallenge`, `AuthenticatorValidationChallenge`).

use serde::{Deserialize, Serialize};

use super::UserInfo;

/// `ak-stage-authenticator-totp`: set up a TOTP authenticator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticatorTotpChallenge {
    /// User info.
    #[serde(flatten)]
    pub user: UserInfo,
    /// `otpauth://totp/{issuer}:{username}?secret=…&algorithm=SHA1&digits=N&period=30&issuer=…`
    /// (carries the secret: shown only until the first valid code).
    pub config_url: String,
}

/// `ak-stage-authenticator-static`: recovery codes, shown once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticatorStaticChallenge {
    /// User info.
    #[serde(flatten)]
    pub user: UserInfo,
    /// The codes.
    pub codes: Vec<String>,
}

/// One device challenge of `ak-stage-authenticator-validate` (authentik's
/// `DeviceChallenge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceChallenge {
    /// `totp`, `static`, `webauthn`, …
    pub device_class: String,
    /// The device's id (`-1` for passwordless WebAuthn).
    pub device_uid: String,
    /// Class-specific data (`{}` for codes; WebAuthn's request options).
    pub challenge: serde_json::Map<String, serde_json::Value>,
    /// When the device was last used (RFC 3339), if ever.
    pub last_used: Option<String>,
}

/// A setup stage the user may choose (authentik's `SelectableStage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectableStage {
    /// The stage's pk.
    pub pk: String,
    /// The stage's name.
    pub name: String,
    /// e.g. `TOTP Authenticator Setup Stage`.
    pub verbose_name: String,
    /// e.g. `authentik_stages_authenticator_totp.authenticatortotpstage`.
    pub meta_model_name: String,
}

/// `ak-stage-authenticator-validate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthenticatorValidationChallenge {
    /// User info.
    #[serde(flatten)]
    pub user: UserInfo,
    /// One per device class the user can answer with.
    pub device_challenges: Vec<DeviceChallenge>,
    /// Setup stages to choose from (`not_configured_action: configure` with several);
    /// always present, empty when none.
    pub configuration_stages: Vec<SelectableStage>,
}
