#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `examples/host_app.rs` over real HTTP: an axum app with its own integer-keyed users,
//! a flow from the builder with a custom stage and a custom policy, authflow under
//! `/auth`, and a `/me` route using the `LoggedIn` extractor.
#![cfg(feature = "http")]

#[allow(dead_code)]
#[path = "../examples/host_app.rs"]
mod host_app;

use std::net::SocketAddr;
use std::sync::Arc;

use authflow::hashing::PasswordHashing;
use host_app::{HostUsers, LOGIN_FLOW, app};
use serde_json::{Value, json};

/// A cheap hasher for this test only (argon2id costs ~20 ms a hash in debug builds):
/// the example's `main` uses argon2id.
struct TestHasher;

impl PasswordHashing for TestHasher {
    fn hash(&self, password: &str) -> Result<String, String> {
        Ok(format!("test${password}"))
    }
    fn verify(&self, hash: &str, password: &str) -> bool {
        authflow::secret::constant_time_eq(hash, &format!("test${password}"))
    }
    fn needs_rehash(&self, _hash: &str) -> bool {
        false
    }
}

async fn serve(blocked: &[&str]) -> String {
    let users = Arc::new(HostUsers::new(Arc::new(TestHasher)));
    users.add(1843, "ada", "ada@example.com", "lovelace-1843");
    let app = app(users, blocked).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_host_user_logs_in_through_the_built_flow_and_me_sees_them() {
    let base = serve(&["203.0.113.0/24"]).await;
    let c = client();
    let exec = format!("{base}/auth/api/v3/flows/executor/{LOGIN_FLOW}/?query=");

    // The host's routes stay the host's.
    let r = c.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_authenticated");
    let r = c.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "the host's own 404");

    let v: Value = c.get(&exec).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["component"], "ak-stage-identification", "{v}");
    assert!(
        v["flow_info"]["cancel_url"]
            .as_str()
            .unwrap()
            .starts_with("/auth/flows/-/cancel/"),
        "{v}"
    );
    let v: Value = c
        .post(&exec)
        .json(&json!({"component": "ak-stage-identification", "uid_field": "ada@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["component"], "ak-stage-password", "{v}");
    let v: Value = c
        .post(&exec)
        .json(&json!({"component": "ak-stage-password", "password": "lovelace-1843"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["component"], "x-accept-terms", "{v}");
    assert_eq!(v["version"], "2026-12", "{v}");

    // Not accepted: asked again, and not logged in.
    let v: Value = c
        .post(&exec)
        .json(&json!({"component": "x-accept-terms", "accept": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["component"], "x-accept-terms", "{v}");
    assert!(v["response_errors"].get("accept").is_some(), "{v}");
    assert_eq!(
        c.get(format!("{base}/me")).send().await.unwrap().status(),
        401
    );

    let v: Value = c
        .post(&exec)
        .json(&json!({"component": "x-accept-terms", "accept": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");

    let r = c.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(
        me,
        json!({"id": "1843", "username": "ada", "email": "ada@example.com"})
    );
}

#[tokio::test]
async fn the_host_policy_refuses_blocked_networks() {
    let base = serve(&["127.0.0.0/8"]).await;
    let c = client();
    let exec = format!("{base}/auth/api/v3/flows/executor/{LOGIN_FLOW}/?query=");
    let v: Value = c.get(&exec).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    assert!(
        v["error_message"].as_str().unwrap().contains("not allowed"),
        "{v}"
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_answer_alike() {
    let base = serve(&[]).await;
    let mut answers = Vec::new();
    for uid in ["ada", "nobody"] {
        let c = client();
        let exec = format!("{base}/auth/api/v3/flows/executor/{LOGIN_FLOW}/?query=");
        c.get(&exec).send().await.unwrap();
        c.post(&exec)
            .json(&json!({"uid_field": uid}))
            .send()
            .await
            .unwrap();
        let v: Value = c
            .post(&exec)
            .json(&json!({"password": "wrong"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answers.push(v["response_errors"].clone());
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].get("password").is_some(), "{answers:?}");
}
