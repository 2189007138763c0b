//! The services the engine runs with. [`Env`] is what the engine holds: the flow and
//! session stores plus the [`Services`] that planner, policies and stages use. Stages
//! and policies see only the [`Services`] — users, app passwords, reputation, throttle counters,
//! events, time, randomness and read access to the flows — never the session store or
//! the flow admin. What policies and stages call out to (the expression evaluator,
//! host stage kinds and policies) is in the engine's
//! [`Registry`](crate::registry::Registry), above them.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::clock::{Clock, Timer};
use crate::events::EventSink;
use crate::random::Random;
use crate::store::{
    AppPasswords, DeviceStore, FlowSource, FlowStore, ReputationStore, SessionStore, ThrottleStore,
    UserDirectory,
};
use crate::throttle_config::ThrottleConfig;

/// The engine's stores and services. Built by [`EngineBuilder`](crate::EngineBuilder).
/// Derefs to its [`Services`].
#[derive(Clone)]
pub struct Env {
    /// Flow definitions (read and admin).
    pub flows: Arc<dyn FlowStore>,
    /// Session state.
    pub sessions: Arc<dyn SessionStore>,
    /// What planner, policies and stages use.
    pub services: Services,
}

/// What planner, policies and stages use ([`StageContext::env`](crate::stages::StageContext::env),
/// [`PolicyRequest::env`](crate::policy::PolicyRequest::env)).
#[derive(Clone)]
pub struct Services {
    /// Flow definitions, read only (a redirect stage checks that its target exists).
    pub flows: Arc<dyn FlowSource>,
    /// Users and groups.
    pub users: Arc<dyn UserDirectory>,
    /// App passwords, checked by the password stage's token backend.
    pub app_passwords: Arc<dyn AppPasswords>,
    /// MFA devices (TOTP, static codes, WebAuthn), read and used by the
    /// authenticator stages.
    pub devices: Arc<dyn DeviceStore>,
    /// Host checks for the password stage's LDAP and Kerberos backends, by backend
    /// name ([`crate::EngineBuilder::password_backend`]).
    pub password_backends: Vec<(&'static str, Arc<dyn crate::store::PasswordBackend>)>,
    /// Verifies captcha tokens for the captcha stage (none: the stage denies).
    pub captcha: Option<Arc<dyn crate::captcha::CaptchaVerifier>>,
    /// Invitations, read by the invitation stage and consumed by user write.
    pub invitations: Arc<dyn crate::store::InvitationStore>,
    /// Flow tokens: plans that mailed links resume ([`crate::store::FlowTokens`]).
    pub flow_tokens: Arc<dyn crate::store::FlowTokens>,
    /// Sends the email stage's mail (`None`: email stages deny, fail closed).
    pub mailer: Option<Arc<dyn crate::mail::Mailer>>,
    /// Sender and link base of the email stage's mail.
    pub mail_settings: crate::mail::MailSettings,
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

impl Deref for Env {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl DerefMut for Env {
    fn deref_mut(&mut self) -> &mut Services {
        &mut self.services
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("throttle_config", &self.throttle_config)
            .field("timer", &self.timer.is_some())
            .field("mailer", &self.mailer.as_ref().map(|m| m.describe()))
            .finish_non_exhaustive()
    }
}
