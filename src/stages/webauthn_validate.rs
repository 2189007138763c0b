//! What the authenticator-validation stage asks of WebAuthn: the assertion options of a
//! `webauthn` device challenge, and the check of the client's assertion. The stage
//! (`authenticator_validate`) owns the flow logic; this module owns the ceremony.
//!
//! Placeholder until the WebAuthn stages land: no options are offered and every
//! assertion is refused (fail closed).

#![allow(dead_code)]

use serde_json::Value;

use super::{StageContext, StageError};
use crate::model::AuthenticatorValidateStage;
use crate::store::{Device, User};

/// The `challenge` object of the `webauthn` device challenge for `devices` (the
/// user's WebAuthn devices; empty for passwordless, where any discoverable credential
/// may answer): `PublicKeyCredentialRequestOptions` as authentik sends them. The
/// ceremony's state is kept in the plan context and stays valid across re-renders of
/// the same stage. `None`: WebAuthn is not available (feature off).
pub(crate) async fn challenge(
    _ctx: &mut StageContext<'_>,
    _stage: &AuthenticatorValidateStage,
    _devices: &[Device],
) -> Result<Option<Value>, StageError> {
    Ok(None)
}

/// Checks the client's assertion (`webauthn` of the response) against the pending
/// ceremony: for `user` (`None`: passwordless, the device is found by credential id)
/// and records the use (signature counter) through
/// [`effects::use_device`](crate::effects). `Ok(Ok(device))`: valid; `Ok(Err(message))`:
/// refused, the message goes into `response_errors`.
pub(crate) async fn verify(
    _ctx: &mut StageContext<'_>,
    _stage: &AuthenticatorValidateStage,
    _user: Option<&User>,
    _assertion: &Value,
) -> Result<Result<Device, String>, StageError> {
    Ok(Err("WebAuthn is not available on this server.".into()))
}
