//! Deny (silent): denies access with the context's `deny_message` or the stage's,
//! followed by the messages of the policies that let the stage in.
//!
//! A policy bound to a *stage* that fails skips the stage (authentik's semantics); to
//! deny instead, bind a deny stage with the policy negated: when the policy fails, the
//! negated binding passes, the deny stage runs, and its challenge shows the policy's
//! messages (authentik shows only the deny message — our documented improvement).

use async_trait::async_trait;

use super::{StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::model::DenyStage;
use crate::plan::keys;

#[async_trait]
impl StageKind for DenyStage {
    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_deny.denystage",
            verbose_name: "Deny Stage",
            form_component: "ak-stage-deny-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let message = ctx
            .context
            .get_str(keys::DENY_MESSAGE)
            .map(str::to_owned)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                if self.deny_message.is_empty() {
                    "Permission denied".into()
                } else {
                    self.deny_message.clone()
                }
            });
        if ctx.policy_messages.is_empty() {
            return Ok(StageOutcome::Deny(message));
        }
        Ok(StageOutcome::Deny(format!(
            "{message}: {}",
            ctx.policy_messages.join("; ")
        )))
    }
}
