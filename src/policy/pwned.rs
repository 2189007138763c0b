//! The host hook for the password policy's `check_have_i_been_pwned`: [`PwnedPasswords`].

use async_trait::async_trait;

use super::PolicyError;

/// Answers Have I Been Pwned's k-anonymity range query (the core does no network I/O).
///
/// authflow hashes the password with SHA-1 and asks only for the first five hex digits;
/// the hook returns the body of `GET https://api.pwnedpasswords.com/range/{prefix}`:
/// lines `SUFFIX:COUNT` (35 hex digits of the rest of the hash, then how often it was
/// seen), separated by `\r\n` or `\n`.
///
/// ```
/// use authflow::policy::{PolicyError, PwnedPasswords};
/// struct NothingPwned;
/// #[async_trait::async_trait]
/// impl PwnedPasswords for NothingPwned {
///     async fn range(&self, _prefix: &str) -> Result<String, PolicyError> {
///         Ok(String::new())
///     }
/// }
/// ```
#[async_trait]
pub trait PwnedPasswords: Send + Sync {
    /// The range API's answer for this five-digit uppercase hex prefix.
    async fn range(&self, prefix: &str) -> Result<String, PolicyError>;
}

/// How often the password with this SHA-1 hex digest (uppercase) appears in `body`.
pub(super) fn count_in(body: &str, digest: &str) -> u64 {
    let suffix = digest.get(5..).unwrap_or_default();
    body.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .find(|(hash, _)| hash.eq_ignore_ascii_case(suffix))
        .and_then(|(_, count)| count.trim().parse().ok())
        .unwrap_or(0)
}
