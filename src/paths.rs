//! Where authflow's routes live: the one place that spells the paths of the links the
//! core and the HTTP adapter give out (flow page, cancel, default flows, export…), each
//! under the host's [`MountPath`].
//!
//! A host that serves authflow's routers under a prefix
//! (`Router::new().nest("/auth", authflow::http::router(…))`) sets the same prefix in
//! [`HttpConfig::with_mount_path`](crate::http::HttpConfig) (HTTP adapter) or on the
//! [`FlowRequest`](crate::FlowRequest) (engine called directly); every emitted link
//! then starts with it.

use std::fmt;

/// Longest accepted [`MountPath`], in bytes.
pub const MAX_MOUNT_PATH: usize = 256;

/// The prefix authflow's routes are mounted under: empty (the server's root, the
/// default) or `/seg[/seg…]` — starts with `/`, no trailing `/`, no empty, `.` or `..`
/// segment, and only unreserved URL characters (`A-Z a-z 0-9 - . _ ~`) in segments.
/// Being validated, it is safe to put into links, headers and the flow page.
///
/// ```
/// use authflow::paths::MountPath;
/// assert_eq!(MountPath::new("/auth")?.as_str(), "/auth");
/// assert_eq!(MountPath::new("")?.as_str(), "");
/// for bad in ["auth", "/auth/", "/", "//evil.example", "/a/../b", "/a b", "/a?x"] {
///     assert!(MountPath::new(bad).is_err(), "{bad}");
/// }
/// # Ok::<(), authflow::paths::InvalidMountPath>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MountPath(String);

/// A [`MountPath`] was refused; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mount path `{path}`: {reason}")]
pub struct InvalidMountPath {
    path: String,
    reason: &'static str,
}

impl MountPath {
    /// Validates a prefix (see the type's docs); `""` is the root.
    pub fn new(path: &str) -> Result<Self, InvalidMountPath> {
        let refuse = |reason| {
            Err(InvalidMountPath {
                path: path.chars().take(64).collect(),
                reason,
            })
        };
        if path.is_empty() {
            return Ok(Self::default());
        }
        if path.len() > MAX_MOUNT_PATH {
            return refuse("too long");
        }
        let Some(rest) = path.strip_prefix('/') else {
            return refuse("must start with `/`");
        };
        if rest.is_empty() || path.ends_with('/') {
            return refuse("must not end with `/` (use \"\" for the root)");
        }
        for segment in rest.split('/') {
            if segment.is_empty() {
                return refuse("empty segment (`//`)");
            }
            if segment == "." || segment == ".." {
                return refuse("`.` and `..` segments are not allowed");
            }
            let unreserved = segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            if !unreserved {
                return refuse("only A-Z a-z 0-9 - . _ ~ are allowed in segments");
            }
        }
        Ok(Self(path.to_owned()))
    }

    /// The prefix (`""` or `/auth`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the server's root (no prefix).
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The links under this prefix.
    pub fn paths(&self) -> Paths<'_> {
        Paths { base: &self.0 }
    }
}

impl fmt::Display for MountPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// authflow's routes under a [`MountPath`]; every method returns a path starting with
/// the prefix (relative to the server, never absolute).
///
/// ```
/// let base = authflow::paths::MountPath::new("/auth")?;
/// let paths = base.paths();
/// assert_eq!(paths.flow_page("login", ""), "/auth/if/flow/login/");
/// assert_eq!(paths.flow_page("login", "next=%2F"), "/auth/if/flow/login/?next=%2F");
/// assert_eq!(paths.cancel(Some("/app")), "/auth/flows/-/cancel/?next=%2Fapp");
/// # Ok::<(), authflow::paths::InvalidMountPath>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Paths<'a> {
    base: &'a str,
}

impl Paths<'_> {
    /// The prefix itself.
    pub fn base(&self) -> &str {
        self.base
    }

    /// The flow page `/if/flow/{slug}/`, with `?{query}` when `query` (the flow
    /// interface's query string, as in [`FlowRequest::query`](crate::FlowRequest)) is
    /// not empty — authentik's `reverse_with_qs`.
    pub fn flow_page(&self, slug: &str, query: &str) -> String {
        let slug = segment(slug);
        if query.is_empty() {
            format!("{}/if/flow/{slug}/", self.base)
        } else {
            format!("{}/if/flow/{slug}/?{query}", self.base)
        }
    }

    /// The flow executor API `/api/v3/flows/executor/{slug}/`.
    pub fn executor(&self, slug: &str) -> String {
        format!("{}/api/v3/flows/executor/{}/", self.base, segment(slug))
    }

    /// `/flows/-/cancel/`, with `?next=` (encoded) when given.
    pub fn cancel(&self, next: Option<&str>) -> String {
        match next {
            Some(next) => format!(
                "{}/flows/-/cancel/?next={}",
                self.base,
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            ),
            None => format!("{}/flows/-/cancel/", self.base),
        }
    }

    /// `/flows/-/default/{designation}/` (e.g. `authentication`, `invalidation`), with
    /// `?{query}` when `query` (already encoded) is not empty.
    pub fn default_flow(&self, designation: &str, query: &str) -> String {
        let designation = segment(designation);
        if query.is_empty() {
            format!("{}/flows/-/default/{designation}/", self.base)
        } else {
            format!("{}/flows/-/default/{designation}/?{query}", self.base)
        }
    }

    /// `/flows/-/configure/{stage}/`.
    pub fn configure(&self, stage: &str) -> String {
        format!("{}/flows/-/configure/{}/", self.base, segment(stage))
    }

    /// The flow's blueprint export `/api/v3/flows/instances/{slug}/export/`.
    pub fn flow_export(&self, slug: &str) -> String {
        format!(
            "{}/api/v3/flows/instances/{}/export/",
            self.base,
            segment(slug)
        )
    }
}

/// Percent-encodes what would end or escape a path segment (slugs are validated
/// `[-a-zA-Z0-9_]`, so this only guards values from elsewhere).
fn segment(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect(),
        )
    }
}
