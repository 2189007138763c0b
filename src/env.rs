//! The services the engine runs with, shared by planner, executor, policies and stages:
//! stores, events, time, randomness. What policies and stages call out to (the
//! expression evaluator, host stage kinds and policies) is in the engine's
//! [`Registry`](crate::registry::Registry), above them.

use std::sync::Arc;

use crate::clock::{Clock, Timer};
use crate::events::EventSink;
use crate::random::Random;
use crate::store::{FlowStore, ReputationStore, SessionStore, ThrottleStore, UserDirectory};
use crate::throttle_config::ThrottleConfig;

/// The engine's services. Built by [`EngineBuilder`](crate::EngineBuilder).
#[derive(Clone)]
pub struct Env {
    /// Flow definitions.
    pub flows: Arc<dyn FlowStore>,
    /// Session state.
    pub sessions: Arc<dyn SessionStore>,
    /// Users and groups.
    pub users: Arc<dyn UserDirectory>,
    /// Reputation scores.
    pub reputation: Arc<dyn ReputationStore>,
    /// Login-throttle counters ([`crate::throttle`]).
    pub throttle: Arc<dyn ThrottleStore>,
    /// Login-throttle thresholds and window.
    pub throttle_config: ThrottleConfig,
    /// Audit events.
    pub events: Arc<dyn EventSink>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness: request and session ids, user ids, tokens.
    pub random: Arc<dyn Random>,
    /// Enforces policy timeouts (none: overruns are detected after the fact).
    pub timer: Option<Arc<dyn Timer>>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("throttle_config", &self.throttle_config)
            .field("timer", &self.timer.is_some())
            .finish_non_exhaustive()
    }
}
