#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Issue 10: every authentik option authflow accepts does what authentik does. One test per
//! option, named after it, each citing the authentik function whose behaviour it asserts.

mod common;

use authflow::model::{FlowDesignation, IdentificationStage, PasswordStage, UserField};
use authflow::store::{NewUser, UserDirectory};
use common::upstream::TestEnv;
use serde_json::json;

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
