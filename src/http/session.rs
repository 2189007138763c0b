//! Cookies, CSRF tokens and bearer tokens.

use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, Mac};

use super::HttpConfig;
use crate::model::UserId;
use crate::plan::SessionId;
use crate::secret::constant_time_eq;

/// The session cookie.
pub const SESSION_COOKIE: &str = "authflow_session";
/// The CSRF cookie set at login (readable by scripts, like authentik's).
pub const CSRF_COOKIE: &str = "authentik_csrf";
/// The header that must echo the CSRF cookie on state-changing requests of logged-in sessions.
pub const CSRF_HEADER: &str = "x-authentik-csrf";

/// Reads one cookie.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// The session id from the cookie, if well-formed.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<SessionId> {
    cookie(headers, SESSION_COOKIE).and_then(|v| SessionId::parse(&v))
}

/// The user of a valid `Authorization: Bearer` token.
pub(crate) fn bearer_user(headers: &HeaderMap, config: &HttpConfig) -> Option<UserId> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    config.tokens.user(token)
}

/// The CSRF token bound to a session id: HMAC-SHA256(secret, id), hex, 32 chars.
pub(crate) fn csrf_token(config: &HttpConfig, id: &SessionId) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&config.secret_key) else {
        return String::new();
    };
    mac.update(b"authflow-csrf:");
    mac.update(id.as_str().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether the request carries the session's CSRF token in the header.
pub(crate) fn csrf_ok(headers: &HeaderMap, config: &HttpConfig, id: &SessionId) -> bool {
    let expected = csrf_token(config, id);
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|got| !expected.is_empty() && constant_time_eq(got, &expected))
}

/// The session cookie of a new anonymous session (what [`set_cookies`] gives first
/// for it), built without formatting.
pub(crate) fn anonymous_cookie(config: &HttpConfig, id: &SessionId) -> Option<HeaderValue> {
    let mut v = String::with_capacity(SESSION_COOKIE.len() + id.as_str().len() + 48);
    v.push_str(SESSION_COOKIE);
    v.push('=');
    v.push_str(id.as_str());
    v.push_str("; HttpOnly; Path=/; SameSite=Lax");
    if config.secure_cookies {
        v.push_str("; Secure");
    }
    HeaderValue::from_str(&v).ok()
}

/// `Set-Cookie` values for a session id (and the CSRF cookie when logged in).
///
/// `lifetime` is what is left of the login in seconds (the user-login stage's
/// `session_duration`, plus `remember_me_offset` when remembered): the cookies then
/// carry `Max-Age` and `Expires`, as Django's do after authentik's
/// `request.session.set_expiry(delta)`. `None`: cookies of the browser session.
pub(crate) fn set_cookies(
    config: &HttpConfig,
    id: &SessionId,
    logged_in: bool,
    lifetime: Option<u64>,
) -> Vec<HeaderValue> {
    let secure = if config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let expiry = match lifetime {
        Some(seconds) => {
            let expires = std::time::SystemTime::now()
                .checked_add(std::time::Duration::from_secs(seconds))
                .map(httpdate::fmt_http_date)
                .map(|d| format!("; Expires={d}"))
                .unwrap_or_default();
            format!("; Max-Age={seconds}{expires}")
        }
        None => String::new(),
    };
    let mut out = Vec::with_capacity(2);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={}; HttpOnly; Path=/; SameSite=Lax{expiry}{secure}",
        id.as_str()
    )) {
        out.push(v);
    }
    let csrf = if logged_in {
        format!(
            "{CSRF_COOKIE}={}; Path=/; SameSite=Lax{expiry}{secure}",
            csrf_token(config, id)
        )
    } else {
        format!("{CSRF_COOKIE}=; Path=/; SameSite=Lax; Max-Age=0{secure}")
    };
    if let Ok(v) = HeaderValue::from_str(&csrf) {
        out.push(v);
    }
    out
}
