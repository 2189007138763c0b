//! The engine's one load → change → compare-and-swap save loop. Every call that
//! changes a session ([`Engine::start`], [`Engine::cancel`], [`Engine::plan`] and
//! [`Engine::step`]) is an [`Attempt`] run by [`Engine::transact`]: on a conflict the
//! attempt runs again on fresh state, and only the attempt whose save succeeded
//! returns (its effects are then applied once, see [`crate::effects`]).

use async_trait::async_trait;

use super::Engine;
use crate::Error;
use crate::plan::{SessionId, SessionState};
use crate::store::StoreError;

/// A session as one attempt sees it.
pub(super) struct Loaded {
    /// The session's id: the requested one when stored, else one this engine minted
    /// (or adopted, see [`Engine::adopt_or_mint`]).
    pub(super) id: SessionId,
    /// Its state (empty when not stored).
    pub(super) state: SessionState,
    /// The version it was read at (`None`: not stored).
    pub(super) version: Option<u64>,
}

/// What an attempt decided.
pub(super) enum Decision<T> {
    /// Store nothing; the call returns `T` with the loaded id.
    Finish(T),
    /// Save `state` under `to` with compare-and-swap against the loaded version, then
    /// return `T` with `to`. With `claim`, the loaded id is first overwritten with an
    /// empty state (compare-and-swap), then `state` is written under the fresh `to`
    /// and the old id deleted: nothing of the new state is ever reachable through the
    /// old id (rotation at login and logout).
    Save {
        /// The state to store.
        state: SessionState,
        /// The id to store it under.
        to: SessionId,
        /// Rotate: claim and drop the loaded id.
        claim: bool,
        /// What the call returns.
        value: T,
    },
}

/// One try of a session-changing call. Runs again (on freshly loaded state) when its
/// save lost a compare-and-swap race, so it must not write anything itself: it
/// returns its writes in `Out`, and the caller applies them once.
#[async_trait]
pub(super) trait Attempt: Send {
    /// What the call returns.
    type Out: Send;
    /// Decides what to store for `loaded`.
    async fn attempt(
        &mut self,
        engine: &Engine,
        loaded: Loaded,
    ) -> Result<Decision<Self::Out>, Error>;
}

impl Engine {
    /// Runs `attempt` on the session `requested` (a fresh one when it is `None` or not
    /// stored) until its save succeeds: at most `conflict_retries + 1` times, then
    /// [`Error::Conflict`]. Returns the attempt's value and the session id it ended
    /// with.
    pub(super) async fn transact<A: Attempt>(
        &self,
        requested: Option<&SessionId>,
        attempt: &mut A,
    ) -> Result<(A::Out, SessionId), Error> {
        for _ in 0..=self.conflict_retries {
            let stored = match requested {
                Some(id) => self.env.sessions.load(id).await?,
                None => None,
            };
            let loaded = match (requested, stored) {
                (Some(id), Some(v)) => Loaded {
                    id: id.clone(),
                    state: v.value,
                    version: Some(v.version),
                },
                // An unknown or expired id is never adopted (a fresh one is issued)
                // unless this engine minted it for a session it chose not to store yet.
                _ => Loaded {
                    id: self.adopt_or_mint(requested),
                    state: SessionState::default(),
                    version: None,
                },
            };
            let (from, version) = (loaded.id.clone(), loaded.version);
            let (state, to, claim, value) = match attempt.attempt(self, loaded).await? {
                Decision::Finish(value) => return Ok((value, from)),
                Decision::Save {
                    state,
                    to,
                    claim,
                    value,
                } => (state, to, claim, value),
            };
            let saved = if claim && version.is_some() {
                match self
                    .env
                    .sessions
                    .save(&from, &SessionState::default(), version)
                    .await
                {
                    Ok(_) => {
                        self.env.sessions.save(&to, &state, None).await?;
                        self.env.sessions.delete(&from).await?;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            } else {
                self.env
                    .sessions
                    .save(&to, &state, version)
                    .await
                    .map(|_| ())
            };
            match saved {
                Ok(()) => return Ok((value, to)),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict)
    }
}
