//! The policy engine: evaluates policy bindings in `all` or `any` mode.
//!
//! Semantics (authentik's, see `reference/authentik-flows.md` §5):
//! - no bindings pass;
//! - disabled bindings are skipped (the [`FlowDefinition`](crate::store::FlowDefinition)
//!   already leaves them out);
//! - `negate` inverts a result and keeps its messages;
//! - an error or a timeout yields the binding's `failure_result`, with the error text as
//!   message, and a `policy_exception` event;
//! - group and user bindings pass when the user is that user or in that group (parent
//!   groups count); anonymous and pretended users fail them. They combine into one
//!   result, as in authentik;
//! - messages of every binding are collected.

mod builtin;
mod hooks;
mod pwned;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;

use crate::env::Services;
use crate::events::{Event, EventAction};
use crate::model::{
    BindingSubject, Flow, GroupId, Policy, PolicyBindingId, PolicyEngineMode, PolicyKind,
};
use crate::plan::PlanContext;
use crate::store::{ResolvedBinding, User};

/// A policy's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PolicyOutcome {
    /// Pass or fail.
    pub passing: bool,
    /// Messages for the user.
    pub messages: Vec<String>,
}

impl PolicyOutcome {
    /// Pass without messages.
    pub fn pass() -> Self {
        Self {
            passing: true,
            messages: Vec::new(),
        }
    }

    /// Fail with a message.
    pub fn fail(message: impl Into<String>) -> Self {
        Self {
            passing: false,
            messages: vec![message.into()],
        }
    }

    /// A result with messages.
    pub fn new(passing: bool, messages: Vec<String>) -> Self {
        Self { passing, messages }
    }
}

/// An error inside a policy; evaluates as the binding's `failure_result`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// What a policy sees.
pub struct PolicyRequest<'a> {
    /// The subject: the pending user if there is one, else the logged-in user.
    /// `None` for anonymous requests and for pretended (unknown) users.
    pub user: Option<&'a User>,
    /// The identifier of the subject even when it is not a real user (reputation).
    pub username: Option<&'a str>,
    /// The plan context; policies may read and write it (authentik's `flow_plan.context`).
    pub context: &'a mut PlanContext,
    /// Whether the policy runs for a stage binding of a plan (while planning, or when the
    /// binding is re-evaluated). authentik then puts `flow_plan` into `request.context`;
    /// expression policies only keep what they write to `flow_plan.context`. `false` for
    /// flow-level policies (they run before the plan exists: their expressions get a
    /// copy of the context without `flow_plan`, and their writes are dropped) and for
    /// prompt validation policies.
    pub flow_plan: bool,
    /// The flow being planned or run.
    pub flow: &'a Flow,
    /// The client IP.
    pub client_ip: Option<&'a str>,
    /// The engine's services.
    pub env: &'a Services,
    /// The expression evaluator, the Have I Been Pwned hook and the host's policy
    /// evaluators.
    pub hooks: &'a PolicyHooks,
    /// The settings of the custom policy being run
    /// ([`CustomPolicy::config`](crate::model::CustomPolicy::config); typed:
    /// [`PolicyRequest::config_as`]). Callers building a request pass `&Value::Null`;
    /// the engine sets it for each custom policy it runs.
    pub config: &'a serde_json::Value,
}

/// A host-implemented policy: register it by name
/// ([`EngineBuilder::register_policy`](crate::EngineBuilder::register_policy)) and
/// refer to it with a [`CustomPolicy`](crate::model::CustomPolicy) of that name; its
/// settings are in [`PolicyRequest::config`].
///
/// Where it is bound decides what a failure does: bound to the flow it refuses the
/// flow; bound to a stage it **skips that stage** (authentik's semantics), it does not
/// deny. To deny at a point of the flow, bind it negated to a deny stage there — see
/// [`BindingTarget::Stage`](crate::model::BindingTarget::Stage); the deny stage then
/// shows this policy's messages.
///
/// ```
/// use authflow::policy::{PolicyEvaluator, PolicyError, PolicyOutcome, PolicyRequest};
/// struct OfficeHoursOnly;
/// #[async_trait::async_trait]
/// impl PolicyEvaluator for OfficeHoursOnly {
///     async fn evaluate(&self, req: &mut PolicyRequest<'_>) -> Result<PolicyOutcome, PolicyError> {
///         let hour = (req.env.clock.now() / 3600) % 24;
///         Ok(if (8..18).contains(&hour) { PolicyOutcome::pass() } else { PolicyOutcome::fail("Closed.") })
///     }
/// }
/// ```
#[async_trait]
pub trait PolicyEvaluator: Send + Sync {
    /// Decides.
    async fn evaluate(&self, request: &mut PolicyRequest<'_>)
    -> Result<PolicyOutcome, PolicyError>;
}

/// Runs expression policies (the `python` feature provides one; hosts may plug in
/// another language). Expressions run with the host's privileges.
#[async_trait]
pub trait ExpressionEvaluator: Send + Sync {
    /// Evaluates `policy`'s expression.
    async fn evaluate(
        &self,
        policy: &Policy,
        expression: &str,
        request: &mut PolicyRequest<'_>,
    ) -> Result<PolicyOutcome, PolicyError>;

    /// Evaluates an expression for its value: a prompt's `placeholder` or
    /// `initial_value` when `placeholder_expression` / `initial_value_expression` is
    /// set (authentik evaluates these with the user, the request and
    /// `prompt_context` in scope). The default refuses, so an evaluator that only runs
    /// policies leaves such fields empty.
    async fn evaluate_value(
        &self,
        expression: &str,
        request: &ValueRequest<'_>,
    ) -> Result<serde_json::Value, PolicyError> {
        let _ = (expression, request);
        Err(PolicyError(
            "this expression evaluator does not compute values".into(),
        ))
    }
}

/// What a value expression (a prompt's `placeholder_expression` /
/// `initial_value_expression`) sees.
pub struct ValueRequest<'a> {
    /// Names the expression in logs and errors (the prompt's name).
    pub name: &'a str,
    /// Identifies the expression for caching (e.g. `prompt:<pk>:placeholder`).
    pub key: String,
    /// The pending user if there is one, else the logged-in user.
    pub user: Option<&'a User>,
    /// `prompt_data` so far (authentik's `prompt_context`).
    pub prompt_context: &'a serde_json::Map<String, serde_json::Value>,
    /// The plan context (read only).
    pub context: &'a PlanContext,
    /// The flow being run.
    pub flow: &'a Flow,
    /// The client IP.
    pub client_ip: Option<&'a str>,
    /// The engine's services.
    pub env: &'a Services,
}

/// One binding's verdict, for the inspector and decision log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingResult {
    /// The binding.
    pub binding: PolicyBindingId,
    /// Its verdict (after `negate` and `failure_result`).
    pub passing: bool,
    /// Its messages.
    pub messages: Vec<String>,
}

/// The combined verdict of a set of bindings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PolicyResult {
    /// Pass or fail.
    pub passing: bool,
    /// Messages of every binding, in order.
    pub messages: Vec<String>,
    /// Each binding's verdict.
    pub results: Vec<BindingResult>,
}

/// Evaluates `bindings` (already filtered to enabled, ordered) in `mode`.
pub async fn evaluate(
    bindings: &[ResolvedBinding],
    mode: PolicyEngineMode,
    request: &mut PolicyRequest<'_>,
) -> PolicyResult {
    if bindings.is_empty() {
        return PolicyResult {
            passing: true,
            ..PolicyResult::default()
        };
    }
    let mut verdicts: Vec<bool> = Vec::with_capacity(bindings.len());
    let mut result = PolicyResult::default();

    // Static (group / user) bindings combine into one verdict, as in authentik.
    let statics: Vec<&ResolvedBinding> = bindings
        .iter()
        .filter(|b| !matches!(b.binding.subject, BindingSubject::Policy(_)))
        .collect();
    if !statics.is_empty() {
        let groups = match request.user {
            Some(u)
                if statics
                    .iter()
                    .any(|b| matches!(b.binding.subject, BindingSubject::Group(_))) =>
            {
                request
                    .env
                    .users
                    .groups_of(u.pk.clone())
                    .await
                    .map(|g| g.into_iter().map(|g| g.pk).collect())
                    .unwrap_or_default()
            }
            _ => Vec::<GroupId>::new(),
        };
        let mut passing = 0usize;
        for b in &statics {
            let ok = match request.user {
                // Anonymous and pretended users fail every static binding.
                None => false,
                Some(user) => {
                    let matches = match &b.binding.subject {
                        BindingSubject::User(u) => *u == user.pk,
                        BindingSubject::Group(g) => groups.contains(g),
                        BindingSubject::Policy(_) => false,
                    };
                    matches != b.binding.negate
                }
            };
            if ok {
                passing += 1;
            }
            result.results.push(BindingResult {
                binding: b.binding.pk,
                passing: ok,
                messages: Vec::new(),
            });
        }
        verdicts.push(match mode {
            PolicyEngineMode::Any => passing > 0,
            PolicyEngineMode::All => passing == statics.len(),
        });
    }

    for b in bindings
        .iter()
        .filter(|b| matches!(b.binding.subject, BindingSubject::Policy(_)))
    {
        let outcome = run_binding(b, request).await;
        verdicts.push(outcome.passing);
        result.messages.extend(outcome.messages.iter().cloned());
        result.results.push(BindingResult {
            binding: b.binding.pk,
            passing: outcome.passing,
            messages: outcome.messages,
        });
    }

    result.passing = match mode {
        PolicyEngineMode::All => verdicts.iter().all(|v| *v),
        PolicyEngineMode::Any => verdicts.iter().any(|v| *v),
    };
    result
}

/// Evaluates one policy binding: runs the policy with its timeout, applies
/// `failure_result` on error or timeout, then `negate`.
async fn run_binding(b: &ResolvedBinding, request: &mut PolicyRequest<'_>) -> PolicyOutcome {
    let Some(policy) = b.policy.clone() else {
        return error_outcome(b, request, "Policy not found.");
    };
    if let Some(unregistered) = request.hooks.unregistered_policy(std::slice::from_ref(b)) {
        // Fails closed whatever `negate` and `failure_result` say (the planner and the
        // executor refuse such flows before evaluating; this guards direct callers).
        let mut event = Event::new(EventAction::PolicyException)
            .with("message", unregistered_policy(unregistered))
            .with("policy", unregistered.name.clone());
        event.flow = Some(request.flow.slug.clone());
        request.env.events.emit(event);
        return PolicyOutcome::fail(unregistered_policy(unregistered));
    }
    let timeout = Duration::from_secs(u64::from(b.binding.timeout.max(1)));
    let started = Instant::now();
    let timer = request.env.timer.clone();
    let raw = match timer {
        Some(timer) => {
            let fut = Box::pin(run_policy(&policy, request));
            crate::clock::race(fut, timer.sleep(timeout))
                .await
                .unwrap_or_else(|| Err(PolicyError("Policy timed out.".into())))
        }
        None => run_policy(&policy, request).await,
    };
    let raw = match raw {
        Ok(_) if started.elapsed() > timeout => Err(PolicyError("Policy timed out.".into())),
        other => other,
    };
    let mut outcome = match raw {
        Ok(o) => o,
        Err(e) => {
            let mut event = Event::new(EventAction::PolicyException)
                .with("message", e.0.clone())
                .with("policy", policy.name.clone());
            event.user = request.username.map(str::to_owned);
            event.flow = Some(request.flow.slug.clone());
            request.env.events.emit(event);
            return PolicyOutcome {
                passing: b.binding.failure_result,
                messages: vec![e.0],
            };
        }
    };
    if b.binding.negate {
        outcome.passing = !outcome.passing;
    }
    if policy.execution_logging {
        let mut event = Event::new(EventAction::PolicyExecution)
            .with("policy", policy.name.clone())
            .with("passing", outcome.passing)
            // authentik logs the whole result: verdict and messages.
            .with("messages", outcome.messages.clone());
        event.user = request.username.map(str::to_owned);
        event.flow = Some(request.flow.slug.clone());
        event.client_ip = request.client_ip.map(str::to_owned);
        request.env.events.emit(event);
    }
    outcome
}

fn error_outcome(b: &ResolvedBinding, request: &PolicyRequest<'_>, message: &str) -> PolicyOutcome {
    let mut event = Event::new(EventAction::PolicyException).with("message", message);
    event.flow = Some(request.flow.slug.clone());
    request.env.events.emit(event);
    PolicyOutcome {
        passing: b.binding.failure_result,
        messages: vec![message.to_owned()],
    }
}

/// Runs one policy without binding semantics.
pub async fn run_policy(
    policy: &Policy,
    request: &mut PolicyRequest<'_>,
) -> Result<PolicyOutcome, PolicyError> {
    match &policy.kind {
        PolicyKind::Dummy { result } => Ok(PolicyOutcome::new(*result, vec!["dummy".into()])),
        PolicyKind::Password(p) => builtin::password(p, request).await,
        PolicyKind::Reputation(p) => builtin::reputation(p, request).await,
        PolicyKind::Expression { expression } => match request.hooks.expressions.clone() {
            Some(eval) => eval.evaluate(policy, expression, request).await,
            None => Err(PolicyError(format!(
                "expression policy `{}` cannot run: no expression evaluator is configured (enable the `python` feature)",
                policy.name
            ))),
        },
        PolicyKind::Custom(c) => request.hooks.run_policy(policy, c, request).await,
    }
}

pub use builtin::{UNKNOWN_IP, check_password_rules};
pub use hooks::PolicyHooks;
pub(crate) use hooks::unregistered_policy;
pub use pwned::PwnedPasswords;
