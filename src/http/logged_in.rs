//! [`LoggedIn`]: the logged-in user in a host's own axum routes.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::executor::refuse_foreign_origin;
use super::{Authflow, session};
use crate::store::User;

/// An axum extractor: the user logged in to the request's session (the
/// `authflow_session` cookie) or named by an API token (`Authorization: Bearer`,
/// [`HttpConfig::tokens`](super::HttpConfig::tokens)). Without one the handler does
/// not run and the client gets `401` with authflow's JSON error body
/// `{"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}`
/// (a lost store: `503`).
///
/// It reads the session through [`Engine::session_user`](crate::Engine::session_user),
/// so using it keeps an active user's session from idling out (see
/// [`session_touch`](crate::session_touch)). On requests other than `GET`, `HEAD` and
/// `OPTIONS` authenticated by the cookie it also enforces authflow's CSRF rule: the
/// `X-authentik-CSRF` header must echo the `authentik_csrf` cookie and a cross-origin
/// `Origin` is refused (`403`).
///
/// The state of the host's router must give an [`Authflow`] through
/// [`FromRef`]; the cookie is `Path=/`, so the host's routes see it wherever authflow
/// is mounted:
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, extract::FromRef, routing::get};
/// use authflow::http::{Authflow, HttpConfig, LoggedIn};
///
/// #[derive(Clone)]
/// struct AppState {
///     auth: Authflow,
///     greeting: &'static str,
/// }
///
/// impl FromRef<AppState> for Authflow {
///     fn from_ref(state: &AppState) -> Self {
///         state.auth.clone()
///     }
/// }
///
/// async fn me(LoggedIn(user): LoggedIn) -> String {
///     format!("hello {}", user.username)
/// }
///
/// # async fn demo(engine: Arc<authflow::Engine>) -> Result<(), Box<dyn std::error::Error>> {
/// let auth = Authflow::new(engine, HttpConfig::default().with_mount_path("/auth")?);
/// let app = Router::new()
///     .route("/me", get(me))
///     .nest("/auth", auth.router())
///     .with_state(AppState { auth, greeting: "hi" });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # if false {
/// axum::serve(
///     listener,
///     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
/// )
/// .await?;
/// # }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LoggedIn(pub User);

impl<S> FromRequestParts<S> for LoggedIn
where
    Authflow: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = Authflow::from_ref(state);
        logged_in(&app, parts)
            .await
            .map(LoggedIn)
            .map_err(IntoResponse::into_response)
    }
}

async fn logged_in(app: &Authflow, parts: &Parts) -> Result<User, ApiError> {
    if let Some(pk) = session::bearer_user(&parts.headers, &app.config) {
        return app
            .engine
            .env()
            .users
            .user(pk)
            .await?
            .filter(|u| u.is_active)
            .ok_or(ApiError::Unauthenticated);
    }
    let id = session::session_id(&parts.headers).ok_or(ApiError::Unauthenticated)?;
    let user = app
        .engine
        .session_user(&id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        refuse_foreign_origin(&parts.headers)?;
        if !session::csrf_ok(&parts.headers, &app.config, &id) {
            return Err(ApiError::Forbidden(
                "CSRF Failed: CSRF token missing or incorrect.".into(),
            ));
        }
    }
    Ok(user)
}
