//! Flows

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::model::{
    BindingId, BindingSubject, BindingTarget, Flow, FlowId, FlowStageBinding, Policy,
    PolicyBinding, PolicyBindingId, PolicyId, Stage, StageId, ValidationErrors,
};
use crate::store::{FlowDefinition, FlowStore, StoreError};

use super::poisoned;

#[derive(Default)]
struct FlowData {
    flows: HashMap<FlowId, Flow>,
    stages: HashMap<StageId, Arc<Stage>>,
    bindings: HashMap<BindingId, FlowStageBinding>,
    policies: HashMap<PolicyId, Arc<Policy>>,
    policy_bindings: HashMap<PolicyBindingId, PolicyBinding>,
    revisions: HashMap<FlowId, u64>,
    counter: u64,
}

impl FlowData {
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

    fn by_slug(&self, slug: &str) -> Option<&Flow> {
        self.flows.values().find(|f| f.slug == slug)
    }
}

/// Flows, stages, bindings and policies in memory.
#[derive(Default)]
pub struct MemoryFlowStore {
    data: RwLock<FlowData>,
}

/// Every flow object of a store as one serialisable value (for shared stores and
/// backups). Host-defined (`Custom`) stages and policies cannot be serialised.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Catalogue {
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

impl MemoryFlowStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding a catalogue (no validation: it came from a store).
    pub fn from_catalogue(c: Catalogue) -> Self {
        let mut d = FlowData {
            flows: c.flows.into_iter().map(|f| (f.pk, f)).collect(),
            ..FlowData::default()
        };
        d.stages = c.stages.into_iter().map(|s| (s.pk, Arc::new(s))).collect();
        d.bindings = c.bindings.into_iter().map(|b| (b.pk, b)).collect();
        d.policies = c
            .policies
            .into_iter()
            .map(|p| (p.pk, Arc::new(p)))
            .collect();
        d.policy_bindings = c.policy_bindings.into_iter().map(|b| (b.pk, b)).collect();
        Self {
            data: RwLock::new(d),
        }
    }

    /// A snapshot of every object, in a stable order.
    pub fn catalogue(&self) -> Catalogue {
        let Ok(d) = self.data.read() else {
            return Catalogue::default();
        };
        let mut c = Catalogue {
            flows: d.flows.values().cloned().collect(),
            stages: d.stages.values().map(|s| (**s).clone()).collect(),
            bindings: d.bindings.values().cloned().collect(),
            policies: d.policies.values().map(|p| (**p).clone()).collect(),
            policy_bindings: d.policy_bindings.values().cloned().collect(),
        };
        c.flows.sort_by(|a, b| a.slug.cmp(&b.slug));
        c.stages.sort_by_key(|s| s.pk);
        c.bindings.sort_by_key(|b| b.pk);
        c.policies.sort_by_key(|p| p.pk);
        c.policy_bindings.sort_by_key(|b| b.pk);
        c
    }

    /// A stage by id.
    pub fn stage(&self, pk: StageId) -> Option<Stage> {
        self.data
            .read()
            .ok()?
            .stages
            .get(&pk)
            .map(|s| (**s).clone())
    }

    /// The bindings of a flow, unordered.
    pub fn bindings_of(&self, flow: FlowId) -> Vec<FlowStageBinding> {
        self.data
            .read()
            .map(|d| {
                d.bindings
                    .values()
                    .filter(|b| b.target == flow)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl FlowStore for MemoryFlowStore {
    async fn flow(&self, slug: &str) -> Result<Option<FlowDefinition>, StoreError> {
        let d = self.data.read().map_err(|_| poisoned())?;
        let Some(flow) = d.by_slug(slug).cloned() else {
            return Ok(None);
        };
        let bindings: Vec<FlowStageBinding> = d
            .bindings
            .values()
            .filter(|b| b.target == flow.pk)
            .cloned()
            .collect();
        let pbs: Vec<PolicyBinding> = d.policy_bindings.values().cloned().collect();
        Ok(Some(FlowDefinition::assemble(
            flow,
            bindings,
            &d.stages,
            &pbs,
            &d.policies,
        )))
    }

    async fn revision(&self, slug: &str) -> Result<Option<u64>, StoreError> {
        let d = self.data.read().map_err(|_| poisoned())?;
        Ok(d.by_slug(slug)
            .map(|f| d.revisions.get(&f.pk).copied().unwrap_or(0)))
    }

    async fn flows(&self) -> Result<Vec<Flow>, StoreError> {
        let d = self.data.read().map_err(|_| poisoned())?;
        let mut flows: Vec<Flow> = d.flows.values().cloned().collect();
        flows.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(flows)
    }

    async fn put_flow(&self, flow: Flow) -> Result<(), StoreError> {
        flow.validate().map_err(StoreError::Validation)?;
        let mut d = self.data.write().map_err(|_| poisoned())?;
        if d.flows
            .values()
            .any(|f| f.slug == flow.slug && f.pk != flow.pk)
        {
            return Err(StoreError::Validation(ValidationErrors::field(
                "slug",
                "flow with this slug already exists.",
            )));
        }
        let pk = flow.pk;
        d.flows.insert(pk, flow);
        d.bump([pk]);
        Ok(())
    }

    async fn delete_flow(&self, slug: &str) -> Result<bool, StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let Some(pk) = d.by_slug(slug).map(|f| f.pk) else {
            return Ok(false);
        };
        d.flows.remove(&pk);
        let removed: Vec<BindingId> = d
            .bindings
            .values()
            .filter(|b| b.target == pk)
            .map(|b| b.pk)
            .collect();
        for b in &removed {
            d.bindings.remove(b);
        }
        d.policy_bindings.retain(|_, pb| match pb.target {
            BindingTarget::Flow(f) => f != pk,
            BindingTarget::Stage(b) => !removed.contains(&b),
        });
        d.revisions.remove(&pk);
        Ok(true)
    }

    async fn put_stage(&self, stage: Stage) -> Result<(), StoreError> {
        stage.validate().map_err(StoreError::Validation)?;
        if stage.name.trim().is_empty() {
            return Err(StoreError::Validation(ValidationErrors::field(
                "name",
                "This field may not be blank.",
            )));
        }
        let mut d = self.data.write().map_err(|_| poisoned())?;
        if d.stages
            .values()
            .any(|s| s.name == stage.name && s.pk != stage.pk)
        {
            return Err(StoreError::Validation(ValidationErrors::field(
                "name",
                "stage with this name already exists.",
            )));
        }
        let pk = stage.pk;
        d.stages.insert(pk, Arc::new(stage));
        let flows = d.flows_of_stage(pk);
        d.bump(flows);
        Ok(())
    }

    async fn delete_stage(&self, pk: StageId) -> Result<bool, StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let existed = d.stages.remove(&pk).is_some();
        let flows = d.flows_of_stage(pk);
        let removed: Vec<BindingId> = d
            .bindings
            .values()
            .filter(|b| b.stage == pk)
            .map(|b| b.pk)
            .collect();
        for b in &removed {
            d.bindings.remove(b);
        }
        d.policy_bindings
            .retain(|_, pb| !matches!(pb.target, BindingTarget::Stage(b) if removed.contains(&b)));
        d.bump(flows);
        Ok(existed)
    }

    async fn put_binding(&self, binding: FlowStageBinding) -> Result<(), StoreError> {
        binding.validate().map_err(StoreError::Validation)?;
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let mut errors = ValidationErrors::new();
        if !d.flows.contains_key(&binding.target) {
            errors.add(
                "target",
                format!("Invalid pk \"{}\" - object does not exist.", binding.target),
            );
        }
        if !d.stages.contains_key(&binding.stage) {
            errors.add(
                "stage",
                format!("Invalid pk \"{}\" - object does not exist.", binding.stage),
            );
        }
        errors.into_result().map_err(StoreError::Validation)?;
        let old = d
            .bindings
            .insert(binding.pk, binding.clone())
            .map(|b| b.target);
        d.bump(old.into_iter().chain([binding.target]));
        Ok(())
    }

    async fn delete_binding(&self, pk: BindingId) -> Result<bool, StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let Some(b) = d.bindings.remove(&pk) else {
            return Ok(false);
        };
        d.policy_bindings
            .retain(|_, pb| pb.target != BindingTarget::Stage(pk));
        d.bump([b.target]);
        Ok(true)
    }

    async fn put_policy(&self, policy: Policy) -> Result<(), StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        if d.policies
            .values()
            .any(|p| p.name == policy.name && p.pk != policy.pk)
        {
            return Err(StoreError::Validation(ValidationErrors::field(
                "name",
                "policy with this name already exists.",
            )));
        }
        d.policies.insert(policy.pk, Arc::new(policy));
        // Policies can be referenced from many places (bindings, prompt validation):
        // invalidate every flow; policy edits are rare.
        d.bump_all();
        Ok(())
    }

    async fn delete_policy(&self, pk: PolicyId) -> Result<bool, StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let existed = d.policies.remove(&pk).is_some();
        d.policy_bindings
            .retain(|_, pb| pb.subject != BindingSubject::Policy(pk));
        d.bump_all();
        Ok(existed)
    }

    async fn put_policy_binding(&self, binding: PolicyBinding) -> Result<(), StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let Some(flow) = d.flow_of_target(binding.target) else {
            return Err(StoreError::Validation(ValidationErrors::field(
                "target",
                "Invalid target - object does not exist.",
            )));
        };
        if let BindingSubject::Policy(p) = binding.subject {
            if !d.policies.contains_key(&p) {
                return Err(StoreError::Validation(ValidationErrors::field(
                    "policy",
                    format!("Invalid pk \"{p}\" - object does not exist."),
                )));
            }
        }
        let old = d
            .policy_bindings
            .insert(binding.pk, binding)
            .and_then(|b| d.flow_of_target(b.target));
        d.bump(old.into_iter().chain([flow]));
        Ok(())
    }

    async fn delete_policy_binding(&self, pk: PolicyBindingId) -> Result<bool, StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let Some(b) = d.policy_bindings.remove(&pk) else {
            return Ok(false);
        };
        let flow = d.flow_of_target(b.target);
        d.bump(flow);
        Ok(true)
    }
}
