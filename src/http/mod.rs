//! The authentik-compatible HTTP API (feature `http`): an axum [`Router`] speaking
//! authentik's flow-executor protocol, so authentik's own clients drive it unchanged.
//!
//! | route | meaning |
//! | --- | --- |
//! | `GET /api/v3/flows/executor/{slug}/?query=…` | current challenge, planning if needed |
//! | `POST /api/v3/flows/executor/{slug}/?query=…` | solve it (JSON or form body); answers the next challenge |
//! | `GET /api/v3/flows/inspector/{slug}/` | the session's [`FlowInspection`](crate::inspector::FlowInspection) (superusers) |
//! | `GET/POST /api/v3/flows/instances/` | list / create flows |
//! | `GET/PATCH/DELETE /api/v3/flows/instances/{slug}/` | read / change / delete a flow |
//! | `GET /api/v3/flows/instances/{slug}/execute/` | start a flow for a token-authenticated client |
//! | `GET /api/v3/flows/instances/{slug}/export/` | the flow as an authentik blueprint (feature `blueprints`) |
//! | `GET /flows/-/cancel/` | drop the plans; redirect to a relative `next` or the invalidation flow |
//! | `GET /flows/-/default/{designation}/` | the first applicable flow of a designation |
//! | `GET /if/flow/{slug}/` | a minimal browser page that runs a flow |
//!
//! Sessions: the cookie `authflow_session` (opaque, `HttpOnly`, `SameSite=Lax`,
//! `Secure` when configured) keys the engine's [`SessionStore`](crate::store::SessionStore);
//! its id changes at login and logout. Once a session is logged in, state-changing
//! requests must carry the header `X-authentik-CSRF` equal to the `authentik_csrf`
//! cookie set at login.
//!
//! Mount it in an existing app:
//!
//! ```no_run
//! # async fn demo(engine: std::sync::Arc<authflow::Engine>) -> std::io::Result<()> {
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .merge(authflow::http::router(engine, authflow::http::HttpConfig::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

mod api;
mod error;
mod executor;
#[cfg(feature = "blueprints")]
mod export;
mod pool;
mod session;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

pub use error::ApiError;
pub use pool::{HASH_THREAD_PREFIX, HashPool};
pub use session::{CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE};
pub use tokens::ApiTokens;

use crate::Engine;

/// Default [`HttpConfig::query_limit`]: 4 KiB.
pub const DEFAULT_QUERY_LIMIT: usize = 4 * 1024;

/// Settings of the HTTP adapter.
#[derive(Clone)]
pub struct HttpConfig {
    /// Mark cookies `Secure` (set this when served over TLS).
    pub secure_cookies: bool,
    /// Largest accepted request body in bytes (default 64 KiB); larger → 413.
    pub body_limit: usize,
    /// Longest accepted `query` parameter of the flow executor, decoded, in bytes
    /// (default [`DEFAULT_QUERY_LIMIT`], 4 KiB); longer → 414 with a JSON body and
    /// nothing stored. The query is kept in the session for the whole flow.
    pub query_limit: usize,
    /// Answer a POST that advances the flow with authentik's `302` to the same URL
    /// instead of the next challenge (for clients that need it).
    pub redirect_on_advance: bool,
    /// Key for CSRF tokens; every instance sharing sessions must use the same one.
    pub secret_key: Vec<u8>,
    /// API tokens accepted as `Authorization: Bearer …`.
    pub tokens: Arc<ApiTokens>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            secure_cookies: false,
            body_limit: 64 * 1024,
            query_limit: DEFAULT_QUERY_LIMIT,
            redirect_on_advance: false,
            secret_key: key,
            tokens: Arc::new(ApiTokens::new()),
        }
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("secure_cookies", &self.secure_cookies)
            .field("body_limit", &self.body_limit)
            .field("query_limit", &self.query_limit)
            .field("redirect_on_advance", &self.redirect_on_advance)
            .finish_non_exhaustive()
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) config: Arc<HttpConfig>,
}

/// The router with every route of the table above.
pub fn router(engine: Arc<Engine>, config: HttpConfig) -> Router {
    let state = AppState {
        engine,
        config: Arc::new(config),
    };
    let routes = Router::new()
        .route(
            "/api/v3/flows/executor/{slug}/",
            get(executor::get).post(executor::post),
        )
        .route("/api/v3/flows/inspector/{slug}/", get(executor::inspector))
        .route("/api/v3/flows/instances/", get(api::list).post(api::create))
        .route(
            "/api/v3/flows/instances/{slug}/",
            get(api::retrieve).patch(api::update).delete(api::destroy),
        )
        .route("/api/v3/flows/instances/{slug}/execute/", get(api::execute))
        .route("/flows/-/cancel/", get(api::cancel))
        .route("/flows/-/default/{designation}/", get(api::default_flow))
        .route("/if/flow/{slug}/", get(executor::page));
    #[cfg(feature = "blueprints")]
    let routes = routes.route(
        "/api/v3/flows/instances/{slug}/export/",
        get(export::export),
    );
    routes
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}
