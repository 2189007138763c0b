//! User login: binds the pending user to the session. The engine rotates the session
//! id (session fixation defence).
//!
//! Without `remember_me_offset` the stage is silent: it runs directly after the POST
//! that identified the user (password, prompt, …); reached any other way (a GET) it
//! asks "Log in as {user}?" first ([`StageKind::confirmation`]). With a
//! `remember_me_offset` it asks itself, as authentik does (`ak-stage-user-login`,
//! answered with `remember_me`): that POST is the deliberate request, so no other
//! confirmation is asked. The login lasts `session_duration`, plus the offset when
//! `remember_me` is true.

use async_trait::async_trait;

use super::{Effect, Response, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::challenge::{Challenge, ChallengeBody, UserLoginChallenge};
use crate::events::{Event, EventAction};
use crate::model::{UserLoginStage, parse_timedelta};
use crate::plan::keys;
use crate::stages::Fields;

const COMPONENT: &str = "ak-stage-user-login";

impl UserLoginStage {
    /// Whether the stage asks "remember me" (authentik's `UserLoginStageView.dispatch`:
    /// `remember_me_offset` above zero).
    fn asks_remember_me(&self) -> bool {
        parse_timedelta(&self.remember_me_offset).is_ok_and(|s| s > 0)
    }

    fn build(&self) -> Challenge {
        Challenge::new(ChallengeBody::UserLogin(UserLoginChallenge::default()))
    }

    /// authentik's `UserLoginStageView.do_login`.
    async fn log_in(
        &self,
        ctx: &mut StageContext<'_>,
        remember: bool,
    ) -> Result<StageOutcome, StageError> {
        let Some(user) = ctx.pending_user_record().await? else {
            return Ok(StageOutcome::Deny("No Pending user to login.".into()));
        };
        if !user.is_active {
            return Ok(StageOutcome::Deny("User is not active.".into()));
        }
        let mut duration = parse_timedelta(&self.session_duration).map_err(StageError::Internal)?;
        if remember {
            let offset = parse_timedelta(&self.remember_me_offset).map_err(StageError::Internal)?;
            duration = duration.saturating_add(offset);
        }
        ctx.effects.login = Some(user.pk);
        ctx.effects.login_duration = (duration > 0).then_some(duration);
        // A recovery link followed (the email stage's flag) ends the other sessions too.
        ctx.effects.terminate_other_sessions = self.terminate_other_sessions
            || ctx.context.get(keys::END_OTHER_SESSIONS) == Some(&serde_json::Value::Bool(true));
        ctx.effects.login_writes.push(Effect::AdjustReputation {
            ip: ctx.request.client_ip.clone(),
            username: Some(user.username.clone()),
            delta: 1,
        });
        let method = ctx
            .context
            .get_str(keys::AUTH_METHOD)
            .unwrap_or("")
            .to_owned();
        let mut event = Event::new(EventAction::Login).with("auth_method", method);
        event.user = Some(user.username.clone());
        event.flow = Some(ctx.flow.slug.clone());
        event.client_ip = ctx.request.client_ip.clone();
        ctx.effects.login_writes.push(Effect::Emit(event));
        Ok(StageOutcome::Done)
    }
}

#[async_trait]
impl StageKind for UserLoginStage {
    fn component(&self) -> Option<&str> {
        self.asks_remember_me().then_some(COMPONENT)
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_user_login.userloginstage",
            verbose_name: "User Login Stage",
            form_component: "ak-stage-user-login-form",
        }
    }

    fn confirmation(&self, ctx: &StageContext<'_>) -> Option<String> {
        if self.asks_remember_me() {
            // Its own challenge is the question; answering it is the deliberate request.
            return None;
        }
        Some(match ctx.pending_user() {
            Some(p) if !p.username.is_empty() => format!("Log in as {}?", p.username),
            _ => "Log in?".into(),
        })
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        if self.asks_remember_me() {
            return Ok(StageOutcome::Challenge(self.build()));
        }
        self.log_in(ctx, false).await
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        if !self.asks_remember_me() {
            return self.log_in(ctx, false).await;
        }
        let mut fields = Fields::new(response);
        let Some(remember) = fields.boolean("remember_me", true) else {
            let mut c = self.build();
            c.response_errors = fields.into_errors();
            return Ok(StageOutcome::Invalid(c));
        };
        self.log_in(ctx, remember).await
    }
}
