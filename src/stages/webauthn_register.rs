//! The WebAuthn registration ceremony of the setup stage (feature `webauthn`).
//!
//! As authentik's `AuthenticatorWebAuthnStageView`: the challenge's `registration` is
//! the `PublicKeyCredentialCreationOptions` JSON (attestation `direct`,
//! `authenticatorSelection` from the stage's settings, `excludeCredentials` the user's
//! credentials), the response's `response` the browser's credential. Unlike authentik,
//! which draws a new challenge on every GET, the options are kept in the plan context
//! and the same ones come back on every render until a registration succeeds, so a
//! second tab or a reload does not invalidate the credential the browser is creating.

use serde_json::{Value, json};
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticatorAttachment as KanidmAttachment, RegistrationState,
};

use super::webauthn_core::{self as core, RelyingParty};
use super::{Effect, Response, StageContext, StageError, StageOutcome};
use crate::challenge::{AuthenticatorWebauthnChallenge, Challenge, ChallengeBody, ErrorDetail};
use crate::events::EventAction;
use crate::model::{AuthenticatorAttachment, AuthenticatorWebauthnStage, ResidentKeyRequirement};
use crate::store::{Device, DeviceSecret, User};

/// The pending registration (authentik's key).
const CONTEXT_KEY: &str = "goauthentik.io/stages/authenticator_webauthn/challenge";
/// Failed registrations so far.
const ATTEMPTS_KEY: &str = "goauthentik.io/stages/authenticator_webauthn/attempt";
/// authentik's name of a new WebAuthn device.
const DEVICE_NAME: &str = "WebAuthn Device";

/// The user to register a device for: the pending user, else the logged-in one.
async fn target_user(ctx: &StageContext<'_>) -> Result<Option<User>, StageError> {
    if ctx.pending_user().is_some() {
        return Ok(ctx.pending_user_record().await?);
    }
    Ok(ctx.request_user.cloned())
}

/// The pending registration of this stage for `user` at `rp`, if any.
fn pending(ctx: &StageContext<'_>, user: &User, rp: &RelyingParty) -> Option<(Value, Value)> {
    let p = ctx.context.get(CONTEXT_KEY)?;
    let same = p.get("stage").and_then(Value::as_str) == Some(&ctx.stage.pk.to_string())
        && p.get("user").and_then(Value::as_str) == Some(user.pk.as_str())
        && p.get("rp_id").and_then(Value::as_str) == Some(rp.id.as_str());
    same.then(|| (p.get("options").cloned(), p.get("state").cloned()))
        .and_then(|(o, s)| Some((o?, s?)))
}

/// Draws new creation options and keeps them (with the verifier's state) in the plan.
async fn start(
    stage: &AuthenticatorWebauthnStage,
    ctx: &mut StageContext<'_>,
    user: &User,
    rp: &RelyingParty,
) -> Result<Value, StageError> {
    let exclude: Vec<Vec<u8>> = ctx
        .env
        .devices
        .devices(&user.pk)
        .await?
        .iter()
        .filter_map(|d| match &d.secret {
            DeviceSecret::Webauthn { credential_id, .. } => core::decode_b64(credential_id),
            _ => None,
        })
        .collect();
    let handle = core::user_handle(&user.pk);
    let display = if user.name.trim().is_empty() {
        &user.username
    } else {
        &user.name
    };
    let verifier = core::verifier(rp);
    let internal = |e: webauthn_rs_core::error::WebauthnError| {
        StageError::Internal(format!("WebAuthn registration options: {e}"))
    };
    let builder = verifier
        .new_challenge_register_builder(handle.as_bytes(), &user.username, display)
        .map_err(internal)?
        .attestation(AttestationConveyancePreference::Direct)
        .user_verification_policy(core::policy(stage.user_verification))
        .exclude_credentials(Some(exclude))
        .require_resident_key(stage.resident_key_requirement == ResidentKeyRequirement::Required)
        .authenticator_attachment(stage.authenticator_attachment.map(|a| match a {
            AuthenticatorAttachment::Platform => KanidmAttachment::Platform,
            AuthenticatorAttachment::CrossPlatform => KanidmAttachment::CrossPlatform,
        }));
    let (ccr, state) = verifier
        .generate_challenge_register(builder)
        .map_err(internal)?;
    let mut options = serde_json::to_value(&ccr.public_key)
        .map_err(|e| StageError::Internal(format!("WebAuthn options: {e}")))?;
    if let Some(o) = options.as_object_mut() {
        // kanidm knows only required/discouraged; say what the stage asks for.
        if let Some(Value::Object(sel)) = o.get_mut("authenticatorSelection") {
            sel.insert(
                "residentKey".into(),
                json!(stage.resident_key_requirement.as_str()),
            );
        }
        if !stage.hints.is_empty() {
            o.insert("hints".into(), json!(stage.hints));
        }
    }
    let state = serde_json::to_value(&state)
        .map_err(|e| StageError::Internal(format!("WebAuthn state: {e}")))?;
    ctx.context.insert(
        CONTEXT_KEY,
        json!({
            "stage": ctx.stage.pk.to_string(),
            "user": user.pk.as_str(),
            "rp_id": rp.id,
            "options": options,
            "state": state,
        }),
    );
    Ok(options)
}

fn challenge_of(options: Value) -> Challenge {
    Challenge::new(ChallengeBody::AuthenticatorWebauthn(
        AuthenticatorWebauthnChallenge {
            user: Default::default(),
            registration: options,
        },
    ))
}

/// The user and relying party, or the outcome that denies.
async fn prerequisites(
    ctx: &StageContext<'_>,
) -> Result<Result<(User, RelyingParty), StageOutcome>, StageError> {
    let Some(user) = target_user(ctx).await? else {
        return Ok(Err(StageOutcome::Deny(
            "There is no user to set up a WebAuthn device for.".into(),
        )));
    };
    match core::relying_party(ctx.request) {
        Ok(rp) => Ok(Ok((user, rp))),
        Err(message) => Ok(Err(StageOutcome::Deny(message))),
    }
}

/// The challenge: the pending options, or new ones.
pub(super) async fn challenge(
    stage: &AuthenticatorWebauthnStage,
    ctx: &mut StageContext<'_>,
) -> Result<StageOutcome, StageError> {
    let (user, rp) = match prerequisites(ctx).await? {
        Ok(v) => v,
        Err(outcome) => return Ok(outcome),
    };
    let options = match pending(ctx, &user, &rp) {
        Some((options, _)) => options,
        None => start(stage, ctx, &user, &rp).await?,
    };
    Ok(StageOutcome::Challenge(challenge_of(options)))
}

/// Checks the credential and adds the device.
pub(super) async fn respond(
    stage: &AuthenticatorWebauthnStage,
    ctx: &mut StageContext<'_>,
    response: &Response,
) -> Result<StageOutcome, StageError> {
    let (user, rp) = match prerequisites(ctx).await? {
        Ok(v) => v,
        Err(outcome) => return Ok(outcome),
    };
    let Some((options, state)) = pending(ctx, &user, &rp) else {
        let options = start(stage, ctx, &user, &rp).await?;
        return Ok(invalid(
            options,
            "The registration expired; please try again.",
        ));
    };
    let refuse = |ctx: &mut StageContext<'_>, message: String| {
        let attempts = ctx
            .context
            .get(ATTEMPTS_KEY)
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        ctx.context.insert(ATTEMPTS_KEY, json!(attempts));
        if stage.max_attempts > 0 && attempts >= u64::from(stage.max_attempts) {
            return StageOutcome::Deny(
                "Exceeded maximum attempts. Contact your administrator for help.".into(),
            );
        }
        invalid(options.clone(), &message)
    };
    let credential = match response
        .get("response")
        .ok_or_else(|| "This field is required.".to_owned())
        .and_then(core::registration_credential)
    {
        Ok(c) => c,
        Err(message) => return Ok(refuse(ctx, message)),
    };
    let Ok(state) = serde_json::from_value::<RegistrationState>(state) else {
        ctx.context.remove(CONTEXT_KEY);
        return Err(StageError::Internal(
            "unreadable WebAuthn registration state".into(),
        ));
    };
    let registered = match core::verifier(&rp).register_credential(&credential, &state, None) {
        Ok(c) => c,
        Err(e) => return Ok(refuse(ctx, format!("Registration failed. Error: {e}"))),
    };
    let credential_id = core::b64url(&registered.cred_id);
    if ctx
        .env
        .devices
        .webauthn_device(&credential_id)
        .await?
        .is_some()
    {
        return Ok(refuse(ctx, "Credential ID already exists.".into()));
    }
    let stored = serde_json::to_value(&registered)
        .map_err(|e| StageError::Internal(format!("WebAuthn credential: {e}")))?;
    let device = Device {
        id: ctx.env.random.uuid().to_string(),
        user: user.pk.clone(),
        name: DEVICE_NAME.into(),
        created: ctx.env.clock.now(),
        last_used: None,
        confirmed: true,
        secret: DeviceSecret::Webauthn {
            credential_id,
            credential: stored,
            sign_count: registered.counter,
        },
    };
    let event = super::authenticator_totp::mfa_event(ctx, EventAction::DeviceAdded, &user.username)
        .with("device_class", "webauthn")
        .with("device", device.id.clone());
    ctx.effects.push(Effect::AddDevice(device));
    ctx.effects.emit(event);
    ctx.context.remove(CONTEXT_KEY);
    ctx.context.remove(ATTEMPTS_KEY);
    Ok(StageOutcome::Done)
}

fn invalid(options: Value, message: &str) -> StageOutcome {
    StageOutcome::Invalid(
        challenge_of(options).with_error("response", ErrorDetail::invalid(message)),
    )
}
