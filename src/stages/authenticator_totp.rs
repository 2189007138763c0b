//! TOTP setup (authentik's `AuthenticatorTOTPStageView`): the user scans the
//! `otpauth://` URL and proves it with a first code.
//!
//! The unconfirmed secret (160 random bits from the engine's
//! [`Random`](crate::random::Random)) is kept in the plan context — under a key the
//! inspector redacts — until the first valid code; a wrong code shows the same
//! challenge (same secret) with an error on `code`. The valid code's time step is
//! recorded on the new device, so the same code cannot validate right after, and counts
//! as the device's last use (so a validation stage's `last_auth_threshold` sees the
//! setup as a recent validation: the user just proved the device). Once the
//! device is added ([`Effect::AddDevice`], applied after the step's save) the secret
//! leaves the context and never appears in a challenge again. Failed codes are
//! throttled in seconds (see [`super::mfa_throttle`]).

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    Effect, Response, StageContext, StageError, StageKind, StageMeta, StageOutcome, mfa_throttle,
    otp,
};
use crate::challenge::{
    AuthenticatorTotpChallenge, Challenge, ChallengeBody, ErrorDetail, UserInfo,
};
use crate::events::{Event, EventAction};
use crate::model::AuthenticatorTotpStage;
use crate::store::{Device, DeviceSecret, User};

/// Seconds per time step.
const PERIOD: u32 = 30;
/// Bytes of a new secret (django-otp's default: 160 bits).
const KEY_BYTES: usize = 20;
/// The issuer when the flow has no title.
const DEFAULT_ISSUER: &str = "authflow";

/// The user a setup stage configures a device for: the pending user, else the
/// logged-in one (authentik's `get_pending_user`).
pub(crate) async fn setup_user(ctx: &StageContext<'_>) -> Result<Option<User>, StageError> {
    if ctx.pending_user().is_some() {
        return Ok(ctx.pending_user_record().await?);
    }
    Ok(ctx.request_user.cloned())
}

/// An MFA event about `username` in this flow, from this client, naming the stage.
pub(crate) fn mfa_event(ctx: &StageContext<'_>, action: EventAction, username: &str) -> Event {
    let mut event = Event::new(action).with("stage", ctx.stage.name.clone());
    event.user = Some(username.to_owned());
    event.flow = Some(ctx.flow.slug.clone());
    event.client_ip = ctx.request.client_ip.clone();
    event
}

/// The message for a setup stage without a (real) user.
pub(crate) const NO_USER: &str = "No pending user.";

fn context_key(ctx: &StageContext<'_>) -> String {
    format!("authflow/authenticator_totp/{}/secret", ctx.stage.pk)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// The unconfirmed secret of this stage, drawn on first use.
fn secret(ctx: &mut StageContext<'_>, user: &User) -> Vec<u8> {
    let key = context_key(ctx);
    let stored = ctx.context.get(&key).and_then(|v| {
        (v.get("user").and_then(Value::as_str) == Some(user.pk.as_str()))
            .then(|| v.get("key").and_then(Value::as_str).and_then(unhex))
            .flatten()
    });
    if let Some(k) = stored.filter(|k| k.len() >= 16) {
        return k;
    }
    let mut k = vec![0u8; KEY_BYTES];
    ctx.env.random.fill(&mut k);
    ctx.context
        .insert(key, json!({"user": user.pk.as_str(), "key": hex(&k)}));
    k
}

/// `otpauth://totp/{issuer}:{username}?secret=…&algorithm=SHA1&digits=N&period=30&issuer=…`
pub(crate) fn config_url(issuer: &str, username: &str, key: &[u8], digits: u8) -> String {
    let issuer = otp::url_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&algorithm=SHA1&digits={digits}&period={PERIOD}&issuer={issuer}",
        otp::url_encode(username),
        otp::base32(key),
    )
}

impl AuthenticatorTotpStage {
    fn challenge_for(&self, ctx: &mut StageContext<'_>, user: &User) -> Challenge {
        let key = secret(ctx, user);
        let issuer = if ctx.flow.title.trim().is_empty() {
            DEFAULT_ISSUER
        } else {
            ctx.flow.title.as_str()
        };
        Challenge::new(ChallengeBody::AuthenticatorTotp(
            AuthenticatorTotpChallenge {
                user: UserInfo::default(),
                config_url: config_url(issuer, &user.username, &key, self.digits),
            },
        ))
    }
}

#[async_trait]
impl StageKind for AuthenticatorTotpStage {
    fn component(&self) -> Option<&str> {
        Some("ak-stage-authenticator-totp")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_authenticator_totp.authenticatortotpstage",
            verbose_name: "TOTP Authenticator Setup Stage",
            form_component: "ak-stage-authenticator-totp-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let Some(user) = setup_user(ctx).await? else {
            return Ok(StageOutcome::Deny(NO_USER.into()));
        };
        Ok(StageOutcome::Challenge(self.challenge_for(ctx, &user)))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        let Some(user) = setup_user(ctx).await? else {
            return Ok(StageOutcome::Deny(NO_USER.into()));
        };
        let invalid = |ctx: &mut StageContext<'_>, message: String| {
            StageOutcome::Invalid(
                self.challenge_for(ctx, &user)
                    .with_error("code", ErrorDetail::invalid(message)),
            )
        };
        let Some(code) = response
            .get("code")
            .and_then(Value::as_str)
            .filter(|c| !c.trim().is_empty())
        else {
            return Ok(StageOutcome::Invalid(
                self.challenge_for(ctx, &user).with_error(
                    "code",
                    ErrorDetail::new("This field is required.", "required"),
                ),
            ));
        };
        if let Some(wait) = mfa_throttle::check(ctx.env, ctx.effects, &user.pk).await? {
            return Ok(invalid(ctx, mfa_throttle::refused_message(wait)));
        }
        let key = secret(ctx, &user);
        let now = ctx.env.clock.now();
        let Some(step) = otp::matching_step(&key, self.digits, PERIOD, now, code) else {
            let event = mfa_event(ctx, EventAction::LoginFailed, &user.username)
                .with("message", "Code does not match");
            ctx.effects.emit(event);
            return Ok(invalid(ctx, "Code does not match".into()));
        };
        mfa_throttle::success(ctx.env, &user.pk).await?;
        let id = ctx.env.random.uuid().to_string();
        let device = Device {
            id: id.clone(),
            user: user.pk.clone(),
            name: self
                .friendly_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "TOTP Device".into()),
            created: now,
            last_used: Some(now),
            confirmed: true,
            secret: DeviceSecret::Totp {
                key,
                digits: self.digits,
                period: PERIOD,
                last_step: Some(step),
            },
        };
        ctx.context.remove(&context_key(ctx));
        ctx.effects.push(Effect::AddDevice(device));
        let event = mfa_event(ctx, EventAction::DeviceAdded, &user.username)
            .with("device_class", "totp")
            .with("device", id);
        ctx.effects.emit(event);
        Ok(StageOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_url_shape() {
        let url = config_url("My Co", "a b@x", b"12345678901234567890", 6);
        assert_eq!(
            url,
            "otpauth://totp/My%20Co:a%20b%40x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=6&period=30&issuer=My%20Co"
        );
    }

    #[test]
    fn hex_roundtrip() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }
}
