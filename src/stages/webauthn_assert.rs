//! The WebAuthn assertion ceremony behind [`super`] (feature `webauthn`).

use serde_json::{Value, json};
use webauthn_rs_core::proto::{AuthenticationState, Credential, UserVerificationPolicy};

use super::super::webauthn_core::{self as core, RelyingParty};
use super::super::{StageContext, StageError};
use crate::effects;
use crate::model::{AuthenticatorValidateStage, UserVerification};
use crate::store::{Device, DeviceSecret, DeviceUse, User};

/// The pending assertion challenge.
const CONTEXT_KEY: &str = "goauthentik.io/stages/authenticator_validate/webauthn";
/// authentik's message for an unknown or foreign credential.
const INVALID_DEVICE: &str = "Invalid device";

fn user_verification(stage: &AuthenticatorValidateStage) -> UserVerification {
    match stage.webauthn_user_verification.as_str() {
        "required" => UserVerification::Required,
        "discouraged" => UserVerification::Discouraged,
        _ => UserVerification::Preferred,
    }
}

/// The stored credential of `device`, ready for verification: its counter is the
/// device's, and unless the stage requires verification the registration's UV
/// history is not enforced (authentik's `require_user_verification` is only set for
/// `required`).
fn credential_of(device: &Device, uv: UserVerification) -> Option<Credential> {
    let DeviceSecret::Webauthn {
        credential,
        sign_count,
        ..
    } = &device.secret
    else {
        return None;
    };
    let mut c: Credential = serde_json::from_value(credential.clone()).ok()?;
    c.counter = *sign_count;
    if uv != UserVerification::Required {
        c.user_verified = false;
        c.registration_policy = UserVerificationPolicy::Discouraged_DO_NOT_USE;
    }
    Some(c)
}

/// The pending ceremony of this stage at `rp`: `(options, state)`.
fn pending(
    ctx: &StageContext<'_>,
    rp: &RelyingParty,
    passwordless: bool,
) -> Option<(Value, Value)> {
    let p = ctx.context.get(CONTEXT_KEY)?;
    let same = p.get("stage").and_then(Value::as_str) == Some(&ctx.stage.pk.to_string())
        && p.get("rp_id").and_then(Value::as_str) == Some(rp.id.as_str())
        && p.get("passwordless").and_then(Value::as_bool) == Some(passwordless);
    if !same {
        return None;
    }
    Some((p.get("options")?.clone(), p.get("state")?.clone()))
}

pub(super) async fn challenge(
    ctx: &mut StageContext<'_>,
    stage: &AuthenticatorValidateStage,
    devices: &[Device],
) -> Result<Option<Value>, StageError> {
    let Ok(rp) = core::relying_party(ctx.request) else {
        return Ok(None);
    };
    let uv = user_verification(stage);
    let credentials: Vec<Credential> = devices
        .iter()
        .filter_map(|d| credential_of(d, uv))
        .collect();
    let passwordless = credentials.is_empty();
    if let Some((options, _)) = pending(ctx, &rp, passwordless) {
        return Ok(Some(options));
    }
    let verifier = core::verifier(&rp);
    let internal = |e: webauthn_rs_core::error::WebauthnError| {
        StageError::Internal(format!("WebAuthn assertion options: {e}"))
    };
    let builder = verifier
        .new_challenge_authenticate_builder(credentials, Some(core::policy(uv)))
        .map_err(internal)?
        .allow_backup_eligible_upgrade(true);
    let (rcr, mut state) = verifier
        .generate_challenge_authenticate(builder)
        .map_err(internal)?;
    // The devices are looked up again when the assertion comes back.
    state.set_allowed_credentials(Vec::new());
    let options = serde_json::to_value(&rcr.public_key)
        .map_err(|e| StageError::Internal(format!("WebAuthn options: {e}")))?;
    let state = serde_json::to_value(&state)
        .map_err(|e| StageError::Internal(format!("WebAuthn state: {e}")))?;
    ctx.context.insert(
        CONTEXT_KEY,
        json!({
            "stage": ctx.stage.pk.to_string(),
            "rp_id": rp.id,
            "passwordless": passwordless,
            "options": options,
            "state": state,
        }),
    );
    Ok(Some(options))
}

pub(super) async fn verify(
    ctx: &mut StageContext<'_>,
    stage: &AuthenticatorValidateStage,
    user: Option<&User>,
    assertion: &Value,
) -> Result<Result<Device, String>, StageError> {
    let rp = match core::relying_party(ctx.request) {
        Ok(rp) => rp,
        Err(message) => return Ok(Err(message)),
    };
    let state = ctx
        .context
        .get(CONTEXT_KEY)
        .filter(|p| {
            p.get("stage").and_then(Value::as_str) == Some(&ctx.stage.pk.to_string())
                && p.get("rp_id").and_then(Value::as_str) == Some(rp.id.as_str())
        })
        .and_then(|p| p.get("state"))
        .and_then(|s| serde_json::from_value::<AuthenticationState>(s.clone()).ok());
    let Some(state) = state else {
        return Ok(Err(
            "No WebAuthn challenge is pending; please try again.".into()
        ));
    };
    let credential = match core::assertion_credential(assertion) {
        Ok(c) => c,
        Err(_) => return Ok(Err(INVALID_DEVICE.into())),
    };
    let credential_id = core::b64url(&credential.raw_id);
    let Some(device) = ctx.env.devices.webauthn_device(&credential_id).await? else {
        return Ok(Err(INVALID_DEVICE.into()));
    };
    if user.is_some_and(|u| u.pk != device.user) {
        return Ok(Err(INVALID_DEVICE.into()));
    }
    if let Some(handle) = credential.response.user_handle.as_deref() {
        if !handle.is_empty() && !core::handle_matches(handle, &device.user) {
            return Ok(Err(INVALID_DEVICE.into()));
        }
    }
    let uv = user_verification(stage);
    let Some(stored) = credential_of(&device, uv) else {
        return Ok(Err(INVALID_DEVICE.into()));
    };
    let result =
        match core::verifier(&rp).authenticate_single_credential(&credential, &state, &stored) {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("Assertion failed ({e})."))),
        };
    let counter = result.counter();
    let accepted = effects::use_device(
        ctx.env,
        ctx.effects,
        &device.user,
        &device.id,
        DeviceUse::WebauthnCounter(counter),
    )
    .await?;
    if !accepted {
        return Ok(Err(
            "Assertion failed (the signature counter did not move forward; the \
             authenticator may have been cloned)."
                .into(),
        ));
    }
    // Consumed: the same assertion (or challenge) is never accepted again.
    ctx.context.remove(CONTEXT_KEY);
    let mut device = device;
    if let DeviceSecret::Webauthn { sign_count, .. } = &mut device.secret {
        *sign_count = counter;
    }
    device.last_used = Some(ctx.env.clock.now());
    Ok(Ok(device))
}
