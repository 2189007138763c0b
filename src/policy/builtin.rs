//! Built-in policy kinds: password rules and reputation.

use super::{PolicyError, PolicyOutcome, PolicyRequest};
use crate::model::{PasswordPolicy, ReputationPolicy};
use crate::plan::PlanContext;

/// Evaluates the password policy against `prompt_data[password_field]` or
/// `context[password_field]`.
pub(super) fn password(policy: &PasswordPolicy, context: &PlanContext) -> PolicyOutcome {
    let field = policy.password_field.as_str();
    let password = context
        .prompt_data()
        .and_then(|d| d.get(field))
        .or_else(|| context.get(field))
        .and_then(|v| v.as_str());
    let Some(password) = password else {
        return PolicyOutcome::fail("Password not set in context");
    };
    if policy.check_static_rules && !check_password_rules(policy, password) {
        let message = if policy.error_message.is_empty() {
            "Password does not meet the requirements.".to_owned()
        } else {
            policy.error_message.clone()
        };
        return PolicyOutcome::fail(message);
    }
    PolicyOutcome::pass()
}

/// Whether `password` satisfies the static rules (length and character classes).
pub fn check_password_rules(policy: &PasswordPolicy, password: &str) -> bool {
    let count = |f: &dyn Fn(char) -> bool| password.chars().filter(|c| f(*c)).count() as u64;
    (password.chars().count() as u64) >= u64::from(policy.length_min)
        && count(&|c| c.is_ascii_digit()) >= u64::from(policy.amount_digits)
        && count(&|c| c.is_uppercase()) >= u64::from(policy.amount_uppercase)
        && count(&|c| c.is_lowercase()) >= u64::from(policy.amount_lowercase)
        && count(&|c| policy.symbol_charset.contains(c)) >= u64::from(policy.amount_symbols)
}

/// Passes when the summed score of the client IP and/or username is at or below the
/// threshold: it is true for *bad* actors (used to add friction), as in authentik.
pub(super) async fn reputation(
    policy: &ReputationPolicy,
    request: &PolicyRequest<'_>,
) -> Result<PolicyOutcome, PolicyError> {
    let ip = if policy.check_ip {
        request.client_ip
    } else {
        None
    };
    let username = if policy.check_username {
        request.username
    } else {
        None
    };
    if ip.is_none() && username.is_none() {
        return Ok(PolicyOutcome::pass().with_passing(0 <= policy.threshold));
    }
    let score = request
        .env
        .reputation
        .score(ip, username)
        .await
        .map_err(|e| PolicyError(e.to_string()))?;
    Ok(PolicyOutcome::pass().with_passing(score <= policy.threshold))
}

impl PolicyOutcome {
    fn with_passing(mut self, passing: bool) -> Self {
        self.passing = passing;
        self
    }
}
