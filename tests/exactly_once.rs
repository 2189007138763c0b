#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Side effects happen exactly once per accepted response, whatever the session
//! store's compare-and-swap does: stages return effects, and the engine applies them
//! once, after the session's save succeeded.
//!
//! [`Flaky`] wraps the memory session store and, on a chosen save, either answers
//! `Conflict` without writing (as a store does when another request wrote first) or
//! really lets a concurrent writer win (it re-saves the stored state first, so the
//! save that follows is stale). The engine then retries the step on fresh state.

use std::sync::Arc;
use std::sync::Mutex;

use async_trait::async_trait;
use authflow::events::{EventAction, MemoryEventSink};
use authflow::memory::{self, MemorySessionStore};
use authflow::model::{UserField, UserId};
use authflow::plan::{SessionId, SessionState};
use authflow::store::{
    NewUser, ReputationStore, SessionStore, StoreError, User, UserAdmin, UserDirectory, Versioned,
};
use authflow::throttle::ThrottleConfig;
use authflow::{Engine, FlowRequest, Outcome, defaults};
use serde_json::{Value, json};
use tokio::sync::Barrier;

const IP: &str = "203.0.113.7";

/// What [`Flaky`] does to the next save.
enum Fault {
    /// Answer `Conflict` and write nothing.
    Conflict,
    /// Let a concurrent writer win: store the current state again (new version) first,
    /// then forward the (now stale) save.
    ConcurrentWriter,
    /// Create this user in the directory first (another enrollment took the name
    /// between the stage's check and the commit), then forward the save.
    TakeUsername(String),
}

/// A session store that injects faults on chosen saves.
struct Flaky {
    inner: Arc<MemorySessionStore>,
    users: Arc<memory::MemoryUserDirectory>,
    faults: Mutex<Vec<Fault>>,
    /// While set, every save first waits here (two concurrent requests both run their
    /// stages before either saves).
    barrier: Mutex<Option<(Arc<Barrier>, usize)>>,
}

impl Flaky {
    fn arm(&self, fault: Fault) {
        self.faults.lock().unwrap().push(fault);
    }

    fn hold_next_saves(&self, n: usize) {
        *self.barrier.lock().unwrap() = Some((Arc::new(Barrier::new(n)), n));
    }
}

#[async_trait]
impl SessionStore for Flaky {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned<SessionState>>, StoreError> {
        self.inner.load(id).await
    }

    async fn save(
        &self,
        id: &SessionId,
        state: &SessionState,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let wait = {
            let mut held = self.barrier.lock().unwrap();
            match held.as_mut() {
                Some((barrier, left)) => {
                    let b = barrier.clone();
                    *left -= 1;
                    if *left == 0 {
                        *held = None;
                    }
                    Some(b)
                }
                None => None,
            }
        };
        if let Some(b) = wait {
            b.wait().await;
        }
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            (!faults.is_empty()).then(|| faults.remove(0))
        };
        match fault {
            None => {}
            Some(Fault::Conflict) => return Err(StoreError::Conflict),
            Some(Fault::ConcurrentWriter) => {
                if let Some(current) = self.inner.load(id).await? {
                    self.inner
                        .save(id, &current.value, Some(current.version))
                        .await?;
                }
            }
            Some(Fault::TakeUsername(name)) => {
                self.users
                    .create_user(NewUser::new(name).password("Someone-Else-Pw-1"))
                    .await
                    .expect("the other enrollment");
            }
        }
        self.inner.save(id, state, expected).await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.inner.delete(id).await
    }

    async fn delete_user_sessions(
        &self,
        user: UserId,
        keep: &SessionId,
    ) -> Result<usize, StoreError> {
        self.inner.delete_user_sessions(user, keep).await
    }
}

struct Harness {
    stores: memory::Stores,
    sessions: Arc<Flaky>,
    engine: Arc<Engine>,
    events: Arc<MemoryEventSink>,
}

async fn harness(throttle: ThrottleConfig) -> Harness {
    let stores = memory::Stores::new();
    let sessions = Arc::new(Flaky {
        inner: stores.sessions.clone(),
        users: stores.users.clone(),
        faults: Mutex::new(Vec::new()),
        barrier: Mutex::new(None),
    });
    let events = Arc::new(MemoryEventSink::new());
    let engine = Engine::builder(stores.flows.clone(), sessions.clone(), stores.users.clone())
        .reputation(stores.reputation.clone())
        .events(events.clone())
        .throttle(throttle)
        .build();
    defaults::install(stores.flows.as_ref()).await.unwrap();
    Harness {
        stores,
        sessions,
        engine: Arc::new(engine),
        events,
    }
}

impl Harness {
    fn count(&self, action: EventAction) -> usize {
        self.events.of(action).len()
    }

    async fn users_named(&self, name: &str) -> Option<User> {
        self.stores
            .users
            .find_user(UserField::Username, name, true)
            .await
            .unwrap()
    }
}

struct Client {
    engine: Arc<Engine>,
    session: Option<SessionId>,
}

impl Client {
    fn new(h: &Harness) -> Self {
        Self {
            engine: h.engine.clone(),
            session: None,
        }
    }

    fn request(&self) -> FlowRequest {
        let mut r = FlowRequest::new(self.session.clone(), String::new());
        r.client_ip = Some(IP.into());
        r
    }

    async fn get(&mut self, slug: &str) -> Outcome {
        let out = self.engine.plan(&self.request(), slug).await.unwrap();
        self.session = Some(out.session_id.clone());
        out
    }

    async fn post(&mut self, slug: &str, body: Value) -> Outcome {
        let out = self
            .engine
            .step(&self.request(), slug, &body)
            .await
            .unwrap();
        self.session = Some(out.session_id.clone());
        out
    }
}

fn component(out: &Outcome) -> String {
    out.challenge.component().to_owned()
}

fn first_prompt(username: &str) -> Value {
    json!({
        "component": "ak-stage-prompt",
        "username": username,
        "password": "Enrolled-Pw-12345",
        "password_repeat": "Enrolled-Pw-12345",
    })
}

fn second_prompt() -> Value {
    json!({"component": "ak-stage-prompt", "name": "New User", "email": "new@example.invalid"})
}

/// Runs the enrollment flow up to its last prompt.
async fn to_last_prompt(h: &Harness, username: &str) -> Client {
    let mut c = Client::new(h);
    assert_eq!(
        component(&c.get(defaults::ENROLLMENT).await),
        "ak-stage-prompt"
    );
    let out = c.post(defaults::ENROLLMENT, first_prompt(username)).await;
    assert_eq!(
        component(&out),
        "ak-stage-prompt",
        "{}",
        out.challenge.to_json()
    );
    c
}

async fn login(h: &Harness, username: &str, password: &str) -> Client {
    let mut c = Client::new(h);
    c.get(defaults::AUTHENTICATION).await;
    c.post(
        defaults::AUTHENTICATION,
        json!({"component": "ak-stage-identification", "uid_field": username}),
    )
    .await;
    let out = c
        .post(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-password", "password": password}),
        )
        .await;
    assert!(out.logged_in, "{}", out.challenge.to_json());
    c
}

/// prompt → user write → user login in one POST; the session save conflicts after the
/// stages ran. The retry must not create the user again (today's bug: "Username is
/// already taken."): exactly one user, logged in.
#[tokio::test]
async fn enrollment_with_a_conflict_creates_one_user_and_logs_in() {
    let h = harness(ThrottleConfig::default()).await;
    let mut c = to_last_prompt(&h, "newbie").await;
    h.sessions.arm(Fault::Conflict);
    let out = c.post(defaults::ENROLLMENT, second_prompt()).await;
    assert!(out.logged_in, "{}", out.challenge.to_json());
    assert_eq!(component(&out), "xak-flow-redirect");
    let user = h.users_named("newbie").await.expect("the user was created");
    assert_eq!(
        out.user,
        Some(user.pk.clone()),
        "logged in as the created user"
    );
    assert_eq!(user.email, "new@example.invalid");
    assert_eq!(h.stores.users.len(), 1, "exactly one user");
    assert!(
        h.stores
            .users
            .verify_password(Some(user.pk.clone()), &"Enrolled-Pw-12345".into())
            .await
            .unwrap()
    );
    assert_eq!(h.count(EventAction::UserWrite), 1);
    assert_eq!(h.count(EventAction::Login), 1);
    assert_eq!(h.count(EventAction::FlowDenied), 0);
    let session = h
        .engine
        .session_user(&out.session_id)
        .await
        .unwrap()
        .expect("the session is logged in");
    assert_eq!(session.pk, user.pk);
}

/// The same with a concurrent writer that really wins the compare-and-swap.
#[tokio::test]
async fn enrollment_losing_to_a_concurrent_writer_still_creates_one_user() {
    let h = harness(ThrottleConfig::default()).await;
    let mut c = to_last_prompt(&h, "newbie").await;
    h.sessions.arm(Fault::ConcurrentWriter);
    let out = c.post(defaults::ENROLLMENT, second_prompt()).await;
    assert!(out.logged_in, "{}", out.challenge.to_json());
    assert_eq!(h.stores.users.len(), 1);
    assert_eq!(h.count(EventAction::UserWrite), 1);
    assert_eq!(h.count(EventAction::Login), 1);
}

/// user_delete with a conflict on the save: the account is deleted once, and the retry
/// (which no longer finds the user) must not deny: the flow completes and logs out.
#[tokio::test]
async fn unenrollment_with_a_conflict_deletes_once_and_completes() {
    let h = harness(ThrottleConfig::default()).await;
    h.stores
        .users
        .create_user(NewUser::new("leaver").password("Leaver-Pw-12345"))
        .await
        .unwrap();
    let mut c = login(&h, "leaver", "Leaver-Pw-12345").await;
    let out = c.get(defaults::UNENROLLMENT).await;
    let v = out.challenge.to_json();
    assert_eq!(v["component"], "ak-stage-consent", "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    h.sessions.arm(Fault::Conflict);
    let out = c
        .post(
            defaults::UNENROLLMENT,
            json!({"component": "ak-stage-consent", "token": token}),
        )
        .await;
    assert_eq!(
        component(&out),
        "xak-flow-redirect",
        "{}",
        out.challenge.to_json()
    );
    assert!(out.logged_out);
    assert_eq!(out.user, None);
    assert!(h.users_named("leaver").await.is_none(), "deleted");
    assert_eq!(h.count(EventAction::UserDelete), 1);
    assert_eq!(h.count(EventAction::FlowDenied), 0);
}

/// A wrong password whose save loses to a concurrent writer: reputation goes down by
/// one and the throttle counts one failure, not two.
#[tokio::test]
async fn failed_password_with_a_conflict_counts_once() {
    let h = harness(ThrottleConfig {
        max_failures_per_ip: 2,
        ..ThrottleConfig::default()
    })
    .await;
    h.stores
        .users
        .create_user(NewUser::new("target").password("Target-Pw-12345"))
        .await
        .unwrap();
    let mut c = Client::new(&h);
    c.get(defaults::AUTHENTICATION).await;
    let out = c
        .post(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-identification", "uid_field": "target"}),
        )
        .await;
    assert_eq!(component(&out), "ak-stage-password");
    let score = |h: &Harness| {
        let r = h.stores.reputation.clone();
        async move { r.score(None, Some("target")).await.unwrap() }
    };
    let before = score(&h).await;

    h.sessions.arm(Fault::ConcurrentWriter);
    let guess = json!({"component": "ak-stage-password", "password": "wrong-1"});
    let out = c.post(defaults::AUTHENTICATION, guess).await;
    let v = out.challenge.to_json();
    assert_eq!(
        v["response_errors"]["password"][0]["string"], "Invalid password",
        "{v}"
    );
    assert_eq!(score(&h).await, before - 1, "one failure, one point");
    assert_eq!(h.count(EventAction::LoginFailed), 1);

    // The throttle counted one failure: the second guess (of two allowed) is still
    // evaluated, the third is refused.
    let out = c
        .post(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-password", "password": "wrong-2"}),
        )
        .await;
    let v = out.challenge.to_json();
    assert_eq!(
        v["response_errors"]["password"][0]["string"], "Invalid password",
        "{v}"
    );
    let out = c
        .post(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-password", "password": "Target-Pw-12345"}),
        )
        .await;
    let v = out.challenge.to_json();
    assert!(
        v["response_errors"]["password"][0]["string"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Too many failed attempts"),
        "{v}"
    );
    assert!(!out.logged_in);
}

/// Two concurrent submits of the same last prompt in one session (a double click,
/// two tabs): both run their stages before either saves. One wins and enrolls; the
/// other retries on the advanced state. One user, one login, no denial.
#[tokio::test]
async fn concurrent_submits_advance_once() {
    let h = harness(ThrottleConfig::default()).await;
    let c = to_last_prompt(&h, "twice").await;
    let mut a = Client {
        engine: h.engine.clone(),
        session: c.session.clone(),
    };
    let mut b = Client {
        engine: h.engine.clone(),
        session: c.session.clone(),
    };
    h.sessions.hold_next_saves(2);
    let (x, y) = tokio::join!(
        a.post(defaults::ENROLLMENT, second_prompt()),
        b.post(defaults::ENROLLMENT, second_prompt()),
    );
    assert_eq!(
        usize::from(x.logged_in) + usize::from(y.logged_in),
        1,
        "{} / {}",
        x.challenge.to_json(),
        y.challenge.to_json()
    );
    assert_eq!(h.stores.users.len(), 1);
    assert_eq!(h.count(EventAction::UserWrite), 1);
    assert_eq!(h.count(EventAction::Login), 1);
    assert_eq!(h.count(EventAction::FlowDenied), 0);
    let advanced = [&x, &y].iter().filter(|o| o.logged_in).count();
    assert_eq!(advanced, 1);
}

/// Applying an effect can still fail after the commit: here another enrollment takes
/// the username between the stage's check and the save. The client gets a clear
/// denial, and the session is not logged in as a user that does not exist.
#[tokio::test]
async fn username_taken_after_the_check_denies_without_login() {
    let h = harness(ThrottleConfig::default()).await;
    let mut c = to_last_prompt(&h, "contested").await;
    h.sessions.arm(Fault::TakeUsername("contested".into()));
    let out = c.post(defaults::ENROLLMENT, second_prompt()).await;
    let v = out.challenge.to_json();
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    assert_eq!(v["error_message"], "Username is already taken.", "{v}");
    assert!(!out.logged_in);
    assert_eq!(out.user, None);
    assert_eq!(h.stores.users.len(), 1, "only the other enrollment's user");
    assert!(
        h.engine
            .session_user(&out.session_id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(h.count(EventAction::Login), 0);
    assert_eq!(h.count(EventAction::UserWrite), 0);
}

/// Two concurrent submits of the right password in one session: one logs in (one
/// `login` event, one reputation point); the other retries on the rotated session and
/// logs nothing in.
#[tokio::test]
async fn concurrent_logins_log_in_once() {
    let h = harness(ThrottleConfig::default()).await;
    h.stores
        .users
        .create_user(NewUser::new("double").password("Double-Pw-12345"))
        .await
        .unwrap();
    let mut c = Client::new(&h);
    c.get(defaults::AUTHENTICATION).await;
    c.post(
        defaults::AUTHENTICATION,
        json!({"component": "ak-stage-identification", "uid_field": "double"}),
    )
    .await;
    let before = h
        .stores
        .reputation
        .score(None, Some("double"))
        .await
        .unwrap();
    let mut a = Client {
        engine: h.engine.clone(),
        session: c.session.clone(),
    };
    let mut b = Client {
        engine: h.engine.clone(),
        session: c.session.clone(),
    };
    let answer = json!({"component": "ak-stage-password", "password": "Double-Pw-12345"});
    h.sessions.hold_next_saves(2);
    let (x, y) = tokio::join!(
        a.post(defaults::AUTHENTICATION, answer.clone()),
        b.post(defaults::AUTHENTICATION, answer.clone()),
    );
    assert_eq!(
        usize::from(x.logged_in) + usize::from(y.logged_in),
        1,
        "{} / {}",
        x.challenge.to_json(),
        y.challenge.to_json()
    );
    assert_eq!(h.count(EventAction::Login), 1);
    assert_eq!(
        h.stores
            .reputation
            .score(None, Some("double"))
            .await
            .unwrap(),
        before + 1
    );
}
