//! WebAuthn setup (authentik's `AuthenticatorWebAuthnStageView`): registers a passkey
//! or security key for the pending (or logged-in) user. The ceremony lives in
//! `webauthn_register` (feature `webauthn`); without the feature the stage denies
//! access, naming the feature.

use async_trait::async_trait;

use super::{Response, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::model::AuthenticatorWebauthnStage;

/// The component of the setup challenge.
pub(crate) const COMPONENT: &str = "ak-stage-authenticator-webauthn";

/// Why the stage denies when authflow was built without WebAuthn.
#[cfg(not(feature = "webauthn"))]
const NO_FEATURE: &str = "Setting up a WebAuthn device needs authflow's `webauthn` cargo \
                          feature, which this server was built without; access is denied.";

#[async_trait]
impl StageKind for AuthenticatorWebauthnStage {
    fn component(&self) -> Option<&str> {
        Some(COMPONENT)
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_authenticator_webauthn.authenticatorwebauthnstage",
            verbose_name: "WebAuthn Authenticator Setup Stage",
            form_component: "ak-stage-authenticator-webauthn-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        #[cfg(feature = "webauthn")]
        {
            super::webauthn_register::challenge(self, ctx).await
        }
        #[cfg(not(feature = "webauthn"))]
        {
            let _ = ctx;
            Ok(StageOutcome::Deny(NO_FEATURE.into()))
        }
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        #[cfg(feature = "webauthn")]
        {
            super::webauthn_register::respond(self, ctx, response).await
        }
        #[cfg(not(feature = "webauthn"))]
        {
            let _ = (ctx, response);
            Ok(StageOutcome::Deny(NO_FEATURE.into()))
        }
    }
}
