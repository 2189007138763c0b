//! Authenticator validation (authentik's `AuthenticatorValidateStageView`): the
//! pending user proves a second factor with one of their devices
//! ([`DeviceStore`](crate::store::DeviceStore)) of an allowed class.
//!
//! - **Device challenges**: one per class the user has within `device_classes` (the
//!   first device of each; WebAuthn's carries the request options for all the user's
//!   credentials, from [`webauthn_validate::challenge`]). A user whose only devices
//!   cannot be checked here (WebAuthn without the `webauthn` feature) is denied, never
//!   let through.
//! - **`code`** is tried against the user's TOTP devices (±1 time step) and then their
//!   static codes — only devices within `device_classes` (authentik tries every
//!   device). The use is recorded atomically ([`crate::effects::use_device`]): a time
//!   step or a static code is accepted once, even by concurrent requests, and a step
//!   retried after a save conflict does not find its own code spent. Failed codes are
//!   throttled in seconds ([`super::mfa_throttle`]).
//! - **`webauthn`**: the assertion, checked by [`webauthn_validate::verify`].
//! - **`selected_challenge`** must name an offered device challenge.
//! - **No device** of an allowed class: `not_configured_action` — skip (done), deny
//!   ("No (allowed) MFA authenticator configured."), or configure: one of
//!   `configuration_stages` runs next (inserted into the plan: directly when there is
//!   one, after the user's `selected_stage` when there are several; none → denied).
//! - **No pending user**: outside authentication flows the stage is done; in an
//!   authentication flow that allows WebAuthn it asks for a passkey (passwordless) and
//!   the credential's owner becomes the pending user.
//! - **`last_auth_threshold`**: the stage is done without asking when one of the user's
//!   allowed devices validated within the threshold. authentik keeps a signed cookie
//!   per browser; authflow uses the device's `last_used`, so the window is per user,
//!   not per browser (documented in docs/authentik-support.md).

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::authenticator_totp::mfa_event;
use super::validate_code::{CodeResult, check_code};
use super::{Response, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use super::{mfa_throttle, webauthn_validate};
use crate::challenge::{
    AuthenticatorValidationChallenge, Challenge, ChallengeBody, DeviceChallenge, ErrorDetail,
    SelectableStage, UserInfo,
};
use crate::events::EventAction;
use crate::model::{
    AuthenticatorValidateStage, DeviceClass, FlowDesignation, NON_FIELD_ERRORS,
    NotConfiguredAction, Stage, parse_timedelta,
};
use crate::plan::{PendingUser, keys};
use crate::store::{Device, User};

/// authentik's message for a user without an allowed device.
pub(crate) const NOT_CONFIGURED: &str = "No (allowed) MFA authenticator configured.";

/// What the stage asks of this user.
enum Ask {
    /// Prove a device: these challenges (and the devices behind them).
    Devices(Vec<DeviceChallenge>, Vec<Device>),
    /// Passwordless: a WebAuthn challenge for any discoverable credential.
    Passwordless(Vec<DeviceChallenge>),
    /// Pick one of these setup stages.
    Configure(Vec<SelectableStage>),
    /// The stage is over with this outcome.
    Outcome(Box<StageOutcome>),
}

fn outcome(o: StageOutcome) -> Ask {
    Ask::Outcome(Box::new(o))
}

/// Seconds since the epoch as RFC 3339 (UTC).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn device_challenge(
    class: DeviceClass,
    uid: &str,
    challenge: Map<String, Value>,
    last_used: Option<u64>,
) -> DeviceChallenge {
    DeviceChallenge {
        device_class: class.as_str().to_owned(),
        device_uid: uid.to_owned(),
        challenge,
        last_used: last_used.map(rfc3339),
    }
}

fn selectable(stage: &Stage) -> SelectableStage {
    let meta = stage.config.meta();
    SelectableStage {
        pk: stage.pk.to_string(),
        name: stage.name.clone(),
        verbose_name: meta.verbose_name.to_owned(),
        meta_model_name: meta.model_name.to_owned(),
    }
}

impl AuthenticatorValidateStage {
    fn allows(&self, class: DeviceClass) -> bool {
        self.device_classes.contains(&class)
    }

    /// The setup stages this stage may insert (those the definition still has).
    fn configuration(&self, ctx: &StageContext<'_>) -> Vec<SelectableStage> {
        self.configuration_stages
            .iter()
            .filter(|id| {
                ctx.definition
                    .inserted_binding(ctx.binding.pk, **id)
                    .is_some()
            })
            .filter_map(|id| ctx.definition.referenced_stages.get(id))
            .map(|s| selectable(s))
            .collect()
    }

    /// The pending user's record: `Ok(None)` when none is pending, `Err(())` when a
    /// pending user is set but is not a real user (pretended or vanished).
    async fn user(ctx: &StageContext<'_>) -> Result<Result<Option<User>, ()>, StageError> {
        if ctx.pending_user().is_none() {
            return Ok(Ok(None));
        }
        Ok(ctx.pending_user_record().await?.map(Some).ok_or(()))
    }

    async fn ask(&self, ctx: &mut StageContext<'_>) -> Result<Ask, StageError> {
        let user = match Self::user(ctx).await? {
            Ok(Some(user)) => user,
            // A pretended or vanished user has no devices, as in authentik.
            Err(()) => return Ok(self.not_configured(ctx, false)),
            Ok(None) => {
                if ctx.flow.designation != FlowDesignation::Authentication
                    || !self.allows(DeviceClass::Webauthn)
                {
                    return Ok(outcome(StageOutcome::Done));
                }
                return Ok(match webauthn_validate::challenge(ctx, self, &[]).await? {
                    Some(Value::Object(c)) => Ask::Passwordless(vec![device_challenge(
                        DeviceClass::Webauthn,
                        "-1",
                        c,
                        None,
                    )]),
                    _ => outcome(StageOutcome::Deny(
                        "This flow asks for a passkey, which this server cannot check; access is denied."
                            .into(),
                    )),
                });
            }
        };
        let devices: Vec<Device> = ctx
            .env
            .devices
            .devices(&user.pk)
            .await?
            .into_iter()
            .filter(|d| d.confirmed && self.allows(d.class()))
            .collect();
        if devices.is_empty() {
            return Ok(self.not_configured(ctx, true));
        }
        let threshold = parse_timedelta(&self.last_auth_threshold).unwrap_or(0);
        if threshold > 0 {
            let now = ctx.env.clock.now();
            if devices.iter().any(|d| {
                d.last_used
                    .is_some_and(|t| now.saturating_sub(t) < threshold)
            }) {
                return Ok(outcome(StageOutcome::Done));
            }
        }
        let mut challenges = Vec::new();
        for class in [DeviceClass::Totp, DeviceClass::Static] {
            if let Some(d) = devices.iter().find(|d| d.class() == class) {
                challenges.push(device_challenge(class, &d.id, Map::new(), d.last_used));
            }
        }
        let webauthn: Vec<Device> = devices
            .iter()
            .filter(|d| d.class() == DeviceClass::Webauthn)
            .cloned()
            .collect();
        if let Some(first) = webauthn.first() {
            if let Some(Value::Object(c)) =
                webauthn_validate::challenge(ctx, self, &webauthn).await?
            {
                challenges.push(device_challenge(
                    DeviceClass::Webauthn,
                    &first.id,
                    c,
                    first.last_used,
                ));
            }
        }
        if challenges.is_empty() {
            // The user has devices, just none this server can check: never let through.
            return Ok(outcome(StageOutcome::Deny(
                "Your authenticator cannot be checked by this server; access is denied.".into(),
            )));
        }
        Ok(Ask::Devices(challenges, devices))
    }

    /// `not_configured_action` for a user without an allowed device (`real`: a user
    /// who exists, who can set one up).
    fn not_configured(&self, ctx: &mut StageContext<'_>, real: bool) -> Ask {
        match self.not_configured_action {
            NotConfiguredAction::Skip => outcome(StageOutcome::Done),
            NotConfiguredAction::Deny => outcome(StageOutcome::Deny(NOT_CONFIGURED.into())),
            NotConfiguredAction::Configure => {
                let stages = if real {
                    self.configuration(ctx)
                } else {
                    Vec::new()
                };
                match stages.as_slice() {
                    [] => {
                        if real {
                            ctx.effects.emit(
                                crate::events::Event::new(EventAction::SystemException)
                                    .with("stage", ctx.stage.name.clone())
                                    .with("message", "Authenticator validation stage is set to configure user but no configuration flow is set."),
                            );
                        }
                        outcome(StageOutcome::Deny(NOT_CONFIGURED.into()))
                    }
                    [one] => {
                        ctx.context
                            .insert(keys::INSERT_STAGE, one.pk.clone().into());
                        outcome(StageOutcome::Done)
                    }
                    _ => Ask::Configure(stages),
                }
            }
        }
    }

    fn challenge_of(
        device_challenges: Vec<DeviceChallenge>,
        stages: Vec<SelectableStage>,
    ) -> Challenge {
        Challenge::new(ChallengeBody::AuthenticatorValidate(
            AuthenticatorValidationChallenge {
                user: UserInfo::default(),
                device_challenges,
                configuration_stages: stages,
            },
        ))
    }

    /// A successful validation with `device`.
    async fn validated(
        &self,
        ctx: &mut StageContext<'_>,
        user: &User,
        device: &Device,
    ) -> Result<StageOutcome, StageError> {
        mfa_throttle::success(ctx.env, &user.pk).await?;
        if !ctx.context.contains(keys::AUTH_METHOD) {
            ctx.context.insert(keys::AUTH_METHOD, "auth_mfa".into());
        }
        let (app, model) = match device.class() {
            DeviceClass::Totp => ("authentik_stages_authenticator_totp", "totpdevice"),
            DeviceClass::Static => ("authentik_stages_authenticator_static", "staticdevice"),
            _ => ("authentik_stages_authenticator_webauthn", "webauthndevice"),
        };
        let entry = json!({"pk": device.id, "app": app, "model_name": model, "name": device.name});
        let args = ctx
            .context
            .get_mut(keys::AUTH_METHOD_ARGS)
            .filter(|v| v.is_object());
        match args {
            Some(Value::Object(m)) => match m.get_mut("mfa_devices") {
                Some(Value::Array(list)) => list.push(entry),
                _ => {
                    m.insert("mfa_devices".into(), json!([entry]));
                }
            },
            _ => {
                ctx.context
                    .insert(keys::AUTH_METHOD_ARGS, json!({"mfa_devices": [entry]}));
            }
        }
        let event = mfa_event(ctx, EventAction::MfaValidated, &user.username)
            .with("device_class", device.class().as_str())
            .with("device", device.id.clone());
        ctx.effects.emit(event);
        Ok(StageOutcome::Done)
    }
}

#[async_trait]
impl StageKind for AuthenticatorValidateStage {
    fn component(&self) -> Option<&str> {
        Some("ak-stage-authenticator-validate")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_authenticator_validate.authenticatorvalidatestage",
            verbose_name: "Authenticator Validation Stage",
            form_component: "ak-stage-authenticator-validate-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        Ok(match self.ask(ctx).await? {
            Ask::Devices(c, _) | Ask::Passwordless(c) => {
                StageOutcome::Challenge(Self::challenge_of(c, Vec::new()))
            }
            Ask::Configure(stages) => {
                StageOutcome::Challenge(Self::challenge_of(Vec::new(), stages))
            }
            Ask::Outcome(o) => *o,
        })
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        let ask = self.ask(ctx).await?;
        let (offered, devices, passwordless) = match ask {
            Ask::Outcome(o) => return Ok(*o),
            Ask::Configure(stages) => {
                let chosen = response.get("selected_stage").and_then(Value::as_str);
                return Ok(
                    match chosen.and_then(|c| stages.iter().find(|s| s.pk == c)) {
                        Some(s) => {
                            ctx.context.insert(keys::INSERT_STAGE, s.pk.clone().into());
                            StageOutcome::Done
                        }
                        None => StageOutcome::Invalid(
                            Self::challenge_of(Vec::new(), stages).with_error(
                                "selected_stage",
                                ErrorDetail::invalid("Selected stage is invalid"),
                            ),
                        ),
                    },
                );
            }
            Ask::Devices(c, d) => (c, d, false),
            Ask::Passwordless(c) => (c, Vec::new(), true),
        };
        let invalid = |field: &str, message: &str| {
            StageOutcome::Invalid(
                Self::challenge_of(offered.clone(), Vec::new())
                    .with_error(field, ErrorDetail::invalid(message)),
            )
        };
        let offers = |class: DeviceClass| offered.iter().any(|c| c.device_class == class.as_str());
        if let Some(selected) = response.get("selected_challenge") {
            let class = selected.get("device_class").and_then(Value::as_str);
            let uid = selected.get("device_uid").map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let known = offered.iter().any(|c| {
                Some(c.device_class.as_str()) == class && Some(&c.device_uid) == uid.as_ref()
            });
            if !known {
                return Ok(invalid("selected_challenge", "invalid challenge selected"));
            }
        }
        if let Some(code) = response.get("code") {
            let Some(user) = Self::user(ctx).await?.ok().flatten() else {
                return Ok(invalid("code", "No compatible device class allowed"));
            };
            if !offers(DeviceClass::Totp) && !offers(DeviceClass::Static) {
                return Ok(invalid("code", "No compatible device class allowed"));
            }
            let code = code.as_str().unwrap_or("");
            return Ok(match check_code(ctx, &user, &devices, code).await? {
                CodeResult::Valid(device) => self.validated(ctx, &user, &device).await?,
                CodeResult::Throttled(message) => invalid("code", &message),
                CodeResult::Invalid(message) => {
                    super::identification::login_failed(ctx, &user.username).await?;
                    invalid("code", &message)
                }
            });
        }
        if let Some(assertion) = response.get("webauthn") {
            if !offers(DeviceClass::Webauthn) {
                return Ok(invalid("webauthn", "No compatible device class allowed"));
            }
            let user = if passwordless {
                None
            } else {
                Self::user(ctx).await?.ok().flatten()
            };
            if !passwordless && user.is_none() {
                return Ok(invalid("webauthn", "No compatible device class allowed"));
            }
            return Ok(
                match webauthn_validate::verify(ctx, self, user.as_ref(), assertion).await? {
                    Ok(device) => {
                        let owner = match user {
                            Some(u) => Some(u),
                            None => ctx.env.users.user(device.user.clone()).await?,
                        };
                        let Some(owner) = owner.filter(|u| u.pk == device.user) else {
                            return Ok(invalid("webauthn", "Invalid device"));
                        };
                        if passwordless {
                            ctx.context.set_pending_user(&PendingUser::of(&owner));
                            ctx.context
                                .insert(keys::AUTH_METHOD, "auth_webauthn_pwl".into());
                        }
                        self.validated(ctx, &owner, &device).await?
                    }
                    Err(message) => {
                        if let Some(u) = &user {
                            super::identification::login_failed(ctx, &u.username).await?;
                        }
                        invalid("webauthn", &message)
                    }
                },
            );
        }
        if response.contains_key("selected_challenge") {
            // A device choice alone: the same challenge again.
            return Ok(StageOutcome::Challenge(Self::challenge_of(
                offered,
                Vec::new(),
            )));
        }
        Ok(invalid(NON_FIELD_ERRORS, "Empty response"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
