//! Every HTTP error maps to one status and one JSON body `{"detail": …, "code": …}`
//! (validation errors: authentik's `{"field": ["…"], "code": "invalid"}`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::inspector::InspectError;
use crate::model::ValidationErrors;
use crate::{Error, StoreError};

/// An HTTP error answer.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// 400 with field errors.
    Validation(ValidationErrors),
    /// 400 with a message.
    BadRequest(String),
    /// 401: no credentials.
    Unauthenticated,
    /// 403: not allowed (also a failed CSRF check).
    Forbidden(String),
    /// 404.
    NotFound,
    /// 409: the session kept changing concurrently.
    Conflict,
    /// 413: body over the limit.
    TooLarge(usize),
    /// 415: unsupported content type.
    UnsupportedMediaType(String),
    /// 503: a store is unavailable; nothing was written.
    Unavailable,
    /// 503: too much concurrent work (the password-hashing pool is full); nothing ran.
    Busy,
    /// 414: the `query` parameter is longer than the limit (bytes).
    QueryTooLong(usize),
    /// 403 `{"code": "unsupported"}`: the store does not support this operation
    /// ([`StoreError::Unsupported`]; a login-only user directory asked to create a user).
    Unsupported(String),
}

impl ApiError {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Unsupported(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable | ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::QueryTooLong(_) => StatusCode::URI_TOO_LONG,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        match self {
            ApiError::Validation(e) => serde_json::to_value(e).unwrap_or_default(),
            ApiError::BadRequest(m) => json!({"detail": m, "code": "invalid"}),
            ApiError::Unauthenticated => {
                json!({"detail": "Authentication credentials were not provided.", "code": "not_authenticated"})
            }
            ApiError::Forbidden(m) => json!({"detail": m, "code": "permission_denied"}),
            ApiError::NotFound => json!({"detail": "Not found.", "code": "not_found"}),
            ApiError::Conflict => {
                json!({"detail": "The session was changed concurrently; please retry.", "code": "conflict"})
            }
            ApiError::TooLarge(limit) => {
                json!({"detail": format!("Request body is larger than {limit} bytes."), "code": "payload_too_large"})
            }
            ApiError::UnsupportedMediaType(t) => {
                json!({"detail": format!("Unsupported media type \"{t}\" in request."), "code": "unsupported_media_type"})
            }
            ApiError::Unavailable => {
                json!({"detail": "The session or flow store is unavailable; please retry.", "code": "store_unavailable"})
            }
            ApiError::Busy => {
                json!({"detail": "Too many logins at once, try again.", "code": "busy"})
            }
            ApiError::QueryTooLong(limit) => {
                json!({"detail": format!("The `query` parameter is longer than {limit} bytes."), "code": "query_too_long"})
            }
            ApiError::Unsupported(operation) => {
                json!({"detail": StoreError::unsupported_message(operation), "code": "unsupported", "operation": operation})
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), axum::Json(self.body())).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::FlowNotFound(_) => ApiError::NotFound,
            Error::Conflict => ApiError::Conflict,
            Error::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Validation(v) => ApiError::Validation(v),
            StoreError::NotFound(_) => ApiError::NotFound,
            StoreError::Conflict => ApiError::Conflict,
            StoreError::Busy => ApiError::Busy,
            StoreError::Unsupported(operation) => ApiError::Unsupported(operation),
            StoreError::Unavailable(_reason) => {
                #[cfg(feature = "http")]
                tracing::error!(reason = %_reason, "store unavailable");
                ApiError::Unavailable
            }
        }
    }
}

impl From<InspectError> for ApiError {
    fn from(e: InspectError) -> Self {
        match e {
            InspectError::NoPlan => ApiError::BadRequest("No flow plan in session.".into()),
            InspectError::Forbidden => {
                ApiError::Forbidden("You do not have permission to perform this action.".into())
            }
            InspectError::FlowNotFound(_) => ApiError::NotFound,
            InspectError::Store(s) => s.into(),
        }
    }
}

/// Gives axum's own plain-text client errors (405 for an unrouted method, 400 for a
/// path segment that is not UTF-8, …) the same JSON body as every other error.
pub(crate) async fn json_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().clone();
    let mut response = next.run(req).await;
    // Challenges, API answers and errors are per session: never cached by a browser or
    // a shared proxy.
    response
        .headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let (detail, code) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            format!("Method \"{method}\" not allowed."),
            "method_not_allowed",
        ),
        StatusCode::NOT_FOUND => ("Not found.".to_owned(), "not_found"),
        _ if !text.is_empty() => (text, "invalid"),
        _ => (
            status
                .canonical_reason()
                .unwrap_or("Bad request")
                .to_owned(),
            "invalid",
        ),
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let json = axum::Json(json!({"detail": detail, "code": code})).into_response();
    let (json_parts, body) = json.into_parts();
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, body)
}
