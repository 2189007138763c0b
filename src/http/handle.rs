//! [`Authflow`]: the engine and the HTTP settings together — the state of authflow's
//! routers, and what a host puts into its own state for [`LoggedIn`](super::LoggedIn).

use std::sync::Arc;

use axum::Router;

use super::HttpConfig;
use crate::Engine;

/// The engine with its [`HttpConfig`]: cheap to clone (two `Arc`s).
///
/// Build authflow's routers from it, and let host routes find it with axum's
/// [`FromRef`](axum::extract::FromRef) so they can use the
/// [`LoggedIn`](super::LoggedIn) extractor: either the host's state *is* an
/// `Authflow`, or the host's state holds one and implements `FromRef` for it.
#[derive(Clone)]
pub struct Authflow {
    pub(crate) engine: Arc<Engine>,
    pub(crate) config: Arc<HttpConfig>,
    /// First challenges of anonymous visitors ([`super::first_get`]).
    pub(crate) first_get: Arc<super::first_get::FirstGetCache>,
}

impl std::fmt::Debug for Authflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authflow")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Authflow {
    /// The handle for an engine and its HTTP settings.
    pub fn new(engine: Arc<Engine>, config: HttpConfig) -> Self {
        Self {
            engine,
            config: Arc::new(config),
            first_get: Arc::default(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The HTTP settings.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Every route ([`router`](super::router)).
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        super::finish(
            super::executor_routes()
                .merge(super::admin_routes())
                .merge(super::page_routes()),
            self.clone(),
        )
    }

    /// Only the executor routes ([`executor_router`](super::executor_router)).
    pub fn executor_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        super::finish(super::executor_routes(), self.clone())
    }

    /// Only the admin routes ([`admin_router`](super::admin_router)).
    pub fn admin_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        super::finish(super::admin_routes(), self.clone())
    }

    /// Only the flow page ([`page_router`](super::page_router)).
    pub fn page_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        super::finish(super::page_routes(), self.clone())
    }
}
