//! The planner: turns a flow definition and a request into a [`FlowPlan`].
//!
//! 1. The flow's `authentication` requirement.
//! 2. The flow's own policy bindings (flow `policy_engine_mode`).
//! 3. Each stage binding in `order` (ties: ascending binding `pk`): a binding with
//!    `evaluate_on_plan` is included only if its policies pass now; an included binding
//!    with `re_evaluate_policies` gets a [`Marker::Reevaluate`] and is checked again when
//!    it becomes current.
//!
//! Plans are never cached: planning is cheap (no I/O beyond what policies need), so a
//! plan can never carry another user's context or a stale policy verdict.

use crate::env::Env;
use crate::model::{AuthenticationRequirement, PolicyKind};
use crate::plan::{Decision, FlowPlan, Marker, PlanContext, PlannedStage, keys};
use crate::policy::{self, PolicyHooks, PolicyRequest};
use crate::request::FlowRequest;
use crate::store::{FlowDefinition, StoreError, User};

/// The message authentik shows when a flow does not apply.
pub const NOT_APPLICABLE: &str = "Flow does not apply to current user.";

/// Why no plan could be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    /// The authentication requirement or the flow's policies failed.
    #[error("flow not applicable: {}", messages.join("; "))]
    NotApplicable {
        /// Policy messages, or [`NOT_APPLICABLE`].
        messages: Vec<String>,
    },
    /// No stage applies.
    #[error("flow has no applicable stages")]
    Empty,
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the planner needs besides the definition.
#[derive(Debug)]
pub struct PlanInput<'a> {
    /// The request.
    pub request: &'a FlowRequest,
    /// The logged-in user.
    pub request_user: Option<&'a User>,
    /// The initial context (e.g. `pending_user`, `is_redirected`).
    pub context: PlanContext,
}

/// Resolves the policy subject: the pending user when one is set (loaded from the
/// directory; `None` for a pretended user), else the logged-in user.
pub(crate) async fn subject(
    env: &Env,
    context: &PlanContext,
    request_user: Option<&User>,
) -> Result<(Option<User>, Option<String>), StoreError> {
    match context.pending_user() {
        Some(p) => {
            let user = match (p.pk, request_user) {
                (Some(pk), Some(u)) if u.pk == pk => Some(u.clone()),
                (Some(pk), _) => env.users.user(pk).await?,
                (None, _) => None,
            };
            Ok((user, Some(p.username)))
        }
        None => Ok((
            request_user.cloned(),
            request_user.map(|u| u.username.clone()),
        )),
    }
}

/// Whether the user is in a superuser group (directly or through a parent group).
pub async fn is_superuser(env: &Env, user: Option<&User>) -> Result<bool, StoreError> {
    match user {
        Some(u) => Ok(env
            .users
            .groups_of(u.pk.clone())
            .await?
            .iter()
            .any(|g| g.is_superuser)),
        None => Ok(false),
    }
}

/// The name of the first expression policy bound in `def` (to the flow, its stage
/// bindings or a prompt's validation), if any.
fn expression_policy(def: &FlowDefinition) -> Option<&str> {
    let is_expression = |p: &crate::model::Policy| matches!(p.kind, PolicyKind::Expression { .. });
    def.policies
        .iter()
        .chain(def.stages.iter().flat_map(|s| s.policies.iter()))
        .filter_map(|b| b.policy.as_deref())
        .chain(def.validation_policies.values().map(|p| p.as_ref()))
        .find(|p| is_expression(p))
        .map(|p| p.name.as_str())
}

/// Plans `def` for a request. Returns the plan and the decisions taken.
pub async fn plan(
    env: &Env,
    hooks: &PolicyHooks,
    def: &FlowDefinition,
    input: PlanInput<'_>,
) -> Result<(FlowPlan, Vec<Decision>), PlanError> {
    let PlanInput {
        request,
        request_user,
        mut context,
    } = input;
    let flow = &def.flow;
    if hooks.expressions.is_none() {
        if let Some(name) = expression_policy(def) {
            // Evaluating it could only fail, which silently changes the flow: deny instead.
            return Err(PlanError::NotApplicable {
                messages: vec![format!(
                    "expression policy `{name}` cannot run: no expression evaluator is configured"
                )],
            });
        }
    }
    if let Err(message) = hooks.check(def) {
        // A host policy this engine does not know: evaluating it could only fail,
        // which could skip a stage or pass a negated binding. Deny instead.
        return Err(PlanError::NotApplicable {
            messages: vec![message],
        });
    }
    let applicable = match flow.authentication {
        AuthenticationRequirement::None => true,
        AuthenticationRequirement::RequireAuthenticated => request_user.is_some(),
        AuthenticationRequirement::RequireUnauthenticated => request_user.is_none(),
        AuthenticationRequirement::RequireSuperuser => is_superuser(env, request_user).await?,
        AuthenticationRequirement::RequireRedirect => context.contains(keys::IS_REDIRECTED),
        AuthenticationRequirement::RequireOutpost => request.is_outpost,
    };
    if !applicable {
        return Err(PlanError::NotApplicable {
            messages: vec![NOT_APPLICABLE.into()],
        });
    }

    let mut decisions = Vec::new();
    let needs_subject = !def.policies.is_empty()
        || def
            .stages
            .iter()
            .any(|s| s.binding.evaluate_on_plan && !s.policies.is_empty());
    let (subject, username) = if needs_subject {
        subject(env, &context, request_user).await?
    } else {
        (None, None)
    };

    if !def.policies.is_empty() {
        let mut req = PolicyRequest {
            user: subject.as_ref(),
            username: username.as_deref(),
            context: &mut context,
            flow_plan: false,
            flow,
            client_ip: request.client_ip.as_deref(),
            env,
            hooks,
            config: &serde_json::Value::Null,
        };
        let result = policy::evaluate(&def.policies, flow.policy_engine_mode, &mut req).await;
        if !result.passing {
            let messages = if result.messages.is_empty() {
                vec![NOT_APPLICABLE.to_owned()]
            } else {
                result.messages
            };
            return Err(PlanError::NotApplicable { messages });
        }
    }

    let mut bindings = Vec::with_capacity(def.stages.len());
    for bound in &def.stages {
        let mut keep = true;
        let mut messages = Vec::new();
        if bound.binding.evaluate_on_plan && !bound.policies.is_empty() {
            let mut req = PolicyRequest {
                user: subject.as_ref(),
                username: username.as_deref(),
                context: &mut context,
                flow_plan: true,
                flow,
                client_ip: request.client_ip.as_deref(),
                env,
                hooks,
                config: &serde_json::Value::Null,
            };
            let result =
                policy::evaluate(&bound.policies, bound.binding.policy_engine_mode, &mut req).await;
            keep = result.passing;
            if keep {
                messages = result.messages;
            } else {
                decisions.push(Decision {
                    binding: Some(bound.binding.pk),
                    subject: bound.stage.name.clone(),
                    outcome: "skipped_on_plan".into(),
                    messages: result.messages,
                });
            }
        }
        if keep {
            let marker = if bound.binding.re_evaluate_policies {
                Marker::Reevaluate
            } else {
                Marker::Stage
            };
            bindings.push(PlannedStage {
                binding: bound.binding.pk,
                marker,
                messages,
            });
        }
    }
    if bindings.is_empty() {
        return Err(PlanError::Empty);
    }
    Ok((
        FlowPlan {
            flow_pk: flow.pk,
            bindings,
            context,
        },
        decisions,
    ))
}
