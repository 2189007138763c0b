//! # authflow
//!
//! Embeddable identity flows — login, enrollment, logout, password change, account
//! deletion — that behave like [authentik](https://goauthentik.io)'s flows and speak
//! its flow-executor JSON protocol, inside any Rust server.
//!
//! A *flow* is an ordered list of *stages* bound with *policies*. The planner turns a
//! flow and a request into a [`FlowPlan`](plan::FlowPlan); the executor drives it one
//! challenge/response at a time:
//!
//! ```text
//! GET  /flows/executor/{slug}/  ──► Engine::plan(request, slug)          ──► Outcome { challenge, session_id, … }
//! POST /flows/executor/{slug}/  ──► Engine::step(request, slug, json)    ──► Outcome { challenge, session_id, … }
//! ```
//!
//! The core is runtime-agnostic (no tokio): storage, clock and timers come in through
//! traits ([`store`], [`clock`]); [`memory`] has in-memory implementations.
//!
//! ## A login, in process
//!
//! ```
//! use authflow::{FlowRequest, defaults, memory};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = memory::Stores::new();
//! let engine = stores.engine().build();
//! defaults::install(stores.flows.as_ref()).await?;
//! defaults::bootstrap_admin(stores.users.as_ref(), "correct horse".into()).await?;
//!
//! let slug = defaults::AUTHENTICATION;
//! let out = engine.plan(&FlowRequest::default(), slug).await?;
//! assert_eq!(out.challenge.component(), "ak-stage-identification");
//!
//! let mut req = FlowRequest::new(Some(out.session_id), "");
//! let out = engine.step(&req, slug, &json!({"component": "ak-stage-identification", "uid_field": "akadmin"})).await?;
//! assert_eq!(out.challenge.component(), "ak-stage-password");
//!
//! req.session_id = Some(out.session_id);
//! let out = engine.step(&req, slug, &json!({"component": "ak-stage-password", "password": "correct horse"})).await?;
//! assert_eq!(out.challenge.redirect_to(), Some("/"));
//! assert!(out.logged_in && out.session_rotated); // new session id: no fixation
//! # Ok(()) }
//! ```
//!
//! ## Where authflow deliberately differs from authentik
//! - A POST whose `component` is not the current stage's is refused with a
//!   `non_field_errors` entry; the flow does not advance.
//! - Each flow has its own plan in the session, so two tabs do not destroy each other.
//! - Session writes are compare-and-swap; concurrent POSTs advance a plan exactly once.
//! - A valid POST answers the next challenge directly (authentik answers 302 → GET).
//! - Every planning decision is kept and shown in the [inspector](Engine::inspect),
//!   with secrets redacted.
//! - The identification stage of the default login flow shows what the user typed,
//!   never the matched account, and the password stage answers an inactive account
//!   like a wrong password: nothing reveals whether an account exists.
//! - Password guessing is [throttled](throttle) across sessions and instances: per
//!   (client IP, identifier) and per identifier, refused without evaluating the
//!   password once past a threshold (on by default; see
//!   [`ThrottleConfig`](throttle::ThrottleConfig)).
//! - Usernames and emails share one namespace: unique after NFKC + case folding across
//!   both fields, so no account can take over another's login identifier; an
//!   identifier that still names two accounts (a host directory) matches no one.

#![forbid(unsafe_code)]

pub mod blocking;
#[cfg(feature = "blueprints")]
pub mod blueprint;
pub mod builder;
pub mod captcha;
pub mod catalogue;
pub mod challenge;
pub mod clock;
mod confirmation;
pub mod defaults;
pub mod effects;
mod engine;
pub mod env;
pub mod events;
mod executor;
pub mod hashing;
#[cfg(feature = "http")]
pub mod http;
mod input;
pub mod inspector;
pub mod mail;
pub mod memory;
pub mod model;
pub mod paths;
pub mod plan;
pub mod planner;
pub mod policy;
#[cfg(feature = "python")]
pub mod python;
pub mod query;
pub mod random;
#[cfg(feature = "redis")]
pub mod redis;
pub mod registry;
pub mod request;
pub mod secret;
mod session_ids;
pub mod session_touch;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sql;
pub mod stages;
pub mod store;
pub mod throttle;
mod throttle_config;

pub use builder::FlowBuilder;
pub use challenge::{Challenge, ChallengeBody};
pub use engine::{DEFAULT_CONFLICT_RETRIES, Engine, EngineBuilder, Outcome};
pub use executor::{DEFAULT_AVATAR, avatar};
pub use query::FlowQuery;
pub use request::FlowRequest;
pub use store::StoreError;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Errors of the host-facing calls.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No flow has this slug (HTTP 404).
    #[error("flow `{0}` not found")]
    FlowNotFound(String),
    /// A store failed; nothing of this request was saved (HTTP 503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Concurrent requests kept changing the session; retries ran out (HTTP 409).
    #[error("the session was changed concurrently; please retry")]
    Conflict,
}
