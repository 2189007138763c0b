//! Host-defined stage kinds and policy evaluators, by name.
//!
//! The flow model is plain data: a host stage is stored as a
//! [`CustomStage`] (a kind name and its settings), a host policy as a
//! [`CustomPolicy`]. The engine's [`Registry`] maps those names to the host's
//! implementations ([`EngineBuilder::register_stage`](crate::EngineBuilder::register_stage),
//! [`EngineBuilder::register_policy`](crate::EngineBuilder::register_policy)), so
//! catalogues using them serialise (shared stores, backups, blueprint export) and
//! several instances agree on them.
//!
//! Implementations get the stored settings when they run:
//! [`StageContext::custom_config`] for stages, [`PolicyRequest::config`] for policies (typed:
//! [`StageContext::config_as`], [`PolicyRequest::config_as`]).
//!
//! Names are resolved when a flow runs, never when a catalogue is written (a store
//! does not know the engine's registry). An unknown name **fails closed**:
//! - a custom stage whose kind is not registered denies the flow when reached, naming
//!   the kind;
//! - a custom policy whose evaluator is not registered makes a flow bound to it (on
//!   the flow or on any stage binding) not start, naming the policy; a stage binding
//!   re-evaluated on another instance that lacks the evaluator denies at that stage. It
//!   never passes, whatever the binding's `negate` and `failure_result`, and never
//!   skips a stage.
//!
//! ```
//! use authflow::registry::Registry;
//! use authflow::stages::{StageContext, StageError, StageKind, StageOutcome};
//!
//! struct Noop;
//! #[async_trait::async_trait]
//! impl StageKind for Noop {
//!     async fn challenge(&self, _ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
//!         Ok(StageOutcome::Done)
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register_stage("example.noop", Noop);
//! assert!(registry.stage("example.noop").is_some());
//! assert!(registry.stage("example.other").is_none());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::{CustomPolicy, CustomStage, Policy, PolicyKind, StageConfig};
use crate::policy::{PolicyError, PolicyEvaluator, PolicyRequest};
use crate::stages::{StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::store::{BoundStage, FlowDefinition, ResolvedBinding};

/// Host stage kinds and policy evaluators by name. Held by the engine's
/// [`Env`](crate::env::Env); filled by the [`EngineBuilder`](crate::EngineBuilder).
#[derive(Clone, Default)]
pub struct Registry {
    stages: BTreeMap<String, Arc<dyn StageKind>>,
    policies: BTreeMap<String, Arc<dyn PolicyEvaluator>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("stages", &self.stages.keys().collect::<Vec<_>>())
            .field("policies", &self.policies.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the stage kind that [`CustomStage`]s named `name` run.
    pub fn register_stage(
        &mut self,
        name: impl Into<String>,
        kind: impl StageKind + 'static,
    ) -> &mut Self {
        self.stages.insert(name.into(), Arc::new(kind));
        self
    }

    /// Registers (or replaces) the evaluator that [`CustomPolicy`]s named `name` run.
    pub fn register_policy(
        &mut self,
        name: impl Into<String>,
        evaluator: impl PolicyEvaluator + 'static,
    ) -> &mut Self {
        self.policies.insert(name.into(), Arc::new(evaluator));
        self
    }

    /// The stage kind registered under `name`.
    pub fn stage(&self, name: &str) -> Option<&Arc<dyn StageKind>> {
        self.stages.get(name)
    }

    /// The policy evaluator registered under `name`.
    pub fn policy(&self, name: &str) -> Option<&Arc<dyn PolicyEvaluator>> {
        self.policies.get(name)
    }

    /// The registered stage kind names, sorted.
    pub fn stage_names(&self) -> impl Iterator<Item = &str> {
        self.stages.keys().map(String::as_str)
    }

    /// The registered policy evaluator names, sorted.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    /// The behaviour of a stage configuration: the built-in kind, the registered custom
    /// kind, or — for a custom kind not registered — a stage that denies naming it.
    pub fn stage_kind<'a>(&'a self, config: &'a StageConfig) -> ResolvedStage<'a> {
        match config {
            StageConfig::Custom(c) => match self.stage(&c.name) {
                Some(kind) => ResolvedStage::Kind(kind.as_ref()),
                None => ResolvedStage::Refused(Refused(unregistered_stage(c))),
            },
            builtin => match builtin.builtin_kind() {
                Some(kind) => ResolvedStage::Kind(kind),
                // Unreachable: every other variant is built in. Fail closed anyway.
                None => ResolvedStage::Refused(Refused("This stage cannot run.".into())),
            },
        }
    }

    /// The behaviour of a bound stage: as [`Registry::stage_kind`], and a stage that
    /// denies when one of the binding's policies names an unregistered evaluator (so a
    /// binding that could not be evaluated never skips its stage).
    pub fn resolve<'a>(&'a self, bound: &'a BoundStage) -> ResolvedStage<'a> {
        match self.unregistered_policy(&bound.policies) {
            Some(policy) => ResolvedStage::Refused(Refused(unregistered_policy(policy))),
            None => self.stage_kind(&bound.stage.config),
        }
    }

    /// The first policy of `bindings` whose custom evaluator is not registered.
    pub fn unregistered_policy<'a>(&self, bindings: &'a [ResolvedBinding]) -> Option<&'a Policy> {
        bindings
            .iter()
            .filter_map(|b| b.policy.as_deref())
            .find(|p| self.is_unregistered(p))
    }

    /// Why `def` cannot start with this registry: the message naming the first policy
    /// (bound to the flow, to a stage binding or used by a prompt's validation) whose
    /// custom evaluator is not registered. Custom *stages* are checked when reached.
    pub fn check(&self, def: &FlowDefinition) -> Result<(), String> {
        let found = self
            .unregistered_policy(&def.policies)
            .or_else(|| {
                def.stages
                    .iter()
                    .find_map(|s| self.unregistered_policy(&s.policies))
            })
            .or_else(|| {
                def.validation_policies
                    .values()
                    .map(|p| p.as_ref())
                    .find(|p| self.is_unregistered(p))
            });
        match found {
            Some(policy) => Err(unregistered_policy(policy)),
            None => Ok(()),
        }
    }

    fn is_unregistered(&self, policy: &Policy) -> bool {
        matches!(&policy.kind, PolicyKind::Custom(c) if self.policy(&c.name).is_none())
    }

    /// Runs a custom policy with its settings; an unregistered evaluator is an error
    /// naming it (callers that must fail closed check [`Registry::check`] first).
    pub(crate) async fn run_policy(
        &self,
        policy: &Policy,
        custom: &CustomPolicy,
        request: &mut PolicyRequest<'_>,
    ) -> Result<crate::policy::PolicyOutcome, PolicyError> {
        let Some(evaluator) = self.policy(&custom.name).cloned() else {
            return Err(PolicyError(unregistered_policy(policy)));
        };
        let mut inner = PolicyRequest {
            user: request.user,
            username: request.username,
            context: &mut *request.context,
            flow_plan: request.flow_plan,
            flow: request.flow,
            client_ip: request.client_ip,
            env: request.env,
            config: &custom.config,
        };
        evaluator.evaluate(&mut inner).await
    }
}

fn unregistered_stage(c: &CustomStage) -> String {
    format!(
        "This flow uses the stage kind `{}`, which is not registered on this server.",
        c.name
    )
}

pub(crate) fn unregistered_policy(policy: &Policy) -> String {
    let kind = match &policy.kind {
        PolicyKind::Custom(c) => c.name.as_str(),
        _ => "",
    };
    format!(
        "This flow uses the policy `{}` (kind `{kind}`), which is not registered on this server.",
        policy.name
    )
}

/// A stage's behaviour as resolved by [`Registry::stage_kind`]; derefs to
/// [`StageKind`].
pub enum ResolvedStage<'a> {
    /// A built-in or registered kind.
    Kind(&'a dyn StageKind),
    /// A stage that cannot run here: it denies with a message naming what is missing.
    Refused(Refused),
}

impl<'a> Deref for ResolvedStage<'a> {
    type Target = dyn StageKind + 'a;

    fn deref(&self) -> &Self::Target {
        match self {
            ResolvedStage::Kind(k) => *k,
            ResolvedStage::Refused(r) => r,
        }
    }
}

impl fmt::Debug for ResolvedStage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolvedStage::Kind(k) => write!(f, "Kind({})", k.meta().model_name),
            ResolvedStage::Refused(r) => f.debug_tuple("Refused").field(&r.0).finish(),
        }
    }
}

/// The stage that stands in for one that cannot run: silent, it denies with its
/// message.
#[derive(Debug, Clone)]
pub struct Refused(String);

impl Refused {
    /// The denial message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

#[async_trait]
impl StageKind for Refused {
    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "custom",
            verbose_name: "Unregistered Stage",
            form_component: "",
        }
    }

    async fn challenge(&self, _ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        Ok(StageOutcome::Deny(self.0.clone()))
    }
}

impl StageConfig {
    /// The behaviour of this stage kind (see [`Registry::stage_kind`]).
    pub fn kind<'a>(&'a self, registry: &'a Registry) -> ResolvedStage<'a> {
        registry.stage_kind(self)
    }
}

impl StageContext<'_> {
    /// The settings of the custom stage being run (`null` for built-in stages and
    /// custom stages without settings).
    pub fn custom_config(&self) -> &Value {
        match &self.stage.config {
            StageConfig::Custom(c) => &c.config,
            _ => &Value::Null,
        }
    }

    /// The custom stage's settings as `T`; settings that do not fit are an
    /// [`StageError::Internal`] naming the stage (the client gets a flow error).
    pub fn config_as<T: DeserializeOwned>(&self) -> Result<T, StageError> {
        T::deserialize(self.custom_config()).map_err(|e| {
            StageError::Internal(format!(
                "stage `{}` has invalid settings: {e}",
                self.stage.name
            ))
        })
    }
}

impl PolicyRequest<'_> {
    /// The custom policy's settings as `T`; settings that do not fit are a
    /// [`PolicyError`] (the binding's `failure_result`).
    pub fn config_as<T: DeserializeOwned>(&self) -> Result<T, PolicyError> {
        T::deserialize(self.config).map_err(|e| PolicyError(format!("invalid settings: {e}")))
    }
}
