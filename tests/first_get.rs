#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The first GET of a visitor without a session is answered from a cache of its
//! challenge (`src/http/first_get.rs`) — only when that challenge cannot depend on the
//! visitor, and never after the flow changed.
#![cfg(feature = "http")]

#[path = "common/http.rs"]
mod support;

use authflow::model::{
    BindingSubject, BindingTarget, CustomPolicy, Policy, PolicyBinding, PolicyKind,
};
use authflow::policy::{PolicyError, PolicyEvaluator, PolicyOutcome, PolicyRequest};
use authflow::store::{FlowAdmin, FlowSource};
use authflow::{defaults, http::HttpConfig};
use serde_json::json;
use support::{executor, start, start_custom};

const LOGIN: &str = defaults::AUTHENTICATION;

#[tokio::test]
async fn visitors_get_the_same_first_challenge_with_their_own_sessions() {
    let server = start().await;
    let (a, b) = (server.browser(), server.browser());
    let ra = a.get(&executor(LOGIN)).await;
    let rb = b.get(&executor(LOGIN)).await;
    assert_eq!(ra.component(), "ak-stage-identification");
    assert_eq!(ra.text, rb.text, "the same challenge bytes");
    let (ca, cb) = (
        ra.cookie_value("authflow_session"),
        rb.cookie_value("authflow_session"),
    );
    assert!(ca.is_some() && cb.is_some());
    assert_ne!(ca, cb, "each visitor gets a fresh session id");
    assert_eq!(
        ra.headers.get("cache-control").unwrap(),
        "no-store",
        "never cached by a browser or proxy"
    );
    // Both sessions work: the cached answer's id is adopted by the engine.
    for browser in [&a, &b] {
        let r = browser
            .post(&executor(LOGIN), &json!({"uid_field": "akadmin"}))
            .await;
        assert_eq!(r.component(), "ak-stage-password", "{}", r.text);
    }
    // Another query is another challenge (its links carry it).
    let q = server
        .browser()
        .get("/api/v3/flows/executor/default-authentication-flow/?query=next%3D%252Fapp")
        .await;
    assert_eq!(q.component(), "ak-stage-identification");
    let fresh = server.browser();
    let q2 = fresh
        .get("/api/v3/flows/executor/default-authentication-flow/?query=next%3D%252Fapp")
        .await;
    assert!(
        q2.json["flow_info"]["cancel_url"]
            .as_str()
            .unwrap()
            .contains("app"),
        "{}",
        q2.text
    );
    assert_eq!(q2.text, q.text);
    assert_ne!(q2.text, ra.text);
}

#[tokio::test]
async fn an_edited_flow_is_served_in_its_new_version() {
    let server = start().await;
    let first = server.browser().get(&executor(LOGIN)).await;
    assert_ne!(first.json["flow_info"]["title"], "Edited title");
    let mut flow = server
        .stores
        .flows
        .flow(LOGIN)
        .await
        .unwrap()
        .unwrap()
        .flow
        .clone();
    flow.title = "Edited title".into();
    server.stores.flows.put_flow(flow).await.unwrap();
    let second = server.browser().get(&executor(LOGIN)).await;
    assert_eq!(
        second.json["flow_info"]["title"], "Edited title",
        "{}",
        second.text
    );
}

/// Fails for one client IP.
struct NotFrom(&'static str);

#[async_trait::async_trait]
impl PolicyEvaluator for NotFrom {
    async fn evaluate(&self, req: &mut PolicyRequest<'_>) -> Result<PolicyOutcome, PolicyError> {
        Ok(if req.client_ip == Some(self.0) {
            PolicyOutcome::fail("Not from there.")
        } else {
            PolicyOutcome::pass()
        })
    }
}

#[tokio::test]
async fn a_flow_with_policies_is_decided_per_visitor() {
    let server = start_custom(HttpConfig::default(), |b| {
        b.register_policy("test.not-from", NotFrom("127.0.0.2"))
    })
    .await;
    let flows = server.stores.flows.clone();
    let def = flows.flow(LOGIN).await.unwrap().unwrap();
    let policy = Policy::new(
        "not-from-127.0.0.2",
        PolicyKind::Custom(CustomPolicy::new("test.not-from")),
    );
    flows.put_policy(policy.clone()).await.unwrap();
    flows
        .put_policy_binding(PolicyBinding::new(
            BindingTarget::Flow(def.flow.pk),
            BindingSubject::Policy(policy.pk),
            0,
        ))
        .await
        .unwrap();
    let ok = server.browser().get(&executor(LOGIN)).await;
    assert_eq!(ok.component(), "ak-stage-identification");
    let denied = server.browser_from("127.0.0.2").get(&executor(LOGIN)).await;
    assert_eq!(
        denied.component(),
        "ak-stage-access-denied",
        "{}",
        denied.text
    );
}
