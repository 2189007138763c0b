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
//! | `GET/POST /api/v3/stages/invitation/invitations/` | list / create invitations (superusers) |
//! | `GET/DELETE /api/v3/stages/invitation/invitations/{pk}/` | read / delete an invitation |
//! | `GET /api/v3/flows/instances/{slug}/execute/` | start a flow for a token-authenticated client |
//! | `GET /api/v3/flows/instances/{slug}/export/` | the flow as an authentik blueprint (feature `blueprints`) |
//! | `GET /api/v3/core/users/me/` | the logged-in user (session or bearer token), as authentik's `{"user": …}`; 403 without one |
//! | `GET /api/v3/authenticators/all/` | the logged-in user's MFA devices (authentik's `DeviceSerializer`, no secrets) |
//! | `DELETE /api/v3/authenticators/{totp,static,webauthn}/{pk}/` | removes one of the user's own devices (same-site only), event `device_removed` |
//! | `GET /flows/-/cancel/` | drop the plans; redirect to a relative `next` or the invalidation flow |
//! | `GET /flows/-/default/{designation}/` | the first applicable flow of a designation |
//! | `GET /flows/-/configure/{stage_uuid}/` | the stage's `configure_flow` for the logged-in user (password stage; login first when anonymous) |
//! | `GET /if/flow/{slug}/` | a minimal browser page that runs a flow |
//!
//! Paths are relative to where the host mounts the router: nested under a prefix
//! (`Router::new().nest("/auth", …)`), set the same prefix with
//! [`HttpConfig::with_mount_path`] and every link the server gives out follows it.
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
//! Mount it in an existing app — here under `/auth` (every link it gives out then starts
//! with `/auth`, see [`HttpConfig::with_mount_path`]), served with `ConnectInfo` so that
//! IP-based checks see the client's address (behind a reverse proxy, also set
//! [`HttpConfig::with_trusted_proxies`]); a host route gets the logged-in user with
//! [`LoggedIn`]:
//!
//! ```no_run
//! # async fn demo(engine: std::sync::Arc<authflow::Engine>) -> Result<(), Box<dyn std::error::Error>> {
//! use authflow::http::{Authflow, HttpConfig, LoggedIn};
//! let config = HttpConfig::default()
//!     .with_mount_path("/auth")?
//!     .with_trusted_proxies(["127.0.0.1"])?;
//! let auth = Authflow::new(engine, config);
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .route("/me", axum::routing::get(|LoggedIn(user): LoggedIn| async move { user.username }))
//!     .nest("/auth", auth.router())
//!     .with_state(auth);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//! )
//! .await?;
//! # Ok(())
//! # }
//! ```

mod api;
mod authenticators;
mod client_ip;
mod config;
mod datetime;
mod error;
mod executor;
#[cfg(feature = "blueprints")]
mod export;
mod first_get;
mod handle;
mod invitations;
mod logged_in;
mod me;
mod page_csp;
mod pool;
mod session;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

pub use client_ip::TrustedProxies;
pub use config::{ConfigError, DEFAULT_QUERY_LIMIT, HttpConfig};
pub use error::ApiError;
pub use handle::Authflow;
pub use logged_in::LoggedIn;
pub use pool::{HASH_THREAD_PREFIX, HashPool};
pub use session::{CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE};
pub use tokens::ApiTokens;

use crate::Engine;

/// Shared state of the handlers.
pub(crate) type AppState = Authflow;

/// The router with every route of the table above: [`executor_router`],
/// [`admin_router`] and [`page_router`] merged. It has no fallback, so it merges into a
/// host app that has its own; it is generic over the host's state `S`. Nest it under a
/// prefix with [`HttpConfig::with_mount_path`] set to the same prefix, so that the
/// links it gives out follow:
///
/// ```
/// # fn demo(engine: std::sync::Arc<authflow::Engine>) -> Result<(), authflow::http::ConfigError> {
/// use authflow::http::{HttpConfig, router};
/// let app: axum::Router = axum::Router::new()
///     .route("/health", axum::routing::get(|| async { "ok" }))
///     .nest("/auth", router(engine, HttpConfig::default().with_mount_path("/auth")?))
///     .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "host 404") });
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
pub fn router<S: Clone + Send + Sync + 'static>(
    engine: Arc<Engine>,
    config: HttpConfig,
) -> Router<S> {
    Authflow::new(engine, config).router()
}

/// Only the flow executor API, `/flows/-/cancel|default|configure/` and
/// `/api/v3/core/users/me/`.
pub fn executor_router<S: Clone + Send + Sync + 'static>(
    engine: Arc<Engine>,
    config: HttpConfig,
) -> Router<S> {
    Authflow::new(engine, config).executor_router()
}

/// Only the admin API: flow instances CRUD, `execute`, the inspector and export.
pub fn admin_router<S: Clone + Send + Sync + 'static>(
    engine: Arc<Engine>,
    config: HttpConfig,
) -> Router<S> {
    Authflow::new(engine, config).admin_router()
}

/// Only the browser page `/if/flow/{slug}/`.
pub fn page_router<S: Clone + Send + Sync + 'static>(
    engine: Arc<Engine>,
    config: HttpConfig,
) -> Router<S> {
    Authflow::new(engine, config).page_router()
}

fn finish<S: Clone + Send + Sync + 'static>(
    routes: Router<AppState>,
    state: Authflow,
) -> Router<S> {
    routes
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}

pub(crate) fn executor_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v3/flows/executor/{slug}/",
            get(executor::get).post(executor::post),
        )
        .route("/api/v3/core/users/me/", get(me::me))
        .route("/api/v3/authenticators/all/", get(authenticators::list))
        .route(
            "/api/v3/authenticators/{class}/{pk}/",
            axum::routing::delete(authenticators::destroy),
        )
        .route("/flows/-/cancel/", get(api::cancel))
        .route("/flows/-/default/{designation}/", get(api::default_flow))
        .route("/flows/-/configure/{stage}/", get(api::configure_flow))
}

pub(crate) fn admin_routes() -> Router<AppState> {
    let routes = Router::new()
        .route("/api/v3/flows/inspector/{slug}/", get(executor::inspector))
        .route("/api/v3/flows/instances/", get(api::list).post(api::create))
        .route(
            "/api/v3/flows/instances/{slug}/",
            get(api::retrieve).patch(api::update).delete(api::destroy),
        )
        .route("/api/v3/flows/instances/{slug}/execute/", get(api::execute))
        .route(
            "/api/v3/stages/invitation/invitations/",
            get(invitations::list).post(invitations::create),
        )
        .route(
            "/api/v3/stages/invitation/invitations/{pk}/",
            get(invitations::retrieve).delete(invitations::destroy),
        );
    #[cfg(feature = "blueprints")]
    let routes = routes.route(
        "/api/v3/flows/instances/{slug}/export/",
        get(export::export),
    );
    routes
}

pub(crate) fn page_routes() -> Router<AppState> {
    Router::new().route("/if/flow/{slug}/", get(executor::page))
}
