//! What the authenticator-validation stage asks of WebAuthn: the assertion options of a
//! `webauthn` device challenge, and the check of the client's assertion. The stage
//! (`authenticator_validate`) owns the flow logic; this module owns the ceremony.
//!
//! With the `webauthn` feature the ceremony is authentik's
//! (`get_webauthn_challenge`, `get_webauthn_challenge_without_user`,
//! `validate_challenge_webauthn` in `authenticator_validate/challenge.py`), with these
//! differences:
//! - the options (and their challenge) are kept in the plan context and the same ones
//!   come back on every render of the same stage until an assertion succeeds, so a
//!   client that POSTs `selected_challenge` (or reloads) and then signs the challenge
//!   it got first is accepted (authentik's #15890/#24419);
//! - a successful assertion consumes the challenge: it cannot be replayed;
//! - the signature counter must move forward (or stay 0 for authenticators without
//!   one), recorded atomically through [`effects::use_device`](crate::effects);
//! - a `userHandle`, when sent, must name the device's owner.
//!
//! With `webauthn_user_verification: preferred` (or `discouraged`) an assertion without
//! the UV flag is accepted, as authentik does; `required` demands it.
//!
//! Without the feature no options are offered and every assertion is refused (fail
//! closed).

use serde_json::Value;

use super::{StageContext, StageError};
use crate::model::AuthenticatorValidateStage;
use crate::store::{Device, User};

/// The `challenge` object of the `webauthn` device challenge for `devices` (the
/// user's WebAuthn devices; empty for passwordless, where any discoverable credential
/// may answer): `PublicKeyCredentialRequestOptions` as authentik sends them. The
/// ceremony's state is kept in the plan context and stays valid across re-renders of
/// the same stage. `None`: WebAuthn is not available (feature off, or the request has
/// no usable origin).
pub(crate) async fn challenge(
    ctx: &mut StageContext<'_>,
    stage: &AuthenticatorValidateStage,
    devices: &[Device],
) -> Result<Option<Value>, StageError> {
    #[cfg(feature = "webauthn")]
    {
        ceremony::challenge(ctx, stage, devices).await
    }
    #[cfg(not(feature = "webauthn"))]
    {
        let _ = (ctx, stage, devices);
        Ok(None)
    }
}

/// Checks the client's assertion (`webauthn` of the response) against the pending
/// ceremony: for `user` (`None`: passwordless, the device is found by credential id)
/// and records the use (signature counter) through
/// [`effects::use_device`](crate::effects). `Ok(Ok(device))`: valid (the device as
/// stored after the use); `Ok(Err(message))`: refused, the message goes into
/// `response_errors`.
pub(crate) async fn verify(
    ctx: &mut StageContext<'_>,
    stage: &AuthenticatorValidateStage,
    user: Option<&User>,
    assertion: &Value,
) -> Result<Result<Device, String>, StageError> {
    #[cfg(feature = "webauthn")]
    {
        ceremony::verify(ctx, stage, user, assertion).await
    }
    #[cfg(not(feature = "webauthn"))]
    {
        let _ = (ctx, stage, user, assertion);
        Ok(Err("WebAuthn is not available on this server.".into()))
    }
}

#[cfg(feature = "webauthn")]
#[path = "webauthn_assert.rs"]
mod ceremony;
