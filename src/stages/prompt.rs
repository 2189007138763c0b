//! `ak-stage-prompt`: renders form fields and validates them: types, required,
//! email format, choices, `password == password_repeat`, username not taken, and the
//! stage's validation policies (their messages become `non_field_errors`).

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{Fields, Response, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::challenge::{
    Challenge, ChallengeBody, ErrorDetail, PromptChallenge, PromptChoice, StagePrompt,
};
use crate::model::{
    BindingSubject, BindingTarget, PolicyBinding, PolicyEngineMode, Prompt, PromptStage,
    PromptType, UserField,
};
use crate::plan::{PlanContext, keys};
use crate::policy::PolicyRequest;
use crate::store::{ResolvedBinding, validate_username};

/// Longest value of a text field; files (data URIs) may be up to 1 MiB.
const MAX_TEXT: usize = 4096;
const MAX_FILE: usize = 1 << 20;

/// `Python`'s `str()` of a value, as authentik puts choices and initial values in the
/// challenge (strings as they are).
pub(super) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Python truthiness (authentik's `if default:`).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// authentik's `Prompt.get_choices`: for dropdown and radio fields,
/// `prompt_data["<field_key>__choices"]` when present (a list, or one value), else the
/// placeholder as one choice (authflow evaluates no placeholder expressions).
fn choices(prompt: &Prompt, prompt_data: Option<&Map<String, Value>>) -> Option<Vec<String>> {
    if !matches!(
        prompt.prompt_type,
        PromptType::Dropdown | PromptType::RadioButtonGroup
    ) {
        return None;
    }
    let key = format!("{}{CHOICES_SUFFIX}", prompt.field_key);
    Some(match prompt_data.and_then(|d| d.get(&key)) {
        Some(Value::Array(a)) => a.iter().map(value_text).collect(),
        Some(v) => vec![value_text(v)],
        None if prompt.placeholder_expression => {
            super::prompt_expressions::evaluated_choices(prompt)
        }
        None => vec![prompt.placeholder.clone()],
    })
}

/// The suffix of the `prompt_data` key that overrides a choice field's choices.
pub const CHOICES_SUFFIX: &str = "__choices";

fn challenge_choices(choices: Option<Vec<String>>) -> Option<Vec<PromptChoice>> {
    choices.map(|c| {
        c.into_iter()
            .map(|s| PromptChoice {
                value: s.clone(),
                label: s,
            })
            .collect()
    })
}

/// authentik's `Prompt.get_initial_value`: the value already in `prompt_data`, else
/// `initial_value`; for choice fields a value that is not a choice becomes the first
/// choice.
fn initial_value(prompt: &Prompt, prompt_data: Option<&Map<String, Value>>) -> Value {
    let value = prompt_data
        .and_then(|d| d.get(&prompt.field_key))
        .cloned()
        .unwrap_or_else(|| Value::String(prompt.initial_value.clone()));
    match choices(prompt, prompt_data) {
        Some(c) if c.is_empty() => Value::String(String::new()),
        Some(c) if !c.contains(&value_text(&value)) => {
            Value::String(c.into_iter().next().unwrap_or_default())
        }
        _ => value,
    }
}

/// The value a hidden, static or read-only field always has (authentik's
/// `PromptChallengeResponse.validate` stores the field's default): the current value
/// when it is not empty, else (hidden and static only) the placeholder, else `""`.
fn fixed_value(prompt: &Prompt, prompt_data: Option<&Map<String, Value>>) -> Value {
    let current = initial_value(prompt, prompt_data);
    if truthy(&current) {
        current
    } else if matches!(prompt.prompt_type, PromptType::Hidden | PromptType::Static) {
        Value::String(prompt.placeholder.clone())
    } else {
        Value::String(String::new())
    }
}

fn carries_no_value(t: PromptType) -> bool {
    matches!(
        t,
        PromptType::Separator
            | PromptType::AlertInfo
            | PromptType::AlertWarning
            | PromptType::AlertDanger
    )
}

/// Fields whose value the user cannot change.
fn forced_default(t: PromptType) -> bool {
    matches!(
        t,
        PromptType::Hidden
            | PromptType::Static
            | PromptType::TextReadOnly
            | PromptType::TextAreaReadOnly
    )
}

/// authentik's DRF `IntegerField`: an integer, or text of one (a trailing `.0` allowed).
fn parse_integer(s: &str) -> Option<i64> {
    let t = s.trim_end();
    let t = match t.rfind('.') {
        Some(i) if t.get(i + 1..).is_some_and(|r| r.bytes().all(|b| b == b'0')) => {
            t.get(..i).unwrap_or_default()
        }
        _ => t,
    };
    t.trim().parse().ok()
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no
/// whitespace.
pub(crate) fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && s.get(5..7)
            .and_then(|m| m.parse::<u8>().ok())
            .is_some_and(|m| (1..=12).contains(&m))
        && s.get(8..10)
            .and_then(|d| d.parse::<u8>().ok())
            .is_some_and(|d| (1..=31).contains(&d))
}

fn is_datetime(s: &str) -> bool {
    s.get(..10).is_some_and(is_date)
        && matches!(s.as_bytes().get(10), Some(b'T') | Some(b' '))
        && s.len() <= 40
}

impl PromptStage {
    fn sorted(&self) -> Vec<&Prompt> {
        let mut fields: Vec<&Prompt> = self.fields.iter().collect();
        fields.sort_by_key(|p| p.order);
        fields
    }

    fn build(&self, ctx: &StageContext<'_>) -> Challenge {
        let existing = ctx.context.prompt_data();
        let fields = self
            .sorted()
            .into_iter()
            .map(|p| {
                // authflow never echoes a password back into the form.
                let initial = if p.prompt_type == PromptType::Password {
                    p.initial_value.clone()
                } else {
                    value_text(&initial_value(p, existing))
                };
                StagePrompt {
                    field_key: p.field_key.clone(),
                    label: p.label.clone(),
                    prompt_type: p.prompt_type,
                    required: p.required,
                    // Choice fields use the placeholder for their choices.
                    placeholder: if choices(p, None).is_some() {
                        String::new()
                    } else {
                        p.placeholder.clone()
                    },
                    initial_value: initial,
                    order: p.order,
                    sub_text: p.sub_text.clone(),
                    choices: challenge_choices(choices(p, existing)),
                }
            })
            .collect();
        Challenge::new(ChallengeBody::Prompt(PromptChallenge { fields }))
    }

    async fn validate_field(
        &self,
        ctx: &StageContext<'_>,
        fields: &mut Fields<'_>,
        prompt: &Prompt,
    ) -> Result<Option<Value>, StageError> {
        let key = prompt.field_key.as_str();
        let t = prompt.prompt_type;
        let existing = ctx.context.prompt_data();
        if forced_default(t) {
            return Ok(Some(fixed_value(prompt, existing)));
        }
        if t == PromptType::Checkbox {
            let v = fields.boolean(key, false).unwrap_or(false);
            if prompt.required && !v {
                fields.error(key, ErrorDetail::new("This field is required.", "required"));
            }
            return Ok(Some(Value::Bool(v)));
        }
        let max = if t == PromptType::File {
            MAX_FILE
        } else {
            MAX_TEXT
        };
        // authentik's `Prompt.field`: text and text areas keep their whitespace; text,
        // text areas, emails and locales may be blank when optional, and a blank value
        // is stored (it clears the user's field in a settings flow).
        let trim = !matches!(
            t,
            PromptType::Password | PromptType::Text | PromptType::TextArea
        );
        let allow_blank = !prompt.required
            && matches!(
                t,
                PromptType::Text | PromptType::TextArea | PromptType::Email | PromptType::AkLocale
            );
        if allow_blank {
            if let Some(Value::String(raw)) = fields.raw(key) {
                let blank = if trim {
                    raw.trim().is_empty()
                } else {
                    raw.is_empty()
                };
                if blank {
                    return Ok(Some(Value::String(String::new())));
                }
            }
        }
        let Some(value) = fields.string(key, prompt.required, trim, max) else {
            return Ok(None);
        };
        let invalid = |fields: &mut Fields<'_>, msg: &str| {
            fields.error(key, ErrorDetail::invalid(msg));
            Ok(None)
        };
        match t {
            PromptType::Number => {
                return match parse_integer(&value) {
                    Some(n) => Ok(Some(Value::from(n))),
                    None => invalid(fields, "A valid integer is required."),
                };
            }
            PromptType::Date if !is_date(&value) => {
                return invalid(
                    fields,
                    "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
                );
            }
            PromptType::DateTime if !is_datetime(&value) => {
                return invalid(
                    fields,
                    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
                );
            }
            PromptType::File if !value.starts_with("data:") => {
                return invalid(fields, "Invalid file: expected a data URI.");
            }
            PromptType::Dropdown | PromptType::RadioButtonGroup => {
                let ok = choices(prompt, existing)
                    .unwrap_or_default()
                    .contains(&value);
                if !ok {
                    fields.error(
                        key,
                        ErrorDetail::new(
                            format!("\"{value}\" is not a valid choice."),
                            "invalid_choice",
                        ),
                    );
                    return Ok(None);
                }
            }
            PromptType::Username => {
                if let Err(message) = validate_username(&value) {
                    return invalid(fields, message);
                }
                if identifier_taken(ctx, &value).await? {
                    return invalid(fields, "Username is already taken.");
                }
            }
            PromptType::Email => {
                if !is_valid_email(&value) {
                    return invalid(fields, "Enter a valid email address.");
                }
                if identifier_taken(ctx, &value).await? {
                    return invalid(fields, "Email address is already in use.");
                }
            }
            _ => {}
        }
        Ok(Some(Value::String(value)))
    }
}

/// Whether another user already has `value` as username or email (compared as
/// [`canonical_identifier`](crate::store::canonical_identifier) does): usernames and
/// emails share one namespace, so no identifier can name two accounts. Changing one's
/// own settings keeps one's own identifiers.
async fn identifier_taken(ctx: &StageContext<'_>, value: &str) -> Result<bool, StageError> {
    let own = ctx
        .pending_user()
        .and_then(|p| p.pk)
        .or(ctx.request_user.map(|u| u.pk.clone()));
    for field in [UserField::Username, UserField::Email] {
        if let Some(existing) = ctx.env.users.find_user(field, value, true).await? {
            if own.as_ref() != Some(&existing.pk) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[async_trait]
impl StageKind for PromptStage {
    fn component(&self) -> Option<&str> {
        Some("ak-stage-prompt")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_prompt.promptstage",
            verbose_name: "Prompt Stage",
            form_component: "ak-stage-prompt-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let stage = super::prompt_expressions::evaluated(self, ctx).await;
        Ok(StageOutcome::Challenge(stage.build(ctx)))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        let evaluated = super::prompt_expressions::evaluated(self, ctx).await;
        let stage: &PromptStage = &evaluated;
        let mut fields = Fields::new(response);
        let mut data = Map::new();
        for prompt in stage.sorted() {
            if carries_no_value(prompt.prompt_type) {
                continue;
            }
            if let Some(v) = stage.validate_field(ctx, &mut fields, prompt).await? {
                data.insert(prompt.field_key.clone(), v);
            }
        }
        if !fields.has_errors() {
            // Whole-object checks run only when every field is valid (as DRF does).
            // authentik's `PromptChallengeResponse.validate`: compared only when the
            // stage has exactly two password fields.
            let passwords: Vec<Option<&Value>> = stage
                .sorted()
                .into_iter()
                .filter(|p| p.prompt_type == PromptType::Password)
                .map(|p| data.get(&p.field_key))
                .collect();
            if let [a, b] = passwords.as_slice() {
                if a != b {
                    fields.non_field("Passwords don't match.");
                }
            }
        }
        if !fields.has_errors() && !self.validation_policies.is_empty() {
            let messages = self.run_validation_policies(ctx, &data).await?;
            if let Some(messages) = messages {
                for m in messages {
                    fields.non_field(m);
                }
            }
        }
        if fields.has_errors() {
            let mut c = stage.build(ctx);
            c.response_errors = fields.into_errors();
            return Ok(StageOutcome::Invalid(c));
        }
        ctx.context.update_prompt_data(|d| d.extend(data));
        Ok(StageOutcome::Done)
    }
}

impl PromptStage {
    /// Runs the validation policies (mode all) on a context holding only this stage's
    /// values as `prompt_data`. `Some(messages)` when they fail.
    async fn run_validation_policies(
        &self,
        ctx: &StageContext<'_>,
        data: &Map<String, Value>,
    ) -> Result<Option<Vec<String>>, StageError> {
        let bindings: Vec<ResolvedBinding> = self
            .validation_policies
            .iter()
            .enumerate()
            .map(|(i, id)| ResolvedBinding {
                binding: PolicyBinding::new(
                    BindingTarget::Stage(ctx.binding.pk),
                    BindingSubject::Policy(*id),
                    i as i32,
                ),
                policy: ctx.definition.validation_policies.get(id).cloned(),
            })
            .collect();
        // authentik's `PromptChallengeResponse.validate`: the policies see only
        // `{"prompt_data": <this stage's values>}`.
        let mut context = PlanContext::new();
        context.insert(keys::PROMPT_DATA, Value::Object(data.clone()));
        let subject = match ctx.pending_user_record().await? {
            Some(u) => Some(u),
            None => ctx.request_user.cloned(),
        };
        let username = subject.as_ref().map(|u| u.username.clone());
        let mut request = PolicyRequest {
            user: subject.as_ref(),
            username: username.as_deref(),
            context: &mut context,
            flow_plan: false,
            flow: ctx.flow,
            client_ip: ctx.request.client_ip.as_deref(),
            env: ctx.env,
            hooks: ctx.hooks,
            config: &Value::Null,
        };
        let result = crate::policy::evaluate(&bindings, PolicyEngineMode::All, &mut request).await;
        Ok((!result.passing).then(|| {
            if result.messages.is_empty() {
                vec!["Validation failed.".to_owned()]
            } else {
                result.messages
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_format() {
        assert!(is_valid_email("a@b.example"));
        assert!(!is_valid_email("a@b"));
        assert!(!is_valid_email("@b.example"));
        assert!(!is_valid_email("a b@c.example"));
        assert!(!is_valid_email("a@@b.example"));
    }

    #[test]
    fn dates() {
        assert!(is_date("2026-11-23"));
        assert!(!is_date("2026-13-01"));
        assert!(!is_date("26-11-23"));
        assert!(is_datetime("2026-11-23T10:00:00Z"));
        assert!(!is_datetime("2026-11-23"));
    }
}
