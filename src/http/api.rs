//! The flows API (`/api/v3/flows/instances/…`), cancel and default-flow redirects.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::executor::{
    check_csrf, check_query, content_type, flow_request, read_body, refuse_cross_site,
    refuse_foreign_origin,
};
use super::{AppState, session};
use crate::inspector::flow_json;
use crate::model::{
    AuthenticationRequirement, DeniedAction, Flow, FlowDesignation, FlowLayout, PolicyEngineMode,
    StageConfig, ValidationErrors,
};
use crate::plan::{PendingUser, PlanContext};
use crate::planner::{self, PlanError};
use crate::request::{is_safe_relative_url, query_param};
use crate::store::User;

/// The superuser behind a bearer token or the session; CSRF-checked for session writes.
pub(super) async fn admin(app: &AppState, req: &Parts) -> Result<User, ApiError> {
    let user = authenticated(app, req).await?;
    superuser(app, user).await
}

/// The active user behind a bearer token or the session; a session's writes must come
/// from this site (same origin, CSRF token).
pub(super) async fn authenticated(app: &AppState, req: &Parts) -> Result<User, ApiError> {
    let headers = &req.headers;
    let engine = &app.engine;
    if let Some(pk) = session::bearer_user(headers, &app.config) {
        let user = engine
            .env()
            .users
            .user(pk)
            .await?
            .filter(|u| u.is_active)
            .ok_or(ApiError::Unauthenticated)?;
        return Ok(user);
    }
    let freq = flow_request(&app.config, req);
    let Some(id) = &freq.session_id else {
        return Err(ApiError::Forbidden(
            "Authentication credentials were not provided.".into(),
        ));
    };
    let user = engine.session_user(id).await?.ok_or_else(|| {
        ApiError::Forbidden("Authentication credentials were not provided.".into())
    })?;
    if req.method != Method::GET {
        refuse_foreign_origin(headers)?;
        check_csrf(engine, app, headers, &freq).await?;
    }
    Ok(user)
}

async fn superuser(app: &AppState, user: User) -> Result<User, ApiError> {
    if planner::is_superuser(app.engine.env(), Some(&user)).await? {
        Ok(user)
    } else {
        Err(ApiError::Forbidden(
            "You do not have permission to perform this action.".into(),
        ))
    }
}

/// authentik's `Flow` serializer output.
async fn flow_api_json(app: &AppState, flow: &Flow) -> Result<Value, ApiError> {
    let mut v = flow_json(flow, app.config.paths());
    let def = app.engine.definition(&flow.slug).await?;
    if let Value::Object(m) = &mut v {
        m.insert(
            "stages".into(),
            json!(def.stages.iter().map(|s| s.stage.pk).collect::<Vec<_>>()),
        );
        m.insert(
            "policies".into(),
            json!(
                def.policies
                    .iter()
                    .map(|p| p.binding.pk)
                    .collect::<Vec<_>>()
            ),
        );
        m.insert(
            "cache_count".into(),
            json!(app.engine.cache_count(&flow.slug)),
        );
        m.insert("background_url".into(), json!(flow.background_url()));
    }
    Ok(v)
}

pub(super) async fn json_body(
    app: &AppState,
    parts: &Parts,
    body: Body,
) -> Result<Map<String, Value>, ApiError> {
    let ctype = content_type(&parts.headers);
    if let Some(t) = ctype.as_deref() {
        if t != "application/json" && !t.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(
                t.chars().take(100).collect(),
            ));
        }
    }
    let bytes = read_body(app, body).await?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::Validation(ValidationErrors::field(
            crate::model::NON_FIELD_ERRORS,
            "Invalid data. Expected a dictionary.",
        ))),
        Err(e) => Err(ApiError::BadRequest(format!("JSON parse error - {e}"))),
    }
}

fn text(m: &Map<String, Value>, key: &str, errors: &mut ValidationErrors) -> Option<String> {
    match m.get(key) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.add(key, "Not a valid string.");
            None
        }
    }
}

fn choice<T: std::str::FromStr>(
    m: &Map<String, Value>,
    key: &str,
    errors: &mut ValidationErrors,
) -> Option<T> {
    let v = m.get(key)?;
    match v.as_str().map(str::parse::<T>) {
        Some(Ok(t)) => Some(t),
        _ => {
            errors.add(
                key,
                format!(
                    "\"{}\" is not a valid choice.",
                    v.as_str().unwrap_or(&v.to_string())
                ),
            );
            None
        }
    }
}

/// Applies API fields onto a flow; `partial` for PATCH.
fn apply(flow: &mut Flow, m: &Map<String, Value>, partial: bool) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    for key in ["name", "slug", "title", "designation"] {
        if !partial && !m.contains_key(key) {
            errors.add(key, "This field is required.");
        }
    }
    if let Some(v) = text(m, "name", &mut errors) {
        flow.name = v;
    }
    if let Some(v) = text(m, "slug", &mut errors) {
        flow.slug = v;
    }
    if let Some(v) = text(m, "title", &mut errors) {
        flow.title = v;
    }
    if let Some(v) = text(m, "background", &mut errors) {
        flow.background = v;
    }
    if let Some(v) = choice::<FlowDesignation>(m, "designation", &mut errors) {
        flow.designation = v;
    }
    if let Some(v) = choice::<AuthenticationRequirement>(m, "authentication", &mut errors) {
        flow.authentication = v;
    }
    if let Some(v) = choice::<PolicyEngineMode>(m, "policy_engine_mode", &mut errors) {
        flow.policy_engine_mode = v;
    }
    if let Some(v) = choice::<DeniedAction>(m, "denied_action", &mut errors) {
        flow.denied_action = v;
    }
    if let Some(v) = choice::<FlowLayout>(m, "layout", &mut errors) {
        flow.layout = v;
    }
    match m.get("compatibility_mode") {
        None => {}
        Some(Value::Bool(b)) => flow.compatibility_mode = *b,
        Some(_) => errors.add("compatibility_mode", "Must be a valid boolean."),
    }
    if errors.is_empty() {
        if let Err(e) = flow.validate() {
            for (k, msgs) in e.iter() {
                for msg in msgs {
                    errors.add(k, msg.clone());
                }
            }
        }
    }
    errors.into_result()
}

pub(super) fn parse_usize(query: &str, key: &str, default: usize) -> usize {
    query_param(query, key)
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// `GET /api/v3/flows/instances/`: authentik's paginated list.
pub(crate) async fn list(State(app): State<AppState>, req: Request<Body>) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        admin(&app, &parts).await?;
        let query = parts.uri.query().unwrap_or("");
        let page = parse_usize(query, "page", 1);
        let size = parse_usize(query, "page_size", 20).min(1000);
        let flows = app.engine.env().flows.flows().await?;
        let count = flows.len();
        let pages = count.div_ceil(size).max(1);
        if page > pages {
            // DRF's PageNumberPagination: a page past the last is 404 ("Invalid page.").
            return Err(ApiError::NotFound);
        }
        let start = (page - 1).saturating_mul(size);
        let mut results = Vec::new();
        for f in flows.iter().skip(start).take(size) {
            results.push(flow_api_json(&app, f).await?);
        }
        let end = start + results.len();
        Ok::<_, ApiError>(axum::Json(json!({
            "pagination": {
                "next": if page < pages { page + 1 } else { 0 },
                "previous": page.saturating_sub(1),
                "count": count,
                "current": page,
                "total_pages": pages,
                "start_index": if results.is_empty() { 0 } else { start + 1 },
                "end_index": end,
            },
            "results": results,
            "autocomplete": {},
        })))
    }
    .await;
    reply(result)
}

/// `POST /api/v3/flows/instances/`: 201 with the flow, 400 with field errors.
pub(crate) async fn create(State(app): State<AppState>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let result = async {
        admin(&app, &parts).await?;
        let body = json_body(&app, &parts, body).await?;
        let mut flow = Flow::new("", "", FlowDesignation::StageConfiguration);
        flow.title.clear();
        apply(&mut flow, &body, false).map_err(ApiError::Validation)?;
        app.engine.env().flows.put_flow(flow.clone()).await?;
        Ok::<_, ApiError>((
            StatusCode::CREATED,
            axum::Json(flow_api_json(&app, &flow).await?),
        ))
    }
    .await;
    reply(result)
}

async fn find(app: &AppState, slug: &str) -> Result<Flow, ApiError> {
    Ok(app.engine.definition(slug).await?.flow.clone())
}

/// `GET /api/v3/flows/instances/{slug}/`.
pub(crate) async fn retrieve(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        admin(&app, &parts).await?;
        let flow = find(&app, &slug).await?;
        Ok::<_, ApiError>(axum::Json(flow_api_json(&app, &flow).await?))
    }
    .await;
    reply(result)
}

/// `PATCH /api/v3/flows/instances/{slug}/`.
pub(crate) async fn update(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, body) = req.into_parts();
    let result = async {
        admin(&app, &parts).await?;
        let mut flow = find(&app, &slug).await?;
        let body = json_body(&app, &parts, body).await?;
        apply(&mut flow, &body, true).map_err(ApiError::Validation)?;
        app.engine.env().flows.put_flow(flow.clone()).await?;
        Ok::<_, ApiError>(axum::Json(flow_api_json(&app, &flow).await?))
    }
    .await;
    reply(result)
}

/// `DELETE /api/v3/flows/instances/{slug}/`: 204.
pub(crate) async fn destroy(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        admin(&app, &parts).await?;
        if app.engine.env().flows.delete_flow(&slug).await? {
            Ok::<_, ApiError>(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::NotFound)
        }
    }
    .await;
    reply(result)
}

/// `GET /api/v3/flows/instances/{slug}/execute/`: plans the flow for the token's (or
/// session's) user, gives the client a session cookie and the flow page `link`.
pub(crate) async fn execute(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        refuse_cross_site(&parts.headers)?;
        let freq = flow_request(&app.config, &parts);
        check_query(&app, &freq)?;
        let user = match session::bearer_user(&parts.headers, &app.config) {
            Some(pk) => app
                .engine
                .env()
                .users
                .user(pk)
                .await?
                .filter(|u| u.is_active),
            None => match &freq.session_id {
                Some(id) => app.engine.session_user(id).await?,
                None => None,
            },
        };
        let user = user.ok_or(ApiError::Unauthenticated)?;
        let mut context = PlanContext::new();
        context.set_pending_user(&PendingUser::of(&user));
        match app.engine.start(&freq, &slug, context, Some(&user)).await? {
            Ok(id) => {
                // From the configured external URL, never from the `Host` header.
                let link = app.config.link(&app.config.paths().flow_page(&slug, ""));
                let mut response = axum::Json(json!({ "link": link })).into_response();
                if freq.session_id.as_ref() != Some(&id) {
                    for v in session::set_cookies(&app.config, &id, false, None) {
                        response.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
                Ok::<_, ApiError>(response)
            }
            Err(messages) => Err(ApiError::BadRequest(format!(
                "Flow not applicable to current user/request: {}",
                messages.join("\n")
            ))),
        }
    }
    .await;
    reply(result)
}

/// `GET /flows/-/configure/{stage_uuid}/`: authentik's `ConfigureFlowInitView`
/// (`authentik/flows/views/executor.py`). The stage's `configure_flow` (authflow: the
/// password stage's, the TOTP and static setup stages') is planned for the logged-in user and the browser sent to it; a
/// visitor who is not logged in is sent to the default authentication flow first. An
/// unknown stage, one without `configure_flow`, or a flow that does not apply is 404.
pub(crate) async fn configure_flow(
    State(app): State<AppState>,
    Path(stage): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        let pk: crate::model::StageId = stage.parse().map_err(|_| ApiError::NotFound)?;
        let freq = flow_request(&app.config, &parts);
        let user = match &freq.session_id {
            Some(id) => app.engine.session_user(id).await?,
            None => None,
        };
        let Some(user) = user else {
            let paths = app.config.paths();
            let next: String = url_encode(&paths.configure(&pk.to_string()));
            return Ok::<_, ApiError>(redirect(
                &paths.default_flow("authentication", &format!("next={next}")),
            ));
        };
        let flows = app.engine.env().flows.clone();
        let mut target = None;
        for flow in flows.flows().await? {
            let Some(def) = flows.flow(&flow.slug).await? else {
                continue;
            };
            let stage = def
                .stages
                .iter()
                .map(|b| &b.stage)
                .find(|s| s.pk == pk)
                .or_else(|| def.referenced_stages.get(&pk));
            if let Some(stage) = stage {
                target = match &stage.config {
                    StageConfig::Password(p) => p.configure_flow.clone(),
                    StageConfig::AuthenticatorTotp(t) => t.configure_flow.clone(),
                    StageConfig::AuthenticatorStatic(s) => s.configure_flow.clone(),
                    StageConfig::AuthenticatorWebauthn(w) => w.configure_flow.clone(),
                    _ => None,
                };
                break;
            }
        }
        let slug = target.ok_or(ApiError::NotFound)?;
        let mut context = PlanContext::new();
        context.set_pending_user(&PendingUser::of(&user));
        match app.engine.plan_only(&freq, &slug, context).await {
            Ok(_) | Err(PlanError::Empty) => Ok(redirect(&app.config.paths().flow_page(&slug, ""))),
            Err(PlanError::NotApplicable { .. }) => Err(ApiError::NotFound),
            Err(PlanError::Store(e)) => Err(e.into()),
        }
    }
    .await;
    reply(result)
}

/// Percent-encodes everything but unreserved characters and `/`.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The handler's answer or its error, as a response.
pub(super) fn reply<T: IntoResponse>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(v) => v.into_response(),
        Err(e) => e.into_response(),
    }
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

/// `GET /flows/-/cancel/`: drops the session's plans; redirects to a relative `next`,
/// else to the default invalidation flow.
pub(crate) async fn cancel(State(app): State<AppState>, req: Request<Body>) -> Response {
    let (parts, _) = req.into_parts();
    let freq = flow_request(&app.config, &parts);
    // A link on another site must not cancel the visitor's flows in progress: only a
    // navigation the user made here (or a non-browser client) drops them.
    let deliberate = refuse_cross_site(&parts.headers).is_ok();
    if let Some(id) = freq.session_id.as_ref().filter(|_| deliberate) {
        if let Err(e) = app.engine.cancel(id, None).await {
            return ApiError::from(e).into_response();
        }
    }
    match freq.next.filter(|n| is_safe_relative_url(n)) {
        Some(next) => redirect(&next),
        None => redirect(&app.config.paths().default_flow("invalidation", "")),
    }
}

/// `GET /flows/-/default/{designation}/`: the first flow of that designation (by slug)
/// whose flow-level checks pass for this request.
pub(crate) async fn default_flow(
    State(app): State<AppState>,
    Path(designation): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        let designation: FlowDesignation = designation.parse().map_err(|_| ApiError::NotFound)?;
        let freq = flow_request(&app.config, &parts);
        let flows = app
            .engine
            .env()
            .flows
            .flows_by_designation(designation)
            .await?;
        for flow in flows {
            match app
                .engine
                .plan_only(&freq, &flow.slug, PlanContext::new())
                .await
            {
                Ok(_) | Err(PlanError::Empty) => {
                    let query = parts.uri.query().unwrap_or_default();
                    let to = app.config.paths().flow_page(&flow.slug, query);
                    return Ok::<_, ApiError>(redirect(&to));
                }
                Err(PlanError::NotApplicable { .. }) => continue,
                Err(PlanError::Store(e)) => return Err(e.into()),
            }
        }
        Err(ApiError::NotFound)
    }
    .await;
    reply(result)
}
