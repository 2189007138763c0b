//! Policies: the checks bound to flows and stage bindings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PolicyId;

/// A policy (authentik's `Policy` subclasses).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy {
    /// Primary key.
    pub pk: PolicyId,
    /// Unique name.
    pub name: String,
    /// Emit a `policy_execution` event for every evaluation.
    #[serde(default)]
    pub execution_logging: bool,
    /// The kind of policy and its settings.
    pub kind: PolicyKind,
}

impl Policy {
    /// A policy with a fresh id.
    pub fn new(name: impl Into<String>, kind: PolicyKind) -> Self {
        Self {
            pk: PolicyId::new(),
            name: name.into(),
            execution_logging: false,
            kind,
        }
    }
}

/// The kind of a policy with its settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PolicyKind {
    /// An expression run by the engine's [`ExpressionEvaluator`](crate::policy::ExpressionEvaluator)
    /// (authentik's Python expressions; without an evaluator blueprint import refuses it,
    /// and evaluating it errors and yields the binding's `failure_result`).
    Expression {
        /// The expression source.
        expression: String,
    },
    /// Password strength rules.
    Password(PasswordPolicy),
    /// Passes when the reputation score is at or below the threshold (i.e. for *bad* actors).
    Reputation(ReputationPolicy),
    /// Returns a fixed result with the message "dummy".
    Dummy {
        /// The result.
        result: bool,
    },
    /// A host-defined policy: an evaluator registered on the engine by name
    /// ([`EngineBuilder::register_policy`](crate::EngineBuilder::register_policy)).
    Custom(CustomPolicy),
}

/// A host-defined policy: the name of an evaluator registered on the engine
/// ([`EngineBuilder::register_policy`](crate::EngineBuilder::register_policy)) and
/// that evaluator's settings. Plain data: it serialises like the built-in kinds.
///
/// Where it is bound decides what a failure does: bound to the flow it refuses the
/// flow; bound to a stage it **skips that stage** (authentik's semantics), it does not
/// deny. To deny at a point of the flow, bind it negated to a deny stage there — see
/// [`BindingTarget::Stage`](super::BindingTarget::Stage).
///
/// The name is resolved when the policy runs, through the engine's
/// [`Registry`](crate::registry::Registry). A name no evaluator is registered under
/// **fails closed**, whatever the binding's `negate` and `failure_result`: a flow
/// bound to it (directly or through a stage binding) does not start, and a stage whose
/// re-evaluated binding uses it denies — the message names the policy. Catalogue
/// writes cannot check names (the store does not know the engine's registry).
///
/// ```
/// use authflow::model::{CustomPolicy, Policy, PolicyKind};
/// let p = Policy::new("office-network", PolicyKind::Custom(
///     CustomPolicy::new("example.ip_allowlist").with_config(serde_json::json!({"cidr": "10.0.0.0/8"}))));
/// let json = serde_json::to_value(&p).unwrap();
/// assert_eq!(json["kind"]["type"], "custom");
/// assert_eq!(json["kind"]["name"], "example.ip_allowlist");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomPolicy {
    /// The registered evaluator's name, e.g. `example.ip_allowlist`.
    pub name: String,
    /// The evaluator's settings, given to it when it runs
    /// ([`PolicyRequest::config`](crate::policy::PolicyRequest::config)); `null` when it
    /// has none.
    #[serde(default)]
    pub config: Value,
}

impl CustomPolicy {
    /// A policy run by the evaluator registered under `name`, without settings.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            config: Value::Null,
        }
    }

    /// With these settings.
    #[must_use]
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }
}

/// Settings of the password policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordPolicy {
    /// Key in `prompt_data` (or the plan context) holding the password (default `password`).
    #[serde(default = "password_field")]
    pub password_field: String,
    /// Message on failure of a static rule.
    #[serde(default)]
    pub error_message: String,
    /// Check the static rules below (default true).
    #[serde(default = "yes")]
    pub check_static_rules: bool,
    /// Minimum number of characters.
    #[serde(default)]
    pub length_min: u32,
    /// Minimum number of ASCII digits.
    #[serde(default)]
    pub amount_digits: u32,
    /// Minimum number of uppercase letters.
    #[serde(default)]
    pub amount_uppercase: u32,
    /// Minimum number of lowercase letters.
    #[serde(default)]
    pub amount_lowercase: u32,
    /// Minimum number of symbols from `symbol_charset`.
    #[serde(default)]
    pub amount_symbols: u32,
    /// Characters that count as symbols.
    #[serde(default = "symbols")]
    pub symbol_charset: String,
    /// Look the password up in Have I Been Pwned's range API (through the host's
    /// [`PwnedPasswords`](crate::policy::PwnedPasswords) hook; without one the policy
    /// errors, naming this field).
    #[serde(default)]
    pub check_have_i_been_pwned: bool,
    /// How many times the password may appear in Have I Been Pwned (default 0).
    #[serde(default)]
    pub hibp_allowed_count: u64,
    /// Estimate the password's strength with zxcvbn (the `zxcvbn` crate, a port of the
    /// estimator authentik uses).
    #[serde(default)]
    pub check_zxcvbn: bool,
    /// The policy fails when the zxcvbn score (0–4) is at or below this (default 2).
    #[serde(default = "two")]
    pub zxcvbn_score_threshold: u32,
}

fn two() -> u32 {
    2
}

fn yes() -> bool {
    true
}

fn password_field() -> String {
    "password".into()
}

fn symbols() -> String {
    "!\\\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ ".into()
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            password_field: password_field(),
            error_message: String::new(),
            check_static_rules: true,
            length_min: 0,
            amount_digits: 0,
            amount_uppercase: 0,
            amount_lowercase: 0,
            amount_symbols: 0,
            symbol_charset: symbols(),
            check_have_i_been_pwned: false,
            hibp_allowed_count: 0,
            check_zxcvbn: false,
            zxcvbn_score_threshold: two(),
        }
    }
}

/// Settings of the reputation policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReputationPolicy {
    /// Count the client IP's score.
    #[serde(default = "yes")]
    pub check_ip: bool,
    /// Count the username's score.
    #[serde(default = "yes")]
    pub check_username: bool,
    /// Passes when the summed score is `<=` this (default −5).
    #[serde(default = "minus_five")]
    pub threshold: i64,
}

fn minus_five() -> i64 {
    -5
}

impl Default for ReputationPolicy {
    fn default() -> Self {
        Self {
            check_ip: true,
            check_username: true,
            threshold: -5,
        }
    }
}
