#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Authenticator validation (authentik's `AuthenticatorValidateStageView`,
//! authentik/stages/authenticator_validate/stage.py): real devices, codes from the
//! tests' own RFC 6238 implementation, the three `not_configured_action`s, setup stages
//! inserted into the plan (one, or chosen among several), `device_classes`,
//! `selected_challenge`, `last_auth_threshold`, replays, and a step retried after a save
//! conflict; authentik's `flows-login-2fa` blueprint end to end (feature `python`: its
//! binding's expression policy must run).
#![cfg(feature = "blueprints")]

mod common;
#[path = "common/mfa.rs"]
mod mfa;

use authflow::events::EventAction;
use authflow::hashing::token_digest;
use authflow::store::{Device, DeviceSecret, DeviceStore, User};
use common::kit::{Client, error_messages, wire};
use mfa::{Mfa, T0, secret_of, totp};
use serde_json::{Value, json};

const FLOW: &str = "mfa-login";
const PASSWORD: &str = "Dana-Password-1";
const KEY: &[u8; 20] = b"0123456789abcdefghij";

/// A login flow: identification, password, validation (`attrs` of the validation
/// stage as YAML flow mapping entries), user login.
fn flow_yaml(attrs: &str) -> String {
    format!(
        r#"
version: 1
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {{slug: {FLOW}}}
    attrs: {{name: MFA, title: MFA, designation: authentication}}
  - model: authentik_stages_identification.identificationstage
    id: ident
    identifiers: {{name: mfa-ident}}
    attrs: {{user_fields: [username]}}
  - model: authentik_stages_password.passwordstage
    id: password
    identifiers: {{name: mfa-password}}
  - model: authentik_stages_authenticator_validate.authenticatorvalidatestage
    id: mfa
    identifiers: {{name: mfa-validate}}
    attrs: {{{attrs}}}
  - model: authentik_stages_user_login.userloginstage
    id: login
    identifiers: {{name: mfa-user-login}}
  - model: authentik_flows.flowstagebinding
    identifiers: {{target: !KeyOf flow, stage: !KeyOf ident, order: 10}}
  - model: authentik_flows.flowstagebinding
    identifiers: {{target: !KeyOf flow, stage: !KeyOf password, order: 20}}
  - model: authentik_flows.flowstagebinding
    identifiers: {{target: !KeyOf flow, stage: !KeyOf mfa, order: 30}}
  - model: authentik_flows.flowstagebinding
    identifiers: {{target: !KeyOf flow, stage: !KeyOf login, order: 100}}
"#
    )
}

const TOTP_STAGE: &str = "!Find [authentik_stages_authenticator_totp.authenticatortotpstage, [name, default-authenticator-totp-setup]]";
const STATIC_STAGE: &str = "!Find [authentik_stages_authenticator_static.authenticatorstaticstage, [name, default-authenticator-static-setup]]";

async fn env_with(attrs: &str) -> Mfa {
    let env = Mfa::new().await;
    env.import("flow-default-authenticator-totp-setup.yaml")
        .await;
    env.import("flow-default-authenticator-static-setup.yaml")
        .await;
    env.import_str(&flow_yaml(attrs)).await;
    env
}

async fn add_totp(env: &Mfa, user: &User) -> Device {
    let d = Device {
        id: format!("totp-{}", user.username),
        user: user.pk.clone(),
        name: "phone".into(),
        created: T0 - 1000,
        last_used: None,
        confirmed: true,
        secret: DeviceSecret::Totp {
            key: KEY.to_vec(),
            digits: 6,
            period: 30,
            last_step: None,
        },
    };
    env.devices.add(d.clone()).await.unwrap();
    d
}

async fn add_static(env: &Mfa, user: &User, codes: &[&str]) -> Device {
    let d = Device {
        id: format!("static-{}", user.username),
        user: user.pk.clone(),
        name: "codes".into(),
        created: T0 - 1000,
        last_used: None,
        confirmed: true,
        secret: DeviceSecret::Static {
            tokens: codes.iter().map(|c| token_digest(c)).collect(),
        },
    };
    env.devices.add(d.clone()).await.unwrap();
    d
}

/// Identification and password: what the flow asks next.
async fn to_mfa(env: &Mfa, username: &str) -> (Client, Value) {
    let mut c = Client::new(env.engine.clone());
    c.get(FLOW).await;
    c.post(
        FLOW,
        json!({"component": "ak-stage-identification", "uid_field": username}),
    )
    .await;
    let out = c
        .post(
            FLOW,
            json!({"component": "ak-stage-password", "password": PASSWORD}),
        )
        .await;
    let v = wire(&out);
    (c, v)
}

fn code(code: &str) -> Value {
    json!({"component": "ak-stage-authenticator-validate", "code": code})
}

async fn post(c: &mut Client, body: Value) -> (bool, Value) {
    let out = c.post(FLOW, body).await;
    (out.logged_in, wire(&out))
}

#[tokio::test]
async fn a_user_with_a_device_is_asked_even_with_skip() {
    let env = env_with("not_configured_action: skip").await;
    let dana = env.user("dana", PASSWORD).await;
    let device = add_totp(&env, &dana).await;
    let (mut c, v) = to_mfa(&env, "dana").await;
    // The wire JSON of authentik's AuthenticatorValidationChallenge.
    assert_eq!(v["component"], "ak-stage-authenticator-validate", "{v}");
    assert_eq!(
        v["device_challenges"],
        json!([{"device_class": "totp", "device_uid": device.id, "challenge": {}, "last_used": null}])
    );
    assert_eq!(v["configuration_stages"], json!([]));
    assert_eq!(v["pending_user"], "dana");

    // A wrong code: the same challenge, an error on `code`, a login_failed event.
    let (ok, out) = post(&mut c, code("000000")).await;
    assert!(!ok);
    assert_eq!(out["device_challenges"], v["device_challenges"]);
    assert!(
        error_messages(&out)["code"][0].starts_with("Invalid Token"),
        "{out}"
    );
    assert_eq!(env.events.of(EventAction::LoginFailed).len(), 1);
    env.clock.advance(1);
    let (ok, out) = post(&mut c, code(&totp(KEY, T0 + 1, 6))).await;
    assert!(ok, "{out}");
    let validated = env.events.of(EventAction::MfaValidated);
    assert_eq!(validated.len(), 1);
    assert_eq!(validated[0].context["device_class"], "totp");
    let login = env.events.of(EventAction::Login);
    assert_eq!(login[0].context["auth_method"], "password");

    // The same code (same step) never validates again, the next step's does.
    let (mut c, _) = to_mfa(&env, "dana").await;
    let (ok, out) = post(&mut c, code(&totp(KEY, T0 + 1, 6))).await;
    assert!(!ok, "a replayed code: {out}");
    env.clock.advance(30);
    let (ok, out) = post(&mut c, code(&totp(KEY, T0 + 31, 6))).await;
    assert!(ok, "{out}");
    // last_used is shown.
    let (_, v) = to_mfa(&env, "dana").await;
    assert_eq!(
        v["device_challenges"][0]["last_used"],
        "2027-01-15T08:00:36Z"
    );
}

#[tokio::test]
async fn expired_codes_and_one_step_tolerance() {
    let env = env_with("not_configured_action: skip").await;
    let dana = env.user("dana", PASSWORD).await;
    add_totp(&env, &dana).await;
    let (mut c, _) = to_mfa(&env, "dana").await;
    let (ok, _) = post(&mut c, code(&totp(KEY, T0 - 60, 6))).await;
    assert!(!ok, "two steps old");
    env.clock.advance(1);
    let (ok, out) = post(&mut c, code(&totp(KEY, T0 - 30, 6))).await;
    assert!(ok, "one step old: {out}");
}

#[tokio::test]
async fn static_codes_validate_once() {
    let env = env_with("not_configured_action: skip").await;
    let dana = env.user("dana", PASSWORD).await;
    add_static(&env, &dana, &["aaaa1111bbbb", "cccc2222dddd"]).await;
    let (mut c, v) = to_mfa(&env, "dana").await;
    assert_eq!(v["device_challenges"][0]["device_class"], "static", "{v}");
    let (ok, out) = post(&mut c, code("aaaa1111bbbb")).await;
    assert!(ok, "{out}");
    let (mut c, _) = to_mfa(&env, "dana").await;
    let (ok, out) = post(&mut c, code("aaaa1111bbbb")).await;
    assert!(!ok, "a spent code: {out}");
    env.clock.advance(1);
    let (ok, out) = post(&mut c, code("CCCC2222DDDD")).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn codes_are_tried_only_within_device_classes() {
    let env = env_with("device_classes: [totp]").await;
    let dana = env.user("dana", PASSWORD).await;
    add_totp(&env, &dana).await;
    add_static(&env, &dana, &["aaaa1111bbbb"]).await;
    let (mut c, v) = to_mfa(&env, "dana").await;
    assert_eq!(v["device_challenges"].as_array().unwrap().len(), 1, "{v}");
    let (ok, out) = post(&mut c, code("aaaa1111bbbb")).await;
    assert!(!ok, "a static code where only TOTP is allowed: {out}");

    // A user whose only device is of another class is not configured (skip: through).
    let erin = env.user("erin", PASSWORD).await;
    add_static(&env, &erin, &["eeee1111ffff"]).await;
    let (_, v) = to_mfa(&env, "erin").await;
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
}

#[tokio::test]
async fn selected_challenge_must_be_offered() {
    let env = env_with("not_configured_action: skip").await;
    let dana = env.user("dana", PASSWORD).await;
    let device = add_totp(&env, &dana).await;
    let (mut c, _) = to_mfa(&env, "dana").await;
    let bogus =
        json!({"device_class": "totp", "device_uid": "other", "challenge": {}, "last_used": null});
    let (_, out) = post(
        &mut c,
        json!({"component": "ak-stage-authenticator-validate", "selected_challenge": bogus}),
    )
    .await;
    assert_eq!(
        error_messages(&out)["selected_challenge"],
        vec!["invalid challenge selected".to_owned()]
    );
    let good = json!({"device_class": "totp", "device_uid": device.id, "challenge": {}, "last_used": null});
    let (_, out) = post(
        &mut c,
        json!({"component": "ak-stage-authenticator-validate", "selected_challenge": good}),
    )
    .await;
    assert!(error_messages(&out).is_empty(), "{out}");
    let (ok, out) = post(
        &mut c,
        json!({"component": "ak-stage-authenticator-validate", "selected_challenge": good, "code": totp(KEY, T0, 6)}),
    )
    .await;
    assert!(ok, "{out}");
    // An empty response.
    let (mut c, _) = to_mfa(&env, "dana").await;
    let (_, out) = post(
        &mut c,
        json!({"component": "ak-stage-authenticator-validate"}),
    )
    .await;
    assert_eq!(
        error_messages(&out)["non_field_errors"],
        vec!["Empty response".to_owned()]
    );
}

#[tokio::test]
async fn not_configured_skip_and_deny() {
    let env = env_with("not_configured_action: skip").await;
    env.user("dana", PASSWORD).await;
    let (_, v) = to_mfa(&env, "dana").await;
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
    let env = env_with("not_configured_action: deny").await;
    env.user("dana", PASSWORD).await;
    let (_, v) = to_mfa(&env, "dana").await;
    assert_eq!(v["component"], "ak-stage-access-denied");
    assert_eq!(
        v["error_message"],
        "No (allowed) MFA authenticator configured."
    );
    // configure without configuration stages: denied too.
    let env = env_with("not_configured_action: configure").await;
    env.user("dana", PASSWORD).await;
    let (_, v) = to_mfa(&env, "dana").await;
    assert_eq!(
        v["error_message"],
        "No (allowed) MFA authenticator configured."
    );
}

#[tokio::test]
async fn configure_with_one_stage_inserts_it() {
    let env = env_with(&format!(
        "not_configured_action: configure, configuration_stages: [{TOTP_STAGE}]"
    ))
    .await;
    let dana = env.user("dana", PASSWORD).await;
    let (mut c, v) = to_mfa(&env, "dana").await;
    assert_eq!(v["component"], "ak-stage-authenticator-totp", "{v}");
    let key = secret_of(v["config_url"].as_str().unwrap());
    let out = c
        .post(
            FLOW,
            json!({"component": "ak-stage-authenticator-totp", "code": totp(&key, T0, 6)}),
        )
        .await;
    assert!(out.logged_in, "{}", wire(&out));
    assert_eq!(env.devices.devices(&dana.pk).await.unwrap().len(), 1);
    // Next time the new device is asked for.
    env.clock.advance(30);
    let (mut c, v) = to_mfa(&env, "dana").await;
    assert_eq!(v["device_challenges"][0]["device_class"], "totp", "{v}");
    let (ok, out) = post(&mut c, code(&totp(&key, T0 + 30, 6))).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn configure_with_several_stages_lets_the_user_choose() {
    let env = env_with(&format!(
        "not_configured_action: configure, configuration_stages: [{TOTP_STAGE}, {STATIC_STAGE}]"
    ))
    .await;
    let dana = env.user("dana", PASSWORD).await;
    let (mut c, v) = to_mfa(&env, "dana").await;
    assert_eq!(v["component"], "ak-stage-authenticator-validate", "{v}");
    assert_eq!(v["device_challenges"], json!([]));
    let stages = v["configuration_stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "{v}");
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["meta_model_name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"authentik_stages_authenticator_static.authenticatorstaticstage"));
    let static_stage = stages
        .iter()
        .find(|s| s["verbose_name"] == "Static Authenticator Setup Stage")
        .unwrap();
    assert_eq!(static_stage["name"], "default-authenticator-static-setup");
    let (_, out) = post(
        &mut c,
        json!({"component": "ak-stage-authenticator-validate", "selected_stage": "nope"}),
    )
    .await;
    assert_eq!(
        error_messages(&out)["selected_stage"],
        vec!["Selected stage is invalid".to_owned()]
    );
    let (_, out) = post(
        &mut c,
        json!({"component": "ak-stage-authenticator-validate", "selected_stage": static_stage["pk"]}),
    )
    .await;
    assert_eq!(out["component"], "ak-stage-authenticator-static", "{out}");
    let codes: Vec<String> = serde_json::from_value(out["codes"].clone()).unwrap();
    assert_eq!(codes.len(), 6);
    let (ok, out) = post(
        &mut c,
        json!({"component": "ak-stage-authenticator-static"}),
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(env.devices.devices(&dana.pk).await.unwrap().len(), 1);
    // A code from the setup logs in next time.
    let (mut c, _) = to_mfa(&env, "dana").await;
    let (ok, out) = post(&mut c, code(&codes[3])).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn last_auth_threshold_skips_a_recent_validation() {
    let env = env_with("last_auth_threshold: hours=1").await;
    let dana = env.user("dana", PASSWORD).await;
    add_totp(&env, &dana).await;
    let (mut c, _) = to_mfa(&env, "dana").await;
    let (ok, _) = post(&mut c, code(&totp(KEY, T0, 6))).await;
    assert!(ok);
    env.clock.advance(1800);
    let (_, v) = to_mfa(&env, "dana").await;
    assert_eq!(v["component"], "xak-flow-redirect", "within the hour: {v}");
    env.clock.advance(1801);
    let (_, v) = to_mfa(&env, "dana").await;
    assert_eq!(v["component"], "ak-stage-authenticator-validate", "{v}");
}

#[tokio::test]
async fn a_retried_step_does_not_spend_its_own_code() {
    let env = env_with("not_configured_action: skip").await;
    let dana = env.user("dana", PASSWORD).await;
    add_static(&env, &dana, &["aaaa1111bbbb"]).await;
    add_totp(&env, &dana).await;
    for body in [code(&totp(KEY, T0, 6)), code("aaaa1111bbbb")] {
        let (mut c, _) = to_mfa(&env, "dana").await;
        // The first save loses a compare-and-swap race: the engine runs the step again.
        env.conflict_next_saves(1);
        let (ok, out) = post(&mut c, body).await;
        assert!(ok, "{out}");
        assert_eq!(
            *env.sessions.conflicts.lock().unwrap(),
            0,
            "a conflict happened"
        );
        env.clock.advance(30);
    }
    let devices = env.devices.devices(&dana.pk).await.unwrap();
    let spent = devices.iter().find_map(|d| match &d.secret {
        DeviceSecret::Static { tokens } => Some(tokens.len()),
        _ => None,
    });
    assert_eq!(spent, Some(0));
    assert_eq!(env.events.of(EventAction::MfaValidated).len(), 2);
    // A wrong code retried: counted once, so the retry reports the wrong code rather
    // than waiting for its own first attempt.
    let (mut c, _) = to_mfa(&env, "dana").await;
    env.conflict_next_saves(1);
    let (ok, out) = post(&mut c, code("zzzz9999zzzz")).await;
    assert!(!ok);
    assert!(
        error_messages(&out)["code"][0].starts_with("Invalid Token"),
        "{out}"
    );
}

/// authentik's `flows-login-2fa` (identification → password → validation → login),
/// imported unchanged: its validation binding carries an expression policy, which must
/// run, or the second factor would be skipped.
#[cfg(feature = "python")]
#[tokio::test]
async fn flows_login_2fa_end_to_end() {
    let env = Mfa::new().await;
    env.import("flows-login-2fa.yaml").await;
    let dana = env.user("dana", PASSWORD).await;
    add_totp(&env, &dana).await;
    let slug = authflow::defaults::AUTHENTICATION;
    let mut c = Client::new(env.engine.clone());
    c.get(slug).await;
    c.post(
        slug,
        json!({"component": "ak-stage-identification", "uid_field": "dana"}),
    )
    .await;
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-password", "password": PASSWORD}),
        )
        .await;
    let v = wire(&out);
    assert_eq!(v["component"], "ak-stage-authenticator-validate", "{v}");
    let out = c.post(slug, code(&totp(KEY, T0, 6))).await;
    assert!(out.logged_in, "{}", wire(&out));
    // A user without a device: skip (the blueprint's default).
    env.user("erin", PASSWORD).await;
    let mut c = Client::new(env.engine.clone());
    c.get(slug).await;
    c.post(
        slug,
        json!({"component": "ak-stage-identification", "uid_field": "erin"}),
    )
    .await;
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-password", "password": PASSWORD}),
        )
        .await;
    assert!(out.logged_in, "{}", wire(&out));
}
