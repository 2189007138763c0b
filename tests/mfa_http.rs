#![cfg(feature = "http")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The MFA challenges over HTTP, each checked against authentik's OpenAPI schema
//! (`AuthenticatorTOTPChallenge`, `AuthenticatorStaticChallenge`,
//! `AuthenticatorValidationChallenge`) by the recording server; the setup stages'
//! `configure_flow` behind `/flows/-/configure/{stage_uuid}/` (authentik's
//! `ConfigureFlowInitView`).

#[path = "common/mfa.rs"]
mod mfa;
#[path = "common/http.rs"]
mod support;

use authflow::defaults;
use authflow::model::{AuthenticatorValidateStage, FlowStageBinding, Stage};
use authflow::store::{FlowAdmin, FlowSource};
use serde_json::json;
use support::{ADMIN_PASSWORD, start};

#[tokio::test]
async fn setup_and_validate_over_http() {
    let s = start().await;
    let flows = s.stores.flows.clone();
    defaults::install_mfa_setup(flows.as_ref()).await.unwrap();
    let totp_stage = flows
        .flow(defaults::TOTP_SETUP)
        .await
        .unwrap()
        .unwrap()
        .stages[0]
        .stage
        .pk;
    let b = s.login("akadmin", ADMIN_PASSWORD).await;

    // The setup stage's configure_flow.
    let r = b.get(&format!("/flows/-/configure/{totp_stage}/")).await;
    assert_eq!(r.status, 302, "{}", r.text);
    assert_eq!(
        r.location().as_deref(),
        Some(format!("/if/flow/{}/", defaults::TOTP_SETUP).as_str())
    );

    let v = b.exec(defaults::TOTP_SETUP).await;
    let url = v.challenge("ak-stage-authenticator-totp")["config_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = mfa::secret_of(&url);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = b
        .answer(
            defaults::TOTP_SETUP,
            json!({"component": "ak-stage-authenticator-totp", "code": "12"}),
        )
        .await;
    r.challenge("ak-stage-authenticator-totp");
    assert!(r.json["response_errors"]["code"].is_array(), "{}", r.text);
    // The one-second wait after a failure.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = b
        .answer(
            defaults::TOTP_SETUP,
            json!({"component": "ak-stage-authenticator-totp", "code": mfa::totp(&key, now, 6)}),
        )
        .await;
    r.challenge("xak-flow-redirect");

    let v = b.exec(defaults::STATIC_SETUP).await;
    let codes: Vec<String> =
        serde_json::from_value(v.challenge("ak-stage-authenticator-static")["codes"].clone())
            .unwrap();
    let r = b
        .answer(
            defaults::STATIC_SETUP,
            json!({"component": "ak-stage-authenticator-static"}),
        )
        .await;
    r.challenge("xak-flow-redirect");

    // The login flow asks for a second factor now.
    let login = flows
        .flow(defaults::AUTHENTICATION)
        .await
        .unwrap()
        .unwrap()
        .flow;
    let validate = Stage::new("http-mfa", AuthenticatorValidateStage::default());
    flows.put_stage(validate.clone()).await.unwrap();
    flows
        .put_binding(FlowStageBinding::new(login.pk, validate.pk, 30))
        .await
        .unwrap();
    let b = s.browser();
    let slug = defaults::AUTHENTICATION;
    b.exec(slug).await;
    b.answer(
        slug,
        json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
    )
    .await;
    let r = b
        .answer(
            slug,
            json!({"component": "ak-stage-password", "password": ADMIN_PASSWORD}),
        )
        .await;
    let v = r.challenge("ak-stage-authenticator-validate");
    let classes: Vec<&str> = v["device_challenges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["device_class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["totp", "static"]);
    assert_eq!(v["configuration_stages"], json!([]));
    let r = b
        .answer(
            slug,
            json!({"component": "ak-stage-authenticator-validate", "code": codes[0]}),
        )
        .await;
    r.challenge("xak-flow-redirect");
    s.finish();
}
