#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Port of authentik's `authentik/flows/tests/test_inspector.py`
//! (`reference/authentik-flows.md` §9). The inspector endpoint is
//! `Engine::inspect(session, slug)`, serialised as the endpoint would.

mod common;

use std::collections::BTreeSet;

use authflow::model::{
    DummyStage, FlowDesignation, IdentificationStage, InvalidResponseAction, UserField,
};
use common::upstream::{TestEnv, generate_id};
use serde_json::{Value, json};

/// The top-level keys of the identification challenge in the recorded authentik
/// transcript.
fn observed_identification_keys() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/authentik-observed/01-happy-01-GET-executor.json"
    );
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    recorded["response"]["json"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

// Adapted: authentik's exact JSON also has `passkey_challenge: null`,
// `pending_user_identifier: null`, `flow_info.background_themed_urls: null` (and, in
// that version, `flow_info.messages: []`). These are optional in the executor schema;
// authflow omits them, exactly as the recorded authentik transcript does (checked
// against the fixture's keys), and adds the legacy `type` (DESIGN.md §5).
#[tokio::test]
async fn test() {
    let env = TestEnv::new();
    let admin = env.create_test_admin_user("akadmin").await;
    let flow = env.create_test_flow(FlowDesignation::Authentication).await;

    // Stage 1 is an identification stage
    let ident_stage = env
        .named_stage(
            &generate_id(),
            IdentificationStage {
                user_fields: vec![UserField::Username],
                ..IdentificationStage::default()
            },
        )
        .await;
    env.bind_with(&flow, &ident_stage, 0, |b| {
        b.invalid_response_action = InvalidResponseAction::RestartWithContext;
    })
    .await;
    let dummy_stage = env.named_stage(&generate_id(), DummyStage::default()).await;
    env.bind(&flow, &dummy_stage, 1).await;

    let mut client = env.client_as(&admin).await;
    let out = client.get(&flow.slug).await;
    let res = out.challenge.to_json();
    assert_eq!(
        res,
        json!({
            "type": "native",
            "allow_show_password": false,
            "captcha_stage": null,
            "component": "ak-stage-identification",
            "enable_remember_me": false,
            "flow_info": {
                "background": "/static/dist/assets/images/flow_background.jpg",
                "cancel_url": "/flows/-/cancel/",
                "title": flow.title,
                "layout": "stacked",
            },
            "flow_designation": "authentication",
            "password_fields": false,
            "primary_action": "Log in",
            "sources": [],
            "show_source_labels": false,
            "user_fields": ["username"],
        })
    );
    let mut keys: BTreeSet<String> = res.as_object().unwrap().keys().cloned().collect();
    keys.remove("type");
    assert_eq!(keys, observed_identification_keys());

    let session = client.session_id();
    let ins = env.engine.inspect(&session, &flow.slug).await.unwrap();
    let content = serde_json::to_value(&ins).unwrap();
    assert_eq!(content["is_completed"], false);
    assert_eq!(
        content["current_plan"]["current_stage"]["stage_obj"]["name"],
        ident_stage.name.as_str()
    );
    assert_eq!(
        content["current_plan"]["next_planned_stage"]["stage_obj"]["name"],
        dummy_stage.name.as_str()
    );

    let out = client
        .post(&flow.slug, json!({"uid_field": admin.username}))
        .await;
    assert_eq!(out.challenge.component(), "ak-stage-dummy");

    let ins = env
        .engine
        .inspect(&client.session_id(), &flow.slug)
        .await
        .unwrap();
    let content = serde_json::to_value(&ins).unwrap();
    assert_eq!(content["is_completed"], false);
    assert_eq!(
        content["plans"][0]["current_stage"]["stage_obj"]["name"],
        ident_stage.name.as_str()
    );
    assert_eq!(
        content["current_plan"]["current_stage"]["stage_obj"]["name"],
        dummy_stage.name.as_str()
    );
    assert_eq!(
        content["current_plan"]["plan_context"]["pending_user"]["username"],
        admin.username.as_str()
    );
}
