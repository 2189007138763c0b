#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Ports of authentik's `authentik/flows/tests/test_planner.py`
//! (`reference/authentik-flows.md` §9), one test per upstream case, same names.
//!
//! authentik's `FlowPlanner(flow).plan(request, default_context)` = `Engine::plan_only`
//! (the planner on its own: nothing is executed or stored); `request.user` = the user
//! logged in to the request's session; `EmptyFlowException` = `PlanError::Empty`;
//! `FlowNonApplicableException` = `PlanError::NotApplicable`.

mod common;

use authflow::FlowRequest;
use authflow::model::{
    AuthenticationRequirement, BindingSubject, BindingTarget, DummyStage, FlowDesignation,
    RedirectMode, RedirectStage,
};
use authflow::plan::{Marker, PendingUser, PlanContext, keys};
use authflow::planner::PlanError;
use common::upstream::{Fixed, TestEnv, Toggle, assert_stage_redirects, custom};
use serde_json::json;

/// authentik's `FlowNonApplicableException.messages` without a policy result.
const DOES_NOT_APPLY: &str = "Flow does not apply to current user.";

fn assert_not_applicable(result: Result<authflow::plan::FlowPlan, PlanError>) -> Vec<String> {
    match result {
        Err(PlanError::NotApplicable { messages }) => messages,
        other => panic!("expected NotApplicable, got {other:?}"),
    }
}

#[tokio::test]
async fn test_empty_plan() {
    let env = TestEnv::new();
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let result = env
        .engine
        .plan_only(&FlowRequest::default(), &flow.slug, PlanContext::new())
        .await;
    assert!(
        matches!(result, Err(PlanError::Empty)),
        "expected Empty, got {result:?}"
    );
}

// Adapted: authflow's planner has no `allow_empty_flows` switch (the executor finishes
// an empty flow), so the flow gets one stage and "plan ok" means a plan is returned.
#[tokio::test]
async fn test_authentication() {
    let env = TestEnv::new();
    let mut flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let stage = env.stage(DummyStage::default()).await;
    env.bind(&flow, &stage, 0).await;
    let anonymous = FlowRequest::default();

    flow.authentication = AuthenticationRequirement::None;
    env.save_flow(&flow).await;
    env.engine
        .plan_only(&anonymous, &flow.slug, PlanContext::new())
        .await
        .unwrap();

    flow.authentication = AuthenticationRequirement::RequireAuthenticated;
    env.save_flow(&flow).await;
    let messages = assert_not_applicable(
        env.engine
            .plan_only(&anonymous, &flow.slug, PlanContext::new())
            .await,
    );
    assert_eq!(messages, vec![DOES_NOT_APPLY.to_owned()]);

    flow.authentication = AuthenticationRequirement::RequireSuperuser;
    env.save_flow(&flow).await;
    assert_not_applicable(
        env.engine
            .plan_only(&anonymous, &flow.slug, PlanContext::new())
            .await,
    );

    let admin = env.create_test_admin_user("admin").await;
    let as_admin = FlowRequest::new(Some(env.login_session(&admin).await), "");
    let plan = env
        .engine
        .plan_only(&as_admin, &flow.slug, PlanContext::new())
        .await
        .unwrap();
    assert_eq!(plan.flow_pk, flow.pk);
}

#[tokio::test]
async fn test_authentication_redirect_required() {
    let env = TestEnv::new();
    let mut flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    flow.authentication = AuthenticationRequirement::RequireRedirect;
    env.save_flow(&flow).await;
    let stage = env.stage(DummyStage::default()).await;
    env.bind(&flow, &stage, 0).await;
    let request = FlowRequest::default();

    assert_not_applicable(
        env.engine
            .plan_only(&request, &flow.slug, PlanContext::new())
            .await,
    );

    let mut context = PlanContext::new();
    context.insert(keys::IS_REDIRECTED, json!("some-other-flow"));
    env.engine
        .plan_only(&request, &flow.slug, context)
        .await
        .unwrap();
}

// Adapted: authentik recognises an outpost by its `X-Authentik-Outpost-Token` header
// (processed by the client-IP middleware). authflow knows no HTTP headers: the host
// authenticates the outpost and sets `FlowRequest::is_outpost` (with the forwarded
// client IP). The planner must refuse a plain request and accept the outpost's.
#[tokio::test]
async fn test_authentication_outpost() {
    let env = TestEnv::new();
    let mut flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    flow.authentication = AuthenticationRequirement::RequireOutpost;
    env.save_flow(&flow).await;
    let stage = env.stage(DummyStage::default()).await;
    env.bind(&flow, &stage, 0).await;

    assert_not_applicable(
        env.engine
            .plan_only(&FlowRequest::default(), &flow.slug, PlanContext::new())
            .await,
    );

    let outpost = FlowRequest {
        is_outpost: true,
        ..FlowRequest::default().with_client_ip("1.2.3.4")
    };
    env.engine
        .plan_only(&outpost, &flow.slug, PlanContext::new())
        .await
        .unwrap();
}

// authentik patches `PolicyEngine.result` to `PolicyResult(False)`; here a flow-level
// binding to a host policy fails without messages.
#[tokio::test]
async fn test_non_applicable_plan() {
    let env = TestEnv::new();
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let stage = env.stage(DummyStage::default()).await;
    env.bind(&flow, &stage, 0).await;
    let policy = env
        .policy(custom(Fixed {
            passing: false,
            messages: vec![],
        }))
        .await;
    env.bind_policy(
        BindingTarget::Flow(flow.pk),
        BindingSubject::Policy(policy.pk),
        0,
    )
    .await;

    let messages = assert_not_applicable(
        env.engine
            .plan_only(&FlowRequest::default(), &flow.slug, PlanContext::new())
            .await,
    );
    assert_eq!(messages, vec![DOES_NOT_APPLY.to_owned()]);
}

// Adapted (DESIGN.md §4.7): authflow caches the loaded flow definition, not plans.
// authentik's "`cache.set` once, `cache.get` twice" = two plans for the same flow and
// user load the definition from the store once, and the flow has one cache entry.
#[tokio::test]
async fn test_planner_cache() {
    let env = TestEnv::new();
    let flow = env.create_test_flow(FlowDesignation::Authentication).await;
    let stage = env.named_stage("dummy", DummyStage::default()).await;
    env.bind(&flow, &stage, 0).await;
    let request = FlowRequest::default();
    assert_eq!(env.engine.cache_count(&flow.slug), 0);
    let loads_before = env.flow_loads();

    let first = env
        .engine
        .plan_only(&request, &flow.slug, PlanContext::new())
        .await
        .unwrap();
    assert_eq!(env.flow_loads() - loads_before, 1);
    assert_eq!(env.engine.cache_count(&flow.slug), 1);
    let second = env
        .engine
        .plan_only(&request, &flow.slug, PlanContext::new())
        .await
        .unwrap();
    assert_eq!(env.flow_loads() - loads_before, 1);
    assert_eq!(env.engine.cache_count(&flow.slug), 1);
    assert_eq!(first.bindings, second.bindings);
}

// Adapted (DESIGN.md §4.7): authflow keeps no per-user plan cache, so there is no
// `cache_key(flow, user)` to look up. What that key expresses — a `pending_user` in
// the default context makes the plan *that user's* plan — is checked directly: with
// an anonymous request, a stage bound (evaluate_on_plan) to the user is planned only
// when the user is the default context's `pending_user`, which the plan keeps.
#[tokio::test]
async fn test_planner_default_context() {
    let env = TestEnv::new();
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let stage = env.named_stage("dummy", DummyStage::default()).await;
    let binding = env
        .bind_with(&flow, &stage, 0, |b| {
            b.evaluate_on_plan = true;
            b.re_evaluate_policies = false;
        })
        .await;
    let user = env.create_test_user("test-user").await;
    env.bind_policy(
        BindingTarget::Stage(binding.pk),
        BindingSubject::User(user.pk.clone()),
        0,
    )
    .await;
    let request = FlowRequest::default();

    let without = env
        .engine
        .plan_only(&request, &flow.slug, PlanContext::new())
        .await;
    assert!(
        matches!(without, Err(PlanError::Empty)),
        "anonymous plan must skip the user's stage: {without:?}"
    );

    let mut context = PlanContext::new();
    context.set_pending_user(&PendingUser::of(&user));
    let plan = env
        .engine
        .plan_only(&request, &flow.slug, context)
        .await
        .unwrap();
    assert_eq!(plan.bindings.len(), 1);
    assert_eq!(plan.bindings[0].binding, binding.pk);
    assert_eq!(
        plan.context.pending_user().map(|p| p.pk),
        Some(Some(user.pk))
    );
}

#[tokio::test]
async fn test_planner_marker_reevaluate() {
    let env = TestEnv::new();
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let stage = env.named_stage("dummy1", DummyStage::default()).await;
    env.bind_with(&flow, &stage, 0, |b| b.re_evaluate_policies = true)
        .await;

    let plan = env
        .engine
        .plan_only(&FlowRequest::default(), &flow.slug, PlanContext::new())
        .await
        .unwrap();
    assert_eq!(plan.markers()[0], Marker::Reevaluate);
}

#[tokio::test]
async fn test_planner_reevaluate_actual() {
    let env = TestEnv::new();
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    // `DummyPolicy(result=False)` with `passes` patched to true.
    let toggle = Toggle::new(true);
    let false_policy = env.policy(custom(toggle)).await;
    let s1 = env.named_stage("dummy1", DummyStage::default()).await;
    let s2 = env.named_stage("dummy2", DummyStage::default()).await;
    let binding = env
        .bind_with(&flow, &s1, 0, |b| {
            b.evaluate_on_plan = true;
            b.re_evaluate_policies = false;
        })
        .await;
    let binding2 = env
        .bind_with(&flow, &s2, 1, |b| b.re_evaluate_policies = true)
        .await;
    env.bind_policy(
        BindingTarget::Stage(binding2.pk),
        BindingSubject::Policy(false_policy.pk),
        0,
    )
    .await;

    let plan = env
        .engine
        .plan_only(&FlowRequest::default(), &flow.slug, PlanContext::new())
        .await
        .unwrap();
    assert_eq!(plan.bindings[0].binding, binding.pk);
    assert_eq!(plan.bindings[1].binding, binding2.pk);
    assert_eq!(plan.markers(), vec![Marker::Stage, Marker::Reevaluate]);
}

// Adapted: authflow has no `FlowPlan.to_redirect`. Its uses (a plan made elsewhere,
// stored in the session, the browser sent to `/if/flow/<slug>/`) are what the
// redirect stage in flow mode does: it plans the target flow into the session and
// answers `xak-flow-redirect` to `/if/flow/<target>/?<query>`. Every plan runs
// through the executor (no "silent types" shortcut): the target's first GET answers
// its first stage, from the stored plan (the target requires a redirect, so a fresh
// plan would not apply).
#[tokio::test]
async fn test_to_redirect() {
    let env = TestEnv::new();
    let mut target = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    target.authentication = AuthenticationRequirement::RequireRedirect;
    env.save_flow(&target).await;
    let target_stage = env.stage(DummyStage::default()).await;
    env.bind(&target, &target_stage, 0).await;

    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let redirect = env
        .stage(RedirectStage {
            mode: RedirectMode::Flow,
            target_flow: Some(target.slug.clone()),
            ..RedirectStage::default()
        })
        .await;
    env.bind(&flow, &redirect, 0).await;

    let mut client = env.client().with_query("foo=bar");
    let out = client.get(&flow.slug).await;
    assert_stage_redirects(
        &out.challenge.to_json(),
        &format!("/if/flow/{}/?foo=bar", target.slug),
    );
    let stored = env
        .stored_plan(&client.session_id(), &target.slug)
        .await
        .unwrap();
    assert_eq!(stored.flow_pk, target.pk);
    assert_eq!(
        stored.context.get_str(keys::IS_REDIRECTED),
        Some(flow.slug.as_str())
    );

    let out = client.get(&target.slug).await;
    assert_eq!(out.challenge.component(), "ak-stage-dummy");
}

// Adapted: authentik's in-memory "allowed silent" stage T answers its own redirect
// without the flow executor. authflow's equivalent is a flow whose only stage is a
// static redirect: the very first call answers T's redirect.
#[tokio::test]
async fn test_to_redirect_skip_simple() {
    let env = TestEnv::new();
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let t = env
        .stage(RedirectStage {
            mode: RedirectMode::Static,
            target_static: "https://authentik.company".into(),
            ..RedirectStage::default()
        })
        .await;
    env.bind(&flow, &t, 0).await;

    let out = env.client().get(&flow.slug).await;
    assert_stage_redirects(&out.challenge.to_json(), "https://authentik.company");
}

// Adapted: with a stored binding before T, the executor is required: the first call
// answers that stage, T's redirect only comes after it is solved.
#[tokio::test]
async fn test_to_redirect_skip_stage() {
    let env = TestEnv::new();
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let stage = env.stage(DummyStage::default()).await;
    env.bind(&flow, &stage, 0).await;
    let t = env
        .stage(RedirectStage {
            mode: RedirectMode::Static,
            target_static: "https://authentik.company".into(),
            ..RedirectStage::default()
        })
        .await;
    env.bind(&flow, &t, 1).await;

    let mut client = env.client();
    let out = client.get(&flow.slug).await;
    assert_eq!(out.challenge.component(), "ak-stage-dummy");
    let out = client.post(&flow.slug, json!({})).await;
    assert_stage_redirects(&out.challenge.to_json(), "https://authentik.company");
}

// Adapted: T with a re-evaluate marker needs the executor because its policies must
// run before its redirect is followed: when they fail at stage entry T is dropped and
// the flow finishes at `/`; when they pass, T's redirect is answered.
#[tokio::test]
async fn test_to_redirect_skip_policies() {
    let env = TestEnv::new();
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let t = env
        .stage(RedirectStage {
            mode: RedirectMode::Static,
            target_static: "https://authentik.company".into(),
            ..RedirectStage::default()
        })
        .await;
    let binding = env
        .bind_with(&flow, &t, 0, |b| b.re_evaluate_policies = true)
        .await;
    let toggle = Toggle::new(false);
    let policy = env.policy(custom(toggle.clone())).await;
    env.bind_policy(
        BindingTarget::Stage(binding.pk),
        BindingSubject::Policy(policy.pk),
        0,
    )
    .await;

    let plan = env
        .engine
        .plan_only(&FlowRequest::default(), &flow.slug, PlanContext::new())
        .await
        .unwrap();
    assert_eq!(plan.markers(), vec![Marker::Reevaluate]);

    let out = env.client().get(&flow.slug).await;
    assert_stage_redirects(&out.challenge.to_json(), "/");

    toggle.set(true);
    let out = env.client().get(&flow.slug).await;
    assert_stage_redirects(&out.challenge.to_json(), "https://authentik.company");
}

// authentik/stages/redirect/stage.py `RedirectStageView.get_challenge`: an
// `ak-flow://` `redirect_stage_target` naming a flow that does not exist (`parse_target`
// finds none) falls back to the stage's own target; one naming a flow goes there.
#[tokio::test]
async fn redirect_stage_target() {
    let env = TestEnv::new();
    let target = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let target_stage = env.stage(DummyStage::default()).await;
    env.bind(&target, &target_stage, 0).await;
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let redirect = env
        .stage(RedirectStage {
            mode: RedirectMode::Static,
            target_static: "https://authentik.company".into(),
            ..RedirectStage::default()
        })
        .await;
    env.bind(&flow, &redirect, 0).await;

    for (override_target, expected) in [
        (
            "ak-flow://unknown".to_owned(),
            "https://authentik.company".to_owned(),
        ),
        (
            format!("ak-flow://{}", target.slug),
            format!("/if/flow/{}/?", target.slug),
        ),
    ] {
        let mut context = PlanContext::new();
        context.insert(keys::REDIRECT_STAGE_TARGET, json!(override_target));
        let plan = env
            .engine
            .plan_only(&FlowRequest::default(), &flow.slug, context)
            .await
            .unwrap();
        let session = authflow::plan::SessionId::generate();
        env.store_plan(&session, &flow.slug, plan).await;
        let mut client = env.client();
        client.session = Some(session);
        let out = client.get(&flow.slug).await;
        assert_stage_redirects(&out.challenge.to_json(), &expected);
    }
}
