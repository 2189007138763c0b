//! `xak-flow-redirect` stage: sends the user to a fixed URL or into another flow.

use async_trait::async_trait;

use super::{Response, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::challenge::{Challenge, ChallengeBody, RedirectChallenge};
use crate::model::{RedirectMode, RedirectStage};
use crate::plan::keys;

const FLOW_SCHEME: &str = "ak-flow://";

#[async_trait]
impl StageKind for RedirectStage {
    fn component(&self) -> Option<&str> {
        Some("xak-flow-redirect")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_redirect.redirectstage",
            verbose_name: "Redirect Stage",
            form_component: "ak-stage-redirect-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let target = ctx
            .context
            .get_str(keys::REDIRECT_STAGE_TARGET)
            .map(str::to_owned);
        if let Some(t) = target.filter(|t| !t.is_empty()) {
            match t.strip_prefix(FLOW_SCHEME) {
                Some(rest) => {
                    // authentik's `RedirectStageView.parse_target`: the flow is the URL's
                    // host; a flow that does not exist falls back to the stage's target.
                    let slug = rest.split(['/', '?', '#']).next().unwrap_or("");
                    if !slug.is_empty() && ctx.env.flows.revision(slug).await?.is_some() {
                        return Ok(StageOutcome::RedirectToFlow {
                            slug: slug.to_owned(),
                            keep_context: self.keep_context,
                        });
                    }
                }
                None => {
                    return Ok(StageOutcome::Challenge(Challenge::new(
                        ChallengeBody::Redirect(RedirectChallenge { to: t }),
                    )));
                }
            }
        }
        match self.mode {
            RedirectMode::Flow => match &self.target_flow {
                Some(slug) => Ok(StageOutcome::RedirectToFlow {
                    slug: slug.clone(),
                    keep_context: self.keep_context,
                }),
                None => Ok(StageOutcome::Deny("No target flow configured.".into())),
            },
            RedirectMode::Static if self.target_static.is_empty() => {
                Ok(StageOutcome::Deny("No redirect target configured.".into()))
            }
            RedirectMode::Static => Ok(StageOutcome::Challenge(Challenge::new(
                ChallengeBody::Redirect(RedirectChallenge {
                    to: self.target_static.clone(),
                }),
            ))),
        }
    }

    async fn respond(
        &self,
        _ctx: &mut StageContext<'_>,
        _response: &Response,
    ) -> Result<StageOutcome, StageError> {
        Ok(StageOutcome::Done)
    }
}
