//! User login (silent): binds the pending user to the session. The engine rotates
//! the session id (session fixation defence).
//!
//! Runs directly after the POST that identified the user (password, prompt, …);
//! reached any other way (a GET) it asks "Log in as {user}?" first
//! ([`StageKind::confirmation`]).

use async_trait::async_trait;

use super::{StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::events::{Event, EventAction};
use crate::model::{UserLoginStage, parse_timedelta};
use crate::plan::keys;

#[async_trait]
impl StageKind for UserLoginStage {
    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_user_login.userloginstage",
            verbose_name: "User Login Stage",
            form_component: "ak-stage-user-login-form",
        }
    }

    fn confirmation(&self, ctx: &StageContext<'_>) -> Option<String> {
        Some(match ctx.pending_user() {
            Some(p) if !p.username.is_empty() => format!("Log in as {}?", p.username),
            _ => "Log in?".into(),
        })
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let Some(user) = ctx.pending_user_record().await? else {
            return Ok(StageOutcome::Deny("No Pending user to login.".into()));
        };
        if !user.is_active {
            return Ok(StageOutcome::Deny("User is not active.".into()));
        }
        let duration = parse_timedelta(&self.session_duration).map_err(StageError::Internal)?;
        ctx.effects.login = Some(user.pk);
        ctx.effects.login_duration = (duration > 0).then_some(duration);
        ctx.env
            .reputation
            .adjust(ctx.request.client_ip.as_deref(), Some(&user.username), 1)
            .await?;
        let method = ctx
            .context
            .get_str(keys::AUTH_METHOD)
            .unwrap_or("")
            .to_owned();
        let mut event = Event::new(EventAction::Login).with("auth_method", method);
        event.user = Some(user.username.clone());
        event.flow = Some(ctx.flow.slug.clone());
        event.client_ip = ctx.request.client_ip.clone();
        ctx.env.events.emit(event);
        Ok(StageOutcome::Done)
    }
}
