//! [`HttpCaptchaVerifier`]: siteverify over HTTPS (feature `captcha`).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{CaptchaError, CaptchaVerifier, SiteverifyRequest};
use crate::model::CaptchaContentType;

/// Largest siteverify answer read (providers answer a few hundred bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// Calls the provider's siteverify endpoint with a form (or JSON) POST (reqwest with rustls and
/// the Mozilla root certificates; `http://` URLs work too, for local test providers).
/// Every call has a deadline (default 5 s, connect included); a timeout, a connection
/// failure, a non-2xx status or a body that is not a JSON object is a
/// [`CaptchaError`], so the stage refuses the token (fails closed).
#[derive(Debug, Clone)]
pub struct HttpCaptchaVerifier {
    client: reqwest::Client,
}

impl HttpCaptchaVerifier {
    /// A verifier with a 5-second deadline.
    pub fn new() -> Result<Self, CaptchaError> {
        Self::with_timeout(Duration::from_secs(5))
    }

    /// A verifier with this deadline per call.
    pub fn with_timeout(timeout: Duration) -> Result<Self, CaptchaError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // The endpoint is the stage's setting: never follow it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("authflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CaptchaError(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }
}

#[async_trait]
impl CaptchaVerifier for HttpCaptchaVerifier {
    async fn siteverify(
        &self,
        request: &SiteverifyRequest<'_>,
    ) -> Result<Map<String, Value>, CaptchaError> {
        let url = reqwest::Url::parse(request.api_url)
            .map_err(|e| CaptchaError(format!("invalid api_url: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(CaptchaError("api_url must be an http(s) URL".into()));
        }
        let post = self.client.post(url);
        let post = match request.content_type {
            CaptchaContentType::Form => post.form(&request.form()),
            CaptchaContentType::Json => {
                let body: Map<String, Value> = request
                    .form()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                    .collect();
                post.header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(Value::Object(body).to_string())
            }
        };
        let mut response = post.send().await.map_err(|e| CaptchaError(describe(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(CaptchaError(format!("the provider answered {status}")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| CaptchaError(describe(e)))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(CaptchaError("the provider's answer is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(CaptchaError(
                "the provider's answer is not a JSON object".into(),
            )),
        }
    }
}

/// A transport error without the URL's query (reqwest's text may carry it).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "the provider did not answer in time".into()
    } else if e.is_connect() {
        "cannot connect to the provider".into()
    } else {
        format!("{}", e.without_url())
    }
}
