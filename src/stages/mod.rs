//! Built-in stages and the [`StageKind`] trait hosts implement for their own.
//!
//! A stage is a two-phase ceremony: [`StageKind::challenge`] says what the client must
//! do (or finishes silently), [`StageKind::respond`] checks the client's answer. All
//! per-stage state lives in the plan context, never in the stage, so any server
//! instance can serve any step.

mod authenticator_static;
mod authenticator_totp;
mod authenticator_validate;
mod authenticator_webauthn;
mod captcha;
mod consent;
mod deny;
mod dummy;
mod email;
mod email_template;
mod fields;
mod identification;
mod invitation;
mod mfa_throttle;
mod otp;
mod password;
mod prompt;
mod prompt_expressions;
mod redirect;
mod unsupported;
mod user_delete;
mod user_login;
mod user_logout;
mod user_write;
mod validate_code;
#[cfg(feature = "webauthn")]
mod webauthn_core;
#[cfg(feature = "webauthn")]
mod webauthn_register;
#[cfg(all(test, feature = "webauthn"))]
mod webauthn_seam_tests;
mod webauthn_validate;

use async_trait::async_trait;
use serde_json::{Map, Value};

pub use crate::effects::{Effect, Effects};
pub use captcha::PLAN_CONTEXT_CAPTCHA;
pub use email::{
    LINK_EXPIRED, LINK_OTHER_FLOW, LINK_UNKNOWN, LINK_USED, NO_EXTERNAL_URL, NO_MAILER,
    SEND_FAILED, TOO_MANY,
};
pub use fields::{DEFAULT_MAX_LEN, FieldError, Fields};
pub use invitation::{
    INVITATION_EXPIRED, INVITATION_NOT_FOUND, INVITATION_OTHER_FLOW, INVITATION_USED,
    PLAN_CONTEXT_INVITATION, PLAN_CONTEXT_INVITATION_IN_EFFECT,
};

use crate::challenge::{AccessDeniedChallenge, Challenge, ChallengeBody};
use crate::env::Services;
use crate::model::{Flow, FlowStageBinding, Stage, StageConfig};
use crate::plan::{PendingUser, PlanContext};
use crate::request::FlowRequest;
use crate::store::{FlowDefinition, StoreError, User};

/// A client's response to a challenge: the JSON object it posted.
pub type Response = Map<String, Value>;

/// What a stage decided.
#[derive(Debug, Clone)]
pub enum StageOutcome {
    /// Show this challenge; the stage stays current.
    Challenge(Challenge),
    /// The response was invalid; the challenge carries `response_errors`. The binding's
    /// `invalid_response_action` decides between showing it and restarting.
    Invalid(Challenge),
    /// The stage is done; the engine moves to the next one.
    Done,
    /// Deny access with this message (authentik's `stage_invalid`): the plan is
    /// dropped (or restarted, if the binding says so).
    Deny(String),
    /// Continue in another flow: the engine plans it and redirects the client there.
    RedirectToFlow {
        /// Target flow slug.
        slug: String,
        /// Carry this flow's context over.
        keep_context: bool,
    },
}

/// An error inside a stage.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StageError {
    /// A store failed: the request fails with [`crate::Error::Store`] and nothing of
    /// this step is saved. Except [`StoreError::Busy`] (the challenge again, with an
    /// error asking to retry) and [`StoreError::Unsupported`] (the stage is denied with
    /// a message naming the operation the user directory does not support).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or unexpected state: the client gets `ak-stage-flow-error` with a request id.
    #[error("{0}")]
    Internal(String),
}

/// What a stage sees and may change.
pub struct StageContext<'a> {
    /// The engine's services (users, reputation, events, clock, …).
    pub env: &'a Services,
    /// The request.
    pub request: &'a FlowRequest,
    /// The flow.
    pub flow: &'a Flow,
    /// The whole flow definition (for validation policies).
    pub definition: &'a FlowDefinition,
    /// The binding being run.
    pub binding: &'a FlowStageBinding,
    /// The stage being run.
    pub stage: &'a Stage,
    /// The plan context.
    pub context: &'a mut PlanContext,
    /// The planned stages from this one on (current first): what a flow token made
    /// now resumes.
    pub remaining: &'a [crate::plan::PlannedStage],
    /// The logged-in user, if any.
    pub request_user: Option<&'a User>,
    /// Messages of the binding's policies that let this stage in (see
    /// [`PlannedStage::messages`](crate::plan::PlannedStage::messages)).
    pub policy_messages: &'a [String],
    /// What the stage asks for: login/logout, and the writes (users, reputation,
    /// events) the engine applies once after the session was saved. Stages must not
    /// write through `env` themselves: a step is retried when its save conflicts with
    /// a concurrent request, so a direct write could happen twice (see
    /// [`crate::effects`]).
    pub effects: &'a mut Effects,
    /// The expression evaluator and the host's policy evaluators (prompt expressions,
    /// validation policies).
    pub hooks: &'a crate::policy::PolicyHooks,
}

impl StageContext<'_> {
    /// The pending user from the context.
    pub fn pending_user(&self) -> Option<PendingUser> {
        self.context.pending_user()
    }

    /// The pending user loaded from the directory (`None` when missing or pretended),
    /// as this step's pending writes leave it (a user created by an earlier stage of
    /// the same request is found under its pre-drawn id; see
    /// [`Effects::pending_user`]).
    pub async fn pending_user_record(&self) -> Result<Option<User>, StoreError> {
        match self.pending_user().and_then(|p| p.pk) {
            Some(pk) => match self.effects.pending_user(&pk) {
                Some(pending) => Ok(pending),
                None => self.env.users.user(pk).await,
            },
            None => Ok(None),
        }
    }

    /// An access-denied challenge (user info is filled in by the engine).
    pub fn access_denied(&self, message: impl Into<String>) -> Challenge {
        Challenge::new(ChallengeBody::AccessDenied(AccessDeniedChallenge {
            error_message: Some(message.into()),
            ..Default::default()
        }))
    }

    /// The `next` value of the flow's query, if any.
    pub fn next_param(&self) -> Option<String> {
        crate::request::query_param(&self.request.query, "next")
    }
}

/// Names a stage kind for the inspector and the API (authentik's model metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageMeta {
    /// e.g. `authentik_stages_identification.identificationstage`.
    pub model_name: &'static str,
    /// e.g. `Identification Stage`.
    pub verbose_name: &'static str,
    /// The admin form component, e.g. `ak-stage-identification-form`.
    pub form_component: &'static str,
}

/// A kind of stage. Built-in stages implement it; hosts implement it for their own,
/// register it by name ([`EngineBuilder::register_stage`](crate::EngineBuilder::register_stage))
/// and refer to it with a [`CustomStage`](crate::model::CustomStage) of that name.
///
/// ```
/// use authflow::stages::{StageKind, StageContext, StageOutcome, StageError, Response};
/// use authflow::challenge::{Challenge, ChallengeBody, CustomChallenge};
///
/// /// Asks the user to accept the terms of service.
/// struct Terms;
///
/// #[async_trait::async_trait]
/// impl StageKind for Terms {
///     fn component(&self) -> Option<&str> { Some("x-terms") }
///     async fn challenge(&self, _ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
///         Ok(StageOutcome::Challenge(Challenge::new(ChallengeBody::Custom(CustomChallenge {
///             component: "x-terms".into(),
///             fields: Default::default(),
///         }))))
///     }
///     async fn respond(&self, ctx: &mut StageContext<'_>, response: &Response) -> Result<StageOutcome, StageError> {
///         if response.get("accept").and_then(|v| v.as_bool()) == Some(true) {
///             Ok(StageOutcome::Done)
///         } else {
///             Ok(StageOutcome::Deny("Terms not accepted.".into()))
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait StageKind: Send + Sync {
    /// The component of the challenge this stage shows (`None`, the default, for
    /// silent stages). A response naming another component is refused without
    /// reaching the stage.
    fn component(&self) -> Option<&str> {
        None
    }

    /// Metadata for the inspector.
    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "custom",
            verbose_name: "Custom Stage",
            form_component: "",
        }
    }

    /// The question this stage asks before it does something the user must mean —
    /// delete, log out, log in, write a user — e.g. `"Delete your account?"`. `None`
    /// (the default) for stages without side effects.
    ///
    /// A stage that answers `Some` never runs in answer to a GET or to a POST that no
    /// earlier stage of the same request accepted: the engine first answers an
    /// `ak-stage-consent` challenge with this text as `header_text`, and runs the stage
    /// only when a POST with `component: ak-stage-consent` echoes that challenge's
    /// token (compared in constant time). A POST whose response an earlier stage
    /// accepted (a password POST followed by user login, a prompt POST followed by
    /// user write) already is the user's deliberate request: the stage then runs
    /// directly. Host stages with side effects should answer `Some` too, and return
    /// their writes as [`Effect`]s in [`StageContext::effects`] rather than make them:
    /// the engine applies them once, after the session was saved.
    fn confirmation(&self, ctx: &StageContext<'_>) -> Option<String> {
        let _ = ctx;
        None
    }

    /// Called when the stage becomes current and on every GET.
    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError>;

    /// Called with the client's response. The default (for silent stages) behaves as
    /// on entry.
    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        let _ = response;
        self.challenge(ctx).await
    }
}

impl StageConfig {
    /// The behaviour of a built-in stage kind; `None` for [`StageConfig::Custom`],
    /// which the engine's [`Registry`](crate::registry::Registry) resolves
    /// ([`StageConfig::kind`]).
    pub fn builtin_kind(&self) -> Option<&dyn StageKind> {
        Some(match self {
            StageConfig::Identification(s) => s,
            StageConfig::Password(s) => s,
            StageConfig::Prompt(s) => s,
            StageConfig::UserWrite(s) => s,
            StageConfig::UserLogin(s) => s,
            StageConfig::UserLogout(s) => s,
            StageConfig::UserDelete(s) => s,
            StageConfig::Deny(s) => s,
            StageConfig::Dummy(s) => s,
            StageConfig::Redirect(s) => s,
            StageConfig::Consent(s) => s,
            StageConfig::AuthenticatorValidate(s) => s,
            StageConfig::AuthenticatorTotp(s) => s,
            StageConfig::AuthenticatorStatic(s) => s,
            StageConfig::Captcha(s) => s,
            StageConfig::Invitation(s) => s,
            StageConfig::AuthenticatorWebauthn(s) => s,
            StageConfig::Email(s) => s,
            StageConfig::Unsupported(s) => s,
            StageConfig::Custom(_) => return None,
        })
    }

    /// The inspector's metadata of this stage kind without a registry (custom stages:
    /// the default of [`StageKind::meta`]).
    pub fn meta(&self) -> StageMeta {
        match self.builtin_kind() {
            Some(kind) => kind.meta(),
            None => StageMeta {
                model_name: "custom",
                verbose_name: "Custom Stage",
                form_component: "",
            },
        }
    }
}
