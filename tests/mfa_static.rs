#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Static recovery codes (authentik's `AuthenticatorStaticStageView`,
//! authentik/stages/authenticator_static/stage.py) through authentik's
//! `flow-default-authenticator-static-setup` blueprint, imported without
//! `skip_unsupported`, then used once each by a validation stage.
#![cfg(feature = "blueprints")]

mod common;
#[path = "common/mfa.rs"]
mod mfa;

use authflow::defaults;
use authflow::events::EventAction;
use authflow::hashing::token_digest;
use authflow::store::{DeviceSecret, DeviceStore};
use common::kit::{Client, wire};
use mfa::Mfa;
use serde_json::json;

const SETUP: &str = "default-authenticator-static-setup";
const PASSWORD: &str = "Frank-Password-1";

#[tokio::test]
async fn codes_are_shown_once_stored_hashed_and_single_use() {
    let env = Mfa::new().await;
    env.import("flow-default-authenticator-static-setup.yaml")
        .await;
    let frank = env.user("frank", PASSWORD).await;
    let mut c = Client::new(env.engine.clone());
    c.get(defaults::AUTHENTICATION).await;
    c.post(
        defaults::AUTHENTICATION,
        json!({"component": "ak-stage-identification", "uid_field": "frank"}),
    )
    .await;
    let out = c
        .post(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-password", "password": PASSWORD}),
        )
        .await;
    assert!(out.logged_in);

    // A POST before the codes were shown saves nothing: it shows them.
    let first = wire(
        &c.post(SETUP, json!({"component": "ak-stage-authenticator-static"}))
            .await,
    );
    assert_eq!(
        first["component"], "ak-stage-authenticator-static",
        "{first}"
    );
    assert!(env.devices.devices(&frank.pk).await.unwrap().is_empty());
    let v = wire(&c.get(SETUP).await);
    assert_eq!(v["codes"], first["codes"]);
    // Wire shape (authentik's AuthenticatorStaticChallenge).
    assert_eq!(v["component"], "ak-stage-authenticator-static", "{v}");
    assert_eq!(v["type"], "native");
    assert_eq!(v["pending_user"], "frank");
    let codes: Vec<String> = serde_json::from_value(v["codes"].clone()).unwrap();
    assert_eq!(codes.len(), 6, "token_count");
    for code in &codes {
        assert_eq!(code.len(), 12, "token_length");
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{code}"
        );
    }
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6);
    // Until the POST the same codes are shown; nothing is stored yet.
    assert_eq!(wire(&c.get(SETUP).await)["codes"], v["codes"]);
    assert!(env.devices.devices(&frank.pk).await.unwrap().is_empty());

    let out = c
        .post(SETUP, json!({"component": "ak-stage-authenticator-static"}))
        .await;
    assert_eq!(
        out.challenge.component(),
        "xak-flow-redirect",
        "{}",
        wire(&out)
    );
    let devices = env.devices.devices(&frank.pk).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].name, "Static tokens");
    let DeviceSecret::Static { tokens } = &devices[0].secret else {
        panic!("a static device");
    };
    let digests: Vec<String> = codes.iter().map(|c| token_digest(c)).collect();
    assert_eq!(tokens, &digests, "only digests are stored");
    let stored = serde_json::to_string(&devices[0]).unwrap();
    assert!(codes.iter().all(|c| !stored.contains(c.as_str())));
    assert_eq!(env.events.of(EventAction::DeviceAdded).len(), 1);
    // Never shown again: another setup has other codes.
    let again = wire(&c.get(SETUP).await);
    let new: Vec<String> = serde_json::from_value(again["codes"].clone()).unwrap();
    assert!(new.iter().all(|n| !codes.contains(n)));

    // Each code validates once (record_use through the store).
    let use_ = |code: &str| authflow::store::DeviceUse::StaticToken(token_digest(code));
    let id = devices[0].id.clone();
    assert!(
        env.devices
            .record_use(&frank.pk, &id, use_(&codes[0]), 1)
            .await
            .unwrap()
    );
    assert!(
        !env.devices
            .record_use(&frank.pk, &id, use_(&codes[0]), 2)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn token_settings_are_honoured_and_checked() {
    let env = Mfa::new().await;
    env.import("flow-default-authenticator-static-setup.yaml")
        .await;
    env.import_str(
        "version: 1\nentries:\n  - model: authentik_stages_authenticator_static.authenticatorstaticstage\n    identifiers: {name: default-authenticator-static-setup}\n    attrs: {token_count: 10, token_length: 16}\n",
    )
    .await;
    let mut c = Client::new(env.engine.clone());
    env.user("gina", PASSWORD).await;
    c.get(defaults::AUTHENTICATION).await;
    c.post(
        defaults::AUTHENTICATION,
        json!({"component": "ak-stage-identification", "uid_field": "gina"}),
    )
    .await;
    c.post(
        defaults::AUTHENTICATION,
        json!({"component": "ak-stage-password", "password": PASSWORD}),
    )
    .await;
    let v = wire(&c.get(SETUP).await);
    let codes: Vec<String> = serde_json::from_value(v["codes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 16));
    // Out-of-range settings are refused by name.
    for (field, value) in [("token_count", "0"), ("token_length", "4")] {
        let yaml = format!(
            "version: 1\nentries:\n  - model: authentik_stages_authenticator_static.authenticatorstaticstage\n    identifiers: {{name: bad}}\n    attrs: {{{field}: {value}}}\n"
        );
        let err = authflow::blueprint::Importer::for_stores(&env.stores)
            .apply_str("bad.yaml", &yaml)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
    }
}
