//! Wire types of authentik's flow-executor protocol: challenges (tagged by
//! `component`), [`FlowInfo`] and [`ErrorDetail`].
//!
//! Serialising a [`Challenge`] gives exactly the JSON authentik's executor answers,
//! plus the legacy `type` field (`native`, `redirect`, `shell`) that clients older
//! than authentik 2024.8 read.

mod captcha;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

mod email;
pub use email::EmailChallenge;

use crate::model::{FlowDesignation, FlowLayout, PromptType};

mod authenticator;
pub use authenticator::{
    AuthenticatorStaticChallenge, AuthenticatorTotpChallenge, AuthenticatorValidationChallenge,
    DeviceChallenge, SelectableStage,
};
pub use captcha::CaptchaChallenge;
mod authenticator_webauthn;
pub use authenticator_webauthn::AuthenticatorWebauthnChallenge;

/// One validation error: `{"string": "...", "code": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Human-readable message.
    pub string: String,
    /// Machine code (`invalid`, `required`, `blank`, `max_length`, …).
    pub code: String,
}

impl ErrorDetail {
    /// An error with a code.
    pub fn new(string: impl Into<String>, code: impl Into<String>) -> Self {
        Self {
            string: string.into(),
            code: code.into(),
        }
    }

    /// An error with code `invalid`.
    pub fn invalid(string: impl Into<String>) -> Self {
        Self::new(string, "invalid")
    }
}

/// Errors of a response, keyed by field or `non_field_errors`.
pub type ResponseErrors = IndexMap<String, Vec<ErrorDetail>>;

/// Flow information shown around every stage challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowInfo {
    /// The flow title (`%(app)s`/`%(user)s` substituted).
    #[serde(default)]
    pub title: String,
    /// Background image URL.
    #[serde(default)]
    pub background: String,
    /// Where "cancel" goes: `/flows/-/cancel/`, with `?next=` when the flow has one.
    pub cancel_url: String,
    /// Layout.
    pub layout: FlowLayout,
}

/// A challenge: what the client must render or do next.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    /// Flow information (absent on redirects and flow errors).
    pub flow_info: Option<FlowInfo>,
    /// Errors of the previous response (only after an invalid POST).
    pub response_errors: ResponseErrors,
    /// The component and its fields.
    pub body: ChallengeBody,
}

impl Challenge {
    /// A challenge without flow info or errors.
    pub fn new(body: ChallengeBody) -> Self {
        Self {
            flow_info: None,
            response_errors: ResponseErrors::new(),
            body,
        }
    }

    /// The `component` value.
    pub fn component(&self) -> &str {
        self.body.component()
    }

    /// The legacy `type`: `redirect`, `shell` or `native`.
    pub fn legacy_type(&self) -> &'static str {
        match self.body {
            ChallengeBody::Redirect(_) => "redirect",
            ChallengeBody::Shell(_) => "shell",
            _ => "native",
        }
    }

    /// Adds an error for a field.
    pub fn with_error(mut self, field: &str, error: ErrorDetail) -> Self {
        self.response_errors
            .entry(field.to_owned())
            .or_default()
            .push(error);
        self
    }

    /// The redirect target, for `xak-flow-redirect`.
    pub fn redirect_to(&self) -> Option<&str> {
        match &self.body {
            ChallengeBody::Redirect(r) => Some(&r.to),
            _ => None,
        }
    }

    /// The message of an `ak-stage-access-denied` challenge.
    pub fn error_message(&self) -> Option<&str> {
        match &self.body {
            ChallengeBody::AccessDenied(d) => d.error_message.as_deref(),
            _ => None,
        }
    }

    /// The challenge as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow_info: Option<&'a FlowInfo>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    response_errors: &'a ResponseErrors,
    #[serde(flatten)]
    body: &'a ChallengeBody,
}

#[derive(Deserialize)]
struct WireIn {
    #[serde(default)]
    flow_info: Option<FlowInfo>,
    #[serde(default)]
    response_errors: ResponseErrors,
    #[serde(flatten)]
    body: ChallengeBody,
}

impl Serialize for Challenge {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut {
            kind: self.legacy_type(),
            flow_info: self.flow_info.as_ref(),
            response_errors: &self.response_errors,
            body: &self.body,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Challenge {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = WireIn::deserialize(deserializer)?;
        Ok(Self {
            flow_info: w.flow_info,
            response_errors: w.response_errors,
            body: w.body,
        })
    }
}

/// The component-specific part of a challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "component")]
pub enum ChallengeBody {
    /// `ak-stage-access-denied`.
    #[serde(rename = "ak-stage-access-denied")]
    AccessDenied(AccessDeniedChallenge),
    /// `ak-stage-flow-error`.
    #[serde(rename = "ak-stage-flow-error")]
    FlowError(FlowErrorChallenge),
    /// `xak-flow-redirect`.
    #[serde(rename = "xak-flow-redirect")]
    Redirect(RedirectChallenge),
    /// `xak-flow-shell`.
    #[serde(rename = "xak-flow-shell")]
    Shell(ShellChallenge),
    /// `ak-stage-identification`.
    #[serde(rename = "ak-stage-identification")]
    Identification(IdentificationChallenge),
    /// `ak-stage-password`.
    #[serde(rename = "ak-stage-password")]
    Password(PasswordChallenge),
    /// `ak-stage-prompt`.
    #[serde(rename = "ak-stage-prompt")]
    Prompt(PromptChallenge),
    /// `ak-stage-dummy`.
    #[serde(rename = "ak-stage-dummy")]
    Dummy(DummyChallenge),
    /// `ak-stage-consent`.
    #[serde(rename = "ak-stage-consent")]
    Consent(ConsentChallenge),
    /// `ak-stage-user-login`.
    #[serde(rename = "ak-stage-user-login")]
    UserLogin(UserLoginChallenge),
    /// `ak-stage-session-end`.
    #[serde(rename = "ak-stage-session-end")]
    SessionEnd(SessionEndChallenge),
    /// `ak-stage-authenticator-totp`.
    #[serde(rename = "ak-stage-authenticator-totp")]
    AuthenticatorTotp(AuthenticatorTotpChallenge),
    /// `ak-stage-authenticator-static`.
    #[serde(rename = "ak-stage-authenticator-static")]
    AuthenticatorStatic(AuthenticatorStaticChallenge),
    /// `ak-stage-authenticator-validate`.
    #[serde(rename = "ak-stage-authenticator-validate")]
    AuthenticatorValidate(AuthenticatorValidationChallenge),
    /// `ak-stage-captcha`.
    #[serde(rename = "ak-stage-captcha")]
    Captcha(CaptchaChallenge),
    /// `ak-stage-authenticator-webauthn`.
    #[serde(rename = "ak-stage-authenticator-webauthn")]
    AuthenticatorWebauthn(AuthenticatorWebauthnChallenge),
    /// `ak-stage-email`.
    #[serde(rename = "ak-stage-email")]
    Email(EmailChallenge),
    /// Any other component (host-defined stages).
    #[serde(untagged)]
    Custom(CustomChallenge),
}

impl ChallengeBody {
    /// The `component` value.
    pub fn component(&self) -> &str {
        match self {
            ChallengeBody::AccessDenied(_) => "ak-stage-access-denied",
            ChallengeBody::FlowError(_) => "ak-stage-flow-error",
            ChallengeBody::Redirect(_) => "xak-flow-redirect",
            ChallengeBody::Shell(_) => "xak-flow-shell",
            ChallengeBody::Identification(_) => "ak-stage-identification",
            ChallengeBody::Password(_) => "ak-stage-password",
            ChallengeBody::Prompt(_) => "ak-stage-prompt",
            ChallengeBody::Dummy(_) => "ak-stage-dummy",
            ChallengeBody::Consent(_) => "ak-stage-consent",
            ChallengeBody::UserLogin(_) => "ak-stage-user-login",
            ChallengeBody::SessionEnd(_) => "ak-stage-session-end",
            ChallengeBody::AuthenticatorTotp(_) => "ak-stage-authenticator-totp",
            ChallengeBody::AuthenticatorStatic(_) => "ak-stage-authenticator-static",
            ChallengeBody::AuthenticatorValidate(_) => "ak-stage-authenticator-validate",
            ChallengeBody::Captcha(_) => "ak-stage-captcha",
            ChallengeBody::AuthenticatorWebauthn(_) => "ak-stage-authenticator-webauthn",
            ChallengeBody::Email(_) => "ak-stage-email",
            ChallengeBody::Custom(c) => &c.component,
        }
    }

    /// Sets `pending_user`/`pending_user_avatar` on challenges that carry user info.
    pub(crate) fn set_user_info(&mut self, user: &str, avatar: &str) {
        let info = match self {
            ChallengeBody::AccessDenied(c) => &mut c.user,
            ChallengeBody::Password(c) => &mut c.user,
            ChallengeBody::Consent(c) => &mut c.user,
            ChallengeBody::UserLogin(c) => &mut c.user,
            ChallengeBody::SessionEnd(c) => &mut c.user,
            ChallengeBody::AuthenticatorTotp(c) => &mut c.user,
            ChallengeBody::AuthenticatorStatic(c) => &mut c.user,
            ChallengeBody::AuthenticatorValidate(c) => &mut c.user,
            ChallengeBody::Captcha(c) => &mut c.user,
            ChallengeBody::AuthenticatorWebauthn(c) => &mut c.user,
            _ => return,
        };
        info.pending_user = user.to_owned();
        info.pending_user_avatar = avatar.to_owned();
    }

    /// Whether this challenge is a stage challenge that gets `flow_info`.
    pub(crate) fn has_flow_info(&self) -> bool {
        !matches!(
            self,
            ChallengeBody::Redirect(_) | ChallengeBody::FlowError(_)
        )
    }
}

/// `pending_user` and `pending_user_avatar` (authentik's `WithUserInfoChallenge`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The display name of the pending user (may be blank).
    #[serde(default)]
    pub pending_user: String,
    /// Avatar URL or data URI.
    #[serde(default)]
    pub pending_user_avatar: String,
}

/// `ak-stage-access-denied`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDeniedChallenge {
    /// User info.
    #[serde(flatten)]
    pub user: UserInfo,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// `ak-stage-flow-error`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowErrorChallenge {
    /// Correlates with the server's logs and events.
    pub request_id: String,
    /// Error text (only for superusers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Traceback (never sent by authflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// `xak-flow-redirect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectChallenge {
    /// Where to go.
    pub to: String,
}

/// `xak-flow-shell`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellChallenge {
    /// HTML.
    pub body: String,
}

/// `ak-stage-identification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentificationChallenge {
    /// Fields the identifier is matched against.
    pub user_fields: Vec<String>,
    /// Whether a password field is shown.
    pub password_fields: bool,
    /// Offer "show password".
    #[serde(default)]
    pub allow_show_password: bool,
    /// The flow's designation.
    pub flow_designation: FlowDesignation,
    /// Captcha settings (always null: no captcha stage yet).
    #[serde(default)]
    pub captcha_stage: Option<serde_json::Value>,
    /// "Log in" in authentication flows, else "Continue".
    pub primary_action: String,
    /// Login sources (none).
    #[serde(default)]
    pub sources: Vec<serde_json::Value>,
    /// Show source labels.
    pub show_source_labels: bool,
    /// Offer "remember me".
    #[serde(default)]
    pub enable_remember_me: bool,
    /// Preset identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_user_identifier: Option<String>,
    /// Link to the enrollment flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll_url: Option<String>,
    /// Link to the recovery flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_url: Option<String>,
    /// Link to the passwordless flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwordless_url: Option<String>,
    /// Name of the application the user is logging in to (when the plan has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_pre: Option<String>,
}

/// `ak-stage-password`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChallenge {
    /// User info.
    #[serde(flatten)]
    pub user: UserInfo,
    /// Link to the recovery flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_url: Option<String>,
    /// Offer "show password".
    #[serde(default)]
    pub allow_show_password: bool,
}

/// One choice of a dropdown or radio field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptChoice {
    /// Submitted value.
    pub value: String,
    /// Shown label.
    pub label: String,
}

/// One field of `ak-stage-prompt` (authentik's `StagePrompt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePrompt {
    /// Key.
    pub field_key: String,
    /// Label.
    pub label: String,
    /// Type.
    #[serde(rename = "type")]
    pub prompt_type: PromptType,
    /// Required.
    pub required: bool,
    /// Placeholder.
    pub placeholder: String,
    /// Initial value.
    pub initial_value: String,
    /// Order.
    pub order: i32,
    /// Help text.
    pub sub_text: String,
    /// Choices for dropdown / radio fields, else null.
    pub choices: Option<Vec<PromptChoice>>,
}

/// `ak-stage-prompt`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptChallenge {
    /// Fields.
    pub fields: Vec<StagePrompt>,
}

/// `ak-stage-dummy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DummyChallenge {
    /// The stage's name.
    pub name: String,
}

/// One consent permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentPermission {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
}

/// `ak-stage-consent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentChallenge {
    /// User info.
    #[serde(flatten)]
    pub user: UserInfo,
    /// Header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text: Option<String>,
    /// Permissions asked (or already granted, when some are new).
    pub permissions: Vec<ConsentPermission>,
    /// Newly asked permissions.
    pub additional_permissions: Vec<ConsentPermission>,
    /// Token the response must echo.
    pub token: String,
}

/// `ak-stage-user-login`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLoginChallenge {
    /// User info.
    #[serde(flatten)]
    pub user: UserInfo,
}

/// `ak-stage-session-end`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEndChallenge {
    /// User info.
    #[serde(flatten)]
    pub user: UserInfo,
    /// Brand name.
    pub brand_name: String,
    /// Application name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    /// Application launch URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_launch_url: Option<String>,
    /// Invalidation flow URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalidation_flow_url: Option<String>,
}

/// A host-defined challenge: any component with any fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomChallenge {
    /// The component.
    pub component: String,
    /// The fields.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}
