//! The engine: the two calls hosts make ([`Engine::plan`] for GET, [`Engine::step`]
//! for POST), the flow-definition cache, and session handling with compare-and-swap.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

mod definitions;
mod email;
mod stage_services;
mod step;
mod transact;

use async_trait::async_trait;

use crate::Error;
use crate::challenge::{Challenge, ChallengeBody, FlowErrorChallenge};
use crate::clock::{Clock, SystemClock, Timer};
use crate::env::Env;
use crate::events::{EventSink, NoopEventSink};
use crate::input::Input;
use crate::inspector::{self, FlowInspection, InspectError};
use crate::model::UserId;
use crate::paths::MountPath;
use crate::plan::{FlowPlan, PlanContext, SessionId, SessionState};
use crate::planner::{self, PlanError, PlanInput};
use crate::policy::ExpressionEvaluator;
use crate::random::{OsRandom, Random};
use crate::request::FlowRequest;
use crate::session_ids::SessionIds;
use crate::session_touch;
use crate::store::{
    FlowDefinition, FlowStore, ReputationStore, SessionStore, StoreError, ThrottleStore, User,
    UserDirectory,
};
use crate::throttle::ThrottleConfig;

/// How often a step is retried on fresh state after a concurrent write (compare-and-swap conflict).
pub const DEFAULT_CONFLICT_RETRIES: u32 = 5;

/// What a call returns: the challenge, and what the host must mirror in its own
/// session handling (cookie).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The challenge to send to the client.
    pub challenge: Challenge,
    /// The session id to use from now on (set the cookie to it).
    pub session_id: SessionId,
    /// The id changed (new session, login or logout): the host must re-issue its cookie
    /// and forget the old id.
    pub session_rotated: bool,
    /// The logged-in user after this call.
    pub user: Option<UserId>,
    /// This call logged a user in.
    pub logged_in: bool,
    /// This call logged the user out.
    pub logged_out: bool,
    /// Seconds the login lasts from now (`None`: no login, or one that lasts as long as
    /// the browser session). Hosts give their session cookie this lifetime.
    pub login_expires_in: Option<u64>,
    /// A stage accepted this POST's response and the challenge is the next stage's
    /// (not an error, a denial or the flow's final redirect): what authentik answers
    /// with a `302` to the executor (`HttpConfig::redirect_on_advance`). Always false
    /// for a GET.
    pub advanced: bool,
}

/// The flow engine. Cheap to share: wrap it in an `Arc`.
///
/// ```
/// # tokio_test();
/// # fn tokio_test() {}
/// use authflow::{Engine, FlowRequest, memory};
/// # async fn demo() -> Result<(), authflow::Error> {
/// let stores = memory::Stores::new();
/// let engine = Engine::builder(stores.flows.clone(), stores.sessions.clone(), stores.users.clone()).build();
/// authflow::defaults::install(engine.env().flows.as_ref()).await?;
/// let first = engine.plan(&FlowRequest::default(), "default-authentication-flow").await?;
/// assert_eq!(first.challenge.component(), "ak-stage-identification");
/// # Ok(()) }
/// ```
pub struct Engine {
    pub(crate) env: Env,
    pub(crate) registry: crate::registry::Registry,
    ids: SessionIds,
    cache: definitions::Definitions,
    conflict_retries: u32,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("env", &self.env)
            .field("registry", &self.registry)
            .field("cached_flows", &self.cached_flows())
            .finish()
    }
}

/// Builds an [`Engine`].
pub struct EngineBuilder {
    env: Env,
    registry: crate::registry::Registry,
    session_key: Option<Vec<u8>>,
    conflict_retries: u32,
    revision_check_interval: Option<Duration>,
}

impl EngineBuilder {
    /// Sets the app passwords the password stage's token backend checks (default: an
    /// empty [`MemoryAppPasswords`](crate::memory::MemoryAppPasswords); a
    /// SQL store, `authflow::sql::SqlStore` with feature `sqlite` or `postgres`,
    /// implements [`AppPasswords`](crate::store::AppPasswords) too).
    pub fn app_passwords(mut self, store: Arc<dyn crate::store::AppPasswords>) -> Self {
        self.env.app_passwords = store;
        self
    }

    /// Registers the check behind a password-stage backend authflow has no source for:
    /// `model::LDAP_BACKEND` or `model::KERBEROS_BACKEND` (replacing an earlier one).
    /// Stages listing the backend try it in their order; without a hook it never
    /// matches, as in authentik without such a source.
    pub fn password_backend(
        mut self,
        name: &'static str,
        backend: impl crate::store::PasswordBackend + 'static,
    ) -> Self {
        self.env.password_backends.retain(|(n, _)| *n != name);
        self.env.password_backends.push((name, Arc::new(backend)));
        self
    }

    /// Sets the reputation store (default: in memory).
    pub fn reputation(mut self, store: Arc<dyn ReputationStore>) -> Self {
        self.env.reputation = store;
        self
    }

    /// Sets the store of the login-throttle counters (default: in memory; use a shared
    /// one, e.g. `authflow::redis::RedisThrottleStore` (feature `redis`), when several instances serve the
    /// same users, or an attacker can spread guesses over instances).
    pub fn throttle_store(mut self, store: Arc<dyn ThrottleStore>) -> Self {
        self.env.throttle = store;
        self
    }

    /// Sets the login-throttle thresholds and window (default:
    /// [`ThrottleConfig::default`]: 10 failures per IP and identifier, 100 per identifier
    /// from unfamiliar IPs, in 15 minutes; [`ThrottleConfig::disabled`] turns it off).
    /// See [`crate::throttle`].
    pub fn throttle(mut self, config: ThrottleConfig) -> Self {
        self.env.throttle_config = config;
        self
    }

    /// Sets the event sink (default: none).
    pub fn events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.env.events = sink;
        self
    }

    /// Sets the clock (default: system time).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.env.clock = clock;
        self
    }

    /// Sets the source of randomness for request and session ids, new users' ids and
    /// confirmation tokens (default: [`OsRandom`]). It must be cryptographically
    /// secure outside tests.
    pub fn random(mut self, random: Arc<dyn Random>) -> Self {
        self.env.random = random;
        self
    }

    /// Sets the hook that answers Have I Been Pwned range queries for password policies
    /// with `check_have_i_been_pwned`.
    pub fn pwned_passwords(mut self, hook: Arc<dyn crate::policy::PwnedPasswords>) -> Self {
        self.registry.hooks_mut().pwned = Some(hook);
        self
    }

    /// Sets the expression evaluator for expression policies.
    pub fn expressions(mut self, evaluator: Arc<dyn ExpressionEvaluator>) -> Self {
        self.registry.hooks_mut().expressions = Some(evaluator);
        self
    }

    /// Sets the timer that enforces policy timeouts.
    pub fn timer(mut self, timer: Arc<dyn Timer>) -> Self {
        self.env.timer = Some(timer);
        self
    }

    /// Runs password hashing (verify, hash, rehash) on `pool` instead of inline: the
    /// user directory is wrapped in a [`PooledUsers`](crate::blocking::PooledUsers).
    /// Async hosts should set a bounded pool such as
    /// [`http::HashPool`](crate::http::HashPool) (default: [`Inline`](crate::blocking::Inline)).
    pub fn blocking(mut self, pool: Arc<dyn crate::blocking::Blocking>) -> Self {
        self.env.users = Arc::new(crate::blocking::PooledUsers::new(
            self.env.users.clone(),
            pool,
        ));
        self
    }

    /// Sets the key session ids are minted with (default: random per engine). Every
    /// instance sharing a session store should use the same key, so a session one
    /// instance has not stored yet continues on another with the same id.
    pub fn session_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.session_key = Some(key.into());
        self
    }

    /// Registers the stage kind that [`CustomStage`](crate::model::CustomStage)s named
    /// `name` run (replacing one of that name). See [`crate::registry`].
    pub fn register_stage(
        mut self,
        name: impl Into<String>,
        kind: impl crate::stages::StageKind + 'static,
    ) -> Self {
        self.registry.register_stage(name, kind);
        self
    }

    /// Registers the evaluator that [`CustomPolicy`](crate::model::CustomPolicy)s named
    /// `name` run (replacing one of that name). See [`crate::registry`].
    pub fn register_policy(
        mut self,
        name: impl Into<String>,
        evaluator: impl crate::policy::PolicyEvaluator + 'static,
    ) -> Self {
        self.registry.register_policy(name, evaluator);
        self
    }

    /// Sets how often a step is retried after a concurrent write (default 5).
    pub fn conflict_retries(mut self, retries: u32) -> Self {
        self.conflict_retries = retries;
        self
    }

    /// Lets the definition cache trust a flow's revision checked less than `interval`
    /// ago, instead of asking the flow store on every request (the default, also for
    /// `Duration::ZERO`). For a catalogue in a database shared by several instances
    /// (the reference server sets 1 s with a SQL catalogue): an edit made through this
    /// process's store is still seen by the next request (the store's
    /// [`local_writes`](crate::store::FlowSource::local_writes) moved); an edit made by
    /// another instance is served here within `interval`.
    pub fn revision_check_interval(mut self, interval: Duration) -> Self {
        self.revision_check_interval = Some(interval);
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Engine {
        Engine {
            ids: SessionIds::new(self.session_key, self.env.random.as_ref()),
            env: self.env,
            registry: self.registry,
            cache: definitions::Definitions::new(self.revision_check_interval),
            conflict_retries: self.conflict_retries,
        }
    }
}

impl Engine {
    /// Starts building an engine over the three host stores.
    pub fn builder(
        flows: Arc<dyn FlowStore>,
        sessions: Arc<dyn SessionStore>,
        users: Arc<dyn UserDirectory>,
    ) -> EngineBuilder {
        EngineBuilder {
            env: Env {
                services: crate::env::Services {
                    flows: flows.clone(),
                    users,
                    app_passwords: Arc::new(crate::memory::MemoryAppPasswords::new()),
                    devices: Arc::new(crate::memory::MemoryDevices::new()),
                    password_backends: Vec::new(),
                    captcha: None,
                    invitations: Arc::new(crate::memory::MemoryInvitations::new()),
                    reputation: Arc::new(crate::memory::MemoryReputation::new()),
                    flow_tokens: Arc::new(crate::memory::MemoryFlowTokens::new()),
                    mailer: None,
                    mail_settings: crate::mail::MailSettings::default(),
                    throttle: Arc::new(crate::memory::MemoryThrottle::new()),
                    throttle_config: ThrottleConfig::default(),
                    events: Arc::new(NoopEventSink),
                    clock: Arc::new(SystemClock),
                    random: Arc::new(OsRandom),
                    timer: None,
                },
                flows,
                sessions,
            },
            registry: crate::registry::Registry::new(),
            conflict_retries: DEFAULT_CONFLICT_RETRIES,
            revision_check_interval: None,
            session_key: None,
        }
    }

    /// What the executor runs with.
    pub(crate) fn runtime(&self) -> crate::executor::Runtime<'_> {
        crate::executor::Runtime {
            env: &self.env,
            registry: &self.registry,
            flows: self,
        }
    }

    /// The engine's services.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The host's stage kinds and policy evaluators, the expression evaluator and the
    /// Have I Been Pwned hook ([`crate::registry`]).
    pub fn registry(&self) -> &crate::registry::Registry {
        &self.registry
    }

    /// The loaded definition of a flow, from the cache when its revision is unchanged
    /// (see [`EngineBuilder::revision_check_interval`] for when the revision is asked).
    pub async fn definition(&self, slug: &str) -> Result<Arc<FlowDefinition>, Error> {
        self.cache.get(self.env.flows.as_ref(), slug).await
    }

    /// How many cached definitions this flow has (0 or 1): authentik's `cache_count`.
    pub fn cache_count(&self, slug: &str) -> usize {
        usize::from(self.cache.contains(slug))
    }

    /// How many flow definitions are cached.
    pub fn cached_flows(&self) -> usize {
        self.cache.len()
    }

    /// Drops every cached definition (authentik's `cache_clear`).
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// GET: the current challenge of flow `slug`, planning it if the session has no
    /// plan for it.
    ///
    /// A GET never has side effects: a stage that deletes, logs out, logs in or writes
    /// a user answers its `ak-stage-consent` confirmation instead of running
    /// ([`StageKind::confirmation`](crate::stages::StageKind::confirmation)).
    pub async fn plan(&self, req: &FlowRequest, slug: &str) -> Result<Outcome, Error> {
        self.handle(req, slug, Input::Get).await
    }

    /// [`Engine::plan`] with the definition the caller already got from
    /// [`Engine::definition`] (the HTTP adapter's first GET: one revision check, not two).
    #[cfg(feature = "http")]
    pub(crate) async fn plan_with(
        &self,
        req: &FlowRequest,
        slug: &str,
        def: Arc<FlowDefinition>,
    ) -> Result<Outcome, Error> {
        self.handle_with(req, slug, def, Input::Get).await
    }

    /// POST: solves the current challenge with the client's JSON response and returns
    /// the next challenge.
    ///
    /// Stages with side effects after the current one run in the same call once it
    /// accepted the response (a password POST logs in); a side-effect stage that is
    /// itself current runs only on the POST of its confirmation's token
    /// (`{"component": "ak-stage-consent", "token": …}`). The host must make sure the
    /// POST was deliberate: same origin and CSRF-protected (the `http` adapter does).
    ///
    /// Side effects happen exactly once per accepted response: stages return them as
    /// [`Effect`](crate::effects::Effect)s, applied once after the session was saved,
    /// however often a compare-and-swap conflict made the step run again (see
    /// [`crate::effects`], also for what the client gets when applying one fails).
    pub async fn step(
        &self,
        req: &FlowRequest,
        slug: &str,
        response: &Value,
    ) -> Result<Outcome, Error> {
        match response {
            Value::Object(map) => self.handle(req, slug, Input::Post(map)).await,
            Value::Array(_) => {
                self.handle(
                    req,
                    slug,
                    Input::NotAnObject("Invalid data. Expected a dictionary, but got list."),
                )
                .await
            }
            Value::String(_) => {
                self.handle(
                    req,
                    slug,
                    Input::NotAnObject("Invalid data. Expected a dictionary, but got str."),
                )
                .await
            }
            _ => {
                self.handle(
                    req,
                    slug,
                    Input::NotAnObject("Invalid data. Expected a dictionary."),
                )
                .await
            }
        }
    }

    /// POST with a raw body: malformed JSON answers `ak-stage-flow-error` (as authentik
    /// does) and changes nothing; otherwise as [`Engine::step`].
    pub async fn step_raw(
        &self,
        req: &FlowRequest,
        slug: &str,
        body: &[u8],
    ) -> Result<Outcome, Error> {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => self.step(req, slug, &v).await,
            Err(_) => {
                self.definition(slug).await?;
                // Nothing is stored; an unknown id is still never adopted.
                let known = match &req.session_id {
                    Some(id) => self.env.sessions.load(id).await?.map(|_| id.clone()),
                    None => None,
                };
                let (session_id, rotated) = match known {
                    Some(id) => (id, false),
                    None => {
                        let id = self.adopt_or_mint(req.session_id.as_ref());
                        let rotated = req.session_id.as_ref() != Some(&id);
                        (id, rotated)
                    }
                };
                Ok(Outcome {
                    challenge: Challenge::new(ChallengeBody::FlowError(FlowErrorChallenge {
                        request_id: self.env.random.token(),
                        error: None,
                        traceback: None,
                    })),
                    session_id,
                    session_rotated: rotated,
                    user: None,
                    logged_in: false,
                    logged_out: false,
                    login_expires_in: None,
                    advanced: false,
                })
            }
        }
    }

    /// Plans a flow without executing or storing anything (the planner on its own).
    pub async fn plan_only(
        &self,
        req: &FlowRequest,
        slug: &str,
        context: PlanContext,
    ) -> Result<FlowPlan, PlanError> {
        let def = self.definition(slug).await.map_err(|e| match e {
            Error::Store(s) => PlanError::Store(s),
            other => PlanError::Store(StoreError::NotFound(other.to_string())),
        })?;
        let state = match &req.session_id {
            Some(id) => self.env.sessions.load(id).await?.map(|v| v.value),
            None => None,
        };
        let user = self.user_of(state.as_ref()).await?;
        planner::plan(
            &self.env,
            self.registry.hooks(),
            &def,
            PlanInput {
                request: req,
                request_user: user.as_ref(),
                context,
            },
        )
        .await
        .map(|(p, _)| p)
    }

    /// Plans `slug` with `context` for a session (authentik's `execute` API): the plan
    /// is stored and the history reset, so the client continues with
    /// [`Engine::plan`]. `acting_user` is the user the request is authenticated as
    /// (e.g. by an API token). Returns the session id (a new one when `req` has none),
    /// or the not-applicable messages.
    pub async fn start(
        &self,
        req: &FlowRequest,
        slug: &str,
        context: PlanContext,
        acting_user: Option<&User>,
    ) -> Result<Result<SessionId, Vec<String>>, Error> {
        let def = self.definition(slug).await?;
        let mut start = Start {
            def,
            req,
            context,
            acting_user,
        };
        let (planned, id) = self.transact(req.session_id.as_ref(), &mut start).await?;
        Ok(planned.map(|()| id))
    }

    /// The logged-in user of a session: `None` for an unknown, expired, anonymous or
    /// logged-out session, an expired login, or an inactive user.
    ///
    /// This is the call for a host's own routes (the HTTP adapter's `LoggedIn`
    /// extractor uses it). Reading a logged-in session
    /// refreshes its idle expiry, at most once per
    /// [`TOUCH_INTERVAL`](crate::session_touch::TOUCH_INTERVAL) seconds, keeping its id
    /// (see [`session_touch`](crate::session_touch)); the login's own lifetime is not
    /// extended.
    pub async fn session_user(&self, session_id: &SessionId) -> Result<Option<User>, Error> {
        let Some(loaded) = self.env.sessions.load(session_id).await? else {
            return Ok(None);
        };
        let user = self.user_of(Some(&loaded.value)).await?;
        if user.is_some() {
            let now = self.env.clock.now();
            session_touch::touch(self.env.sessions.as_ref(), session_id, loaded, now).await;
        }
        Ok(user)
    }

    /// Drops the plan of one flow (or of every flow) in a session; the login stays.
    pub async fn cancel(&self, session_id: &SessionId, slug: Option<&str>) -> Result<(), Error> {
        self.transact(Some(session_id), &mut Cancel { slug })
            .await
            .map(|_| ())
    }

    /// Ends a session entirely (logout without a flow).
    pub async fn end_session(&self, session_id: &SessionId) -> Result<(), Error> {
        Ok(self.env.sessions.delete(session_id).await?)
    }

    /// The inspector: this session's plan history and current plan for a flow, with
    /// secrets redacted. Only for sessions of superusers.
    pub async fn inspect(
        &self,
        session_id: &SessionId,
        slug: &str,
    ) -> Result<FlowInspection, InspectError> {
        self.inspect_under(session_id, slug, &MountPath::default())
            .await
    }

    /// [`Engine::inspect`] for routes served under `base` (its links start with it).
    pub async fn inspect_under(
        &self,
        session_id: &SessionId,
        slug: &str,
        base: &MountPath,
    ) -> Result<FlowInspection, InspectError> {
        let def = self.definition(slug).await.map_err(|e| match e {
            Error::FlowNotFound(s) => InspectError::FlowNotFound(s),
            Error::Store(s) => InspectError::Store(s),
            other => InspectError::Store(StoreError::Unavailable(other.to_string())),
        })?;
        let state = self.env.sessions.load(session_id).await?.map(|v| v.value);
        let user = self.user_of(state.as_ref()).await?;
        if !planner::is_superuser(&self.env, user.as_ref()).await? {
            return Err(InspectError::Forbidden);
        }
        let fs = state
            .as_ref()
            .and_then(|s| s.flows.get(slug))
            .ok_or(InspectError::NoPlan)?;
        inspector::inspect(&def, fs, session_id, base.paths())
    }

    /// The request's id when this engine minted it (a session not stored yet), else
    /// a freshly minted one.
    /// A fresh session id this engine will recognise (for a session not stored yet).
    #[cfg(feature = "http")]
    pub(crate) fn mint_session_id(&self) -> SessionId {
        self.ids.mint()
    }

    fn adopt_or_mint(&self, requested: Option<&SessionId>) -> SessionId {
        match requested {
            Some(id) if self.ids.minted(id) => id.clone(),
            _ => self.ids.mint(),
        }
    }

    async fn user_of(&self, state: Option<&SessionState>) -> Result<Option<User>, StoreError> {
        // An expired login is no login (also for the admin API, execute and inspector).
        let now = self.env.clock.now();
        let state = state.filter(|s| s.login_expires_at.is_none_or(|t| t > now));
        match state.and_then(|s| s.user.clone()) {
            Some(pk) => Ok(self.env.users.user(pk).await?.filter(|u| u.is_active)),
            None => Ok(None),
        }
    }
}

/// The [`Attempt`](transact::Attempt) of [`Engine::start`].
struct Start<'r> {
    def: Arc<FlowDefinition>,
    req: &'r FlowRequest,
    context: PlanContext,
    acting_user: Option<&'r User>,
}

#[async_trait]
impl transact::Attempt for Start<'_> {
    type Out = Result<(), Vec<String>>;

    async fn attempt(
        &mut self,
        engine: &Engine,
        loaded: transact::Loaded,
    ) -> Result<transact::Decision<Self::Out>, Error> {
        use transact::Decision;
        let mut state = loaded.state;
        let session_user = engine.user_of(Some(&state)).await?;
        let user = self.acting_user.cloned().or(session_user);
        let input = PlanInput {
            request: self.req,
            request_user: user.as_ref(),
            context: self.context.clone(),
        };
        let plan = match planner::plan(&engine.env, engine.registry.hooks(), &self.def, input).await
        {
            Ok((plan, _)) => plan,
            Err(PlanError::NotApplicable { messages }) => {
                return Ok(Decision::Finish(Err(messages)));
            }
            Err(PlanError::Empty) => {
                return Ok(Decision::Finish(Err(vec![
                    "Flow has no applicable stages.".into(),
                ])));
            }
            Err(PlanError::Store(e)) => return Err(e.into()),
        };
        let fs = state.flow_mut(&self.def.flow.slug);
        fs.plan = Some(plan);
        fs.history.clear();
        fs.decisions.clear();
        fs.query = self.req.query.clone();
        Ok(Decision::Save {
            state,
            to: loaded.id,
            claim: false,
            value: Ok(()),
        })
    }
}

/// The [`Attempt`](transact::Attempt) of [`Engine::cancel`].
struct Cancel<'r> {
    slug: Option<&'r str>,
}

#[async_trait]
impl transact::Attempt for Cancel<'_> {
    type Out = ();

    async fn attempt(
        &mut self,
        _engine: &Engine,
        loaded: transact::Loaded,
    ) -> Result<transact::Decision<()>, Error> {
        use transact::Decision;
        if loaded.version.is_none() {
            return Ok(Decision::Finish(()));
        }
        let mut state = loaded.state;
        for (s, fs) in state.flows.iter_mut() {
            if self.slug.is_none_or(|want| want == s) {
                fs.plan = None;
            }
        }
        Ok(Decision::Save {
            state,
            to: loaded.id,
            claim: false,
            value: (),
        })
    }
}

#[async_trait::async_trait]
impl crate::executor::Definitions for Engine {
    async fn definition(&self, slug: &str) -> Result<Arc<FlowDefinition>, Error> {
        Engine::definition(self, slug).await
    }
}
