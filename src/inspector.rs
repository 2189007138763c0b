//! The flow inspector: a session's plan history and current plan, for admins.
//! Secrets in the plan context are redacted; the session id is shown hashed.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::model::{Flow, FlowStageBinding};
use crate::paths::Paths;
use crate::plan::{Decision, FlowPlan, FlowState, SessionId};
use crate::store::{FlowDefinition, StoreError};

/// Why the inspector cannot answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InspectError {
    /// The session has neither a plan nor history for this flow (HTTP 400
    /// `No flow plan in session.`).
    #[error("No flow plan in session.")]
    NoPlan,
    /// The session's user is not a superuser.
    #[error("you do not have permission to inspect flows")]
    Forbidden,
    /// No such flow.
    #[error("flow `{0}` not found")]
    FlowNotFound(String),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// authentik's `FlowInspection`, plus the decision log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowInspection {
    /// One entry per passed stage, oldest first.
    pub plans: Vec<PlanInfo>,
    /// The running plan, or the last history entry when the flow is completed.
    pub current_plan: Option<PlanInfo>,
    /// No plan is running.
    pub is_completed: bool,
    /// Why stages were skipped, dropped or denied (authflow addition).
    pub decisions: Vec<Decision>,
}

/// authentik's `FlowInspectorPlan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanInfo {
    /// The current binding (authentik's `FlowStageBinding` JSON).
    pub current_stage: Value,
    /// The next binding, or `{}`.
    pub next_planned_stage: Value,
    /// The plan context with secrets replaced by `********`.
    pub plan_context: Map<String, Value>,
    /// SHA-256 of the session id.
    pub session_id: String,
}

/// authentik's `Flow` JSON as nested in inspector and API answers.
pub fn flow_json(flow: &Flow, paths: Paths<'_>) -> Value {
    json!({
        "pk": flow.pk,
        "policybindingmodel_ptr_id": flow.policybindingmodel_ptr_id,
        "name": flow.name,
        "slug": flow.slug,
        "title": flow.title,
        "designation": flow.designation,
        "background": flow.background_url(),
        "policy_engine_mode": flow.policy_engine_mode,
        "compatibility_mode": flow.compatibility_mode,
        "export_url": paths.flow_export(&flow.slug),
        "layout": flow.layout,
        "denied_action": flow.denied_action,
        "authentication": flow.authentication,
    })
}

fn binding_json(
    def: &FlowDefinition,
    binding: Option<&FlowStageBinding>,
    paths: Paths<'_>,
) -> Value {
    let Some(b) = binding else { return json!({}) };
    let Some(bound) = def.binding(b.pk) else {
        return json!({});
    };
    let meta = bound.stage.config.meta();
    json!({
        "pk": b.pk,
        "policybindingmodel_ptr_id": b.policybindingmodel_ptr_id,
        "target": b.target,
        "stage": b.stage,
        "stage_obj": {
            "pk": bound.stage.pk,
            "name": bound.stage.name,
            "component": meta.form_component,
            "verbose_name": meta.verbose_name,
            "verbose_name_plural": format!("{}s", meta.verbose_name),
            "meta_model_name": meta.model_name,
            "flow_set": [flow_json(&def.flow, paths)],
        },
        "evaluate_on_plan": b.evaluate_on_plan,
        "re_evaluate_policies": b.re_evaluate_policies,
        "order": b.order,
        "policy_engine_mode": b.policy_engine_mode,
        "invalid_response_action": b.invalid_response_action,
    })
}

fn plan_info(
    def: &FlowDefinition,
    plan: &FlowPlan,
    session: &SessionId,
    paths: Paths<'_>,
) -> PlanInfo {
    let at = |i: usize| {
        plan.bindings
            .get(i)
            .and_then(|p| def.binding(p.binding))
            .map(|b| &b.binding)
    };
    PlanInfo {
        current_stage: binding_json(def, at(0), paths),
        next_planned_stage: binding_json(def, at(1), paths),
        plan_context: plan.context.redacted(),
        session_id: session.hashed(),
    }
}

pub(crate) fn inspect(
    def: &FlowDefinition,
    fs: &FlowState,
    session: &SessionId,
    paths: Paths<'_>,
) -> Result<FlowInspection, InspectError> {
    let plans: Vec<PlanInfo> = fs
        .history
        .iter()
        .filter(|p| p.flow_pk == def.flow.pk)
        .map(|p| plan_info(def, p, session, paths))
        .collect();
    let current_plan = match &fs.plan {
        Some(p) => Some(plan_info(def, p, session, paths)),
        None => plans.last().cloned(),
    };
    if current_plan.is_none() {
        return Err(InspectError::NoPlan);
    }
    Ok(FlowInspection {
        plans,
        current_plan,
        is_completed: fs.plan.is_none(),
        decisions: fs.decisions.clone(),
    })
}
