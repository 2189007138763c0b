//! A conformance suite for [`DeviceStore`] implementations, written once against
//! `Arc<dyn DeviceStore>` so every store (memory, SQLite, PostgreSQL) runs the same
//! assertions.
//!
//! Include it with `#[path = "common/device_conformance.rs"] mod device_conformance;`
//! and call [`run`] on a store (from a multi-threaded runtime: the concurrency checks
//! race real tasks). Every check uses fresh random user and device ids, so one store
//! can run them all, in any order.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use authflow::StoreError;
use authflow::hashing::token_digest;
use authflow::model::{DeviceClass, UserId};
use authflow::store::{Device, DeviceSecret, DeviceStore, DeviceUse};

/// A fresh user id.
pub fn user() -> UserId {
    UserId::new_v4()
}

fn fresh_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A device of `user` with `secret`, created at `created`.
pub fn device(user: &UserId, secret: DeviceSecret, created: u64) -> Device {
    Device {
        id: fresh_id("dev"),
        user: user.clone(),
        name: format!("device {created}"),
        created,
        last_used: None,
        confirmed: true,
        secret,
    }
}

/// A TOTP secret that has accepted no step yet.
pub fn totp() -> DeviceSecret {
    DeviceSecret::Totp {
        key: (0u8..20).collect(),
        digits: 6,
        period: 30,
        last_step: None,
    }
}

/// A static device's secret holding the digests of `codes`.
pub fn statics(codes: &[&str]) -> DeviceSecret {
    DeviceSecret::Static {
        tokens: codes.iter().map(|c| token_digest(c)).collect(),
    }
}

/// A WebAuthn secret with a fresh credential id and counter `sign_count`.
pub fn webauthn(sign_count: u32) -> DeviceSecret {
    DeviceSecret::Webauthn {
        credential_id: fresh_id("cred"),
        credential: serde_json::json!({"cred": {"alg": -7}, "nested": [1, 2, 3]}),
        sign_count,
    }
}

fn credential_id(d: &Device) -> String {
    match &d.secret {
        DeviceSecret::Webauthn { credential_id, .. } => credential_id.clone(),
        other => panic!("not a WebAuthn device: {other:?}"),
    }
}

/// Every check, in turn. `label` names the backend in failure messages.
pub async fn run(store: Arc<dyn DeviceStore>, label: &str) {
    add_list_get_and_lookup_by_credential(store.as_ref(), label).await;
    duplicates_are_refused(store.as_ref(), label).await;
    remove_is_scoped_to_the_user(store.as_ref(), label).await;
    totp_steps_only_move_forward(store.as_ref(), label).await;
    static_codes_are_single_use(store.as_ref(), label).await;
    webauthn_counters_only_move_forward(store.as_ref(), label).await;
    wrong_class_foreign_user_and_missing_device_are_refused(store.as_ref(), label).await;
    concurrent_totp_uses_of_one_step_accept_one(store.clone(), label).await;
    concurrent_static_uses_of_one_code_accept_one(store.clone(), label).await;
    concurrent_uses_of_different_static_codes_all_count(store.clone(), label).await;
}

/// Added devices come back whole, per user, oldest first; by id whoever owns them;
/// WebAuthn ones by credential id.
pub async fn add_list_get_and_lookup_by_credential(store: &dyn DeviceStore, label: &str) {
    let (alice, bob) = (user(), user());
    assert!(store.devices(&alice).await.unwrap().is_empty(), "{label}");
    let w = device(&alice, webauthn(7), 30);
    let t = device(&alice, totp(), 10);
    let s = device(&alice, statics(&["code-a", "code-b"]), 20);
    let other = device(&bob, totp(), 5);
    for d in [&w, &t, &s, &other] {
        store.add(d.clone()).await.unwrap();
    }
    let listed = store.devices(&alice).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        [&t.id, &s.id, &w.id],
        "{label}: oldest first, alice's only"
    );
    let classes: Vec<DeviceClass> = listed.iter().map(Device::class).collect();
    assert_eq!(
        classes,
        [
            DeviceClass::Totp,
            DeviceClass::Static,
            DeviceClass::Webauthn
        ],
        "{label}"
    );
    // Every field round-trips, the secrets included.
    let got = store.device(&w.id).await.unwrap().expect("by id");
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        serde_json::to_value(&w).unwrap(),
        "{label}"
    );
    let got = store.device(&s.id).await.unwrap().expect("by id");
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        serde_json::to_value(&s).unwrap(),
        "{label}"
    );
    let got = store
        .device(&other.id)
        .await
        .unwrap()
        .expect("whoever owns it");
    assert_eq!(got.user, bob, "{label}");
    assert_eq!(got.name, other.name, "{label}");
    assert!(got.confirmed && got.last_used.is_none(), "{label}");
    assert!(store.device("no-such-device").await.unwrap().is_none());
    let by_cred = store
        .webauthn_device(&credential_id(&w))
        .await
        .unwrap()
        .expect("by credential id");
    assert_eq!(by_cred.id, w.id, "{label}");
    assert!(store.webauthn_device("no-such").await.unwrap().is_none());
    // A TOTP or static device has no credential id to be found by.
    assert!(
        store.webauthn_device("").await.unwrap().is_none(),
        "{label}"
    );
}

/// A device id or WebAuthn credential id already stored is refused with a validation
/// error naming the field, and nothing is written.
pub async fn duplicates_are_refused(store: &dyn DeviceStore, label: &str) {
    let (alice, bob) = (user(), user());
    let first = device(&alice, webauthn(0), 1);
    store.add(first.clone()).await.unwrap();

    let mut same_id = device(&bob, totp(), 2);
    same_id.id = first.id.clone();
    match store.add(same_id).await {
        Err(StoreError::Validation(e)) => {
            assert!(!e.get("id").is_empty(), "{label}: {e:?}");
        }
        other => panic!("{label}: duplicate id: {other:?}"),
    }
    // The same credential under another id (and another user) is refused too.
    let mut same_cred = device(&bob, webauthn(0), 3);
    same_cred.secret = first.secret.clone();
    let same_cred_id = same_cred.id.clone();
    match store.add(same_cred).await {
        Err(StoreError::Validation(e)) => {
            assert!(!e.get("credential_id").is_empty(), "{label}: {e:?}");
            assert!(e.get("id").is_empty(), "{label}: {e:?}");
        }
        other => panic!("{label}: duplicate credential id: {other:?}"),
    }
    assert!(
        store.device(&same_cred_id).await.unwrap().is_none(),
        "{label}"
    );
    assert!(store.devices(&bob).await.unwrap().is_empty(), "{label}");
    assert_eq!(
        store.device(&first.id).await.unwrap().unwrap().user,
        alice,
        "{label}: the first stays"
    );
    // Devices without a credential id never collide with each other.
    store.add(device(&bob, totp(), 4)).await.unwrap();
    store.add(device(&bob, statics(&["x"]), 5)).await.unwrap();
    assert_eq!(store.devices(&bob).await.unwrap().len(), 2, "{label}");
}

/// `remove` removes only the named user's device; `remove_all` only that user's.
pub async fn remove_is_scoped_to_the_user(store: &dyn DeviceStore, label: &str) {
    let (alice, bob) = (user(), user());
    let a1 = device(&alice, totp(), 1);
    let a2 = device(&alice, webauthn(0), 2);
    let a3 = device(&alice, statics(&["c"]), 3);
    let b1 = device(&bob, totp(), 4);
    for d in [&a1, &a2, &a3, &b1] {
        store.add(d.clone()).await.unwrap();
    }
    assert!(
        !store.remove(&bob, &a1.id).await.unwrap(),
        "{label}: not bob's"
    );
    assert!(store.device(&a1.id).await.unwrap().is_some(), "{label}");
    assert!(store.remove(&alice, &a1.id).await.unwrap(), "{label}");
    assert!(
        !store.remove(&alice, &a1.id).await.unwrap(),
        "{label}: gone"
    );
    assert!(store.device(&a1.id).await.unwrap().is_none(), "{label}");
    assert_eq!(store.remove_all(&alice).await.unwrap(), 2, "{label}");
    assert!(store.devices(&alice).await.unwrap().is_empty(), "{label}");
    assert!(
        store
            .webauthn_device(&credential_id(&a2))
            .await
            .unwrap()
            .is_none(),
        "{label}"
    );
    assert_eq!(store.remove_all(&alice).await.unwrap(), 0, "{label}");
    assert_eq!(
        store.devices(&bob).await.unwrap().len(),
        1,
        "{label}: bob's stay"
    );
    // A removed WebAuthn credential may be registered again.
    let mut again = device(&bob, webauthn(0), 9);
    again.secret = a2.secret.clone();
    store.add(again).await.unwrap();
}

/// A TOTP step is accepted once, and never an earlier one; `last_used` and the stored
/// `last_step` follow.
pub async fn totp_steps_only_move_forward(store: &dyn DeviceStore, label: &str) {
    let alice = user();
    let t = device(&alice, totp(), 1);
    store.add(t.clone()).await.unwrap();
    let use_ = |s| DeviceUse::TotpStep(s);
    assert!(
        store
            .record_use(&alice, &t.id, use_(100), 1000)
            .await
            .unwrap(),
        "{label}"
    );
    let got = store.device(&t.id).await.unwrap().unwrap();
    assert_eq!(got.last_used, Some(1000), "{label}");
    assert!(
        matches!(
            got.secret,
            DeviceSecret::Totp {
                last_step: Some(100),
                ..
            }
        ),
        "{label}: {:?}",
        serde_json::to_value(&got.secret)
    );
    assert!(
        !store
            .record_use(&alice, &t.id, use_(100), 1001)
            .await
            .unwrap(),
        "{label}: replay"
    );
    assert!(
        !store
            .record_use(&alice, &t.id, use_(99), 1001)
            .await
            .unwrap(),
        "{label}: earlier"
    );
    assert_eq!(
        store.device(&t.id).await.unwrap().unwrap().last_used,
        Some(1000),
        "{label}: a refused use changes nothing"
    );
    assert!(
        store
            .record_use(&alice, &t.id, use_(101), 1002)
            .await
            .unwrap(),
        "{label}"
    );
    // Step 0 on a fresh device is a step like any other.
    let zero = device(&alice, totp(), 2);
    store.add(zero.clone()).await.unwrap();
    assert!(
        store
            .record_use(&alice, &zero.id, use_(0), 5)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !store
            .record_use(&alice, &zero.id, use_(0), 5)
            .await
            .unwrap(),
        "{label}"
    );
    // A device added with a last step keeps it.
    let mut seasoned = device(&alice, totp(), 3);
    seasoned.secret = DeviceSecret::Totp {
        key: vec![9; 20],
        digits: 8,
        period: 30,
        last_step: Some(500),
    };
    store.add(seasoned.clone()).await.unwrap();
    assert!(
        !store
            .record_use(&alice, &seasoned.id, use_(500), 5)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        store
            .record_use(&alice, &seasoned.id, use_(501), 5)
            .await
            .unwrap(),
        "{label}"
    );
}

/// Each static code is accepted once and removed; unknown codes never.
pub async fn static_codes_are_single_use(store: &dyn DeviceStore, label: &str) {
    let alice = user();
    let s = device(&alice, statics(&["alpha", "beta", "gamma"]), 1);
    store.add(s.clone()).await.unwrap();
    let code = |c: &str| DeviceUse::StaticToken(token_digest(c));
    assert!(
        store
            .record_use(&alice, &s.id, code("beta"), 7)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !store
            .record_use(&alice, &s.id, code("beta"), 8)
            .await
            .unwrap(),
        "{label}: spent"
    );
    assert!(
        !store
            .record_use(&alice, &s.id, code("delta"), 8)
            .await
            .unwrap(),
        "{label}"
    );
    let got = store.device(&s.id).await.unwrap().unwrap();
    assert_eq!(got.last_used, Some(7), "{label}");
    match &got.secret {
        DeviceSecret::Static { tokens } => {
            assert_eq!(
                tokens,
                &[token_digest("alpha"), token_digest("gamma")],
                "{label}"
            );
        }
        other => panic!("{label}: {other:?}"),
    }
    assert!(
        store
            .record_use(&alice, &s.id, code("alpha"), 9)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        store
            .record_use(&alice, &s.id, code("gamma"), 9)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !store
            .record_use(&alice, &s.id, code("alpha"), 9)
            .await
            .unwrap(),
        "{label}"
    );
    match store.device(&s.id).await.unwrap().unwrap().secret {
        DeviceSecret::Static { tokens } => assert!(tokens.is_empty(), "{label}"),
        other => panic!("{label}: {other:?}"),
    }
}

/// A WebAuthn counter is accepted when it grows, or when both it and the stored one
/// are 0 (authenticators without a counter).
pub async fn webauthn_counters_only_move_forward(store: &dyn DeviceStore, label: &str) {
    let alice = user();
    let counter = |c| DeviceUse::WebauthnCounter(c);
    let none = device(&alice, webauthn(0), 1);
    store.add(none.clone()).await.unwrap();
    assert!(
        store
            .record_use(&alice, &none.id, counter(0), 3)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        store
            .record_use(&alice, &none.id, counter(0), 4)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        store
            .record_use(&alice, &none.id, counter(5), 5)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !store
            .record_use(&alice, &none.id, counter(0), 6)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !store
            .record_use(&alice, &none.id, counter(5), 6)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !store
            .record_use(&alice, &none.id, counter(4), 6)
            .await
            .unwrap(),
        "{label}"
    );
    let got = store.device(&none.id).await.unwrap().unwrap();
    assert_eq!(got.last_used, Some(5), "{label}");
    assert!(
        matches!(got.secret, DeviceSecret::Webauthn { sign_count: 5, .. }),
        "{label}"
    );
    let high = device(&alice, webauthn(u32::MAX - 1), 2);
    store.add(high.clone()).await.unwrap();
    assert!(
        store
            .record_use(&alice, &high.id, counter(u32::MAX), 7)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !store
            .record_use(&alice, &high.id, counter(u32::MAX), 7)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        matches!(
            store.device(&high.id).await.unwrap().unwrap().secret,
            DeviceSecret::Webauthn {
                sign_count: u32::MAX,
                ..
            }
        ),
        "{label}"
    );
}

/// A use of another class than the device's, by another user than its owner, or of a
/// device that does not exist is refused and changes nothing.
pub async fn wrong_class_foreign_user_and_missing_device_are_refused(
    store: &dyn DeviceStore,
    label: &str,
) {
    let (alice, mallory) = (user(), user());
    let t = device(&alice, totp(), 1);
    let s = device(&alice, statics(&["only"]), 2);
    let w = device(&alice, webauthn(0), 3);
    for d in [&t, &s, &w] {
        store.add(d.clone()).await.unwrap();
    }
    let step = DeviceUse::TotpStep(10);
    let code = DeviceUse::StaticToken(token_digest("only"));
    let counter = DeviceUse::WebauthnCounter(10);
    for (d, wrong) in [
        (&t, [code.clone(), counter.clone()]),
        (&s, [step.clone(), counter.clone()]),
        (&w, [step.clone(), code.clone()]),
    ] {
        for use_ in wrong {
            assert!(
                !store
                    .record_use(&alice, &d.id, use_.clone(), 9)
                    .await
                    .unwrap(),
                "{label}: {use_:?} on a {:?} device",
                d.class()
            );
        }
    }
    for (d, right) in [(&t, &step), (&s, &code), (&w, &counter)] {
        assert!(
            !store
                .record_use(&mallory, &d.id, right.clone(), 9)
                .await
                .unwrap(),
            "{label}: someone else's {:?} device",
            d.class()
        );
        assert!(
            store
                .device(&d.id)
                .await
                .unwrap()
                .unwrap()
                .last_used
                .is_none(),
            "{label}: nothing recorded"
        );
    }
    assert!(
        !store
            .record_use(&alice, "no-such", step.clone(), 9)
            .await
            .unwrap(),
        "{label}"
    );
    // The refused uses spent nothing: the owner's right uses still succeed.
    for (d, right) in [(&t, step), (&s, code), (&w, counter)] {
        assert!(
            store.record_use(&alice, &d.id, right, 10).await.unwrap(),
            "{label}: {:?}",
            d.class()
        );
    }
}

const RACERS: usize = 50;

/// Runs `RACERS` concurrent `record_use`s of `use_` and returns how many were accepted.
async fn race(store: Arc<dyn DeviceStore>, user: &UserId, id: &str, use_: DeviceUse) -> usize {
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let (store, user, id, use_) = (store.clone(), user.clone(), id.to_owned(), use_.clone());
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.record_use(&user, &id, use_, 42).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        if t.await.unwrap().expect("no store error under contention") {
            accepted += 1;
        }
    }
    accepted
}

/// 50 concurrent uses of one TOTP step: exactly one is accepted.
pub async fn concurrent_totp_uses_of_one_step_accept_one(store: Arc<dyn DeviceStore>, label: &str) {
    let alice = user();
    let t = device(&alice, totp(), 1);
    store.add(t.clone()).await.unwrap();
    let accepted = race(store.clone(), &alice, &t.id, DeviceUse::TotpStep(77)).await;
    assert_eq!(accepted, 1, "{label}: one step, {RACERS} racers");
    // And once more on a step already used once.
    assert!(
        store
            .record_use(&alice, &t.id, DeviceUse::TotpStep(78), 1)
            .await
            .unwrap()
    );
    let accepted = race(store.clone(), &alice, &t.id, DeviceUse::TotpStep(79)).await;
    assert_eq!(accepted, 1, "{label}: one step after a used one");
}

/// 50 concurrent uses of one static code (the device holding others): exactly one is
/// accepted, and the other codes stay.
pub async fn concurrent_static_uses_of_one_code_accept_one(
    store: Arc<dyn DeviceStore>,
    label: &str,
) {
    let alice = user();
    let s = device(&alice, statics(&["one", "two", "three"]), 1);
    store.add(s.clone()).await.unwrap();
    let use_ = DeviceUse::StaticToken(token_digest("two"));
    let accepted = race(store.clone(), &alice, &s.id, use_).await;
    assert_eq!(accepted, 1, "{label}: one code, {RACERS} racers");
    match store.device(&s.id).await.unwrap().unwrap().secret {
        DeviceSecret::Static { tokens } => {
            assert_eq!(
                tokens,
                [token_digest("one"), token_digest("three")],
                "{label}"
            );
        }
        other => panic!("{label}: {other:?}"),
    }
}

/// 20 concurrent uses of 20 different codes of one static device: every one is
/// accepted and removed (no use overwrites another's removal).
pub async fn concurrent_uses_of_different_static_codes_all_count(
    store: Arc<dyn DeviceStore>,
    label: &str,
) {
    let alice = user();
    let codes: Vec<String> = (0..20).map(|i| format!("code-{i}")).collect();
    let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    let s = device(&alice, statics(&refs), 1);
    store.add(s.clone()).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(codes.len()));
    let mut tasks = Vec::new();
    for code in &codes {
        let (store, user, id, barrier) =
            (store.clone(), alice.clone(), s.id.clone(), barrier.clone());
        let use_ = DeviceUse::StaticToken(token_digest(code));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.record_use(&user, &id, use_, 42).await
        }));
    }
    for t in tasks {
        assert!(
            t.await.unwrap().expect("no store error"),
            "{label}: a distinct code refused"
        );
    }
    match store.device(&s.id).await.unwrap().unwrap().secret {
        DeviceSecret::Static { tokens } => {
            assert!(tokens.is_empty(), "{label}: {} left", tokens.len())
        }
        other => panic!("{label}: {other:?}"),
    }
}
