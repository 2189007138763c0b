#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The in-memory stores: the shared `SessionStore` conformance suite run against
//! `MemorySessionStore`, and `UserDirectory` / `FlowStore` behaviour of
//! `MemoryUserDirectory` and `MemoryFlowStore`.

#[path = "common/session_conformance.rs"]
mod session_conformance;
#[path = "common/throttle_conformance.rs"]
mod throttle_conformance;

use std::sync::{Arc, Mutex};

use authflow::clock::ManualClock;
use authflow::hashing::{Argon2idHasher, PasswordHashing, django_pbkdf2_hash};
use authflow::memory::{
    MemoryFlowStore, MemorySessionStore, MemoryUserDirectory, SWEEP_EVERY, Stores,
};
use authflow::model::{
    BindingSubject, BindingTarget, DenyStage, DummyStage, Flow, FlowDesignation, FlowStageBinding,
    GroupId, Policy, PolicyBinding, PolicyKind, Stage, StageConfig, UserField, UserId,
};
use authflow::plan::{SessionId, SessionState};
use authflow::secret::Password;
use authflow::store::{FlowStore, Group, NewUser, SessionStore, User, UserAdmin, UserDirectory};
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
// UserDirectory

/// Argon2id, recording every hash it makes and every hash it verifies against, so
/// tests can see what the directory stores.
#[derive(Default)]
struct Recording {
    made: Mutex<Vec<String>>,
    verified: Mutex<Vec<String>>,
}

impl PasswordHashing for Recording {
    fn hash(&self, password: &str) -> Result<String, String> {
        let h = Argon2idHasher.hash(password)?;
        self.made.lock().unwrap().push(h.clone());
        Ok(h)
    }

    fn verify(&self, hash: &str, password: &str) -> bool {
        self.verified.lock().unwrap().push(hash.to_owned());
        Argon2idHasher.verify(hash, password)
    }

    fn needs_rehash(&self, hash: &str) -> bool {
        Argon2idHasher.needs_rehash(hash)
    }
}

impl Recording {
    fn last_verified(&self) -> String {
        self.verified.lock().unwrap().last().cloned().unwrap()
    }
}

fn recording_directory() -> (MemoryUserDirectory, Arc<Recording>) {
    let hasher = Arc::new(Recording::default());
    (MemoryUserDirectory::with_hasher(hasher.clone()), hasher)
}

fn imported(username: &str) -> User {
    User {
        pk: UserId::new_v4(),
        username: username.into(),
        name: String::new(),
        email: format!("{username}@example.com"),
        is_active: true,
        path: "users".into(),
        user_type: "internal".into(),
        attributes: Default::default(),
        groups: Vec::new(),
    }
}

fn is_validation_on(err: &StoreError, field: &str) -> bool {
    matches!(err, StoreError::Validation(e) if !e.get(field).is_empty())
}

#[tokio::test]
async fn users_are_found_case_insensitively_by_username_email_and_upn() {
    let dir = MemoryUserDirectory::new();
    let users: &dyn UserDirectory = &dir;
    let mut new = NewUser::new("Alice").email("Alice.Liddell@Example.COM");
    new.attributes
        .insert("upn".into(), "ALICE@corp.example".into());
    let alice = dir.create_user(new).await.unwrap();
    dir.create_user(NewUser::new("bob")).await.unwrap();

    for (field, exact, other_case) in [
        (UserField::Username, "Alice", "aLICE"),
        (
            UserField::Email,
            "Alice.Liddell@Example.COM",
            "alice.liddell@example.com",
        ),
        (UserField::Upn, "ALICE@corp.example", "alice@CORP.example"),
    ] {
        let found = |v: &'static str, ci: bool| async move {
            users.find_user(field, v, ci).await.unwrap().map(|u| u.pk)
        };
        assert_eq!(
            found(exact, false).await,
            Some(alice.pk.clone()),
            "{field:?}"
        );
        assert_eq!(
            found(other_case, true).await,
            Some(alice.pk.clone()),
            "{field:?}"
        );
        assert_eq!(found(other_case, false).await, None, "{field:?}");
        assert_eq!(found("nobody", true).await, None, "{field:?}");
    }
    // Other fields do not match: the username is not an email, and an empty email
    // (bob has none) matches nothing.
    assert!(
        users
            .find_user(UserField::Email, "alice", true)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        users
            .find_user(UserField::Email, "", true)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        users
            .find_user(UserField::Upn, "bob", true)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn passwords_are_stored_as_argon2id_and_verified() {
    let dir = MemoryUserDirectory::new();
    let user = dir
        .create_user(NewUser::new("carol").password("correct horse"))
        .await
        .unwrap();
    assert!(
        dir.verify_password(Some(user.pk.clone()), &Password::new("correct horse"))
            .await
            .unwrap()
    );
    assert!(
        !dir.verify_password(Some(user.pk.clone()), &Password::new("correct horsE"))
            .await
            .unwrap()
    );
    assert!(
        !dir.verify_password(Some(user.pk), &Password::new(""))
            .await
            .unwrap()
    );

    // What is stored is an argon2id PHC string, never the password.
    let (dir, hasher) = recording_directory();
    let user = dir
        .create_user(NewUser::new("dave").password("tr0ub4dor"))
        .await
        .unwrap();
    assert!(
        dir.verify_password(Some(user.pk.clone()), &Password::new("tr0ub4dor"))
            .await
            .unwrap()
    );
    let stored = hasher.last_verified();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains("tr0ub4dor"));

    dir.set_password(user.pk.clone(), &Password::new("new secret"))
        .await
        .unwrap();
    assert!(
        !dir.verify_password(Some(user.pk.clone()), &Password::new("tr0ub4dor"))
            .await
            .unwrap()
    );
    assert!(
        dir.verify_password(Some(user.pk), &Password::new("new secret"))
            .await
            .unwrap()
    );
    assert!(hasher.last_verified().starts_with("$argon2id$"));
    assert_ne!(hasher.last_verified(), stored);
}

#[tokio::test]
async fn django_pbkdf2_hashes_are_imported_verified_and_rehashed_to_argon2id() {
    let (dir, hasher) = recording_directory();
    let user = imported("erin");
    let django = django_pbkdf2_hash("hunter2", "seasalt", 1000);
    assert!(django.starts_with("pbkdf2_sha256$1000$seasalt$"));
    dir.import_user(user.clone(), Some(django.clone())).unwrap();
    assert_eq!(
        dir.user(user.pk.clone()).await.unwrap().map(|u| u.username),
        Some("erin".to_owned())
    );

    // A wrong password neither verifies nor replaces the imported hash.
    assert!(
        !dir.verify_password(Some(user.pk.clone()), &Password::new("hunter3"))
            .await
            .unwrap()
    );
    assert_eq!(hasher.last_verified(), django);

    // The right one verifies against the Django hash, which is then replaced.
    assert!(
        dir.verify_password(Some(user.pk.clone()), &Password::new("hunter2"))
            .await
            .unwrap()
    );
    assert_eq!(hasher.last_verified(), django);
    assert!(
        dir.verify_password(Some(user.pk.clone()), &Password::new("hunter2"))
            .await
            .unwrap()
    );
    let rehashed = hasher.last_verified();
    assert!(rehashed.starts_with("$argon2id$"), "{rehashed}");
    assert!(
        !dir.verify_password(Some(user.pk.clone()), &Password::new("hunter3"))
            .await
            .unwrap()
    );
    // Once argon2id, a good login does not rehash again.
    let made = hasher.made.lock().unwrap().len();
    assert!(
        dir.verify_password(Some(user.pk), &Password::new("hunter2"))
            .await
            .unwrap()
    );
    assert_eq!(hasher.made.lock().unwrap().len(), made);
    assert_eq!(hasher.last_verified(), rehashed);
}

#[tokio::test]
async fn unknown_users_and_users_without_password_never_verify() {
    let (dir, hasher) = recording_directory();
    let nopw = dir.create_user(NewUser::new("frank")).await.unwrap();
    for user in [None, Some(UserId::new_v4()), Some(nopw.pk)] {
        let before = hasher.verified.lock().unwrap().len();
        for pw in ["", "anything"] {
            assert!(
                !dir.verify_password(user.clone(), &Password::new(pw))
                    .await
                    .unwrap(),
                "{user:?}"
            );
        }
        // The same hashing work as for a real user: no timing oracle.
        assert_eq!(hasher.verified.lock().unwrap().len(), before + 2);
    }
}

#[tokio::test]
async fn groups_of_includes_every_ancestor_once() {
    let dir = MemoryUserDirectory::new();
    let root = Group::new("staff");
    let mid = Group::new("engineering").child_of(root.pk);
    let leaf = Group::new("backend").child_of(mid.pk);
    let other = Group::new("sales").child_of(root.pk);
    let unrelated = Group::new("contractors");
    for g in [&root, &mid, &leaf, &other, &unrelated] {
        dir.put_group(g.clone()).await.unwrap();
    }
    let user = dir
        .create_user(NewUser::new("grace").group(leaf.pk).group(other.pk))
        .await
        .unwrap();

    let mut got: Vec<GroupId> = dir
        .groups_of(user.pk)
        .await
        .unwrap()
        .iter()
        .map(|g| g.pk)
        .collect();
    got.sort();
    let mut want = vec![root.pk, mid.pk, leaf.pk, other.pk];
    want.sort();
    assert_eq!(got, want);

    assert!(dir.groups_of(UserId::new_v4()).await.unwrap().is_empty());
    assert_eq!(
        dir.find_group("engineering").await.unwrap().map(|g| g.pk),
        Some(mid.pk)
    );
    assert_eq!(
        dir.group(leaf.pk).await.unwrap().and_then(|g| g.parent),
        Some(mid.pk)
    );
}

#[tokio::test]
async fn group_cycles_do_not_hang_groups_of() {
    let dir = MemoryUserDirectory::new();
    let a = Group::new("a");
    let b = Group::new("b").child_of(a.pk);
    dir.put_group(a.clone()).await.unwrap();
    dir.put_group(b.clone()).await.unwrap();
    dir.put_group(a.clone().child_of(b.pk)).await.unwrap();
    let user = dir
        .create_user(NewUser::new("heidi").group(b.pk))
        .await
        .unwrap();
    assert_eq!(dir.groups_of(user.pk).await.unwrap().len(), 2);
}

#[tokio::test]
async fn usernames_are_unique_case_insensitively() {
    let dir = MemoryUserDirectory::new();
    let ivan = dir.create_user(NewUser::new("ivan")).await.unwrap();
    let judy = dir.create_user(NewUser::new("judy")).await.unwrap();

    for taken in ["ivan", "IVAN"] {
        let err = dir.create_user(NewUser::new(taken)).await.unwrap_err();
        assert!(is_validation_on(&err, "username"), "{taken}: {err:?}");
    }
    let err = dir.create_user(NewUser::new("  ")).await.unwrap_err();
    assert!(is_validation_on(&err, "username"), "{err:?}");

    let mut renamed = judy.clone();
    renamed.username = "Ivan".into();
    let err = dir.update_user(&renamed).await.unwrap_err();
    assert!(is_validation_on(&err, "username"), "{err:?}");
    assert_eq!(
        dir.user(judy.pk).await.unwrap().map(|u| u.username),
        Some("judy".to_owned())
    );
    // Keeping one's own username is not a clash.
    let mut same = ivan.clone();
    same.name = "Ivan I.".into();
    dir.update_user(&same).await.unwrap();

    let err = dir.import_user(imported("ivan"), None).unwrap_err();
    assert!(is_validation_on(&err, "username"), "{err:?}");
    assert_eq!(dir.len(), 2);
}

// ---------------------------------------------------------------------------------------
// FlowStore

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

// ---------------------------------------------------------------------------------------
// Unique identifiers (issue 8 part 5)

fn field_error(e: StoreError, field: &str) -> Vec<String> {
    match e {
        StoreError::Validation(v) => v.get(field).to_vec(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn emails_are_unique_case_insensitively_and_across_usernames() {
    let users = MemoryUserDirectory::new();
    users
        .create_user(NewUser::new("alice").email("Alice@Corp.Example"))
        .await
        .unwrap();
    users
        .create_user(NewUser::new("carol@corp.example"))
        .await
        .unwrap();
    // A case variant of a taken email.
    let e = users
        .create_user(NewUser::new("bob").email("alice@corp.example"))
        .await
        .unwrap_err();
    assert_eq!(
        field_error(e, "email"),
        ["Email address is already in use."]
    );
    // An email equal to someone's username (the takeover).
    let e = users
        .create_user(NewUser::new("mallory").email("CAROL@corp.example"))
        .await
        .unwrap_err();
    assert_eq!(
        field_error(e, "email"),
        ["Email address is already in use."]
    );
    // A username equal to someone's email.
    let e = users
        .create_user(NewUser::new("alice@corp.example"))
        .await
        .unwrap_err();
    assert_eq!(field_error(e, "username"), ["Username is already taken."]);
    // Renaming into a taken email is refused too; one's own email is fine.
    let mut bob = users
        .create_user(NewUser::new("bob").email("bob@corp.example"))
        .await
        .unwrap();
    bob.email = "ALICE@corp.example".into();
    let e = users.update_user(&bob).await.unwrap_err();
    assert_eq!(
        field_error(e, "email"),
        ["Email address is already in use."]
    );
    bob.email = "BOB@corp.example".into();
    users.update_user(&bob).await.unwrap();
    // Lookups are unambiguous.
    let found = users
        .find_user(UserField::Email, "alice@CORP.example", true)
        .await
        .unwrap();
    assert_eq!(found.map(|u| u.username), Some("alice".to_owned()));
}

#[tokio::test]
async fn usernames_are_compared_after_nfkc_and_case_folding() {
    let users = MemoryUserDirectory::new();
    let admin = users.create_user(NewUser::new("akadmin")).await.unwrap();
    for variant in ["ＡＫＡＤＭＩＮ", "AKADMIN", " akadmin "] {
        let e = users.create_user(NewUser::new(variant)).await.unwrap_err();
        assert_eq!(
            field_error(e, "username"),
            ["Username is already taken."],
            "{variant}"
        );
        let found = users
            .find_user(UserField::Username, variant, true)
            .await
            .unwrap();
        assert_eq!(found.map(|u| u.pk), Some(admin.pk.clone()), "{variant}");
    }
    for bad in [
        "ak\u{200B}admin",
        "ak\u{202E}x",
        "ak\u{2066}x",
        "a\u{0000}b",
        "a\tb",
        "\u{FEFF}akadmin",
    ] {
        let e = users.create_user(NewUser::new(bad)).await.unwrap_err();
        assert_eq!(
            field_error(e, "username"),
            ["Username contains invisible or control characters."],
            "{bad:?}"
        );
    }
    let e = users
        .create_user(NewUser::new("a".repeat(151)))
        .await
        .unwrap_err();
    assert_eq!(
        field_error(e, "username"),
        ["Ensure this field has no more than 150 characters."]
    );
    users
        .create_user(NewUser::new("a".repeat(150)))
        .await
        .unwrap();
}

/// Uniqueness is checked and written under one lock: of many concurrent enrollments
/// with one email (in different cases), exactly one succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_cannot_share_an_email() {
    let users = Arc::new(MemoryUserDirectory::with_hasher(Arc::new(
        authflow::hashing::Argon2idHasher,
    )));
    let mut handles = Vec::new();
    for i in 0..16 {
        let users = users.clone();
        handles.push(tokio::spawn(async move {
            let email = if i % 2 == 0 {
                "race@corp.example"
            } else {
                "RACE@corp.example"
            };
            users
                .create_user(NewUser::new(format!("racer{i}")).email(email))
                .await
        }));
    }
    let mut ok = 0;
    for h in handles {
        if h.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(users.len(), 1);
}
