//! One GET or POST of a flow: the executor runs on the loaded session, the session is
//! saved (login and logout rotate its id), and only then are the stages' effects
//! applied, once ([`crate::effects`]).

use std::sync::Arc;

use async_trait::async_trait;

use super::transact::{Attempt, Decision, Loaded};
use super::{Engine, Outcome};
use crate::Error;
use crate::challenge::{Challenge, ChallengeBody};
use crate::effects::Journal;
use crate::effects::{self, Effects};
use crate::executor;
use crate::input::Input;
use crate::model::UserId;
use crate::plan::SessionId;
use crate::request::FlowRequest;
use crate::store::FlowDefinition;

/// The [`Attempt`] of [`Engine::plan`] and [`Engine::step`].
struct Step<'r> {
    def: Arc<FlowDefinition>,
    req: &'r FlowRequest,
    input: Input<'r>,
    /// Throttle hits of earlier attempts of this step (reused, never counted twice).
    journal: Journal,
}

/// What the committed attempt did.
struct Stepped {
    challenge: Challenge,
    effects: Effects,
    /// The session's user after the step.
    user: Option<UserId>,
    login_expires_in: Option<u64>,
    accepted: bool,
    /// The session was stored (not a new, reproducible one).
    stored: bool,
}

#[async_trait]
impl Attempt for Step<'_> {
    type Out = Stepped;

    async fn attempt(
        &mut self,
        engine: &Engine,
        loaded: Loaded,
    ) -> Result<Decision<Stepped>, Error> {
        let Loaded {
            id: session_id,
            mut state,
            version,
        } = loaded;
        let slug = self.def.flow.slug.as_str();
        let now = engine.env.clock.now();
        let mut login_ended = false;
        if state.login_expires_at.is_some_and(|t| t <= now) {
            state.user = None;
            state.authenticated_at = None;
            state.login_expires_at = None;
            login_ended = true;
        }
        let request_user = engine.user_of(Some(&state)).await?;
        if state.user.is_some() && request_user.is_none() {
            state.user = None;
            login_ended = true;
        }
        if login_ended {
            // As at logout: plans made while logged in must not outlive the login
            // (they may name the user as pending user, or need authentication).
            for fs in state.flows.values_mut() {
                fs.plan = None;
            }
        }
        self.journal.retry();
        let executor::Ran {
            challenge,
            effects,
            reproducible,
            accepted,
        } = executor::run(
            engine.runtime(),
            &self.def,
            self.req,
            &mut state,
            request_user.as_ref(),
            self.input,
            std::mem::take(&mut self.journal),
        )
        .await?;
        // Kept for a retry: the same guess is not counted twice.
        self.journal = effects.journal.clone();
        if version.is_none()
            && reproducible
            && effects.login.is_none()
            && !effects.logout
            && state.user.is_none()
            && state.flows.len() == 1
        {
            // A new anonymous session that holds nothing but the plan any instance
            // makes from this request alone (e.g. the first GET of the login flow):
            // not stored. Its id is one this engine minted, so the next request
            // adopts it and plans again (see `SessionIds`).
            return Ok(Decision::Finish(Stepped {
                challenge,
                effects,
                user: None,
                login_expires_in: None,
                accepted,
                stored: false,
            }));
        }

        let mut rotate = version.is_none();
        if let Some(user) = effects.login.clone() {
            state.user = Some(user);
            state.authenticated_at = Some(now);
            state.login_expires_at = effects.login_duration.map(|d| now.saturating_add(d));
            rotate = true;
        }
        if effects.logout {
            state.user = None;
            state.authenticated_at = None;
            state.login_expires_at = None;
            // Plans made while logged in must not outlive the login (a planned
            // require_authenticated flow would otherwise still run): keep only the
            // flow that logged out.
            state.flows.retain(|s, _| s == slug);
            rotate = true;
        }
        let (to, claim) = if rotate && version.is_some() {
            // Claim the old id first (an empty state: nothing of the login ever
            // becomes reachable through it), then write the new id.
            (engine.ids.mint(), true)
        } else if effects.login.is_some() && self.req.session_id.as_ref() == Some(&session_id) {
            // A session stored for the first time by its login (one POST that
            // identifies and logs in) must not keep an id the client brought: an
            // unstored minted id is handed to anyone who asks, so a planted one would
            // otherwise become the victim's login (session fixation).
            (engine.ids.mint(), false)
        } else {
            (session_id, false)
        };
        let user = state.user.clone();
        let login_expires_in = user
            .as_ref()
            .and(state.login_expires_at)
            .map(|t| t.saturating_sub(now));
        Ok(Decision::Save {
            state,
            to,
            claim,
            value: Stepped {
                challenge,
                effects,
                user,
                login_expires_in,
                accepted,
                stored: true,
            },
        })
    }
}

/// The [`Attempt`] that takes back a committed step whose effects failed: its login
/// (if it made one) and the flow's plan.
struct Undo<'r> {
    slug: &'r str,
    login: Option<UserId>,
}

#[async_trait]
impl Attempt for Undo<'_> {
    type Out = ();

    async fn attempt(&mut self, _engine: &Engine, loaded: Loaded) -> Result<Decision<()>, Error> {
        let Loaded {
            id,
            mut state,
            version,
        } = loaded;
        if version.is_none() {
            return Ok(Decision::Finish(()));
        }
        if self.login.is_some() && state.user == self.login {
            state.user = None;
            state.authenticated_at = None;
            state.login_expires_at = None;
        }
        if let Some(fs) = state.flows.get_mut(self.slug) {
            fs.plan = None;
        }
        Ok(Decision::Save {
            state,
            to: id,
            claim: false,
            value: (),
        })
    }
}

impl Engine {
    /// GET or POST of flow `slug`: one transaction, then the effects.
    pub(super) async fn handle(
        &self,
        req: &FlowRequest,
        slug: &str,
        input: Input<'_>,
    ) -> Result<Outcome, Error> {
        let def = self.definition(slug).await?;
        self.handle_with(req, slug, def, input).await
    }

    /// [`Engine::handle`] with the flow's definition already loaded.
    pub(super) async fn handle_with(
        &self,
        req: &FlowRequest,
        slug: &str,
        def: Arc<FlowDefinition>,
        input: Input<'_>,
    ) -> Result<Outcome, Error> {
        let mut step = Step {
            def: def.clone(),
            req,
            input,
            journal: Journal::default(),
        };
        let (done, session_id) = self.transact(req.session_id.as_ref(), &mut step).await?;
        let rotated = req.session_id.as_ref() != Some(&session_id);
        match effects::apply(&self.env, &done.effects, &session_id).await? {
            Ok(()) => {
                let advanced = done.accepted
                    && done.challenge.response_errors.is_empty()
                    && !matches!(
                        done.challenge.body,
                        ChallengeBody::FlowError(_)
                            | ChallengeBody::AccessDenied(_)
                            | ChallengeBody::Redirect(_)
                    );
                Ok(Outcome {
                    challenge: done.challenge,
                    session_id,
                    session_rotated: rotated,
                    user: done.user,
                    logged_in: done.effects.login.is_some(),
                    logged_out: done.effects.logout,
                    login_expires_in: done.login_expires_in,
                    advanced,
                })
            }
            Err(failed) => {
                // Committed, but a directory write failed: take the login and the plan
                // back, and deny clearly (never a silent success, never a login of a
                // user that does not exist).
                let login = done.effects.login;
                if done.stored {
                    self.undo(&session_id, slug, login.clone()).await?;
                }
                let challenge =
                    executor::denied_after_commit(self.runtime(), &def, req, failed.message);
                Ok(Outcome {
                    challenge,
                    session_id,
                    session_rotated: rotated,
                    user: if login.is_some() { None } else { done.user },
                    logged_in: false,
                    logged_out: done.effects.logout,
                    login_expires_in: if login.is_some() {
                        None
                    } else {
                        done.login_expires_in
                    },
                    advanced: false,
                })
            }
        }
    }

    async fn undo(
        &self,
        session_id: &SessionId,
        slug: &str,
        login: Option<UserId>,
    ) -> Result<(), Error> {
        self.transact(Some(session_id), &mut Undo { slug, login })
            .await
            .map(|_| ())
    }
}
