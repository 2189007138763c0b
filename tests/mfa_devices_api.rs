#![cfg(feature = "http")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The user's own MFA devices over HTTP, as authentik's authenticator API
//! (`authentik/core/api/devices.py` `DeviceViewSet`, `authentik/stages/authenticator_*/api.py`
//! `destroy`): listed without secrets, removed only by their owner and only by a
//! same-site request.

#[path = "common/http.rs"]
mod support;

use authflow::model::UserId;
use authflow::store::{Device, DeviceSecret};
use axum::http::Method;
use support::{ADMIN_PASSWORD, Csrf, Req, start};

fn totp(id: &str, user: &UserId) -> Device {
    Device {
        id: id.into(),
        user: user.clone(),
        name: format!("phone {id}"),
        created: 1_700_000_000,
        last_used: None,
        confirmed: true,
        secret: DeviceSecret::Totp {
            key: b"0123456789abcdef0123".to_vec(),
            digits: 6,
            period: 30,
            last_step: None,
        },
    }
}

#[tokio::test]
async fn users_list_and_remove_their_own_devices() {
    let s = start().await;
    let bob = s.create_user("bob", "Bob-Local-Pw-12345").await;
    let devices = s.engine.env().devices.clone();
    devices.add(totp("mine", &s.admin.pk)).await.unwrap();
    devices.add(totp("bobs", &bob.pk)).await.unwrap();
    let b = s.login("akadmin", ADMIN_PASSWORD).await;

    // Anonymous: refused.
    let r = s
        .browser()
        .send(Req::new(Method::GET, "/api/v3/authenticators/all/"))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);

    // Listed: only the user's own, with authentik's fields and no secret.
    let r = b
        .send(Req::new(Method::GET, "/api/v3/authenticators/all/"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = r.json.as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", r.text);
    assert_eq!(list[0]["pk"], "mine");
    assert_eq!(
        list[0]["meta_model_name"],
        "authentik_stages_authenticator_totp.totpdevice"
    );
    assert!(
        !r.text.contains("key") && !r.text.contains("secret"),
        "{}",
        r.text
    );

    // Another user's device, the wrong class, an unknown class: 404, nothing removed.
    for path in [
        "/api/v3/authenticators/totp/bobs/",
        "/api/v3/authenticators/static/mine/",
        "/api/v3/authenticators/sms/mine/",
    ] {
        let r = b.send(Req::new(Method::DELETE, path)).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text);
    }
    assert!(devices.device("bobs").await.unwrap().is_some());

    // A session's DELETE without the CSRF token (a cross-site request): refused.
    let r = b
        .send(Req::new(Method::DELETE, "/api/v3/authenticators/totp/mine/").csrf(Csrf::Omit))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(devices.device("mine").await.unwrap().is_some());

    // The owner's same-site DELETE: gone.
    let r = b
        .send(Req::new(
            Method::DELETE,
            "/api/v3/authenticators/totp/mine/",
        ))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(devices.device("mine").await.unwrap().is_none());
    assert!(devices.device("bobs").await.unwrap().is_some());
    let r = b
        .send(Req::new(
            Method::DELETE,
            "/api/v3/authenticators/totp/mine/",
        ))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
}
