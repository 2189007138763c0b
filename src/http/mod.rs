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
//! | `GET /api/v3/core/users/me/` | the logged-in user (session or bearer token), as authentik's `{"user": …}`; 403 without one |
//! | `GET /flows/-/cancel/` | drop the plans; redirect to a relative `next` or the invalidation flow |
//! | `GET /flows/-/default/{designation}/` | the first applicable flow of a designation |
//! | `GET /flows/-/configure/{stage_uuid}/` | the stage's `configure_flow` for the logged-in user (password stage; login first when anonymous) |
//! | `GET /if/flow/{slug}/` | a minimal browser page that runs a flow |
//!
//! Sessions: the cookie `authflow_session` (opaque, `HttpOnly`, `SameSite=Lax`,
//! `Secure` when configured) keys the engine's [`SessionStore`](crate::store::SessionStore);
//! its id changes at login and logout. Once a session is logged in, state-changing
//! requests must carry the header `X-authentik-CSRF` equal to the `authentik_csrf`
//! cookie set at login.
//!
//! Requests no user deliberately made change nothing: requests a browser marks
//! `Sec-Fetch-Site: cross-site` are refused on the flow API, so are POSTs whose
//! `Origin` is another origin (older browsers, login CSRF); stages with side effects
//! (delete, logout, login, user write) never run on a GET but ask an
//! `ak-stage-consent` confirmation first
//! ([`StageKind::confirmation`](crate::stages::StageKind::confirmation)); and the flow
//! page starts a flow by itself only when it was not reached from another site.
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
mod config;
mod error;
mod executor;
#[cfg(feature = "blueprints")]
mod export;
mod me;
mod pool;
mod session;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

pub use config::{ConfigError, DEFAULT_QUERY_LIMIT, HttpConfig};
pub use error::ApiError;
pub use pool::{HASH_THREAD_PREFIX, HashPool};
pub use session::{CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE};
pub use tokens::ApiTokens;

use crate::Engine;

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) config: Arc<HttpConfig>,
}

/// The router with every route of the table above: [`executor_router`],
/// [`admin_router`] and [`page_router`] merged. It has no fallback, so it merges into a
/// host app that has its own; it is generic over the host's state `S`.
///
/// ```
/// # fn demo(engine: std::sync::Arc<authflow::Engine>) {
/// use authflow::http::{HttpConfig, router};
/// let app: axum::Router = axum::Router::new()
///     .route("/health", axum::routing::get(|| async { "ok" }))
///     .merge(router(engine, HttpConfig::default()))
///     .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "host 404") });
/// # let _ = app;
/// # }
/// ```
pub fn router<S: Clone + Send + Sync + 'static>(
    engine: Arc<Engine>,
    config: HttpConfig,
) -> Router<S> {
    let state = AppState {
        engine,
        config: Arc::new(config),
    };
    executor_routes()
        .merge(admin_routes())
        .merge(page_routes())
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}

/// Only the flow executor API, `/flows/-/cancel|default|configure/` and
/// `/api/v3/core/users/me/`.
pub fn executor_router<S: Clone + Send + Sync + 'static>(
    engine: Arc<Engine>,
    config: HttpConfig,
) -> Router<S> {
    finish(executor_routes(), engine, config)
}

/// Only the admin API: flow instances CRUD, `execute`, the inspector and export.
pub fn admin_router<S: Clone + Send + Sync + 'static>(
    engine: Arc<Engine>,
    config: HttpConfig,
) -> Router<S> {
    finish(admin_routes(), engine, config)
}

/// Only the browser page `/if/flow/{slug}/`.
pub fn page_router<S: Clone + Send + Sync + 'static>(
    engine: Arc<Engine>,
    config: HttpConfig,
) -> Router<S> {
    finish(page_routes(), engine, config)
}

fn finish<S: Clone + Send + Sync + 'static>(
    routes: Router<AppState>,
    engine: Arc<Engine>,
    config: HttpConfig,
) -> Router<S> {
    routes
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(AppState {
            engine,
            config: Arc::new(config),
        })
}

fn executor_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v3/flows/executor/{slug}/",
            get(executor::get).post(executor::post),
        )
        .route("/api/v3/core/users/me/", get(me::me))
        .route("/flows/-/cancel/", get(api::cancel))
        .route("/flows/-/default/{designation}/", get(api::default_flow))
        .route("/flows/-/configure/{stage}/", get(api::configure_flow))
}

fn admin_routes() -> Router<AppState> {
    let routes = Router::new()
        .route("/api/v3/flows/inspector/{slug}/", get(executor::inspector))
        .route("/api/v3/flows/instances/", get(api::list).post(api::create))
        .route(
            "/api/v3/flows/instances/{slug}/",
            get(api::retrieve).patch(api::update).delete(api::destroy),
        )
        .route("/api/v3/flows/instances/{slug}/execute/", get(api::execute));
    #[cfg(feature = "blueprints")]
    let routes = routes.route(
        "/api/v3/flows/instances/{slug}/export/",
        get(export::export),
    );
    routes
}

fn page_routes() -> Router<AppState> {
    Router::new().route("/if/flow/{slug}/", get(executor::page))
}
