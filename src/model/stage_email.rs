//! Settings of the email stage (authentik's `EmailStage`).

use serde::{Deserialize, Deserializer, Serialize};

use super::parse_timedelta;

/// authentik's password-reset template (also used for login links).
pub const PASSWORD_RESET_TEMPLATE: &str = "email/password_reset.html";
/// authentik's account-confirmation template.
pub const ACCOUNT_CONFIRMATION_TEMPLATE: &str = "email/account_confirmation.html";
/// The built-in templates (authentik's `EmailTemplates` this stage can render).
pub const EMAIL_TEMPLATES: &[&str] = &[PASSWORD_RESET_TEMPLATE, ACCOUNT_CONFIRMATION_TEMPLATE];

/// Settings of the email stage: mails the pending user a link that resumes the flow
/// (a [flow token](crate::store::FlowTokens)).
///
/// All mail goes through the engine's [`Mailer`](crate::mail::Mailer) with the
/// engine's sender ([`MailSettings`](crate::mail::MailSettings)): authentik's
/// `use_global_settings: true`. The stage's own connection settings (`host`, `port`,
/// `username`, `password`, `use_tls`, `use_ssl`, `timeout`, `from_address`) are kept
/// for round trips but not used, so `use_global_settings: false` is refused by name
/// rather than silently mailing through another server.
///
/// `template` is one of [`EMAIL_TEMPLATES`], or an inline HTML template (any text
/// containing `{{`) with the variables `{{ url }}`, `{{ user.username }}`,
/// `{{ user.name }}`, `{{ user.email }}`, `{{ expires }}` and `{{ token }}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmailStage {
    /// Must be true (see above).
    pub use_global_settings: bool,
    /// Not used (authentik's per-stage SMTP host).
    pub host: String,
    /// Not used.
    pub port: u16,
    /// Not used.
    pub username: String,
    /// Not used.
    pub use_tls: bool,
    /// Not used.
    pub use_ssl: bool,
    /// Not used.
    pub timeout: u64,
    /// Not used (the engine's sender is).
    pub from_address: String,
    /// How long the link is valid: an authentik timedelta (`minutes=30`, the
    /// default; a bare number from older blueprints means minutes).
    pub token_expiry: String,
    /// Subject of the mail.
    pub subject: String,
    /// Template name or inline template.
    pub template: String,
    /// Activate the pending user when the link is followed (enrollment).
    pub activate_user_on_success: bool,
    /// Mails per user (or address) within `recovery_cache_timeout`; more are refused.
    pub recovery_max_attempts: u32,
    /// The window of `recovery_max_attempts` (timedelta, default `minutes=5`).
    pub recovery_cache_timeout: String,
}

impl Default for EmailStage {
    fn default() -> Self {
        Self {
            use_global_settings: true,
            host: "localhost".into(),
            port: 25,
            username: String::new(),
            use_tls: false,
            use_ssl: false,
            timeout: 10,
            from_address: "system@authentik.local".into(),
            token_expiry: "minutes=30".into(),
            subject: "authentik".into(),
            template: PASSWORD_RESET_TEMPLATE.into(),
            activate_user_on_success: false,
            recovery_max_attempts: 5,
            recovery_cache_timeout: "minutes=5".into(),
        }
    }
}

impl EmailStage {
    /// The link's lifetime in seconds.
    pub fn token_expiry_secs(&self) -> u64 {
        parse_timedelta(&self.token_expiry).unwrap_or(1800)
    }
}

/// A number of minutes or a timedelta string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Duration {
    Minutes(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(default)]
struct Raw {
    use_global_settings: bool,
    host: String,
    port: u16,
    username: String,
    // Accepted and dropped: a secret authflow never uses.
    #[allow(dead_code)]
    password: Option<String>,
    use_tls: bool,
    use_ssl: bool,
    timeout: u64,
    from_address: String,
    token_expiry: Option<Duration>,
    subject: String,
    template: String,
    activate_user_on_success: bool,
    recovery_max_attempts: u32,
    recovery_cache_timeout: String,
}

impl Default for Raw {
    fn default() -> Self {
        let d = EmailStage::default();
        Self {
            use_global_settings: d.use_global_settings,
            host: d.host,
            port: d.port,
            username: d.username,
            password: None,
            use_tls: d.use_tls,
            use_ssl: d.use_ssl,
            timeout: d.timeout,
            from_address: d.from_address,
            token_expiry: None,
            subject: d.subject,
            template: d.template,
            activate_user_on_success: d.activate_user_on_success,
            recovery_max_attempts: d.recovery_max_attempts,
            recovery_cache_timeout: d.recovery_cache_timeout,
        }
    }
}

/// The one setting refused unless true.
const GLOBAL: &str = "use_global_settings";

impl<'de> Deserialize<'de> for EmailStage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Raw::deserialize(deserializer)?;
        if !raw.use_global_settings {
            return Err(D::Error::custom(format!(
                "`{GLOBAL}` is false, but authflow sends all mail through the engine's mailer \
                 (the stage's host, port, username, password, use_tls, use_ssl and timeout \
                 are not used); set it to true"
            )));
        }
        let token_expiry = match raw.token_expiry {
            None => "minutes=30".to_owned(),
            Some(Duration::Minutes(m)) => format!("minutes={m}"),
            Some(Duration::Text(t)) => t,
        };
        let expiry = parse_timedelta(&token_expiry)
            .map_err(|e| D::Error::custom(format!("`token_expiry`: {e}")))?;
        if expiry == 0 {
            return Err(D::Error::custom("`token_expiry` must be positive"));
        }
        parse_timedelta(&raw.recovery_cache_timeout)
            .map_err(|e| D::Error::custom(format!("`recovery_cache_timeout`: {e}")))?;
        if !EMAIL_TEMPLATES.contains(&raw.template.as_str()) && !raw.template.contains("{{") {
            return Err(D::Error::custom(format!(
                "`template` `{}` is not one authflow has ({}); give an inline template \
                 with {{{{ url }}}} instead",
                raw.template.chars().take(80).collect::<String>(),
                EMAIL_TEMPLATES.join(", ")
            )));
        }
        Ok(Self {
            use_global_settings: true,
            host: raw.host,
            port: raw.port,
            username: raw.username,
            use_tls: raw.use_tls,
            use_ssl: raw.use_ssl,
            timeout: raw.timeout,
            from_address: raw.from_address,
            token_expiry,
            subject: raw.subject,
            template: raw.template,
            activate_user_on_success: raw.activate_user_on_success,
            recovery_max_attempts: raw.recovery_max_attempts,
            recovery_cache_timeout: raw.recovery_cache_timeout,
        })
    }
}
