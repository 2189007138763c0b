//! A prompt's `placeholder_expression` / `initial_value_expression` (authentik's
//! `Prompt.get_placeholder` / `get_initial_value` in `authentik/stages/prompt/models.py`):
//! the field's `placeholder` or `initial_value` is an expression, evaluated with the
//! engine's [`ExpressionEvaluator`](crate::policy::ExpressionEvaluator) each time the
//! stage shows or validates the field.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::StageContext;
use super::prompt::value_text;
use crate::model::{Prompt, PromptStage, PromptType};
use crate::policy::ValueRequest;

/// Whether a prompt lists its choices in the placeholder (dropdown, radio buttons).
pub(super) fn is_choice(t: PromptType) -> bool {
    matches!(t, PromptType::Dropdown | PromptType::RadioButtonGroup)
}

/// The choices an evaluated placeholder holds: the JSON text the evaluation stored (a
/// list, or one value).
pub(super) fn evaluated_choices(prompt: &Prompt) -> Vec<String> {
    match serde_json::from_str::<Value>(&prompt.placeholder) {
        Ok(Value::Array(a)) => a.iter().map(value_text).collect(),
        Ok(Value::Null) => Vec::new(),
        Ok(v) => vec![value_text(&v)],
        Err(_) => Vec::new(),
    }
}

/// The stage with its prompts' expressions replaced by their values. An expression
/// that fails — or that no evaluator can run — leaves the value empty (authentik logs
/// the error and shows the field without it): an expression's source is never shown.
/// A choice field's evaluated placeholder is kept as JSON text for
/// [`evaluated_choices`].
pub(super) async fn evaluated<'s>(
    stage: &'s PromptStage,
    ctx: &StageContext<'_>,
) -> Cow<'s, PromptStage> {
    if !stage
        .fields
        .iter()
        .any(|p| p.placeholder_expression || p.initial_value_expression)
    {
        return Cow::Borrowed(stage);
    }
    let pending = ctx.pending_user_record().await.ok().flatten();
    let user = pending.as_ref().or(ctx.request_user);
    let empty = Map::new();
    let prompt_context = ctx.context.prompt_data().unwrap_or(&empty);
    let mut out = stage.clone();
    for prompt in &mut out.fields {
        let request = |what: &str| ValueRequest {
            name: &prompt.name,
            key: format!("prompt:{}:{what}", prompt.pk),
            user,
            prompt_context,
            context: ctx.context,
            flow: ctx.flow,
            client_ip: ctx.request.client_ip.as_deref(),
            env: ctx.env,
        };
        if prompt.placeholder_expression {
            let value = evaluate(ctx, &prompt.placeholder, &request("placeholder")).await;
            prompt.placeholder = if is_choice(prompt.prompt_type) {
                value.to_string()
            } else {
                value_text(&value)
            };
        }
        if prompt.initial_value_expression {
            let value = evaluate(ctx, &prompt.initial_value, &request("initial_value")).await;
            prompt.initial_value = value_text(&value);
        }
    }
    Cow::Owned(out)
}

async fn evaluate(ctx: &StageContext<'_>, source: &str, request: &ValueRequest<'_>) -> Value {
    let Some(evaluator) = &ctx.hooks.expressions else {
        return Value::Null;
    };
    evaluator
        .evaluate_value(source, request)
        .await
        .unwrap_or(Value::Null)
}
