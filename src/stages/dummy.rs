//! `ak-stage-dummy`: passes on any response (tests, placeholders).

use async_trait::async_trait;

use super::{Response, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::challenge::{Challenge, ChallengeBody, DummyChallenge};
use crate::model::DummyStage;

#[async_trait]
impl StageKind for DummyStage {
    fn component(&self) -> Option<&str> {
        Some("ak-stage-dummy")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_dummy.dummystage",
            verbose_name: "Dummy Stage",
            form_component: "ak-stage-dummy-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        if self.throw_error {
            return Err(StageError::Internal(
                "dummy stage is configured to throw an error".into(),
            ));
        }
        Ok(StageOutcome::Challenge(Challenge::new(
            ChallengeBody::Dummy(DummyChallenge {
                name: ctx.stage.name.clone(),
            }),
        )))
    }

    async fn respond(
        &self,
        _ctx: &mut StageContext<'_>,
        _response: &Response,
    ) -> Result<StageOutcome, StageError> {
        Ok(StageOutcome::Done)
    }
}
