#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Regressions found by an attacker's second look at the issue-8 security fixes.

mod common;

use authflow::model::{
    Flow, FlowDesignation, FlowStageBinding, IdentificationStage, PasswordStage, Stage, UserField,
    UserLoginStage,
};
use authflow::store::FlowStore;
use common::kit::{Kit, kit, wire};
use serde_json::{Value, json};

const INLINE: &str = "inline-login";

/// A login flow whose identification stage takes the password inline, so one POST
/// identifies, checks the password and logs in.
async fn inline_login_flow(k: &Kit) {
    let flows = k.stores.flows.as_ref();
    let flow = Flow::new(INLINE, "Inline", FlowDesignation::Authentication);
    flows.put_flow(flow.clone()).await.unwrap();
    let pw = Stage::new("inline-password", PasswordStage::default());
    let ident = Stage::new(
        "inline-ident",
        IdentificationStage {
            user_fields: vec![UserField::Username],
            password_stage: Some(pw.pk),
            ..IdentificationStage::default()
        },
    );
    flows.put_stage(pw).await.unwrap();
    let login = Stage::new("inline-user-login", UserLoginStage::default());
    for (i, s) in [ident, login].into_iter().enumerate() {
        let b = FlowStageBinding::new(flow.pk, s.pk, i32::try_from(i).unwrap() * 10);
        flows.put_stage(s).await.unwrap();
        flows.put_binding(b).await.unwrap();
    }
}

fn inline(uid: &str, pw: &str) -> Value {
    json!({"component": "ak-stage-identification", "uid_field": uid, "password": pw})
}

/// Session fixation through the unstored anonymous session: an attacker fetches the
/// login page without a cookie and gets an engine-minted id that is not stored (it is
/// adoptable by design). Planted in the victim's browser, that id must not become the
/// victim's logged-in session when the very first stored write is the login itself
/// (identification with an inline password logs in with one POST).
#[tokio::test]
async fn a_login_never_keeps_an_unstored_id_the_client_brought() {
    let k = kit().await;
    inline_login_flow(&k).await;
    k.create_user("victim", "Victim-Pw-12345").await;

    // The attacker's cookie-less GET: a minted id, nothing stored.
    let mut attacker = k.client();
    attacker.get(INLINE).await;
    let planted = attacker.session_id();
    assert!(k.state(&planted).await.is_none(), "not stored yet");

    // The victim's browser carries the planted id and logs in with one POST.
    let mut victim = attacker.same_session();
    let out = victim
        .post(INLINE, inline("victim", "Victim-Pw-12345"))
        .await;
    assert!(out.logged_in, "{}", wire(&out));
    assert!(out.session_rotated, "the session id must rotate at login");
    assert_ne!(out.session_id, planted, "the planted id is not the login");
    assert!(
        k.engine.session_user(&planted).await.unwrap().is_none(),
        "the planted id carries no login"
    );
    assert!(
        k.engine
            .session_user(&out.session_id)
            .await
            .unwrap()
            .is_some()
    );
}
