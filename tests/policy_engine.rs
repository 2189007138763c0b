#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Ports of authentik's `authentik/policies/tests/test_engine.py` and
//! `authentik/policies/tests/test_process.py` (`reference/authentik-flows.md` §5, §9).
//!
//! authentik's `PolicyBindingModel` is a flow here (its own policy bindings, its
//! `policy_engine_mode`), built through the `FlowStore`; `PolicyEngine(pbm, user).build()`
//! is `authflow::policy::evaluate` over the flow's loaded bindings. `test_process.py`
//! runs one binding through `PolicyProcess`: here a flow with that single binding.
//! `DummyPolicy(result=…)` is `PolicyKind::Dummy` (message "dummy"); the raising
//! expression policy `{{ 0/0 }}` is a host policy returning
//! `Err(PolicyError("division by zero"))`.

mod common;

use authflow::events::EventAction;
use authflow::model::{
    BindingSubject, BindingTarget, Flow, FlowDesignation, PolicyBinding, PolicyEngineMode,
    PolicyKind,
};
use authflow::plan::PlanContext;
use authflow::policy::{self, PolicyRequest, PolicyResult};
use authflow::store::{FlowAdmin, User};
use common::upstream::{Raises, TestEnv, custom, generate_id};
use serde_json::json;

/// A policy-binding target with `mode` (authentik's `PolicyBindingModel`).
async fn pbm(env: &TestEnv, mode: PolicyEngineMode) -> Flow {
    let mut flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    flow.policy_engine_mode = mode;
    env.save_flow(&flow).await;
    flow
}

/// `PolicyEngine(pbm, user).build().result`, for a request from 127.0.0.1.
async fn build(env: &TestEnv, pbm: &Flow, user: Option<&User>) -> PolicyResult {
    let def = env.engine.definition(&pbm.slug).await.unwrap();
    let mut context = PlanContext::new();
    let mut request = PolicyRequest {
        user,
        username: user.map(|u| u.username.as_str()),
        context: &mut context,
        flow_plan: true,
        flow: &def.flow,
        client_ip: Some("127.0.0.1"),
        env: env.engine.env(),
        hooks: env.engine.registry().hooks(),
        config: &serde_json::Value::Null,
    };
    policy::evaluate(&def.policies, def.flow.policy_engine_mode, &mut request).await
}

async fn bind(env: &TestEnv, pbm: &Flow, subject: BindingSubject, order: i32) -> PolicyBinding {
    env.bind_policy(BindingTarget::Flow(pbm.pk), subject, order)
        .await
}

async fn dummy_policy(env: &TestEnv, result: bool) -> BindingSubject {
    BindingSubject::Policy(env.policy(PolicyKind::Dummy { result }).await.pk)
}

async fn raising_policy(env: &TestEnv) -> BindingSubject {
    BindingSubject::Policy(
        env.policy(custom(Raises("division by zero".into())))
            .await
            .pk,
    )
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------
// test_engine.py

#[tokio::test]
async fn test_engine_empty() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    let result = build(&env, &pbm, Some(&user)).await;
    assert!(result.passing);
    assert_eq!(result.messages, Vec::<String>::new());
}

#[tokio::test]
async fn test_engine_simple() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    let policy_true = dummy_policy(&env, true).await;
    bind(&env, &pbm, policy_true, 0).await;
    let result = build(&env, &pbm, Some(&user)).await;
    assert!(result.passing);
    assert_eq!(result.messages, strings(&["dummy"]));
}

#[tokio::test]
async fn test_engine_mode_all() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::All).await;
    let policy_false = dummy_policy(&env, false).await;
    let policy_true = dummy_policy(&env, true).await;
    bind(&env, &pbm, policy_false, 0).await;
    bind(&env, &pbm, policy_true, 1).await;
    let result = build(&env, &pbm, Some(&user)).await;
    assert!(!result.passing);
    assert_eq!(result.messages, strings(&["dummy", "dummy"]));
}

#[tokio::test]
async fn test_engine_mode_any() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    let policy_false = dummy_policy(&env, false).await;
    let policy_true = dummy_policy(&env, true).await;
    bind(&env, &pbm, policy_false, 0).await;
    bind(&env, &pbm, policy_true, 1).await;
    let result = build(&env, &pbm, Some(&user)).await;
    assert!(result.passing);
    assert_eq!(result.messages, strings(&["dummy", "dummy"]));
}

#[tokio::test]
async fn test_engine_mode_all_static() {
    let env = TestEnv::new();
    let group = env.group(&generate_id(), None).await;
    let other = env.group(&generate_id(), None).await;
    let user = env.create_user_in("policyuser", &[group.pk]).await;
    let pbm = pbm(&env, PolicyEngineMode::All).await;
    bind(&env, &pbm, BindingSubject::Group(group.pk), 0).await;
    bind(&env, &pbm, BindingSubject::Group(other.pk), 1).await;
    let result = build(&env, &pbm, Some(&user)).await;
    assert!(!result.passing);
    assert_eq!(result.messages, Vec::<String>::new());
}

#[tokio::test]
async fn test_engine_mode_any_static() {
    let env = TestEnv::new();
    let group = env.group(&generate_id(), None).await;
    let other = env.group(&generate_id(), None).await;
    let user = env.create_user_in("policyuser", &[group.pk]).await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    bind(&env, &pbm, BindingSubject::Group(group.pk), 0).await;
    bind(&env, &pbm, BindingSubject::Group(other.pk), 1).await;
    let result = build(&env, &pbm, Some(&user)).await;
    assert!(result.passing);
    assert_eq!(result.messages, Vec::<String>::new());
}

#[tokio::test]
async fn test_engine_negate() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    let policy_true = dummy_policy(&env, true).await;
    env.save_policy_binding(
        PolicyBinding::new(BindingTarget::Flow(pbm.pk), policy_true, 0).negated(true),
    )
    .await;
    let result = build(&env, &pbm, Some(&user)).await;
    assert!(!result.passing);
    assert_eq!(result.messages, strings(&["dummy"]));
}

#[tokio::test]
async fn test_engine_policy_error() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    let policy_raises = raising_policy(&env).await;
    bind(&env, &pbm, policy_raises, 0).await;
    let result = build(&env, &pbm, Some(&user)).await;
    assert!(!result.passing);
    assert_eq!(result.messages, strings(&["division by zero"]));
}

#[tokio::test]
async fn test_engine_policy_error_failure() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    let policy_raises = raising_policy(&env).await;
    env.save_policy_binding(
        PolicyBinding::new(BindingTarget::Flow(pbm.pk), policy_raises, 0).with_failure_result(true),
    )
    .await;
    let result = build(&env, &pbm, Some(&user)).await;
    assert!(result.passing);
    assert_eq!(result.messages, strings(&["division by zero"]));
}

// Adapted: authentik counts database queries (`CaptureQueriesContext`, < 1000 for
// 1000 bindings); authflow's equivalent I/O is calls into the `UserDirectory`.
#[tokio::test]
async fn test_engine_static_bindings() {
    let env = TestEnv::new();
    let group_a = env.group(&generate_id(), None).await;
    let group_b = env.group(&generate_id(), None).await;
    let me = env.create_user_in("policyuser", &[group_b.pk]).await;
    let user = env.create_test_user(&generate_id()).await;

    for (message, subject, passing) in [
        (
            "Group, not member",
            BindingSubject::Group(group_a.pk),
            false,
        ),
        ("Group, member", BindingSubject::Group(group_b.pk), true),
        ("User, other", BindingSubject::User(user.pk), false),
        ("User, same", BindingSubject::User(me.pk.clone()), true),
    ] {
        let pbm = pbm(&env, PolicyEngineMode::Any).await;
        for order in 0..1000 {
            bind(&env, &pbm, subject.clone(), order).await;
        }
        let before = env.directory_calls();
        let result = build(&env, &pbm, Some(&me)).await;
        let calls = env.directory_calls() - before;
        assert!(calls < 1000, "{message}: {calls} directory calls");
        assert_eq!(result.passing, passing, "{message}");
    }
}

// A binding to a parent group matches a member of its child group.
#[tokio::test]
async fn test_engine_group_complex() {
    let env = TestEnv::new();
    let parent = env.group(&generate_id(), None).await;
    let child = env.group(&generate_id(), Some(parent.pk)).await;
    let user = env.create_user_in(&generate_id(), &[child.pk]).await;
    let outsider = env.create_test_user(&generate_id()).await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    bind(&env, &pbm, BindingSubject::Group(parent.pk), 0).await;

    assert!(build(&env, &pbm, Some(&user)).await.passing);
    assert!(!build(&env, &pbm, Some(&outsider)).await.passing);
}

// ---------------------------------------------------------------------------------
// test_process.py

#[tokio::test]
async fn test_group_passing() {
    let env = TestEnv::new();
    let group = env.group("test-group", None).await;
    let user = env.create_user_in("policyuser", &[group.pk]).await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    bind(&env, &pbm, BindingSubject::Group(group.pk), 0).await;
    assert!(build(&env, &pbm, Some(&user)).await.passing);
}

#[tokio::test]
async fn test_group_negative() {
    let env = TestEnv::new();
    let group = env.group("test-group", None).await;
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    bind(&env, &pbm, BindingSubject::Group(group.pk), 0).await;
    assert!(!build(&env, &pbm, Some(&user)).await.passing);
}

#[tokio::test]
async fn test_user_passing() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    bind(&env, &pbm, BindingSubject::User(user.pk.clone()), 0).await;
    assert!(build(&env, &pbm, Some(&user)).await.passing);
}

// authentik binds to its anonymous user row; here to another user.
#[tokio::test]
async fn test_user_negative() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let anonymous = env.create_test_user("AnonymousUser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    bind(&env, &pbm, BindingSubject::User(anonymous.pk), 0).await;
    assert!(!build(&env, &pbm, Some(&user)).await.passing);
}

#[tokio::test]
async fn test_true() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    let policy = dummy_policy(&env, true).await;
    bind(&env, &pbm, policy, 0).await;
    let response = build(&env, &pbm, Some(&user)).await;
    assert!(response.passing);
    assert_eq!(response.messages, strings(&["dummy"]));
}

#[tokio::test]
async fn test_false() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    let policy = dummy_policy(&env, false).await;
    bind(&env, &pbm, policy, 0).await;
    let response = build(&env, &pbm, Some(&user)).await;
    assert!(!response.passing);
    assert_eq!(response.messages, strings(&["dummy"]));
}

#[tokio::test]
async fn test_negate() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    let policy = dummy_policy(&env, false).await;
    env.save_policy_binding(
        PolicyBinding::new(BindingTarget::Flow(pbm.pk), policy, 0).negated(true),
    )
    .await;
    let response = build(&env, &pbm, Some(&user)).await;
    assert!(response.passing);
    assert_eq!(response.messages, strings(&["dummy"]));
}

async fn logged_policy(env: &TestEnv) -> authflow::model::Policy {
    let mut policy = authflow::model::Policy::new(
        "test-execution-logging",
        PolicyKind::Dummy { result: false },
    );
    policy.execution_logging = true;
    env.stores
        .flows
        .put_policy(policy.clone())
        .await
        .expect("put policy");
    policy
}

#[tokio::test]
async fn test_execution_logging() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let policy = logged_policy(&env).await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    bind(&env, &pbm, BindingSubject::Policy(policy.pk), 0).await;

    let response = build(&env, &pbm, Some(&user)).await;
    assert!(!response.passing);
    assert_eq!(response.messages, strings(&["dummy"]));

    let events: Vec<_> = env
        .events
        .of(EventAction::PolicyExecution)
        .into_iter()
        .filter(|e| e.context.get("policy") == Some(&json!(policy.name)))
        .collect();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.user.as_deref(), Some(user.username.as_str()));
    assert_eq!(event.context["passing"], false);
    assert_eq!(event.context["messages"], json!(["dummy"]));
    assert_eq!(event.client_ip.as_deref(), Some("127.0.0.1"));
}

// Adapted: authentik records the anonymous user as "AnonymousUser"; authflow
// events of anonymous requests have no user.
#[tokio::test]
async fn test_execution_logging_anonymous() {
    let env = TestEnv::new();
    let policy = logged_policy(&env).await;
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    bind(&env, &pbm, BindingSubject::Policy(policy.pk), 0).await;

    let response = build(&env, &pbm, None).await;
    assert!(!response.passing);
    assert_eq!(response.messages, strings(&["dummy"]));

    let events: Vec<_> = env
        .events
        .of(EventAction::PolicyExecution)
        .into_iter()
        .filter(|e| e.context.get("policy") == Some(&json!(policy.name)))
        .collect();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.user, None);
    assert_eq!(event.context["passing"], false);
    assert_eq!(event.context["messages"], json!(["dummy"]));
    assert_eq!(event.client_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn test_raises() {
    let env = TestEnv::new();
    let user = env.create_test_user("policyuser").await;
    let policy_raises =
        authflow::model::Policy::new("raises", custom(Raises("division by zero".into())));
    env.stores
        .flows
        .put_policy(policy_raises.clone())
        .await
        .expect("put policy");
    let pbm = pbm(&env, PolicyEngineMode::Any).await;
    bind(&env, &pbm, BindingSubject::Policy(policy_raises.pk), 0).await;

    let response = build(&env, &pbm, Some(&user)).await;
    assert!(!response.passing);
    assert_eq!(response.messages, strings(&["division by zero"]));

    let events: Vec<_> = env
        .events
        .of(EventAction::PolicyException)
        .into_iter()
        .filter(|e| e.context.get("policy") == Some(&json!("raises")))
        .collect();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.user.as_deref(), Some(user.username.as_str()));
    assert!(
        event.context["message"]
            .as_str()
            .is_some_and(|m| m.contains("division by zero"))
    );
}

/// Fail closed: a reputation policy with `check_ip` and no known client IP treats the
/// request as a bad actor (passes, i.e. adds the friction it guards) and says why, rather
/// than scoring the username alone. authentik's `ReputationPolicy.passes` always has an
/// IP (`ClientIPMiddleware` falls back to a placeholder); a host serving without
/// `ConnectInfo` has none.
#[tokio::test]
async fn reputation_with_check_ip_fails_closed_without_a_client_ip() {
    use authflow::model::ReputationPolicy;
    let env = TestEnv::new();
    let pbm = pbm(&env, PolicyEngineMode::All).await;
    let policy = env
        .policy(PolicyKind::Reputation(ReputationPolicy {
            threshold: -5,
            check_ip: true,
            check_username: true,
        }))
        .await;
    bind(&env, &pbm, BindingSubject::Policy(policy.pk), 0).await;
    // A clean IP scores 0 > -5: the policy does not pass.
    let known = build(&env, &pbm, None).await;
    assert!(!known.passing, "{known:?}");

    let def = env.engine.definition(&pbm.slug).await.unwrap();
    let mut context = PlanContext::new();
    let mut request = PolicyRequest {
        user: None,
        username: Some("akadmin"),
        context: &mut context,
        flow_plan: true,
        flow: &def.flow,
        client_ip: None,
        env: env.engine.env(),
        hooks: env.engine.registry().hooks(),
        config: &serde_json::Value::Null,
    };
    let unknown = policy::evaluate(&def.policies, def.flow.policy_engine_mode, &mut request).await;
    assert!(unknown.passing, "{unknown:?}");
    assert_eq!(unknown.messages, vec![policy::UNKNOWN_IP.to_owned()]);
}
