//! Host-defined stage kinds and policy evaluators, by name.
//!
//! The flow model is plain data: a host stage is stored as a
//! [`CustomStage`] (a kind name and its settings), a host policy as a
//! [`CustomPolicy`](crate::model::CustomPolicy). The engine's [`Registry`] maps those names to the host's
//! implementations ([`EngineBuilder::register_stage`](crate::EngineBuilder::register_stage),
//! [`EngineBuilder::register_policy`](crate::EngineBuilder::register_policy)), so
//! catalogues using them serialise (shared stores, backups, blueprint export) and
//! several instances agree on them.
//!
//! Implementations get the stored settings when they run:
//! [`StageContext::custom_config`] for stages, [`PolicyRequest::config`](crate::policy::PolicyRequest::config) for policies (typed:
//! [`StageContext::config_as`], [`PolicyRequest::config_as`](crate::policy::PolicyRequest::config_as)).
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

use crate::model::{CustomStage, StageConfig};
use crate::policy::{PolicyEvaluator, PolicyHooks, unregistered_policy};
use crate::stages::{StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::store::{BoundStage, FlowDefinition};

/// Host stage kinds and policy evaluators by name. Held by the engine's
/// [`Env`](crate::env::Env); filled by the [`EngineBuilder`](crate::EngineBuilder).
#[derive(Clone, Default)]
pub struct Registry {
    stages: BTreeMap<String, Arc<dyn StageKind>>,
    policies: PolicyHooks,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("stages", &self.stages.keys().collect::<Vec<_>>())
            .field("policies", &self.policies)
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

    /// Registers (or replaces) the evaluator that [`CustomPolicy`](crate::model::CustomPolicy)s named `name` run.
    pub fn register_policy(
        &mut self,
        name: impl Into<String>,
        evaluator: impl PolicyEvaluator + 'static,
    ) -> &mut Self {
        self.policies.register_policy(name, evaluator);
        self
    }

    /// The stage kind registered under `name`.
    pub fn stage(&self, name: &str) -> Option<&Arc<dyn StageKind>> {
        self.stages.get(name)
    }

    /// The policy evaluator registered under `name`.
    pub fn policy(&self, name: &str) -> Option<&Arc<dyn PolicyEvaluator>> {
        self.policies.policy(name)
    }

    /// What policies call out to: the host's evaluators, the expression evaluator and
    /// the Have I Been Pwned hook.
    pub fn hooks(&self) -> &PolicyHooks {
        &self.policies
    }

    /// The hooks, to set the expression evaluator or the Have I Been Pwned hook.
    pub fn hooks_mut(&mut self) -> &mut PolicyHooks {
        &mut self.policies
    }

    /// The registered stage kind names, sorted.
    pub fn stage_names(&self) -> impl Iterator<Item = &str> {
        self.stages.keys().map(String::as_str)
    }

    /// The registered policy evaluator names, sorted.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.policy_names()
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
        match self.policies.unregistered_policy(&bound.policies) {
            Some(policy) => ResolvedStage::Refused(Refused(unregistered_policy(policy))),
            None => self.stage_kind(&bound.stage.config),
        }
    }

    /// Why `def` cannot start with this registry ([`PolicyHooks::check`]). Custom
    /// *stages* are checked when reached.
    pub fn check(&self, def: &FlowDefinition) -> Result<(), String> {
        self.policies.check(def)
    }
}

fn unregistered_stage(c: &CustomStage) -> String {
    format!(
        "This flow uses the stage kind `{}`, which is not registered on this server.",
        c.name
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
