//! Settings of the HTTP adapter.

use std::sync::Arc;

use super::ApiTokens;

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
}

/// A setting of [`HttpConfig`] was refused; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

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
            .finish_non_exhaustive()
    }
}
