#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! End-to-end, in-process runs of the default flows (DESIGN.md §7) installed by
//! `defaults::install` with the bootstrap admin from `defaults::bootstrap_admin`.
//!
//! Expectations come from authentik's recorded transcripts
//! (`tests/fixtures/authentik-observed`), DESIGN.md §4/§7 and the behavioural
//! reference (`reference/authentik-flows.md` §3, §4, §6).

mod common;

use std::sync::Arc;

use authflow::events::EventAction;
use authflow::inspector::InspectError;
use authflow::model::UserField;
use authflow::model::{
    DummyStage, Flow, FlowDesignation, FlowStageBinding, Prompt, PromptStage, PromptType, Stage,
};
use authflow::store::{FlowAdmin, UserAdmin, UserDirectory};
use authflow::{Error, defaults};
use common::kit::{ADMIN_PASSWORD, Client, Kit, error_messages, kit, shape, urlencode, wire};
use serde_json::{Value, json};

const LOGIN: &str = defaults::AUTHENTICATION;

fn ident(uid: &str) -> Value {
    json!({"component": "ak-stage-identification", "uid_field": uid})
}

fn password(pw: &str) -> Value {
    json!({"component": "ak-stage-password", "password": pw})
}

/// Starts the login flow and identifies as `uid`; returns the password challenge JSON.
async fn identify(c: &mut Client, uid: &str) -> Value {
    let out = c.get(LOGIN).await;
    assert_eq!(out.challenge.component(), "ak-stage-identification");
    let out = c.post(LOGIN, ident(uid)).await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-password",
        "{}",
        wire(&out)
    );
    wire(&out)
}

#[tokio::test]
async fn login_ok_rotates_session_and_redirects_home() {
    let k = kit().await;
    let mut c = k.client();
    let first = c.get(LOGIN).await;
    assert!(first.session_rotated, "a new session was issued");
    assert!(first.user.is_none());
    let anonymous_id = c.session_id();

    let pw = identify(&mut c, "akadmin").await;
    // The password stage shows who is logging in (transcript 03).
    assert_eq!(pw["pending_user"], "akadmin");
    assert_eq!(c.session_id(), anonymous_id, "no rotation before login");

    let out = c.post(LOGIN, password(ADMIN_PASSWORD)).await;
    assert!(out.logged_in);
    assert!(!out.logged_out);
    assert!(out.session_rotated, "session id must rotate at login");
    assert_ne!(out.session_id, anonymous_id);
    assert_eq!(out.user, Some(k.admin.pk.clone()));
    // authentik's last answer of the login (transcript 06).
    assert_eq!(out.challenge.component(), "xak-flow-redirect");
    assert_eq!(out.challenge.redirect_to(), Some("/"));

    // The pre-login id is dead (fixation defence); the new one carries the login.
    assert!(k.state(&anonymous_id).await.is_none());
    let user = k.engine.session_user(&out.session_id).await.unwrap();
    assert_eq!(user.map(|u| u.username), Some("akadmin".to_owned()));
    // The plan is gone once the flow finished (authentik `flow_done` → `cancel()`).
    let fs = k.flow_state(&out.session_id, LOGIN).await.unwrap();
    assert!(fs.plan.is_none());
}

#[tokio::test]
async fn login_with_next_redirects_there_and_keeps_next_on_cancel() {
    let k = kit().await;
    let mut c = k.client().with_query("next=%2Fif%2Fadmin%2F");
    let pw = identify(&mut c, "akadmin").await;
    assert_eq!(
        pw["flow_info"]["cancel_url"],
        "/flows/-/cancel/?next=%2Fif%2Fadmin%2F"
    );
    let out = c.post(LOGIN, password(ADMIN_PASSWORD)).await;
    assert!(out.logged_in);
    assert_eq!(out.challenge.redirect_to(), Some("/if/admin/"));
}

#[tokio::test]
async fn wrong_password_then_right_password() {
    let k = kit().await;
    let mut c = k.client();
    identify(&mut c, "akadmin").await;
    let out = c.post(LOGIN, password("definitely-wrong")).await;
    assert!(!out.logged_in);
    let v = wire(&out);
    // Transcript 14.
    assert_eq!(v["component"], "ak-stage-password");
    assert_eq!(
        v["response_errors"],
        json!({"password": [{"string": "Invalid password", "code": "invalid"}]})
    );
    let out = c.post(LOGIN, password(ADMIN_PASSWORD)).await;
    assert!(out.logged_in);
    assert_eq!(out.challenge.redirect_to(), Some("/"));
}

#[tokio::test]
async fn lockout_after_five_failures_drops_the_plan() {
    let k = kit().await;
    let mut c = k.client();
    identify(&mut c, "akadmin").await;
    for attempt in 1..=4 {
        let out = c.post(LOGIN, password(&format!("wrong-{attempt}"))).await;
        assert_eq!(out.challenge.component(), "ak-stage-password");
        assert_eq!(
            error_messages(&wire(&out)).get("password"),
            Some(&vec!["Invalid password".to_owned()]),
            "attempt {attempt}"
        );
    }
    // Transcript 66: the fifth failure denies access.
    let out = c.post(LOGIN, password("wrong-5")).await;
    assert_eq!(out.challenge.component(), "ak-stage-access-denied");
    assert_eq!(out.challenge.error_message(), Some("Invalid password"));
    assert!(!out.logged_in);
    // The plan is dropped: even the right password now hits the identification stage
    // (as a refused component), and a GET shows identification (transcript 67).
    assert!(
        k.flow_state(&c.session_id(), LOGIN)
            .await
            .unwrap()
            .plan
            .is_none()
    );
    let out = c.get(LOGIN).await;
    assert_eq!(out.challenge.component(), "ak-stage-identification");
    let out = c.post(LOGIN, password(ADMIN_PASSWORD)).await;
    assert!(!out.logged_in);
    assert_eq!(out.challenge.component(), "ak-stage-identification");
}

#[tokio::test]
async fn unknown_user_is_not_enumerable() {
    let k = kit().await;

    let mut known = k.client();
    let known_pw = identify(&mut known, "akadmin").await;
    let mut unknown = k.client();
    let unknown_pw = identify(&mut unknown, "no-such-user-xyz").await;

    // Same keys, same shape, same values except the displayed identifier (and the
    // avatar derived from it).
    assert_eq!(shape(&known_pw), shape(&unknown_pw));
    assert_eq!(unknown_pw["pending_user"], "no-such-user-xyz");
    let strip = |v: &Value| {
        let mut v = v.clone();
        let m = v.as_object_mut().unwrap();
        m.remove("pending_user");
        m.remove("pending_user_avatar");
        v
    };
    assert_eq!(strip(&known_pw), strip(&unknown_pw));

    // Identifying by the admin's email shows what was typed, never the account.
    let mut by_email = k.client();
    let email_pw = identify(&mut by_email, "root@localhost").await;
    assert_eq!(email_pw["pending_user"], "root@localhost");
    assert_eq!(shape(&email_pw), shape(&known_pw));

    // Wrong password: the same answer for both.
    let a = wire(&known.post(LOGIN, password("whatever-password")).await);
    let b = wire(&unknown.post(LOGIN, password("whatever-password")).await);
    assert_eq!(a["response_errors"], b["response_errors"]);
    assert_eq!(
        error_messages(&b).get("password"),
        Some(&vec!["Invalid password".to_owned()])
    );
    assert_eq!(shape(&a), shape(&b));
    assert_eq!(strip(&a), strip(&b));

    // And the final lockout is the same "Invalid password" denial.
    let mut last = (Value::Null, Value::Null);
    for i in 2..=5 {
        let a = wire(&known.post(LOGIN, password(&format!("nope-{i}"))).await);
        let b = wire(&unknown.post(LOGIN, password(&format!("nope-{i}"))).await);
        last = (a, b);
    }
    assert_eq!(last.0["component"], "ak-stage-access-denied");
    assert_eq!(last.1["component"], "ak-stage-access-denied");
    assert_eq!(last.0["error_message"], "Invalid password");
    assert_eq!(last.1["error_message"], "Invalid password");
    assert_eq!(shape(&last.0), shape(&last.1));
}

#[tokio::test]
async fn enrollment_then_login_with_the_new_account() {
    let k = kit().await;
    let slug = defaults::ENROLLMENT;
    let mut c = k.client();
    let out = c.get(slug).await;
    let v = wire(&out);
    assert_eq!(v["component"], "ak-stage-prompt");
    let keys: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["username", "password", "password_repeat"]);

    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "username": "newbie",
                   "password": "Enroll-Local-Pw-1", "password_repeat": "Enroll-Local-Pw-1"}),
        )
        .await;
    let v = wire(&out);
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    let keys: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["name", "email"]);

    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "name": "New Bie",
                   "email": "newbie@example.invalid"}),
        )
        .await;
    // Transcript 73: the flow ends with a redirect home; the user-login stage logged in.
    assert_eq!(out.challenge.redirect_to(), Some("/"), "{}", wire(&out));
    assert!(out.logged_in);
    assert!(out.session_rotated);

    let user = k
        .stores
        .users
        .find_user(UserField::Username, "newbie", false)
        .await
        .unwrap()
        .expect("user created");
    assert_eq!(out.user, Some(user.pk.clone()));
    assert_eq!(user.name, "New Bie");
    assert_eq!(user.email, "newbie@example.invalid");

    // A fresh browser logs in with the new account.
    let fresh = k.login("newbie", "Enroll-Local-Pw-1").await;
    let me = k.engine.session_user(&fresh.session_id()).await.unwrap();
    assert_eq!(me.map(|u| u.pk), Some(user.pk));
}

#[tokio::test]
async fn enrollment_refuses_mismatched_passwords_and_taken_usernames() {
    let k = kit().await;
    let slug = defaults::ENROLLMENT;

    let mut c = k.client();
    c.get(slug).await;
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "username": "fresh-name",
                   "password": "Enroll-Local-Pw-1", "password_repeat": "Enroll-Local-Pw-2"}),
        )
        .await;
    let v = wire(&out);
    // Transcript 79.
    assert_eq!(v["component"], "ak-stage-prompt");
    assert_eq!(
        v["response_errors"],
        json!({"non_field_errors": [{"string": "Passwords don't match.", "code": "invalid"}]})
    );

    let mut c = k.client();
    c.get(slug).await;
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "username": "akadmin",
                   "password": "Enroll-Local-Pw-1", "password_repeat": "Enroll-Local-Pw-1"}),
        )
        .await;
    let v = wire(&out);
    // Transcript 75.
    assert_eq!(v["component"], "ak-stage-prompt");
    assert_eq!(
        v["response_errors"],
        json!({"username": [{"string": "Username is already taken.", "code": "invalid"}]})
    );
    // Still at the first prompt: a valid answer advances to the second one.
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "username": "another-name",
                   "password": "Enroll-Local-Pw-1", "password_repeat": "Enroll-Local-Pw-1"}),
        )
        .await;
    let v = wire(&out);
    assert_eq!(v["fields"][0]["field_key"], "name", "{v}");
    assert!(v.get("response_errors").is_none());
}

#[tokio::test]
async fn password_change_then_login_with_the_new_password() {
    let k = kit().await;
    k.create_user("changer", "Old-Password-1").await;
    let mut c = k.login("changer", "Old-Password-1").await;
    let slug = defaults::PASSWORD_CHANGE;

    let out = c.get(slug).await;
    assert_eq!(out.challenge.component(), "ak-stage-prompt");

    // Too short: the default flow's password policy (8 characters).
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "password": "short1", "password_repeat": "short1"}),
        )
        .await;
    assert_eq!(
        error_messages(&wire(&out)).get("non_field_errors"),
        Some(&vec![
            "Password needs to be 8 characters or longer.".to_owned()
        ]),
        "{}",
        wire(&out)
    );
    // Mismatch.
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "password": "New-Password-2", "password_repeat": "New-Password-3"}),
        )
        .await;
    assert_eq!(
        error_messages(&wire(&out)).get("non_field_errors"),
        Some(&vec!["Passwords don't match.".to_owned()])
    );
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "password": "New-Password-2", "password_repeat": "New-Password-2"}),
        )
        .await;
    assert_eq!(out.challenge.redirect_to(), Some("/"), "{}", wire(&out));
    assert!(!out.logged_out, "changing the password keeps the login");

    // The old password no longer works, the new one does.
    let mut old = k.client();
    identify(&mut old, "changer").await;
    let out = old.post(LOGIN, password("Old-Password-1")).await;
    assert!(!out.logged_in);
    assert_eq!(
        error_messages(&wire(&out)).get("password"),
        Some(&vec!["Invalid password".to_owned()])
    );
    k.login("changer", "New-Password-2").await;
}

#[tokio::test]
async fn password_change_needs_a_login() {
    let k = kit().await;
    let mut c = k.client();
    let out = c.get(defaults::PASSWORD_CHANGE).await;
    // require_authenticated: not applicable to anonymous users (authentik's message).
    assert_eq!(out.challenge.component(), "ak-stage-access-denied");
    assert_eq!(
        out.challenge.error_message(),
        Some("Flow does not apply to current user.")
    );
}

#[tokio::test]
async fn unenrollment_deletes_the_user_and_logs_out() {
    let k = kit().await;
    let leaver = k.create_user("leaver", "Leaver-Password-1").await;
    let mut c = k.login("leaver", "Leaver-Password-1").await;
    let before = c.session_id();

    let out = c
        .confirm(defaults::UNENROLLMENT, "Delete your account?")
        .await;
    assert_eq!(out.challenge.redirect_to(), Some("/"), "{}", wire(&out));
    assert!(out.logged_out);
    assert!(out.user.is_none());
    assert!(out.session_rotated);
    assert!(k.stores.users.user(leaver.pk).await.unwrap().is_none());
    assert!(
        k.engine
            .session_user(&out.session_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(k.state(&before).await.is_none(), "old session id is dead");

    // The account is gone: logging in fails like any wrong password.
    let mut again = k.client();
    identify(&mut again, "leaver").await;
    let out = again.post(LOGIN, password("Leaver-Password-1")).await;
    assert!(!out.logged_in);
    assert_eq!(
        error_messages(&wire(&out)).get("password"),
        Some(&vec!["Invalid password".to_owned()])
    );
    // The admin is untouched.
    assert!(k.stores.users.user(k.admin.pk).await.unwrap().is_some());
}

#[tokio::test]
async fn logout_via_the_invalidation_flow() {
    let k = kit().await;
    let mut c = k.login("akadmin", ADMIN_PASSWORD).await;
    let logged_in_id = c.session_id();
    assert!(
        k.engine
            .session_user(&logged_in_id)
            .await
            .unwrap()
            .is_some()
    );

    let out = c.confirm(defaults::INVALIDATION, "Log out?").await;
    assert!(out.logged_out);
    assert!(out.user.is_none());
    assert!(out.session_rotated);
    assert_eq!(out.challenge.component(), "xak-flow-redirect");
    assert_eq!(out.challenge.redirect_to(), Some("/"));
    assert!(
        k.engine
            .session_user(&out.session_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(k.state(&logged_in_id).await.is_none());
    assert_eq!(
        k.events
            .of(EventAction::Logout)
            .iter()
            .filter(|e| e.user.as_deref() == Some("akadmin"))
            .count(),
        1
    );
}

#[tokio::test]
async fn absolute_or_protocol_relative_next_is_refused() {
    let k = kit().await;
    for next in ["https://evil.example/", "//evil.example", "/\\evil.example"] {
        let mut c = k.client().with_query(&format!("next={}", urlencode(next)));
        identify(&mut c, "akadmin").await;
        let out = c.post(LOGIN, password(ADMIN_PASSWORD)).await;
        assert_eq!(out.challenge.redirect_to(), None, "next={next}");
        assert_eq!(
            out.challenge.component(),
            "ak-stage-access-denied",
            "next={next}"
        );
        assert_eq!(out.challenge.error_message(), Some("Invalid next URL"));
        // Denied before logging in (issue 8 §6): the session stays anonymous.
        assert!(!out.logged_in, "next={next}: logged in despite the denial");
        assert_eq!(out.user, None, "next={next}");
    }
}

#[tokio::test]
async fn two_flows_in_one_session_keep_their_plans() {
    let k = kit().await;
    let mut login_tab = k.client();
    identify(&mut login_tab, "akadmin").await;

    // A second tab starts the enrollment flow in the same session and gets one stage in.
    let mut enroll_tab = login_tab.same_session();
    let out = enroll_tab.get(defaults::ENROLLMENT).await;
    assert_eq!(out.challenge.component(), "ak-stage-prompt");
    let out = enroll_tab
        .post(
            defaults::ENROLLMENT,
            json!({"component": "ak-stage-prompt", "username": "tabby",
                   "password": "Tabby-Password-1", "password_repeat": "Tabby-Password-1"}),
        )
        .await;
    assert_eq!(wire(&out)["fields"][0]["field_key"], "name");
    assert_eq!(out.session_id, login_tab.session_id());

    // The login tab continues where it was (authentik #6954 would restart it).
    let out = login_tab.get(LOGIN).await;
    assert_eq!(out.challenge.component(), "ak-stage-password");
    let out = login_tab.post(LOGIN, password(ADMIN_PASSWORD)).await;
    assert!(out.logged_in);
    assert_eq!(out.challenge.redirect_to(), Some("/"));

    // The enrollment plan survived the login (and the id rotation).
    let fs = k
        .flow_state(&out.session_id, defaults::ENROLLMENT)
        .await
        .unwrap();
    let plan = fs.plan.expect("enrollment plan kept");
    assert_eq!(fs.history.len(), 1);
    assert_eq!(
        plan.context.prompt_data().unwrap()["username"],
        json!("tabby")
    );
}

/// Fires 50 identical identification POSTs at one session at once.
/// Returns (advanced, refused, conflicts).
async fn race_identification(k: &Kit, engine: Arc<authflow::Engine>) -> (usize, usize, usize) {
    let mut c = Client::new(engine.clone());
    c.get(LOGIN).await;
    let sid = c.session_id();

    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let engine = engine.clone();
        let req = c.request();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            engine.step(&req, LOGIN, &ident("akadmin")).await
        }));
    }
    let (mut advanced, mut refused, mut conflicts) = (0, 0, 0);
    for t in tasks {
        match t.await.expect("task panicked") {
            Ok(out) => {
                assert_eq!(out.session_id, sid, "no rotation without login");
                assert!(!out.logged_in);
                let v = wire(&out);
                assert_eq!(v["component"], "ak-stage-password", "{v}");
                if v.get("response_errors").is_none() {
                    advanced += 1;
                } else {
                    // Later requests meet the password stage and are refused (wrong component).
                    assert!(error_messages(&v).contains_key("non_field_errors"), "{v}");
                    refused += 1;
                }
            }
            Err(Error::Conflict) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(advanced + refused + conflicts, 50);

    let fs = k.flow_state(&sid, LOGIN).await.unwrap();
    assert_eq!(fs.history.len(), 1, "exactly one stage passed");
    let out = c.get(LOGIN).await;
    assert_eq!(out.challenge.component(), "ak-stage-password");
    // And the flow still completes.
    let out = c.post(LOGIN, password(ADMIN_PASSWORD)).await;
    assert!(out.logged_in);
    (advanced, refused, conflicts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_posts_advance_once() {
    let k = kit().await;
    let (advanced, refused, conflicts) = race_identification(&k, k.engine.clone()).await;
    assert_eq!(advanced, 1, "refused {refused}, conflicts {conflicts}");

    // Without retries the compare-and-swap losers surface as `Error::Conflict`
    // instead of being re-run; still exactly one request advances.
    let no_retry = Arc::new(k.stores.engine().conflict_retries(0).build());
    let (advanced, refused, conflicts) = race_identification(&k, no_retry).await;
    assert_eq!(advanced, 1, "refused {refused}, conflicts {conflicts}");
}

#[tokio::test]
async fn events_record_logins_without_passwords() {
    let k = kit().await;
    let wrong = "Wrong-Sentinel-Password-7c1e";
    let mut c = k.client().with_ip("192.0.2.7");
    identify(&mut c, "akadmin").await;
    c.post(LOGIN, password(wrong)).await;
    let out = c.post(LOGIN, password(ADMIN_PASSWORD)).await;
    assert!(out.logged_in);

    let failed = k.events.of(EventAction::LoginFailed);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].user.as_deref(), Some("akadmin"));
    assert_eq!(failed[0].flow.as_deref(), Some(LOGIN));
    assert_eq!(failed[0].client_ip.as_deref(), Some("192.0.2.7"));
    let logins = k.events.of(EventAction::Login);
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].user.as_deref(), Some("akadmin"));

    let all = serde_json::to_string(&k.events.events()).unwrap();
    assert!(!all.contains(wrong), "{all}");
    assert!(!all.contains(ADMIN_PASSWORD), "{all}");
    // Also not through Debug formatting.
    let debug = format!("{:?}", k.events.events());
    assert!(!debug.contains(wrong) && !debug.contains(ADMIN_PASSWORD));
}

/// A flow that keeps a password in its plan context mid-flow: prompt (password,
/// password_repeat) → dummy.
async fn install_probe_flow(k: &Kit) -> &'static str {
    let slug = "inspector-probe";
    let flows = k.stores.flows.as_ref();
    let flow = Flow::new(slug, "Probe", FlowDesignation::StageConfiguration);
    flows.put_flow(flow.clone()).await.unwrap();
    let prompt = Stage::new(
        "probe-prompt",
        PromptStage {
            fields: vec![
                Prompt::new("password", "Password", PromptType::Password, 0),
                Prompt::new(
                    "password_repeat",
                    "Password (repeat)",
                    PromptType::Password,
                    1,
                ),
            ],
            validation_policies: vec![],
        },
    );
    let dummy = Stage::new("probe-dummy", DummyStage::default());
    for (i, s) in [prompt, dummy].into_iter().enumerate() {
        let b = FlowStageBinding::new(flow.pk, s.pk, i32::try_from(i).unwrap() * 10);
        flows.put_stage(s).await.unwrap();
        flows.put_binding(b).await.unwrap();
    }
    slug
}

#[tokio::test]
async fn inspector_redacts_secrets_and_is_for_superusers_only() {
    let k = kit().await;
    let probe = install_probe_flow(&k).await;
    let secret = "Inspect-Sentinel-Secret-42";

    // Nothing ran: NoPlan (authentik: "No flow plan in session.").
    let mut admin = k.login("akadmin", ADMIN_PASSWORD).await;
    let r = k.engine.inspect(&admin.session_id(), probe).await;
    assert!(matches!(r, Err(InspectError::NoPlan)), "{r:?}");
    let r = k
        .engine
        .inspect(&admin.session_id(), defaults::INVALIDATION)
        .await;
    assert!(matches!(r, Err(InspectError::NoPlan)), "{r:?}");

    // Mid-flow: the prompt data holds the password; the inspector must not show it.
    admin.get(probe).await;
    let out = admin
        .post(
            probe,
            json!({"component": "ak-stage-prompt", "password": secret, "password_repeat": secret}),
        )
        .await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-dummy",
        "{}",
        wire(&out)
    );
    let plan = k
        .flow_state(&admin.session_id(), probe)
        .await
        .unwrap()
        .plan
        .unwrap();
    // Precondition: the secret is really in the stored plan context.
    assert_eq!(
        plan.context.prompt_data().unwrap()["password"],
        json!(secret)
    );

    let inspection = k
        .engine
        .inspect(&admin.session_id(), probe)
        .await
        .expect("admin may inspect");
    assert!(!inspection.is_completed);
    let current = inspection.current_plan.as_ref().unwrap();
    assert_eq!(
        current.plan_context["prompt_data"]["password"],
        json!("********")
    );
    assert_eq!(
        current.plan_context["prompt_data"]["password_repeat"],
        json!("********")
    );
    assert_eq!(inspection.plans.len(), 1, "one stage passed");
    let text = serde_json::to_string(&inspection).unwrap();
    assert!(!text.contains(secret), "{text}");
    assert!(
        !text.contains(admin.session_id().as_str()),
        "session id shown in clear"
    );
    assert!(!format!("{inspection:?}").contains(secret));

    // A completed flow: the history snapshots (taken before each passed stage) hold
    // the new password in `prompt_data`; they are redacted too.
    let new_password = "Changed-Sentinel-Password-5";
    admin.get(defaults::PASSWORD_CHANGE).await;
    let out = admin
        .post(
            defaults::PASSWORD_CHANGE,
            json!({"component": "ak-stage-prompt", "password": new_password,
                   "password_repeat": new_password}),
        )
        .await;
    assert_eq!(out.challenge.redirect_to(), Some("/"), "{}", wire(&out));
    let done = k
        .engine
        .inspect(&admin.session_id(), defaults::PASSWORD_CHANGE)
        .await
        .unwrap();
    assert!(done.is_completed);
    assert_eq!(done.plans.len(), 2, "prompt and user write passed");
    assert_eq!(
        done.plans[1].plan_context["prompt_data"]["password"],
        json!("********")
    );
    let text = serde_json::to_string(&done).unwrap();
    assert!(!text.contains(new_password), "{text}");

    // Not for ordinary users, even mid-flow in their own session.
    k.create_user("plain", "Plain-Password-1").await;
    let mut plain = k.login("plain", "Plain-Password-1").await;
    plain.get(probe).await;
    let r = k.engine.inspect(&plain.session_id(), probe).await;
    assert!(matches!(r, Err(InspectError::Forbidden)), "{r:?}");
    let r = k.engine.inspect(&plain.session_id(), LOGIN).await;
    assert!(matches!(r, Err(InspectError::Forbidden)), "{r:?}");

    // Nor for anonymous sessions mid-login.
    let mut anon = k.client();
    identify(&mut anon, "akadmin").await;
    let r = k.engine.inspect(&anon.session_id(), LOGIN).await;
    assert!(matches!(r, Err(InspectError::Forbidden)), "{r:?}");
}

/// Plans made while logged in must not survive a logout: a require_authenticated flow
/// planned before the logout must be planned anew (and refused) afterwards.
#[tokio::test]
async fn plans_made_while_logged_in_do_not_survive_logout() {
    use authflow::FlowRequest;
    let kit = kit().await;
    let engine = &kit.engine;
    let slug = defaults::AUTHENTICATION;
    let out = engine.plan(&FlowRequest::default(), slug).await.unwrap();
    let mut req = FlowRequest::new(Some(out.session_id), "");
    let out = engine
        .step(
            &req,
            slug,
            &json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
        )
        .await
        .unwrap();
    req.session_id = Some(out.session_id);
    let out = engine
        .step(
            &req,
            slug,
            &json!({"component": "ak-stage-password", "password": ADMIN_PASSWORD}),
        )
        .await
        .unwrap();
    assert!(out.logged_in);
    req.session_id = Some(out.session_id);
    // Logged in: the password-change flow is planned and shows its prompt.
    let out = engine.plan(&req, defaults::PASSWORD_CHANGE).await.unwrap();
    assert_eq!(out.challenge.component(), "ak-stage-prompt");
    req.session_id = Some(out.session_id);
    // Log out (a GET asks first; the confirmation's POST logs out).
    let out = engine.plan(&req, defaults::INVALIDATION).await.unwrap();
    assert!(!out.logged_out, "a GET never logs out");
    let token = out.challenge.to_json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    req.session_id = Some(out.session_id);
    let out = engine
        .step(
            &req,
            defaults::INVALIDATION,
            &json!({"component": "ak-stage-consent", "token": token}),
        )
        .await
        .unwrap();
    assert!(out.logged_out);
    req.session_id = Some(out.session_id);
    // The old plan is gone: the flow is planned anew for an anonymous user and refused.
    let out = engine.plan(&req, defaults::PASSWORD_CHANGE).await.unwrap();
    assert_eq!(
        out.challenge.component(),
        "ak-stage-access-denied",
        "{:?}",
        out.challenge.to_json()
    );
}

/// Stores with the default flows whose login lasts one hour, an engine on a manual
/// clock, and a logged-in ordinary user `alice`.
async fn expiring_login() -> (
    authflow::memory::Stores,
    Arc<authflow::Engine>,
    Arc<authflow::clock::ManualClock>,
    Client,
    authflow::store::User,
) {
    use authflow::model::StageConfig;
    use authflow::store::NewUser;
    let stores = authflow::memory::Stores::new();
    let clock = Arc::new(authflow::clock::ManualClock::new(1_700_000_000));
    let engine = Arc::new(stores.engine().clock(clock.clone()).build());
    defaults::install(stores.flows.as_ref()).await.unwrap();
    defaults::bootstrap_admin(stores.users.as_ref(), ADMIN_PASSWORD.into())
        .await
        .unwrap();
    let def = engine.definition(LOGIN).await.unwrap();
    let mut login_stage = def
        .stages
        .iter()
        .find(|s| matches!(s.stage.config, StageConfig::UserLogin(_)))
        .unwrap()
        .stage
        .as_ref()
        .clone();
    if let StageConfig::UserLogin(s) = &mut login_stage.config {
        s.session_duration = "hours=1".into();
    }
    stores.flows.put_stage(login_stage).await.unwrap();
    let alice = stores
        .users
        .create_user(NewUser::new("alice").password("Alice-Pw-123"))
        .await
        .unwrap();
    let mut c = Client::new(engine.clone());
    c.get(LOGIN).await;
    c.post(LOGIN, ident("alice")).await;
    let out = c.post(LOGIN, password("Alice-Pw-123")).await;
    assert!(out.logged_in, "{}", wire(&out));
    (stores, engine, clock, c, alice)
}

/// A plan made while logged in must not outlive an expired login either: a
/// password-change plan started for alice (execute API: pending user = alice) must not
/// let whoever holds the browser set her password once her login has expired.
#[tokio::test]
async fn plans_made_while_logged_in_do_not_survive_login_expiry() {
    let (stores, engine, clock, mut c, alice) = expiring_login().await;
    let mut context = authflow::plan::PlanContext::new();
    context.set_pending_user(&authflow::plan::PendingUser::of(&alice));
    let started = engine
        .start(
            &c.request(),
            defaults::PASSWORD_CHANGE,
            context,
            Some(&alice),
        )
        .await
        .unwrap();
    assert!(started.is_ok(), "{started:?}");
    let out = c.get(defaults::PASSWORD_CHANGE).await;
    assert_eq!(out.challenge.component(), "ak-stage-prompt");

    clock.advance(2 * 3600);
    let out = c
        .post(
            defaults::PASSWORD_CHANGE,
            json!({"component": "ak-stage-prompt", "password": "Attacker-Pw-1", "password_repeat": "Attacker-Pw-1"}),
        )
        .await;
    assert_ne!(
        out.challenge.component(),
        "xak-flow-redirect",
        "{}",
        wire(&out)
    );
    assert!(
        !stores
            .users
            .verify_password(Some(alice.pk), &"Attacker-Pw-1".into())
            .await
            .unwrap(),
        "an expired login changed the password"
    );
    let out = c.get(defaults::PASSWORD_CHANGE).await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-access-denied",
        "{}",
        wire(&out)
    );
}

/// An expired login is no login for the engine's other entry points either
/// (`session_user` backs the admin API's and the execute API's session auth, and the
/// inspector checks the same user).
#[tokio::test]
async fn expired_login_is_not_a_session_user() {
    let (_stores, engine, clock, c, alice) = expiring_login().await;
    let id = c.session_id();
    assert_eq!(
        engine.session_user(&id).await.unwrap().map(|u| u.pk),
        Some(alice.pk)
    );
    clock.advance(2 * 3600);
    assert!(engine.session_user(&id).await.unwrap().is_none());
}

/// Identification with an inline password: an inactive account with its correct
/// password answers exactly like a wrong password ("Failed to authenticate."), as the
/// password stage does; it must not go on and reveal "User is not active.".
#[tokio::test]
async fn inline_password_inactive_user_answers_like_a_wrong_password() {
    use authflow::model::{IdentificationStage, PasswordStage, UserLoginStage};
    let k = kit().await;
    let flows = k.stores.flows.as_ref();
    let slug = "inline-login";
    let flow = Flow::new(slug, "Inline", FlowDesignation::Authentication);
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
    let login = Stage::new("inline-login", UserLoginStage::default());
    for (i, s) in [ident, login].into_iter().enumerate() {
        let b = FlowStageBinding::new(flow.pk, s.pk, i32::try_from(i).unwrap() * 10);
        flows.put_stage(s).await.unwrap();
        flows.put_binding(b).await.unwrap();
    }
    let mut bob = k.create_user("bob", "Bob-Pw-12345").await;
    bob.is_active = false;
    k.stores.users.update_user(&bob).await.unwrap();

    let post = |uid: &str, pw: &str| json!({"component": "ak-stage-identification", "uid_field": uid, "password": pw});
    let mut right = k.client();
    right.get(slug).await;
    let a = wire(&right.post(slug, post("bob", "Bob-Pw-12345")).await);
    let mut wrong = k.client();
    wrong.get(slug).await;
    let b = wire(&wrong.post(slug, post("bob", "not-the-password")).await);
    assert_eq!(a["component"], "ak-stage-identification", "{a}");
    assert_eq!(a["response_errors"], b["response_errors"]);
    assert_eq!(shape(&a), shape(&b));
}

/// With `pretend_user_exists`, an unknown identifier must cost the same reputation as
/// a known one: otherwise a reputation-guarded stage (authentik's "conditional
/// captcha"/deny example) kicks in earlier for unknown usernames and tells them apart.
#[tokio::test]
async fn pretended_users_lose_no_more_reputation_than_known_ones() {
    use authflow::model::{
        BindingSubject, BindingTarget, DenyStage, Policy, PolicyBinding, PolicyKind,
        ReputationPolicy,
    };
    let k = kit().await;
    let flows = k.stores.flows.as_ref();
    let def = k.engine.definition(LOGIN).await.unwrap();
    let deny = Stage::new("reputation-deny", DenyStage::default());
    let mut binding = FlowStageBinding::new(def.flow.pk, deny.pk, 15);
    binding.evaluate_on_plan = false;
    binding.re_evaluate_policies = true;
    let policy = Policy::new(
        "bad-reputation",
        PolicyKind::Reputation(ReputationPolicy {
            threshold: -2,
            check_ip: false,
            check_username: true,
        }),
    );
    flows.put_stage(deny).await.unwrap();
    flows.put_binding(binding.clone()).await.unwrap();
    flows.put_policy(policy.clone()).await.unwrap();
    flows
        .put_policy_binding(PolicyBinding::new(
            BindingTarget::Stage(binding.pk),
            BindingSubject::Policy(policy.pk),
            0,
        ))
        .await
        .unwrap();

    // Each attempt: identify, then one wrong password. Returns what the identification
    // step answered.
    let attempt = |uid: &'static str| {
        let mut c = k.client();
        async move {
            c.get(LOGIN).await;
            let out = c.post(LOGIN, ident(uid)).await;
            let component = out.challenge.component().to_owned();
            if component == "ak-stage-password" {
                c.post(LOGIN, password("wrong-password-1")).await;
            }
            component
        }
    };
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        known.push(attempt("akadmin").await);
        unknown.push(attempt("no-such-user-xyz").await);
    }
    assert_eq!(known, unknown);
}

// ---------------------------------------------------------------------------------------
// Login throttling (issue 8 part 2)

fn throttled(v: &Value) -> bool {
    v.to_string().contains("Too many failed attempts")
}

/// One login attempt in a fresh session from `ip`; returns the last answer.
async fn attempt_from(engine: &Arc<authflow::Engine>, ip: &str, uid: &str, pw: &str) -> Value {
    let mut c = common::kit::Client::new(engine.clone()).with_ip(ip);
    c.get(LOGIN).await;
    c.post(LOGIN, ident(uid)).await;
    wire(&c.post(LOGIN, password(pw)).await)
}

/// A distributed attack (one guess per IP) trips the per-identifier counter: then every
/// unfamiliar IP is refused for that identifier, while an IP the owner logged in from
/// before still logs in. Unknown identifiers behave the same.
#[tokio::test]
async fn distributed_guessing_refuses_unfamiliar_ips_but_not_the_owners() {
    use authflow::throttle::ThrottleConfig;
    let k = kit().await;
    let cfg = ThrottleConfig {
        max_failures_per_ip: 3,
        max_failures_per_identifier: 5,
        ..ThrottleConfig::default()
    };
    let engine = Arc::new(k.stores.engine().throttle(cfg).build());
    // The owner logged in from home once.
    let home = attempt_from(&engine, "198.51.100.7", "akadmin", ADMIN_PASSWORD).await;
    assert_eq!(home["component"], "xak-flow-redirect", "{home}");
    for uid in ["akadmin", "no-such-user"] {
        for i in 0..5 {
            let v = attempt_from(&engine, &format!("203.0.113.{i}"), uid, "wrong").await;
            assert!(!throttled(&v), "{uid} {i}: {v}");
        }
        // A new IP: refused, even with the right password.
        let v = attempt_from(&engine, "203.0.113.99", uid, ADMIN_PASSWORD).await;
        assert!(throttled(&v), "{uid}: {v}");
    }
    // The owner's familiar IP still works.
    let v = attempt_from(&engine, "198.51.100.7", "akadmin", ADMIN_PASSWORD).await;
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
}

/// The identification stage's inline password is throttled as the password stage is:
/// past the threshold the right password is refused from that IP (not evaluated), the
/// answer is the same for unknown identifiers, and another IP is not affected.
#[tokio::test]
async fn inline_password_is_throttled() {
    use authflow::model::{IdentificationStage, PasswordStage, UserLoginStage};
    let k = kit().await;
    let flows = k.stores.flows.as_ref();
    let slug = "inline-throttle";
    let flow = Flow::new(slug, "Inline", FlowDesignation::Authentication);
    flows.put_flow(flow.clone()).await.unwrap();
    let pw = Stage::new("inline-throttle-password", PasswordStage::default());
    let ident = Stage::new(
        "inline-throttle-ident",
        IdentificationStage {
            user_fields: vec![UserField::Username],
            password_stage: Some(pw.pk),
            ..IdentificationStage::default()
        },
    );
    flows.put_stage(pw).await.unwrap();
    let login = Stage::new("inline-throttle-login", UserLoginStage::default());
    for (i, s) in [ident, login].into_iter().enumerate() {
        let b = FlowStageBinding::new(flow.pk, s.pk, i32::try_from(i).unwrap() * 10);
        flows.put_stage(s).await.unwrap();
        flows.put_binding(b).await.unwrap();
    }
    let post = |uid: &str, pw: &str| json!({"component": "ak-stage-identification", "uid_field": uid, "password": pw});
    let mut answers = Vec::new();
    for uid in ["akadmin", "no-such-user"] {
        let mut c = k.client().with_ip("192.0.2.1");
        c.get(slug).await;
        let mut seen = Vec::new();
        for i in 0..12 {
            seen.push(
                wire(&c.post(slug, post(uid, &format!("wrong-{i}"))).await)["response_errors"]
                    .clone(),
            );
        }
        assert!(!throttled(&seen[9]), "{:?}", seen[9]);
        assert!(throttled(&seen[10]), "{:?}", seen[10]);
        let right = wire(&c.post(slug, post(uid, ADMIN_PASSWORD)).await);
        assert!(throttled(&right), "{right}");
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "no account-existence signal");
    let mut other = k.client().with_ip("192.0.2.2");
    other.get(slug).await;
    let out = other.post(slug, post("akadmin", ADMIN_PASSWORD)).await;
    assert!(out.logged_in, "{}", wire(&out));
}

/// authentik lowers the reputation of every identifier an identification stage accepts
/// without checking a credential when it is unknown; authflow lowers it equally for
/// known ones, so the score tells nothing about existence (issue 10).
#[tokio::test]
async fn identification_lowers_reputation_equally_for_known_and_unknown() {
    use authflow::store::ReputationStore;
    let k = kit().await;
    for uid in ["akadmin", "no-such-user"] {
        let mut c = k.client().with_ip("192.0.2.50");
        c.get(LOGIN).await;
        c.post(LOGIN, ident(uid)).await;
        let score = k.stores.reputation.score(None, Some(uid)).await.unwrap();
        assert_eq!(score, -1, "{uid}");
    }
    // A successful login gives the point back.
    let mut c = k.client().with_ip("192.0.2.51");
    identify(&mut c, "akadmin").await;
    assert!(c.post(LOGIN, password(ADMIN_PASSWORD)).await.logged_in);
    let score = k
        .stores
        .reputation
        .score(None, Some("akadmin"))
        .await
        .unwrap();
    assert_eq!(
        score, -1,
        "one point lost per identification, one back per login"
    );
}

// ---------------------------------------------------------------------------------------
// Unique identifiers (issue 8 part 5)

/// Runs the default enrollment flow's two prompts; returns the second prompt's answer
/// (or the first one's, when it refused).
async fn enroll(k: &Kit, username: &str, pw: &str, email: &str) -> Value {
    let slug = defaults::ENROLLMENT;
    let mut c = k.client();
    c.get(slug).await;
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "username": username,
                   "password": pw, "password_repeat": pw}),
        )
        .await;
    let v = wire(&out);
    if v.get("response_errors").is_some() {
        return v;
    }
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "name": "N", "email": email}),
        )
        .await;
    wire(&out)
}

/// The takeover: the victim's username is email-shaped; an attacker enrolls with that
/// as their email (in another case). Enrollment refuses it with a field error, and the
/// victim's identifier still logs the victim in.
#[tokio::test]
async fn enrollment_refuses_an_email_that_is_someone_elses_identifier() {
    let k = kit().await;
    let carol = k
        .stores
        .users
        .create_user(
            authflow::store::NewUser::new("carol@corp.example")
                .email("Carol.Smith@corp.example")
                .password("Carol-Pw-12345"),
        )
        .await
        .unwrap();
    let v = enroll(&k, "mallory", "Mallory-Pw-1", "CAROL@corp.example").await;
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    assert_eq!(
        v["response_errors"],
        json!({"email": [{"string": "Email address is already in use.", "code": "invalid"}]})
    );
    // A case-variant duplicate of her email: refused too.
    let v = enroll(&k, "mallory2", "Mallory-Pw-1", &carol.email.to_uppercase()).await;
    assert_eq!(
        v["response_errors"]["email"][0]["string"], "Email address is already in use.",
        "{v}"
    );
    let c = k.login("carol@corp.example", "Carol-Pw-12345").await;
    let me = k.engine.session_user(&c.session_id()).await.unwrap();
    assert_eq!(me.map(|u| u.pk), Some(carol.pk));
}

/// Usernames are compared after NFKC + case folding (fullwidth `ＡＫＡＤＭＩＮ` is
/// `akadmin`), and invisible, control and bidi characters or over-long names are refused.
#[tokio::test]
async fn enrollment_refuses_look_alike_and_invisible_usernames() {
    let k = kit().await;
    let long = "a".repeat(151);
    for (name, message) in [
        ("ＡＫＡＤＭＩＮ", "Username is already taken."),
        ("AkAdmin", "Username is already taken."),
        (
            "ak\u{200B}admin",
            "Username contains invisible or control characters.",
        ),
        (
            "admin\u{202E}nimda",
            "Username contains invisible or control characters.",
        ),
        (
            "ak\u{0007}admin",
            "Username contains invisible or control characters.",
        ),
        (
            long.as_str(),
            "Ensure this field has no more than 150 characters.",
        ),
    ] {
        let v = enroll(&k, name, "Enroll-Local-Pw-1", "x@example.invalid").await;
        assert_eq!(v["component"], "ak-stage-prompt", "{name:?}: {v}");
        let errors = error_messages(&v);
        assert!(
            errors.values().flatten().any(|m| m == message),
            "{name:?}: {v}"
        );
    }
    // Fullwidth input still finds akadmin at login.
    let c = k.login("ＡＫＡＤＭＩＮ", ADMIN_PASSWORD).await;
    let me = k.engine.session_user(&c.session_id()).await.unwrap();
    assert_eq!(me.map(|u| u.pk), Some(k.admin.pk));
}

/// The default enrollment flow applies a password policy (at least 8 characters).
#[tokio::test]
async fn enrollment_requires_eight_character_passwords() {
    let k = kit().await;
    let v = enroll(&k, "shorty", "Short-1", "shorty@example.invalid").await;
    assert_eq!(v["component"], "ak-stage-prompt", "{v}");
    assert_eq!(
        v["response_errors"],
        json!({"non_field_errors": [{"string": "Password needs to be 8 characters or longer.", "code": "invalid"}]})
    );
    let v = enroll(&k, "longer", "Longer-Pw-1", "longer@example.invalid").await;
    assert_eq!(v["component"], "xak-flow-redirect", "{v}");
}

/// An identifier that names two accounts (one's email, another's username) matches no
/// one, whatever order the fields are tried in — for a host directory that does not
/// enforce authflow's uniqueness rule.
#[tokio::test]
async fn ambiguous_identifier_matches_no_one() {
    use authflow::memory::MemoryUserDirectory;
    use authflow::store::NewUser;
    // Two directories glued together: emails are looked up in one, usernames in the
    // other, so duplicates across fields exist as they can in a host's database.
    let by_email = Arc::new(MemoryUserDirectory::new());
    let by_username = Arc::new(MemoryUserDirectory::new());
    let mallory = by_email
        .create_user(
            NewUser::new("mallory")
                .email("carol@corp.example")
                .password("Mallory-Pw-1"),
        )
        .await
        .unwrap();
    by_username
        .create_user(NewUser::new("carol@corp.example").password("Carol-Pw-12345"))
        .await
        .unwrap();
    let glued = Arc::new(split::Split {
        by_email,
        by_username,
    });
    let stores = authflow::memory::Stores::new();
    let engine = Arc::new(
        authflow::Engine::builder(stores.flows.clone(), stores.sessions.clone(), glued).build(),
    );
    defaults::install(stores.flows.as_ref()).await.unwrap();
    for pw in ["Mallory-Pw-1", "Carol-Pw-12345"] {
        let mut c = common::kit::Client::new(engine.clone());
        c.get(LOGIN).await;
        let out = c.post(LOGIN, ident("carol@corp.example")).await;
        assert_eq!(out.challenge.component(), "ak-stage-password");
        let out = c.post(LOGIN, password(pw)).await;
        assert!(!out.logged_in, "{pw}: {}", wire(&out));
    }
    // Mallory's own username still works for Mallory.
    let mut c = common::kit::Client::new(engine.clone());
    c.get(LOGIN).await;
    c.post(LOGIN, ident("mallory")).await;
    let out = c.post(LOGIN, password("Mallory-Pw-1")).await;
    assert_eq!(out.user, Some(mallory.pk));
}

mod split {
    use std::sync::Arc;

    use authflow::StoreError;
    use authflow::memory::MemoryUserDirectory;
    use authflow::model::{GroupId, UserField, UserId};
    use authflow::secret::Password;
    use authflow::store::{Group, NewUser, User, UserAdmin, UserDirectory};

    /// Emails from one directory, everything else from the other (then the first).
    pub struct Split {
        pub by_email: Arc<MemoryUserDirectory>,
        pub by_username: Arc<MemoryUserDirectory>,
    }

    #[async_trait::async_trait]
    impl UserDirectory for Split {
        async fn user(&self, pk: UserId) -> Result<Option<User>, StoreError> {
            match self.by_username.user(pk.clone()).await? {
                Some(u) => Ok(Some(u)),
                None => self.by_email.user(pk).await,
            }
        }
        async fn find_user(
            &self,
            field: UserField,
            value: &str,
            ci: bool,
        ) -> Result<Option<User>, StoreError> {
            match field {
                UserField::Email => self.by_email.find_user(field, value, ci).await,
                _ => match self.by_username.find_user(field, value, ci).await? {
                    Some(u) => Ok(Some(u)),
                    None => self.by_email.find_user(field, value, ci).await,
                },
            }
        }
        async fn verify_password(
            &self,
            user: Option<UserId>,
            password: &Password,
        ) -> Result<bool, StoreError> {
            let in_email = match &user {
                Some(pk) => self.by_email.user(pk.clone()).await?.is_some(),
                None => false,
            };
            if in_email {
                self.by_email.verify_password(user, password).await
            } else {
                self.by_username.verify_password(user, password).await
            }
        }
        async fn group(&self, pk: GroupId) -> Result<Option<Group>, StoreError> {
            self.by_username.group(pk).await
        }
        async fn find_group(&self, name: &str) -> Result<Option<Group>, StoreError> {
            self.by_username.find_group(name).await
        }
        async fn groups_of(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
            self.by_username.groups_of(user).await
        }
        fn admin(&self) -> Option<&dyn UserAdmin> {
            Some(self)
        }
    }

    #[async_trait::async_trait]
    impl UserAdmin for Split {
        async fn set_password(&self, user: UserId, password: &Password) -> Result<(), StoreError> {
            self.by_username.set_password(user, password).await
        }
        async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
            self.by_username.create_user(user).await
        }
        async fn update_user(&self, user: &User) -> Result<(), StoreError> {
            self.by_username.update_user(user).await
        }
        async fn delete_user(&self, pk: UserId) -> Result<bool, StoreError> {
            self.by_username.delete_user(pk).await
        }
        async fn put_group(&self, group: Group) -> Result<(), StoreError> {
            self.by_username.put_group(group).await
        }
    }
}
