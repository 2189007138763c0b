//! The logged-in user's MFA devices, as authentik's authenticator API shows them
//! (`authentik/stages/authenticator/api.py`, `authentik/core/api/devices.py`):
//! `GET /api/v3/authenticators/all/` lists them (never a secret), `DELETE
//! /api/v3/authenticators/{totp,static,webauthn}/{pk}/` removes one of the user's own
//! devices and records a `device_removed` event. A session's DELETE must come from this
//! site (same origin and CSRF token), like every other API write.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use super::AppState;
use super::api::{authenticated, reply};
use super::error::ApiError;
use crate::events::{Event, EventAction};
use crate::model::DeviceClass;
use crate::store::Device;

/// authentik's model name and verbose name of a device class.
fn names(class: DeviceClass) -> Option<(&'static str, &'static str)> {
    Some(match class {
        DeviceClass::Totp => (
            "authentik_stages_authenticator_totp.totpdevice",
            "TOTP Device",
        ),
        DeviceClass::Static => (
            "authentik_stages_authenticator_static.staticdevice",
            "Static Device",
        ),
        DeviceClass::Webauthn => (
            "authentik_stages_authenticator_webauthn.webauthndevice",
            "WebAuthn Device",
        ),
        _ => return None,
    })
}

/// authentik's `DeviceSerializer` fields.
fn device_json(d: &Device) -> Value {
    let (model, verbose) = names(d.class()).unwrap_or(("", ""));
    json!({
        "pk": d.id,
        "name": d.name,
        "type": model,
        "meta_model_name": model,
        "verbose_name": verbose,
        "confirmed": d.confirmed,
        "created": super::datetime::format(d.created),
        "last_used": d.last_used.map(super::datetime::format),
    })
}

/// `GET /api/v3/authenticators/all/`: the user's devices, oldest first.
pub(crate) async fn list(
    State(app): State<AppState>,
    req: Request<Body>,
) -> axum::response::Response {
    let (parts, _) = req.into_parts();
    let result = async {
        let user = authenticated(&app, &parts).await?;
        let devices = app.engine.env().devices.devices(&user.pk).await?;
        Ok::<_, ApiError>(axum::Json(Value::Array(
            devices.iter().map(device_json).collect(),
        )))
    }
    .await;
    reply(result)
}

/// `DELETE /api/v3/authenticators/{class}/{pk}/`: 204, or 404 when the user has no
/// device of that class with that id.
pub(crate) async fn destroy(
    State(app): State<AppState>,
    Path((class, pk)): Path<(String, String)>,
    req: Request<Body>,
) -> axum::response::Response {
    let (parts, _) = req.into_parts();
    let result = async {
        let user = authenticated(&app, &parts).await?;
        let class = match class.as_str() {
            "totp" => DeviceClass::Totp,
            "static" => DeviceClass::Static,
            "webauthn" => DeviceClass::Webauthn,
            _ => return Err(ApiError::NotFound),
        };
        let env = app.engine.env();
        let device = env
            .devices
            .device(&pk)
            .await?
            .filter(|d| d.user == user.pk && d.class() == class)
            .ok_or(ApiError::NotFound)?;
        if !env.devices.remove(&user.pk, &device.id).await? {
            return Err(ApiError::NotFound);
        }
        let mut event = Event::new(EventAction::DeviceRemoved)
            .with("device_class", class.as_str())
            .with("device", device.id.clone())
            .with("name", device.name.clone());
        event.user = Some(user.username.clone());
        env.events.emit(event);
        Ok::<_, ApiError>(StatusCode::NO_CONTENT)
    }
    .await;
    reply(result)
}
