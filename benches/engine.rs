#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Engine benchmarks: the planner alone, a full in-process login, and the policy
//! engine's scaling in the number of bindings.
//!
//! ```text
//! cargo bench --features danger-fast-hasher --bench engine
//! cargo bench --features danger-fast-hasher --bench engine -- --quick
//! ```
//!
//! Targets: `plan/default-authentication-flow` under 5 µs, `login/full-in-process`
//! under 50 µs (password hashing excluded, see [`fast_stores`]).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authflow::hashing::DangerFastHasher;
use authflow::memory::{
    MemoryFlowStore, MemoryReputation, MemorySessionStore, MemoryUserDirectory, Stores,
};
use authflow::model::{
    BindingSubject, BindingTarget, Flow, FlowDesignation, Policy, PolicyBinding, PolicyEngineMode,
    PolicyKind,
};
use authflow::plan::PlanContext;
use authflow::planner::{self, PlanInput};
use authflow::policy::{self, PolicyRequest};
use authflow::store::{Group, NewUser, ResolvedBinding, UserAdmin};
use authflow::{Engine, FlowRequest, defaults};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tokio::runtime::Runtime;

const PASSWORD: &str = "correct horse battery staple";

/// A current-thread runtime: the engine is runtime-agnostic and a single thread keeps
/// scheduling noise out of the numbers.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// In-memory stores whose user directory hashes with [`DangerFastHasher`].
///
/// argon2id is deliberately slow (tens of milliseconds per hash, by design, to resist
/// offline guessing); with it a login would measure argon2 and nothing else. The fast
/// (insecure, bench-only) hasher removes that deliberate cost so the numbers show the
/// engine itself: planning, stage execution, session compare-and-swap and rotation.
fn fast_stores() -> Stores {
    Stores {
        flows: Arc::new(MemoryFlowStore::new()),
        sessions: Arc::new(MemorySessionStore::new()),
        users: Arc::new(MemoryUserDirectory::with_hasher(Arc::new(DangerFastHasher))),
        reputation: Arc::new(MemoryReputation::new()),
    }
}

/// An engine with the default flows installed and `akadmin` bootstrapped.
fn login_engine(rt: &Runtime) -> Engine {
    let stores = fast_stores();
    let engine = stores.engine().build();
    rt.block_on(async {
        defaults::install(stores.flows.as_ref()).await.unwrap();
        defaults::bootstrap_admin(stores.users.as_ref(), PASSWORD.into())
            .await
            .unwrap();
    });
    engine
}

/// Plan, identification, password: one complete login on a fresh session. Returns the
/// final session id so the caller can end the session outside the timed section.
async fn login(engine: &Engine) -> authflow::plan::SessionId {
    let slug = defaults::AUTHENTICATION;
    let out = engine.plan(&FlowRequest::default(), slug).await.unwrap();
    let mut req = FlowRequest::new(Some(out.session_id), "");
    let out = engine
        .step(
            &req,
            slug,
            &json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
        )
        .await
        .unwrap();
    req.session_id = Some(out.session_id);
    let out = engine
        .step(
            &req,
            slug,
            &json!({"component": "ak-stage-password", "password": PASSWORD}),
        )
        .await
        .unwrap();
    debug_assert!(out.logged_in);
    out.session_id
}

fn bench_plan(c: &mut Criterion) {
    let rt = runtime();
    let engine = login_engine(&rt);
    let slug = defaults::AUTHENTICATION;
    let def = rt.block_on(engine.definition(slug)).unwrap();
    let req = FlowRequest::default();

    let mut group = c.benchmark_group("plan");
    // The planner alone, on a definition fetched once.
    group.bench_function(slug, |b| {
        b.to_async(&rt).iter(|| async {
            let input = PlanInput {
                request: &req,
                request_user: None,
                context: PlanContext::new(),
            };
            black_box(
                planner::plan(engine.env(), engine.registry().hooks(), &def, input)
                    .await
                    .unwrap(),
            )
        });
    });
    // Through the engine: revision check and cache lookup included.
    group.bench_function(format!("{slug}/plan_only"), |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                engine
                    .plan_only(&req, slug, PlanContext::new())
                    .await
                    .unwrap(),
            )
        });
    });
    // The whole cookie-less GET: plan, first challenge, session id (nothing stored).
    group.bench_function(format!("{slug}/get_without_cookie"), |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(engine.plan(&req, slug).await.unwrap()) });
    });
    group.finish();
}

fn bench_login(c: &mut Criterion) {
    let rt = runtime();
    let engine = login_engine(&rt);
    // Sanity check outside the measurement: the login really logs in.
    rt.block_on(async {
        let id = login(&engine).await;
        assert!(engine.session_user(&id).await.unwrap().is_some());
        engine.end_session(&id).await.unwrap();
    });

    let mut group = c.benchmark_group("login");
    group.bench_function("full-in-process", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let engine = &engine;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let id = black_box(login(engine).await);
                    total += start.elapsed();
                    // Not timed: keeps the session store from growing without bound.
                    engine.end_session(&id).await.unwrap();
                }
                total
            }
        });
    });
    group.finish();
}

fn bench_policy_engine(c: &mut Criterion) {
    let rt = runtime();
    let stores = fast_stores();
    let engine = stores.engine().build();
    let flow = Flow::new("bench", "Bench", FlowDesignation::Authentication);
    let (user, group_pk) = rt.block_on(async {
        let group = Group::new("bench-group");
        stores.users.put_group(group.clone()).await.unwrap();
        let user = stores
            .users
            .create_user(NewUser::new("bench-user").group(group.pk))
            .await
            .unwrap();
        (user, group.pk)
    });
    let target = BindingTarget::Flow(flow.pk);

    let mut group = c.benchmark_group("policy_engine");
    for n in [1usize, 10, 100, 1000] {
        // N Dummy(true) policy bindings and N static group bindings, interleaved.
        let mut bindings = Vec::with_capacity(2 * n);
        for i in 0..n {
            let order = i32::try_from(i).unwrap();
            let policy = Policy::new(format!("dummy-{i}"), PolicyKind::Dummy { result: true });
            bindings.push(ResolvedBinding {
                binding: PolicyBinding::new(target, BindingSubject::Policy(policy.pk), order),
                policy: Some(Arc::new(policy)),
            });
            bindings.push(ResolvedBinding {
                binding: PolicyBinding::new(target, BindingSubject::Group(group_pk), order),
                policy: None,
            });
        }
        // Sanity check outside the measurement: every binding passes in mode `all`.
        let mut context = PlanContext::new();
        let mut req = PolicyRequest {
            user: Some(&user),
            username: Some(&user.username),
            context: &mut context,
            flow_plan: true,
            flow: &flow,
            client_ip: None,
            env: engine.env(),
            hooks: engine.registry().hooks(),
            config: &serde_json::Value::Null,
        };
        let result = rt.block_on(policy::evaluate(&bindings, PolicyEngineMode::All, &mut req));
        assert!(result.passing && result.results.len() == 2 * n);

        group.throughput(Throughput::Elements(2 * n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &bindings, |b, bindings| {
            b.to_async(&rt).iter(|| async {
                let mut context = PlanContext::new();
                let mut req = PolicyRequest {
                    user: Some(&user),
                    username: Some(&user.username),
                    context: &mut context,
                    flow_plan: true,
                    flow: &flow,
                    client_ip: None,
                    env: engine.env(),
                    hooks: engine.registry().hooks(),
                    config: &serde_json::Value::Null,
                };
                black_box(policy::evaluate(bindings, PolicyEngineMode::All, &mut req).await)
            });
        });
    }
    group.finish();
}

/// The benchmark group (in a module: `criterion_group!` makes an undocumented `pub fn`).
mod group {
    #![allow(missing_docs)]
    use super::*;
    criterion_group!(benches, bench_plan, bench_login, bench_policy_engine);
}

criterion_main!(group::benches);
