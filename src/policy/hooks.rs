//! [`PolicyHooks`]: what policies call out to — the expression evaluator, the Have I
//! Been Pwned hook and the host's policy evaluators by name. The engine holds them (in
//! its [`Registry`](crate::registry::Registry)) and hands them to every
//! [`PolicyRequest`] and stage, so the services ([`Env`](crate::env::Env)) stay below
//! the policies that use them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{
    ExpressionEvaluator, PolicyError, PolicyEvaluator, PolicyOutcome, PolicyRequest, PwnedPasswords,
};
use crate::model::{CustomPolicy, Policy, PolicyKind};
use crate::store::{FlowDefinition, ResolvedBinding};

/// The expression evaluator, the Have I Been Pwned hook and the host policy
/// evaluators by name ([`EngineBuilder::expressions`](crate::EngineBuilder::expressions),
/// [`EngineBuilder::pwned_passwords`](crate::EngineBuilder::pwned_passwords),
/// [`EngineBuilder::register_policy`](crate::EngineBuilder::register_policy)).
#[derive(Clone, Default)]
pub struct PolicyHooks {
    /// Runs expression policies and prompt expressions (none: expression policies are
    /// refused at planning, prompt expressions stay empty).
    pub expressions: Option<Arc<dyn ExpressionEvaluator>>,
    /// Answers the password policy's Have I Been Pwned lookups (none: a policy with
    /// `check_have_i_been_pwned` errors).
    pub pwned: Option<Arc<dyn PwnedPasswords>>,
    policies: BTreeMap<String, Arc<dyn PolicyEvaluator>>,
}

impl fmt::Debug for PolicyHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyHooks")
            .field("expressions", &self.expressions.is_some())
            .field("pwned", &self.pwned.is_some())
            .field("policies", &self.policies.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PolicyHooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
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

    /// The policy evaluator registered under `name`.
    pub fn policy(&self, name: &str) -> Option<&Arc<dyn PolicyEvaluator>> {
        self.policies.get(name)
    }

    /// The registered policy evaluator names, sorted.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    /// The first policy of `bindings` whose custom evaluator is not registered.
    pub fn unregistered_policy<'a>(&self, bindings: &'a [ResolvedBinding]) -> Option<&'a Policy> {
        bindings
            .iter()
            .filter_map(|b| b.policy.as_deref())
            .find(|p| self.is_unregistered(p))
    }

    /// Why `def` cannot start with these hooks: the message naming the first policy
    /// (bound to the flow, to a stage binding or used by a prompt's validation) whose
    /// custom evaluator is not registered.
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
    /// naming it (callers that must fail closed check [`PolicyHooks::check`] first).
    pub(crate) async fn run_policy(
        &self,
        policy: &Policy,
        custom: &CustomPolicy,
        request: &mut PolicyRequest<'_>,
    ) -> Result<PolicyOutcome, PolicyError> {
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
            hooks: request.hooks,
            config: &custom.config,
        };
        evaluator.evaluate(&mut inner).await
    }
}

/// The denial naming a policy whose host evaluator is not registered.
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

impl PolicyRequest<'_> {
    /// The custom policy's settings as `T`; settings that do not fit are a
    /// [`PolicyError`] (the binding's `failure_result`).
    pub fn config_as<T: DeserializeOwned>(&self) -> Result<T, PolicyError> {
        T::deserialize(self.config).map_err(|e| PolicyError(format!("invalid settings: {e}")))
    }
}
