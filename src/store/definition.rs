//! A flow loaded with everything the planner needs, in one value the engine caches.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{
    BindingSubject, BindingTarget, Flow, FlowStageBinding, Policy, PolicyBinding, PolicyId, Stage,
};

/// A policy binding with its policy resolved (`None` when the policy is missing,
/// which evaluates as an error and so yields the binding's `failure_result`).
#[derive(Debug, Clone)]
pub struct ResolvedBinding {
    /// The binding.
    pub binding: PolicyBinding,
    /// The bound policy, for [`BindingSubject::Policy`].
    pub policy: Option<Arc<Policy>>,
}

/// A flow-stage binding with its stage and policy bindings.
#[derive(Debug, Clone)]
pub struct BoundStage {
    /// The binding.
    pub binding: FlowStageBinding,
    /// The stage.
    pub stage: Arc<Stage>,
    /// Its enabled policy bindings, by `order` then `pk`.
    pub policies: Vec<ResolvedBinding>,
}

/// A flow with its stage bindings (by `order`, ties by binding `pk`), its own policy
/// bindings, and the policies prompt stages validate with.
#[derive(Debug, Clone)]
pub struct FlowDefinition {
    /// The flow.
    pub flow: Flow,
    /// Flow-level policy bindings (enabled only, by `order` then `pk`).
    pub policies: Vec<ResolvedBinding>,
    /// Stage bindings in execution order.
    pub stages: Vec<BoundStage>,
    /// Policies referenced by prompt stages' `validation_policies`.
    pub validation_policies: HashMap<PolicyId, Arc<Policy>>,
    /// Stages referenced from bound stages without a binding of their own (the
    /// identification stage's inline `password_stage`).
    pub referenced_stages: HashMap<crate::model::StageId, Arc<Stage>>,
    /// Stages an authenticator-validation stage may insert into the plan (its
    /// `configuration_stages`), each under a binding of its own derived from the
    /// validation stage's binding ([`FlowDefinition::inserted_binding`]).
    pub inserted: Vec<BoundStage>,
}

impl FlowDefinition {
    /// Assembles a definition from raw rows, so every store orders and resolves the
    /// same way. Bindings whose stage is missing are dropped; disabled policy bindings
    /// are dropped.
    pub fn assemble(
        flow: Flow,
        bindings: impl IntoIterator<Item = FlowStageBinding>,
        stages: &HashMap<crate::model::StageId, Arc<Stage>>,
        policy_bindings: &[PolicyBinding],
        policies: &HashMap<PolicyId, Arc<Policy>>,
    ) -> Self {
        let resolve = |target: BindingTarget| {
            let mut list: Vec<ResolvedBinding> = policy_bindings
                .iter()
                .filter(|b| b.target == target && b.enabled)
                .map(|b| ResolvedBinding {
                    binding: b.clone(),
                    policy: match b.subject {
                        BindingSubject::Policy(p) => policies.get(&p).cloned(),
                        _ => None,
                    },
                })
                .collect();
            list.sort_by(|a, b| {
                (a.binding.order, a.binding.pk).cmp(&(b.binding.order, b.binding.pk))
            });
            list
        };
        let mut bound: Vec<BoundStage> = bindings
            .into_iter()
            .filter(|b| b.target == flow.pk)
            .filter_map(|b| {
                let stage = stages.get(&b.stage)?.clone();
                let policies = resolve(BindingTarget::Stage(b.pk));
                Some(BoundStage {
                    binding: b,
                    stage,
                    policies,
                })
            })
            .collect();
        bound.sort_by_key(|s| (s.binding.order, s.binding.pk));
        let mut validation_policies = HashMap::new();
        let mut referenced_stages = HashMap::new();
        let mut inserted = Vec::new();
        for s in &bound {
            match &s.stage.config {
                crate::model::StageConfig::Prompt(p) => {
                    for id in &p.validation_policies {
                        if let Some(policy) = policies.get(id) {
                            validation_policies.insert(*id, policy.clone());
                        }
                    }
                }
                crate::model::StageConfig::Identification(i) => {
                    if let Some(stage) = i.password_stage.and_then(|id| stages.get(&id)) {
                        referenced_stages.insert(stage.pk, stage.clone());
                    }
                }
                crate::model::StageConfig::AuthenticatorValidate(a) => {
                    for stage in a
                        .configuration_stages
                        .iter()
                        .filter_map(|id| stages.get(id))
                    {
                        referenced_stages.insert(stage.pk, stage.clone());
                        inserted.push(inserted_bound(&s.binding, stage));
                    }
                }
                _ => {}
            }
        }
        let flow_policies = resolve(BindingTarget::Flow(flow.pk));
        Self {
            flow,
            policies: flow_policies,
            stages: bound,
            validation_policies,
            referenced_stages,
            inserted,
        }
    }

    /// The binding under which `stage` runs when the stage of binding `by` inserts it
    /// into the plan (authentik's `plan.insert_stage`), if `by` may insert it.
    pub fn inserted_binding(
        &self,
        by: crate::model::BindingId,
        stage: crate::model::StageId,
    ) -> Option<crate::model::BindingId> {
        let pk = inserted_pk(by, stage);
        self.inserted
            .iter()
            .find(|b| b.binding.pk == pk)
            .map(|b| b.binding.pk)
    }

    /// The bound stage with this binding id.
    pub fn binding(&self, pk: crate::model::BindingId) -> Option<&BoundStage> {
        self.stages
            .iter()
            .chain(&self.inserted)
            .find(|s| s.binding.pk == pk)
    }
}

/// The pk of the binding of `stage` inserted by the stage of binding `by`: derived,
/// so it is the same whenever the definition is loaded again.
fn inserted_pk(
    by: crate::model::BindingId,
    stage: crate::model::StageId,
) -> crate::model::BindingId {
    let name = format!("authflow/inserted/{by}/{stage}");
    crate::model::BindingId::from_uuid(uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        name.as_bytes(),
    ))
}

/// A binding for a stage the stage of `by` inserts: in the same flow, at the same
/// order, without policies.
fn inserted_bound(by: &FlowStageBinding, stage: &Arc<Stage>) -> BoundStage {
    let pk = inserted_pk(by.pk, stage.pk);
    let mut binding = FlowStageBinding::new(by.target, stage.pk, by.order);
    binding.policybindingmodel_ptr_id = *pk.as_uuid();
    binding.pk = pk;
    BoundStage {
        binding,
        stage: stage.clone(),
        policies: Vec::new(),
    }
}
