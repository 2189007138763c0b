//! `GET /api/v3/flows/instances/{slug}/export/`: a flow as an authentik blueprint.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::api::admin;
use super::error::ApiError;

/// Answers the flow's blueprint YAML as an attachment `{slug}.yaml` (superusers).
pub(crate) async fn export(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    req: Request<Body>,
) -> Response {
    let (parts, _) = req.into_parts();
    let result = async {
        admin(&app, &parts).await?;
        let def = app.engine.definition(&slug).await?;
        let yaml = crate::blueprint::export(&def);
        let disposition = format!(
            "attachment; filename=\"{}.yaml\"",
            def.flow.slug.replace(['"', '\\'], "_")
        );
        Ok::<_, ApiError>(
            (
                [
                    (header::CONTENT_TYPE, "application/yaml".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                yaml,
            )
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
