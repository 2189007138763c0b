//! Invitation (silent; authentik's `InvitationStageView`): finds the invitation named
//! by the request, checks it, and merges its `fixed_data` into the prompt data.
//!
//! The token is read from the query's `itoken`, then `token`, then `prompt_data.token`
//! (authentik's `get_token`). An unknown, malformed, expired or foreign-flow token
//! counts as none: with `continue_flow_without_invitation` the flow goes on, else it
//! is denied. authentik answers every case "Invalid invite/invite not found"; authflow
//! says which (expired, wrong flow) — the token is unguessable, so this reveals
//! nothing to someone without it.
//!
//! **Single-use invitations are consumed when the account is created, not when the
//! link is opened** (authentik deletes them on the first GET, so a mail scanner or a
//! reload burns the link: authentik #16587, #12770). The stage only records the
//! invitation in the plan context (`invitation`, `invitation_in_effect`); the user
//! write stage, when it creates the account, queues an
//! [`Effect::ConsumeInvitation`](crate::effects::Effect::ConsumeInvitation) *before*
//! the account's creation ([`consume_on_create`]). After the commit the engine removes
//! the invitation atomically ([`InvitationStore::consume`]) and creates the account
//! only if that removal was its own: of two enrollments racing with one single-use
//! invitation, one gets the account and the other is denied "This invitation has
//! already been used.". Should the creation fail afterwards (the username was taken
//! meanwhile), the invitation is put back. A flow that never creates an account (no
//! user write, or one that only updates) never consumes it.

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Effect, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::events::{Event, EventAction};
use crate::model::InvitationStage;
use crate::request::query_param;
use crate::store::{Invitation, InvitationStore};

/// The plan-context key of the invitation in effect (`{"pk", "name", "single_use"}`).
pub const PLAN_CONTEXT_INVITATION: &str = "invitation";
/// The plan-context key set to `true` once an invitation applies.
pub const PLAN_CONTEXT_INVITATION_IN_EFFECT: &str = "invitation_in_effect";

/// The message of a missing or unknown invitation (authentik's).
pub const INVITATION_NOT_FOUND: &str = "Invalid invite/invite not found";
/// The message of an expired invitation.
pub const INVITATION_EXPIRED: &str = "This invitation has expired.";
/// The message of an invitation for another flow.
pub const INVITATION_OTHER_FLOW: &str = "This invitation is not valid for this flow.";
/// The message of a single-use invitation already spent (or any invitation deleted
/// while its flow ran).
pub const INVITATION_USED: &str = crate::effects::INVITATION_USED;

fn token(ctx: &StageContext<'_>) -> Option<String> {
    let query = &ctx.request.query;
    query_param(query, "itoken")
        .or_else(|| query_param(query, "token"))
        .or_else(|| {
            ctx.context
                .prompt_data()
                .and_then(|d| d.get("token"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// authentik's `always_merger`: objects merge key by key, lists are appended, any
/// other value of `from` replaces the one in `into`.
fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            (Some(Value::Array(a)), Value::Array(b)) => a.extend(b.iter().cloned()),
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Finds the invitation the request names, or why none applies.
async fn find(
    ctx: &StageContext<'_>,
    store: &dyn InvitationStore,
) -> Result<Result<Invitation, &'static str>, StageError> {
    let Some(token) = token(ctx) else {
        return Ok(Err(INVITATION_NOT_FOUND));
    };
    let Ok(pk) = Uuid::parse_str(&token) else {
        return Ok(Err(INVITATION_NOT_FOUND));
    };
    let Some(invitation) = store.invitation(pk).await? else {
        return Ok(Err(INVITATION_NOT_FOUND));
    };
    if invitation.is_expired(ctx.env.clock.now()) {
        return Ok(Err(INVITATION_EXPIRED));
    }
    if invitation.flow.is_some_and(|f| f != ctx.flow.pk) {
        return Ok(Err(INVITATION_OTHER_FLOW));
    }
    Ok(Ok(invitation))
}

#[async_trait]
impl StageKind for InvitationStage {
    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_invitation.invitationstage",
            verbose_name: "Invitation Stage",
            form_component: "ak-stage-invitation-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let store = ctx.env.invitations.clone();
        let invitation = match find(ctx, store.as_ref()).await? {
            Ok(i) => i,
            Err(_) if self.continue_flow_without_invitation => return Ok(StageOutcome::Done),
            Err(message) => return Ok(StageOutcome::Deny(message.into())),
        };
        ctx.context
            .insert(PLAN_CONTEXT_INVITATION_IN_EFFECT, Value::Bool(true));
        ctx.context.insert(
            PLAN_CONTEXT_INVITATION,
            json!({
                "pk": invitation.pk.to_string(),
                "name": invitation.name,
                "single_use": invitation.single_use,
            }),
        );
        ctx.context
            .update_prompt_data(|data| merge(data, &invitation.fixed_data));
        // The name only: the pk is the link's secret.
        let mut event =
            Event::new(EventAction::InvitationUsed).with("invitation", invitation.name.clone());
        event.flow = Some(ctx.flow.slug.clone());
        event.client_ip = ctx.request.client_ip.clone();
        ctx.effects.emit(event);
        Ok(StageOutcome::Done)
    }
}

/// Called by the user write stage when it creates an account. The invitation in
/// effect must still be valid: one deleted (revoked, or a single-use one spent) or
/// expired since the flow applied it denies the account. A single-use one is queued
/// for consumption before the account's creation (see the [module docs](self);
/// checked again, atomically, after the commit). Answers the denial, if any.
pub(crate) async fn consume_on_create(
    ctx: &mut StageContext<'_>,
) -> Result<Option<&'static str>, StageError> {
    let Some(entry) = ctx.context.get(PLAN_CONTEXT_INVITATION) else {
        return Ok(None);
    };
    let single_use = entry.get("single_use").and_then(Value::as_bool) == Some(true);
    let Some(pk) = entry
        .get("pk")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        return Ok(Some(INVITATION_NOT_FOUND));
    };
    let Some(invitation) = ctx.env.invitations.invitation(pk).await? else {
        return Ok(Some(INVITATION_USED));
    };
    if invitation.is_expired(ctx.env.clock.now()) {
        return Ok(Some(INVITATION_EXPIRED));
    }
    if single_use {
        ctx.effects.push(Effect::ConsumeInvitation(invitation));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_like_deepmerge() {
        let mut into = json!({"a": 1, "attributes": {"x": 1}, "l": [1]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let from = json!({"a": 2, "attributes": {"y": 2}, "l": [2], "n": "v"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        merge(&mut into, &from);
        assert_eq!(
            Value::Object(into),
            json!({"a": 2, "attributes": {"x": 1, "y": 2}, "l": [1, 2], "n": "v"})
        );
    }
}
