#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! authentik's example blueprints with email stages, imported without
//! `skip_unsupported` and run with the real Python evaluator and an in-memory mailer:
//! `flows-recovery-email-verification.yaml` (with authentik's current skip-if-restored
//! expression, `bool(request.context.get('is_restored', True))`) behaves like the
//! built-in `default-recovery-flow`; `flows-enrollment-email-verification.yaml`
//! creates the account inactive until the link is followed (authentik's
//! `EmailStageView.get`: `activate_user_on_success`).
#![cfg(all(feature = "blueprints", feature = "python"))]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use authflow::blueprint::Importer;
use authflow::mail::{MailSettings, MemoryMailer};
use authflow::model::UserField;
use authflow::python::PythonEvaluator;
use authflow::store::{NewUser, UserAdmin, UserDirectory};
use authflow::{Engine, defaults, memory, stages};
use common::kit::{Client, wire};
use serde_json::json;

struct Rig {
    stores: memory::Stores,
    engine: Arc<Engine>,
    mailer: Arc<MemoryMailer>,
}

async fn rig(files: &[&str]) -> Rig {
    let stores = memory::Stores::new();
    let mailer = Arc::new(MemoryMailer::new());
    let engine = Arc::new(
        stores
            .engine()
            .expressions(Arc::new(
                PythonEvaluator::new().with_timeout(Duration::from_secs(10)),
            ))
            .mailer(mailer.clone())
            .mail_settings(MailSettings::new(
                "noreply@example.com",
                "https://id.example.com",
            ))
            .build(),
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blueprints");
    for f in files {
        Importer::for_stores(&stores)
            .expressions(true)
            .apply_file(dir.join(f))
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    Rig {
        stores,
        engine,
        mailer,
    }
}

fn link_query(rig: &Rig) -> String {
    let sent = rig.mailer.sent();
    let text = &sent.last().expect("a mail").text;
    let start = text.find("https://").unwrap();
    let url: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    url.split_once('?').unwrap().1.to_owned()
}

async fn follow(rig: &Rig, slug: &str, query: &str) -> (Client, authflow::Outcome) {
    let mut c = Client::new(rig.engine.clone()).with_query(query);
    let v = wire(&c.get(slug).await);
    assert_eq!(v["component"], "ak-stage-consent", "{v}");
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-consent", "token": v["token"]}),
        )
        .await;
    (c, out)
}

#[tokio::test]
async fn imported_recovery_flow_resets_the_password_by_link() {
    let rig = rig(&["flows-recovery-email-verification.yaml"]).await;
    rig.stores
        .users
        .create_user(
            NewUser::new("dora")
                .email("dora@example.com")
                .password("old password 1"),
        )
        .await
        .unwrap();
    let slug = defaults::RECOVERY;
    let mut c = Client::new(rig.engine.clone());
    let out = c.get(slug).await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-identification",
        "{}",
        wire(&out)
    );
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-identification", "uid_field": "dora@example.com"}),
        )
        .await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-email",
        "{}",
        wire(&out)
    );
    let query = link_query(&rig);
    let (mut other, out) = follow(&rig, slug, &query).await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-prompt",
        "{}",
        wire(&out)
    );
    let out = other
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "password": "new password 2",
                   "password_repeat": "new password 2"}),
        )
        .await;
    assert!(out.logged_in, "{}", wire(&out));
    let dora = rig
        .stores
        .users
        .find_user(UserField::Username, "dora", true)
        .await
        .unwrap()
        .unwrap();
    assert!(
        rig.stores
            .users
            .verify_password(Some(dora.pk), &"new password 2".into())
            .await
            .unwrap()
    );
    let mut again = Client::new(rig.engine.clone()).with_query(&query);
    let out = again.get(slug).await;
    assert_eq!(out.challenge.error_message(), Some(stages::LINK_USED));
}

#[tokio::test]
async fn imported_enrollment_keeps_the_account_inactive_until_the_link_is_followed() {
    let rig = rig(&["flows-enrollment-email-verification.yaml"]).await;
    let slug = defaults::ENROLLMENT;
    let mut c = Client::new(rig.engine.clone());
    c.get(slug).await;
    c.post(
        slug,
        json!({"component": "ak-stage-prompt", "username": "erin",
               "password": "Long-enough-1", "password_repeat": "Long-enough-1"}),
    )
    .await;
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "name": "Erin", "email": "erin@example.com"}),
        )
        .await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-email",
        "{}",
        wire(&out)
    );
    assert!(!out.logged_in);
    let sent = rig.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "erin@example.com");
    let erin = || async {
        rig.stores
            .users
            .find_user(UserField::Username, "erin", true)
            .await
            .unwrap()
            .unwrap()
    };
    assert!(
        !erin().await.is_active,
        "inactive until the link is followed"
    );
    let query = link_query(&rig);
    let (_, out) = follow(&rig, slug, &query).await;
    assert!(out.logged_in, "{}", wire(&out));
    assert!(erin().await.is_active);
}
