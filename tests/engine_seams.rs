#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! What the engine reports and what it draws: `Outcome::advanced`, and randomness
//! through `EngineBuilder::random` (request ids, user ids, confirmation tokens).

use std::sync::Arc;

use authflow::model::UserField;
use authflow::random::{Random, SeededRandom};
use authflow::store::{NewUser, UserAdmin, UserDirectory};
use authflow::{Engine, FlowRequest, Outcome, defaults, memory};
use serde_json::{Value, json};

/// Always the same bytes: every UUID and token it gives is the same.
struct Constant;

impl Random for Constant {
    fn fill(&self, buf: &mut [u8]) {
        buf.fill(0x5a);
    }
}

async fn engine(random: Option<Arc<dyn Random>>) -> (memory::Stores, Engine) {
    let stores = memory::Stores::new();
    let mut builder = stores.engine();
    if let Some(r) = random {
        builder = builder.random(r);
    }
    let engine = builder.build();
    defaults::install(stores.flows.as_ref()).await.unwrap();
    (stores, engine)
}

struct Client<'e> {
    engine: &'e Engine,
    session: Option<authflow::plan::SessionId>,
}

impl Client<'_> {
    fn req(&self) -> FlowRequest {
        FlowRequest::new(self.session.clone(), String::new())
    }
    async fn get(&mut self, slug: &str) -> Outcome {
        let out = self.engine.plan(&self.req(), slug).await.unwrap();
        self.session = Some(out.session_id.clone());
        out
    }
    async fn post(&mut self, slug: &str, body: Value) -> Outcome {
        let out = self.engine.step(&self.req(), slug, &body).await.unwrap();
        self.session = Some(out.session_id.clone());
        out
    }
}

#[tokio::test]
async fn outcome_says_whether_the_step_advanced() {
    let (stores, engine) = engine(None).await;
    stores
        .users
        .create_user(NewUser::new("alice").password("Alice-Pw-12345"))
        .await
        .unwrap();
    let mut c = Client {
        engine: &engine,
        session: None,
    };
    let slug = defaults::AUTHENTICATION;
    assert!(!c.get(slug).await.advanced, "a GET never advances");
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-identification", "uid_field": "alice"}),
        )
        .await;
    assert_eq!(out.challenge.component(), "ak-stage-password");
    assert!(out.advanced, "the next stage's challenge");
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-password", "password": "wrong"}),
        )
        .await;
    assert!(!out.advanced, "an invalid response");
    let out = c
        .post(slug, json!({"component": "ak-stage-identification"}))
        .await;
    assert!(!out.advanced, "the wrong component");
    let out = engine.step_raw(&c.req(), slug, b"{oops").await.unwrap();
    assert!(!out.advanced, "malformed JSON");
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-password", "password": "Alice-Pw-12345"}),
        )
        .await;
    assert!(out.logged_in);
    assert_eq!(out.challenge.component(), "xak-flow-redirect");
    assert!(!out.advanced, "the final redirect is answered as it is");
}

#[tokio::test]
async fn randomness_comes_from_the_engine() {
    let (stores, engine) = engine(Some(Arc::new(Constant))).await;
    let fixed = Constant.uuid();
    let mut c = Client {
        engine: &engine,
        session: None,
    };
    // Request ids of malformed bodies.
    let out = engine
        .step_raw(&c.req(), defaults::AUTHENTICATION, b"{oops")
        .await
        .unwrap();
    assert_eq!(
        out.challenge.to_json()["request_id"],
        fixed.simple().to_string()
    );
    // New users' ids are drawn up front.
    let slug = defaults::ENROLLMENT;
    c.get(slug).await;
    c.post(
        slug,
        json!({"component": "ak-stage-prompt", "username": "drawn",
               "password": "Drawn-Pw-12345", "password_repeat": "Drawn-Pw-12345"}),
    )
    .await;
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "name": "D", "email": "d@example.invalid"}),
        )
        .await;
    assert!(out.logged_in, "{}", out.challenge.to_json());
    let user = stores
        .users
        .find_user(UserField::Username, "drawn", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.pk.to_uuid(), Some(fixed));
    assert_eq!(out.user, Some(user.pk));
    // Confirmation tokens.
    let out = c.get(defaults::UNENROLLMENT).await;
    assert_eq!(out.challenge.to_json()["token"], fixed.simple().to_string());
    // Session ids stay unique even from a constant source (a keyed PRF over a counter).
    assert_ne!(
        engine
            .plan(&FlowRequest::default(), defaults::AUTHENTICATION)
            .await
            .unwrap()
            .session_id,
        engine
            .plan(&FlowRequest::default(), defaults::AUTHENTICATION)
            .await
            .unwrap()
            .session_id
    );
}

#[test]
fn seeded_random_is_deterministic() {
    let (a, b) = (SeededRandom::new(1), SeededRandom::new(1));
    assert_eq!(a.token(), b.token());
    assert_ne!(a.token(), a.token());
    assert_eq!(a.uuid().get_version_num(), 4);
}
