// Shared helpers of the integration tests. Each test crate includes this file with
// `mod common;` and uses only part of it.

/// In-process harness for driving flows: stores with the default flows and the
/// bootstrap admin, an engine recording events, and a cookie-jar-like client.
#[allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
pub mod kit {
    use std::sync::Arc;

    use authflow::events::MemoryEventSink;
    use authflow::plan::{FlowState, SessionId, SessionState};
    use authflow::store::{NewUser, SessionStore, User, UserAdmin};
    use authflow::{Engine, FlowRequest, Outcome, defaults, memory};
    use serde_json::{Value, json};

    /// The bootstrap password used by the recorded authentik transcripts.
    pub const ADMIN_PASSWORD: &str = "Akadmin-Local-Pw-1";

    /// Stores, engine and event recorder.
    pub struct Kit {
        pub stores: memory::Stores,
        pub engine: Arc<Engine>,
        pub events: Arc<MemoryEventSink>,
        pub admin: User,
    }

    /// A fresh engine with the default flows and `akadmin` / [`ADMIN_PASSWORD`].
    pub async fn kit() -> Kit {
        let stores = memory::Stores::new();
        let events = Arc::new(MemoryEventSink::new());
        let engine = Arc::new(stores.engine().events(events.clone()).build());
        defaults::install(stores.flows.as_ref())
            .await
            .expect("install default flows");
        let admin = defaults::bootstrap_admin(stores.users.as_ref(), ADMIN_PASSWORD.into())
            .await
            .expect("bootstrap admin");
        Kit {
            stores,
            engine,
            events,
            admin,
        }
    }

    impl Kit {
        /// A client without a session.
        pub fn client(&self) -> Client {
            Client::new(self.engine.clone())
        }

        /// Creates an ordinary (non-superuser) user directly in the directory.
        pub async fn create_user(&self, username: &str, password: &str) -> User {
            self.stores
                .users
                .create_user(
                    NewUser::new(username)
                        .email(format!("{username}@example.invalid"))
                        .name(username)
                        .password(password),
                )
                .await
                .expect("create user")
        }

        /// Runs the default login flow to the end and returns the logged-in client.
        pub async fn login(&self, username: &str, password: &str) -> Client {
            let mut c = self.client();
            let slug = defaults::AUTHENTICATION;
            let out = c.get(slug).await;
            assert_eq!(out.challenge.component(), "ak-stage-identification");
            let out = c
                .post(
                    slug,
                    json!({"component": "ak-stage-identification", "uid_field": username}),
                )
                .await;
            assert_eq!(out.challenge.component(), "ak-stage-password");
            let out = c
                .post(
                    slug,
                    json!({"component": "ak-stage-password", "password": password}),
                )
                .await;
            assert!(
                out.logged_in,
                "login of {username} failed: {}",
                out.challenge.to_json()
            );
            c
        }

        /// The stored state of a session.
        pub async fn state(&self, id: &SessionId) -> Option<SessionState> {
            self.stores
                .sessions
                .load(id)
                .await
                .expect("load session")
                .map(|v| v.value)
        }

        /// The stored state of one flow in a session.
        pub async fn flow_state(&self, id: &SessionId, slug: &str) -> Option<FlowState> {
            self.state(id)
                .await
                .and_then(|s| s.flows.get(slug).cloned())
        }
    }

    /// Plays the browser: remembers the session id between calls.
    pub struct Client {
        pub engine: Arc<Engine>,
        pub session: Option<SessionId>,
        /// The executor's `query` parameter (holds `next`).
        pub query: String,
        /// The client IP reported to the engine.
        pub client_ip: Option<String>,
    }

    impl Client {
        pub fn new(engine: Arc<Engine>) -> Self {
            Self {
                engine,
                session: None,
                query: String::new(),
                client_ip: None,
            }
        }

        pub fn with_ip(mut self, ip: &str) -> Self {
            self.client_ip = Some(ip.to_owned());
            self
        }

        pub fn with_query(mut self, query: &str) -> Self {
            self.query = query.to_owned();
            self
        }

        /// A second "tab" or a second device sharing this session.
        pub fn same_session(&self) -> Self {
            Self {
                engine: self.engine.clone(),
                session: self.session.clone(),
                query: self.query.clone(),
                client_ip: self.client_ip.clone(),
            }
        }

        pub fn request(&self) -> FlowRequest {
            let mut req = FlowRequest::new(self.session.clone(), self.query.clone());
            req.client_ip = self.client_ip.clone();
            req
        }

        pub fn session_id(&self) -> SessionId {
            self.session.clone().expect("client has a session")
        }

        fn adopt(&mut self, out: &Outcome) {
            self.session = Some(out.session_id.clone());
        }

        pub async fn try_get(&mut self, slug: &str) -> Result<Outcome, authflow::Error> {
            let out = self.engine.plan(&self.request(), slug).await?;
            self.adopt(&out);
            Ok(out)
        }

        pub async fn try_post(
            &mut self,
            slug: &str,
            body: Value,
        ) -> Result<Outcome, authflow::Error> {
            let out = self.engine.step(&self.request(), slug, &body).await?;
            self.adopt(&out);
            Ok(out)
        }

        pub async fn try_post_raw(
            &mut self,
            slug: &str,
            body: &[u8],
        ) -> Result<Outcome, authflow::Error> {
            let out = self.engine.step_raw(&self.request(), slug, body).await?;
            self.adopt(&out);
            Ok(out)
        }

        /// GET; the engine must not fail.
        pub async fn get(&mut self, slug: &str) -> Outcome {
            match self.try_get(slug).await {
                Ok(o) => o,
                Err(e) => panic!("GET {slug} failed: {e:?}"),
            }
        }

        /// POST; the engine must not fail.
        pub async fn post(&mut self, slug: &str, body: Value) -> Outcome {
            match self.try_post(slug, body.clone()).await {
                Ok(o) => o,
                Err(e) => panic!("POST {slug} {body} failed: {e:?}"),
            }
        }

        /// GET a flow whose current stage has side effects: it must answer the
        /// `ak-stage-consent` confirmation with `question` and change nothing; then POST
        /// its token and return what the stage did.
        pub async fn confirm(&mut self, slug: &str, question: &str) -> Outcome {
            let out = self.get(slug).await;
            let v = wire(&out);
            assert_eq!(v["component"], "ak-stage-consent", "{v}");
            assert_eq!(v["header_text"], question, "{v}");
            assert!(
                !out.logged_in && !out.logged_out && !out.session_rotated,
                "{v}"
            );
            let token = v["token"]
                .as_str()
                .expect("a confirmation token")
                .to_owned();
            self.post(
                slug,
                serde_json::json!({"component": "ak-stage-consent", "token": token}),
            )
            .await
        }

        /// POST of raw bytes; the engine must not fail.
        pub async fn post_raw(&mut self, slug: &str, body: &[u8]) -> Outcome {
            match self.try_post_raw(slug, body).await {
                Ok(o) => o,
                Err(e) => panic!("raw POST {slug} failed: {e:?}"),
            }
        }
    }

    /// The challenge of an outcome as wire JSON.
    pub fn wire(out: &Outcome) -> Value {
        out.challenge.to_json()
    }

    /// `response_errors` as `{field: [message, …]}` (empty when absent).
    pub fn error_messages(v: &Value) -> std::collections::BTreeMap<String, Vec<String>> {
        v.get("response_errors")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, list)| {
                        let msgs = list
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|e| {
                                        e.get("string")
                                            .and_then(Value::as_str)
                                            .unwrap_or("<no string>")
                                            .to_owned()
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        (k.clone(), msgs)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The structure of a JSON value: every leaf replaced by its type name, arrays by
    /// the shapes of their elements, objects keep their keys.
    pub fn shape(v: &Value) -> Value {
        match v {
            Value::Null => json!("null"),
            Value::Bool(_) => json!("bool"),
            Value::Number(_) => json!("number"),
            Value::String(_) => json!("string"),
            Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
            }
        }
    }

    /// Percent-encodes a value for a query string.
    pub fn urlencode(s: &str) -> String {
        form_urlencoded_encode(s)
    }

    fn form_urlencoded_encode(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(char::from(b))
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
}

/// Helpers for the ports of authentik's own flows tests (`tests/executor.rs`,
/// `tests/planner.rs`, `tests/inspector.rs`, `tests/policy_engine.rs`): empty stores
/// (no default flows), flows built like authentik's `create_test_flow()`, host
/// policies standing in for authentik's patched/dummy/raising policies, and store
/// wrappers that count calls (authentik's `cache.set`/query counts).
#[allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
pub mod upstream {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;
    use authflow::Engine;
    use authflow::events::MemoryEventSink;
    use authflow::memory;
    use authflow::model::{
        BindingId, BindingSubject, BindingTarget, CustomPolicy, Flow, FlowDesignation,
        FlowStageBinding, GroupId, Policy, PolicyBinding, PolicyBindingId, PolicyId, PolicyKind,
        Stage, StageConfig, StageId, UserField, UserId,
    };
    use authflow::plan::{FlowPlan, SessionId, SessionState};
    use authflow::policy::{PolicyError, PolicyEvaluator, PolicyOutcome, PolicyRequest};
    use authflow::secret::Password;
    use authflow::store::{
        FlowAdmin, FlowDefinition, FlowSource, Group, NewUser, SessionStore, StoreError, User,
        UserAdmin, UserDirectory,
    };
    use serde_json::Value;

    use super::kit::Client;

    /// authentik's `generate_id()`: a random alphanumeric id.
    pub fn generate_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// A flow store that counts how often a definition is loaded (authentik's
    /// planner-cache `set` calls: a load is a cache miss).
    pub struct CountingFlowStore {
        pub inner: Arc<memory::MemoryFlowStore>,
        pub loads: AtomicUsize,
    }

    #[async_trait]
    impl FlowSource for CountingFlowStore {
        async fn flow(&self, slug: &str) -> Result<Option<FlowDefinition>, StoreError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            self.inner.flow(slug).await
        }
        async fn revision(&self, slug: &str) -> Result<Option<u64>, StoreError> {
            self.inner.revision(slug).await
        }
        async fn flows(&self) -> Result<Vec<Flow>, StoreError> {
            self.inner.flows().await
        }
        fn local_writes(&self) -> u64 {
            self.inner.local_writes()
        }
    }

    #[async_trait]
    impl FlowAdmin for CountingFlowStore {
        async fn put_flow(&self, flow: Flow) -> Result<(), StoreError> {
            self.inner.put_flow(flow).await
        }
        async fn delete_flow(&self, slug: &str) -> Result<bool, StoreError> {
            self.inner.delete_flow(slug).await
        }
        async fn put_stage(&self, stage: Stage) -> Result<(), StoreError> {
            self.inner.put_stage(stage).await
        }
        async fn delete_stage(&self, pk: StageId) -> Result<bool, StoreError> {
            self.inner.delete_stage(pk).await
        }
        async fn put_binding(&self, binding: FlowStageBinding) -> Result<(), StoreError> {
            self.inner.put_binding(binding).await
        }
        async fn delete_binding(&self, pk: BindingId) -> Result<bool, StoreError> {
            self.inner.delete_binding(pk).await
        }
        async fn put_policy(&self, policy: Policy) -> Result<(), StoreError> {
            self.inner.put_policy(policy).await
        }
        async fn delete_policy(&self, pk: PolicyId) -> Result<bool, StoreError> {
            self.inner.delete_policy(pk).await
        }
        async fn put_policy_binding(&self, binding: PolicyBinding) -> Result<(), StoreError> {
            self.inner.put_policy_binding(binding).await
        }
        async fn delete_policy_binding(&self, pk: PolicyBindingId) -> Result<bool, StoreError> {
            self.inner.delete_policy_binding(pk).await
        }
    }

    /// A [`UserDirectory`] that counts every call (authentik's database query count).
    pub struct CountingDirectory {
        pub inner: Arc<memory::MemoryUserDirectory>,
        pub calls: AtomicUsize,
    }

    impl CountingDirectory {
        fn hit(&self) {
            self.calls.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl UserDirectory for CountingDirectory {
        async fn user(&self, pk: UserId) -> Result<Option<User>, StoreError> {
            self.hit();
            self.inner.user(pk).await
        }
        async fn find_user(
            &self,
            field: UserField,
            value: &str,
            case_insensitive: bool,
        ) -> Result<Option<User>, StoreError> {
            self.hit();
            self.inner.find_user(field, value, case_insensitive).await
        }
        async fn verify_password(
            &self,
            user: Option<UserId>,
            password: &Password,
        ) -> Result<bool, StoreError> {
            self.hit();
            self.inner.verify_password(user, password).await
        }
        async fn group(&self, pk: GroupId) -> Result<Option<Group>, StoreError> {
            self.hit();
            self.inner.group(pk).await
        }
        async fn find_group(&self, name: &str) -> Result<Option<Group>, StoreError> {
            self.hit();
            self.inner.find_group(name).await
        }
        async fn groups_of(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
            self.hit();
            self.inner.groups_of(user).await
        }
        fn admin(&self) -> Option<&dyn UserAdmin> {
            Some(self)
        }
    }

    #[async_trait]
    impl UserAdmin for CountingDirectory {
        async fn set_password(&self, user: UserId, password: &Password) -> Result<(), StoreError> {
            self.hit();
            self.inner.set_password(user, password).await
        }
        async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
            self.hit();
            self.inner.create_user(user).await
        }
        async fn update_user(&self, user: &User) -> Result<(), StoreError> {
            self.hit();
            self.inner.update_user(user).await
        }
        async fn delete_user(&self, pk: UserId) -> Result<bool, StoreError> {
            self.hit();
            self.inner.delete_user(pk).await
        }
        async fn put_group(&self, group: Group) -> Result<(), StoreError> {
            self.hit();
            self.inner.put_group(group).await
        }
    }

    /// A policy with a fixed verdict and messages (authentik's tests patch
    /// `PolicyEngine.result` to `PolicyResult(False, "foo")`).
    pub struct Fixed {
        pub passing: bool,
        pub messages: Vec<String>,
    }

    #[async_trait]
    impl PolicyEvaluator for Fixed {
        async fn evaluate(
            &self,
            _request: &mut PolicyRequest<'_>,
        ) -> Result<PolicyOutcome, PolicyError> {
            Ok(PolicyOutcome::new(self.passing, self.messages.clone()))
        }
    }

    /// A dummy policy (message "dummy") whose result a test can flip, standing in for
    /// authentik's `patch("…DummyPolicy.passes", POLICY_RETURN_TRUE)` blocks.
    #[derive(Clone)]
    pub struct Toggle(pub Arc<AtomicBool>);

    impl Toggle {
        pub fn new(passing: bool) -> Self {
            Self(Arc::new(AtomicBool::new(passing)))
        }
        pub fn set(&self, passing: bool) {
            self.0.store(passing, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl PolicyEvaluator for Toggle {
        async fn evaluate(
            &self,
            _request: &mut PolicyRequest<'_>,
        ) -> Result<PolicyOutcome, PolicyError> {
            Ok(PolicyOutcome::new(
                self.0.load(Ordering::SeqCst),
                vec!["dummy".into()],
            ))
        }
    }

    /// A policy that raises, like authentik's expression policy `{{ 0/0 }}`.
    pub struct Raises(pub String);

    #[async_trait]
    impl PolicyEvaluator for Raises {
        async fn evaluate(
            &self,
            _request: &mut PolicyRequest<'_>,
        ) -> Result<PolicyOutcome, PolicyError> {
            Err(PolicyError(self.0.clone()))
        }
    }

    /// The registered name of [`Dispatch`], which every [`TestEnv`] engine registers.
    pub const DISPATCH: &str = "test.dispatch";

    fn dispatch_table() -> &'static std::sync::Mutex<Vec<Arc<dyn PolicyEvaluator>>> {
        static TABLE: std::sync::OnceLock<std::sync::Mutex<Vec<Arc<dyn PolicyEvaluator>>>> =
            std::sync::OnceLock::new();
        TABLE.get_or_init(Default::default)
    }

    /// A registered evaluator running the test evaluator its config names (`{"id": n}`),
    /// so tests can bind fresh evaluator instances to an engine already built.
    pub struct Dispatch;

    #[async_trait]
    impl PolicyEvaluator for Dispatch {
        async fn evaluate(
            &self,
            request: &mut PolicyRequest<'_>,
        ) -> Result<PolicyOutcome, PolicyError> {
            let id = request.config["id"].as_u64().unwrap_or(u64::MAX);
            let evaluator = dispatch_table()
                .lock()
                .unwrap()
                .get(usize::try_from(id).unwrap_or(usize::MAX))
                .cloned()
                .ok_or_else(|| PolicyError(format!("no test evaluator {id}")))?;
            evaluator.evaluate(request).await
        }
    }

    /// Wraps a host policy implementation as a [`PolicyKind`]: a custom policy of
    /// [`DISPATCH`] whose config points at it (engines from [`TestEnv`] register it).
    pub fn custom(evaluator: impl PolicyEvaluator + 'static) -> PolicyKind {
        let mut table = dispatch_table().lock().unwrap();
        table.push(Arc::new(evaluator));
        let id = table.len() - 1;
        PolicyKind::Custom(CustomPolicy::new(DISPATCH).with_config(serde_json::json!({ "id": id })))
    }

    /// Empty in-memory stores behind counting wrappers, an engine recording events.
    pub struct TestEnv {
        pub stores: memory::Stores,
        pub flows: Arc<CountingFlowStore>,
        pub users: Arc<CountingDirectory>,
        pub engine: Arc<Engine>,
        pub events: Arc<MemoryEventSink>,
    }

    impl Default for TestEnv {
        fn default() -> Self {
            Self::new()
        }
    }

    impl TestEnv {
        pub fn new() -> Self {
            let stores = memory::Stores::new();
            let flows = Arc::new(CountingFlowStore {
                inner: stores.flows.clone(),
                loads: AtomicUsize::new(0),
            });
            let users = Arc::new(CountingDirectory {
                inner: stores.users.clone(),
                calls: AtomicUsize::new(0),
            });
            let events = Arc::new(MemoryEventSink::new());
            let engine = Arc::new(
                Engine::builder(flows.clone(), stores.sessions.clone(), users.clone())
                    .reputation(stores.reputation.clone())
                    .events(events.clone())
                    .register_policy(DISPATCH, Dispatch)
                    .build(),
            );
            Self {
                stores,
                flows,
                users,
                engine,
                events,
            }
        }

        /// How often a flow definition was loaded from the store.
        pub fn flow_loads(&self) -> usize {
            self.flows.loads.load(Ordering::SeqCst)
        }

        /// How many calls reached the user directory.
        pub fn directory_calls(&self) -> usize {
            self.users.calls.load(Ordering::SeqCst)
        }

        /// authentik's `create_test_flow(designation)`: an empty flow with a random slug.
        pub async fn create_test_flow(&self, designation: FlowDesignation) -> Flow {
            let id = generate_id();
            let flow = Flow::new(format!("flow-{id}"), format!("flow-{id}"), designation);
            self.save_flow(&flow).await;
            flow
        }

        /// Creates or updates a flow.
        pub async fn save_flow(&self, flow: &Flow) {
            self.flows.put_flow(flow.clone()).await.expect("put flow");
        }

        /// Creates a stage with a random name.
        pub async fn stage(&self, config: impl Into<StageConfig>) -> Stage {
            self.named_stage(&generate_id(), config).await
        }

        /// Creates a stage with a name.
        pub async fn named_stage(&self, name: &str, config: impl Into<StageConfig>) -> Stage {
            let stage = Stage::new(name, config);
            self.flows
                .put_stage(stage.clone())
                .await
                .expect("put stage");
            stage
        }

        /// Binds a stage with authentik's binding defaults, adjusted by `adjust`.
        pub async fn bind_with(
            &self,
            flow: &Flow,
            stage: &Stage,
            order: i32,
            adjust: impl FnOnce(&mut FlowStageBinding),
        ) -> FlowStageBinding {
            let mut binding = FlowStageBinding::new(flow.pk, stage.pk, order);
            adjust(&mut binding);
            self.flows
                .put_binding(binding.clone())
                .await
                .expect("put binding");
            binding
        }

        /// Binds a stage with authentik's binding defaults.
        pub async fn bind(&self, flow: &Flow, stage: &Stage, order: i32) -> FlowStageBinding {
            self.bind_with(flow, stage, order, |_| {}).await
        }

        /// Creates a policy with a random name.
        pub async fn policy(&self, kind: PolicyKind) -> Policy {
            let policy = Policy::new(generate_id(), kind);
            self.flows
                .put_policy(policy.clone())
                .await
                .expect("put policy");
            policy
        }

        /// Saves a policy binding as given.
        pub async fn save_policy_binding(&self, binding: PolicyBinding) -> PolicyBinding {
            self.flows
                .put_policy_binding(binding.clone())
                .await
                .expect("put policy binding");
            binding
        }

        /// Binds a policy, group or user to a flow or a stage binding.
        pub async fn bind_policy(
            &self,
            target: BindingTarget,
            subject: BindingSubject,
            order: i32,
        ) -> PolicyBinding {
            self.save_policy_binding(PolicyBinding::new(target, subject, order))
                .await
        }

        /// A user without a usable password.
        pub async fn create_test_user(&self, username: &str) -> User {
            self.stores
                .users
                .create_user(NewUser::new(username).email(format!("{username}@example.invalid")))
                .await
                .expect("create user")
        }

        /// A user in the given groups.
        pub async fn create_user_in(&self, username: &str, groups: &[GroupId]) -> User {
            let mut new = NewUser::new(username).email(format!("{username}@example.invalid"));
            for g in groups {
                new = new.group(*g);
            }
            self.stores
                .users
                .create_user(new)
                .await
                .expect("create user")
        }

        /// A group (optionally a child of `parent`).
        pub async fn group(&self, name: &str, parent: Option<GroupId>) -> Group {
            let mut group = Group::new(name);
            group.parent = parent;
            self.stores
                .users
                .put_group(group.clone())
                .await
                .expect("put group");
            group
        }

        /// authentik's `create_test_admin_user()`: a member of a superuser group.
        pub async fn create_test_admin_user(&self, username: &str) -> User {
            let group = Group::new(format!("admins-{}", generate_id())).superuser();
            self.stores
                .users
                .put_group(group.clone())
                .await
                .expect("put group");
            self.create_user_in(username, &[group.pk]).await
        }

        /// A session in which `user` is logged in (Django's `client.force_login`).
        pub async fn login_session(&self, user: &User) -> SessionId {
            let id = SessionId::generate();
            let state = SessionState {
                user: Some(user.pk.clone()),
                ..SessionState::default()
            };
            self.stores
                .sessions
                .save(&id, &state, None)
                .await
                .expect("save session");
            id
        }

        /// A client without a session.
        pub fn client(&self) -> Client {
            Client::new(self.engine.clone())
        }

        /// A client whose session is logged in as `user`.
        pub async fn client_as(&self, user: &User) -> Client {
            let mut c = self.client();
            c.session = Some(self.login_session(user).await);
            c
        }

        /// The stored session state.
        pub async fn session(&self, id: &SessionId) -> Option<SessionState> {
            self.stores
                .sessions
                .load(id)
                .await
                .expect("load session")
                .map(|v| v.value)
        }

        /// The plan of `slug` stored in a session (authentik's `session[SESSION_KEY_PLAN]`).
        /// The session's plan for `slug`. A new anonymous session that holds only
        /// the plan planning gives for the request is not stored; for such a session
        /// (none stored under `id`) this is that plan.
        pub async fn stored_plan(&self, id: &SessionId, slug: &str) -> Option<FlowPlan> {
            match self.session(id).await {
                Some(s) => s.flows.get(slug).and_then(|f| f.plan.clone()),
                None => {
                    let req = authflow::FlowRequest {
                        session_id: Some(id.clone()),
                        ..authflow::FlowRequest::default()
                    };
                    self.engine
                        .plan_only(&req, slug, authflow::plan::PlanContext::new())
                        .await
                        .ok()
                }
            }
        }

        /// Puts a plan for `slug` into a session (creating the session if needed).
        pub async fn store_plan(&self, id: &SessionId, slug: &str, plan: FlowPlan) {
            let loaded = self.stores.sessions.load(id).await.expect("load session");
            let (mut state, version) = match loaded {
                Some(v) => (v.value, Some(v.version)),
                None => (SessionState::default(), None),
            };
            state.flow_mut(slug).plan = Some(plan);
            self.stores
                .sessions
                .save(id, &state, version)
                .await
                .expect("save session");
        }
    }

    /// authentik's `FlowTestCase.assertStageResponse`: a challenge (never an error);
    /// with `flow`, `flow_info` is present with the plain cancel URL and a title; every
    /// key of `expected` has exactly that value.
    pub fn assert_stage_response(challenge: &Value, flow: Option<&Flow>, expected: Value) {
        assert!(
            challenge.get("component").and_then(Value::as_str).is_some(),
            "no component in {challenge}"
        );
        if flow.is_some() {
            let info = challenge
                .get("flow_info")
                .unwrap_or_else(|| panic!("no flow_info in {challenge}"));
            assert_eq!(info["cancel_url"], "/flows/-/cancel/", "{challenge}");
            assert!(info["title"].is_string(), "{challenge}");
        }
        if let Value::Object(expected) = expected {
            for (key, want) in expected {
                assert_eq!(challenge.get(&key), Some(&want), "`{key}` of {challenge}");
            }
        }
    }

    /// authentik's `FlowTestCase.assertStageRedirects`.
    pub fn assert_stage_redirects(challenge: &Value, to: &str) {
        assert_stage_response(
            challenge,
            None,
            serde_json::json!({"component": "xak-flow-redirect", "to": to}),
        );
    }
}
