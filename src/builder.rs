//! Flows defined in code: [`FlowBuilder`].
//!
//! A builder describes a flow, its stages (in order), its policies and their bindings,
//! and installs them into a [`FlowAdmin`] with one call. Every id is a UUIDv5 derived
//! from names under one fixed authflow namespace ([`NAMESPACE`]), so every instance
//! (and every restart) building the same flow writes the same objects: a flow running
//! on one instance keeps running when another installs it ("The flow changed while it
//! was running" cannot happen from a redeploy that changes nothing).
//!
//! ```
//! use authflow::{FlowBuilder, FlowRequest, defaults, memory, model::*};
//! use serde_json::json;
//! # struct Terms; // a host stage that passes silently
//! # #[async_trait::async_trait]
//! # impl authflow::stages::StageKind for Terms {
//! #     async fn challenge(&self, _: &mut authflow::stages::StageContext<'_>)
//! #         -> Result<authflow::stages::StageOutcome, authflow::stages::StageError> {
//! #         Ok(authflow::stages::StageOutcome::Done)
//! #     }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = memory::Stores::new();
//! let engine = stores.engine().register_stage("example.terms", Terms).build();
//! defaults::bootstrap_admin(stores.users.as_ref(), "correct horse".into()).await?;
//! FlowBuilder::new("my-login", FlowDesignation::Authentication)
//!     .title("Welcome")
//!     .stage("my-identification", IdentificationStage::default())
//!     .stage("my-password", PasswordStage::default())
//!     .stage("my-terms", CustomStage::new("example.terms"))
//!     .stage("my-user-login", UserLoginStage::default())
//!     .install(stores.flows.as_ref()).await?;
//!
//! let out = engine.plan(&FlowRequest::default(), "my-login").await?;
//! let req = FlowRequest::new(Some(out.session_id), "");
//! let out = engine.step(&req, "my-login", &json!({"component": "ak-stage-identification", "uid_field": "akadmin"})).await?;
//! let req = FlowRequest::new(Some(out.session_id), "");
//! let out = engine.step(&req, "my-login", &json!({"component": "ak-stage-password", "password": "correct horse"})).await?;
//! assert!(out.logged_in);
//! # Ok(()) }
//! ```
//!
//! Stage and policy names are unique across a catalogue and their ids derive from the
//! name alone, so flows (and builders) naming the same stage share it; the last
//! install wins its settings. Bindings derive their ids from the flow's slug and the
//! binding's order.

use serde::Serialize;
use uuid::Uuid;

use crate::catalogue::Op;
use crate::model::{
    AuthenticationRequirement, BindingId, BindingSubject, BindingTarget, Flow, FlowDesignation,
    FlowId, FlowStageBinding, Policy, PolicyBinding, PolicyBindingId, PolicyId, PolicyKind, Stage,
    StageConfig, StageId,
};
use crate::store::{FlowAdmin, StoreError};

/// The namespace of every id a [`FlowBuilder`] derives (UUIDv5).
pub const NAMESPACE: Uuid = Uuid::from_u128(0xfb47_4d11_92d8_4924_894b_a588_086c_5406);

fn v5(parts: &[&str]) -> Uuid {
    // Length-prefixed parts: no two part lists give the same name.
    let mut name = String::new();
    for p in parts {
        name.push_str(&p.len().to_string());
        name.push(':');
        name.push_str(p);
    }
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The id a [`FlowBuilder`] gives the flow with this slug.
pub fn flow_id(slug: &str) -> FlowId {
    FlowId::from_uuid(v5(&["flow", slug]))
}

/// The id a [`FlowBuilder`] gives the stage with this name.
pub fn stage_id(name: &str) -> StageId {
    StageId::from_uuid(v5(&["stage", name]))
}

/// The id a [`FlowBuilder`] gives the policy with this name.
pub fn policy_id(name: &str) -> PolicyId {
    PolicyId::from_uuid(v5(&["policy", name]))
}

/// The id a [`FlowBuilder`] gives the stage binding of flow `slug` at `order`.
pub fn binding_id(slug: &str, order: i32) -> BindingId {
    BindingId::from_uuid(v5(&["binding", slug, &order.to_string()]))
}

/// Where a builder binds a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindTo {
    /// The flow itself: a failing policy refuses the flow.
    Flow,
    /// The binding of the builder's stage with this name: a failing policy **skips**
    /// the stage (authentik's semantics; see
    /// [`BindingTarget::Stage`]).
    Stage(String),
}

struct PendingBinding {
    to: BindTo,
    policy: String,
    adjust: Box<dyn FnOnce(&mut PolicyBinding) + Send>,
}

/// A flow defined in code, installed with [`FlowBuilder::install`]. See the
/// [module docs](self).
pub struct FlowBuilder {
    flow: Flow,
    stages: Vec<(Stage, FlowStageBinding)>,
    policies: Vec<Policy>,
    bindings: Vec<PendingBinding>,
}

impl std::fmt::Debug for FlowBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowBuilder")
            .field("flow", &self.flow.slug)
            .field(
                "stages",
                &self.stages.iter().map(|(s, _)| &s.name).collect::<Vec<_>>(),
            )
            .field(
                "policies",
                &self.policies.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl FlowBuilder {
    /// A flow with this slug (also its name and title until set) and designation, with
    /// authentik's defaults otherwise.
    pub fn new(slug: impl Into<String>, designation: FlowDesignation) -> Self {
        let slug = slug.into();
        let mut flow = Flow::new(slug.clone(), slug.clone(), designation);
        flow.pk = flow_id(&slug);
        flow.policybindingmodel_ptr_id = v5(&["flow-target", &slug]);
        Self {
            flow,
            stages: Vec::new(),
            policies: Vec::new(),
            bindings: Vec::new(),
        }
    }

    /// Sets the display name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.flow.name = name.into();
        self
    }

    /// Sets the title shown to users.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.flow.title = title.into();
        self
    }

    /// Sets who may start the flow.
    #[must_use]
    pub fn authentication(mut self, requirement: AuthenticationRequirement) -> Self {
        self.flow.authentication = requirement;
        self
    }

    /// Adjusts any other field of the flow (its `pk` and slug are kept).
    #[must_use]
    pub fn configure(mut self, adjust: impl FnOnce(&mut Flow)) -> Self {
        let (pk, slug, ptr) = (
            self.flow.pk,
            self.flow.slug.clone(),
            self.flow.policybindingmodel_ptr_id,
        );
        adjust(&mut self.flow);
        self.flow.pk = pk;
        self.flow.slug = slug;
        self.flow.policybindingmodel_ptr_id = ptr;
        self
    }

    /// Appends a stage, bound after the previous ones (orders 10, 20, 30, …) with
    /// authentik's binding defaults.
    #[must_use]
    pub fn stage(self, name: impl Into<String>, config: impl Into<StageConfig>) -> Self {
        self.stage_with(name, config, |_| {})
    }

    /// Appends a stage, adjusting its binding (e.g. `evaluate_on_plan`,
    /// `invalid_response_action`, or another `order`). The binding's ids follow its
    /// final order, so orders must be distinct within the flow
    /// ([`FlowBuilder::ops`] refuses duplicates). A stage referring to another (the
    /// identification stage's `password_stage`) uses [`stage_id`] of its name.
    #[must_use]
    pub fn stage_with(
        mut self,
        name: impl Into<String>,
        config: impl Into<StageConfig>,
        adjust: impl FnOnce(&mut FlowStageBinding),
    ) -> Self {
        let name = name.into();
        let mut stage = Stage::new(name.clone(), config);
        stage.pk = stage_id(&name);
        let order = self
            .stages
            .iter()
            .map(|(_, b)| b.order)
            .max()
            .map_or(10, |o| o.saturating_add(10));
        let mut binding = FlowStageBinding::new(self.flow.pk, stage.pk, order);
        adjust(&mut binding);
        binding.target = self.flow.pk;
        binding.stage = stage.pk;
        binding.pk = binding_id(&self.flow.slug, binding.order);
        binding.policybindingmodel_ptr_id = v5(&[
            "binding-target",
            &self.flow.slug,
            &binding.order.to_string(),
        ]);
        self.stages.push((stage, binding));
        self
    }

    /// Appends a stage whose binding carries the policy named `policy` (defined with
    /// [`FlowBuilder::policy`], here or by another builder). A failing policy **skips**
    /// the stage; to deny, bind it negated to a deny stage
    /// ([`FlowBuilder::policy_binding`] with `|b| b.negate = true`).
    #[must_use]
    pub fn stage_with_policy(
        self,
        name: impl Into<String>,
        config: impl Into<StageConfig>,
        policy: impl Into<String>,
    ) -> Self {
        let name = name.into();
        self.stage(name.clone(), config)
            .policy_binding(BindTo::Stage(name), policy, |_| {})
    }

    /// Defines a policy (its id derives from its name).
    #[must_use]
    pub fn policy(mut self, name: impl Into<String>, kind: PolicyKind) -> Self {
        let name = name.into();
        let mut policy = Policy::new(name.clone(), kind);
        policy.pk = policy_id(&name);
        self.policies.retain(|p| p.name != name);
        self.policies.push(policy);
        self
    }

    /// Binds the policy named `policy` to the flow: the flow is refused when it fails.
    #[must_use]
    pub fn flow_policy(self, policy: impl Into<String>) -> Self {
        self.policy_binding(BindTo::Flow, policy, |_| {})
    }

    /// Binds the policy named `policy` to the flow or to one of the builder's stages,
    /// adjusting the binding (`negate`, `failure_result`, `timeout`, `order`). Bindings
    /// on one target are ordered as added (0, 10, 20, …) unless adjusted.
    #[must_use]
    pub fn policy_binding(
        mut self,
        to: BindTo,
        policy: impl Into<String>,
        adjust: impl FnOnce(&mut PolicyBinding) + Send + 'static,
    ) -> Self {
        self.bindings.push(PendingBinding {
            to,
            policy: policy.into(),
            adjust: Box::new(adjust),
        });
        self
    }

    /// The flow's id.
    pub fn flow_id(&self) -> FlowId {
        self.flow.pk
    }

    /// The catalogue writes this builder stands for, in an order a store accepts: the
    /// flow, stages, policies, stage bindings, policy bindings. Fails (naming it) when
    /// a policy binding names a stage the builder does not have, a stage is added twice
    /// or two stages share an order.
    pub fn ops(self) -> Result<Vec<Op>, StoreError> {
        let slug = self.flow.slug.clone();
        for (i, (stage, binding)) in self.stages.iter().enumerate() {
            let earlier = self.stages.iter().take(i);
            if let Some((other, _)) = earlier.clone().find(|(s, _)| s.name == stage.name) {
                return Err(invalid(format!(
                    "flow `{slug}` adds the stage `{}` twice",
                    other.name
                )));
            }
            if let Some((other, _)) = earlier.clone().find(|(_, b)| b.order == binding.order) {
                return Err(invalid(format!(
                    "flow `{slug}` binds `{}` and `{}` at the same order {}",
                    other.name, stage.name, binding.order
                )));
            }
        }
        let mut policy_bindings: Vec<PolicyBinding> = Vec::new();
        for pending in self.bindings {
            let (target, label) = match &pending.to {
                BindTo::Flow => (BindingTarget::Flow(self.flow.pk), "flow".to_owned()),
                BindTo::Stage(name) => {
                    let Some((_, b)) = self.stages.iter().find(|(s, _)| &s.name == name) else {
                        return Err(StoreError::NotFound(format!(
                            "flow `{slug}` has no stage `{name}` to bind policy `{}` to",
                            pending.policy
                        )));
                    };
                    (BindingTarget::Stage(b.pk), format!("stage-{}", b.order))
                }
            };
            let order = policy_bindings
                .iter()
                .filter(|b| b.target == target)
                .count();
            let order = i32::try_from(order * 10).unwrap_or(i32::MAX);
            let mut binding = PolicyBinding::new(
                target,
                BindingSubject::Policy(policy_id(&pending.policy)),
                order,
            );
            (pending.adjust)(&mut binding);
            binding.target = target;
            binding.subject = BindingSubject::Policy(policy_id(&pending.policy));
            binding.pk =
                PolicyBindingId::from_uuid(v5(&["policy-binding", &slug, &label, &pending.policy]));
            policy_bindings.push(binding);
        }
        let mut ops = vec![Op::PutFlow(self.flow)];
        let (stages, bindings): (Vec<_>, Vec<_>) = self.stages.into_iter().unzip();
        ops.extend(stages.into_iter().map(Op::PutStage));
        ops.extend(self.policies.into_iter().map(Op::PutPolicy));
        ops.extend(bindings.into_iter().map(Op::PutBinding));
        ops.extend(policy_bindings.into_iter().map(Op::PutPolicyBinding));
        Ok(ops)
    }

    /// Installs the flow: writes each object that differs from the stored one (so an
    /// unchanged flow is not touched and its revision stays), then removes the flow's
    /// stage bindings and flow-level policy bindings the builder no longer has
    /// (stages and policies themselves are kept: other flows may use them).
    ///
    /// Not atomic — the writes are separate — but idempotent: installing again (on any
    /// instance) converges. A flow with this slug created otherwise (another id) is
    /// refused by the store (the slug is taken).
    pub async fn install(self, admin: &dyn FlowAdmin) -> Result<(), StoreError> {
        let slug = self.flow.slug.clone();
        let ops = self.ops()?;
        let current = admin.flow(&slug).await?;
        let mut keep_bindings: Vec<BindingId> = Vec::new();
        let mut keep_policy_bindings: Vec<PolicyBindingId> = Vec::new();
        for op in ops {
            let unchanged = match (&op, &current) {
                (_, None) => false,
                (Op::PutFlow(f), Some(def)) => same(f, &def.flow),
                (Op::PutStage(s), Some(def)) => def
                    .stages
                    .iter()
                    .any(|b| b.stage.pk == s.pk && same(s, &*b.stage)),
                (Op::PutBinding(b), Some(def)) => {
                    def.binding(b.pk).is_some_and(|cur| same(b, &cur.binding))
                }
                (Op::PutPolicy(p), Some(def)) => resolved(def)
                    .filter_map(|r| r.policy.as_deref())
                    .any(|cur| cur.pk == p.pk && same(p, cur)),
                (Op::PutPolicyBinding(pb), Some(def)) => {
                    resolved(def).any(|r| r.binding.pk == pb.pk && same(pb, &r.binding))
                }
                _ => false,
            };
            if let Op::PutBinding(b) = &op {
                keep_bindings.push(b.pk);
            }
            if let Op::PutPolicyBinding(pb) = &op {
                keep_policy_bindings.push(pb.pk);
            }
            if !unchanged {
                put(admin, op).await?;
            }
        }
        if let Some(def) = current {
            for bound in &def.stages {
                if !keep_bindings.contains(&bound.binding.pk) {
                    admin.delete_binding(bound.binding.pk).await?;
                }
            }
            for r in &def.policies {
                if !keep_policy_bindings.contains(&r.binding.pk) {
                    admin.delete_policy_binding(r.binding.pk).await?;
                }
            }
            for bound in def
                .stages
                .iter()
                .filter(|b| keep_bindings.contains(&b.binding.pk))
            {
                for r in &bound.policies {
                    if !keep_policy_bindings.contains(&r.binding.pk) {
                        admin.delete_policy_binding(r.binding.pk).await?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn invalid(message: String) -> StoreError {
    StoreError::Validation(crate::model::ValidationErrors::field("stages", message))
}

fn resolved(
    def: &crate::store::FlowDefinition,
) -> impl Iterator<Item = &crate::store::ResolvedBinding> {
    def.policies
        .iter()
        .chain(def.stages.iter().flat_map(|s| s.policies.iter()))
}

/// Equality through the serialised form (the model types are not all `PartialEq`).
fn same<T: Serialize>(a: &T, b: &T) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

async fn put(admin: &dyn FlowAdmin, op: Op) -> Result<(), StoreError> {
    match op {
        Op::PutFlow(f) => admin.put_flow(f).await,
        Op::PutStage(s) => admin.put_stage(s).await,
        Op::PutBinding(b) => admin.put_binding(b).await,
        Op::PutPolicy(p) => admin.put_policy(p).await,
        Op::PutPolicyBinding(b) => admin.put_policy_binding(b).await,
        Op::DeleteFlow(slug) => admin.delete_flow(&slug).await.map(|_| ()),
        Op::DeleteStage(pk) => admin.delete_stage(pk).await.map(|_| ()),
        Op::DeleteBinding(pk) => admin.delete_binding(pk).await.map(|_| ()),
        Op::DeletePolicy(pk) => admin.delete_policy(pk).await.map(|_| ()),
        Op::DeletePolicyBinding(pk) => admin.delete_policy_binding(pk).await.map(|_| ()),
    }
}
