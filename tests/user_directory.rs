//! A host's own user directory: a login-only one implements three methods of
//! `UserDirectory` (with the host's integer keys), logs in through the default flows,
//! and every flow that needs management is denied with a message naming what the
//! directory does not support — never `Error::Store` or a 503.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use authflow::hashing::{DangerFastHasher, PasswordHashing, verify_dummy};
use authflow::model::{UserField, UserId};
use authflow::plan::SessionState;
use authflow::secret::Password;
use authflow::store::{StoreError, User, UserDirectory, canonical_identifier};
use authflow::{Engine, defaults, memory};
use common::kit::{Client, wire};
use serde_json::json;

/// The host's users table: `id BIGINT PRIMARY KEY`, a username and a password hash.
struct HostUsers {
    rows: HashMap<i64, (User, String)>,
    hasher: DangerFastHasher,
}

impl HostUsers {
    fn new(users: &[(i64, &str, &str)]) -> Self {
        let hasher = DangerFastHasher;
        let rows = users
            .iter()
            .map(|&(id, name, password)| {
                let user = User::new(id, name).with_email(format!("{name}@host.example"));
                (id, (user, hasher.hash(password).unwrap()))
            })
            .collect();
        Self { rows, hasher }
    }

    fn row(&self, pk: &UserId) -> Option<&(User, String)> {
        self.rows.get(&pk.as_str().parse::<i64>().ok()?)
    }
}

/// Only the three required methods: no groups, no management.
#[async_trait]
impl UserDirectory for HostUsers {
    async fn user(&self, pk: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.row(&pk).map(|(u, _)| u.clone()))
    }

    async fn find_user(
        &self,
        field: UserField,
        value: &str,
        _case_insensitive: bool,
    ) -> Result<Option<User>, StoreError> {
        let want = canonical_identifier(value);
        let mut found = self.rows.values().map(|(u, _)| u).filter(|u| match field {
            UserField::Username => canonical_identifier(&u.username) == want,
            UserField::Email => canonical_identifier(&u.email) == want,
            UserField::Upn => false,
        });
        match (found.next(), found.next()) {
            (Some(u), None) => Ok(Some(u.clone())),
            _ => Ok(None),
        }
    }

    async fn verify_password(
        &self,
        user: Option<UserId>,
        password: &Password,
    ) -> Result<bool, StoreError> {
        match user.as_ref().and_then(|pk| self.row(pk)) {
            Some((_, hash)) => Ok(self.hasher.verify(hash, password.expose())),
            None => Ok(verify_dummy(&self.hasher, password.expose())),
        }
    }
}

async fn host_engine() -> Arc<Engine> {
    let stores = memory::Stores::new();
    defaults::install(stores.flows.as_ref()).await.unwrap();
    let users = Arc::new(HostUsers::new(&[(42, "alice", "Alice-Pw-123456")]));
    Arc::new(Engine::builder(stores.flows.clone(), stores.sessions.clone(), users).build())
}

#[tokio::test]
async fn a_login_only_directory_with_integer_keys_logs_in() {
    let engine = host_engine().await;
    let mut c = Client::new(engine.clone());
    let slug = defaults::AUTHENTICATION;
    let out = c.get(slug).await;
    assert_eq!(out.challenge.component(), "ak-stage-identification");
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-identification", "uid_field": "alice"}),
        )
        .await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-password",
        "{}",
        wire(&out)
    );
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-password", "password": "Alice-Pw-123456"}),
        )
        .await;
    assert!(out.logged_in, "{}", wire(&out));
    assert_eq!(out.user, Some(UserId::from(42_i64)));
    let me = engine.session_user(&c.session_id()).await.unwrap().unwrap();
    assert_eq!(me.pk.as_str(), "42");
    assert_eq!(me.username, "alice");
}

#[tokio::test]
async fn a_login_only_directory_refuses_wrong_passwords_and_unknown_users() {
    let engine = host_engine().await;
    for (uid, password) in [("alice", "wrong-password"), ("nobody", "Alice-Pw-123456")] {
        let mut c = Client::new(engine.clone());
        let slug = defaults::AUTHENTICATION;
        c.get(slug).await;
        c.post(
            slug,
            json!({"component": "ak-stage-identification", "uid_field": uid}),
        )
        .await;
        let out = c
            .post(
                slug,
                json!({"component": "ak-stage-password", "password": password}),
            )
            .await;
        assert!(!out.logged_in, "{uid}: {}", wire(&out));
        assert_eq!(out.challenge.component(), "ak-stage-password");
    }
}

#[tokio::test]
async fn enrollment_on_a_login_only_directory_is_a_clear_denial() {
    let engine = host_engine().await;
    let mut c = Client::new(engine);
    let slug = defaults::ENROLLMENT;
    let out = c.get(slug).await;
    assert_eq!(out.challenge.component(), "ak-stage-prompt");
    c.post(
        slug,
        json!({"component": "ak-stage-prompt", "username": "newbie",
               "password": "Enroll-Local-Pw-1", "password_repeat": "Enroll-Local-Pw-1"}),
    )
    .await;
    // `try_post`: an `Err(Error::Store(..))` (HTTP 503) would fail here.
    let out = c
        .try_post(
            slug,
            json!({"component": "ak-stage-prompt", "name": "New Bie",
                   "email": "newbie@example.invalid"}),
        )
        .await
        .expect("a denial, not a store error");
    assert_eq!(
        out.challenge.component(),
        "ak-stage-access-denied",
        "{}",
        wire(&out)
    );
    assert_eq!(
        out.challenge.error_message(),
        Some("This server's user directory does not support creating users.")
    );
    assert!(!out.logged_in);
}

#[tokio::test]
async fn password_change_on_a_login_only_directory_is_a_clear_denial() {
    let engine = host_engine().await;
    let mut c = Client::new(engine);
    let login = defaults::AUTHENTICATION;
    c.get(login).await;
    c.post(
        login,
        json!({"component": "ak-stage-identification", "uid_field": "alice"}),
    )
    .await;
    let out = c
        .post(
            login,
            json!({"component": "ak-stage-password", "password": "Alice-Pw-123456"}),
        )
        .await;
    assert!(out.logged_in);
    let slug = defaults::PASSWORD_CHANGE;
    c.get(slug).await;
    let out = c
        .try_post(
            slug,
            json!({"component": "ak-stage-prompt", "password": "New-Alice-Pw-1",
                   "password_repeat": "New-Alice-Pw-1"}),
        )
        .await
        .expect("a denial, not a store error");
    let v = wire(&out);
    let v = if v["component"] == "ak-stage-consent" {
        // The write asks for confirmation first: confirm it.
        let token = v["token"].as_str().unwrap().to_owned();
        wire(
            &c.try_post(
                slug,
                json!({"component": "ak-stage-consent", "token": token}),
            )
            .await
            .expect("a denial, not a store error"),
        )
    } else {
        v
    };
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    assert_eq!(
        v["error_message"],
        "This server's user directory does not support updating users."
    );
}

#[tokio::test]
async fn the_default_group_methods_answer_no_groups() {
    let users = HostUsers::new(&[(7, "bob", "Bob-Pw-1234567")]);
    let dir: &dyn UserDirectory = &users;
    assert!(dir.groups_of(UserId::from(7_i64)).await.unwrap().is_empty());
    assert!(dir.find_group("authentik Admins").await.unwrap().is_none());
    assert!(dir.admin().is_none());
    let err = dir.require_admin("creating users").err().unwrap();
    assert!(matches!(&err, StoreError::Unsupported(op) if op == "creating users"));
    assert_eq!(
        err.to_string(),
        "unsupported: the user directory does not support creating users"
    );
    // Bootstrapping an admin needs management: refused, nothing half-written.
    let err = defaults::bootstrap_admin(dir, "Admin-Pw-1234567".into())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unsupported(_)), "{err:?}");
}

#[test]
fn user_ids_written_as_uuids_still_read_back() {
    // A session saved while user ids were UUID newtypes.
    let uuid = "0b9f3c5e-7a61-4c1d-9a53-6e2b8f0d4c17";
    let state: SessionState = serde_json::from_value(json!({"user": uuid})).unwrap();
    let id = state.user.clone().unwrap();
    assert_eq!(id, UserId::from(uuid::Uuid::parse_str(uuid).unwrap()));
    assert_eq!(id.as_str(), uuid);
    // … and is written back the same way.
    assert_eq!(serde_json::to_value(&state).unwrap()["user"], json!(uuid));
    // A policy binding to a user, as stored in a flow catalogue.
    let subject: authflow::model::BindingSubject =
        serde_json::from_value(json!({"kind": "user", "pk": uuid})).unwrap();
    assert_eq!(subject, authflow::model::BindingSubject::User(id));
}

#[tokio::test]
async fn memory_directory_ids_are_uuid_strings_and_host_keys_are_kept() {
    use authflow::store::{NewUser, UserAdmin};
    let dir = memory::MemoryUserDirectory::with_hasher(Arc::new(DangerFastHasher));
    let fresh = dir.create_user(NewUser::new("carol")).await.unwrap();
    assert!(fresh.pk.to_uuid().is_some(), "{:?}", fresh.pk);
    let mut keyed = NewUser::new("dave");
    keyed.pk = Some(UserId::from(1001_u64));
    let dave = dir.create_user(keyed).await.unwrap();
    assert_eq!(dave.pk.as_str(), "1001");
    assert_eq!(
        dir.user(UserId::from("1001"))
            .await
            .unwrap()
            .map(|u| u.username),
        Some("dave".into())
    );
    let as_dir: &dyn UserDirectory = &dir;
    assert!(as_dir.admin().is_some());
}

#[cfg(feature = "http")]
mod http {
    use std::net::SocketAddr;

    use authflow::http::{ApiError, HttpConfig, router};
    use axum::response::IntoResponse;

    use super::*;

    async fn serve(app: axum::Router) -> String {
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

    #[tokio::test]
    async fn enrollment_over_http_on_a_login_only_directory_is_not_a_5xx() {
        let base = serve(router(host_engine().await, HttpConfig::default())).await;
        let c = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let url = format!(
            "{base}/api/v3/flows/executor/{}/?query=",
            defaults::ENROLLMENT
        );
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = c
            .post(&url)
            .json(
                &json!({"component": "ak-stage-prompt", "username": "newbie",
                          "password": "Enroll-Local-Pw-1", "password_repeat": "Enroll-Local-Pw-1"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = c
            .post(&url)
            .json(&json!({"component": "ak-stage-prompt", "name": "New Bie",
                          "email": "newbie@example.invalid"}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(status.is_success() || status.is_client_error(), "{status}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
        assert_eq!(
            v["error_message"],
            "This server's user directory does not support creating users."
        );
    }

    #[tokio::test]
    async fn an_unsupported_store_operation_answers_403_json_naming_it() {
        let response =
            ApiError::from(StoreError::Unsupported("creating users".into())).into_response();
        assert_eq!(response.status(), 403);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"detail": "This server's user directory does not support creating users.",
                   "code": "unsupported", "operation": "creating users"})
        );
        // Also through the engine's error type.
        let e = ApiError::from(authflow::Error::Store(StoreError::Unsupported(
            "deleting users".into(),
        )));
        assert_eq!(e.status(), 403);
    }
}

#[cfg(feature = "blueprints")]
#[tokio::test]
async fn a_blueprint_with_users_is_refused_by_a_login_only_directory_before_writing() {
    use authflow::blueprint::{BlueprintError, Importer};
    use authflow::store::FlowSource;
    let flows = memory::MemoryFlowStore::new();
    let users = HostUsers::new(&[(42, "alice", "Alice-Pw-123456")]);
    let yaml = r#"
version: 1
entries:
  - model: authentik_flows.flow
    identifiers: {slug: host-login}
    attrs: {name: Host login, title: Host login, designation: authentication}
  - model: authentik_core.user
    identifiers: {username: imported}
    attrs: {password: imported-password-1}
"#;
    let err = Importer::new(&flows, &users as &dyn UserDirectory)
        .apply_str("users.yaml", yaml)
        .await
        .unwrap_err();
    match &err {
        BlueprintError::Entry { index, message, .. } => {
            assert_eq!(*index, 1);
            assert!(
                message.contains("does not support creating users"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Nothing of the file was written.
    assert!(flows.flows().await.unwrap().is_empty());
}

#[cfg(feature = "http")]
#[tokio::test]
async fn enrollment_is_denied_also_with_a_hashing_pool() {
    // The engine wraps the directory to run password work on the pool; the wrapper
    // offers management only when the host's directory does.
    let stores = memory::Stores::new();
    defaults::install(stores.flows.as_ref()).await.unwrap();
    let users = Arc::new(HostUsers::new(&[(42, "alice", "Alice-Pw-123456")]));
    let engine = Engine::builder(stores.flows.clone(), stores.sessions.clone(), users)
        .blocking(Arc::new(authflow::http::HashPool::new(1, 4)))
        .build();
    assert!(engine.env().users.admin().is_none());
    let mut c = Client::new(Arc::new(engine));
    let slug = defaults::ENROLLMENT;
    c.get(slug).await;
    c.post(
        slug,
        json!({"component": "ak-stage-prompt", "username": "newbie",
               "password": "Enroll-Local-Pw-1", "password_repeat": "Enroll-Local-Pw-1"}),
    )
    .await;
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "name": "New Bie",
                   "email": "newbie@example.invalid"}),
        )
        .await;
    assert_eq!(
        out.challenge.error_message(),
        Some("This server's user directory does not support creating users."),
        "{}",
        wire(&out)
    );
}
