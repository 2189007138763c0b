//! User delete (silent): deletes the pending (or logged-in) user and logs out.
//!
//! Asks "Delete your account?" first unless an earlier stage accepted this request's
//! POST ([`StageKind::confirmation`]).

use async_trait::async_trait;

use super::{Effect, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::events::{Event, EventAction};
use crate::model::UserDeleteStage;
use crate::plan::keys;
use crate::store::operation;

#[async_trait]
impl StageKind for UserDeleteStage {
    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_user_delete.userdeletestage",
            verbose_name: "User Delete Stage",
            form_component: "ak-stage-user-delete-form",
        }
    }

    fn confirmation(&self, _ctx: &StageContext<'_>) -> Option<String> {
        Some("Delete your account?".into())
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        // Only a logged-in user may delete an account, and only their own.
        let Some(request_user) = ctx.request_user else {
            return Ok(StageOutcome::Deny("No Pending User.".into()));
        };
        let target = match ctx.pending_user_record().await? {
            Some(p) if p.pk == request_user.pk => p,
            Some(_) => return Ok(StageOutcome::Deny("No Pending User.".into())),
            None => request_user.clone(),
        };
        // Fails (denies clearly) on a directory without management.
        ctx.env.users.require_admin(operation::DELETE_USER)?;
        ctx.effects.push(Effect::DeleteUser(target.pk.clone()));
        ctx.context.remove(keys::PENDING_USER);
        ctx.effects.logout = true;
        let mut event = Event::new(EventAction::UserDelete);
        event.user = Some(target.username.clone());
        event.flow = Some(ctx.flow.slug.clone());
        event.client_ip = ctx.request.client_ip.clone();
        ctx.effects.emit(event);
        Ok(StageOutcome::Done)
    }
}
