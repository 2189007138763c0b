//! What the host tells the engine about an HTTP request.

use crate::paths::{MountPath, Paths};
use crate::plan::SessionId;

/// The request context for [`Engine::plan`](crate::Engine::plan) and
/// [`Engine::step`](crate::Engine::step).
#[derive(Debug, Clone, Default)]
pub struct FlowRequest {
    /// The session, if the client has one. Without it the engine starts a new one and
    /// returns its id in the [`Outcome`](crate::Outcome).
    pub session_id: Option<SessionId>,
    /// The raw `query` parameter of the executor URL: the flow interface's own query
    /// string (holds `next`).
    pub query: String,
    /// The executor URL's own top-level `next` (used when a flow does not apply).
    pub next: Option<String>,
    /// The client's IP address.
    pub client_ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The request was authenticated as an outpost (for `require_outpost`).
    pub is_outpost: bool,
    /// The prefix authflow's routes are served under (default: the root). Every link
    /// the engine gives out (redirects to flow pages, `cancel_url`, the identification
    /// stage's enroll/recovery/passwordless links, `export_url`) starts with it.
    pub base_path: MountPath,
    /// The origin the client reached the server at (`https://auth.example.com`,
    /// `http://localhost:9000`): the HTTP layer sets the configured external URL, else
    /// the request's `Host` (with `https://` when cookies are `Secure`, else `http://`). WebAuthn takes its relying-party id (the
    /// host name) and the origin it expects in the client data from it; without it the
    /// WebAuthn stages deny access.
    pub origin: Option<String>,
}

impl FlowRequest {
    /// A request for a session with a query string.
    pub fn new(session_id: Option<SessionId>, query: impl Into<String>) -> Self {
        Self {
            session_id,
            query: query.into(),
            ..Self::default()
        }
    }

    /// Sets the client IP.
    pub fn with_client_ip(mut self, ip: impl Into<String>) -> Self {
        self.client_ip = Some(ip.into());
        self
    }

    /// Sets the prefix authflow's routes are served under (see [`FlowRequest::base_path`]).
    ///
    /// ```
    /// use authflow::{FlowRequest, paths::MountPath};
    /// let req = FlowRequest::default().with_base_path(MountPath::new("/auth")?);
    /// assert_eq!(req.paths().flow_page("login", ""), "/auth/if/flow/login/");
    /// # Ok::<(), authflow::paths::InvalidMountPath>(())
    /// ```
    pub fn with_base_path(mut self, base: MountPath) -> Self {
        self.base_path = base;
        self
    }

    /// The links of this request's mount (see [`Paths`]).
    pub fn paths(&self) -> Paths<'_> {
        self.base_path.paths()
    }
}

/// Reads one parameter from a URL-encoded query string.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Whether `url` is a safe same-site relative URL to redirect to: it starts with one
/// `/`, is not scheme- or protocol-relative (`//host`, `/\host`), and has no control
/// characters or backslashes. Everything else is refused (no open redirects).
pub fn is_safe_relative_url(url: &str) -> bool {
    let bytes = url.as_bytes();
    matches!(bytes.first(), Some(b'/'))
        && !matches!(bytes.get(1), Some(b'/') | Some(b'\\'))
        && !url.chars().any(|c| c.is_control() || c == '\\')
        && url.len() <= 2048
}
