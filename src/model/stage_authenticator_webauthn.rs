//! Settings of the WebAuthn setup stage (authentik's `AuthenticatorWebAuthnStage`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ValidationErrors;

/// WebAuthn user verification (authentik's `UserVerification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserVerification {
    /// The authenticator must verify the user (PIN, biometrics).
    Required,
    /// Verify when the authenticator can (authentik's default); an assertion without
    /// the UV flag is accepted.
    #[default]
    Preferred,
    /// Do not ask for verification.
    Discouraged,
}

impl UserVerification {
    /// Wire name (`required`, `preferred`, `discouraged`).
    pub const fn as_str(&self) -> &'static str {
        match self {
            UserVerification::Required => "required",
            UserVerification::Preferred => "preferred",
            UserVerification::Discouraged => "discouraged",
        }
    }
}

/// Whether the credential must be discoverable (a passkey usable without a username;
/// authentik's `ResidentKeyRequirement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResidentKeyRequirement {
    /// Must be discoverable.
    Required,
    /// Discoverable if the authenticator can (authentik's default).
    #[default]
    Preferred,
    /// Server-side credential preferred.
    Discouraged,
}

impl ResidentKeyRequirement {
    /// Wire name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            ResidentKeyRequirement::Required => "required",
            ResidentKeyRequirement::Preferred => "preferred",
            ResidentKeyRequirement::Discouraged => "discouraged",
        }
    }
}

/// Which kind of authenticator may be registered (authentik's `AuthenticatorAttachment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthenticatorAttachment {
    /// Built into the device (Touch ID, Windows Hello).
    #[serde(rename = "platform")]
    Platform,
    /// Roaming (a security key).
    #[serde(rename = "cross-platform")]
    CrossPlatform,
}

impl AuthenticatorAttachment {
    /// Wire name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            AuthenticatorAttachment::Platform => "platform",
            AuthenticatorAttachment::CrossPlatform => "cross-platform",
        }
    }
}

/// Settings of the WebAuthn setup stage: registers a passkey or security key for the
/// pending (or logged-in) user. Needs authflow's `webauthn` cargo feature; without it
/// the stage denies access, naming the feature.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthenticatorWebauthnStage {
    /// Name shown when the validation stage offers this stage for setup.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// Slug of a flow the user can run to set up a device (shown in settings).
    #[serde(default)]
    pub configure_flow: Option<String>,
    /// User verification asked of the authenticator.
    #[serde(default)]
    pub user_verification: UserVerification,
    /// Discoverable credential requirement.
    #[serde(default)]
    pub resident_key_requirement: ResidentKeyRequirement,
    /// Restrict to platform or roaming authenticators (`None`: either).
    #[serde(default)]
    pub authenticator_attachment: Option<AuthenticatorAttachment>,
    /// Hints for the browser (`security-key`, `client-device`, `hybrid`), sent as the
    /// options' `hints`.
    #[serde(default)]
    pub hints: Vec<String>,
    /// authentik's allowed device types (AAGUIDs). authflow has no device-type
    /// database (FIDO metadata), so a non-empty list is refused rather than ignored.
    #[serde(default)]
    pub device_type_restrictions: Vec<Value>,
    /// Failed registrations before access is denied (0: unlimited).
    #[serde(default)]
    pub max_attempts: u32,
}

/// The hints authentik accepts.
const HINTS: &[&str] = &["security-key", "client-device", "hybrid"];

impl AuthenticatorWebauthnStage {
    /// Adds an error for each setting authflow cannot honour.
    pub(crate) fn check(&self, errors: &mut ValidationErrors) {
        if !self.device_type_restrictions.is_empty() {
            errors.add(
                "device_type_restrictions",
                "`device_type_restrictions` is set, but authflow has no WebAuthn device-type \
                 (FIDO metadata) database to enforce it; leave it empty"
                    .to_owned(),
            );
        }
        for h in &self.hints {
            if !HINTS.contains(&h.as_str()) {
                errors.add(
                    "hints",
                    format!("unknown hint `{h}`; authentik's are {}", HINTS.join(", ")),
                );
            }
        }
    }
}
