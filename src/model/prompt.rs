//! The prompt stage's settings and its fields.

use serde::{Deserialize, Serialize};

use super::{PolicyId, PromptId};

fn yes() -> bool {
    true
}

/// Field types of the prompt stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PromptType {
    /// Single-line text.
    #[serde(rename = "text")]
    Text,
    /// Multi-line text.
    #[serde(rename = "text_area")]
    TextArea,
    /// Read-only text (the current or initial value is always used).
    #[serde(rename = "text_read_only")]
    TextReadOnly,
    /// Read-only multi-line text.
    #[serde(rename = "text_area_read_only")]
    TextAreaReadOnly,
    /// Username: must not be taken.
    #[serde(rename = "username")]
    Username,
    /// Email address.
    #[serde(rename = "email")]
    Email,
    /// Password: two password fields must match.
    #[serde(rename = "password")]
    Password,
    /// Number.
    #[serde(rename = "number")]
    Number,
    /// Checkbox (boolean).
    #[serde(rename = "checkbox")]
    Checkbox,
    /// Radio buttons (one of the choices).
    #[serde(rename = "radio-button-group")]
    RadioButtonGroup,
    /// Dropdown (one of the choices).
    #[serde(rename = "dropdown")]
    Dropdown,
    /// Date `YYYY-MM-DD`.
    #[serde(rename = "date")]
    Date,
    /// Date and time (ISO 8601).
    #[serde(rename = "date-time")]
    DateTime,
    /// File as a data URI.
    #[serde(rename = "file")]
    File,
    /// Visual separator (no value).
    #[serde(rename = "separator")]
    Separator,
    /// Hidden field (the current or initial value, else the placeholder, is always used).
    #[serde(rename = "hidden")]
    Hidden,
    /// Static text (the current or initial value, else the placeholder, is always used
    /// and stored).
    #[serde(rename = "static")]
    Static,
    /// Info box (no value).
    #[serde(rename = "alert_info")]
    AlertInfo,
    /// Warning box (no value).
    #[serde(rename = "alert_warning")]
    AlertWarning,
    /// Danger box (no value).
    #[serde(rename = "alert_danger")]
    AlertDanger,
    /// Locale picker.
    #[serde(rename = "ak-locale")]
    AkLocale,
}

/// One field of a prompt stage (authentik's `Prompt`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prompt {
    /// Primary key.
    #[serde(default)]
    pub pk: PromptId,
    /// Unique name.
    #[serde(default)]
    pub name: String,
    /// Key under `prompt_data`.
    pub field_key: String,
    /// Label.
    pub label: String,
    /// Field type.
    #[serde(rename = "type", alias = "prompt_type")]
    pub prompt_type: PromptType,
    /// A value is required.
    #[serde(default = "yes")]
    pub required: bool,
    /// Placeholder; for dropdown and radio fields, the one choice (authentik's
    /// `get_choices` without an expression; `prompt_data["<field_key>__choices"]`
    /// overrides it with a list).
    #[serde(default)]
    pub placeholder: String,
    /// Initial value.
    #[serde(default)]
    pub initial_value: String,
    /// `placeholder` is an expression (authentik's `placeholder_expression`): the
    /// prompt stage evaluates it with the engine's
    /// [`ExpressionEvaluator`](crate::policy::ExpressionEvaluator) each time it shows
    /// the field; a list result gives a choice field its choices.
    #[serde(default)]
    pub placeholder_expression: bool,
    /// `initial_value` is an expression (authentik's `initial_value_expression`).
    #[serde(default)]
    pub initial_value_expression: bool,
    /// Help text.
    #[serde(default)]
    pub sub_text: String,
    /// Position.
    #[serde(default)]
    pub order: i32,
}

impl Prompt {
    /// A required field whose placeholder is its label.
    pub fn new(
        field_key: impl Into<String>,
        label: impl Into<String>,
        prompt_type: PromptType,
        order: i32,
    ) -> Self {
        let field_key = field_key.into();
        let label = label.into();
        Self {
            pk: PromptId::new(),
            name: field_key.clone(),
            placeholder: label.clone(),
            field_key,
            label,
            prompt_type,
            required: true,
            initial_value: String::new(),
            placeholder_expression: false,
            initial_value_expression: false,
            sub_text: String::new(),
            order,
        }
    }

    /// Makes the field optional.
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }
}

/// Settings of the prompt stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PromptStage {
    /// Fields, shown by `order`.
    pub fields: Vec<Prompt>,
    /// Policies that validate the submitted data (mode all); their messages become
    /// `non_field_errors`.
    #[serde(default)]
    pub validation_policies: Vec<PolicyId>,
}
