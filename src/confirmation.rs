//! The confirmation a side-effect stage asks for before it runs (DESIGN §4 item 6:
//! no side effect without a deliberate request).
//!
//! A stage whose [`StageKind::confirmation`](crate::stages::StageKind::confirmation) is
//! `Some` and that is reached without a response accepted earlier in the same request
//! (a GET, or a POST that is addressed to this very stage) does not run. The engine
//! answers an `ak-stage-consent` challenge instead — `header_text` the stage's
//! question, no permissions, a random token kept in the plan context — that
//! authentik's own clients render as a consent prompt. Only a POST with
//! `component: ak-stage-consent` and that token (compared in constant time) lets the
//! stage run; the binding is then remembered as confirmed until the stage is done, so
//! a host stage with its own challenge is not asked twice.

use serde_json::Value;

use crate::challenge::{Challenge, ChallengeBody, ConsentChallenge, ErrorDetail};
use crate::input::Input;
use crate::model::{BindingId, NON_FIELD_ERRORS};
use crate::plan::{PlanContext, keys};
use crate::secret::constant_time_eq;

/// The component of the confirmation challenge (authentik's consent stage).
pub(crate) const COMPONENT: &str = "ak-stage-consent";

/// What the gate decided for the current stage.
pub(crate) enum Gate<'i> {
    /// The user confirmed this binding in an earlier request: run the stage with the
    /// input as usual.
    AlreadyConfirmed(Input<'i>),
    /// This request is the confirmation: the input is used up; run the stage as on entry.
    JustConfirmed,
    /// Show this confirmation challenge; the stage does not run.
    Ask(Box<Challenge>),
}

/// Decides whether the side-effect stage of `binding` may run with `input`.
pub(crate) fn gate<'i>(
    context: &mut PlanContext,
    binding: BindingId,
    question: String,
    input: Input<'i>,
    random: &dyn crate::random::Random,
) -> Gate<'i> {
    let binding = binding.to_string();
    if context.get_str(keys::CONFIRMED_BINDING) == Some(binding.as_str()) {
        return Gate::AlreadyConfirmed(input);
    }
    let error = match input {
        Input::Get => None,
        Input::NotAnObject(message) => Some(message.to_owned()),
        Input::Post(response) => match response.get("component") {
            Some(Value::String(c)) if c == COMPONENT => {
                let expected = context.get_str(keys::CONFIRMATION_TOKEN).unwrap_or("");
                let sent = response.get("token").and_then(Value::as_str).unwrap_or("");
                if !expected.is_empty() && constant_time_eq(sent, expected) {
                    context.remove(keys::CONFIRMATION_TOKEN);
                    context.insert(keys::CONFIRMED_BINDING, Value::String(binding));
                    return Gate::JustConfirmed;
                }
                Some("Invalid confirmation token, re-showing prompt".to_owned())
            }
            other => {
                let got: String = match other {
                    Some(Value::String(s)) => s.chars().take(64).collect(),
                    Some(v) => v.to_string().chars().take(64).collect(),
                    None => String::new(),
                };
                Some(format!(
                    "Invalid component `{got}`: the current stage expects `{COMPONENT}`."
                ))
            }
        },
    };
    let token = match context.get_str(keys::CONFIRMATION_TOKEN) {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => {
            // Random like the consent stage's token (a v4 UUID: 122 random bits).
            let t = random.token();
            context.insert(keys::CONFIRMATION_TOKEN, Value::String(t.clone()));
            t
        }
    };
    let challenge = Challenge::new(ChallengeBody::Consent(ConsentChallenge {
        header_text: Some(question),
        permissions: Vec::new(),
        additional_permissions: Vec::new(),
        token,
        ..Default::default()
    }));
    Gate::Ask(Box::new(match error {
        Some(message) => challenge.with_error(NON_FIELD_ERRORS, ErrorDetail::invalid(message)),
        None => challenge,
    }))
}

/// Forgets the confirmation once the confirmed stage is done.
pub(crate) fn clear(context: &mut PlanContext) {
    context.remove(keys::CONFIRMED_BINDING);
    context.remove(keys::CONFIRMATION_TOKEN);
}
