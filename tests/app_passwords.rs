#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! App passwords (authentik's tokens of intent `app_password`) and the password
//! stage's `TokenBackend` (authentik/core/auth.py `TokenBackend.authenticate`: a
//! non-expired app password of the user logs in, `set_method("token")`;
//! authentik/stages/password/stage.py `authenticate`: the listed backends are tried in
//! order and the winner is recorded as `user_backend`).
//!
//! The store conformance runs against memory, SQLite and (with
//! `AUTHFLOW_TEST_POSTGRES`) PostgreSQL with the same assertions.

mod common;
#[cfg(feature = "sqlite")]
#[path = "common/sql.rs"]
mod sql;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use authflow::events::{EventAction, MemoryEventSink};
use authflow::hashing::token_digest;
use authflow::memory::{self, MemoryAppPasswords};
use authflow::model::{
    DummyStage, Flow, FlowDesignation, FlowStageBinding, INBUILT_BACKEND, IdentificationStage,
    PasswordStage, Stage, StageConfig, TOKEN_BACKEND, UserField, UserId, UserLoginStage,
};
use authflow::plan::keys;
use authflow::secret::Password;
use authflow::store::{AppPasswords, FlowAdmin, FlowSource, NewUser, StoreError, UserAdmin};
use authflow::{Outcome, defaults};
use common::kit::{ADMIN_PASSWORD, Client, Kit, wire};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;

/// Answers the stored digest of an app password (by identifier).
type StoredHash<'a> =
    Box<dyn Fn(String) -> Pin<Box<dyn Future<Output = Option<String>> + 'a>> + 'a>;

/// The same assertions for every store: `user` and `other` are two existing users.
async fn conformance(
    label: &str,
    store: &dyn AppPasswords,
    user: UserId,
    other: UserId,
    stored_hash: StoredHash<'_>,
) {
    assert!(store.list(&user).await.unwrap().is_empty(), "{label}");

    // Create: the key is shown once, 256 random bits.
    let (info, key) = store
        .create(user.clone(), "mail client", None)
        .await
        .unwrap();
    assert_eq!(key.expose().len(), 64, "{label}");
    assert!(
        key.expose().chars().all(|c| c.is_ascii_hexdigit()),
        "{label}"
    );
    assert_eq!(info.user, user, "{label}");
    assert_eq!(info.description, "mail client", "{label}");
    assert_eq!(info.expires, None, "{label}");
    assert_eq!(info.last_used, None, "{label}");
    // Neither the info nor the key print the key.
    assert!(!format!("{info:?}").contains(key.expose()), "{label}");
    assert!(!format!("{key:?}").contains(key.expose()), "{label}");

    // Stored hashed, never in clear.
    let hash = stored_hash(info.identifier.clone())
        .await
        .expect("a stored row");
    assert_ne!(hash, key.expose(), "{label}: the key is stored in clear");
    assert!(!hash.contains(key.expose()), "{label}");
    assert_eq!(hash, token_digest(key.expose()), "{label}");

    // Verify: the key of this user, nothing else.
    assert!(store.verify(&user, &key, NOW).await.unwrap(), "{label}");
    let listed = store.list(&user).await.unwrap();
    assert_eq!(listed.len(), 1, "{label}");
    assert_eq!(listed[0].identifier, info.identifier, "{label}");
    assert_eq!(listed[0].last_used, Some(NOW), "{label}: last_used");
    assert!(
        !store
            .verify(&user, &Password::new("wrong"), NOW)
            .await
            .unwrap(),
        "{label}"
    );
    let mut other_key = key.expose().to_owned();
    other_key.pop();
    other_key.push(if key.expose().ends_with('0') {
        '1'
    } else {
        '0'
    });
    assert!(
        !store
            .verify(&user, &Password::new(other_key), NOW)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !store.verify(&other, &key, NOW).await.unwrap(),
        "{label}: another user's key"
    );
    assert!(
        !store
            .verify(&UserId::new("no-such-user"), &key, NOW)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !store.verify(&user, &Password::new(""), NOW).await.unwrap(),
        "{label}"
    );
    assert!(
        !store
            .verify(&user, &Password::new(hash.clone()), NOW)
            .await
            .unwrap(),
        "{label}: the stored hash is not a key"
    );

    // Expiry: works until `expires`, never from then on.
    let (expiring, expiring_key) = store
        .create(user.clone(), "ci", Some(NOW + 10))
        .await
        .unwrap();
    assert_eq!(expiring.expires, Some(NOW + 10), "{label}");
    assert!(
        store.verify(&user, &expiring_key, NOW + 9).await.unwrap(),
        "{label}"
    );
    assert!(
        !store.verify(&user, &expiring_key, NOW + 10).await.unwrap(),
        "{label}: expired"
    );
    assert!(
        !store
            .verify(&user, &expiring_key, NOW + 100_000)
            .await
            .unwrap(),
        "{label}: expired"
    );
    // The other key still works; the expired one is still listed.
    assert!(
        store.verify(&user, &key, NOW + 100).await.unwrap(),
        "{label}"
    );
    let ids: Vec<String> = store
        .list(&user)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.identifier)
        .collect();
    assert_eq!(ids.len(), 2, "{label}");
    assert!(ids.contains(&info.identifier) && ids.contains(&expiring.identifier));
    assert_ne!(info.identifier, expiring.identifier, "{label}");
    assert!(store.list(&other).await.unwrap().is_empty(), "{label}");

    // Delete: only the owner's, once.
    assert!(
        !store.delete(&other, &info.identifier).await.unwrap(),
        "{label}: another user deletes nothing"
    );
    assert!(store.verify(&user, &key, NOW).await.unwrap(), "{label}");
    assert!(
        store.delete(&user, &info.identifier).await.unwrap(),
        "{label}"
    );
    assert!(
        !store.delete(&user, &info.identifier).await.unwrap(),
        "{label}"
    );
    assert!(!store.verify(&user, &key, NOW).await.unwrap(), "{label}");
    let left = store.list(&user).await.unwrap();
    assert_eq!(left.len(), 1, "{label}");
    assert_eq!(left[0].identifier, expiring.identifier, "{label}");
    assert!(
        stored_hash(info.identifier.clone()).await.is_none(),
        "{label}"
    );

    // A description longer than authentik's field is refused, nothing stored.
    let err = store
        .create(user.clone(), &"x".repeat(1001), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Validation(e) if e.to_string().contains("description")),
        "{label}: {err:?}"
    );
    assert_eq!(store.list(&user).await.unwrap().len(), 1, "{label}");
}

#[tokio::test]
async fn memory_store_conformance() {
    let store = MemoryAppPasswords::new();
    let s = &store;
    conformance(
        "memory",
        s,
        UserId::new("u1"),
        UserId::new("u2"),
        Box::new(move |id| Box::pin(async move { s.stored_hash(&id) })),
    )
    .await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sql_store_conformance() {
    for db in sql::databases().await {
        let store = db.open().await;
        let ada = store.create_user(NewUser::new("ada")).await.unwrap();
        let bob = store.create_user(NewUser::new("bob")).await.unwrap();
        let s = &store;
        conformance(
            db.label,
            s,
            ada.pk.clone(),
            bob.pk.clone(),
            Box::new(move |id| Box::pin(async move { s.app_password_hash(&id).await.unwrap() })),
        )
        .await;
        // An app password for a user that does not exist is refused.
        let err = store
            .create(UserId::new("no-such-user"), "x", None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound(_)),
            "{}: {err:?}",
            db.label
        );
        // Deleting the user deletes its app passwords.
        let (_, key) = store.create(bob.pk.clone(), "x", None).await.unwrap();
        assert!(store.verify(&bob.pk, &key, NOW).await.unwrap());
        assert!(store.delete_user(bob.pk.clone()).await.unwrap());
        assert!(
            !store.verify(&bob.pk, &key, NOW).await.unwrap(),
            "{}",
            db.label
        );
        assert!(
            store.list(&bob.pk).await.unwrap().is_empty(),
            "{}",
            db.label
        );
        store.close().await;
    }
}

/// The default flows over memory stores, with these app passwords.
async fn kit_with(app_passwords: Arc<MemoryAppPasswords>) -> Kit {
    let stores = memory::Stores::new();
    let events = Arc::new(MemoryEventSink::new());
    let engine = Arc::new(
        stores
            .engine()
            .events(events.clone())
            .app_passwords(app_passwords)
            .build(),
    );
    defaults::install(stores.flows.as_ref()).await.unwrap();
    let admin = defaults::bootstrap_admin(stores.users.as_ref(), ADMIN_PASSWORD.into())
        .await
        .unwrap();
    Kit {
        stores,
        engine,
        events,
        admin,
    }
}

/// Sets the `backends` of every password stage of the default login flow.
async fn set_backends(k: &Kit, backends: &[&str]) {
    let def = k
        .stores
        .flows
        .flow(defaults::AUTHENTICATION)
        .await
        .unwrap()
        .unwrap();
    for bound in &def.stages {
        let mut stage = (*bound.stage).clone();
        if let StageConfig::Password(p) = &mut stage.config {
            p.backends = backends.iter().map(|b| (*b).to_owned()).collect();
            k.stores.flows.put_stage(stage).await.unwrap();
        }
    }
}

/// Binds a dummy stage right after the default login flow's password stage, so the
/// plan (and its context) is still stored once the password is accepted.
async fn pause_after_password(k: &Kit) {
    let def = k
        .stores
        .flows
        .flow(defaults::AUTHENTICATION)
        .await
        .unwrap()
        .unwrap();
    let order = def
        .stages
        .iter()
        .find(|b| matches!(b.stage.config, StageConfig::Password(_)))
        .unwrap()
        .binding
        .order;
    let dummy = Stage::new("pause-after-password", DummyStage::default());
    k.stores.flows.put_stage(dummy.clone()).await.unwrap();
    k.stores
        .flows
        .put_binding(FlowStageBinding::new(def.flow.pk, dummy.pk, order + 1))
        .await
        .unwrap();
}

async fn try_login(k: &Kit, username: &str, password: &str) -> (Client, Outcome) {
    let mut c = k.client();
    let slug = defaults::AUTHENTICATION;
    c.get(slug).await;
    c.post(slug, json!({"uid_field": username})).await;
    let out = c.post(slug, json!({"password": password})).await;
    (c, out)
}

/// The plan context value `key` of the default login flow in the client's session.
async fn context_value(k: &Kit, c: &Client, key: &str) -> Option<Value> {
    k.flow_state(&c.session_id(), defaults::AUTHENTICATION)
        .await?
        .plan?
        .context
        .get(key)
        .cloned()
}

fn password_refused(out: &Outcome) {
    assert!(!out.logged_in, "{}", wire(out));
    let v = wire(out);
    assert_eq!(v["component"], "ak-stage-password", "{v}");
    assert!(v["response_errors"].get("password").is_some(), "{v}");
}

#[tokio::test]
async fn an_app_password_logs_in_through_the_default_flow_with_the_token_backend() {
    let tokens = Arc::new(MemoryAppPasswords::new());
    let k = kit_with(tokens.clone()).await;
    let ada = k.create_user("ada", "Main-Password-1").await;
    let (_, key) = tokens.create(ada.pk.clone(), "imap", None).await.unwrap();
    set_backends(&k, &[INBUILT_BACKEND, TOKEN_BACKEND]).await;

    // Both the main password and the app password log in.
    let c = k.login("ada", "Main-Password-1").await;
    assert_eq!(
        k.state(&c.session_id()).await.unwrap().user,
        Some(ada.pk.clone())
    );
    let c = k.login("ada", key.expose()).await;
    assert_eq!(
        k.state(&c.session_id()).await.unwrap().user,
        Some(ada.pk.clone())
    );
    // The login event names the method (authentik: `set_method("token")`), and the
    // app password's last use is recorded.
    let methods: Vec<Value> = k
        .events
        .of(EventAction::Login)
        .iter()
        .map(|e| e.context["auth_method"].clone())
        .collect();
    assert_eq!(methods, [json!("password"), json!("token")]);
    assert!(tokens.list(&ada.pk).await.unwrap()[0].last_used.is_some());

    // A wrong password, another user's app password and a deleted one are refused.
    let bob = k.create_user("bob", "Bob-Password-1").await;
    let (bob_token, bob_key) = tokens.create(bob.pk.clone(), "imap", None).await.unwrap();
    password_refused(&try_login(&k, "ada", "nope").await.1);
    password_refused(&try_login(&k, "ada", bob_key.expose()).await.1);
    k.login("bob", bob_key.expose()).await;
    assert!(tokens.delete(&bob.pk, &bob_token.identifier).await.unwrap());
    password_refused(&try_login(&k, "bob", bob_key.expose()).await.1);

    // Without the token backend (the default) an app password is a wrong password.
    set_backends(&k, &[INBUILT_BACKEND]).await;
    password_refused(&try_login(&k, "ada", key.expose()).await.1);
}

#[tokio::test]
async fn an_expired_app_password_never_logs_in() {
    let tokens = Arc::new(MemoryAppPasswords::new());
    let k = kit_with(tokens.clone()).await;
    let ada = k.create_user("ada", "Main-Password-1").await;
    let (_, key) = tokens.create(ada.pk.clone(), "old", Some(1)).await.unwrap();
    set_backends(&k, &[TOKEN_BACKEND]).await;
    password_refused(&try_login(&k, "ada", key.expose()).await.1);
}

#[tokio::test]
async fn a_token_only_stage_refuses_the_main_password() {
    let tokens = Arc::new(MemoryAppPasswords::new());
    let k = kit_with(tokens.clone()).await;
    let ada = k.create_user("ada", "Main-Password-1").await;
    let (_, key) = tokens.create(ada.pk.clone(), "imap", None).await.unwrap();
    set_backends(&k, &[TOKEN_BACKEND]).await;
    password_refused(&try_login(&k, "ada", "Main-Password-1").await.1);
    // The same stage takes the app password.
    k.login("ada", key.expose()).await;
    // An unknown user gets the same answer as a wrong key.
    password_refused(&try_login(&k, "nobody", key.expose()).await.1);
}

#[tokio::test]
async fn the_matching_backend_is_recorded_as_user_backend() {
    let tokens = Arc::new(MemoryAppPasswords::new());
    let k = kit_with(tokens.clone()).await;
    let ada = k.create_user("ada", "Main-Password-1").await;
    let (_, key) = tokens.create(ada.pk.clone(), "imap", None).await.unwrap();
    set_backends(&k, &[TOKEN_BACKEND, INBUILT_BACKEND]).await;
    pause_after_password(&k).await;

    for (password, backend, method) in [
        ("Main-Password-1", INBUILT_BACKEND, "password"),
        (key.expose(), TOKEN_BACKEND, "token"),
    ] {
        let (c, out) = try_login(&k, "ada", password).await;
        assert_eq!(wire(&out)["component"], "ak-stage-dummy", "{}", wire(&out));
        assert_eq!(
            context_value(&k, &c, keys::USER_BACKEND).await,
            Some(json!(backend))
        );
        assert_eq!(
            context_value(&k, &c, keys::AUTH_METHOD).await,
            Some(json!(method))
        );
    }
}

const INLINE: &str = "inline-token-login";

/// A login flow whose identification stage checks the password inline with a
/// password stage of `backends`, then pauses at a dummy stage before the login.
async fn inline_flow(k: &Kit, backends: &[&str]) {
    let flows = k.stores.flows.as_ref();
    let flow = Flow::new(INLINE, "Inline", FlowDesignation::Authentication);
    flows.put_flow(flow.clone()).await.unwrap();
    let pw = Stage::new(
        "inline-token-password",
        PasswordStage {
            backends: backends.iter().map(|b| (*b).to_owned()).collect(),
            ..PasswordStage::default()
        },
    );
    let ident = Stage::new(
        "inline-token-ident",
        IdentificationStage {
            user_fields: vec![UserField::Username],
            password_stage: Some(pw.pk),
            ..IdentificationStage::default()
        },
    );
    flows.put_stage(pw).await.unwrap();
    let dummy = Stage::new("inline-token-pause", DummyStage::default());
    let login = Stage::new("inline-token-user-login", UserLoginStage::default());
    for (i, s) in [ident, dummy, login].into_iter().enumerate() {
        let b = FlowStageBinding::new(flow.pk, s.pk, i32::try_from(i).unwrap() * 10);
        flows.put_stage(s).await.unwrap();
        flows.put_binding(b).await.unwrap();
    }
}

async fn inline_login(k: &Kit, uid: &str, password: &str) -> (Client, Outcome) {
    let mut c = k.client();
    c.get(INLINE).await;
    let out = c
        .post(
            INLINE,
            json!({"component": "ak-stage-identification", "uid_field": uid, "password": password}),
        )
        .await;
    (c, out)
}

#[tokio::test]
async fn the_inline_password_of_identification_uses_the_token_backend() {
    let tokens = Arc::new(MemoryAppPasswords::new());
    let k = kit_with(tokens.clone()).await;
    let ada = k.create_user("ada", "Main-Password-1").await;
    let (_, key) = tokens.create(ada.pk.clone(), "imap", None).await.unwrap();
    inline_flow(&k, &[TOKEN_BACKEND]).await;

    // The main password is refused by a token-only inline stage.
    let (_, out) = inline_login(&k, "ada", "Main-Password-1").await;
    assert_eq!(
        wire(&out)["component"],
        "ak-stage-identification",
        "{}",
        wire(&out)
    );
    assert!(wire(&out)["response_errors"].is_object(), "{}", wire(&out));
    // The app password is accepted and recorded.
    let (c, out) = inline_login(&k, "ada", key.expose()).await;
    assert_eq!(wire(&out)["component"], "ak-stage-dummy", "{}", wire(&out));
    let plan = k
        .flow_state(&c.session_id(), INLINE)
        .await
        .unwrap()
        .plan
        .unwrap();
    assert_eq!(
        plan.context.get(keys::USER_BACKEND),
        Some(&json!(TOKEN_BACKEND))
    );
    assert_eq!(plan.context.get(keys::AUTH_METHOD), Some(&json!("token")));
}
