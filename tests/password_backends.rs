#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The password stage's `backends` (authentik/stages/password/stage.py
//! `authenticate`: each listed backend is tried in turn; only `InbuiltBackend` checks
//! the user's own password). LDAP and Kerberos never match (no sources); the token
//! backend checks app passwords (tests/app_passwords.rs). A stage without the inbuilt
//! backend never accepts the directory password.

mod common;

use authflow::defaults;
use authflow::model::{
    INBUILT_BACKEND, KERBEROS_BACKEND, LDAP_BACKEND, StageConfig, TOKEN_BACKEND,
};
use authflow::store::{FlowAdmin, FlowSource, StoreError};
use common::kit::{Kit, kit};
use serde_json::json;

/// Sets the `backends` of every password stage of the default login flow.
async fn set_backends(k: &Kit, backends: &[&str]) -> Result<(), StoreError> {
    let def = k
        .stores
        .flows
        .flow(defaults::AUTHENTICATION)
        .await
        .unwrap()
        .unwrap();
    for planned in &def.stages {
        let mut stage = (*planned.stage).clone();
        if let StageConfig::Password(p) = &mut stage.config {
            p.backends = backends.iter().map(|b| (*b).to_owned()).collect();
            k.stores.flows.put_stage(stage).await?;
        }
    }
    Ok(())
}

async fn try_login(k: &Kit, username: &str, password: &str) -> authflow::Outcome {
    let mut c = k.client();
    let slug = defaults::AUTHENTICATION;
    c.get(slug).await;
    c.post(slug, json!({"uid_field": username})).await;
    c.post(slug, json!({"password": password})).await
}

#[tokio::test]
async fn the_inbuilt_backend_checks_the_directory_password() {
    let k = kit().await;
    k.create_user("ada", "correct horse 1").await;
    set_backends(
        &k,
        &[
            INBUILT_BACKEND,
            TOKEN_BACKEND,
            LDAP_BACKEND,
            KERBEROS_BACKEND,
        ],
    )
    .await
    .unwrap();
    let c = k.login("ada", "correct horse 1").await;
    let state = k.state(&c.session_id()).await.unwrap();
    assert!(state.user.is_some());
    assert!(
        try_login(&k, "ada", "wrong").await.challenge.to_json()["response_errors"]
            .get("password")
            .is_some()
    );
}

#[tokio::test]
async fn a_stage_without_the_inbuilt_backend_never_accepts_the_main_password() {
    let k = kit().await;
    k.create_user("ada", "correct horse 1").await;
    for backends in [
        &[TOKEN_BACKEND][..],
        &[LDAP_BACKEND, KERBEROS_BACKEND][..],
        &[][..],
    ] {
        set_backends(&k, backends).await.unwrap();
        let out = try_login(&k, "ada", "correct horse 1").await;
        assert!(
            !out.logged_in,
            "{backends:?} accepted the directory password"
        );
        let wire = out.challenge.to_json();
        assert_eq!(wire["component"], "ak-stage-password", "{wire}");
        assert!(wire["response_errors"].get("password").is_some(), "{wire}");
    }
}

#[tokio::test]
async fn unknown_backends_are_refused_by_name() {
    let k = kit().await;
    let err = set_backends(&k, &[INBUILT_BACKEND, "myapp.auth.MagicBackend"])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Validation(e) if e.to_string().contains("backends") && e.to_string().contains("myapp.auth.MagicBackend")),
        "{err}"
    );
}

/// A host's LDAP check: accepts one password for one user id.
struct FakeLdap {
    user: authflow::model::UserId,
    password: &'static str,
}

#[async_trait::async_trait]
impl authflow::store::PasswordBackend for FakeLdap {
    async fn verify(
        &self,
        user: Option<&authflow::model::UserId>,
        password: &authflow::secret::Password,
    ) -> Result<bool, StoreError> {
        Ok(user == Some(&self.user) && password.expose() == self.password)
    }
}

// authentik/stages/password/stage.py `authenticate`: each backend in turn; the LDAP
// backend answers for users of an LDAP source. authflow asks the host's hook.
#[tokio::test]
async fn a_registered_host_backend_is_tried_in_order() {
    let k = kit().await;
    let ada = k.create_user("ada", "directory-pw-1").await;
    set_backends(&k, &[LDAP_BACKEND]).await.unwrap();
    let engine = std::sync::Arc::new(
        k.stores
            .engine()
            .password_backend(
                LDAP_BACKEND,
                FakeLdap {
                    user: ada.pk.clone(),
                    password: "ldap-pw-1",
                },
            )
            .build(),
    );
    let login = |password: &'static str| {
        let engine = engine.clone();
        async move {
            let mut c = common::kit::Client::new(engine);
            let slug = defaults::AUTHENTICATION;
            c.get(slug).await;
            c.post(slug, json!({"uid_field": "ada"})).await;
            c.post(slug, json!({"password": password})).await
        }
    };
    assert!(
        login("ldap-pw-1").await.logged_in,
        "the LDAP hook's password"
    );
    assert!(
        !login("directory-pw-1").await.logged_in,
        "an LDAP-only stage never accepts the directory password"
    );
    // Without the hook, the same stage accepts nothing (authentik without an LDAP source).
    assert!(!try_login(&k, "ada", "ldap-pw-1").await.logged_in);
}
