//! User logout (silent): ends the session's login (the engine rotates the id).
//!
//! Asks "Log out?" first unless an earlier stage accepted this request's POST
//! ([`StageKind::confirmation`]).

use async_trait::async_trait;

use super::{StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::events::{Event, EventAction};
use crate::model::UserLogoutStage;

#[async_trait]
impl StageKind for UserLogoutStage {
    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_user_logout.userlogoutstage",
            verbose_name: "User Logout Stage",
            form_component: "ak-stage-user-logout-form",
        }
    }

    fn confirmation(&self, _ctx: &StageContext<'_>) -> Option<String> {
        Some("Log out?".into())
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        if let Some(user) = ctx.request_user {
            let mut event = Event::new(EventAction::Logout);
            event.user = Some(user.username.clone());
            event.flow = Some(ctx.flow.slug.clone());
            event.client_ip = ctx.request.client_ip.clone();
            ctx.effects.emit(event);
        }
        ctx.effects.logout = true;
        ctx.effects.cancel_login();
        Ok(StageOutcome::Done)
    }
}
