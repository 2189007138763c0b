//! The executor: drives a plan one challenge/response at a time
//! (`reference/authentik-flows.md` §3).
//!
//! Per request: plan if this flow has no plan in the session; take the current stage
//! (re-evaluating a marked stage and dropping it if its policies now fail); run it; on
//! success move on and return the *next* challenge in the same call; on an invalid
//! response apply the binding's `invalid_response_action`; on a denial drop the plan
//! and answer `ak-stage-access-denied`; when no stage is left answer `xak-flow-redirect`
//! to the relative `next` (an absolute or `//host` one is refused).
//!
//! Side-effect stages (delete, logout, login, user write) run only in a request whose
//! POST an earlier stage accepted; otherwise they first answer a confirmation
//! challenge (`confirmation.rs`), so no GET and no forged request deletes or logs out.

use serde_json::Value;

use crate::Error;
use crate::challenge::{
    AccessDeniedChallenge, Challenge, ChallengeBody, ErrorDetail, FlowErrorChallenge,
    RedirectChallenge,
};
use crate::confirmation::{self, Gate};
use crate::effects::Journal;
use crate::events::{Event, EventAction};
use crate::model::{DeniedAction, FlowDesignation, InvalidResponseAction, NON_FIELD_ERRORS};
use crate::plan::{
    Decision, FlowPlan, FlowState, Marker, PlanContext, PlannedStage, SessionState, keys,
};
use crate::planner::{self, PlanError, PlanInput};
use crate::policy::{self, PolicyRequest};
use crate::request::{FlowRequest, is_safe_relative_url, query_param};
use crate::stages::{Effects, StageContext, StageError, StageKind, StageOutcome};
use crate::store::{BoundStage, FlowDefinition, StoreError, User};

pub use decorate::{DEFAULT_AVATAR, avatar};
/// Restarts (`restart`, `restart_with_context`) allowed within one request, so a
/// restarting binding that keeps failing cannot loop forever (authentik gotcha #5).
const MAX_RESTARTS: usize = 3;
/// The challenge error when the password-hashing pool is full.
pub const BUSY: &str = "Too many logins at once, try again";

pub(crate) use crate::input::Input;

mod decorate;
mod flow_token;

/// What the executor runs with: the engine's services and registry, and a way to load
/// the definition of another flow (redirects between flows). The engine lends itself
/// as one; the executor never sees the engine.
#[derive(Clone, Copy)]
pub(crate) struct Runtime<'a> {
    pub(crate) env: &'a crate::env::Env,
    pub(crate) registry: &'a crate::registry::Registry,
    pub(crate) flows: &'a dyn Definitions,
}

/// Loads flow definitions (the engine's cache).
#[async_trait::async_trait]
pub(crate) trait Definitions: Send + Sync {
    /// The loaded definition of the flow with this slug.
    async fn definition(&self, slug: &str) -> Result<std::sync::Arc<FlowDefinition>, Error>;
}

impl Runtime<'_> {
    async fn definition(&self, slug: &str) -> Result<std::sync::Arc<FlowDefinition>, Error> {
        self.flows.definition(slug).await
    }
}

pub(crate) struct Exec<'a> {
    engine: Runtime<'a>,
    def: &'a FlowDefinition,
    req: &'a FlowRequest,
    request_user: Option<&'a User>,
    pub(crate) effects: Effects,
    /// A plan for another flow made by a redirect stage: (slug, plan).
    pub(crate) handoff: Option<(String, FlowPlan)>,
    /// The plan as first made from an empty context in this request (if it was).
    pub(crate) fresh_plan: Option<FlowPlan>,
    /// A stage accepted the user's POST in this request.
    accepted: bool,
}

enum Next<'a> {
    Stage(&'a BoundStage),
    Finished,
    Stale,
}

/// What one request did: the challenge, the effects to apply, and whether the flow's
/// state is exactly what planning from the request alone gives (then a new session
/// need not be stored: any instance can reproduce it).
pub(crate) struct Ran {
    pub(crate) challenge: Challenge,
    pub(crate) effects: Effects,
    pub(crate) reproducible: bool,
    /// A stage accepted the POST's response (see `Outcome::advanced`).
    pub(crate) accepted: bool,
}

/// Runs one request against the session state. The caller saves the state.
pub(crate) async fn run(
    engine: Runtime<'_>,
    def: &FlowDefinition,
    req: &FlowRequest,
    state: &mut SessionState,
    request_user: Option<&User>,
    input: Input<'_>,
    journal: Journal,
) -> Result<Ran, Error> {
    let slug = def.flow.slug.clone();
    let mut fs = state.flows.shift_remove(&slug).unwrap_or_default();
    let mut exec = Exec {
        engine,
        def,
        req,
        request_user,
        effects: Effects {
            journal,
            ..Effects::default()
        },
        handoff: None,
        fresh_plan: None,
        accepted: false,
    };
    let mut result = exec.drive(&mut fs, input).await;
    if exec.effects.login.is_some()
        && query_param(&req.query, "next").is_some_and(|n| !is_safe_relative_url(&n))
    {
        // Deny before logging in: a login that cannot end where it was asked to end
        // must not leave the session logged in (the flow is denied as authentik does).
        exec.effects.cancel_login();
        fs.plan = None;
        fs.query.clear();
        result = Ok(exec.denied(&mut fs, "Invalid next URL".into()));
    }
    // Nothing ran but planning from an empty context: no stage passed, no stage or
    // re-evaluated policy wrote into the context, and no other flow was planned.
    let reproducible =
        exec.handoff.is_none() && fs.history.is_empty() && fs.plan == exec.fresh_plan;
    *state.flow_mut(&slug) = fs;
    if let Some((target, plan)) = exec.handoff.take() {
        let target_state = state.flow_mut(&target);
        target_state.plan = Some(plan);
        target_state.history.clear();
    }
    result.map(|challenge| Ran {
        challenge,
        effects: exec.effects,
        reproducible,
        accepted: exec.accepted,
    })
}

impl<'a> Exec<'a> {
    async fn drive(&mut self, fs: &mut FlowState, input: Input<'_>) -> Result<Challenge, Error> {
        fs.query = self.req.query.clone();
        if fs
            .plan
            .as_ref()
            .is_some_and(|p| p.flow_pk != self.def.flow.pk)
        {
            // The flow was replaced under the same slug: the old plan is meaningless.
            fs.plan = None;
        }
        // A mailed link (`flow_token` in the query) may restore a stored plan.
        let input = match self.flow_token(fs, input).await? {
            Ok(input) => input,
            Err(answer) => return Ok(answer),
        };
        if fs.plan.is_none() {
            fs.history.clear();
            fs.decisions.clear();
            if let Some(early) = self.start(fs, PlanContext::new(), true).await? {
                return Ok(early);
            }
            self.fresh_plan = fs.plan.clone();
        }

        let mut input = Some(input);
        // `self.accepted`: whether a stage accepted the user's POST in this request:
        // only then may side-effect stages run without asking (DESIGN §4 item 6,
        // `confirmation.rs`).
        let mut restarts = 0usize;
        // Each iteration either returns or removes a stage / restarts (bounded), so the
        // loop ends; the bound is a belt-and-braces guard.
        let limit = (self.def.stages.len() + 2) * (MAX_RESTARTS + 2);
        for _ in 0..limit {
            let bound = match self.next(fs).await? {
                Next::Stage(b) => b,
                Next::Finished => return Ok(self.flow_done(fs)),
                Next::Stale => {
                    fs.plan = None;
                    return Ok(self.denied(
                        fs,
                        "A stage of this flow was removed while it was running; please start again."
                            .into(),
                    ));
                }
            };
            let resolved = self.engine.registry.resolve(bound);
            let kind = &*resolved;
            let Some(plan) = fs.plan.as_mut() else {
                return Ok(self.flow_done(fs));
            };
            let policy_messages = plan
                .bindings
                .first()
                .map(|p| p.messages.clone())
                .unwrap_or_default();
            let mut ctx = StageContext {
                env: self.engine.env,
                hooks: self.engine.registry.hooks(),
                request: self.req,
                flow: &self.def.flow,
                definition: self.def,
                binding: &bound.binding,
                stage: &bound.stage,
                context: &mut plan.context,
                remaining: &plan.bindings,
                request_user: self.request_user,
                policy_messages: &policy_messages,
                effects: &mut self.effects,
            };
            let this_input = input.take().unwrap_or(Input::Get);
            let question = if self.accepted {
                None
            } else {
                kind.confirmation(&ctx)
            };
            // `deliberate`: the stage is done by the user's own POST to it (not by a
            // GET, nor by a silent stage that merely got the POST passed along).
            let posted = matches!(this_input, Input::Post(_)) && kind.component().is_some();
            let (outcome, deliberate) = match question {
                None => (dispatch(kind, &mut ctx, this_input).await, posted),
                Some(question) => {
                    let random = self.engine.env.random.as_ref();
                    match confirmation::gate(
                        ctx.context,
                        bound.binding.pk,
                        question,
                        this_input,
                        random,
                    ) {
                        Gate::AlreadyConfirmed(input) => {
                            (dispatch(kind, &mut ctx, input).await, posted)
                        }
                        Gate::JustConfirmed => (kind.challenge(&mut ctx).await, true),
                        Gate::Ask(c) => (Ok(StageOutcome::Challenge(*c)), false),
                    }
                }
            };
            let outcome = match outcome {
                // The hashing pool is full: the same challenge with an error asking the
                // client to retry (never a 5xx); the stage has changed nothing.
                Err(StageError::Store(StoreError::Busy)) => {
                    refuse(kind.challenge(&mut ctx).await, BUSY)
                }
                // The directory does not offer what the stage needs (a login-only host
                // running an enrollment flow): a denial naming it, never a 503.
                Err(StageError::Store(StoreError::Unsupported(operation))) => Ok(
                    StageOutcome::Deny(StoreError::unsupported_message(&operation)),
                ),
                other => other,
            };
            let outcome = match outcome {
                Ok(o) => o,
                Err(StageError::Store(e)) => return Err(Error::Store(e)),
                Err(StageError::Internal(message)) => {
                    return Ok(self.flow_error(fs, &bound.stage.name, &message).await);
                }
            };
            match outcome {
                StageOutcome::Challenge(c) => return Ok(self.decorate(c, fs)),
                StageOutcome::Invalid(c) => match bound.binding.invalid_response_action {
                    InvalidResponseAction::Retry => return Ok(self.decorate(c, fs)),
                    action => {
                        if let Some(early) = self.restart(fs, action, &mut restarts).await? {
                            return Ok(early);
                        }
                    }
                },
                StageOutcome::Done => {
                    self.accepted |= deliberate;
                    if let Some(plan) = fs.plan.as_mut() {
                        confirmation::clear(&mut plan.context);
                        let insert = plan.context.remove(keys::INSERT_STAGE);
                        let snapshot = plan.clone();
                        if !plan.bindings.is_empty() {
                            plan.bindings.remove(0);
                        }
                        // authentik's `plan.insert_stage`: the stage asked for one of the
                        // stages it may insert to run next.
                        if let Some(binding) = insert
                            .as_ref()
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse().ok())
                            .and_then(|stage| self.def.inserted_binding(bound.binding.pk, stage))
                        {
                            plan.bindings.insert(
                                0,
                                PlannedStage {
                                    binding,
                                    marker: Marker::Stage,
                                    messages: Vec::new(),
                                },
                            );
                        }
                        fs.push_history(snapshot);
                    }
                }
                StageOutcome::Deny(message) => {
                    let action = bound.binding.invalid_response_action;
                    if action != InvalidResponseAction::Retry && restarts < MAX_RESTARTS {
                        if let Some(early) = self.restart(fs, action, &mut restarts).await? {
                            return Ok(early);
                        }
                        continue;
                    }
                    fs.record(Decision {
                        binding: Some(bound.binding.pk),
                        subject: bound.stage.name.clone(),
                        outcome: "denied".into(),
                        messages: vec![message.clone()],
                    });
                    return Ok(self.denied(fs, message));
                }
                StageOutcome::RedirectToFlow { slug, keep_context } => {
                    return self.redirect_to_flow(fs, &slug, keep_context).await;
                }
            }
        }
        Ok(self
            .flow_error(fs, "executor", "the flow did not settle")
            .await)
    }

    /// Plans the flow into `fs`. `Some(challenge)` when planning ended the request.
    ///
    /// `initial`: the first planning of the flow (authentik's `dispatch`), where a
    /// non-applicable authentication flow finishes for a user who is already logged
    /// in. A restart (authentik's `restart_flow`) has no such shortcut: a flow that no
    /// longer applies is handled by `handle_invalid_flow`.
    async fn start(
        &mut self,
        fs: &mut FlowState,
        context: PlanContext,
        initial: bool,
    ) -> Result<Option<Challenge>, Error> {
        let input = PlanInput {
            request: self.req,
            request_user: self.request_user,
            context,
        };
        match planner::plan(
            self.engine.env,
            self.engine.registry.hooks(),
            self.def,
            input,
        )
        .await
        {
            Ok((plan, decisions)) => {
                fs.plan = Some(plan);
                for d in decisions {
                    fs.record(d);
                }
                Ok(None)
            }
            Err(PlanError::NotApplicable { messages }) => {
                fs.plan = None;
                fs.record(Decision {
                    binding: None,
                    subject: self.def.flow.slug.clone(),
                    outcome: "not_applicable".into(),
                    messages: messages.clone(),
                });
                if initial
                    && self.def.flow.designation == FlowDesignation::Authentication
                    && self.request_user.is_some()
                {
                    return Ok(Some(self.flow_done(fs)));
                }
                Ok(Some(self.handle_invalid_flow(fs, messages)))
            }
            Err(PlanError::Empty) => Ok(Some(self.flow_done(fs))),
            Err(PlanError::Store(e)) => Err(Error::Store(e)),
        }
    }

    async fn restart(
        &mut self,
        fs: &mut FlowState,
        action: InvalidResponseAction,
        restarts: &mut usize,
    ) -> Result<Option<Challenge>, Error> {
        *restarts += 1;
        if *restarts > MAX_RESTARTS {
            return Ok(Some(self.denied(fs, "Too many restarts.".into())));
        }
        let context = match (action, fs.plan.take()) {
            (InvalidResponseAction::RestartWithContext, Some(plan)) => plan.context,
            _ => PlanContext::new(),
        };
        self.start(fs, context, false).await
    }

    /// The current stage after re-evaluating marked stages.
    async fn next(&self, fs: &mut FlowState) -> Result<Next<'a>, Error> {
        // An edit of the flow leaves the plan running (authentik's executor only drops a
        // plan of another flow); a planned stage that no longer exists ends it clearly.
        if fs.plan.as_ref().is_some_and(|p| {
            p.bindings
                .iter()
                .any(|b| self.def.binding(b.binding).is_none())
        }) {
            return Ok(Next::Stale);
        }
        loop {
            let Some(plan) = fs.plan.as_mut() else {
                return Ok(Next::Finished);
            };
            let Some(first) = plan.bindings.first().cloned() else {
                return Ok(Next::Finished);
            };
            let Some(bound) = self.def.binding(first.binding) else {
                return Ok(Next::Stale);
            };
            // A binding with an unregistered host policy is not evaluated: it stays, and
            // the stage lookup (`Registry::resolve`) denies naming the policy.
            if first.marker == Marker::Reevaluate
                && !bound.policies.is_empty()
                && self
                    .engine
                    .registry
                    .hooks()
                    .unregistered_policy(&bound.policies)
                    .is_none()
            {
                let (mut subject, username) =
                    planner::subject(self.engine.env, &plan.context, self.request_user).await?;
                // A pending user written earlier in this request: as the write leaves it.
                if let Some(pending) = plan
                    .context
                    .pending_user()
                    .and_then(|p| p.pk)
                    .and_then(|pk| self.effects.pending_user(&pk))
                {
                    subject = pending;
                }
                let mut req = PolicyRequest {
                    user: subject.as_ref(),
                    username: username.as_deref(),
                    context: &mut plan.context,
                    flow_plan: true,
                    flow: &self.def.flow,
                    client_ip: self.req.client_ip.as_deref(),
                    env: self.engine.env,
                    hooks: self.engine.registry.hooks(),
                    config: &Value::Null,
                };
                let result =
                    policy::evaluate(&bound.policies, bound.binding.policy_engine_mode, &mut req)
                        .await;
                if !result.passing {
                    plan.bindings.remove(0);
                    fs.record(Decision {
                        binding: Some(bound.binding.pk),
                        subject: bound.stage.name.clone(),
                        outcome: "dropped_on_reevaluation".into(),
                        messages: result.messages,
                    });
                    continue;
                }
                if let Some(current) = plan.bindings.first_mut() {
                    current.messages = result.messages;
                }
            }
            return Ok(Next::Stage(bound));
        }
    }

    async fn redirect_to_flow(
        &mut self,
        fs: &mut FlowState,
        slug: &str,
        keep_context: bool,
    ) -> Result<Challenge, Error> {
        let Some(target) = self.engine.definition(slug).await.ok() else {
            return Ok(self.denied(fs, format!("Flow `{slug}` not found.")));
        };
        let mut context = match (keep_context, fs.plan.as_ref()) {
            (true, Some(p)) => p.context.clone(),
            _ => PlanContext::new(),
        };
        context.insert(
            keys::IS_REDIRECTED,
            Value::String(self.def.flow.slug.clone()),
        );
        let input = PlanInput {
            request: self.req,
            request_user: self.request_user,
            context,
        };
        match planner::plan(
            self.engine.env,
            self.engine.registry.hooks(),
            &target,
            input,
        )
        .await
        {
            Ok((plan, _)) => {
                fs.plan = None;
                self.handoff = Some((slug.to_owned(), plan));
                Ok(redirect(format!(
                    "{}?{}",
                    self.req.paths().flow_page(slug, ""),
                    fs.query
                )))
            }
            Err(PlanError::Store(e)) => Err(Error::Store(e)),
            Err(PlanError::NotApplicable { messages }) => Ok(self.denied(fs, messages.join("\n"))),
            Err(PlanError::Empty) => {
                Ok(self.denied(fs, format!("Flow `{slug}` has no applicable stages.")))
            }
        }
    }

    /// No stage left: drop the plan and redirect to `context.redirect` or the relative `next`.
    fn flow_done(&mut self, fs: &mut FlowState) -> Challenge {
        let redirect_target = fs
            .plan
            .as_ref()
            .and_then(|p| p.context.get_str(keys::REDIRECT))
            .map(str::to_owned);
        fs.plan = None;
        if let Some(target) = redirect_target.filter(|t| {
            is_safe_relative_url(t) || t.starts_with("https://") || t.starts_with("http://")
        }) {
            return redirect(target);
        }
        let next = query_param(&fs.query, "next").unwrap_or_else(|| "/".into());
        if is_safe_relative_url(&next) {
            redirect(next)
        } else {
            // authentik's `cancel()` drops the session query before `stage_invalid`, so
            // the refused `next` is not offered again in `flow_info.cancel_url`.
            fs.query.clear();
            self.denied(fs, "Invalid next URL".into())
        }
    }

    /// The flow does not apply: follow `denied_action`.
    fn handle_invalid_flow(&mut self, fs: &mut FlowState, messages: Vec<String>) -> Challenge {
        let action = self.def.flow.denied_action;
        if matches!(
            action,
            DeniedAction::Continue | DeniedAction::MessageContinue
        ) {
            if let Some(next) = self.req.next.as_deref().filter(|n| is_safe_relative_url(n)) {
                return redirect(next.to_owned());
            }
        }
        if action == DeniedAction::Continue {
            return redirect("/".into());
        }
        self.denied(fs, messages.join("\n"))
    }

    /// `ak-stage-access-denied`; drops the plan (after taking the user info from it).
    fn denied(&mut self, fs: &mut FlowState, message: String) -> Challenge {
        let mut event = Event::new(EventAction::FlowDenied).with("message", message.clone());
        event.flow = Some(self.def.flow.slug.clone());
        event.user = self.display_user(fs).filter(|u| !u.is_empty());
        event.client_ip = self.req.client_ip.clone();
        self.effects.emit(event);
        let c = Challenge::new(ChallengeBody::AccessDenied(AccessDeniedChallenge {
            error_message: Some(message),
            ..Default::default()
        }));
        let c = self.decorate(c, fs);
        fs.plan = None;
        c
    }

    /// `ak-stage-flow-error` with a request id; the plan is kept so the flow stays usable.
    /// (Only superusers see the error text; the check costs a directory call, made here
    /// rather than on every request.)
    async fn flow_error(&mut self, fs: &FlowState, stage: &str, message: &str) -> Challenge {
        let is_superuser = planner::is_superuser(self.engine.env, self.request_user)
            .await
            .unwrap_or(false);
        let request_id = self.engine.env.random.token();
        let mut event = Event::new(EventAction::SystemException)
            .with("request_id", request_id.clone())
            .with("stage", stage)
            .with("message", message);
        event.flow = Some(self.def.flow.slug.clone());
        event.user = self.display_user(fs);
        self.effects.emit(event);
        Challenge::new(ChallengeBody::FlowError(FlowErrorChallenge {
            request_id,
            error: is_superuser.then(|| message.to_owned()),
            traceback: None,
        }))
    }
}

/// `ak-stage-access-denied` for a step whose effects failed after its commit (see
/// [`crate::effects`]), decorated like the executor's own denials; the `flow_denied`
/// event is emitted directly (the step already committed).
pub(crate) fn denied_after_commit(
    engine: Runtime<'_>,
    def: &FlowDefinition,
    req: &FlowRequest,
    message: String,
) -> Challenge {
    let mut exec = Exec {
        engine,
        def,
        req,
        request_user: None,
        effects: Effects::default(),
        handoff: None,
        fresh_plan: None,
        accepted: false,
    };
    let mut fs = FlowState {
        query: req.query.clone(),
        ..FlowState::default()
    };
    let challenge = exec.denied(&mut fs, message);
    for effect in exec.effects.writes {
        if let crate::effects::Effect::Emit(event) = effect {
            engine.env.events.emit(event);
        }
    }
    challenge
}

/// Runs the stage with the client's input: its challenge on GET, its `respond` on a
/// POST naming its component (any other `component` is refused).
async fn dispatch(
    kind: &dyn StageKind,
    ctx: &mut StageContext<'_>,
    input: Input<'_>,
) -> Result<StageOutcome, StageError> {
    match input {
        Input::Get => kind.challenge(ctx).await,
        Input::NotAnObject(message) => refuse(kind.challenge(ctx).await, message),
        Input::Post(response) => {
            // Any `component` that is not exactly the expected string (also a
            // number, object or null) is refused; the echo is kept short.
            let sent = response.get("component");
            match (kind.component(), sent) {
                (Some(expected), Some(got)) if got.as_str() != Some(expected) => {
                    let got: String = match got {
                        Value::String(s) => s.chars().take(64).collect(),
                        other => other.to_string().chars().take(64).collect(),
                    };
                    refuse(
                        kind.challenge(ctx).await,
                        &format!(
                            "Invalid component `{got}`: the current stage expects `{expected}`."
                        ),
                    )
                }
                _ => kind.respond(ctx, response).await,
            }
        }
    }
}

/// Shows the stage's own challenge with a `non_field_errors` entry instead of running
/// the response: used for a wrong `component` or a body that is not an object.
fn refuse(
    challenge: Result<StageOutcome, StageError>,
    message: &str,
) -> Result<StageOutcome, StageError> {
    challenge.map(|o| match o {
        StageOutcome::Challenge(c) => {
            StageOutcome::Challenge(c.with_error(NON_FIELD_ERRORS, ErrorDetail::invalid(message)))
        }
        other => other,
    })
}

fn redirect(to: String) -> Challenge {
    Challenge::new(ChallengeBody::Redirect(RedirectChallenge { to }))
}
