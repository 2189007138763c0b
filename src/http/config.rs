//! Settings of the HTTP adapter.

use std::sync::Arc;

use super::{ApiTokens, TrustedProxies};
use crate::paths::{MountPath, Paths};

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
    /// The server's public base URL (`https://auth.example.com`), without a trailing
    /// slash. Absolute links the server gives out (`execute`'s `link`) start with it;
    /// without it they are relative. Never taken from the request's `Host` header. Set
    /// it with [`HttpConfig::with_external_url`], which also turns on `Secure` cookies
    /// for an `https://` URL.
    pub external_url: Option<String>,
    /// The prefix the host serves authflow's routers under (default: the root). Set it
    /// with [`HttpConfig::with_mount_path`] to the prefix of
    /// `Router::new().nest("/auth", …)`; every link the server gives out (redirects,
    /// `cancel_url`, identification links, `export_url`, the flow page's API calls, the
    /// `execute` link) starts with it. It is not detected from the request: see
    /// [`HttpConfig::with_mount_path`].
    pub mount_path: MountPath,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers give the client's
    /// IP (default: none, the TCP peer is the client and those headers are ignored).
    /// Set it with [`HttpConfig::with_trusted_proxies`]; needs the server to run with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub trusted_proxies: TrustedProxies,
}

/// A setting of [`HttpConfig`] was refused; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

impl HttpConfig {
    /// Sets the public base URL (`http://` or `https://`, a host, an optional port; no
    /// path, query or fragment). An `https://` URL also marks cookies `Secure`.
    ///
    /// ```
    /// let config = authflow::http::HttpConfig::default()
    ///     .with_external_url("https://auth.example.com/")?;
    /// assert!(config.secure_cookies);
    /// assert_eq!(config.external_url.as_deref(), Some("https://auth.example.com"));
    /// assert!(authflow::http::HttpConfig::default().with_external_url("auth.example.com").is_err());
    /// # Ok::<(), authflow::http::ConfigError>(())
    /// ```
    pub fn with_external_url(mut self, url: &str) -> Result<Self, ConfigError> {
        let url = url.trim().trim_end_matches('/');
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(ConfigError(format!(
                "external URL `{url}`: must start with http:// or https://"
            )));
        };
        let valid_host = !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !valid_host {
            return Err(ConfigError(format!(
                "external URL `{url}`: expected scheme://host[:port] without path, query or credentials"
            )));
        }
        self.external_url = Some(url.to_owned());
        if https {
            self.secure_cookies = true;
        }
        Ok(self)
    }

    /// Serves every link under `prefix` — the path the host nests authflow's routers
    /// under (`/auth` for `Router::new().nest("/auth", router(…))`). It must start with
    /// `/`, not end with `/`, and have no `.`/`..` or empty segments
    /// ([`MountPath::new`]); `""` is the root.
    ///
    /// It is configured rather than detected from axum's `OriginalUri`: the executor
    /// links to the page router and back, which a host may mount at different places
    /// or behind a proxy that strips the prefix (neither is visible in the request),
    /// and a nest with a path parameter would let the client choose the prefix of the
    /// server's redirects. A request that shows it was nested under a different prefix
    /// logs a warning once.
    ///
    /// ```
    /// let config = authflow::http::HttpConfig::default().with_mount_path("/auth")?;
    /// assert_eq!(config.mount_path.as_str(), "/auth");
    /// assert!(authflow::http::HttpConfig::default().with_mount_path("/auth/").is_err());
    /// assert!(authflow::http::HttpConfig::default().with_mount_path("/a/../b").is_err());
    /// # Ok::<(), authflow::http::ConfigError>(())
    /// ```
    pub fn with_mount_path(mut self, prefix: &str) -> Result<Self, ConfigError> {
        self.mount_path = MountPath::new(prefix).map_err(|e| ConfigError(e.to_string()))?;
        Ok(self)
    }

    /// Believes `Forwarded: for=` / `X-Forwarded-For` from these proxies (IPs or CIDR
    /// ranges, see [`TrustedProxies`]): when the TCP peer is one of them, the client is
    /// the rightmost forwarded hop that is not; from any other peer those headers are
    /// ignored (a client cannot claim another address).
    ///
    /// ```
    /// let config = authflow::http::HttpConfig::default()
    ///     .with_trusted_proxies(["127.0.0.1", "10.0.0.0/8"])?;
    /// assert!(!config.trusted_proxies.is_empty());
    /// # Ok::<(), authflow::http::ConfigError>(())
    /// ```
    pub fn with_trusted_proxies<'a>(
        mut self,
        proxies: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ConfigError> {
        self.trusted_proxies = TrustedProxies::parse(proxies)?;
        Ok(self)
    }

    /// The server's links under [`HttpConfig::mount_path`].
    pub fn paths(&self) -> Paths<'_> {
        self.mount_path.paths()
    }

    /// An absolute link for `path` (which starts with `/`) when the external URL is set,
    /// else `path` itself (relative to the server).
    pub(crate) fn link(&self, path: &str) -> String {
        match &self.external_url {
            Some(base) => format!("{base}{path}"),
            None => path.to_owned(),
        }
    }
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
            external_url: None,
            mount_path: MountPath::default(),
            trusted_proxies: TrustedProxies::default(),
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
            .field("external_url", &self.external_url)
            .field("mount_path", &self.mount_path)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}
