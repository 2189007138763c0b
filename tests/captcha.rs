//! The captcha stage against a local siteverify provider: a stub HTTP server in this
//! process (axum), reached over TCP by the real `HttpCaptchaVerifier`.
//!
//! Semantics from authentik's `authentik/stages/captcha/stage.py`
//! (`verify_captcha_token`, `CaptchaStageView.get_challenge`).
#![cfg(all(feature = "captcha", feature = "http"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authflow::captcha::HttpCaptchaVerifier;
use authflow::events::{EventAction, MemoryEventSink};
use authflow::model::{CaptchaStage, DummyStage, FlowDesignation};
use authflow::store::SessionStore;
use authflow::{FlowBuilder, memory};
use axum::routing::post;
use common::kit::{Client, wire};
use serde_json::{Value, json};

const SLUG: &str = "captcha-flow";
const SECRET: &str = "the-private-key-0123";

/// The forms the stub provider received.
type Received = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A siteverify stub: the token decides the answer.
async fn provider() -> (String, Received) {
    let received: Received = Arc::default();
    let log = received.clone();
    let app = axum::Router::new().route(
        "/siteverify",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let mut form: Vec<(String, String)> = if content_type == "application/json" {
                    serde_json::from_str::<serde_json::Map<String, Value>>(&body)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                } else {
                    form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect()
                };
                form.push(("_content_type".into(), content_type));
                let token = form
                    .iter()
                    .find(|(k, _)| k == "response")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let secret_ok = form.iter().any(|(k, v)| k == "secret" && v == SECRET);
                log.lock().unwrap().push(form);
                let answer = match token.as_str() {
                    _ if !secret_ok => {
                        json!({"success": false, "error-codes": ["invalid-input-secret"]})
                    }
                    "good" => json!({"success": true, "score": 0.9, "hostname": "localhost"}),
                    "low-score" => json!({"success": true, "score": 0.1}),
                    "expired" => {
                        json!({"success": false, "error-codes": ["timeout-or-duplicate"]})
                    }
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        json!({"success": true})
                    }
                    "broken" => {
                        return (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            "oops".to_owned(),
                        );
                    }
                    _ => json!({"success": false, "error-codes": ["bad-request"]}),
                };
                (axum::http::StatusCode::OK, answer.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/siteverify"), received)
}

struct Setup {
    stores: memory::Stores,
    engine: Arc<authflow::Engine>,
    events: Arc<MemoryEventSink>,
}

async fn setup(api_url: &str, verifier: bool, adjust: impl FnOnce(&mut CaptchaStage)) -> Setup {
    let stores = memory::Stores::new();
    let events = Arc::new(MemoryEventSink::new());
    let mut builder = stores.engine().events(events.clone());
    if verifier {
        builder = builder.captcha_verifier(Arc::new(
            HttpCaptchaVerifier::with_timeout(Duration::from_millis(500)).unwrap(),
        ));
    }
    let engine = Arc::new(builder.build());
    let mut stage = CaptchaStage {
        public_key: "site-key-1".into(),
        private_key: SECRET.into(),
        api_url: api_url.into(),
        js_url: "https://captcha.example/api.js".into(),
        interactive: true,
        ..Default::default()
    };
    adjust(&mut stage);
    FlowBuilder::new(SLUG, FlowDesignation::Authentication)
        .stage("captcha", stage)
        .stage("after-captcha", DummyStage::default())
        .install(stores.flows.as_ref())
        .await
        .unwrap();
    Setup {
        stores,
        engine,
        events,
    }
}

fn token(t: &str) -> Value {
    json!({"component": "ak-stage-captcha", "token": t})
}

fn token_errors(v: &Value) -> Vec<String> {
    v["response_errors"]["token"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["string"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn challenge_carries_site_key_js_url_and_interactive_but_never_the_secret() {
    let (url, _) = provider().await;
    let s = setup(&url, true, |_| {}).await;
    let mut c = Client::new(s.engine.clone());
    let v = wire(&c.get(SLUG).await);
    assert_eq!(v["component"], "ak-stage-captcha", "{v}");
    assert_eq!(v["site_key"], "site-key-1");
    assert_eq!(v["js_url"], "https://captcha.example/api.js");
    assert_eq!(v["interactive"], true);
    assert!(
        v.get("pending_user").is_some(),
        "WithUserInfoChallenge: {v}"
    );
    assert!(!v.to_string().contains(SECRET), "{v}");
}

#[tokio::test]
async fn a_good_token_passes_and_sends_secret_response_and_remoteip() {
    let (url, received) = provider().await;
    let s = setup(&url, true, |_| {}).await;
    let mut c = Client::new(s.engine.clone()).with_ip("203.0.113.7");
    c.get(SLUG).await;
    let v = wire(&c.post(SLUG, token("good")).await);
    assert_eq!(v["component"], "ak-stage-dummy", "{v}");
    let forms = received.lock().unwrap().clone();
    assert_eq!(forms.len(), 1);
    let form = &forms[0];
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("secret"), Some(SECRET));
    assert_eq!(get("response"), Some("good"));
    assert_eq!(get("remoteip"), Some("203.0.113.7"));
    assert_eq!(
        get("_content_type"),
        Some("application/x-www-form-urlencoded")
    );
    // The provider's answer is left in the plan context for policies.
    let state = s
        .stores
        .sessions
        .as_ref()
        .load(&c.session_id())
        .await
        .unwrap()
        .unwrap()
        .value;
    let plan = state.flows[SLUG].plan.clone().unwrap();
    assert_eq!(
        plan.context.get("captcha").unwrap()["response"]["score"],
        0.9
    );
}

#[tokio::test]
async fn a_refused_token_shows_the_challenge_again_with_authentiks_messages() {
    let (url, _) = provider().await;
    let s = setup(&url, true, |_| {}).await;
    let mut c = Client::new(s.engine.clone());
    c.get(SLUG).await;
    let v = wire(&c.post(SLUG, token("forged")).await);
    assert_eq!(v["component"], "ak-stage-captcha", "{v}");
    assert_eq!(token_errors(&v), vec!["Invalid captcha response"]);
    let v = wire(&c.post(SLUG, token("expired")).await);
    assert_eq!(
        token_errors(&v),
        vec!["Invalid captcha response. Retrying may solve this issue."]
    );
    // Missing token: a field error, the provider is not asked.
    let v = wire(&c.post(SLUG, json!({"component": "ak-stage-captcha"})).await);
    assert_eq!(token_errors(&v), vec!["This field is required."]);
    // The flow is still usable.
    let v = wire(&c.post(SLUG, token("good")).await);
    assert_eq!(v["component"], "ak-stage-dummy", "{v}");
}

#[tokio::test]
async fn request_content_type_json_sends_a_json_object() {
    let (url, received) = provider().await;
    let s = setup(&url, true, |st| {
        st.request_content_type = authflow::model::CaptchaContentType::Json;
    })
    .await;
    let mut c = Client::new(s.engine.clone()).with_ip("198.51.100.2");
    c.get(SLUG).await;
    let v = wire(&c.post(SLUG, token("good")).await);
    assert_eq!(v["component"], "ak-stage-dummy", "{v}");
    let forms = received.lock().unwrap().clone();
    let form = &forms[0];
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("_content_type"), Some("application/json"));
    assert_eq!(get("secret"), Some(SECRET));
    assert_eq!(get("remoteip"), Some("198.51.100.2"));
}

#[tokio::test]
async fn a_score_outside_the_bounds_is_refused() {
    let (url, _) = provider().await;
    let s = setup(&url, true, |_| {}).await;
    let mut c = Client::new(s.engine.clone());
    c.get(SLUG).await;
    let v = wire(&c.post(SLUG, token("low-score")).await);
    assert_eq!(token_errors(&v), vec!["Invalid captcha response"], "{v}");

    // Above the maximum too.
    let s = setup(&url, true, |st| {
        st.score_min_threshold = 0.0;
        st.score_max_threshold = 0.5;
    })
    .await;
    let mut c = Client::new(s.engine.clone());
    c.get(SLUG).await;
    let v = wire(&c.post(SLUG, token("good")).await);
    assert_eq!(token_errors(&v), vec!["Invalid captcha response"], "{v}");
}

#[tokio::test]
async fn without_error_on_invalid_score_the_flow_continues_with_the_answer() {
    let (url, _) = provider().await;
    let s = setup(&url, true, |st| st.error_on_invalid_score = false).await;
    let mut c = Client::new(s.engine.clone());
    c.get(SLUG).await;
    let v = wire(&c.post(SLUG, token("low-score")).await);
    assert_eq!(v["component"], "ak-stage-dummy", "{v}");
}

#[tokio::test]
async fn a_provider_that_is_down_or_slow_fails_closed_and_the_flow_stays_usable() {
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = setup(&format!("http://{closed}/siteverify"), true, |_| {}).await;
    let mut c = Client::new(s.engine.clone());
    c.get(SLUG).await;
    let v = wire(&c.post(SLUG, token("good")).await);
    assert_eq!(v["component"], "ak-stage-captcha", "{v}");
    let errors = token_errors(&v);
    assert_eq!(errors.len(), 1, "{v}");
    assert!(errors[0].starts_with("Failed to validate token"), "{v}");
    // Reported, without the secret.
    let events = s.events.events();
    let exc = events
        .iter()
        .find(|e| e.action == EventAction::SystemException)
        .expect("a system_exception event");
    assert!(!serde_json::to_string(exc).unwrap().contains(SECRET));

    // A provider that answers too late (the verifier's deadline is 500 ms) or with an
    // error status is refused the same way.
    let (url, _) = provider().await;
    let s = setup(&url, true, |_| {}).await;
    let mut c = Client::new(s.engine.clone());
    c.get(SLUG).await;
    let started = std::time::Instant::now();
    let v = wire(&c.post(SLUG, token("slow")).await);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        token_errors(&v)[0].starts_with("Failed to validate token"),
        "{v}"
    );
    let v = wire(&c.post(SLUG, token("broken")).await);
    assert!(
        token_errors(&v)[0].starts_with("Failed to validate token"),
        "{v}"
    );
    // Once it answers, the same flow goes on.
    let v = wire(&c.post(SLUG, token("good")).await);
    assert_eq!(v["component"], "ak-stage-dummy", "{v}");
}

#[tokio::test]
async fn without_a_verifier_or_a_private_key_the_stage_denies() {
    let (url, received) = provider().await;
    let s = setup(&url, false, |_| {}).await;
    let mut c = Client::new(s.engine.clone());
    let out = c.get(SLUG).await;
    assert_eq!(out.challenge.component(), "ak-stage-access-denied");
    assert!(
        out.challenge
            .error_message()
            .unwrap()
            .contains("no captcha verifier"),
        "{}",
        wire(&out)
    );
    let out = c.post(SLUG, token("good")).await;
    assert_ne!(wire(&out)["component"], "ak-stage-dummy");

    let s = setup(&url, true, |st| st.private_key.clear()).await;
    let mut c = Client::new(s.engine.clone());
    let out = c.get(SLUG).await;
    assert_eq!(out.challenge.component(), "ak-stage-access-denied");
    assert!(received.lock().unwrap().is_empty());
}

/// authentik's models import; the export leaves the private key out.
#[cfg(feature = "blueprints")]
#[tokio::test]
async fn captcha_and_invitation_stages_import_from_blueprints_and_export_without_the_secret() {
    use authflow::blueprint::{Importer, export};
    use authflow::model::StageConfig;
    use authflow::store::FlowSource;

    let stores = memory::Stores::new();
    let yaml = format!(
        r#"version: 1
entries:
  - model: authentik_flows.flow
    identifiers: {{slug: captcha-enroll}}
    id: flow
    attrs: {{name: Captcha enroll, title: Captcha enroll, designation: enrollment}}
  - model: authentik_stages_invitation.invitationstage
    identifiers: {{name: bp-invitation}}
    id: invitation
    attrs: {{continue_flow_without_invitation: true}}
  - model: authentik_stages_captcha.captchastage
    identifiers: {{name: bp-captcha}}
    id: captcha
    attrs:
      public_key: site-key-bp
      private_key: {SECRET}
      js_url: https://js.hcaptcha.com/1/api.js
      api_url: https://api.hcaptcha.com/siteverify
      interactive: true
      score_min_threshold: -1
      score_max_threshold: -1
      error_on_invalid_score: true
      request_content_type: application/json
  - model: authentik_flows.flowstagebinding
    identifiers: {{target: !KeyOf flow, stage: !KeyOf invitation, order: 0}}
  - model: authentik_flows.flowstagebinding
    identifiers: {{target: !KeyOf flow, stage: !KeyOf captcha, order: 10}}
"#
    );
    let report = Importer::for_stores(&stores)
        .apply_str("captcha.yaml", &yaml)
        .await
        .unwrap();
    assert!(report.warnings.is_empty(), "{report:?}");
    let def = stores.flows.flow("captcha-enroll").await.unwrap().unwrap();
    let kinds: Vec<&StageConfig> = def.stages.iter().map(|s| &s.stage.config).collect();
    assert!(matches!(kinds[0], StageConfig::Invitation(i) if i.continue_flow_without_invitation));
    let StageConfig::Captcha(c) = kinds[1] else {
        panic!("{kinds:?}")
    };
    assert_eq!(c.private_key, SECRET);
    assert_eq!(c.api_url, "https://api.hcaptcha.com/siteverify");
    assert_eq!(c.score_min_threshold, -1.0);
    assert_eq!(
        c.request_content_type,
        authflow::model::CaptchaContentType::Json
    );
    assert!(!format!("{kinds:?}").contains(SECRET));
    // Re-importing without the key (as an export is) keeps the stored one.
    let update = r#"version: 1
entries:
  - model: authentik_stages_captcha.captchastage
    identifiers: {name: bp-captcha}
    attrs: {public_key: site-key-bp-2}
"#;
    Importer::for_stores(&stores)
        .apply_str("update.yaml", update)
        .await
        .unwrap();
    let def = stores.flows.flow("captcha-enroll").await.unwrap().unwrap();
    let StageConfig::Captcha(c) = &def.stages[1].stage.config else {
        panic!()
    };
    assert_eq!(c.public_key, "site-key-bp-2");
    assert_eq!(c.private_key, SECRET);
    let exported = export(&def);
    assert!(
        exported.contains("authentik_stages_captcha.captchastage"),
        "{exported}"
    );
    assert!(exported.contains("site-key-bp-2"));
    assert!(!exported.contains(SECRET), "{exported}");
}

#[path = "common/http.rs"]
mod http;

/// Over HTTP the challenge and its refusal match authentik's `CaptchaChallenge`
/// schema (checked by the harness's `finish`).
#[tokio::test]
async fn over_http_the_challenge_matches_authentiks_schema() {
    let (url, received) = provider().await;
    let s = http::start_custom(authflow::http::HttpConfig::default(), |b| {
        b.captcha_verifier(Arc::new(HttpCaptchaVerifier::new().unwrap()))
    })
    .await;
    FlowBuilder::new(SLUG, FlowDesignation::Authentication)
        .stage(
            "captcha-http",
            CaptchaStage {
                public_key: "site-key-http".into(),
                private_key: SECRET.into(),
                api_url: url,
                ..Default::default()
            },
        )
        .stage("after-captcha-http", DummyStage::default())
        .install(s.stores.flows.as_ref())
        .await
        .unwrap();
    let b = s.browser_from("127.0.0.3");
    let r = b.exec(SLUG).await;
    let c = r.challenge("ak-stage-captcha");
    assert_eq!(c["site_key"], "site-key-http");
    assert_eq!(c["interactive"], false);
    let r = b.answer(SLUG, token("forged")).await;
    assert_eq!(r.errors()["token"], ["Invalid captcha response"]);
    let r = b.answer(SLUG, token("good")).await;
    assert!(
        r.text.contains("ak-stage-dummy") || r.status == 302,
        "{}",
        r.text
    );
    // The server's view of the client's address went to the provider.
    let forms = received.lock().unwrap().clone();
    assert!(
        forms
            .iter()
            .all(|f| f.iter().any(|(k, v)| k == "remoteip" && v == "127.0.0.3")),
        "{forms:?}"
    );
    s.finish();
}
