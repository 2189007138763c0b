//! [`FlowQuery`]: authentik's `query` parameter, typed.
//!
//! authentik's flow interface passes its own query string (`next=%2Fapp`) to the flow
//! executor as one parameter, encoded once more:
//! `/api/v3/flows/executor/{slug}/?query=next%3D%252Fapp`. The engine keeps it for the
//! whole flow (it is [`FlowRequest::query`](crate::FlowRequest::query)) and redirects
//! to its `next` at the end. Hosts build and read it with [`FlowQuery`] instead of
//! encoding by hand.

use crate::request::is_safe_relative_url;

/// The flow interface's query string (the value of authentik's `query` parameter), as
/// ordered key/value pairs.
///
/// ```
/// use authflow::FlowQuery;
/// let q = FlowQuery::new().next("/app?tab=1");
/// assert_eq!(q.to_string(), "next=%2Fapp%3Ftab%3D1");
/// assert_eq!(q.executor_param(), "query=next%3D%252Fapp%253Ftab%253D1");
/// // Read back from either form:
/// assert_eq!(FlowQuery::parse("next=%2Fapp%3Ftab%3D1").safe_next(), Some("/app?tab=1"));
/// let back = FlowQuery::from_executor_query("query=next%3D%252Fapp%253Ftab%253D1");
/// assert_eq!(back, q);
/// // Only a safe relative `next` is offered:
/// assert_eq!(FlowQuery::new().next("https://evil.example/").safe_next(), None);
/// assert_eq!(FlowQuery::new().next("//evil.example/").safe_next(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowQuery {
    pairs: Vec<(String, String)>,
}

impl FlowQuery {
    /// An empty query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the flow interface's query string (`next=%2Fapp`, a leading `?` allowed),
    /// i.e. [`FlowRequest::query`](crate::FlowRequest::query).
    pub fn parse(query: &str) -> Self {
        Self {
            pairs: form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// Reads the `query` parameter of an executor URL's query string
    /// (`query=next%3D%252Fapp&…`); empty when it has none.
    pub fn from_executor_query(executor_query: &str) -> Self {
        Self::parse(&crate::request::query_param(executor_query, "query").unwrap_or_default())
    }

    /// Sets `next`: where the browser goes when the flow is done. It is only followed
    /// when it is a safe relative URL (see [`is_safe_relative_url`]).
    pub fn next(self, url: impl Into<String>) -> Self {
        self.set("next", url)
    }

    /// Sets a parameter, replacing any of the same name.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.pairs.retain(|(k, _)| *k != key);
        self.pairs.push((key, value.into()));
        self
    }

    /// The first value of a parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `next` when it is a safe same-site relative URL ([`is_safe_relative_url`]);
    /// `None` when missing or unsafe (absolute, protocol-relative, backslashes…).
    pub fn safe_next(&self) -> Option<&str> {
        self.get("next").filter(|n| is_safe_relative_url(n))
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The whole executor parameter, `query=…` (the query string encoded once more, as
    /// authentik's clients send it).
    pub fn executor_param(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("query", &self.to_string())
            .finish()
    }
}

/// The flow interface's query string (`next=%2Fapp`): what goes after `?` on the flow
/// page and into [`FlowRequest::query`](crate::FlowRequest::query).
impl std::fmt::Display for FlowQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            s.append_pair(k, v);
        }
        f.write_str(&s.finish())
    }
}
