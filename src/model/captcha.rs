//! Settings of the captcha stage (authentik's `CaptchaStage`).

use serde::{Deserialize, Serialize};

/// reCAPTCHA's script, authentik's default `js_url`.
pub const RECAPTCHA_JS_URL: &str = "https://www.recaptcha.net/recaptcha/api.js";
/// reCAPTCHA's siteverify endpoint, authentik's default `api_url`.
pub const RECAPTCHA_API_URL: &str = "https://www.recaptcha.net/recaptcha/api/siteverify";

/// How the siteverify request is encoded (authentik's `CaptchaRequestContentType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaptchaContentType {
    /// `application/x-www-form-urlencoded` (default; every provider accepts it).
    #[default]
    #[serde(rename = "application/x-www-form-urlencoded")]
    Form,
    /// `application/json` (the same fields as a JSON object).
    #[serde(rename = "application/json")]
    Json,
}

/// Settings of the captcha stage: the provider's keys and URLs, and the score bounds
/// a verification must meet. Works with every provider speaking the siteverify
/// protocol (reCAPTCHA v2/v3, hCaptcha, Cloudflare Turnstile); verification goes
/// through the engine's [`CaptchaVerifier`](crate::captcha::CaptchaVerifier).
///
/// `private_key` is a secret: the `Debug` output redacts it, the blueprint export
/// leaves it out (as authentik's serializer, where it is write-only), and the
/// inspector never shows stage settings. It is kept in clear in the flow store,
/// which must be protected like any credential store.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptchaStage {
    /// The site key (public), sent to the browser as `site_key`.
    #[serde(default)]
    pub public_key: String,
    /// The secret key, sent only to the provider's `api_url`.
    #[serde(default)]
    pub private_key: String,
    /// The provider's script the page loads.
    #[serde(default = "js_url")]
    pub js_url: String,
    /// The provider's siteverify endpoint.
    #[serde(default = "api_url")]
    pub api_url: String,
    /// Whether the widget needs the user's interaction (reCAPTCHA v2, hCaptcha,
    /// Turnstile) or runs invisibly (reCAPTCHA v3).
    #[serde(default)]
    pub interactive: bool,
    /// The lowest accepted score (default 0.5; negative: no lower bound).
    #[serde(default = "half")]
    pub score_min_threshold: f64,
    /// The highest accepted score (default 1.0; negative: no upper bound).
    #[serde(default = "one")]
    pub score_max_threshold: f64,
    /// Deny a failed verification or a score out of bounds (default true). When
    /// false the flow continues and the provider's answer is left in the plan
    /// context (`captcha`) for policies to decide — as in authentik.
    #[serde(default = "yes")]
    pub error_on_invalid_score: bool,
    /// How the siteverify request is encoded (default: a form).
    #[serde(default)]
    pub request_content_type: CaptchaContentType,
}

fn js_url() -> String {
    RECAPTCHA_JS_URL.into()
}
fn api_url() -> String {
    RECAPTCHA_API_URL.into()
}
fn half() -> f64 {
    0.5
}
fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}

impl Default for CaptchaStage {
    fn default() -> Self {
        Self {
            public_key: String::new(),
            private_key: String::new(),
            js_url: js_url(),
            api_url: api_url(),
            interactive: false,
            score_min_threshold: half(),
            score_max_threshold: one(),
            error_on_invalid_score: true,
            request_content_type: CaptchaContentType::Form,
        }
    }
}

impl std::fmt::Debug for CaptchaStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptchaStage")
            .field("public_key", &self.public_key)
            .field("private_key", &"***")
            .field("js_url", &self.js_url)
            .field("api_url", &self.api_url)
            .field("interactive", &self.interactive)
            .field("score_min_threshold", &self.score_min_threshold)
            .field("score_max_threshold", &self.score_max_threshold)
            .field("error_on_invalid_score", &self.error_on_invalid_score)
            .field("request_content_type", &self.request_content_type)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_private_key() {
        let stage = CaptchaStage {
            private_key: "very-secret-key".into(),
            ..Default::default()
        };
        let text = format!("{stage:?}");
        assert!(!text.contains("very-secret-key"), "{text}");
        assert!(text.contains("***"));
    }
}
