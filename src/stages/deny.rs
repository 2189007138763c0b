//! Deny (silent): denies access with the context's `deny_message` or the stage's.

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
        Ok(StageOutcome::Deny(message))
    }
}
