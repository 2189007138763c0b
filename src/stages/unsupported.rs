//! A stage kind authflow does not implement: always denies (fails closed).

use async_trait::async_trait;

use super::{StageContext, StageError, StageKind, StageOutcome};
use crate::model::UnsupportedStage;

#[async_trait]
impl StageKind for UnsupportedStage {
    async fn challenge(&self, _ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        Ok(StageOutcome::Deny(format!(
            "This flow needs the stage kind `{}`, which authflow does not support; access is denied.",
            self.model
        )))
    }
}
