//! `ak-stage-authenticator-webauthn`: register a WebAuthn credential.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::UserInfo;

/// `ak-stage-authenticator-webauthn` (authentik's `AuthenticatorWebAuthnChallenge`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthenticatorWebauthnChallenge {
    /// User info.
    #[serde(flatten)]
    pub user: UserInfo,
    /// `PublicKeyCredentialCreationOptions` as JSON (binary fields base64url without
    /// padding), for `navigator.credentials.create({publicKey: …})`.
    pub registration: Value,
}
