#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Issue 10: every authentik option authflow accepts does what authentik does. One test per
//! option, named after it, each citing the authentik function whose behaviour it asserts.

mod common;

use authflow::FlowRequest;
use authflow::model::{FlowDesignation, IdentificationStage, PasswordStage, UserField};
use authflow::plan::{PlanContext, SessionId, keys};
use authflow::store::{NewUser, UserDirectory};
use common::upstream::TestEnv;
use serde_json::{Value, json};

/// A flow of identification (username) then a password stage configured by `password`.
async fn password_flow(env: &TestEnv, password: PasswordStage) -> authflow::model::Flow {
    let flow = env.create_test_flow(FlowDesignation::Authentication).await;
    let ident = env
        .stage(IdentificationStage {
            user_fields: vec![UserField::Username],
            ..IdentificationStage::default()
        })
        .await;
    env.bind(&flow, &ident, 0).await;
    let password = env.stage(password).await;
    env.bind(&flow, &password, 1).await;
    flow
}

// authentik/stages/password/stage.py `PasswordStageView.challenge_invalid`: the tries are
// counted first, then `tries >= failed_attempts_before_cancel` cancels, so `0` cancels on the
// first wrong password (it is not "unlimited").
#[tokio::test]
async fn failed_attempts_before_cancel() {
    let env = TestEnv::new();
    env.stores
        .users
        .create_user(NewUser::new("pw-user").password("Right-Password-1"))
        .await
        .expect("create user");
    for (limit, denied_after) in [(0_u32, 1_usize), (1, 1), (3, 3)] {
        let flow = password_flow(
            &env,
            PasswordStage {
                failed_attempts_before_cancel: limit,
                ..PasswordStage::default()
            },
        )
        .await;
        let mut client = env.client();
        client.get(&flow.slug).await;
        let out = client
            .post(&flow.slug, json!({"uid_field": "pw-user"}))
            .await;
        assert_eq!(out.challenge.component(), "ak-stage-password");
        for attempt in 1..=denied_after {
            let out = client
                .post(&flow.slug, json!({"password": "wrong"}))
                .await;
            let expected = if attempt == denied_after {
                "ak-stage-access-denied"
            } else {
                "ak-stage-password"
            };
            assert_eq!(
                out.challenge.component(),
                expected,
                "limit {limit}, attempt {attempt}: {}",
                out.challenge.to_json()
            );
        }
    }
}

/// The identification challenge of a flow whose only stage is `ident`, planned with
/// `context` and shown to a client whose executor query is `query`.
async fn identification_challenge(
    env: &TestEnv,
    ident: IdentificationStage,
    context: PlanContext,
    query: &str,
) -> Value {
    let flow = env.create_test_flow(FlowDesignation::Authentication).await;
    let stage = env.stage(ident).await;
    env.bind(&flow, &stage, 0).await;
    let session = SessionId::generate();
    let plan = env
        .engine
        .plan_only(&FlowRequest::default(), &flow.slug, context)
        .await
        .expect("plan");
    env.store_plan(&session, &flow.slug, plan).await;
    let mut client = env.client().with_query(query);
    client.session = Some(session);
    let challenge = client.get(&flow.slug).await.challenge.to_json();
    assert_eq!(challenge["component"], "ak-stage-identification", "{challenge}");
    challenge
}

// authentik/stages/identification/stage.py `IdentificationStageView.get_challenge`:
// `allow_show_password` is `bool(password_stage) and password_stage.allow_show_password`.
#[tokio::test]
async fn allow_show_password() {
    let env = TestEnv::new();
    for allow in [true, false] {
        let password = env
            .stage(PasswordStage {
                allow_show_password: allow,
                ..PasswordStage::default()
            })
            .await;
        let challenge = identification_challenge(
            &env,
            IdentificationStage {
                password_stage: Some(password.pk),
                ..IdentificationStage::default()
            },
            PlanContext::new(),
            "",
        )
        .await;
        assert_eq!(challenge["password_fields"], true);
        assert_eq!(challenge["allow_show_password"], allow, "{challenge}");
    }
    let challenge =
        identification_challenge(&env, IdentificationStage::default(), PlanContext::new(), "")
            .await;
    assert_eq!(challenge["allow_show_password"], false);
}

// authentik/stages/identification/stage.py `IdentificationStageView.get_challenge` builds the
// links with `reverse_with_qs` (authentik/lib/utils/urls.py), which appends `?query` only
// when the query is not empty.
#[tokio::test]
async fn enroll_url() {
    let env = TestEnv::new();
    let ident = IdentificationStage {
        enrollment_flow: Some("enroll".into()),
        recovery_flow: Some("recover".into()),
        passwordless_flow: Some("pwl".into()),
        ..IdentificationStage::default()
    };
    let challenge = identification_challenge(&env, ident.clone(), PlanContext::new(), "").await;
    assert_eq!(challenge["enroll_url"], "/if/flow/enroll/");
    assert_eq!(challenge["recovery_url"], "/if/flow/recover/");
    assert_eq!(challenge["passwordless_url"], "/if/flow/pwl/");
    let challenge =
        identification_challenge(&env, ident, PlanContext::new(), "next=%2Fapp").await;
    assert_eq!(challenge["enroll_url"], "/if/flow/enroll/?next=%2Fapp");
    assert_eq!(challenge["recovery_url"], "/if/flow/recover/?next=%2Fapp");
    assert_eq!(challenge["passwordless_url"], "/if/flow/pwl/?next=%2Fapp");
}

// authentik/stages/identification/stage.py `IdentificationStageView.get_challenge`: when the
// plan context has `application`, the challenge carries `application_pre` = its name.
#[tokio::test]
async fn application_pre() {
    let env = TestEnv::new();
    let mut context = PlanContext::new();
    context.insert(
        keys::APPLICATION,
        json!({"slug": "grafana", "name": "Grafana"}),
    );
    let challenge =
        identification_challenge(&env, IdentificationStage::default(), context, "").await;
    assert_eq!(challenge["application_pre"], "Grafana", "{challenge}");
    let challenge =
        identification_challenge(&env, IdentificationStage::default(), PlanContext::new(), "")
            .await;
    assert!(challenge.get("application_pre").is_none(), "{challenge}");
}
