//! Flows

use std::sync::RwLock;

use async_trait::async_trait;

use crate::catalogue::{Catalogue, CatalogueSnapshot, Op};
use crate::model::{
    BindingId, Flow, FlowId, FlowStageBinding, Policy, PolicyBinding, PolicyBindingId, PolicyId,
    Stage, StageId,
};
use crate::store::{FlowAdmin, FlowDefinition, FlowSource, StoreError};

use super::poisoned;

/// Flows, stages, bindings and policies in memory: a [`Catalogue`] behind a lock.
#[derive(Default)]
pub struct MemoryFlowStore {
    data: RwLock<Catalogue>,
    /// Writes applied ([`FlowSource::local_writes`]).
    writes: std::sync::atomic::AtomicU64,
}

impl MemoryFlowStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding a snapshot (no validation: it came from a store).
    pub fn from_catalogue(c: CatalogueSnapshot) -> Self {
        Self {
            data: RwLock::new(Catalogue::from_snapshot(c)),
            writes: Default::default(),
        }
    }

    /// A snapshot of every object, in a stable order.
    pub fn catalogue(&self) -> CatalogueSnapshot {
        self.data.read().map(|d| d.snapshot()).unwrap_or_default()
    }

    /// A stage by id.
    pub fn stage(&self, pk: StageId) -> Option<Stage> {
        self.data.read().ok()?.stage(pk).cloned()
    }

    /// The bindings of a flow, unordered.
    pub fn bindings_of(&self, flow: FlowId) -> Vec<FlowStageBinding> {
        self.data
            .read()
            .map(|d| d.bindings_of(flow))
            .unwrap_or_default()
    }

    fn apply(&self, op: Op) -> Result<bool, StoreError> {
        let applied = self.data.write().map_err(|_| poisoned())?.apply(op);
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        applied
    }
}

#[async_trait]
impl FlowSource for MemoryFlowStore {
    async fn flow(&self, slug: &str) -> Result<Option<FlowDefinition>, StoreError> {
        Ok(self.data.read().map_err(|_| poisoned())?.definition(slug))
    }

    async fn revision(&self, slug: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.data.read().map_err(|_| poisoned())?.revision(slug))
    }

    async fn flows(&self) -> Result<Vec<Flow>, StoreError> {
        Ok(self.data.read().map_err(|_| poisoned())?.flows())
    }

    fn local_writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl FlowAdmin for MemoryFlowStore {
    async fn put_flow(&self, flow: Flow) -> Result<(), StoreError> {
        self.apply(Op::PutFlow(flow)).map(|_| ())
    }

    async fn delete_flow(&self, slug: &str) -> Result<bool, StoreError> {
        self.apply(Op::DeleteFlow(slug.to_owned()))
    }

    async fn put_stage(&self, stage: Stage) -> Result<(), StoreError> {
        self.apply(Op::PutStage(stage)).map(|_| ())
    }

    async fn delete_stage(&self, pk: StageId) -> Result<bool, StoreError> {
        self.apply(Op::DeleteStage(pk))
    }

    async fn put_binding(&self, binding: FlowStageBinding) -> Result<(), StoreError> {
        self.apply(Op::PutBinding(binding)).map(|_| ())
    }

    async fn delete_binding(&self, pk: BindingId) -> Result<bool, StoreError> {
        self.apply(Op::DeleteBinding(pk))
    }

    async fn put_policy(&self, policy: Policy) -> Result<(), StoreError> {
        self.apply(Op::PutPolicy(policy)).map(|_| ())
    }

    async fn delete_policy(&self, pk: PolicyId) -> Result<bool, StoreError> {
        self.apply(Op::DeletePolicy(pk))
    }

    async fn put_policy_binding(&self, binding: PolicyBinding) -> Result<(), StoreError> {
        self.apply(Op::PutPolicyBinding(binding)).map(|_| ())
    }

    async fn delete_policy_binding(&self, pk: PolicyBindingId) -> Result<bool, StoreError> {
        self.apply(Op::DeletePolicyBinding(pk))
    }
}
