#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The in-memory stores: the shared `SessionStore` conformance suite run against
//! `MemorySessionStore`, `FlowStore` behaviour of `MemoryFlowStore`, and the throttle
//! suite. (`MemoryUserDirectory` runs the user-directory conformance suite, with SQLite
//! and PostgreSQL, in tests/user_directories.rs.)

#[path = "common/session_conformance.rs"]
mod session_conformance;
#[path = "common/throttle_conformance.rs"]
mod throttle_conformance;

use std::sync::Arc;

use authflow::clock::ManualClock;
use authflow::memory::{MemoryFlowStore, MemorySessionStore, SWEEP_EVERY, Stores};
use authflow::model::{
    BindingSubject, BindingTarget, DenyStage, DummyStage, Flow, FlowDesignation, FlowStageBinding,
    Policy, PolicyBinding, PolicyKind, Stage, StageConfig, UserId,
};
use authflow::plan::{SessionId, SessionState};
use authflow::store::{FlowStore, SessionStore};
use authflow::{StoreError, defaults};

// ---------------------------------------------------------------------------------------
// SessionStore conformance

const IDLE: u64 = 600;
const ABSOLUTE: u64 = 3600;
const T0: u64 = 1_700_000_000;

fn sessions() -> MemorySessionStore {
    MemorySessionStore::new()
}

/// A store on a manual clock, with the clock.
fn clocked() -> (MemorySessionStore, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    (
        MemorySessionStore::with_expiry(clock.clone(), IDLE, ABSOLUTE),
        clock,
    )
}

#[tokio::test]
async fn session_load_missing_is_none() {
    session_conformance::load_missing_is_none(&sessions()).await;
}

#[tokio::test]
async fn session_create_starts_at_version_one() {
    session_conformance::create_starts_at_version_one(&sessions()).await;
}

#[tokio::test]
async fn session_save_with_current_version_bumps() {
    session_conformance::save_with_current_version_bumps(&sessions()).await;
}

#[tokio::test]
async fn session_stale_version_conflicts_and_writes_nothing() {
    session_conformance::stale_version_conflicts_and_writes_nothing(&sessions()).await;
}

#[tokio::test]
async fn session_delete_removes_the_session() {
    session_conformance::delete_removes_the_session(&sessions()).await;
}

#[tokio::test]
async fn session_idle_expiry() {
    let (store, clock) = clocked();
    session_conformance::idle_expiry(&store, &clock, IDLE).await;
}

#[tokio::test]
async fn session_absolute_expiry() {
    let (store, clock) = clocked();
    session_conformance::absolute_expiry(&store, &clock, IDLE, ABSOLUTE).await;
}

#[tokio::test]
async fn session_concurrent_savers_one_wins() {
    session_conformance::concurrent_savers_one_wins(&sessions()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_parallel_savers_one_wins() {
    session_conformance::parallel_savers_one_wins(Arc::new(sessions())).await;
}

#[tokio::test]
async fn sessions_delete_user_sessions() {
    session_conformance::delete_user_sessions_ends_only_that_users_other_sessions(&sessions())
        .await;
}

fn anonymous() -> SessionState {
    SessionState::default()
}

fn logged_in() -> SessionState {
    SessionState {
        user: Some(UserId::new_v4()),
        ..SessionState::default()
    }
}

async fn loadable(store: &MemorySessionStore, id: &SessionId) -> bool {
    store.load(id).await.unwrap().is_some()
}

#[tokio::test]
async fn session_sweep_drops_expired_sessions_that_are_never_loaded_again() {
    let (store, clock) = clocked();
    for _ in 0..10 {
        store
            .save(&SessionId::generate(), &anonymous(), None)
            .await
            .unwrap();
    }
    clock.advance(IDLE + 1);
    // No background task: creating sessions sweeps every SWEEP_EVERY of them.
    for _ in 0..SWEEP_EVERY {
        store
            .save(&SessionId::generate(), &anonymous(), None)
            .await
            .unwrap();
    }
    assert!(
        store.len() <= SWEEP_EVERY as usize,
        "the 10 expired sessions were swept: {} stored",
        store.len()
    );
    clock.advance(IDLE + 1);
    store.sweep();
    assert!(store.is_empty());
}

#[tokio::test]
async fn session_capacity_evicts_anonymous_first_then_least_recently_used() {
    let (store, clock) = clocked();
    let store = store.with_capacity(64);
    let users: Vec<SessionId> = (0..10).map(|_| SessionId::generate()).collect();
    for id in &users {
        store.save(id, &logged_in(), None).await.unwrap();
    }
    let mut anons = Vec::new();
    for _ in 0..500 {
        clock.advance(1);
        let id = SessionId::generate();
        store.save(&id, &anonymous(), None).await.unwrap();
        anons.push(id);
    }
    assert!(store.len() <= 64, "bounded: {} stored", store.len());
    // A flood of anonymous sessions never evicts a logged-in one…
    for id in &users {
        assert!(loadable(&store, id).await, "logged-in session evicted");
    }
    // …and evicts the least recently used anonymous ones first.
    assert!(!loadable(&store, &anons[0]).await);
    assert!(loadable(&store, anons.last().unwrap()).await);

    // Only when no anonymous session is left are logged-in ones evicted, oldest first.
    let mut more = Vec::new();
    for _ in 0..200 {
        clock.advance(1);
        let id = SessionId::generate();
        store.save(&id, &logged_in(), None).await.unwrap();
        more.push(id);
    }
    assert!(store.len() <= 64);
    assert!(
        !loadable(&store, &users[0]).await,
        "oldest logged-in evicted"
    );
    assert!(loadable(&store, more.last().unwrap()).await);
    for id in anons.iter().rev().take(5) {
        assert!(
            !loadable(&store, id).await,
            "anonymous evicted before logged-in"
        );
    }
}

#[tokio::test]
async fn session_capacity_never_evicts_a_logged_in_session_while_an_anonymous_one_exists() {
    let (store, clock) = clocked();
    let store = store.with_capacity(8);
    let anon = SessionId::generate();
    store.save(&anon, &anonymous(), None).await.unwrap();
    let mut users = Vec::new();
    for _ in 0..7 {
        clock.advance(1);
        let id = SessionId::generate();
        store.save(&id, &logged_in(), None).await.unwrap();
        users.push(id);
    }
    // The anonymous session is the most recently used, yet it goes first.
    store.load(&anon).await.unwrap();
    clock.advance(1);
    let id = SessionId::generate();
    store.save(&id, &logged_in(), None).await.unwrap();
    users.push(id);
    assert!(!loadable(&store, &anon).await);
    for id in &users {
        assert!(loadable(&store, id).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_suite_runs_on_one_shared_store() {
    // One store through every clock-free check: ids never collide.
    session_conformance::run_without_clock(Arc::new(sessions())).await;
}

// ---------------------------------------------------------------------------------------
// UserDirectory: the shared conformance suite, run against memory, SQLite and PostgreSQL
// in tests/user_directories.rs.

// ---------------------------------------------------------------------------------------
// FlowStore

fn is_validation_on(err: &StoreError, field: &str) -> bool {
    matches!(err, StoreError::Validation(e) if !e.get(field).is_empty())
}

fn flow(slug: &str) -> Flow {
    Flow::new(slug, "A flow", FlowDesignation::Authentication)
}

#[tokio::test]
async fn flow_validation_errors() {
    let store: &dyn FlowStore = &MemoryFlowStore::new();

    for bad in ["", "has space", "ünïcode", "slash/slug", &"x".repeat(51)] {
        let err = store.put_flow(flow(bad)).await.unwrap_err();
        assert!(is_validation_on(&err, "slug"), "{bad:?}: {err:?}");
    }
    store.put_flow(flow(&"x".repeat(50))).await.unwrap();

    let mut blank = flow("blank-name");
    blank.name = " ".into();
    blank.title = String::new();
    let err = store.put_flow(blank).await.unwrap_err();
    assert!(is_validation_on(&err, "name"), "{err:?}");
    assert!(is_validation_on(&err, "title"), "{err:?}");

    let first = flow("taken");
    store.put_flow(first.clone()).await.unwrap();
    let err = store.put_flow(flow("taken")).await.unwrap_err();
    assert!(is_validation_on(&err, "slug"), "{err:?}");
    // Replacing the same flow (same pk) under its own slug is fine.
    store
        .put_flow(first.clone().with_title("Renamed"))
        .await
        .unwrap();

    let stage = Stage::new("a-stage", DummyStage::default());
    store.put_stage(stage.clone()).await.unwrap();
    let mut neither = FlowStageBinding::new(first.pk, stage.pk, 0);
    neither.evaluate_on_plan = false;
    neither.re_evaluate_policies = false;
    let err = store.put_binding(neither).await.unwrap_err();
    assert!(is_validation_on(&err, "non_field_errors"), "{err:?}");

    let dangling = FlowStageBinding::new(
        flow("ghost").pk,
        Stage::new("ghost", DummyStage::default()).pk,
        0,
    );
    let err = store.put_binding(dangling).await.unwrap_err();
    assert!(is_validation_on(&err, "target"), "{err:?}");
    assert!(is_validation_on(&err, "stage"), "{err:?}");

    let err = store
        .put_stage(Stage::new("", DummyStage::default()))
        .await
        .unwrap_err();
    assert!(is_validation_on(&err, "name"), "{err:?}");

    // Nothing invalid was stored.
    let slugs: Vec<String> = store
        .flows()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.slug)
        .collect();
    assert_eq!(slugs, ["taken".to_owned(), "x".repeat(50)]);
    let def = store.flow("taken").await.unwrap().unwrap();
    assert_eq!(def.flow.title, "Renamed");
    assert!(def.stages.is_empty());
}

/// The revision of `slug`, which must exist.
async fn revision(store: &dyn FlowStore, slug: &str) -> u64 {
    store.revision(slug).await.unwrap().unwrap()
}

#[tokio::test]
async fn revision_changes_with_every_write_that_touches_the_flow() {
    let store: &dyn FlowStore = &MemoryFlowStore::new();
    let f = flow("revised");
    store.put_flow(f.clone()).await.unwrap();
    assert!(store.revision("missing").await.unwrap().is_none());
    let mut rev = revision(store, "revised").await;

    let mut changed = |label: &'static str, new: u64| {
        assert_ne!(new, rev, "{label} did not change the revision");
        rev = new;
    };

    store
        .put_flow(f.clone().with_title("New title"))
        .await
        .unwrap();
    changed("put_flow", revision(store, "revised").await);

    let stage = Stage::new("revised-stage", DummyStage::default());
    store.put_stage(stage.clone()).await.unwrap();
    let binding = FlowStageBinding::new(f.pk, stage.pk, 10);
    store.put_binding(binding.clone()).await.unwrap();
    changed("put_binding", revision(store, "revised").await);

    let mut moved = binding.clone();
    moved.order = 20;
    store.put_binding(moved).await.unwrap();
    changed("binding edit", revision(store, "revised").await);

    let mut edited = stage.clone();
    edited.config = StageConfig::Dummy(DummyStage { throw_error: true });
    store.put_stage(edited).await.unwrap();
    changed("stage edit", revision(store, "revised").await);

    let policy = Policy::new("revised-policy", PolicyKind::Dummy { result: true });
    store.put_policy(policy.clone()).await.unwrap();
    changed("put_policy", revision(store, "revised").await);

    let pb = PolicyBinding::new(
        BindingTarget::Stage(binding.pk),
        BindingSubject::Policy(policy.pk),
        0,
    );
    store.put_policy_binding(pb.clone()).await.unwrap();
    changed("put_policy_binding", revision(store, "revised").await);

    let mut policy_edit = policy.clone();
    policy_edit.kind = PolicyKind::Dummy { result: false };
    store.put_policy(policy_edit).await.unwrap();
    changed("policy edit", revision(store, "revised").await);

    assert!(store.delete_policy_binding(pb.pk).await.unwrap());
    changed("delete_policy_binding", revision(store, "revised").await);

    assert!(store.delete_binding(binding.pk).await.unwrap());
    changed("delete_binding", revision(store, "revised").await);

    // Reads do not change it.
    store.flow("revised").await.unwrap();
    assert_eq!(revision(store, "revised").await, rev);
}

#[tokio::test]
async fn engine_reloads_a_changed_definition_and_keeps_one_cache_entry() {
    let stores = Stores::new();
    let engine = stores.engine().build();
    let flows: &dyn FlowStore = stores.flows.as_ref();
    let f = defaults::authentication(flows).await.unwrap();
    let slug = defaults::AUTHENTICATION;

    let first = engine.definition(slug).await.unwrap();
    let again = engine.definition(slug).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "an unchanged flow is served from the cache"
    );
    assert_eq!(engine.cache_count(slug), 1);
    assert_eq!(first.stages.len(), 3);

    // A new stage bound into the flow appears on the next call.
    let deny = Stage::new(
        "extra-deny",
        DenyStage {
            deny_message: "closed".into(),
        },
    );
    flows.put_stage(deny.clone()).await.unwrap();
    flows
        .put_binding(FlowStageBinding::new(f.pk, deny.pk, 50))
        .await
        .unwrap();
    let second = engine.definition(slug).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    let names: Vec<&str> = second
        .stages
        .iter()
        .map(|s| s.stage.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "default-authentication-identification",
            "default-authentication-password",
            "extra-deny",
            "default-authentication-login",
        ]
    );
    assert_eq!(engine.cache_count(slug), 1);

    // Editing a bound stage reloads too.
    let mut edited = deny.clone();
    edited.config = StageConfig::Deny(DenyStage {
        deny_message: "still closed".into(),
    });
    flows.put_stage(edited).await.unwrap();
    let third = engine.definition(slug).await.unwrap();
    let message = third
        .stages
        .iter()
        .find_map(|s| match &s.stage.config {
            StageConfig::Deny(d) => Some(d.deny_message.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(message, "still closed");

    // So does a policy bound to one of its stages.
    let policy = Policy::new("extra-policy", PolicyKind::Dummy { result: false });
    flows.put_policy(policy.clone()).await.unwrap();
    let deny_binding = third
        .stages
        .iter()
        .find(|s| s.stage.pk == deny.pk)
        .unwrap()
        .binding
        .pk;
    flows
        .put_policy_binding(PolicyBinding::new(
            BindingTarget::Stage(deny_binding),
            BindingSubject::Policy(policy.pk),
            0,
        ))
        .await
        .unwrap();
    let fourth = engine.definition(slug).await.unwrap();
    let bound = fourth
        .stages
        .iter()
        .find(|s| s.stage.pk == deny.pk)
        .unwrap();
    assert_eq!(bound.policies.len(), 1);
    assert_eq!(engine.cache_count(slug), 1);
    assert_eq!(engine.cached_flows(), 1);
}

// ---------------------------------------------------------------------------------------
// ThrottleStore conformance

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_throttle_conformance() {
    throttle_conformance::run(Arc::new(authflow::memory::MemoryThrottle::new()), "").await;
}

/// Expired counters are swept as new ones arrive: memory follows the open windows, not
/// every identifier ever tried.
#[tokio::test]
async fn memory_throttle_sweeps_expired_counters() {
    use authflow::store::ThrottleStore;
    let store = authflow::memory::MemoryThrottle::new();
    for i in 0..5000 {
        store.hit(&format!("k{i}"), 1000, 60).await.unwrap();
    }
    assert_eq!(store.len(), 5000);
    for i in 0..5000 {
        store.hit(&format!("later{i}"), 2000, 60).await.unwrap();
    }
    assert!(store.len() < 8000, "{}", store.len());
}
