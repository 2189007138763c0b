//! Stages and their typed configuration.
//!
//! The configuration types here are plain data; their behaviour lives in
//! [`crate::stages`], where each implements [`StageKind`](crate::stages::StageKind).
//! Host-defined stages are data too ([`CustomStage`]: a kind name and its settings),
//! resolved through the engine's [`Registry`](crate::registry::Registry).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AuthenticatorStaticStage, AuthenticatorTotpStage, AuthenticatorWebauthnStage, CaptchaStage,
    EmailStage, GroupId, InvitationStage, PromptStage, StageId, ValidationErrors,
};

/// A stage: one step of a flow (authentik's `Stage` subclasses).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stage {
    /// Primary key.
    pub pk: StageId,
    /// Unique name.
    pub name: String,
    /// The kind of stage and its settings.
    pub config: StageConfig,
}

impl Stage {
    /// A stage with a fresh id.
    pub fn new(name: impl Into<String>, config: impl Into<StageConfig>) -> Self {
        Self {
            pk: StageId::new(),
            name: name.into(),
            config: config.into(),
        }
    }
}

impl Stage {
    /// Refuses settings authflow cannot honour, naming the field (ignoring them would
    /// make the stage behave unlike authentik's): unknown password backends, TOTP
    /// `digits` other than 6 or 8, static token counts and lengths out of range, a
    /// malformed `last_auth_threshold` or unknown `webauthn_user_verification`.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let StageConfig::Password(p) = &self.config {
            for b in &p.backends {
                if !PASSWORD_BACKENDS.contains(&b.as_str()) {
                    errors.add(
                        "backends",
                        format!(
                            "unknown backend `{b}`; authentik's are {}",
                            PASSWORD_BACKENDS.join(", ")
                        ),
                    );
                }
            }
        }
        super::stage_authenticator::validate(&self.config, &mut errors);
        if let StageConfig::AuthenticatorWebauthn(w) = &self.config {
            w.check(&mut errors);
        }
        errors.into_result()
    }
}

/// The kind of a stage with its settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StageConfig {
    /// Identify the user by username, email or UPN.
    Identification(IdentificationStage),
    /// Check the pending user's password.
    Password(PasswordStage),
    /// Ask for form fields.
    Prompt(PromptStage),
    /// Create or update a user from prompt data.
    UserWrite(UserWriteStage),
    /// Log the pending user in.
    UserLogin(UserLoginStage),
    /// Log the current user out.
    UserLogout(UserLogoutStage),
    /// Delete the pending user.
    UserDelete(UserDeleteStage),
    /// Deny with a message.
    Deny(DenyStage),
    /// Test stage: passes on any response.
    Dummy(DummyStage),
    /// Redirect to a URL or another flow.
    Redirect(RedirectStage),
    /// Ask for consent.
    Consent(ConsentStage),
    /// Validate an MFA device.
    AuthenticatorValidate(AuthenticatorValidateStage),
    /// Set up a TOTP authenticator.
    AuthenticatorTotp(AuthenticatorTotpStage),
    /// Set up static recovery codes.
    AuthenticatorStatic(AuthenticatorStaticStage),
    /// Verify a captcha token with the provider.
    Captcha(CaptchaStage),
    /// Apply an invitation (silent).
    Invitation(InvitationStage),
    /// Register a WebAuthn credential (passkey, security key).
    AuthenticatorWebauthn(AuthenticatorWebauthnStage),
    /// Mail the pending user a link that resumes the flow.
    Email(EmailStage),
    /// A stage kind authflow does not implement (kept from an import): reaching it
    /// denies access, naming the kind. Fails closed.
    Unsupported(UnsupportedStage),
    /// A host-defined stage: a kind registered on the engine by name
    /// ([`EngineBuilder::register_stage`](crate::EngineBuilder::register_stage)).
    Custom(CustomStage),
}

macro_rules! into_config {
    ($($ty:ident => $variant:ident),+ $(,)?) => {
        $(impl From<$ty> for StageConfig {
            fn from(v: $ty) -> Self { StageConfig::$variant(v) }
        })+
    };
}

into_config!(
    IdentificationStage => Identification,
    PasswordStage => Password,
    PromptStage => Prompt,
    UserWriteStage => UserWrite,
    UserLoginStage => UserLogin,
    UserLogoutStage => UserLogout,
    UserDeleteStage => UserDelete,
    DenyStage => Deny,
    DummyStage => Dummy,
    RedirectStage => Redirect,
    ConsentStage => Consent,
    AuthenticatorValidateStage => AuthenticatorValidate,
    AuthenticatorTotpStage => AuthenticatorTotp,
    AuthenticatorStaticStage => AuthenticatorStatic,
    CaptchaStage => Captcha,
    InvitationStage => Invitation,
    AuthenticatorWebauthnStage => AuthenticatorWebauthn,
    EmailStage => Email,
    UnsupportedStage => Unsupported,
    CustomStage => Custom,
);

/// A host-defined stage: the name of a kind registered on the engine
/// ([`EngineBuilder::register_stage`](crate::EngineBuilder::register_stage)) and that
/// kind's settings. Plain data: it serialises (shared stores, backups, blueprint
/// export) like the built-in kinds.
///
/// The name is resolved when the stage runs, through the engine's
/// [`Registry`](crate::registry::Registry). A name no kind is registered under **fails
/// closed**: reaching the stage denies the flow with a message naming it. Catalogue
/// writes cannot check names (the store does not know the engine's registry), so a
/// misspelt name shows only when a flow reaches the stage — the inspector lists
/// such stages.
///
/// ```
/// use authflow::model::{CustomStage, Stage};
/// let terms = Stage::new("accept-terms", CustomStage::new("example.terms")
///     .with_config(serde_json::json!({"version": 3})));
/// let json = serde_json::to_value(&terms).unwrap();
/// assert_eq!(json["config"]["kind"], "custom");
/// assert_eq!(json["config"]["name"], "example.terms");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomStage {
    /// The registered kind's name, e.g. `example.terms`.
    pub name: String,
    /// The kind's settings, given to it when it runs
    /// ([`StageContext::custom_config`](crate::stages::StageContext::custom_config));
    /// `null` when it has none.
    #[serde(default)]
    pub config: Value,
}

impl CustomStage {
    /// A stage of the kind registered under `name`, without settings.
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

/// A stage kind that could not be mapped (e.g. from a blueprint imported with
/// `skip_unsupported`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UnsupportedStage {
    /// The original model name, e.g. `authentik_stages_email.emailstage`.
    pub model: String,
}

/// A field the identification stage matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserField {
    /// `username`.
    Username,
    /// `email`.
    Email,
    /// `attributes.upn`.
    Upn,
}

impl UserField {
    /// Wire name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            UserField::Username => "username",
            UserField::Email => "email",
            UserField::Upn => "upn",
        }
    }
}

fn yes() -> bool {
    true
}

/// Settings of the identification stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentificationStage {
    /// Fields the identifier is matched against, in order.
    pub user_fields: Vec<UserField>,
    /// A password stage whose check runs inline (adds a password field).
    #[serde(default)]
    pub password_stage: Option<StageId>,
    /// Match case-insensitively (default true).
    #[serde(default = "yes")]
    pub case_insensitive_matching: bool,
    /// Show the matched user's name on later stages (default true).
    #[serde(default = "yes")]
    pub show_matched_user: bool,
    /// Answer unknown identifiers as if the user existed (default true): no enumeration.
    #[serde(default = "yes")]
    pub pretend_user_exists: bool,
    /// Offer "remember me".
    #[serde(default)]
    pub enable_remember_me: bool,
    /// Slug of an enrollment flow to link to.
    #[serde(default)]
    pub enrollment_flow: Option<String>,
    /// Slug of a recovery flow to link to.
    #[serde(default)]
    pub recovery_flow: Option<String>,
    /// Slug of a passwordless flow to link to.
    #[serde(default)]
    pub passwordless_flow: Option<String>,
    /// Show source labels.
    #[serde(default)]
    pub show_source_labels: bool,
}

impl Default for IdentificationStage {
    fn default() -> Self {
        Self {
            user_fields: vec![UserField::Email, UserField::Username],
            password_stage: None,
            case_insensitive_matching: true,
            show_matched_user: true,
            pretend_user_exists: true,
            enable_remember_me: false,
            enrollment_flow: None,
            recovery_flow: None,
            passwordless_flow: None,
            show_source_labels: false,
        }
    }
}

/// Settings of the password stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordStage {
    /// The backends tried in turn (authentik's `backends`); the first that accepts the
    /// password is recorded in the plan context as `user_backend`.
    /// [`INBUILT_BACKEND`] checks the [`UserDirectory`](crate::store::UserDirectory)'s
    /// password, [`TOKEN_BACKEND`] the user's app passwords
    /// ([`AppPasswords`](crate::store::AppPasswords), set with
    /// [`EngineBuilder::app_passwords`](crate::EngineBuilder::app_passwords)). authflow
    /// has no LDAP or Kerberos sources: [`LDAP_BACKEND`] and [`KERBEROS_BACKEND`] ask the
    /// host's [`PasswordBackend`](crate::store::PasswordBackend) hook
    /// ([`EngineBuilder::password_backend`](crate::EngineBuilder::password_backend)) and
    /// without one never match — as in authentik when no such source exists. A stage without the
    /// inbuilt backend never accepts the directory password, one without the token
    /// backend never an app password. Other names are refused by [`Stage::validate`].
    #[serde(default = "default_backends")]
    pub backends: Vec<String>,
    /// Failed attempts after which the plan is dropped and access denied (default 5).
    ///
    /// As in authentik, the count is compared after it is incremented, so `0` (like `1`)
    /// denies on the first wrong password; there is no "unlimited".
    #[serde(default = "five")]
    pub failed_attempts_before_cancel: u32,
    /// Offer "show password".
    #[serde(default)]
    pub allow_show_password: bool,
    /// Slug of the flow that changes a password: with the `http` feature,
    /// `GET /flows/-/configure/{stage_uuid}/` runs it for the logged-in user (authentik's
    /// `ConfigureFlowInitView`).
    #[serde(default)]
    pub configure_flow: Option<String>,
}

fn five() -> u32 {
    5
}

/// authentik's inbuilt backend: the user's own password.
pub const INBUILT_BACKEND: &str = "authentik.core.auth.InbuiltBackend";
/// authentik's token backend: the user's app passwords.
pub const TOKEN_BACKEND: &str = "authentik.core.auth.TokenBackend";
/// authentik's LDAP source backend.
pub const LDAP_BACKEND: &str = "authentik.sources.ldap.auth.LDAPBackend";
/// authentik's Kerberos source backend.
pub const KERBEROS_BACKEND: &str = "authentik.sources.kerberos.auth.KerberosBackend";
/// Every backend name authentik knows.
pub const PASSWORD_BACKENDS: &[&str] = &[
    INBUILT_BACKEND,
    TOKEN_BACKEND,
    LDAP_BACKEND,
    KERBEROS_BACKEND,
];

fn default_backends() -> Vec<String> {
    vec![INBUILT_BACKEND.into()]
}

impl Default for PasswordStage {
    fn default() -> Self {
        Self {
            backends: default_backends(),
            failed_attempts_before_cancel: 5,
            allow_show_password: false,
            configure_flow: None,
        }
    }
}

/// How the user-write stage treats a missing user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserCreationMode {
    /// Only update the pending user.
    NeverCreate,
    /// Create a user when none is pending (default).
    #[default]
    CreateWhenRequired,
    /// Always create a new user.
    AlwaysCreate,
}

/// Settings of the user-write stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserWriteStage {
    /// Create mode.
    #[serde(default)]
    pub user_creation_mode: UserCreationMode,
    /// New users start inactive.
    #[serde(default)]
    pub create_users_as_inactive: bool,
    /// Group new users join.
    #[serde(default)]
    pub create_users_group: Option<GroupId>,
    /// Type of new users (default `external`).
    #[serde(default = "external")]
    pub user_type: String,
    /// Path of new users.
    #[serde(default)]
    pub user_path_template: String,
}

fn external() -> String {
    "external".into()
}

impl Default for UserWriteStage {
    fn default() -> Self {
        Self {
            user_creation_mode: UserCreationMode::CreateWhenRequired,
            create_users_as_inactive: false,
            create_users_group: None,
            user_type: external(),
            user_path_template: String::new(),
        }
    }
}

/// Settings of the user-login stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserLoginStage {
    /// Session duration as an authentik timedelta (`seconds=0` = browser session).
    #[serde(default = "zero_seconds")]
    pub session_duration: String,
    /// Extra duration when "remember me" is ticked.
    #[serde(default = "zero_seconds")]
    pub remember_me_offset: String,
    /// End the user's other sessions.
    #[serde(default)]
    pub terminate_other_sessions: bool,
}

fn zero_seconds() -> String {
    "seconds=0".into()
}

impl Default for UserLoginStage {
    fn default() -> Self {
        Self {
            session_duration: zero_seconds(),
            remember_me_offset: zero_seconds(),
            terminate_other_sessions: false,
        }
    }
}

/// Settings of the user-logout stage (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserLogoutStage {}

/// Settings of the user-delete stage (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserDeleteStage {}

/// Settings of the deny stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DenyStage {
    /// Message shown (context `deny_message` overrides it).
    #[serde(default)]
    pub deny_message: String,
}

/// Settings of the dummy stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DummyStage {
    /// Fail while building the challenge (tests the error path).
    #[serde(default)]
    pub throw_error: bool,
}

/// Where the redirect stage sends the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectMode {
    /// A fixed URL.
    #[default]
    Static,
    /// Another flow.
    Flow,
}

/// Settings of the redirect stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedirectStage {
    /// Static URL or flow.
    #[serde(default)]
    pub mode: RedirectMode,
    /// URL for [`RedirectMode::Static`].
    #[serde(default)]
    pub target_static: String,
    /// Flow slug for [`RedirectMode::Flow`].
    #[serde(default)]
    pub target_flow: Option<String>,
    /// Carry this flow's context into the target flow (default true).
    #[serde(default = "yes")]
    pub keep_context: bool,
}

impl Default for RedirectStage {
    fn default() -> Self {
        Self {
            mode: RedirectMode::Static,
            target_static: String::new(),
            target_flow: None,
            keep_context: true,
        }
    }
}

/// How long consent is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// Ask every time.
    AlwaysRequire,
    /// Remember forever.
    Permanent,
    /// Remember for `consent_expire_in` (default).
    #[default]
    Expiring,
}

/// Settings of the consent stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentStage {
    /// Remember mode.
    #[serde(default)]
    pub mode: ConsentMode,
    /// authentik timedelta, default `weeks=4`.
    #[serde(default = "four_weeks")]
    pub consent_expire_in: String,
}

fn four_weeks() -> String {
    "weeks=4".into()
}

impl Default for ConsentStage {
    fn default() -> Self {
        Self {
            mode: ConsentMode::Expiring,
            consent_expire_in: four_weeks(),
        }
    }
}

/// Classes of MFA devices (authentik's `DeviceClasses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    /// Static recovery codes.
    Static,
    /// Time-based one-time passwords.
    Totp,
    /// WebAuthn / passkeys.
    Webauthn,
    /// Duo push.
    Duo,
    /// Codes sent by SMS.
    Sms,
    /// Codes sent by email.
    Email,
}

impl DeviceClass {
    /// Every class, in authentik's order (the default of `device_classes`).
    pub const ALL: &'static [DeviceClass] = &[
        DeviceClass::Static,
        DeviceClass::Totp,
        DeviceClass::Webauthn,
        DeviceClass::Duo,
        DeviceClass::Sms,
        DeviceClass::Email,
    ];

    /// Wire name (`totp`, `webauthn`, …).
    pub const fn as_str(&self) -> &'static str {
        match self {
            DeviceClass::Static => "static",
            DeviceClass::Totp => "totp",
            DeviceClass::Webauthn => "webauthn",
            DeviceClass::Duo => "duo",
            DeviceClass::Sms => "sms",
            DeviceClass::Email => "email",
        }
    }
}

/// What the authenticator-validation stage does for a user without an (allowed)
/// device (authentik's `NotConfiguredAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotConfiguredAction {
    /// The stage is done (authentik's default).
    #[default]
    Skip,
    /// Deny access.
    Deny,
    /// Let the user set up a device with one of `configuration_stages`.
    Configure,
}

fn all_device_classes() -> Vec<DeviceClass> {
    DeviceClass::ALL.to_vec()
}

fn preferred() -> String {
    "preferred".into()
}

/// Settings of the authenticator-validation stage (authentik's
/// `AuthenticatorValidateStage`): the user proves a second factor with one of their
/// devices ([`crate::store::DeviceStore`]) of an allowed class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthenticatorValidateStage {
    /// Device classes that may be used (default: all).
    #[serde(default = "all_device_classes")]
    pub device_classes: Vec<DeviceClass>,
    /// What to do when the user has no device of an allowed class (default skip).
    #[serde(default)]
    pub not_configured_action: NotConfiguredAction,
    /// Setup stages offered for [`NotConfiguredAction::Configure`].
    #[serde(default)]
    pub configuration_stages: Vec<StageId>,
    /// authentik timedelta within which a previous MFA validation in the same browser
    /// session counts (default `seconds=0`: always validate).
    #[serde(default = "zero_seconds")]
    pub last_auth_threshold: String,
    /// WebAuthn user verification (`required`, `preferred`, `discouraged`).
    #[serde(default = "preferred")]
    pub webauthn_user_verification: String,
}

impl Default for AuthenticatorValidateStage {
    fn default() -> Self {
        Self {
            device_classes: all_device_classes(),
            not_configured_action: NotConfiguredAction::Skip,
            configuration_stages: Vec::new(),
            last_auth_threshold: zero_seconds(),
            webauthn_user_verification: preferred(),
        }
    }
}

/// Parses an authentik timedelta string (`weeks=4;days=1;hours=2;minutes=3;seconds=4`)
/// into seconds. Unknown units or bad numbers are errors.
pub fn parse_timedelta(s: &str) -> Result<u64, String> {
    let mut total: u64 = 0;
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (unit, value) = part
            .split_once('=')
            .ok_or_else(|| format!("invalid duration `{part}`"))?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("invalid number in `{part}`"))?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("invalid number in `{part}`"));
        }
        let factor = match unit.trim() {
            "microseconds" | "milliseconds" => 0.0,
            "seconds" => 1.0,
            "minutes" => 60.0,
            "hours" => 3600.0,
            "days" => 86400.0,
            "weeks" => 604800.0,
            other => return Err(format!("unknown duration unit `{other}`")),
        };
        total = total.saturating_add((value * factor) as u64);
    }
    Ok(total)
}
