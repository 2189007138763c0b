//! Invitations: the invitation stage, consumption of single-use invitations when the
//! account is created, the stores (memory, SQLite, PostgreSQL with
//! `AUTHFLOW_TEST_POSTGRES`) and the admin API.
//!
//! Semantics from authentik's `authentik/stages/invitation/stage.py`
//! (`InvitationStageView.get_token`, `get_invite`, `dispatch`: `itoken`, then
//! `token`, then `prompt_data.token`; a foreign-flow invite counts as none;
//! `fixed_data` deep-merged into `prompt_data`; `continue_flow_without_invitation`)
//! and `authentik/stages/invitation/api.py` (`InvitationSerializer`,
//! `InvitationViewSet.perform_create`: `created_by` is the requesting user). The
//! improvement: a single-use invitation is consumed when the account is created,
//! not when the stage runs (authentik #16587, #12770).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
#[cfg(feature = "sqlite")]
#[path = "common/sql.rs"]
mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use authflow::events::{EventAction, MemoryEventSink};
use authflow::memory::{self, MemoryInvitations};
use authflow::model::{
    FlowDesignation, InvitationStage, Prompt, PromptStage, PromptType, UserCreationMode, UserField,
    UserLoginStage, UserWriteStage,
};
use authflow::stages::{
    INVITATION_EXPIRED, INVITATION_NOT_FOUND, INVITATION_OTHER_FLOW, INVITATION_USED,
};
use authflow::store::{Invitation, InvitationStore, StoreError, UserDirectory};
use authflow::{Engine, FlowBuilder};
use common::kit::{Client, wire};
use serde_json::{Value, json};
use uuid::Uuid;

const ENROLL: &str = "invite-enroll";
const OTHER: &str = "other-enroll";
const OPEN: &str = "open-enroll";
const PROMPT_FIRST: &str = "prompt-first-enroll";

struct Setup {
    stores: memory::Stores,
    invitations: Arc<dyn InvitationStore>,
    engine: Arc<Engine>,
    events: Arc<MemoryEventSink>,
}

fn prompt(with_token: bool) -> PromptStage {
    let mut fields = vec![
        Prompt::new("username", "Username", PromptType::Username, 0),
        Prompt::new("password", "Password", PromptType::Password, 1),
    ];
    if with_token {
        fields.push(Prompt::new("token", "Invitation", PromptType::Text, 2));
    }
    PromptStage {
        fields,
        validation_policies: vec![],
    }
}

fn write() -> UserWriteStage {
    UserWriteStage {
        user_creation_mode: UserCreationMode::AlwaysCreate,
        ..UserWriteStage::default()
    }
}

async fn setup_with(invitations: Arc<dyn InvitationStore>) -> Setup {
    let stores = memory::Stores::new();
    let events = Arc::new(MemoryEventSink::new());
    let engine = Arc::new(
        stores
            .engine()
            .events(events.clone())
            .invitations(invitations.clone())
            .build(),
    );
    for (slug, stage, cont) in [
        (ENROLL, "invitation", false),
        (OTHER, "invitation", false),
        (OPEN, "invitation-optional", true),
    ] {
        FlowBuilder::new(slug, FlowDesignation::Enrollment)
            .stage(
                stage,
                InvitationStage {
                    continue_flow_without_invitation: cont,
                },
            )
            .stage("invite-prompt", prompt(false))
            .stage("invite-write", write())
            .stage("invite-login", UserLoginStage::default())
            .install(stores.flows.as_ref())
            .await
            .unwrap();
    }
    // The token typed into a prompt (`prompt_data.token`).
    FlowBuilder::new(PROMPT_FIRST, FlowDesignation::Enrollment)
        .stage("invite-prompt-token", prompt(true))
        .stage("invitation", InvitationStage::default())
        .stage("invite-write", write())
        .stage("invite-login", UserLoginStage::default())
        .install(stores.flows.as_ref())
        .await
        .unwrap();
    Setup {
        stores,
        invitations,
        engine,
        events,
    }
}

async fn setup() -> Setup {
    setup_with(Arc::new(MemoryInvitations::new())).await
}

impl Setup {
    async fn invite(&self, name: &str, adjust: impl FnOnce(&mut Invitation)) -> Invitation {
        let mut inv = Invitation::new(name);
        adjust(&mut inv);
        self.invitations.create(inv.clone()).await.unwrap();
        inv
    }

    fn client(&self, query: &str) -> Client {
        Client::new(self.engine.clone()).with_query(query)
    }

    async fn flow_pk(&self, slug: &str) -> authflow::model::FlowId {
        self.engine.definition(slug).await.unwrap().flow.pk
    }

    async fn user(&self, username: &str) -> Option<authflow::store::User> {
        self.stores
            .users
            .find_user(UserField::Username, username, false)
            .await
            .unwrap()
    }
}

fn enroll_body(username: &str) -> Value {
    json!({"component": "ak-stage-prompt", "username": username, "password": "a-long-password-1"})
}

fn denied(v: &Value) -> String {
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    v["error_message"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn without_an_invitation_the_flow_is_denied_unless_it_may_continue() {
    let s = setup().await;
    let v = wire(&s.client("").get(ENROLL).await);
    assert_eq!(denied(&v), INVITATION_NOT_FOUND);
    for bad in [
        format!("itoken={}", Uuid::new_v4()),
        "itoken=not-a-uuid".into(),
        "itoken=".into(),
    ] {
        let v = wire(&s.client(&bad).get(ENROLL).await);
        assert_eq!(denied(&v), INVITATION_NOT_FOUND, "{bad}");
    }
    // continue_flow_without_invitation: the prompt, and nothing fixed.
    let mut c = s.client(&format!("itoken={}", Uuid::new_v4()));
    let v = wire(&c.get(OPEN).await);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    c.post(OPEN, enroll_body("walk-in")).await;
    assert!(s.user("walk-in").await.is_some());
}

#[tokio::test]
async fn an_expired_invitation_is_refused() {
    let s = setup().await;
    let inv = s.invite("old", |i| i.expires = Some(1)).await;
    let v = wire(&s.client(&format!("itoken={}", inv.pk)).get(ENROLL).await);
    assert_eq!(denied(&v), INVITATION_EXPIRED);
    // A flow that may continue goes on without it (its fixed data is not applied).
    let v = wire(&s.client(&format!("itoken={}", inv.pk)).get(OPEN).await);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
}

#[tokio::test]
async fn an_invitation_for_another_flow_is_refused() {
    let s = setup().await;
    let other = s.flow_pk(OTHER).await;
    let inv = s
        .invite("for-other", |i| {
            i.flow = Some(other);
            i.fixed_data = json!({"email": "fixed@example.org"})
                .as_object()
                .cloned()
                .unwrap();
        })
        .await;
    let v = wire(&s.client(&format!("itoken={}", inv.pk)).get(ENROLL).await);
    assert_eq!(denied(&v), INVITATION_OTHER_FLOW);
    // In its own flow it works.
    let v = wire(&s.client(&format!("itoken={}", inv.pk)).get(OTHER).await);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    // In a flow that may continue without one, it is not applied.
    let mut c = s.client(&format!("itoken={}", inv.pk));
    c.get(OPEN).await;
    c.post(OPEN, enroll_body("no-fixed")).await;
    assert_eq!(s.user("no-fixed").await.unwrap().email, "");
}

#[tokio::test]
async fn fixed_data_is_merged_into_the_prompt_data_and_written() {
    let s = setup().await;
    let inv = s
        .invite("team-blue", |i| {
            i.fixed_data = json!({"email": "ada@example.org", "attributes": {"team": "blue"}})
                .as_object()
                .cloned()
                .unwrap();
        })
        .await;
    // `token` works as well as `itoken`.
    let mut c = s.client(&format!("token={}", inv.pk));
    let v = wire(&c.get(ENROLL).await);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    let out = c.post(ENROLL, enroll_body("ada")).await;
    assert!(out.logged_in, "{}", wire(&out));
    let ada = s.user("ada").await.unwrap();
    assert_eq!(ada.email, "ada@example.org");
    assert_eq!(ada.attributes["team"], "blue");
    // authentik's `invitation_used` event.
    let used = s
        .events
        .events()
        .into_iter()
        .find(|e| e.action == EventAction::InvitationUsed)
        .expect("an invitation_used event");
    assert_eq!(used.context["invitation"], "team-blue");
    // Reusable: still there and still opens (a second account would need another
    // email: the fixed one is taken now).
    assert!(s.invitations.invitation(inv.pk).await.unwrap().is_some());
    let mut c = s.client(&format!("itoken={}", inv.pk));
    let v = wire(&c.get(ENROLL).await);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    let v = wire(&c.post(ENROLL, enroll_body("grace")).await);
    assert_eq!(denied(&v), "Email address is already in use.");
    // Its pk (the link's secret) is not in the audit event.
    assert!(
        !serde_json::to_string(&used)
            .unwrap()
            .contains(&inv.pk.to_string())
    );
}

#[tokio::test]
async fn an_invitation_revoked_or_expired_while_its_flow_runs_creates_no_account() {
    let s = setup().await;
    let inv = s.invite("revoked", |_| {}).await;
    let mut c = s.client(&format!("itoken={}", inv.pk));
    c.get(ENROLL).await;
    assert!(s.invitations.delete(inv.pk).await.unwrap());
    let v = wire(&c.post(ENROLL, enroll_body("late")).await);
    assert_eq!(denied(&v), INVITATION_USED);
    assert!(s.user("late").await.is_none());

    let clock = Arc::new(authflow::clock::ManualClock::new(1_000));
    let stores = memory::Stores::new();
    let engine = Arc::new(stores.engine().clock(clock.clone()).build());
    FlowBuilder::new(ENROLL, FlowDesignation::Enrollment)
        .stage("invitation", InvitationStage::default())
        .stage("invite-prompt", prompt(false))
        .stage("invite-write", write())
        .install(stores.flows.as_ref())
        .await
        .unwrap();
    let mut inv = Invitation::new("short");
    inv.expires = Some(1_060);
    engine.env().invitations.create(inv.clone()).await.unwrap();
    let mut c = Client::new(engine.clone()).with_query(&format!("itoken={}", inv.pk));
    let v = wire(&c.get(ENROLL).await);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    clock.advance(120);
    let v = wire(&c.post(ENROLL, enroll_body("slow")).await);
    assert_eq!(denied(&v), INVITATION_EXPIRED);
}

#[tokio::test]
async fn the_token_may_come_from_the_prompt_data() {
    let s = setup().await;
    let inv = s
        .invite("typed", |i| {
            i.fixed_data = json!({"name": "Typed In"}).as_object().cloned().unwrap();
        })
        .await;
    let mut c = s.client("");
    c.get(PROMPT_FIRST).await;
    let mut body = enroll_body("typist");
    body["token"] = json!(inv.pk.to_string());
    let out = c.post(PROMPT_FIRST, body).await;
    assert!(out.logged_in, "{}", wire(&out));
    assert_eq!(s.user("typist").await.unwrap().name, "Typed In");
    // A wrong token typed in is refused.
    let mut c = s.client("");
    c.get(PROMPT_FIRST).await;
    let mut body = enroll_body("typo");
    body["token"] = json!(Uuid::new_v4().to_string());
    let v = wire(&c.post(PROMPT_FIRST, body).await);
    assert_eq!(denied(&v), INVITATION_NOT_FOUND);
    assert!(s.user("typo").await.is_none());
}

#[tokio::test]
async fn a_single_use_invitation_is_consumed_when_the_account_is_created_not_when_opened() {
    let s = setup().await;
    let inv = s.invite("once", |i| i.single_use = true).await;
    let link = format!("itoken={}", inv.pk);
    // Opened twice (a mail scanner, then the person; or two tabs): nothing consumed.
    let mut scanner = s.client(&link);
    let v = wire(&scanner.get(ENROLL).await);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    let mut person = s.client(&link);
    let v = wire(&person.get(ENROLL).await);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    let v = wire(&person.get(ENROLL).await);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    assert!(s.invitations.invitation(inv.pk).await.unwrap().is_some());

    // The account is created: the invitation is gone.
    let out = person.post(ENROLL, enroll_body("first")).await;
    assert!(out.logged_in, "{}", wire(&out));
    assert!(s.user("first").await.is_some());
    assert!(s.invitations.invitation(inv.pk).await.unwrap().is_none());

    // A second enrollment that opened the link before is refused at account creation.
    let v = wire(&scanner.post(ENROLL, enroll_body("second")).await);
    assert_eq!(denied(&v), INVITATION_USED);
    assert!(s.user("second").await.is_none());
    // And the link no longer opens.
    let v = wire(&s.client(&link).get(ENROLL).await);
    assert_eq!(denied(&v), INVITATION_NOT_FOUND);
}

/// A store whose reads lag behind its writes (a replica; or the moment between two
/// enrollments' checks and their commits): it still shows consumed invitations.
struct StaleReads {
    inner: MemoryInvitations,
    seen: std::sync::Mutex<Vec<Invitation>>,
}

#[async_trait]
impl InvitationStore for StaleReads {
    async fn create(&self, invitation: Invitation) -> Result<(), StoreError> {
        self.seen.lock().unwrap().push(invitation.clone());
        self.inner.create(invitation).await
    }
    async fn invitations(&self) -> Result<Vec<Invitation>, StoreError> {
        Ok(self.seen.lock().unwrap().clone())
    }
    async fn invitation(&self, pk: Uuid) -> Result<Option<Invitation>, StoreError> {
        Ok(self
            .seen
            .lock()
            .unwrap()
            .iter()
            .find(|i| i.pk == pk)
            .cloned())
    }
    async fn delete(&self, pk: Uuid) -> Result<bool, StoreError> {
        self.inner.delete(pk).await
    }
    async fn consume(&self, pk: Uuid, now: u64) -> Result<bool, StoreError> {
        self.inner.consume(pk, now).await
    }
}

#[tokio::test]
async fn two_enrollments_racing_with_one_single_use_invitation_create_one_account() {
    let store = Arc::new(StaleReads {
        inner: MemoryInvitations::new(),
        seen: Default::default(),
    });
    let s = setup_with(store.clone()).await;
    let inv = s.invite("race", |i| i.single_use = true).await;
    let link = format!("itoken={}", inv.pk);
    let mut a = s.client(&link);
    let mut b = s.client(&link);
    a.get(ENROLL).await;
    b.get(ENROLL).await;
    let out = a.post(ENROLL, enroll_body("winner")).await;
    assert!(out.logged_in, "{}", wire(&out));
    // B's stage check still sees the invitation; the atomic consumption after the
    // commit does not, so B's account is not created and B is not logged in.
    let out = b.post(ENROLL, enroll_body("loser")).await;
    assert!(!out.logged_in);
    assert_eq!(denied(&wire(&out)), INVITATION_USED);
    assert!(s.user("loser").await.is_none());
    assert!(s.user("winner").await.is_some());
}

/// A directory whose lookups miss (as when a concurrent enrollment took the
/// username after the stage's check): only its atomic write refuses duplicates.
struct BlindLookups(Arc<memory::MemoryUserDirectory>);

#[async_trait]
impl UserDirectory for BlindLookups {
    async fn user(
        &self,
        pk: authflow::model::UserId,
    ) -> Result<Option<authflow::store::User>, StoreError> {
        self.0.user(pk).await
    }
    async fn find_user(
        &self,
        _field: UserField,
        _value: &str,
        _case_insensitive: bool,
    ) -> Result<Option<authflow::store::User>, StoreError> {
        Ok(None)
    }
    async fn verify_password(
        &self,
        user: Option<authflow::model::UserId>,
        password: &authflow::secret::Password,
    ) -> Result<bool, StoreError> {
        self.0.verify_password(user, password).await
    }
    fn admin(&self) -> Option<&dyn authflow::store::UserAdmin> {
        self.0.admin()
    }
}

#[tokio::test]
async fn a_failed_account_creation_puts_the_invitation_back() {
    let s = setup().await;
    let engine = Arc::new(
        Engine::builder(
            s.stores.flows.clone(),
            s.stores.sessions.clone(),
            Arc::new(BlindLookups(s.stores.users.clone())),
        )
        .invitations(s.invitations.clone())
        .build(),
    );
    let inv = s.invite("retry", |i| i.single_use = true).await;
    let link = format!("itoken={}", inv.pk);
    s.stores
        .users
        .as_ref()
        .admin()
        .unwrap()
        .create_user(authflow::store::NewUser::new("taken"))
        .await
        .unwrap();
    let mut a = Client::new(engine.clone()).with_query(&link);
    a.get(ENROLL).await;
    // The stage's check misses the taken name; the directory refuses the account
    // after the invitation was consumed: it is put back.
    let out = a.post(ENROLL, enroll_body("taken")).await;
    assert!(!out.logged_in);
    assert_eq!(denied(&wire(&out)), "Username is already taken.");
    assert!(s.invitations.invitation(inv.pk).await.unwrap().is_some());
    // And it still enrolls someone.
    let mut b = Client::new(engine.clone()).with_query(&link);
    b.get(ENROLL).await;
    assert!(b.post(ENROLL, enroll_body("fresh")).await.logged_in);
    assert!(s.invitations.invitation(inv.pk).await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------
// Stores

async fn conformance(label: &str, store: &dyn InvitationStore) {
    let mut a = Invitation::new("alpha");
    a.single_use = true;
    a.expires = Some(4_000_000_000);
    a.fixed_data = json!({"email": "a@example.org", "n": [1, 2]})
        .as_object()
        .cloned()
        .unwrap();
    a.flow = Some(authflow::builder::flow_id("some-flow"));
    a.created_by = Some(authflow::model::UserId::new("u-1"));
    let b = Invitation::new("beta");
    store.create(a.clone()).await.unwrap();
    store.create(b.clone()).await.unwrap();
    assert_eq!(
        store.invitation(a.pk).await.unwrap().as_ref(),
        Some(&a),
        "{label}"
    );
    let names: Vec<String> = store
        .invitations()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"], "{label}");
    // Duplicates are validation errors naming the field.
    let mut dup = Invitation::new("alpha");
    let err = store.create(dup.clone()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Validation(v) if v.iter().any(|(k, _)| k == "name")),
        "{label}: {err:?}"
    );
    dup.pk = a.pk;
    dup.name = "gamma".into();
    let err = store.create(dup).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Validation(v) if v.iter().any(|(k, _)| k == "pk")),
        "{label}: {err:?}"
    );
    // Consumption: expired ones are not consumed; exactly one of concurrent calls wins.
    assert!(
        !store.consume(a.pk, 4_000_000_001).await.unwrap(),
        "{label}"
    );
    let results = futures_join(store, a.pk).await;
    assert_eq!(
        results.iter().filter(|r| **r).count(),
        1,
        "{label}: {results:?}"
    );
    assert!(store.invitation(a.pk).await.unwrap().is_none(), "{label}");
    assert!(store.delete(b.pk).await.unwrap(), "{label}");
    assert!(!store.delete(b.pk).await.unwrap(), "{label}");
    assert!(store.invitations().await.unwrap().is_empty(), "{label}");
}

/// Eight concurrent consumptions of one invitation.
async fn futures_join(store: &dyn InvitationStore, pk: Uuid) -> Vec<bool> {
    let calls = (0..8).map(|_| store.consume(pk, 0));
    let mut out = Vec::new();
    for r in join_all(calls).await {
        out.push(r.unwrap());
    }
    out
}

/// Polls every future together (no extra dependency).
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).map(Some).collect();
    let mut results: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, result) in pinned.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(|r| r.unwrap()).collect()
}

#[tokio::test]
async fn memory_store_conformance() {
    conformance("memory", &MemoryInvitations::new()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_store_conformance() {
    for db in sql::databases().await {
        let store = db.open().await;
        conformance(db.label, &store).await;
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn single_use_over_sql() {
    let db = sql::sqlite();
    let store = Arc::new(db.open().await);
    let s = setup_with(store).await;
    let inv = s.invite("sql-once", |i| i.single_use = true).await;
    let link = format!("itoken={}", inv.pk);
    let mut a = s.client(&link);
    let mut b = s.client(&link);
    a.get(ENROLL).await;
    b.get(ENROLL).await;
    assert!(a.post(ENROLL, enroll_body("sql-first")).await.logged_in);
    let v = wire(&b.post(ENROLL, enroll_body("sql-second")).await);
    assert_eq!(denied(&v), INVITATION_USED);
}

// ---------------------------------------------------------------------------------
// Admin API

#[cfg(feature = "http")]
#[path = "common/http.rs"]
mod http;

#[cfg(feature = "http")]
#[tokio::test]
async fn the_admin_api_lists_creates_and_deletes_invitations() {
    use axum::http::Method;
    use http::{Csrf, Req};

    const API: &str = "/api/v3/stages/invitation/invitations/";
    let s = http::start().await;
    let admin = s.login("akadmin", common::kit::ADMIN_PASSWORD).await;
    let flow_pk = s
        .engine
        .definition(authflow::defaults::ENROLLMENT)
        .await
        .unwrap()
        .flow
        .pk;

    // Create (authentik's body), created_by is the requesting user.
    let r = admin
        .post(
            API,
            &json!({
                "name": "welcome-ada",
                "expires": "2999-01-01T00:00:00Z",
                "fixed_data": {"email": "ada@example.org"},
                "single_use": true,
                "flow": flow_pk.to_string(),
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let created = r.json.clone();
    assert_eq!(created["name"], "welcome-ada");
    assert_eq!(created["expires"], "2999-01-01T00:00:00Z");
    assert_eq!(created["fixed_data"]["email"], "ada@example.org");
    assert_eq!(created["single_use"], true);
    assert_eq!(created["flow"], flow_pk.to_string());
    assert_eq!(created["flow_obj"]["slug"], authflow::defaults::ENROLLMENT);
    assert_eq!(created["created_by"]["username"], "akadmin");
    let pk = created["pk"].as_str().unwrap().to_owned();
    let stored = s
        .engine
        .env()
        .invitations
        .invitation(pk.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.created_by, Some(s.admin.pk.clone()));

    // A flow named by slug works too; a second one without expiry lists first
    // (authentik's `-expires` ordering, as PostgreSQL sorts NULLs).
    let r = admin
        .post(
            API,
            &json!({"name": "open-door", "flow": "default-enrollment-flow"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Field errors in authentik's shape.
    let r = admin
        .post(
            API,
            &json!({"name": "welcome-ada", "expires": "tomorrow", "fixed_data": [1], "flow": "nope", "single_use": "yes"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    for field in ["expires", "fixed_data", "flow", "single_use"] {
        assert!(r.json[field].is_array(), "{field}: {}", r.text);
    }
    let r = admin.post(API, &json!({})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json["name"][0], "This field is required.");
    let r = admin.post(API, &json!({"name": "welcome-ada"})).await;
    assert_eq!(r.status, 400, "duplicate name: {}", r.text);
    assert!(r.json["name"].is_array(), "{}", r.text);

    // List.
    let r = admin.get(API).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["pagination"]["count"], 2);
    let names: Vec<&str> = r.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["open-door", "welcome-ada"]);
    let r = admin.get(&format!("{API}?name=welcome-ada")).await;
    assert_eq!(r.json["pagination"]["count"], 1);

    // Retrieve.
    let r = admin.get(&format!("{API}{pk}/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["pk"], pk.as_str());

    // Without the CSRF header a session write is refused.
    let r = admin
        .send(Req::new(Method::DELETE, &format!("{API}{pk}/")).csrf(Csrf::Omit))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);

    // Not a superuser, not logged in: refused, nothing listed or created.
    s.create_user("plain", "plain-password-1").await;
    let plain = s.login("plain", "plain-password-1").await;
    assert_eq!(plain.get(API).await.status, 403);
    let r = plain.post(API, &json!({"name": "sneaky"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json["code"], "permission_denied");
    let anonymous = s.browser();
    let r = anonymous.get(API).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // A superuser's bearer token works.
    let token = s.tokens.create(s.admin.pk.clone());
    let r = s
        .browser()
        .send(Req::new(Method::GET, API).bearer(&token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Delete: 204, then 404; a malformed pk is 404.
    let r = admin
        .send(Req::new(Method::DELETE, &format!("{API}{pk}/")))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = admin
        .send(Req::new(Method::DELETE, &format!("{API}{pk}/")))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(admin.get(&format!("{API}not-a-uuid/")).await.status, 404);
    assert_eq!(admin.get(API).await.json["pagination"]["count"], 1);
    s.finish();
}
