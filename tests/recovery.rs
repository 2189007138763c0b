#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The recovery flow in process: `defaults::install_recovery` with an in-memory
//! mailer and a manual clock. Semantics from authentik's `EmailStageView`
//! (authentik/stages/email/stage.py: `send_email`, `get`, `challenge_invalid`) and
//! `FlowExecutorView._check_flow_token` (authentik/flows/views/executor.py), with
//! authflow's improvements: a GET of the link does not use it (#8953), distinct
//! messages for used and expired links (#9671, #21395).

mod common;

use std::sync::Arc;

use authflow::clock::ManualClock;
use authflow::mail::{MailSettings, MemoryMailer};
use authflow::model::UserField;
use authflow::store::{NewUser, SessionStore, UserAdmin, UserDirectory};
use authflow::{Engine, Outcome, defaults, memory, stages};
use common::kit::{Client, shape, wire};
use serde_json::{Value, json};

const RECOVERY: &str = defaults::RECOVERY;
const NOW: u64 = 1_800_000_000;

struct Rig {
    stores: memory::Stores,
    engine: Arc<Engine>,
    mailer: Arc<MemoryMailer>,
    clock: Arc<ManualClock>,
}

async fn rig_with(mailer: bool) -> Rig {
    let stores = memory::Stores::new();
    let outbox = Arc::new(MemoryMailer::new());
    let clock = Arc::new(ManualClock::new(NOW));
    let mut builder = stores
        .engine()
        .clock(clock.clone())
        .mail_settings(MailSettings::new(
            "authflow <noreply@example.com>",
            "https://id.example.com/",
        ));
    if mailer {
        builder = builder.mailer(outbox.clone());
    }
    let engine = Arc::new(builder.build());
    defaults::install(stores.flows.as_ref()).await.unwrap();
    defaults::install_recovery(stores.flows.as_ref())
        .await
        .unwrap();
    defaults::magic_link(stores.flows.as_ref()).await.unwrap();
    for name in ["bob", "carol"] {
        stores
            .users
            .create_user(
                NewUser::new(name)
                    .email(format!("{name}@example.com"))
                    .name(name)
                    .password("old password 1"),
            )
            .await
            .unwrap();
    }
    Rig {
        stores,
        engine,
        mailer: outbox,
        clock,
    }
}

async fn rig() -> Rig {
    rig_with(true).await
}

impl Rig {
    fn client(&self) -> Client {
        Client::new(self.engine.clone())
    }

    /// Asks for a recovery mail for `uid`; returns the email challenge.
    async fn request(&self, uid: &str) -> (Client, Outcome) {
        let mut c = self.client();
        let out = c.get(RECOVERY).await;
        assert_eq!(out.challenge.component(), "ak-stage-identification");
        let out = c
            .post(
                RECOVERY,
                json!({"component": "ak-stage-identification", "uid_field": uid}),
            )
            .await;
        (c, out)
    }

    /// The query of the last mail's link.
    fn last_link(&self) -> String {
        let sent = self.mailer.sent();
        let mail = sent.last().expect("a mail was sent");
        link_of(&mail.text)
    }
}

fn link_of(text: &str) -> String {
    let start = text.find("https://").expect("a link");
    let url: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    url
}

fn query_of(url: &str) -> String {
    url.split_once('?').map(|(_, q)| q.to_owned()).unwrap()
}

fn denial(out: &Outcome) -> String {
    assert_eq!(
        out.challenge.component(),
        "ak-stage-access-denied",
        "{}",
        wire(out)
    );
    out.challenge.error_message().unwrap_or_default().to_owned()
}

fn errors(out: &Outcome) -> Vec<String> {
    out.challenge
        .response_errors
        .values()
        .flatten()
        .map(|e| e.string.clone())
        .collect()
}

/// Opens the link in a fresh cookie jar: GET (the confirmation), then the POST.
async fn open_link(rig: &Rig, query: &str) -> (Client, Outcome) {
    let mut c = rig.client().with_query(query);
    let out = c.get(RECOVERY).await;
    let v = wire(&out);
    if v["component"] != "ak-stage-consent" {
        return (c, out);
    }
    let token = v["token"].as_str().unwrap().to_owned();
    let out = c
        .post(
            RECOVERY,
            json!({"component": "ak-stage-consent", "token": token}),
        )
        .await;
    (c, out)
}

async fn user_named(rig: &Rig, name: &str) -> authflow::store::User {
    rig.stores
        .users
        .find_user(UserField::Username, name, true)
        .await
        .unwrap()
        .unwrap()
}

async fn password_works(rig: &Rig, user: &str, password: &str) -> bool {
    let u = user_named(rig, user).await;
    rig.stores
        .users
        .verify_password(Some(u.pk), &password.into())
        .await
        .unwrap()
}

#[tokio::test]
async fn recovery_by_link_in_another_browser_sets_the_password_once() {
    let rig = rig().await;
    // bob is logged in elsewhere: recovery ends that session.
    let mut elsewhere = rig.client();
    elsewhere.get(defaults::AUTHENTICATION).await;
    elsewhere
        .post(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-identification", "uid_field": "bob"}),
        )
        .await;
    let out = elsewhere
        .post(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-password", "password": "old password 1"}),
        )
        .await;
    assert!(out.logged_in);

    let (_, out) = rig.request("bob@example.com").await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-email",
        "{}",
        wire(&out)
    );
    let sent = rig.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "bob@example.com");
    assert_eq!(sent[0].from, "authflow <noreply@example.com>");
    assert_eq!(sent[0].subject, "Reset your password");
    let link = rig.last_link();
    assert!(
        link.starts_with("https://id.example.com/if/flow/default-recovery-flow/?flow_token="),
        "{link}"
    );
    assert!(sent[0].html.contains(&link.replace('&', "&amp;")));

    // A mail scanner's GETs do not use the link.
    let query = query_of(&link);
    for _ in 0..2 {
        let mut scanner = rig.client().with_query(&query);
        let out = scanner.get(RECOVERY).await;
        assert_eq!(
            out.challenge.component(),
            "ak-stage-consent",
            "{}",
            wire(&out)
        );
    }

    let (mut c, out) = open_link(&rig, &query).await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-prompt",
        "{}",
        wire(&out)
    );
    let out = c
        .post(
            RECOVERY,
            json!({"component": "ak-stage-prompt", "password": "new password 2",
                   "password_repeat": "new password 2"}),
        )
        .await;
    assert!(out.logged_in, "{}", wire(&out));
    assert!(password_works(&rig, "bob", "new password 2").await);
    assert!(!password_works(&rig, "bob", "old password 1").await);
    // The other session ended.
    let other = rig
        .stores
        .sessions
        .load(&elsewhere.session_id())
        .await
        .unwrap();
    assert!(other.is_none_or(|s| s.value.user.is_none()));

    // Used again, in yet another browser: refused with its own message.
    let (_, out) = open_link(&rig, &query).await;
    assert_eq!(denial(&out), stages::LINK_USED);
}

#[tokio::test]
async fn an_expired_link_says_so() {
    let rig = rig().await;
    rig.request("bob").await;
    let query = query_of(&rig.last_link());
    rig.clock.advance(31 * 60);
    let (_, out) = open_link(&rig, &query).await;
    assert_eq!(denial(&out), stages::LINK_EXPIRED);
    // A link that was never issued.
    let bogus = format!("flow_token={}", "ab".repeat(32));
    let (_, out) = open_link(&rig, &bogus).await;
    assert_eq!(denial(&out), stages::LINK_UNKNOWN);
    let (_, out) = open_link(&rig, "flow_token=not-a-key").await;
    assert_eq!(denial(&out), stages::LINK_UNKNOWN);
}

#[tokio::test]
async fn an_expired_link_confirmed_late_is_refused() {
    let rig = rig().await;
    rig.request("bob").await;
    let query = query_of(&rig.last_link());
    let mut c = rig.client().with_query(&query);
    let v = wire(&c.get(RECOVERY).await);
    rig.clock.advance(31 * 60);
    let out = c
        .post(
            RECOVERY,
            json!({"component": "ak-stage-consent", "token": v["token"]}),
        )
        .await;
    assert_eq!(denial(&out), stages::LINK_EXPIRED);
}

#[tokio::test]
async fn unknown_address_gets_the_same_challenge_and_no_mail() {
    let rig = rig().await;
    let (_, known) = rig.request("bob@example.com").await;
    let (_, unknown) = rig.request("nobody@example.com").await;
    assert_eq!(unknown.challenge.component(), "ak-stage-email");
    assert_eq!(shape(&wire(&known)), shape(&wire(&unknown)));
    assert_eq!(
        rig.mailer.sent().len(),
        1,
        "no mail for the unknown address"
    );
}

#[tokio::test]
async fn resends_are_rate_limited() {
    let rig = rig().await;
    let (mut c, _) = rig.request("bob").await;
    // authentik's EmailStage.recovery_max_attempts: 5 mails in 5 minutes.
    for n in 2..=5 {
        let out = c
            .post(RECOVERY, json!({"component": "ak-stage-email"}))
            .await;
        assert_eq!(errors(&out), vec!["Email Successfully sent.".to_owned()]);
        assert_eq!(rig.mailer.sent().len(), n);
    }
    let out = c
        .post(RECOVERY, json!({"component": "ak-stage-email"}))
        .await;
    assert_eq!(out.challenge.component(), "ak-stage-email");
    assert_eq!(errors(&out), vec![stages::TOO_MANY.to_owned()]);
    assert_eq!(rig.mailer.sent().len(), 5);
    // Starting over does not reset the count.
    let (_, out) = rig.request("bob").await;
    assert_eq!(errors(&out), vec![stages::TOO_MANY.to_owned()]);
    // After the window it sends again.
    rig.clock.advance(5 * 60 + 1);
    let out = c
        .post(RECOVERY, json!({"component": "ak-stage-email"}))
        .await;
    assert_eq!(errors(&out), vec!["Email Successfully sent.".to_owned()]);
    assert_eq!(rig.mailer.sent().len(), 6);
}

#[tokio::test]
async fn mailer_down_shows_an_error_and_a_resend_works_later() {
    let rig = rig().await;
    rig.mailer.set_down(true);
    let (mut c, out) = rig.request("bob").await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-email",
        "{}",
        wire(&out)
    );
    assert_eq!(errors(&out), vec![stages::SEND_FAILED.to_owned()]);
    rig.mailer.set_down(false);
    let out = c
        .post(RECOVERY, json!({"component": "ak-stage-email"}))
        .await;
    assert_eq!(errors(&out), vec!["Email Successfully sent.".to_owned()]);
    assert_eq!(rig.mailer.sent().len(), 1);
}

#[tokio::test]
async fn without_a_mailer_the_stage_denies() {
    let rig = rig_with(false).await;
    let (_, out) = rig.request("bob").await;
    assert_eq!(denial(&out), stages::NO_MAILER);
}

#[tokio::test]
async fn a_link_opens_only_its_own_flow() {
    let rig = rig().await;
    rig.request("bob").await;
    let query = query_of(&rig.last_link());
    let mut c = rig.client().with_query(&query);
    let out = c.get(defaults::MAGIC_LINK).await;
    assert_eq!(denial(&out), stages::LINK_OTHER_FLOW);
}

#[tokio::test]
async fn a_token_for_another_user_is_refused() {
    let rig = rig().await;
    rig.request("bob").await;
    let query = query_of(&rig.last_link());
    let key = query.trim_start_matches("flow_token=");
    // Rewrite the stored token as if it had been issued to carol.
    let digest = authflow::store::flow_token_digest(key).unwrap();
    let tokens = &rig.engine.env().flow_tokens;
    let mut token = tokens.find(&digest).await.unwrap().unwrap();
    let carol = user_named(&rig, "carol").await;
    token.user = Some(carol.pk);
    token.digest = authflow::store::flow_token_digest(&"cd".repeat(32)).unwrap();
    tokens.create(token).await.unwrap();
    let (_, out) = open_link(&rig, &format!("flow_token={}", "cd".repeat(32))).await;
    assert_eq!(denial(&out), "This link was issued for another user.");
}

#[tokio::test]
async fn the_browser_that_followed_the_link_keeps_its_query() {
    // The page keeps `flow_token` in its URL: later requests of the restored flow
    // carry it and continue (it is not "already used" for the session it restored).
    let rig = rig().await;
    rig.request("bob").await;
    let query = query_of(&rig.last_link());
    let (mut c, out) = open_link(&rig, &query).await;
    assert_eq!(out.challenge.component(), "ak-stage-prompt");
    let out = c.get(RECOVERY).await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-prompt",
        "{}",
        wire(&out)
    );
}

#[tokio::test]
async fn identification_links_to_recovery() {
    let rig = rig().await;
    let mut c = rig.client();
    let v = wire(&c.get(defaults::AUTHENTICATION).await);
    assert_eq!(v["recovery_url"], "/if/flow/default-recovery-flow/", "{v}");
    // The password challenge links it too (authentik: the brand's recovery flow; authflow:
    // the flow's identification stage's).
    let out = c
        .post(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-identification", "uid_field": "bob"}),
        )
        .await;
    let v = wire(&out);
    assert_eq!(v["component"], "ak-stage-password", "{v}");
    assert_eq!(v["recovery_url"], "/if/flow/default-recovery-flow/", "{v}");
}

#[tokio::test]
async fn magic_link_logs_in_in_the_browser_that_opens_it() {
    let rig = rig().await;
    let mut c = rig.client();
    c.get(defaults::MAGIC_LINK).await;
    let out = c
        .post(
            defaults::MAGIC_LINK,
            json!({"component": "ak-stage-identification", "uid_field": "carol"}),
        )
        .await;
    assert_eq!(out.challenge.component(), "ak-stage-email");
    let query = query_of(&rig.last_link());
    let mut other = rig.client().with_query(&query);
    let v = wire(&other.get(defaults::MAGIC_LINK).await);
    assert_eq!(v["component"], "ak-stage-consent");
    let out = other
        .post(
            defaults::MAGIC_LINK,
            json!({"component": "ak-stage-consent", "token": v["token"]}),
        )
        .await;
    assert!(out.logged_in, "{}", wire(&out));
    let user = rig
        .engine
        .session_user(&out.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.username, "carol");
    let _: Value = Value::Null;
}
