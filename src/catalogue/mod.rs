//! The flow catalogue: every flow, stage, flow-stage binding, policy and policy
//! binding of a store, with the rules every flow store enforces (unique flow slugs and
//! stage/policy names, references that must exist, cascading deletes, per-flow
//! revisions).
//!
//! [`Catalogue`] is pure data: it does no I/O and knows no backend. A store keeps (or
//! loads) one, calls [`Catalogue::apply`] with an [`Op`] and persists the result; the
//! memory and Redis flow stores and the blueprint importer all do so, and a SQL store
//! can do the same inside a transaction. [`CatalogueSnapshot`] is its serialisable
//! form.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{
    BindingId, BindingSubject, BindingTarget, Flow, FlowId, FlowStageBinding, Policy,
    PolicyBinding, PolicyBindingId, PolicyId, Stage, StageId, ValidationErrors,
};
use crate::store::{FlowDefinition, StoreError};

#[cfg(test)]
mod tests;

/// One write to a flow catalogue.
#[derive(Debug, Clone)]
pub enum Op {
    /// Creates or replaces a flow (matched by `pk`); slugs are unique.
    PutFlow(Flow),
    /// Deletes the flow with this slug, its bindings and their policy bindings.
    DeleteFlow(String),
    /// Creates or replaces a stage (matched by `pk`); names are unique.
    PutStage(Stage),
    /// Deletes a stage and the bindings that use it.
    DeleteStage(StageId),
    /// Creates or replaces a flow-stage binding; its flow and stage must exist.
    PutBinding(FlowStageBinding),
    /// Deletes a flow-stage binding and the policy bindings on it.
    DeleteBinding(BindingId),
    /// Creates or replaces a policy (matched by `pk`); names are unique.
    PutPolicy(Policy),
    /// Deletes a policy and its bindings.
    DeletePolicy(PolicyId),
    /// Creates or replaces a policy binding; its target (and policy) must exist.
    PutPolicyBinding(PolicyBinding),
    /// Deletes a policy binding.
    DeletePolicyBinding(PolicyBindingId),
}

/// Every object of a catalogue as one serialisable value (for shared stores and
/// backups), in a stable order. Host-defined (`Custom`) stages and policies are kept by
/// name and settings (see [`crate::registry`]).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CatalogueSnapshot {
    /// Flows.
    pub flows: Vec<Flow>,
    /// Stages.
    pub stages: Vec<Stage>,
    /// Flow-stage bindings.
    pub bindings: Vec<FlowStageBinding>,
    /// Policies.
    pub policies: Vec<Policy>,
    /// Policy bindings.
    pub policy_bindings: Vec<PolicyBinding>,
}

/// The flow objects of one store and the rules over them.
///
/// Every successful [`Catalogue::apply`] that changes something bumps the revision of
/// each flow whose definition it touches (the flow, its bindings, their stages, the
/// policies bound to them; policy writes touch every flow). Revisions come from one
/// counter, so a flow's revision never repeats while the catalogue lives.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    flows: HashMap<FlowId, Flow>,
    stages: HashMap<StageId, Arc<Stage>>,
    bindings: HashMap<BindingId, FlowStageBinding>,
    policies: HashMap<PolicyId, Arc<Policy>>,
    policy_bindings: HashMap<PolicyBindingId, PolicyBinding>,
    revisions: HashMap<FlowId, u64>,
    counter: u64,
}

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::Validation(ValidationErrors::field(field, message))
}

impl Catalogue {
    /// An empty catalogue.
    pub fn new() -> Self {
        Self::default()
    }

    /// A catalogue holding a snapshot as it is (no validation: it came from a store).
    pub fn from_snapshot(c: CatalogueSnapshot) -> Self {
        Self {
            flows: c.flows.into_iter().map(|f| (f.pk, f)).collect(),
            stages: c.stages.into_iter().map(|s| (s.pk, Arc::new(s))).collect(),
            bindings: c.bindings.into_iter().map(|b| (b.pk, b)).collect(),
            policies: c
                .policies
                .into_iter()
                .map(|p| (p.pk, Arc::new(p)))
                .collect(),
            policy_bindings: c.policy_bindings.into_iter().map(|b| (b.pk, b)).collect(),
            revisions: HashMap::new(),
            counter: 0,
        }
    }

    /// Every object, in a stable order (flows by slug, the rest by pk).
    pub fn snapshot(&self) -> CatalogueSnapshot {
        let mut c = CatalogueSnapshot {
            flows: self.flows.values().cloned().collect(),
            stages: self.stages.values().map(|s| (**s).clone()).collect(),
            bindings: self.bindings.values().cloned().collect(),
            policies: self.policies.values().map(|p| (**p).clone()).collect(),
            policy_bindings: self.policy_bindings.values().cloned().collect(),
        };
        c.flows.sort_by(|a, b| a.slug.cmp(&b.slug));
        c.stages.sort_by_key(|s| s.pk);
        c.bindings.sort_by_key(|b| b.pk);
        c.policies.sort_by_key(|p| p.pk);
        c.policy_bindings.sort_by_key(|b| b.pk);
        c
    }

    /// The flow with this slug.
    pub fn flow_by_slug(&self, slug: &str) -> Option<&Flow> {
        self.flows.values().find(|f| f.slug == slug)
    }

    /// Every flow, ordered by slug.
    pub fn flows(&self) -> Vec<Flow> {
        let mut flows: Vec<Flow> = self.flows.values().cloned().collect();
        flows.sort_by(|a, b| a.slug.cmp(&b.slug));
        flows
    }

    /// A stage by id.
    pub fn stage(&self, pk: StageId) -> Option<&Stage> {
        self.stages.get(&pk).map(|s| &**s)
    }

    /// A policy by id.
    pub fn policy(&self, pk: PolicyId) -> Option<&Policy> {
        self.policies.get(&pk).map(|p| &**p)
    }

    /// The bindings of a flow, unordered.
    pub fn bindings_of(&self, flow: FlowId) -> Vec<FlowStageBinding> {
        self.bindings
            .values()
            .filter(|b| b.target == flow)
            .cloned()
            .collect()
    }

    /// The loaded definition of the flow with this slug.
    pub fn definition(&self, slug: &str) -> Option<FlowDefinition> {
        let flow = self.flow_by_slug(slug)?.clone();
        let bindings = self.bindings_of(flow.pk);
        let pbs: Vec<PolicyBinding> = self.policy_bindings.values().cloned().collect();
        Some(FlowDefinition::assemble(
            flow,
            bindings,
            &self.stages,
            &pbs,
            &self.policies,
        ))
    }

    /// The revision of the flow with this slug (0 until a write touches it).
    pub fn revision(&self, slug: &str) -> Option<u64> {
        self.flow_by_slug(slug)
            .map(|f| self.revisions.get(&f.pk).copied().unwrap_or(0))
    }

    /// Checks `op` against the rules and applies it. Returns whether it changed
    /// anything (a delete of a missing object does not). On an error nothing changed.
    pub fn apply(&mut self, op: Op) -> Result<bool, StoreError> {
        match op {
            Op::PutFlow(f) => self.put_flow(f).map(|_| true),
            Op::DeleteFlow(slug) => Ok(self.delete_flow(&slug)),
            Op::PutStage(s) => self.put_stage(s).map(|_| true),
            Op::DeleteStage(pk) => Ok(self.delete_stage(pk)),
            Op::PutBinding(b) => self.put_binding(b).map(|_| true),
            Op::DeleteBinding(pk) => Ok(self.delete_binding(pk)),
            Op::PutPolicy(p) => self.put_policy(p).map(|_| true),
            Op::DeletePolicy(pk) => Ok(self.delete_policy(pk)),
            Op::PutPolicyBinding(b) => self.put_policy_binding(b).map(|_| true),
            Op::DeletePolicyBinding(pk) => Ok(self.delete_policy_binding(pk)),
        }
    }

    fn bump(&mut self, flows: impl IntoIterator<Item = FlowId>) {
        for f in flows {
            self.counter += 1;
            self.revisions.insert(f, self.counter);
        }
    }

    fn bump_all(&mut self) {
        let all: Vec<FlowId> = self.flows.keys().copied().collect();
        self.bump(all);
    }

    fn flows_of_stage(&self, stage: StageId) -> Vec<FlowId> {
        self.bindings
            .values()
            .filter(|b| b.stage == stage)
            .map(|b| b.target)
            .collect()
    }

    fn flow_of_target(&self, target: BindingTarget) -> Option<FlowId> {
        match target {
            BindingTarget::Flow(f) => Some(f),
            BindingTarget::Stage(b) => self.bindings.get(&b).map(|b| b.target),
        }
    }

    fn put_flow(&mut self, flow: Flow) -> Result<(), StoreError> {
        flow.validate().map_err(StoreError::Validation)?;
        if self
            .flows
            .values()
            .any(|f| f.slug == flow.slug && f.pk != flow.pk)
        {
            return Err(invalid("slug", "flow with this slug already exists."));
        }
        let pk = flow.pk;
        self.flows.insert(pk, flow);
        self.bump([pk]);
        Ok(())
    }

    fn delete_flow(&mut self, slug: &str) -> bool {
        let Some(pk) = self.flow_by_slug(slug).map(|f| f.pk) else {
            return false;
        };
        self.flows.remove(&pk);
        let removed: Vec<BindingId> = self
            .bindings
            .values()
            .filter(|b| b.target == pk)
            .map(|b| b.pk)
            .collect();
        for b in &removed {
            self.bindings.remove(b);
        }
        self.policy_bindings.retain(|_, pb| match pb.target {
            BindingTarget::Flow(f) => f != pk,
            BindingTarget::Stage(b) => !removed.contains(&b),
        });
        self.revisions.remove(&pk);
        true
    }

    fn put_stage(&mut self, stage: Stage) -> Result<(), StoreError> {
        stage.validate().map_err(StoreError::Validation)?;
        if stage.name.trim().is_empty() {
            return Err(invalid("name", "This field may not be blank."));
        }
        if self
            .stages
            .values()
            .any(|s| s.name == stage.name && s.pk != stage.pk)
        {
            return Err(invalid("name", "stage with this name already exists."));
        }
        let pk = stage.pk;
        self.stages.insert(pk, Arc::new(stage));
        let flows = self.flows_of_stage(pk);
        self.bump(flows);
        Ok(())
    }

    fn delete_stage(&mut self, pk: StageId) -> bool {
        let existed = self.stages.remove(&pk).is_some();
        let flows = self.flows_of_stage(pk);
        let removed: Vec<BindingId> = self
            .bindings
            .values()
            .filter(|b| b.stage == pk)
            .map(|b| b.pk)
            .collect();
        for b in &removed {
            self.bindings.remove(b);
        }
        self.policy_bindings
            .retain(|_, pb| !matches!(pb.target, BindingTarget::Stage(b) if removed.contains(&b)));
        self.bump(flows);
        existed
    }

    fn put_binding(&mut self, binding: FlowStageBinding) -> Result<(), StoreError> {
        binding.validate().map_err(StoreError::Validation)?;
        let mut errors = ValidationErrors::new();
        if !self.flows.contains_key(&binding.target) {
            errors.add(
                "target",
                format!("Invalid pk \"{}\" - object does not exist.", binding.target),
            );
        }
        if !self.stages.contains_key(&binding.stage) {
            errors.add(
                "stage",
                format!("Invalid pk \"{}\" - object does not exist.", binding.stage),
            );
        }
        errors.into_result().map_err(StoreError::Validation)?;
        let target = binding.target;
        let old = self.bindings.insert(binding.pk, binding).map(|b| b.target);
        self.bump(old.into_iter().chain([target]));
        Ok(())
    }

    fn delete_binding(&mut self, pk: BindingId) -> bool {
        let Some(b) = self.bindings.remove(&pk) else {
            return false;
        };
        self.policy_bindings
            .retain(|_, pb| pb.target != BindingTarget::Stage(pk));
        self.bump([b.target]);
        true
    }

    fn put_policy(&mut self, policy: Policy) -> Result<(), StoreError> {
        if self
            .policies
            .values()
            .any(|p| p.name == policy.name && p.pk != policy.pk)
        {
            return Err(invalid("name", "policy with this name already exists."));
        }
        self.policies.insert(policy.pk, Arc::new(policy));
        // Policies can be referenced from many places (bindings, prompt validation):
        // invalidate every flow; policy edits are rare.
        self.bump_all();
        Ok(())
    }

    fn delete_policy(&mut self, pk: PolicyId) -> bool {
        let existed = self.policies.remove(&pk).is_some();
        self.policy_bindings
            .retain(|_, pb| pb.subject != BindingSubject::Policy(pk));
        self.bump_all();
        existed
    }

    fn put_policy_binding(&mut self, binding: PolicyBinding) -> Result<(), StoreError> {
        let Some(flow) = self.flow_of_target(binding.target) else {
            return Err(invalid("target", "Invalid target - object does not exist."));
        };
        if let BindingSubject::Policy(p) = binding.subject {
            if !self.policies.contains_key(&p) {
                return Err(invalid(
                    "policy",
                    format!("Invalid pk \"{p}\" - object does not exist."),
                ));
            }
        }
        let old = self
            .policy_bindings
            .insert(binding.pk, binding)
            .and_then(|b| self.flow_of_target(b.target));
        self.bump(old.into_iter().chain([flow]));
        Ok(())
    }

    fn delete_policy_binding(&mut self, pk: PolicyBindingId) -> bool {
        let Some(b) = self.policy_bindings.remove(&pk) else {
            return false;
        };
        let flow = self.flow_of_target(b.target);
        self.bump(flow);
        true
    }
}
