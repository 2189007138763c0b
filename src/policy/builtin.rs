//! Built-in policy kinds: password rules and reputation.

use super::{PolicyError, PolicyOutcome, PolicyRequest};
use crate::model::{PasswordPolicy, ReputationPolicy};
use crate::plan::PlanContext;

/// Evaluates the password policy against `prompt_data[password_field]` or
/// `context[password_field]`: the static rules, then Have I Been Pwned, then zxcvbn, the
/// first failing check deciding (authentik's `PasswordPolicy.passes`).
pub(super) async fn password(
    policy: &PasswordPolicy,
    request: &PolicyRequest<'_>,
) -> Result<PolicyOutcome, PolicyError> {
    let context: &PlanContext = request.context;
    let field = policy.password_field.as_str();
    let password = context
        .prompt_data()
        .and_then(|d| d.get(field))
        .or_else(|| context.get(field))
        .and_then(|v| v.as_str());
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Ok(PolicyOutcome::fail("Password not set in context"));
    };
    if policy.check_static_rules && !check_password_rules(policy, password) {
        let message = if policy.error_message.is_empty() {
            "Password does not meet the requirements.".to_owned()
        } else {
            policy.error_message.clone()
        };
        return Ok(PolicyOutcome::fail(message));
    }
    if policy.check_have_i_been_pwned {
        let Some(hook) = request.hooks.pwned.as_ref() else {
            return Err(PolicyError(
                "`check_have_i_been_pwned` is set but no Have I Been Pwned hook is registered (EngineBuilder::pwned_passwords)".into(),
            ));
        };
        let digest = sha1_smol::Sha1::from(password.as_bytes())
            .digest()
            .to_string()
            .to_ascii_uppercase();
        let body = hook.range(digest.get(..5).unwrap_or_default()).await?;
        let count = super::pwned::count_in(&body, &digest);
        if count > policy.hibp_allowed_count {
            return Ok(PolicyOutcome::fail(format!(
                "Password exists on {count} online lists."
            )));
        }
    }
    if policy.check_zxcvbn {
        let outcome = zxcvbn_check(policy, password, request.user);
        if !outcome.passing {
            return Ok(outcome);
        }
    }
    Ok(PolicyOutcome::pass())
}

/// zxcvbn over the first 100 characters, with the user's username, name and email as
/// inputs; passes when the score is above `zxcvbn_score_threshold`.
fn zxcvbn_check(
    policy: &PasswordPolicy,
    password: &str,
    user: Option<&crate::store::User>,
) -> PolicyOutcome {
    let head: String = password.chars().take(100).collect();
    let inputs: Vec<&str> = user
        .map(|u| vec![u.username.as_str(), u.name.as_str(), u.email.as_str()])
        .unwrap_or_default();
    let entropy = zxcvbn::zxcvbn(&head, &inputs);
    let score = u32::from(u8::from(entropy.score()));
    if score > policy.zxcvbn_score_threshold {
        return PolicyOutcome::pass();
    }
    let mut messages = vec!["Password is too weak.".to_owned()];
    if let Some(feedback) = entropy.feedback() {
        messages.extend(feedback.warning().map(|w| w.to_string()));
        messages.extend(feedback.suggestions().iter().map(|s| s.to_string()));
    }
    PolicyOutcome::new(false, messages)
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
///
/// With `check_ip` and no known client IP it fails closed: it passes (the request is
/// treated as a bad actor) with a message, instead of scoring only the username — a
/// host that serves without `ConnectInfo` must not lose its IP reputation check
/// silently. (authentik always has an IP: its middleware falls back to a placeholder.)
pub(super) async fn reputation(
    policy: &ReputationPolicy,
    request: &PolicyRequest<'_>,
) -> Result<PolicyOutcome, PolicyError> {
    if policy.check_ip && request.client_ip.is_none() {
        return Ok(PolicyOutcome::fail(UNKNOWN_IP).with_passing(true));
    }
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

/// The message of an IP-based check that could not see the client's address.
pub const UNKNOWN_IP: &str = "The client's IP address is unknown.";

impl PolicyOutcome {
    fn with_passing(mut self, passing: bool) -> Self {
        self.passing = passing;
        self
    }
}
