//! The invitations API, compatible with authentik's
//! `/api/v3/stages/invitation/invitations/` (list, create, retrieve, delete), for
//! superusers (bearer token or session with CSRF), with authentik's JSON shapes:
//! `{"pk", "name", "expires", "fixed_data", "created_by", "single_use", "flow",
//! "flow_obj"}`, `created_by` as authentik's `GroupMemberSerializer`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::api::{admin, json_body, parse_usize, reply};
use super::error::ApiError;
use super::{AppState, datetime};
use crate::inspector::flow_json;
use crate::model::{FlowId, ValidationErrors, validate_slug};
use crate::request::query_param;
use crate::store::{Invitation, User};

async fn user_json(app: &AppState, pk: Option<&crate::model::UserId>) -> Result<Value, ApiError> {
    let Some(pk) = pk else {
        return Ok(Value::Null);
    };
    Ok(match app.engine.env().users.user(pk.clone()).await? {
        Some(u) => json!({
            "pk": u.pk,
            "username": u.username,
            "name": u.name,
            "is_active": u.is_active,
            "last_login": null,
            "email": u.email,
            "attributes": u.attributes,
            "uid": u.pk,
        }),
        None => json!({"pk": pk}),
    })
}

async fn invitation_json(app: &AppState, inv: &Invitation) -> Result<Value, ApiError> {
    let flow_obj = match inv.flow {
        Some(pk) => app
            .engine
            .env()
            .flows
            .flows()
            .await?
            .into_iter()
            .find(|f| f.pk == pk)
            .map(|f| flow_json(&f, app.config.paths()))
            .unwrap_or(Value::Null),
        None => Value::Null,
    };
    Ok(json!({
        "pk": inv.pk,
        "name": inv.name,
        "expires": inv.expires.map(datetime::format),
        "fixed_data": inv.fixed_data,
        "created_by": user_json(app, inv.created_by.as_ref()).await?,
        "single_use": inv.single_use,
        "flow": inv.flow,
        "flow_obj": flow_obj,
    }))
}

/// Reads a create body into an invitation (authentik's `InvitationSerializer`).
async fn from_body(
    app: &AppState,
    body: &Map<String, Value>,
    creator: &User,
) -> Result<Invitation, ApiError> {
    let mut errors = ValidationErrors::new();
    let mut inv = Invitation::new("");
    inv.pk = app.engine.env().random.uuid();
    inv.created_by = Some(creator.pk.clone());
    match body.get("name") {
        None => errors.add("name", "This field is required."),
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.add("name", "This field may not be blank.")
        }
        Some(Value::String(s)) => match validate_slug(s.trim()) {
            Ok(()) if s.chars().count() <= 50 => inv.name = s.trim().to_owned(),
            Ok(()) => errors.add("name", "Ensure this field has no more than 50 characters."),
            Err(m) => errors.add("name", m),
        },
        Some(_) => errors.add("name", "Not a valid string."),
    }
    match body.get("expires") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => match datetime::parse(s) {
            Some(t) => inv.expires = Some(t),
            None => errors.add(
                "expires",
                "Datetime has wrong format. Use one of these formats instead: \
                 YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            ),
        },
        Some(_) => errors.add("expires", "Datetime has wrong format."),
    }
    match body.get("fixed_data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => inv.fixed_data = m.clone(),
        Some(_) => errors.add("fixed_data", "Expected a dictionary of items."),
    }
    match body.get("single_use") {
        None => {}
        Some(Value::Bool(b)) => inv.single_use = *b,
        Some(_) => errors.add("single_use", "Must be a valid boolean."),
    }
    match body.get("flow") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let flows = app.engine.env().flows.flows().await?;
            let found = match s.parse::<FlowId>() {
                Ok(pk) => flows.iter().find(|f| f.pk == pk),
                Err(_) => flows.iter().find(|f| f.slug == *s),
            };
            match found {
                Some(f) => inv.flow = Some(f.pk),
                None => errors.add(
                    "flow",
                    format!("Invalid pk \"{s}\" - object does not exist."),
                ),
            }
        }
        Some(_) => errors.add("flow", "Incorrect type. Expected pk value."),
    }
    errors.into_result().map_err(ApiError::Validation)?;
    Ok(inv)
}

/// `GET /api/v3/stages/invitation/invitations/`: authentik's paginated list, newest
/// expiry first (`ordering = ["-expires"]`), filtered by `name` and `flow__slug`.
pub(crate) async fn list(State(app): State<AppState>, req: Request<Body>) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        admin(&app, &parts).await?;
        let query = parts.uri.query().unwrap_or("");
        let page = parse_usize(query, "page", 1);
        let size = parse_usize(query, "page_size", 20).min(1000);
        let mut all = app.engine.env().invitations.invitations().await?;
        if let Some(name) = query_param(query, "name") {
            all.retain(|i| i.name == name);
        }
        if let Some(slug) = query_param(query, "flow__slug") {
            let flows = app.engine.env().flows.flows().await?;
            let pk = flows.iter().find(|f| f.slug == slug).map(|f| f.pk);
            all.retain(|i| pk.is_some() && i.flow == pk);
        }
        // PostgreSQL's `ORDER BY expires DESC`: never-expiring ones first.
        all.sort_by(|a, b| match (a.expires, b.expires) {
            (None, None) => a.name.cmp(&b.name),
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => y.cmp(&x).then_with(|| a.name.cmp(&b.name)),
        });
        let count = all.len();
        let pages = count.div_ceil(size).max(1);
        if page > pages {
            return Err(ApiError::NotFound);
        }
        let start = (page - 1).saturating_mul(size);
        let mut results = Vec::new();
        for inv in all.iter().skip(start).take(size) {
            results.push(invitation_json(&app, inv).await?);
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

/// `POST /api/v3/stages/invitation/invitations/`: 201 with the invitation (created by
/// the requesting user), 400 with field errors.
pub(crate) async fn create(State(app): State<AppState>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let result = async {
        let user = admin(&app, &parts).await?;
        let body = json_body(&app, &parts, body).await?;
        let inv = from_body(&app, &body, &user).await?;
        app.engine.env().invitations.create(inv.clone()).await?;
        Ok::<_, ApiError>((
            StatusCode::CREATED,
            axum::Json(invitation_json(&app, &inv).await?),
        ))
    }
    .await;
    reply(result)
}

fn pk_of(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::NotFound)
}

/// `GET /api/v3/stages/invitation/invitations/{pk}/`.
pub(crate) async fn retrieve(
    State(app): State<AppState>,
    Path(pk): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        admin(&app, &parts).await?;
        let pk = pk_of(&pk)?;
        let inv = app
            .engine
            .env()
            .invitations
            .invitation(pk)
            .await?
            .ok_or(ApiError::NotFound)?;
        Ok::<_, ApiError>(axum::Json(invitation_json(&app, &inv).await?))
    }
    .await;
    reply(result)
}

/// `DELETE /api/v3/stages/invitation/invitations/{pk}/`: 204, or 404.
pub(crate) async fn destroy(
    State(app): State<AppState>,
    Path(pk): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        admin(&app, &parts).await?;
        let pk = pk_of(&pk)?;
        if app.engine.env().invitations.delete(pk).await? {
            Ok::<_, ApiError>(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::NotFound)
        }
    }
    .await;
    reply(result)
}
