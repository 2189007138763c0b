//! `ak-stage-captcha` (authentik's `CaptchaStageView`): shows the provider's widget
//! and verifies the token it posts with the engine's
//! [`CaptchaVerifier`](crate::captcha::CaptchaVerifier) (siteverify; see
//! [`crate::captcha`]).
//!
//! Fails closed: an engine without a verifier, or a stage without a private key,
//! denies the flow with a message saying so; a provider that cannot be asked refuses
//! the token and shows the challenge again (the flow stays usable, the user may
//! retry). A passed verification leaves the provider's answer in the plan context
//! under `captcha` (`{"response": {…}, "stage": name}`), as authentik does, for
//! policies that look at the score.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Fields, Response, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::captcha::{FAILED_TO_VALIDATE, SiteverifyRequest, Verdict, judge};
use crate::challenge::{CaptchaChallenge, Challenge, ChallengeBody, ErrorDetail};
use crate::events::{Event, EventAction};
use crate::model::CaptchaStage;

/// The plan-context key of a passed verification.
pub const PLAN_CONTEXT_CAPTCHA: &str = "captcha";
/// A context key that overrides the stage's site key (authentik's).
const SITE_KEY_OVERRIDE: &str = "goauthentik.io/stages/captcha/site_key";
/// Longest token sent to the provider (hCaptcha's are the longest, a few KiB).
const MAX_TOKEN: usize = 32 * 1024;

/// Why the stage cannot verify anything, if it cannot.
fn unusable(stage: &CaptchaStage, ctx: &StageContext<'_>) -> Option<&'static str> {
    if ctx.env.captcha.is_none() {
        Some(
            "Captcha verification is not available: this server has no captcha verifier configured.",
        )
    } else if stage.private_key.is_empty() {
        Some("Captcha verification is not available: the captcha stage has no private key.")
    } else {
        None
    }
}

fn challenge_of(stage: &CaptchaStage, ctx: &StageContext<'_>) -> Challenge {
    let site_key = ctx
        .context
        .get_str(SITE_KEY_OVERRIDE)
        .unwrap_or(&stage.public_key)
        .to_owned();
    Challenge::new(ChallengeBody::Captcha(CaptchaChallenge {
        site_key,
        js_url: stage.js_url.clone(),
        interactive: stage.interactive,
        ..Default::default()
    }))
}

#[async_trait]
impl StageKind for CaptchaStage {
    fn component(&self) -> Option<&str> {
        Some("ak-stage-captcha")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_captcha.captchastage",
            verbose_name: "Captcha Stage",
            form_component: "ak-stage-captcha-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        if let Some(message) = unusable(self, ctx) {
            return Ok(StageOutcome::Deny(message.into()));
        }
        Ok(StageOutcome::Challenge(challenge_of(self, ctx)))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        if let Some(message) = unusable(self, ctx) {
            return Ok(StageOutcome::Deny(message.into()));
        }
        let mut fields = Fields::new(response);
        let token = fields.string("token", true, true, MAX_TOKEN);
        let Some(token) = token else {
            let mut c = challenge_of(self, ctx);
            c.response_errors = fields.into_errors();
            return Ok(StageOutcome::Invalid(c));
        };
        let Some(verifier) = ctx.env.captcha.clone() else {
            return Ok(StageOutcome::Deny(FAILED_TO_VALIDATE.into()));
        };
        let request = SiteverifyRequest {
            api_url: &self.api_url,
            secret: &self.private_key,
            response: &token,
            remote_ip: ctx.request.client_ip.as_deref(),
            content_type: self.request_content_type,
        };
        let answer = match verifier.siteverify(&request).await {
            Ok(answer) => answer,
            Err(e) => {
                // authentik's `RequestException` branch: the token is refused.
                ctx.effects.emit(
                    Event::new(EventAction::SystemException)
                        .with("stage", "captcha")
                        .with("message", e.to_string()),
                );
                let c = challenge_of(self, ctx).with_error(
                    "token",
                    ErrorDetail::invalid(format!(
                        "{FAILED_TO_VALIDATE}: the captcha provider could not be reached, please try again."
                    )),
                );
                return Ok(StageOutcome::Invalid(c));
            }
        };
        match judge(self, &answer) {
            Verdict::Passed => {
                ctx.context.insert(
                    PLAN_CONTEXT_CAPTCHA,
                    json!({"response": Value::Object(answer), "stage": ctx.stage.name}),
                );
                Ok(StageOutcome::Done)
            }
            Verdict::Refused(message) => Ok(StageOutcome::Invalid(
                challenge_of(self, ctx).with_error("token", ErrorDetail::invalid(message)),
            )),
        }
    }
}
