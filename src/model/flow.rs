//! Flows, stage bindings and policy bindings.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    AuthenticationRequirement, BindingId, DeniedAction, FlowDesignation, FlowId, FlowLayout,
    GroupId, InvalidResponseAction, PolicyBindingId, PolicyEngineMode, PolicyId, StageId, UserId,
    ValidationErrors, validate_slug,
};

/// The background authentik shows when a flow sets none.
pub const DEFAULT_BACKGROUND: &str = "/static/dist/assets/images/flow_background.jpg";

/// A flow: an ordered list of stages bound with policies (authentik's `Flow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// Primary key.
    pub pk: FlowId,
    /// Id of the policy-binding target this flow is (authentik's `policybindingmodel_ptr_id`).
    #[serde(default = "Uuid::new_v4")]
    pub policybindingmodel_ptr_id: Uuid,
    /// Display name.
    pub name: String,
    /// Unique URL name: 1–50 characters of `[-a-zA-Z0-9_]`.
    pub slug: String,
    /// Title shown to users; may contain `%(app)s` and `%(user)s`.
    pub title: String,
    /// What the flow is for.
    #[serde(default)]
    pub designation: FlowDesignation,
    /// Who may start it.
    #[serde(default)]
    pub authentication: AuthenticationRequirement,
    /// How the flow's own policy bindings combine.
    #[serde(default)]
    pub policy_engine_mode: PolicyEngineMode,
    /// What happens when the flow does not apply.
    #[serde(default)]
    pub denied_action: DeniedAction,
    /// Interface layout.
    #[serde(default)]
    pub layout: FlowLayout,
    /// UI compatibility mode (no effect on the engine).
    #[serde(default)]
    pub compatibility_mode: bool,
    /// Background image URL; empty means the default.
    #[serde(default)]
    pub background: String,
}

impl Flow {
    /// A flow with authentik's defaults for every other field.
    pub fn new(
        slug: impl Into<String>,
        name: impl Into<String>,
        designation: FlowDesignation,
    ) -> Self {
        let name = name.into();
        Self {
            pk: FlowId::new(),
            policybindingmodel_ptr_id: Uuid::new_v4(),
            slug: slug.into(),
            title: name.clone(),
            name,
            designation,
            authentication: AuthenticationRequirement::None,
            policy_engine_mode: PolicyEngineMode::Any,
            denied_action: DeniedAction::MessageContinue,
            layout: FlowLayout::Stacked,
            compatibility_mode: false,
            background: String::new(),
        }
    }

    /// Sets the title.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Sets the authentication requirement.
    pub fn with_authentication(mut self, requirement: AuthenticationRequirement) -> Self {
        self.authentication = requirement;
        self
    }

    /// The background to show: the configured one or [`DEFAULT_BACKGROUND`].
    pub fn background_url(&self) -> &str {
        if self.background.is_empty() {
            DEFAULT_BACKGROUND
        } else {
            &self.background
        }
    }

    /// Field checks that need no store: slug format, non-empty name and title.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Err(m) = validate_slug(&self.slug) {
            errors.add("slug", m);
        }
        if self.name.trim().is_empty() {
            errors.add("name", "This field may not be blank.");
        }
        if self.title.trim().is_empty() {
            errors.add("title", "This field may not be blank.");
        }
        errors.into_result()
    }
}

/// Binds a stage into a flow at a position (authentik's `FlowStageBinding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowStageBinding {
    /// Primary key.
    pub pk: BindingId,
    /// Id of the policy-binding target this binding is.
    #[serde(default = "Uuid::new_v4")]
    pub policybindingmodel_ptr_id: Uuid,
    /// The flow.
    pub target: FlowId,
    /// The stage.
    pub stage: StageId,
    /// Position; lower runs first. Equal orders run in ascending `pk` order.
    pub order: i32,
    /// Evaluate the binding's policies when planning (default false).
    #[serde(default)]
    pub evaluate_on_plan: bool,
    /// Evaluate the binding's policies again when the stage becomes current (default true).
    #[serde(default = "default_true")]
    pub re_evaluate_policies: bool,
    /// How the binding's policies combine.
    #[serde(default)]
    pub policy_engine_mode: PolicyEngineMode,
    /// What an invalid response does.
    #[serde(default)]
    pub invalid_response_action: InvalidResponseAction,
}

fn default_true() -> bool {
    true
}

impl FlowStageBinding {
    /// A binding with authentik's defaults (`re_evaluate_policies` on, `retry`).
    pub fn new(target: FlowId, stage: StageId, order: i32) -> Self {
        Self {
            pk: BindingId::new(),
            policybindingmodel_ptr_id: Uuid::new_v4(),
            target,
            stage,
            order,
            evaluate_on_plan: false,
            re_evaluate_policies: true,
            policy_engine_mode: PolicyEngineMode::Any,
            invalid_response_action: InvalidResponseAction::Retry,
        }
    }

    /// authentik's API rule: at least one of `evaluate_on_plan` / `re_evaluate_policies`.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        if !self.evaluate_on_plan && !self.re_evaluate_policies {
            return Err(ValidationErrors::field(
                super::NON_FIELD_ERRORS,
                "Either evaluation on plan or evaluation on run must be enabled",
            ));
        }
        Ok(())
    }
}

/// What a policy binding is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "pk")]
pub enum BindingTarget {
    /// A flow's own policies (checked when planning).
    Flow(FlowId),
    /// A flow-stage binding's policies.
    ///
    /// **A failing policy here skips the stage; it does not deny the flow**
    /// (authentik's semantics): an IP check bound to a password stage that fails lets
    /// the flow go on without that stage. To deny, bind the policy *negated* to a deny
    /// stage ([`DenyStage`](crate::model::DenyStage)) placed where the check belongs:
    /// when the policy fails the deny stage runs and shows the policy's messages. To
    /// refuse the whole flow, bind the policy to the flow ([`BindingTarget::Flow`]).
    Stage(BindingId),
}

/// What a policy binding checks: exactly one of a policy, a group or a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "pk")]
pub enum BindingSubject {
    /// Run a policy.
    Policy(PolicyId),
    /// Pass when the user is in the group (or a child group of it).
    Group(GroupId),
    /// Pass when the user is this user.
    User(UserId),
}

impl BindingSubject {
    /// Builds the subject from authentik's three optional fields, enforcing "exactly one".
    pub fn from_fields(
        policy: Option<PolicyId>,
        group: Option<GroupId>,
        user: Option<UserId>,
    ) -> Result<Self, ValidationErrors> {
        match (policy, group, user) {
            (Some(p), None, None) => Ok(Self::Policy(p)),
            (None, Some(g), None) => Ok(Self::Group(g)),
            (None, None, Some(u)) => Ok(Self::User(u)),
            (None, None, None) => Err(ValidationErrors::field(
                super::NON_FIELD_ERRORS,
                "One of 'group', 'policy', 'user' must be set.",
            )),
            _ => Err(ValidationErrors::field(
                super::NON_FIELD_ERRORS,
                "Only one of 'group', 'policy', 'user' can be set.",
            )),
        }
    }
}

/// Binds a policy, group or user to a flow or a flow-stage binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyBinding {
    /// Primary key.
    pub pk: PolicyBindingId,
    /// What it is attached to.
    pub target: BindingTarget,
    /// What it checks.
    pub subject: BindingSubject,
    /// Invert the result (messages are kept).
    #[serde(default)]
    pub negate: bool,
    /// Disabled bindings are skipped.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Evaluation order.
    #[serde(default)]
    pub order: i32,
    /// Seconds the policy may run (default 30).
    #[serde(default = "default_timeout")]
    pub timeout: u32,
    /// Result used when the policy errors or times out (default false: fail closed).
    #[serde(default)]
    pub failure_result: bool,
}

fn default_timeout() -> u32 {
    30
}

impl PolicyBinding {
    /// An enabled, non-negated binding with a 30 s timeout that fails closed.
    pub fn new(target: BindingTarget, subject: BindingSubject, order: i32) -> Self {
        Self {
            pk: PolicyBindingId::new(),
            target,
            subject,
            negate: false,
            enabled: true,
            order,
            timeout: 30,
            failure_result: false,
        }
    }

    /// Sets `negate`.
    pub fn negated(mut self, negate: bool) -> Self {
        self.negate = negate;
        self
    }

    /// Sets `failure_result`.
    pub fn with_failure_result(mut self, result: bool) -> Self {
        self.failure_result = result;
        self
    }
}
