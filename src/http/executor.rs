//! The flow-executor and inspector endpoints, and the browser page.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::{AppState, HttpConfig, client_ip, session};
use crate::request::{FlowRequest, query_param};
use crate::{Engine, Outcome};

/// Builds the engine request from the HTTP request: the session cookie, `query` and
/// `next`, the client IP ([`TrustedProxies`](super::TrustedProxies)), the user agent
/// and the configured mount path.
pub(crate) fn flow_request(config: &HttpConfig, req: &Parts) -> FlowRequest {
    let raw = req.uri.query().unwrap_or("");
    let client_ip = client_ip::client_ip(req, &config.trusted_proxies).map(|ip| ip.to_string());
    warn_on_other_mount(config, req);
    FlowRequest {
        session_id: session::session_id(&req.headers),
        query: query_param(raw, "query").unwrap_or_default(),
        next: query_param(raw, "next"),
        client_ip,
        user_agent: req
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
        is_outpost: false,
        base_path: config.mount_path.clone(),
        origin: request_origin(config, &req.headers),
    }
}

/// The origin the client reached: the external URL, else the scheme (`https` when
/// cookies are `Secure`, else `http`) and `Host` (authentik's
/// `request.build_absolute_uri("/")`; behind a TLS proxy configure the external URL).
/// A `Host` that is not a plain `host[:port]` gives none.
fn request_origin(config: &HttpConfig, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &config.external_url {
        return Some(url.clone());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?.trim();
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let scheme = if config.secure_cookies {
        "https"
    } else {
        "http"
    };
    plain.then(|| format!("{scheme}://{}", host.to_ascii_lowercase()))
}

/// Logs once when axum's `OriginalUri` shows the router nested under a prefix other
/// than the configured [`HttpConfig::mount_path`] (the links it gives out would miss).
fn warn_on_other_mount(config: &HttpConfig, req: &Parts) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let Some(original) = req.extensions.get::<OriginalUri>() else {
        return;
    };
    let nested = original
        .0
        .path()
        .strip_suffix(req.uri.path())
        .unwrap_or(config.mount_path.as_str());
    if nested != config.mount_path.as_str() && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            nested_under = %nested.chars().take(100).collect::<String>(),
            mount_path = %config.mount_path,
            "authflow's router is nested under a prefix other than HttpConfig::mount_path; the links it gives out will not match (set HttpConfig::with_mount_path)"
        );
    }
}

/// Refuses a `query` longer than the configured limit (414), before anything is
/// planned or stored.
pub(crate) fn check_query(app: &AppState, freq: &FlowRequest) -> Result<(), ApiError> {
    if freq.query.len() > app.config.query_limit {
        return Err(ApiError::QueryTooLong(app.config.query_limit));
    }
    Ok(())
}

/// The challenge as JSON, with cookies when the session id changed.
pub(crate) fn respond(
    app: &AppState,
    out: Outcome,
    status: StatusCode,
    had_session: bool,
) -> Response {
    let mut response = (status, axum::Json(&out.challenge)).into_response();
    if out.session_rotated {
        let mut cookies = session::set_cookies(
            &app.config,
            &out.session_id,
            out.user.is_some(),
            out.login_expires_in,
        );
        if out.user.is_none() && !out.logged_out && !had_session {
            // The request had no session: there is no session's CSRF cookie to clear
            // (the clearing header stays at logout and when a session is replaced).
            cookies.truncate(1);
        }
        for v in cookies {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// `GET /api/v3/flows/executor/{slug}/`.
pub(crate) async fn get(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, _) = req.into_parts();
    if let Err(e) = refuse_cross_site(&parts.headers) {
        return e.into_response();
    }
    let raw_query = parts.uri.query().unwrap_or("");
    if session::session_id(&parts.headers).is_none() && raw_query.len() <= app.config.query_limit {
        // (A raw query within the limit decodes to one within it.)
        return first_get(&app, &parts, &slug).await;
    }
    let freq = flow_request(&app.config, &parts);
    if let Err(e) = check_query(&app, &freq) {
        return e.into_response();
    }
    match app.engine.plan(&freq, &slug).await {
        Ok(out) => respond(&app, out, StatusCode::OK, true),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The GET of a visitor without a session ([`super::first_get`]): the cached challenge
/// with a fresh session id, or the engine's answer (cached when it cannot depend on the
/// visitor).
/// Cached by the URL's whole query string (which holds `query` and `next`).
async fn first_get(app: &AppState, parts: &Parts, slug: &str) -> Response {
    let raw_query = parts.uri.query().unwrap_or("");
    let def = match app.engine.definition(slug).await {
        Ok(def) => def,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Some(json) = app.first_get.get(&def, slug, raw_query) {
        let id = app.engine.mint_session_id();
        return with_session_cookie(app, super::first_get::json_response(json), &id);
    }
    let freq = flow_request(&app.config, parts);
    if let Err(e) = check_query(app, &freq) {
        return e.into_response();
    }
    // With the definition in hand: the miss asks the store for the revision once.
    let out = match app.engine.plan_with(&freq, slug, def.clone()).await {
        Ok(out) => out,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if out.user.is_none() && !out.logged_in {
        if let Some(json) = app.first_get.offer(&def, slug, raw_query, &out.challenge) {
            return with_session_cookie(
                app,
                super::first_get::json_response(json),
                &out.session_id,
            );
        }
    }
    respond(app, out, StatusCode::OK, false)
}

/// Adds the session cookie of a new anonymous session.
fn with_session_cookie(
    app: &AppState,
    mut response: Response,
    id: &crate::plan::SessionId,
) -> Response {
    if let Some(cookie) = session::anonymous_cookie(&app.config, id) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Refuses requests a browser marks as cross-site (`Sec-Fetch-Site: cross-site`).
///
/// The `SameSite=Lax` session cookie accompanies top-level cross-site navigations, so
/// a link on another site reaches the executor with the visitor's login. Stages with
/// side effects never run on a GET anyway (they ask for confirmation first, see
/// [`StageKind::confirmation`](crate::stages::StageKind::confirmation)); this check
/// also keeps such requests from planning or advancing flows at all. The flow API is
/// only ever fetched by same-origin scripts or by non-browser clients (which do not
/// send the header); cross-site visitors land on `/if/flow/…`.
pub(crate) fn refuse_cross_site(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) if site.eq_ignore_ascii_case("cross-site") => Err(ApiError::Forbidden(
            "Cross-site requests to the flow API are refused; open the flow's page instead.".into(),
        )),
        _ => Ok(()),
    }
}

/// Refuses a state-changing request whose `Origin` header names another origin.
///
/// `Sec-Fetch-Site` covers current browsers; browsers without it still send `Origin`
/// on cross-origin POSTs, so a form on another site cannot log the visitor in to an
/// account of the attacker's (login CSRF) or answer a stage — before any session
/// exists, when the CSRF header is not yet required. The origin must be this host as
/// the client reached it (`Host`, or `X-Forwarded-Host` behind a proxy); a missing
/// `Origin` (non-browser clients) passes, `Origin: null` does not.
pub(crate) fn refuse_foreign_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let same = authority.is_some_and(|a| {
        [header::HOST.as_str(), "x-forwarded-host"]
            .iter()
            .filter_map(|h| headers.get(*h)?.to_str().ok())
            .any(|host| host.trim().eq_ignore_ascii_case(a))
    });
    if same {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Cross-origin requests to the flow API are refused.".into(),
        ))
    }
}

/// Refuses a state-changing request of a logged-in session without the CSRF header.
pub(crate) async fn check_csrf(
    engine: &Engine,
    app: &AppState,
    headers: &HeaderMap,
    freq: &FlowRequest,
) -> Result<(), ApiError> {
    let Some(id) = &freq.session_id else {
        return Ok(());
    };
    if engine.session_user(id).await?.is_some() && !session::csrf_ok(headers, &app.config, id) {
        return Err(ApiError::Forbidden(
            "CSRF Failed: CSRF token missing or incorrect.".into(),
        ));
    }
    Ok(())
}

/// How much of an oversized body is read and discarded so that the client, still
/// sending, receives the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Reads a request body up to the configured limit. A larger body is answered 413
/// after reading (and discarding) up to [`DRAIN_LIMIT`] more bytes: closing the
/// connection under a client that is still sending makes it see a reset, not the 413.
pub(crate) async fn read_body(app: &AppState, body: Body) -> Result<axum::body::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let limit = app.config.body_limit;
    let mut body = body;
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ApiError::BadRequest(
                "The request body could not be read.".into(),
            ));
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            buf.extend_from_slice(&data);
        } else {
            buf = Vec::new();
            if seen > limit.saturating_add(DRAIN_LIMIT) {
                break;
            }
        }
    }
    if seen > limit {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(buf.into())
}

/// The content type without parameters, lower-cased.
pub(crate) fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// `POST /api/v3/flows/executor/{slug}/`: JSON or form body.
pub(crate) async fn post(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    req: Request<Body>,
) -> Response {
    match post_inner(&app, &slug, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn post_inner(app: &AppState, slug: &str, req: Request<Body>) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    refuse_cross_site(&parts.headers)?;
    refuse_foreign_origin(&parts.headers)?;
    let freq = flow_request(&app.config, &parts);
    check_query(app, &freq)?;
    let had_session = freq.session_id.is_some();
    let uri = parts.uri.clone();
    let ctype = content_type(&parts.headers);
    if let Some(t) = ctype.as_deref() {
        let ok = t == "application/json"
            || t.ends_with("+json")
            || t == "application/x-www-form-urlencoded";
        if !ok {
            return Err(ApiError::UnsupportedMediaType(
                t.chars().take(100).collect(),
            ));
        }
    }
    let bytes = read_body(app, body).await?;
    // Flow exists? (404 before CSRF so unknown slugs never touch sessions.)
    app.engine.definition(slug).await?;
    check_csrf(&app.engine, app, &parts.headers, &freq).await?;
    let out = if ctype.as_deref() == Some("application/x-www-form-urlencoded") {
        let map: Map<String, Value> = form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        app.engine.step(&freq, slug, &Value::Object(map)).await?
    } else if bytes.iter().all(u8::is_ascii_whitespace) {
        app.engine
            .step(&freq, slug, &Value::Object(Map::new()))
            .await?
    } else {
        app.engine.step_raw(&freq, slug, &bytes).await?
    };
    if app.config.redirect_on_advance && out.advanced {
        // authentik's way: 302 to the same URL; the client GETs the next challenge.
        let mut response =
            (StatusCode::FOUND, [(header::LOCATION, uri.to_string())]).into_response();
        if out.session_rotated {
            for v in session::set_cookies(
                &app.config,
                &out.session_id,
                out.user.is_some(),
                out.login_expires_in,
            ) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        return Ok(response);
    }
    Ok(respond(app, out, StatusCode::OK, had_session))
}

/// `GET /api/v3/flows/inspector/{slug}/`.
pub(crate) async fn inspector(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(id) = session::session_id(&headers) else {
        return ApiError::Forbidden("You do not have permission to perform this action.".into())
            .into_response();
    };
    match app
        .engine
        .inspect_under(&id, &slug, &app.config.mount_path)
        .await
    {
        Ok(i) => axum::Json(i).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

const PAGE: &str = include_str!("page.html");
/// The page's QR code encoder (TOTP setup), inlined into its script.
const QR_SCRIPT: &str = include_str!("qr.js");

/// `GET /if/flow/{slug}/`: the minimal flow page.
///
/// Its inline script and style run under a per-response CSP nonce (no
/// `'unsafe-inline'`). It starts the flow by itself only when the browser says the
/// navigation came from this origin or from the user (`Sec-Fetch-Site: same-origin` or
/// `none`, or no header from older browsers); after a navigation from another site
/// (`cross-site`, or `same-site` from a sibling host) it shows a "Continue" button
/// first, so a page elsewhere cannot make it run a flow. (Stages with side effects
/// additionally ask for confirmation, whatever the page does.) While the session's
/// current stage of the flow is a captcha stage, the policy also admits the origin of
/// the provider's script ([`super::page_csp`]).
pub(crate) async fn page(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, _) = req.into_parts();
    let headers = &parts.headers;
    let autostart = match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None => true,
        Some(site) => site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none"),
    };
    // Random like the engine's other tokens (a v4 UUID: 122 random bits).
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let origins = super::page_csp::script_origins(&app, &parts, &slug).await;
    let csp = super::page_csp::policy(&nonce, &origins);
    let body = PAGE
        .replace("{{nonce}}", &nonce)
        // Validated (`MountPath`): `/`-separated unreserved characters only.
        .replace("{{base}}", app.config.mount_path.as_str())
        .replace("{{autostart}}", if autostart { "true" } else { "false" })
        // Validated (`page_csp::origin_of`): no quote, `&` or `<`.
        .replace("{{script_origins}}", &origins.join(" "))
        // Last: the encoder's text is not scanned for placeholders.
        .replace("{{qr_script}}", QR_SCRIPT);
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    if let Ok(v) = header::HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}
