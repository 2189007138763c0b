//! Captcha verification: the [`CaptchaVerifier`] hook the captcha stage asks, and how
//! a provider's answer is judged against the stage's settings.
//!
//! reCAPTCHA, hCaptcha and Cloudflare Turnstile share one server-side protocol,
//! *siteverify*: a form POST of `secret`, `response` (the widget's token) and
//! `remoteip` to the provider's endpoint (the stage's `api_url`), answered with JSON
//! `{"success": bool, "score": number?, "error-codes": [..]?, …}`. The core does no
//! network I/O: the engine's verifier
//! ([`EngineBuilder::captcha_verifier`](crate::EngineBuilder::captcha_verifier)) makes
//! the call. With the `captcha` feature, [`HttpCaptchaVerifier`] is an HTTPS client
//! for it.
//!
//! Everything fails closed: an engine without a verifier denies the captcha stage; a
//! provider that cannot be reached, times out, answers an error status or no JSON
//! object refuses the response ("Failed to validate token") and shows the challenge
//! again, so the user can retry once the provider is back.

#[cfg(feature = "captcha")]
mod http;

use async_trait::async_trait;
use serde_json::{Map, Value};

#[cfg(feature = "captcha")]
pub use http::HttpCaptchaVerifier;

use crate::model::{CaptchaContentType, CaptchaStage};

/// One siteverify call.
#[derive(Clone, Copy)]
pub struct SiteverifyRequest<'a> {
    /// The provider's endpoint (the stage's `api_url`).
    pub api_url: &'a str,
    /// The stage's private key (`secret`).
    pub secret: &'a str,
    /// The widget's token (`response`).
    pub response: &'a str,
    /// The client's IP (`remoteip`), when known.
    pub remote_ip: Option<&'a str>,
    /// A form (default) or a JSON object (the stage's `request_content_type`).
    pub content_type: CaptchaContentType,
}

impl std::fmt::Debug for SiteverifyRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteverifyRequest")
            .field("api_url", &self.api_url)
            .field("secret", &"***")
            .field("response", &"***")
            .field("remote_ip", &self.remote_ip)
            .field("content_type", &self.content_type)
            .finish()
    }
}

impl SiteverifyRequest<'_> {
    /// The form fields of the POST, in order (`remoteip` only when known).
    pub fn form(&self) -> Vec<(&'static str, &str)> {
        let mut form = vec![("secret", self.secret), ("response", self.response)];
        if let Some(ip) = self.remote_ip {
            form.push(("remoteip", ip));
        }
        form
    }
}

/// Why a siteverify call gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("captcha provider unavailable: {0}")]
pub struct CaptchaError(pub String);

/// Verifies captcha tokens with the provider (see the [module docs](self)).
///
/// ```
/// use authflow::captcha::{CaptchaError, CaptchaVerifier, SiteverifyRequest};
/// /// Accepts every token (tests only).
/// struct AcceptAll;
/// #[async_trait::async_trait]
/// impl CaptchaVerifier for AcceptAll {
///     async fn siteverify(
///         &self,
///         _request: &SiteverifyRequest<'_>,
///     ) -> Result<serde_json::Map<String, serde_json::Value>, CaptchaError> {
///         Ok(serde_json::json!({"success": true}).as_object().cloned().unwrap_or_default())
///     }
/// }
/// ```
#[async_trait]
pub trait CaptchaVerifier: Send + Sync {
    /// POSTs the request to its `api_url` and returns the provider's JSON object.
    /// An unreachable provider, a timeout, an error status or a body that is not a
    /// JSON object is an error (the stage then refuses the token).
    async fn siteverify(
        &self,
        request: &SiteverifyRequest<'_>,
    ) -> Result<Map<String, Value>, CaptchaError>;
}

/// The siteverify error codes a fresh token may fix (authentik's list, from the
/// providers' documentation).
const RETRIABLE: &[&str] = &[
    "missing-input-response",
    "invalid-input-response",
    "timeout-or-duplicate",
    "expired-input-response",
    "already-seen-response",
];

/// The message of a provider that could not be asked.
pub const FAILED_TO_VALIDATE: &str = "Failed to validate token";
/// The message of a refused token.
pub const INVALID_RESPONSE: &str = "Invalid captcha response";
/// The message of a refused token a new one may fix.
pub const INVALID_RESPONSE_RETRY: &str = "Invalid captcha response. Retrying may solve this issue.";

/// What the stage makes of a provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Passed (or `error_on_invalid_score` is off): the flow continues.
    Passed,
    /// Refused with this message.
    Refused(String),
}

/// Judges a siteverify answer as authentik's `verify_captcha_token` does: with
/// `error_on_invalid_score`, `success: false` is refused (with the retry hint when
/// every error code is one a new token fixes) and a `score` outside
/// `[score_min_threshold, score_max_threshold]` (a negative bound: none) is refused;
/// a `score` that is not a number is refused whatever the setting.
pub fn judge(stage: &CaptchaStage, answer: &Map<String, Value>) -> Verdict {
    let score = match answer.get("score") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => return Verdict::Refused(FAILED_TO_VALIDATE.into()),
        },
        Some(_) => return Verdict::Refused(FAILED_TO_VALIDATE.into()),
    };
    if !stage.error_on_invalid_score {
        return Verdict::Passed;
    }
    if answer.get("success").and_then(Value::as_bool) != Some(true) {
        let codes: Vec<&str> = match answer.get("error-codes").and_then(Value::as_array) {
            Some(codes) => codes.iter().filter_map(Value::as_str).collect(),
            None => vec!["unknown-error"],
        };
        let retriable = codes.iter().all(|c| RETRIABLE.contains(c));
        return Verdict::Refused(if retriable {
            INVALID_RESPONSE_RETRY.into()
        } else {
            INVALID_RESPONSE.into()
        });
    }
    if let Some(score) = score {
        let too_high = stage.score_max_threshold > -1.0 && score > stage.score_max_threshold;
        let too_low = stage.score_min_threshold > -1.0 && score < stage.score_min_threshold;
        if too_high || too_low {
            return Verdict::Refused(INVALID_RESPONSE.into());
        }
    }
    Verdict::Passed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn judges_like_authentik() {
        let stage = CaptchaStage::default();
        let ok = |v| judge(&stage, &answer(v));
        assert_eq!(ok(serde_json::json!({"success": true})), Verdict::Passed);
        assert_eq!(
            ok(serde_json::json!({"success": true, "score": 0.9})),
            Verdict::Passed
        );
        assert_eq!(
            ok(serde_json::json!({"success": true, "score": 0.1})),
            Verdict::Refused(INVALID_RESPONSE.into())
        );
        assert_eq!(
            ok(serde_json::json!({"success": true, "score": "0.7"})),
            Verdict::Passed
        );
        assert_eq!(
            ok(serde_json::json!({"success": true, "score": "high"})),
            Verdict::Refused(FAILED_TO_VALIDATE.into())
        );
        assert_eq!(
            ok(serde_json::json!({"success": false, "error-codes": ["timeout-or-duplicate"]})),
            Verdict::Refused(INVALID_RESPONSE_RETRY.into())
        );
        assert_eq!(
            ok(serde_json::json!({"success": false, "error-codes": ["invalid-input-secret"]})),
            Verdict::Refused(INVALID_RESPONSE.into())
        );
        assert_eq!(
            ok(serde_json::json!({"success": false})),
            Verdict::Refused(INVALID_RESPONSE.into())
        );
        assert_eq!(
            ok(serde_json::json!({"success": "true"})),
            Verdict::Refused(INVALID_RESPONSE.into())
        );
        let lenient = CaptchaStage {
            error_on_invalid_score: false,
            ..Default::default()
        };
        assert_eq!(
            judge(&lenient, &answer(serde_json::json!({"success": false}))),
            Verdict::Passed
        );
        let unbounded = CaptchaStage {
            score_min_threshold: -1.0,
            score_max_threshold: -1.0,
            ..Default::default()
        };
        assert_eq!(
            judge(
                &unbounded,
                &answer(serde_json::json!({"success": true, "score": 0.0}))
            ),
            Verdict::Passed
        );
    }

    #[test]
    fn the_form_sends_remoteip_only_when_known() {
        let mut req = SiteverifyRequest {
            api_url: "http://x",
            secret: "s",
            response: "t",
            remote_ip: Some("10.0.0.1"),
            content_type: CaptchaContentType::Form,
        };
        assert_eq!(
            req.form(),
            vec![("secret", "s"), ("response", "t"), ("remoteip", "10.0.0.1")]
        );
        req.remote_ip = None;
        assert_eq!(req.form().len(), 2);
        assert!(!format!("{req:?}").contains("\"s\""));
    }
}
