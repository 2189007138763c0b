#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The public interface, as a host sees it: only `authflow::*` paths.
//!
//! Builds a flow in code — identification, a host stage ([`model::CustomStage`]), a
//! Deny stage behind a group binding, user login — guarded by a host policy
//! ([`model::CustomPolicy`]) on the flow, runs it for several users and checks what a
//! host can observe: challenges, outcomes, sessions and events. The stores are held
//! as `Arc<dyn …>` throughout, which only compiles if the traits are object-safe.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use authflow::challenge::{ChallengeBody, CustomChallenge};
use authflow::events::{EventAction, MemoryEventSink};
use authflow::model::{
    BindingSubject, BindingTarget, CustomPolicy, CustomStage, DenyStage, Flow, FlowDesignation,
    FlowStageBinding, IdentificationStage, Policy, PolicyBinding, PolicyKind, Stage, UserField,
    UserLoginStage,
};
use authflow::plan::SessionId;
use authflow::policy::{PolicyError, PolicyEvaluator, PolicyOutcome, PolicyRequest};
use authflow::stages::{Response, StageContext, StageError, StageKind, StageOutcome};
use authflow::store::{FlowStore, Group, NewUser, SessionStore, UserDirectory};
use authflow::{Engine, Error, FlowRequest, Outcome, memory};
use serde_json::{Value, json};

const SLUG: &str = "partner-login";
const TERMS: &str = "x-terms";
const BLOCKED_MESSAGE: &str = "Blocked accounts may not sign in here.";
const BANNED_IP: &str = "203.0.113.9";
const BANNED_MESSAGE: &str = "Sign-in from this network is not allowed.";

/// A host stage: asks the user to accept the terms, greeting the pending user.
struct Terms;

#[async_trait::async_trait]
impl StageKind for Terms {
    fn component(&self) -> Option<&str> {
        Some(TERMS)
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let who = ctx.pending_user().map(|p| p.username).unwrap_or_default();
        let mut fields = serde_json::Map::new();
        fields.insert("greeting".into(), format!("Hello {who}").into());
        fields.insert("terms_url".into(), "/terms".into());
        Ok(StageOutcome::Challenge(authflow::Challenge::new(
            ChallengeBody::Custom(CustomChallenge {
                component: TERMS.into(),
                fields,
            }),
        )))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        if response.get("accept").and_then(Value::as_bool) == Some(true) {
            ctx.context.insert("terms_accepted", Value::Bool(true));
            Ok(StageOutcome::Done)
        } else {
            Ok(StageOutcome::Deny("Terms not accepted.".into()))
        }
    }
}

/// A host policy: refuses one client IP, and counts its evaluations.
struct NetworkDenylist {
    calls: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl PolicyEvaluator for NetworkDenylist {
    async fn evaluate(&self, req: &mut PolicyRequest<'_>) -> Result<PolicyOutcome, PolicyError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(if req.client_ip == Some(BANNED_IP) {
            PolicyOutcome::fail(BANNED_MESSAGE)
        } else {
            PolicyOutcome::pass()
        })
    }
}

struct Host {
    flows: Arc<dyn FlowStore>,
    sessions: Arc<dyn SessionStore>,
    users: Arc<dyn UserDirectory>,
    engine: Engine,
    events: Arc<MemoryEventSink>,
    policy_calls: Arc<AtomicUsize>,
}

/// The host's setup: stores as trait objects, the flow built in code, two users
/// (`alice`, and `mallory` in a child group of the blocked group).
async fn host() -> Host {
    let flows: Arc<dyn FlowStore> = Arc::new(memory::MemoryFlowStore::new());
    let sessions: Arc<dyn SessionStore> = Arc::new(memory::MemorySessionStore::new());
    let users: Arc<dyn UserDirectory> = Arc::new(memory::MemoryUserDirectory::new());
    let events = Arc::new(MemoryEventSink::new());
    let policy_calls = Arc::new(AtomicUsize::new(0));
    let engine = Engine::builder(flows.clone(), sessions.clone(), users.clone())
        .events(events.clone())
        .register_stage("example.terms", Terms)
        .register_policy(
            "example.network_denylist",
            NetworkDenylist {
                calls: policy_calls.clone(),
            },
        )
        .build();

    let blocked = Group::new("blocked");
    let contractors = Group::new("blocked-contractors").child_of(blocked.pk);
    // Management goes through the directory's optional `UserAdmin`.
    let admin = users
        .admin()
        .expect("the memory directory manages its users");
    admin.put_group(blocked.clone()).await.unwrap();
    admin.put_group(contractors.clone()).await.unwrap();
    admin
        .create_user(NewUser::new("alice").email("alice@example.com"))
        .await
        .unwrap();
    admin
        .create_user(NewUser::new("mallory").group(contractors.pk))
        .await
        .unwrap();

    let flow =
        Flow::new(SLUG, "Partner login", FlowDesignation::Authentication).with_title("Partners");
    flows.put_flow(flow.clone()).await.unwrap();

    let denylist = Policy::new(
        "network-denylist",
        PolicyKind::Custom(CustomPolicy::new("example.network_denylist")),
    );
    flows.put_policy(denylist.clone()).await.unwrap();
    flows
        .put_policy_binding(PolicyBinding::new(
            BindingTarget::Flow(flow.pk),
            BindingSubject::Policy(denylist.pk),
            0,
        ))
        .await
        .unwrap();

    let identification = Stage::new(
        "partner-identification",
        IdentificationStage {
            user_fields: vec![UserField::Username],
            pretend_user_exists: false,
            ..IdentificationStage::default()
        },
    );
    let terms = Stage::new("partner-terms", CustomStage::new("example.terms"));
    let deny = Stage::new(
        "partner-deny-blocked",
        DenyStage {
            deny_message: BLOCKED_MESSAGE.into(),
        },
    );
    let login = Stage::new("partner-login", UserLoginStage::default());
    let mut deny_binding = None;
    for (stage, order) in [(identification, 10), (terms, 20), (deny, 30), (login, 100)] {
        let binding = FlowStageBinding::new(flow.pk, stage.pk, order);
        if order == 30 {
            deny_binding = Some(binding.pk);
        }
        flows.put_stage(stage).await.unwrap();
        flows.put_binding(binding).await.unwrap();
    }
    // The Deny stage only runs for members of `blocked` (re-evaluated at stage entry,
    // when the pending user is known).
    flows
        .put_policy_binding(PolicyBinding::new(
            BindingTarget::Stage(deny_binding.unwrap()),
            BindingSubject::Group(blocked.pk),
            0,
        ))
        .await
        .unwrap();

    Host {
        flows,
        sessions,
        users,
        engine,
        events,
        policy_calls,
    }
}

/// A browser-like client: remembers the session id between calls.
struct Client<'a> {
    engine: &'a Engine,
    req: FlowRequest,
}

impl<'a> Client<'a> {
    fn new(engine: &'a Engine) -> Self {
        Self {
            engine,
            req: FlowRequest::default(),
        }
    }

    fn from_ip(engine: &'a Engine, ip: &str) -> Self {
        Self {
            engine,
            req: FlowRequest::default().with_client_ip(ip),
        }
    }

    fn session(&self) -> SessionId {
        self.req.session_id.clone().unwrap()
    }

    async fn get(&mut self) -> Outcome {
        let out = self.engine.plan(&self.req, SLUG).await.unwrap();
        self.req.session_id = Some(out.session_id.clone());
        out
    }

    async fn post(&mut self, body: Value) -> Outcome {
        let out = self.engine.step(&self.req, SLUG, &body).await.unwrap();
        self.req.session_id = Some(out.session_id.clone());
        out
    }

    /// GET, then identify as `username`; returns the host stage's challenge.
    async fn identify(&mut self, username: &str) -> Outcome {
        let out = self.get().await;
        assert_eq!(out.challenge.component(), "ak-stage-identification");
        self.post(json!({"component": "ak-stage-identification", "uid_field": username}))
            .await
    }
}

#[tokio::test]
async fn host_stage_shows_its_own_challenge_with_flow_info() {
    let host = host().await;
    let mut client = Client::new(&host.engine);
    let out = client.identify("alice").await;
    assert_eq!(out.challenge.component(), TERMS);
    let json = out.challenge.to_json();
    assert_eq!(json["component"], TERMS);
    assert_eq!(json["greeting"], "Hello alice");
    assert_eq!(json["terms_url"], "/terms");
    assert_eq!(json["flow_info"]["title"], "Partners");
    assert!(!out.logged_in);
    assert!(out.user.is_none());
}

#[tokio::test]
async fn accepted_terms_log_the_unblocked_user_in() {
    let host = host().await;
    let mut client = Client::new(&host.engine);
    client.identify("alice").await;
    let first_session = client.session();
    let out = client
        .post(json!({"component": TERMS, "accept": true}))
        .await;

    assert_eq!(out.challenge.redirect_to(), Some("/"));
    assert!(out.logged_in && out.session_rotated);
    assert_ne!(out.session_id, first_session);
    let alice = host
        .users
        .find_user(UserField::Username, "alice", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.user, Some(alice.pk));
    let user = host.engine.session_user(&out.session_id).await.unwrap();
    assert_eq!(user.map(|u| u.username).as_deref(), Some("alice"));
    // The old id was rotated away: nothing is reachable through it.
    let old = host.sessions.load(&first_session).await.unwrap();
    assert!(old.is_none_or(|v| v.value.user.is_none()));
    assert_eq!(host.events.of(EventAction::Login).len(), 1);
    assert!(host.events.of(EventAction::FlowDenied).is_empty());
}

#[tokio::test]
async fn deny_stage_behind_group_binding_stops_members_of_child_groups() {
    let host = host().await;
    let mut client = Client::new(&host.engine);
    let out = client.identify("mallory").await;
    assert_eq!(out.challenge.component(), TERMS);
    let out = client
        .post(json!({"component": TERMS, "accept": true}))
        .await;

    assert_eq!(out.challenge.component(), "ak-stage-access-denied");
    assert_eq!(out.challenge.error_message(), Some(BLOCKED_MESSAGE));
    assert!(!out.logged_in);
    assert!(out.user.is_none());
    assert!(host.events.of(EventAction::Login).is_empty());
    let denied = host.events.of(EventAction::FlowDenied);
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].flow.as_deref(), Some(SLUG));
    assert_eq!(denied[0].context["message"], BLOCKED_MESSAGE);
}

#[tokio::test]
async fn host_stage_can_deny_and_refuses_a_foreign_component() {
    let host = host().await;
    let mut client = Client::new(&host.engine);
    client.identify("alice").await;

    // A response for another component never reaches the host stage.
    let out = client
        .post(json!({"component": "ak-stage-password", "accept": true}))
        .await;
    assert_eq!(out.challenge.component(), TERMS);
    assert!(!out.logged_in);
    let errors = &out.challenge.response_errors["non_field_errors"];
    assert!(errors[0].string.contains(TERMS), "{errors:?}");

    let out = client
        .post(json!({"component": TERMS, "accept": false}))
        .await;
    assert_eq!(out.challenge.component(), "ak-stage-access-denied");
    assert_eq!(out.challenge.error_message(), Some("Terms not accepted."));
    assert!(!out.logged_in);
}

#[tokio::test]
async fn host_policy_on_the_flow_decides_whether_it_applies() {
    let host = host().await;
    let mut banned = Client::from_ip(&host.engine, BANNED_IP);
    let out = banned.get().await;
    assert_eq!(out.challenge.component(), "ak-stage-access-denied");
    assert_eq!(out.challenge.error_message(), Some(BANNED_MESSAGE));
    assert!(host.policy_calls.load(Ordering::SeqCst) >= 1);

    let calls = host.policy_calls.load(Ordering::SeqCst);
    let mut allowed = Client::from_ip(&host.engine, "198.51.100.7");
    let out = allowed.get().await;
    assert_eq!(out.challenge.component(), "ak-stage-identification");
    assert!(host.policy_calls.load(Ordering::SeqCst) > calls);
}

#[tokio::test]
async fn unknown_flow_is_a_typed_error() {
    let host = host().await;
    let err = host
        .engine
        .plan(&FlowRequest::default(), "no-such-flow")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::FlowNotFound(ref s) if s == "no-such-flow"),
        "{err:?}"
    );
}

#[tokio::test]
async fn definitions_are_read_through_the_trait_objects() {
    let host = host().await;
    let def = host.engine.definition(SLUG).await.unwrap();
    let names: Vec<&str> = def.stages.iter().map(|s| s.stage.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "partner-identification",
            "partner-terms",
            "partner-deny-blocked",
            "partner-login"
        ]
    );
    assert_eq!(def.policies.len(), 1);
    let terms = &def.stages[1].stage;
    assert_eq!(
        terms.config.kind(host.engine.registry()).component(),
        Some(TERMS)
    );
    let listed = host.flows.flows().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].slug, SLUG);
}

/// A host stage with a side effect: it asks for its own "type WIPE" answer, but
/// declares a confirmation, so the engine first asks it as `ak-stage-consent`.
struct Wipe {
    wiped: Arc<AtomicUsize>,
    shown: Arc<AtomicUsize>,
}

const WIPE: &str = "x-wipe";
const WIPE_SLUG: &str = "wipe-devices";

#[async_trait::async_trait]
impl StageKind for Wipe {
    fn component(&self) -> Option<&str> {
        Some(WIPE)
    }

    fn confirmation(&self, _ctx: &StageContext<'_>) -> Option<String> {
        Some("Wipe all your devices?".into())
    }

    async fn challenge(&self, _ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        self.shown.fetch_add(1, Ordering::SeqCst);
        Ok(StageOutcome::Challenge(authflow::Challenge::new(
            ChallengeBody::Custom(CustomChallenge {
                component: WIPE.into(),
                fields: serde_json::Map::new(),
            }),
        )))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        if response.get("answer").and_then(Value::as_str) == Some("WIPE") {
            self.wiped.fetch_add(1, Ordering::SeqCst);
            Ok(StageOutcome::Done)
        } else {
            self.challenge(ctx).await
        }
    }
}

#[tokio::test]
async fn a_host_stage_with_side_effects_is_confirmed_once_before_it_runs() {
    let host = host().await;
    let wiped = Arc::new(AtomicUsize::new(0));
    let shown = Arc::new(AtomicUsize::new(0));
    let flow = Flow::new(WIPE_SLUG, "Wipe", FlowDesignation::StageConfiguration);
    host.flows.put_flow(flow.clone()).await.unwrap();
    // The host registers its stage kind on the engine; the catalogue names it.
    let engine = Engine::builder(
        host.flows.clone(),
        host.sessions.clone(),
        host.users.clone(),
    )
    .register_stage(
        "example.wipe",
        Wipe {
            wiped: wiped.clone(),
            shown: shown.clone(),
        },
    )
    .build();
    let stage = Stage::new("wipe", CustomStage::new("example.wipe"));
    let binding = FlowStageBinding::new(flow.pk, stage.pk, 10);
    host.flows.put_stage(stage).await.unwrap();
    host.flows.put_binding(binding).await.unwrap();

    let mut req = FlowRequest::default();
    let mut call = async |body: Option<Value>| {
        let out = match body {
            None => engine.plan(&req, WIPE_SLUG).await.unwrap(),
            Some(b) => engine.step(&req, WIPE_SLUG, &b).await.unwrap(),
        };
        req.session_id = Some(out.session_id.clone());
        out.challenge.to_json()
    };

    // The GET asks; the stage itself is not even shown.
    let ask = call(None).await;
    assert_eq!(ask["component"], "ak-stage-consent", "{ask}");
    assert_eq!(ask["header_text"], "Wipe all your devices?");
    assert_eq!(shown.load(Ordering::SeqCst), 0);
    let token = ask["token"].as_str().unwrap().to_owned();
    // The stage's own answer is no confirmation.
    let again = call(Some(json!({"component": WIPE, "answer": "WIPE"}))).await;
    assert_eq!(again["component"], "ak-stage-consent", "{again}");
    assert!(
        again["response_errors"]["non_field_errors"].is_array(),
        "{again}"
    );
    assert_eq!(wiped.load(Ordering::SeqCst), 0);
    // The token: now the stage shows its own challenge, and keeps doing so (no second
    // confirmation) until its answer comes.
    let own = call(Some(
        json!({"component": "ak-stage-consent", "token": token}),
    ))
    .await;
    assert_eq!(own["component"], WIPE, "{own}");
    assert_eq!(call(None).await["component"], WIPE);
    assert_eq!(wiped.load(Ordering::SeqCst), 0);
    let done = call(Some(json!({"component": WIPE, "answer": "WIPE"}))).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    assert_eq!(wiped.load(Ordering::SeqCst), 1);
    // A new run asks again.
    assert_eq!(call(None).await["component"], "ak-stage-consent");
}

/// A host directory builds users with `User::new` + `with_*` and equalises the cost of
/// an unknown user with `hashing::verify_dummy`, which does one hash and answers false
/// (authentik's `ModelBackend.authenticate` runs the hasher once for unknown users too).
#[test]
fn user_builder_and_dummy_verification_for_host_directories() {
    use authflow::hashing::{PasswordHashing, verify_dummy};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);
    impl PasswordHashing for Counting {
        fn hash(&self, password: &str) -> Result<String, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(format!("plain${password}"))
        }
        fn verify(&self, hash: &str, password: &str) -> bool {
            self.0.fetch_add(1, Ordering::SeqCst);
            hash == format!("plain${password}")
        }
        fn needs_rehash(&self, _hash: &str) -> bool {
            false
        }
    }

    let hasher = Counting(AtomicUsize::new(0));
    assert!(!verify_dummy(&hasher, "guess"));
    assert_eq!(
        hasher.0.load(Ordering::SeqCst),
        1,
        "one hash's worth of work"
    );

    let id = authflow::model::UserId::new_v4();
    let user = authflow::store::User::new(id.clone(), "alice")
        .with_email("alice@example.com")
        .with_name("Alice")
        .with_attribute("team", json!("blue"));
    assert_eq!(user.pk, id);
    assert_eq!(user.username, "alice");
    assert_eq!(user.email, "alice@example.com");
    assert_eq!(user.name, "Alice");
    assert!(user.is_active);
    assert_eq!(user.attributes.get("team"), Some(&json!("blue")));
    assert!(!user.with_active(false).is_active);
}

/// The host API of issue 9 in one place: opaque ids, the builder's deterministic ids,
/// the registry, mount paths, typed queries, and the engine's seams.
#[tokio::test]
async fn host_api_surface() {
    use authflow::builder;
    use authflow::model::{FlowDesignation, UserId};
    use authflow::paths::MountPath;
    use authflow::random::SeededRandom;
    use authflow::{FlowBuilder, FlowQuery, memory};

    // A host's own keys, as they are; serialised as plain strings.
    let id = UserId::from(42_i64);
    assert_eq!(id.as_str(), "42");
    assert_eq!(serde_json::to_value(&id).unwrap(), serde_json::json!("42"));
    let uuid = uuid::Uuid::from_u128(7);
    assert_eq!(UserId::from(uuid).to_uuid(), Some(uuid));

    // The same flow built twice (or on two instances) has the same ids.
    let a = FlowBuilder::new("surface", FlowDesignation::Authentication)
        .stage("surface-dummy", authflow::model::DummyStage::default());
    let b = FlowBuilder::new("surface", FlowDesignation::Authentication)
        .stage("surface-dummy", authflow::model::DummyStage::default());
    assert_eq!(a.flow_id(), b.flow_id());
    assert_eq!(a.flow_id(), builder::flow_id("surface"));
    let stores = memory::Stores::new();
    a.install(stores.flows.as_ref()).await.unwrap();

    // Registry: host kinds by name; Random: injectable.
    let engine = stores
        .engine()
        .random(std::sync::Arc::new(SeededRandom::new(1)))
        .build();
    assert!(engine.registry().stage("nope").is_none());
    assert!(engine.registry().hooks().expressions.is_none());
    let out = engine
        .plan(&authflow::FlowRequest::default(), "surface")
        .await
        .unwrap();
    assert!(!out.advanced, "a GET never advances");

    // Mount paths are validated; links follow them.
    assert!(MountPath::new("/auth").is_ok());
    for bad in ["auth", "/auth/", "/a/../b", "/a//b"] {
        assert!(MountPath::new(bad).is_err(), "{bad}");
    }
    let mount = MountPath::new("/auth").unwrap();
    assert_eq!(
        mount.paths().executor("x"),
        "/auth/api/v3/flows/executor/x/"
    );

    // Typed queries: `next` only when it is a safe relative URL.
    let q = FlowQuery::new().next("/app");
    assert_eq!(FlowQuery::parse(&q.to_string()).safe_next(), Some("/app"));
    assert_eq!(
        FlowQuery::new().next("https://evil.example/").safe_next(),
        None
    );
}
