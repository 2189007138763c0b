#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! TOTP setup (authentik's `AuthenticatorTOTPStageView`,
//! authentik/stages/authenticator_totp/stage.py) through authentik's
//! `flow-default-authenticator-totp-setup` blueprint, imported without
//! `skip_unsupported`; codes come from the tests' own RFC 6238 implementation.
#![cfg(feature = "blueprints")]

mod common;
#[path = "common/mfa.rs"]
mod mfa;

use authflow::defaults;
use authflow::events::EventAction;
use authflow::store::{DeviceSecret, DeviceStore};
use common::kit::{Client, error_messages, wire};
use mfa::{Mfa, T0, check_totp_vectors, param, secret_of, totp};
use serde_json::{Value, json};

const SETUP: &str = "default-authenticator-totp-setup";
const PASSWORD: &str = "Alice-Password-1";

async fn logged_in(env: &Mfa, username: &str) -> (Client, authflow::store::User) {
    let user = env.user(username, PASSWORD).await;
    let mut c = Client::new(env.engine.clone());
    c.get(defaults::AUTHENTICATION).await;
    c.post(
        defaults::AUTHENTICATION,
        json!({"component": "ak-stage-identification", "uid_field": username}),
    )
    .await;
    let out = c
        .post(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-password", "password": PASSWORD}),
        )
        .await;
    assert!(out.logged_in, "{}", wire(&out));
    (c, user)
}

fn code_post(code: &str) -> Value {
    json!({"component": "ak-stage-authenticator-totp", "code": code})
}

#[test]
fn the_tests_totp_matches_rfc6238() {
    check_totp_vectors();
}

#[tokio::test]
async fn setup_confirms_the_secret_with_a_first_code() {
    let env = Mfa::new().await;
    env.import("flow-default-authenticator-totp-setup.yaml")
        .await;
    let (mut c, user) = logged_in(&env, "alice").await;

    let first = wire(&c.get(SETUP).await);
    assert_eq!(first["component"], "ak-stage-authenticator-totp", "{first}");
    let url = first["config_url"].as_str().unwrap().to_owned();
    // Wire shape (authentik's AuthenticatorTOTPChallenge).
    assert_eq!(first["type"], "native");
    assert_eq!(first["pending_user"], "alice");
    assert!(first["pending_user_avatar"].is_string());
    assert!(first["flow_info"]["title"].is_string());
    let issuer = "Set%20up%20Two-Factor%20authentication";
    assert!(
        url.starts_with(&format!("otpauth://totp/{issuer}:alice?")),
        "{url}"
    );
    assert_eq!(param(&url, "algorithm"), Some("SHA1"));
    assert_eq!(param(&url, "digits"), Some("6"));
    assert_eq!(param(&url, "period"), Some("30"));
    assert_eq!(param(&url, "issuer"), Some(issuer));
    let key = secret_of(&url);
    assert!(key.len() * 8 >= 128, "{} bits", key.len() * 8);

    // A re-render keeps the secret.
    assert_eq!(wire(&c.get(SETUP).await)["config_url"], url.as_str());

    // A wrong code: the same challenge (same secret) with an error on `code`.
    let good = totp(&key, T0, 6);
    let wrong = if good == "000000" { "111111" } else { "000000" };
    let out = wire(&c.post(SETUP, code_post(wrong)).await);
    assert_eq!(out["component"], "ak-stage-authenticator-totp");
    assert_eq!(out["config_url"], url.as_str());
    assert!(!error_messages(&out)["code"].is_empty(), "{out}");
    assert!(env.devices.devices(&user.pk).await.unwrap().is_empty());

    // Throttled for a second after one failure (seconds, not minutes).
    let out = wire(&c.post(SETUP, code_post(&good)).await);
    assert_eq!(
        error_messages(&out)["code"],
        vec!["Too many failed attempts. Try again in 1 second.".to_owned()],
        "{out}"
    );
    env.clock.advance(1);
    let out = c.post(SETUP, code_post(&good)).await;
    assert_eq!(
        out.challenge.component(),
        "xak-flow-redirect",
        "{}",
        wire(&out)
    );

    let devices = env.devices.devices(&user.pk).await.unwrap();
    assert_eq!(devices.len(), 1);
    let DeviceSecret::Totp {
        key: stored,
        digits,
        period,
        last_step,
    } = &devices[0].secret
    else {
        panic!("a TOTP device");
    };
    assert_eq!(stored, &key);
    assert_eq!((*digits, *period), (6, 30));
    // The confirming code's step is spent.
    assert_eq!(*last_step, Some((T0 + 1) / 30));
    assert_eq!(devices[0].name, "TOTP Device");
    let added = env.events.of(EventAction::DeviceAdded);
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].context["device_class"], "totp");
    assert!(!format!("{added:?}").contains(param(&url, "secret").unwrap()));

    // The secret never comes back: setting up again draws another one.
    let again = wire(&c.get(SETUP).await);
    assert_ne!(again["config_url"], url.as_str());
    assert_ne!(secret_of(again["config_url"].as_str().unwrap()), key);
}

#[tokio::test]
async fn tolerance_is_one_step_and_failures_back_off() {
    let env = Mfa::new().await;
    env.import("flow-default-authenticator-totp-setup.yaml")
        .await;
    let (mut c, _) = logged_in(&env, "bob").await;
    let url = wire(&c.get(SETUP).await)["config_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = secret_of(&url);
    // Two steps old: expired.
    let out = wire(&c.post(SETUP, code_post(&totp(&key, T0 - 60, 6))).await);
    assert!(!error_messages(&out)["code"].is_empty(), "{out}");
    env.clock.advance(1);
    // Two steps ahead: refused too. The second failure waits 2 seconds.
    let out = wire(&c.post(SETUP, code_post(&totp(&key, T0 + 61, 6))).await);
    assert!(!error_messages(&out)["code"].is_empty(), "{out}");
    let out = wire(&c.post(SETUP, code_post(&totp(&key, T0, 6))).await);
    assert_eq!(
        error_messages(&out)["code"],
        vec!["Too many failed attempts. Try again in 2 seconds.".to_owned()]
    );
    env.clock.advance(2);
    // One step old: accepted.
    let out = c.post(SETUP, code_post(&totp(&key, T0 + 3 - 30, 6))).await;
    assert_eq!(
        out.challenge.component(),
        "xak-flow-redirect",
        "{}",
        wire(&out)
    );
}

#[tokio::test]
async fn eight_digits_and_a_missing_code() {
    let env = Mfa::new().await;
    env.import("flow-default-authenticator-totp-setup.yaml")
        .await;
    env.import_str(
        "version: 1\nentries:\n  - model: authentik_stages_authenticator_totp.authenticatortotpstage\n    identifiers: {name: default-authenticator-totp-setup}\n    attrs: {digits: \"8\", friendly_name: Phone}\n",
    )
    .await;
    let (mut c, user) = logged_in(&env, "carol").await;
    let url = wire(&c.get(SETUP).await)["config_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(param(&url, "digits"), Some("8"));
    let out = wire(
        &c.post(SETUP, json!({"component": "ak-stage-authenticator-totp"}))
            .await,
    );
    assert_eq!(out["config_url"], url.as_str());
    assert!(!error_messages(&out)["code"].is_empty(), "{out}");
    let key = secret_of(&url);
    let out = c.post(SETUP, code_post(&totp(&key, T0, 8))).await;
    assert_eq!(
        out.challenge.component(),
        "xak-flow-redirect",
        "{}",
        wire(&out)
    );
    assert_eq!(
        env.devices.devices(&user.pk).await.unwrap()[0].name,
        "Phone"
    );
}

#[tokio::test]
async fn an_anonymous_visitor_cannot_set_up() {
    let env = Mfa::new().await;
    env.import("flow-default-authenticator-totp-setup.yaml")
        .await;
    let mut c = Client::new(env.engine.clone());
    let out = c.get(SETUP).await;
    assert_ne!(out.challenge.component(), "ak-stage-authenticator-totp");
}
