//! `GET /api/v3/core/users/me/`: the logged-in user, as authentik's `UserViewSet.me`
//! (`authentik/core/api/users.py`) answers it: `{"user": SessionUserSerializer}`.

use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::Digest;

use super::error::ApiError;
use super::executor::flow_request;
use super::{AppState, session};
use crate::executor::avatar;
use crate::planner;
use crate::store::User;

/// authentik's answer without credentials (DRF's `NotAuthenticated`, a 403 there).
const NO_CREDENTIALS: &str = "Authentication credentials were not provided.";

/// `GET /api/v3/core/users/me/`: 200 `{"user": {…}}` for a session or bearer token;
/// 403 without one.
pub(crate) async fn me(State(app): State<AppState>, req: Request<Body>) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        let engine = &app.engine;
        let user = if let Some(pk) = session::bearer_user(&parts.headers, &app.config) {
            engine
                .env()
                .users
                .user(pk)
                .await?
                .filter(|u| u.is_active)
                .ok_or(ApiError::Unauthenticated)?
        } else {
            let freq = flow_request(&app.config, &parts);
            let Some(id) = &freq.session_id else {
                return Err(ApiError::Forbidden(NO_CREDENTIALS.into()));
            };
            engine
                .session_user(id)
                .await?
                .ok_or_else(|| ApiError::Forbidden(NO_CREDENTIALS.into()))?
        };
        Ok::<_, ApiError>(axum::Json(json!({"user": user_json(&app, &user).await?})))
    }
    .await;
    match result {
        Ok(v) => v.into_response(),
        Err(e) => e.into_response(),
    }
}

/// authentik's `UserSelfSerializer` fields.
async fn user_json(app: &AppState, user: &User) -> Result<Value, ApiError> {
    let env = app.engine.env();
    let mut groups = Vec::new();
    for pk in &user.groups {
        if let Some(g) = env.users.group(*pk).await? {
            groups.push(json!({"name": g.name, "pk": g.pk.to_string()}));
        }
    }
    let is_superuser = planner::is_superuser(env, Some(user)).await?;
    let display = if user.name.is_empty() {
        &user.username
    } else {
        &user.name
    };
    // authentik: sha256 of "<install id>-<pk>"; authflow has no install id: sha256 of the pk.
    let uid: String = sha2::Sha256::digest(user.pk.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let user_type = if user.user_type.is_empty() {
        "internal"
    } else {
        user.user_type.as_str()
    };
    Ok(json!({
        "pk": user.pk.to_string(),
        "username": user.username,
        "name": user.name,
        "is_active": user.is_active,
        "is_superuser": is_superuser,
        "groups": groups,
        "email": user.email,
        "avatar": avatar(display),
        "uid": uid,
        "settings": user.attributes.get("settings").cloned().unwrap_or_else(|| json!({})),
        "type": user_type,
        // authflow has no RBAC: superusers get authentik's admin-interface permission.
        "system_permissions": if is_superuser { json!(["access_admin_interface"]) } else { json!([]) },
    }))
}
