//! The `code` of an authenticator-validation response, checked against the user's
//! TOTP devices and static codes (authentik's `validate_challenge_code`), throttled and
//! recorded atomically.

use super::{StageContext, StageError, mfa_throttle, otp};
use crate::effects::use_device;
use crate::model::DeviceClass;
use crate::store::{Device, DeviceSecret, DeviceUse, User};

/// authentik's message for a code that matches no device.
pub(crate) const INVALID_CODE: &str =
    "Invalid Token. Please ensure the time on your device is accurate and try again.";

/// What a code proved.
pub(crate) enum CodeResult {
    /// This device accepted it (the use is recorded).
    Valid(Device),
    /// The user must wait before trying again (nothing was checked).
    Throttled(String),
    /// No device accepted it.
    Invalid(String),
}

/// Tries `code` against `devices` (the user's allowed devices): each TOTP device
/// (±1 step; the step is then recorded, so it is never accepted twice), then each
/// static device (the code's digest is spent).
pub(crate) async fn check_code(
    ctx: &mut StageContext<'_>,
    user: &User,
    devices: &[Device],
    code: &str,
) -> Result<CodeResult, StageError> {
    let code = code.trim();
    if code.is_empty() || code.len() > 256 {
        return Ok(CodeResult::Invalid(INVALID_CODE.into()));
    }
    if let Some(wait) = mfa_throttle::check(ctx.env, ctx.effects, &user.pk).await? {
        return Ok(CodeResult::Throttled(mfa_throttle::refused_message(wait)));
    }
    let now = ctx.env.clock.now();
    for device in devices.iter().filter(|d| d.class() == DeviceClass::Totp) {
        let DeviceSecret::Totp {
            key,
            digits,
            period,
            ..
        } = &device.secret
        else {
            continue;
        };
        let Some(step) = otp::matching_step(key, *digits, *period, now, code) else {
            continue;
        };
        if use_device(
            ctx.env,
            ctx.effects,
            &user.pk,
            &device.id,
            DeviceUse::TotpStep(step),
        )
        .await?
        {
            return Ok(CodeResult::Valid(device.clone()));
        }
    }
    let digest = crate::hashing::token_digest(&code.to_ascii_lowercase());
    for device in devices.iter().filter(|d| d.class() == DeviceClass::Static) {
        if use_device(
            ctx.env,
            ctx.effects,
            &user.pk,
            &device.id,
            DeviceUse::StaticToken(digest.clone()),
        )
        .await?
        {
            return Ok(CodeResult::Valid(device.clone()));
        }
    }
    Ok(CodeResult::Invalid(INVALID_CODE.into()))
}
