#![cfg(feature = "http")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The HTTP adapter over real HTTP: `authflow::http::router` on an ephemeral loopback
//! port with the in-memory stores, driven by cookie-keeping `reqwest` clients.
//!
//! Every response is recorded (`support::Browser::send`) and checked when the test's
//! server is finished or dropped: never a 5xx, every 4xx is JSON `{detail, code}` or
//! field errors, and every executor challenge validates against authentik's OpenAPI
//! schema (`tests/fixtures/authentik-flow-executor.openapi.yaml`), chosen by its
//! `component` through the `ChallengeTypes` discriminator.

#[path = "common/http.rs"]
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use authflow::defaults;
use authflow::http::{CSRF_COOKIE, HttpConfig, SESSION_COOKIE};
use authflow::model::UserField;
use authflow::store::{UserAdmin, UserDirectory};
use reqwest::Method;
use serde_json::{Value, json};
use support::{
    ADMIN_PASSWORD, Browser, Csrf, Req, Resp, Server, check_exchange, executor, inspector, schema,
    start, start_with,
};

const LOGIN: &str = defaults::AUTHENTICATION;
const FLOWS: &str = "/api/v3/flows/instances/";

fn identification(uid: &str) -> Value {
    json!({"component": "ak-stage-identification", "uid_field": uid})
}

fn password(pw: &str) -> Value {
    json!({"component": "ak-stage-password", "password": pw})
}

/// Asserts the attributes of a `Set-Cookie` line (case-insensitive names).
#[track_caller]
fn assert_cookie_attrs(line: &str, http_only: bool) {
    let attrs: BTreeSet<String> = line
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(attrs.contains("samesite=lax"), "{line}");
    assert!(attrs.contains("path=/"), "{line}");
    assert_eq!(attrs.contains("httponly"), http_only, "{line}");
    assert!(!attrs.contains("secure"), "no TLS, no Secure: {line}");
}

fn is_session_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A browser that sends exactly this `Cookie` header (the jar still stores answers).
async fn get_with_cookie(b: &Browser, path: &str, cookie: &str) -> Resp {
    b.send(Req::new(Method::GET, path).header("cookie", cookie))
        .await
}

// ---------------------------------------------------------------------------------------
// Login, logout, enrollment, password change

/// The `Max-Age` of a `Set-Cookie` line, and whether it has `Expires`.
fn cookie_lifetime(line: &str) -> (Option<u64>, bool) {
    let attrs: Vec<String> = line
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    let max_age = attrs
        .iter()
        .find_map(|a| a.strip_prefix("max-age=").map(|v| v.parse().unwrap()));
    (max_age, attrs.iter().any(|a| a.starts_with("expires=")))
}

// authentik/stages/user_login/stage.py `UserLoginStageView.set_session_duration`: the
// session (and Django's session cookie) lasts `session_duration`, plus
// `remember_me_offset` when the `ak-stage-user-login` challenge is answered with
// `remember_me: true`; `seconds=0` leaves a browser-session cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_me_offset() {
    use authflow::model::{StageConfig, UserLoginStage};
    use authflow::store::FlowAdmin;
    let s = start().await;
    // The default `seconds=0`: browser-session cookies, without Max-Age or Expires.
    let b = s.browser();
    b.exec(LOGIN).await;
    b.answer(LOGIN, identification("akadmin")).await;
    let r = b.answer(LOGIN, password(ADMIN_PASSWORD)).await;
    let line = r
        .set_cookie(SESSION_COOKIE)
        .expect("login re-issues the cookie");
    assert_eq!(cookie_lifetime(&line), (None, false), "{line}");

    let mut stage = s
        .stores
        .flows
        .catalogue()
        .stages
        .into_iter()
        .find(|st| st.name == "default-authentication-login")
        .expect("default login stage");
    stage.config = StageConfig::UserLogin(UserLoginStage {
        session_duration: "hours=2".into(),
        remember_me_offset: "days=14".into(),
        ..UserLoginStage::default()
    });
    s.stores.flows.put_stage(stage).await.unwrap();

    for (remember, lasts) in [(true, 7200 + 14 * 86_400), (false, 7200)] {
        let b = s.browser();
        b.exec(LOGIN).await;
        b.answer(LOGIN, identification("akadmin")).await;
        let r = b.answer(LOGIN, password(ADMIN_PASSWORD)).await;
        let v = r.challenge("ak-stage-user-login");
        assert_eq!(v["pending_user"], "akadmin");
        assert!(r.set_cookie(SESSION_COOKIE).is_none(), "not logged in yet");

        let body = json!({"component": "ak-stage-user-login", "remember_me": remember});
        assert_eq!(
            schema().validate_named("UserLoginChallengeResponseRequest", &body),
            Vec::<String>::new()
        );
        let r = b.answer(LOGIN, body).await;
        assert_eq!(r.challenge("xak-flow-redirect")["to"], "/");
        for name in [SESSION_COOKIE, CSRF_COOKIE] {
            let line = r.set_cookie(name).expect("login re-issues the cookies");
            let (max_age, expires) = cookie_lifetime(&line);
            let max_age = max_age.unwrap_or_else(|| panic!("no Max-Age: {line}"));
            assert!(
                max_age <= lasts && max_age + 5 >= lasts,
                "remember_me {remember}: {line}"
            );
            assert!(expires, "no Expires: {line}");
        }
        assert_eq!(b.get(FLOWS).await.status, 200, "logged in");
    }

    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_rotates_the_session_cookie_and_sets_csrf() {
    let s = start().await;
    let b = s.browser();

    let r = b.exec(LOGIN).await;
    let v = r.challenge("ak-stage-identification");
    assert_eq!(v["user_fields"], json!(["email", "username"]));
    assert_eq!(v["flow_info"]["cancel_url"], "/flows/-/cancel/");
    let line = r
        .set_cookie(SESSION_COOKIE)
        .expect("a new session gets a cookie");
    assert_cookie_attrs(&line, true);
    let anonymous = b.session();
    assert!(is_session_id(&anonymous), "{anonymous}");
    assert!(
        b.cookie(CSRF_COOKIE).is_none(),
        "no CSRF cookie before login"
    );

    let r = b.answer(LOGIN, identification("akadmin")).await;
    let v = r.challenge("ak-stage-password");
    assert_eq!(v["pending_user"], "akadmin");
    assert!(
        r.set_cookie(SESSION_COOKIE).is_none(),
        "same session: no new cookie"
    );
    assert_eq!(b.session(), anonymous);

    let r = b.answer(LOGIN, password(ADMIN_PASSWORD)).await;
    assert_eq!(r.challenge("xak-flow-redirect")["to"], "/");
    let line = r
        .set_cookie(SESSION_COOKIE)
        .expect("login re-issues the cookie");
    assert_cookie_attrs(&line, true);
    let logged_in = r.cookie_value(SESSION_COOKIE).unwrap();
    assert_ne!(logged_in, anonymous, "the session id changes at login");
    assert!(is_session_id(&logged_in));
    assert_eq!(b.session(), logged_in);
    let csrf_line = r
        .set_cookie(CSRF_COOKIE)
        .expect("login sets the CSRF cookie");
    // Readable by scripts (the SPA copies it into the header), like authentik's.
    assert_cookie_attrs(&csrf_line, false);
    let csrf = r.cookie_value(CSRF_COOKIE).unwrap();
    assert!(!csrf.is_empty());
    assert_eq!(b.cookie(CSRF_COOKIE).as_deref(), Some(csrf.as_str()));

    // The session is akadmin's: the admin API answers.
    assert_eq!(b.get(FLOWS).await.status, 200);
    let state = s.session(&logged_in).await.expect("stored session");
    assert_eq!(state.user, Some(s.admin.pk.clone()));
    // The anonymous id is dead: presenting it is like presenting nothing.
    assert!(s.session(&anonymous).await.is_none());
    let other = s.browser();
    let r = get_with_cookie(&other, FLOWS, &format!("{SESSION_COOKIE}={anonymous}")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_then_right_password() {
    let s = start().await;
    let b = s.browser();
    b.exec(LOGIN).await.challenge("ak-stage-identification");
    b.answer(LOGIN, identification("akadmin"))
        .await
        .challenge("ak-stage-password");
    let before = b.session();

    let r = b.answer(LOGIN, password("definitely-wrong")).await;
    let v = r.challenge("ak-stage-password");
    assert_eq!(
        v["response_errors"],
        json!({"password": [{"string": "Invalid password", "code": "invalid"}]})
    );
    assert!(r.set_cookie(SESSION_COOKIE).is_none());
    assert!(b.cookie(CSRF_COOKIE).is_none(), "not logged in");
    assert_eq!(b.get(FLOWS).await.status, 403);

    let r = b.answer(LOGIN, password(ADMIN_PASSWORD)).await;
    assert_eq!(r.challenge("xak-flow-redirect")["to"], "/");
    assert_ne!(b.session(), before);
    assert_eq!(b.get(FLOWS).await.status, 200);
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_after_five_wrong_passwords() {
    let s = start().await;
    let b = s.browser();
    b.exec(LOGIN).await;
    b.answer(LOGIN, identification("akadmin"))
        .await
        .challenge("ak-stage-password");
    for attempt in 1..=4 {
        let r = b.answer(LOGIN, password(&format!("wrong-{attempt}"))).await;
        r.challenge("ak-stage-password");
        assert_eq!(
            r.errors().get("password"),
            Some(&vec!["Invalid password".to_owned()]),
            "attempt {attempt}"
        );
    }
    let r = b.answer(LOGIN, password("wrong-5")).await;
    let v = r.challenge("ak-stage-access-denied");
    assert_eq!(v["error_message"], "Invalid password");
    assert!(b.cookie(CSRF_COOKIE).is_none());
    // The plan is gone: the right password now meets the identification stage.
    let state = s.flow_state(&b.session(), LOGIN).await.unwrap();
    assert!(state["plan"].is_null(), "{state}");
    let r = b.answer(LOGIN, password(ADMIN_PASSWORD)).await;
    r.challenge("ak-stage-identification");
    assert!(r.errors().contains_key("non_field_errors"), "{}", r.text);
    assert!(b.cookie(CSRF_COOKIE).is_none(), "still not logged in");
    b.exec(LOGIN).await.challenge("ak-stage-identification");
    // A new attempt from the start works.
    b.answer(LOGIN, identification("akadmin"))
        .await
        .challenge("ak-stage-password");
    let r = b.answer(LOGIN, password(ADMIN_PASSWORD)).await;
    assert_eq!(r.challenge("xak-flow-redirect")["to"], "/");
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_then_login_with_the_new_account() {
    let s = start().await;
    let slug = defaults::ENROLLMENT;
    let b = s.browser();
    let r = b.exec(slug).await;
    let keys: Vec<&str> = r.challenge("ak-stage-prompt")["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["username", "password", "password_repeat"]);
    let anonymous = b.session();

    let r = b
        .answer(
            slug,
            json!({"component": "ak-stage-prompt", "username": "newbie",
                   "password": "Enroll-Local-Pw-1", "password_repeat": "Enroll-Local-Pw-1"}),
        )
        .await;
    assert_eq!(
        r.challenge("ak-stage-prompt")["fields"][0]["field_key"],
        "name"
    );
    let r = b
        .answer(
            slug,
            json!({"component": "ak-stage-prompt", "name": "New Bie",
                   "email": "newbie@example.invalid"}),
        )
        .await;
    assert_eq!(r.challenge("xak-flow-redirect")["to"], "/");
    assert!(
        r.set_cookie(SESSION_COOKIE).is_some(),
        "logged in: new cookie"
    );
    assert_ne!(b.session(), anonymous);
    assert!(b.cookie(CSRF_COOKIE).is_some());
    let user = s
        .stores
        .users
        .find_user(UserField::Username, "newbie", false)
        .await
        .unwrap()
        .expect("user created");
    assert_eq!(
        s.session(&b.session()).await.unwrap().user,
        Some(user.pk.clone())
    );
    // Not a superuser.
    assert_eq!(b.get(FLOWS).await.status, 403);

    // A fresh browser logs in with the new account.
    let fresh = s.login("newbie", "Enroll-Local-Pw-1").await;
    assert_eq!(
        s.session(&fresh.session()).await.unwrap().user,
        Some(user.pk)
    );
    // Enrollment is for anonymous users only: the logged-in browser is denied.
    fresh.exec(slug).await.challenge("ak-stage-access-denied");
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_via_the_invalidation_flow() {
    let s = start().await;
    let b = s.login("akadmin", ADMIN_PASSWORD).await;
    let logged_in = b.session();
    assert_eq!(b.get(FLOWS).await.status, 200);

    let r = b.exec(defaults::INVALIDATION).await;
    let token = r.challenge("ak-stage-consent")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        r.set_cookie(SESSION_COOKIE).is_none(),
        "a GET does not log out"
    );
    let r = b
        .answer(
            defaults::INVALIDATION,
            json!({"component": "ak-stage-consent", "token": token}),
        )
        .await;
    assert_eq!(r.challenge("xak-flow-redirect")["to"], "/");
    let line = r
        .set_cookie(SESSION_COOKIE)
        .expect("logout re-issues the cookie");
    assert_cookie_attrs(&line, true);
    assert_ne!(b.session(), logged_in, "the session id changes at logout");
    let csrf = r
        .set_cookie(CSRF_COOKIE)
        .expect("logout clears the CSRF cookie");
    assert!(csrf.to_ascii_lowercase().contains("max-age=0"), "{csrf}");
    assert!(b.cookie(CSRF_COOKIE).is_none());

    assert_eq!(b.get(FLOWS).await.status, 403);
    assert!(s.session(&logged_in).await.is_none());
    assert!(s.session(&b.session()).await.unwrap().user.is_none());
    // The old cookie value grants nothing.
    let other = s.browser();
    let r = get_with_cookie(&other, FLOWS, &format!("{SESSION_COOKIE}={logged_in}")).await;
    assert_eq!(r.status, 403);
    // And the browser can log in again.
    b.login("akadmin", ADMIN_PASSWORD).await;
    assert_eq!(b.get(FLOWS).await.status, 200);
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_needs_login_and_csrf() {
    let s = start().await;
    let slug = defaults::PASSWORD_CHANGE;
    s.create_user("changer", "Old-Password-1").await;

    // Anonymous: the flow does not apply.
    let anon = s.browser();
    let r = anon.exec(slug).await;
    assert_eq!(
        r.challenge("ak-stage-access-denied")["error_message"],
        "Flow does not apply to current user."
    );

    let b = s.login("changer", "Old-Password-1").await;
    b.exec(slug).await.challenge("ak-stage-prompt");
    let body = json!({"component": "ak-stage-prompt",
                      "password": "New-Password-2", "password_repeat": "New-Password-2"});
    let before = s.flow_state(&b.session(), slug).await;
    let r = b
        .send(
            Req::new(Method::POST, &executor(slug))
                .json(&body)
                .csrf(Csrf::Omit),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json["code"], "permission_denied");
    assert_eq!(
        s.flow_state(&b.session(), slug).await,
        before,
        "nothing changed"
    );

    // Too short (the flow's password policy), then right.
    let r = b
        .answer(
            slug,
            json!({"component": "ak-stage-prompt", "password": "short1", "password_repeat": "short1"}),
        )
        .await;
    assert_eq!(
        r.errors().get("non_field_errors"),
        Some(&vec![
            "Password needs to be 8 characters or longer.".to_owned()
        ]),
        "{}",
        r.text
    );
    let r = b.answer(slug, body).await;
    assert_eq!(r.challenge("xak-flow-redirect")["to"], "/");
    assert!(
        s.session(&b.session()).await.unwrap().user.is_some(),
        "changing the password keeps the login"
    );

    // The old password fails, the new one works.
    let old = s.browser();
    old.exec(LOGIN).await;
    old.answer(LOGIN, identification("changer")).await;
    let r = old.answer(LOGIN, password("Old-Password-1")).await;
    assert_eq!(
        r.errors().get("password"),
        Some(&vec!["Invalid password".to_owned()])
    );
    s.login("changer", "New-Password-2").await;
    s.finish();
}

// ---------------------------------------------------------------------------------------
// Inspector

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_for_superusers_with_secrets_redacted() {
    let s = start().await;
    let probe = s.install_probe_flow().await;
    let secret = "Inspect-Sentinel-Secret-42";

    // Anonymous, no session at all.
    let anon = s.browser();
    let r = anon.get(&inspector(LOGIN)).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Anonymous mid-login.
    anon.exec(LOGIN).await;
    anon.answer(LOGIN, identification("akadmin"))
        .await
        .challenge("ak-stage-password");
    let r = anon.get(&inspector(LOGIN)).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json["code"], "permission_denied");

    let admin = s.login("akadmin", ADMIN_PASSWORD).await;
    // A flow this session never ran: authentik's 400.
    let r = admin.get(&inspector(probe)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"detail": "No flow plan in session.", "code": "invalid"})
    );
    let r = admin.get(&inspector("no-such-flow")).await;
    assert_eq!(r.status, 404, "{}", r.text);

    // Mid-flow: the prompt data holds the password.
    admin.exec(probe).await.challenge("ak-stage-prompt");
    admin
        .answer(
            probe,
            json!({"component": "ak-stage-prompt", "password": secret, "password_repeat": secret}),
        )
        .await
        .challenge("ak-stage-dummy");
    let stored = s.flow_state(&admin.session(), probe).await.unwrap();
    assert!(
        stored.to_string().contains(secret),
        "precondition: the secret is stored"
    );

    let r = admin.get(&inspector(probe)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["is_completed"], false);
    assert_eq!(
        r.json["plans"].as_array().unwrap().len(),
        1,
        "one stage passed"
    );
    let ctx = &r.json["current_plan"]["plan_context"];
    assert_eq!(ctx["prompt_data"]["password"], "********", "{ctx}");
    assert_eq!(ctx["prompt_data"]["password_repeat"], "********");
    assert_eq!(
        r.json["current_plan"]["current_stage"]["stage_obj"]["name"],
        "http-probe-dummy"
    );
    assert!(!r.text.contains(secret), "{}", r.text);
    assert!(!r.text.contains(&admin.session()), "session id in clear");

    // An ordinary user, mid-flow in their own session.
    s.create_user("plain", "Plain-Password-1").await;
    let plain = s.login("plain", "Plain-Password-1").await;
    plain.exec(probe).await.challenge("ak-stage-prompt");
    for slug in [probe, LOGIN] {
        let r = plain.get(&inspector(slug)).await;
        assert_eq!(r.status, 403, "{slug}: {}", r.text);
    }
    s.finish();
}

// ---------------------------------------------------------------------------------------
// CSRF

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_is_required_once_logged_in_and_refusals_change_nothing() {
    let s = start().await;
    let probe = s.install_probe_flow().await;
    let b = s.login("akadmin", ADMIN_PASSWORD).await;
    let other = s.login("akadmin", ADMIN_PASSWORD).await;
    let other_token = other.cookie(CSRF_COOKIE).unwrap();
    let own_token = b.cookie(CSRF_COOKIE).unwrap();
    assert_ne!(own_token, other_token, "CSRF tokens are per session");

    b.exec(probe).await.challenge("ak-stage-prompt");
    let before = s.flow_state(&b.session(), probe).await.unwrap();
    let body = json!({"component": "ak-stage-prompt", "password": "P-1", "password_repeat": "P-1"});
    let refusals = [
        ("no header", Csrf::Omit),
        (
            "wrong header",
            Csrf::Value("0123456789abcdef0123456789abcdef".into()),
        ),
        ("empty header", Csrf::Value(String::new())),
        ("another session's token", Csrf::Value(other_token.clone())),
    ];
    for (what, csrf) in refusals.iter().cloned() {
        let r = b
            .send(
                Req::new(Method::POST, &executor(probe))
                    .json(&body)
                    .csrf(csrf),
            )
            .await;
        assert_eq!(r.status, 403, "{what}: {}", r.text);
        assert_eq!(
            r.json,
            json!({"detail": "CSRF Failed: CSRF token missing or incorrect.", "code": "permission_denied"}),
            "{what}"
        );
        assert_eq!(
            s.flow_state(&b.session(), probe).await.unwrap(),
            before,
            "{what}: the plan did not advance"
        );
    }
    // A form post (the classic cross-site vector) is refused the same way.
    let r = b
        .send(
            Req::new(Method::POST, &executor(probe))
                .raw(
                    Some("application/x-www-form-urlencoded"),
                    "component=ak-stage-prompt&password=P-1&password_repeat=P-1",
                )
                .csrf(Csrf::Omit),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(s.flow_state(&b.session(), probe).await.unwrap(), before);
    b.exec(probe).await.challenge("ak-stage-prompt");

    // The flows API with the session: refused without the header, nothing created.
    let flow = json!({"name": "Csrf", "slug": "csrf-flow", "title": "Csrf", "designation": "authentication"});
    for (what, csrf) in refusals.iter().cloned() {
        let r = b
            .send(Req::new(Method::POST, FLOWS).json(&flow).csrf(csrf))
            .await;
        assert_eq!(r.status, 403, "{what}: {}", r.text);
    }
    let r = b
        .send(
            Req::new(Method::PATCH, &format!("{FLOWS}{LOGIN}/"))
                .json(&json!({"title": "Hijacked"}))
                .csrf(Csrf::Omit),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = b
        .send(Req::new(Method::DELETE, &format!("{FLOWS}{LOGIN}/")).csrf(Csrf::Omit))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(b.get(&format!("{FLOWS}csrf-flow/")).await.status, 404);
    let r = b.get(&format!("{FLOWS}{LOGIN}/")).await;
    assert_eq!(r.json["title"], "Welcome to authentik!", "not patched");

    // With the right header everything works.
    let r = b.answer(probe, body).await;
    r.challenge("ak-stage-dummy");
    let r = b.post(FLOWS, &flow).await;
    assert_eq!(r.status, 201, "{}", r.text);
    s.finish();
}

// ---------------------------------------------------------------------------------------
// Flows API

fn new_flow(slug: &str) -> Value {
    json!({"name": format!("Flow {slug}"), "slug": slug, "title": format!("Title {slug}"),
           "designation": "authentication"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_api_create_and_field_errors() {
    let s = start().await;
    let admin = s.login("akadmin", ADMIN_PASSWORD).await;

    let r = admin.post(FLOWS, &new_flow("http-created")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = &r.json;
    for key in [
        "pk",
        "policybindingmodel_ptr_id",
        "name",
        "slug",
        "title",
        "designation",
        "background",
        "policy_engine_mode",
        "compatibility_mode",
        "export_url",
        "layout",
        "denied_action",
        "stages",
        "policies",
        "cache_count",
    ] {
        assert!(v.get(key).is_some(), "`{key}` missing in {v}");
    }
    assert!(uuid::Uuid::parse_str(v["pk"].as_str().unwrap()).is_ok());
    assert!(uuid::Uuid::parse_str(v["policybindingmodel_ptr_id"].as_str().unwrap()).is_ok());
    assert_ne!(v["pk"], v["policybindingmodel_ptr_id"]);
    assert_eq!(v["slug"], "http-created");
    assert_eq!(v["title"], "Title http-created");
    assert_eq!(v["designation"], "authentication");
    assert_eq!(v["stages"], json!([]));
    assert_eq!(v["policies"], json!([]));
    assert!(v["cache_count"].is_u64());
    assert!(v["background"].is_string());
    assert_eq!(
        v["export_url"],
        "/api/v3/flows/instances/http-created/export/"
    );
    // Defaults of authentik's Flow model.
    assert_eq!(v["policy_engine_mode"], "any");
    assert_eq!(v["layout"], "stacked");
    assert_eq!(v["denied_action"], "message_continue");
    assert_eq!(v["compatibility_mode"], false);
    // Readable back, and runnable.
    let r = admin.get(&format!("{FLOWS}http-created/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["pk"], v["pk"]);
    let r = admin.exec("http-created").await;
    assert_eq!(r.status, 200, "{}", r.text);

    let count = |r: &Resp| r.json["pagination"]["count"].as_u64().unwrap();
    let flows_before = count(&admin.get(FLOWS).await);

    let slug_msg = "Enter a valid \u{201c}slug\u{201d} consisting of letters, numbers, underscores or hyphens.";
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "bad slug",
            new_flow("not a slug!"),
            json!({"slug": [slug_msg], "code": "invalid"}),
        ),
        (
            "duplicate slug",
            new_flow(LOGIN),
            json!({"slug": ["flow with this slug already exists."], "code": "invalid"}),
        ),
        (
            "missing fields",
            json!({}),
            json!({"name": ["This field is required."], "slug": ["This field is required."],
                   "title": ["This field is required."], "designation": ["This field is required."],
                   "code": "invalid"}),
        ),
        (
            "bad designation",
            json!({"name": "N", "slug": "bad-enum", "title": "T", "designation": "nope"}),
            json!({"designation": ["\"nope\" is not a valid choice."], "code": "invalid"}),
        ),
        (
            "bad layout",
            json!({"name": "N", "slug": "bad-layout", "title": "T", "designation": "authentication",
                   "layout": "diagonal"}),
            json!({"layout": ["\"diagonal\" is not a valid choice."], "code": "invalid"}),
        ),
        (
            "bad policy engine mode",
            json!({"name": "N", "slug": "bad-mode", "title": "T", "designation": "authentication",
                   "policy_engine_mode": "some"}),
            json!({"policy_engine_mode": ["\"some\" is not a valid choice."], "code": "invalid"}),
        ),
        (
            "wrong types",
            json!({"name": 5, "slug": "wrong-types", "title": "T", "designation": "authentication",
                   "compatibility_mode": "yes"}),
            json!({"name": ["Not a valid string."], "compatibility_mode": ["Must be a valid boolean."],
                   "code": "invalid"}),
        ),
        (
            "blank name",
            json!({"name": " ", "slug": "blank", "title": "T", "designation": "authentication"}),
            json!({"name": ["This field may not be blank."], "code": "invalid"}),
        ),
        (
            "not an object",
            json!(["name"]),
            json!({"non_field_errors": ["Invalid data. Expected a dictionary."], "code": "invalid"}),
        ),
    ];
    for (what, body, expected) in cases {
        let r = admin.post(FLOWS, &body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_eq!(r.json, expected, "{what}");
    }
    // Malformed JSON and a wrong content type.
    let r = admin
        .send(Req::new(Method::POST, FLOWS).raw(Some("application/json"), "{\"name\": "))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error")
    );
    let r = admin
        .send(
            Req::new(Method::POST, FLOWS).raw(Some("text/plain"), new_flow("as-text").to_string()),
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.text);
    assert_eq!(r.json["code"], "unsupported_media_type");
    // Nothing was created by any of them.
    assert_eq!(count(&admin.get(FLOWS).await), flows_before);
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_api_refuses_everyone_but_superusers() {
    let s = start().await;
    let body = new_flow("should-not-exist");

    let anon = s.browser();
    let r = anon.post(FLOWS, &body).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json["code"], "permission_denied");
    for path in [FLOWS.to_owned(), format!("{FLOWS}{LOGIN}/")] {
        assert_eq!(anon.get(&path).await.status, 403, "{path}");
    }
    let r = anon
        .send(Req::new(Method::DELETE, &format!("{FLOWS}{LOGIN}/")))
        .await;
    assert_eq!(r.status, 403);
    // Anonymous mid-login is still anonymous.
    anon.exec(LOGIN).await;
    anon.answer(LOGIN, identification("akadmin")).await;
    assert_eq!(anon.get(FLOWS).await.status, 403);

    // A logged-in ordinary user, with a valid CSRF header.
    let plain_user = s.create_user("plain", "Plain-Password-1").await;
    let plain = s.login("plain", "Plain-Password-1").await;
    let r = plain.post(FLOWS, &body).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        r.json["detail"],
        "You do not have permission to perform this action."
    );
    assert_eq!(plain.get(FLOWS).await.status, 403);

    // Tokens: unknown, malformed, or of an ordinary user.
    let plain_token = s.tokens.create(plain_user.pk);
    for (what, header) in [
        ("unknown token", "Bearer 0123456789abcdef".to_owned()),
        (
            "not bearer",
            format!("Basic {}", s.tokens.create(s.admin.pk.clone())),
        ),
        ("ordinary user's token", format!("Bearer {plain_token}")),
    ] {
        let r = anon
            .send(
                Req::new(Method::POST, FLOWS)
                    .json(&body)
                    .header("authorization", header),
            )
            .await;
        assert_eq!(r.status, 403, "{what}: {}", r.text);
    }
    // A revoked token no longer works.
    let admin_token = s.tokens.create(s.admin.pk.clone());
    assert_eq!(
        s.browser()
            .send(Req::new(Method::GET, FLOWS).bearer(&admin_token))
            .await
            .status,
        200
    );
    assert!(s.tokens.revoke(&admin_token));
    let r = s
        .browser()
        .send(Req::new(Method::GET, FLOWS).bearer(&admin_token))
        .await;
    assert_eq!(r.status, 403, "{}", r.text);

    let root = s.login("akadmin", ADMIN_PASSWORD).await;
    assert_eq!(
        root.get(&format!("{FLOWS}should-not-exist/")).await.status,
        404
    );
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_api_with_a_bearer_token() {
    let s = start().await;
    let token = s.tokens.create(s.admin.pk.clone());
    // A client without cookies: the token alone authenticates, no CSRF needed.
    let c = s.browser();
    let item = format!("{FLOWS}token-flow/");

    let r = c
        .send(
            Req::new(Method::POST, FLOWS)
                .json(&new_flow("token-flow"))
                .bearer(&token),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        r.set_cookie(SESSION_COOKIE).is_none(),
        "token requests get no session"
    );
    let pk = r.json["pk"].clone();

    let r = c.send(Req::new(Method::GET, &item).bearer(&token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["pk"], pk);

    let r = c
        .send(
            Req::new(Method::PATCH, &item)
                .json(&json!({"title": "Patched title", "layout": "sidebar_left"}))
                .bearer(&token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["title"], "Patched title");
    assert_eq!(r.json["layout"], "sidebar_left");
    assert_eq!(r.json["name"], "Flow token-flow", "PATCH is partial");
    assert_eq!(r.json["pk"], pk);
    // The executor shows the new title and layout.
    let v = c.exec("token-flow").await;
    assert_eq!(v.status, 200);
    let r = c
        .send(
            Req::new(Method::PATCH, &item)
                .json(&json!({"designation": "nope"}))
                .bearer(&token),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json,
        json!({"designation": ["\"nope\" is not a valid choice."], "code": "invalid"})
    );
    let r = c.send(Req::new(Method::GET, &item).bearer(&token)).await;
    assert_eq!(
        r.json["designation"], "authentication",
        "a refused PATCH changes nothing"
    );
    let r = c
        .send(
            Req::new(Method::PATCH, &format!("{FLOWS}no-such-flow/"))
                .json(&json!({"title": "x"}))
                .bearer(&token),
        )
        .await;
    assert_eq!(r.status, 404);

    // List: authentik's paginated shape, ordered by slug.
    let r = c.send(Req::new(Method::GET, FLOWS).bearer(&token)).await;
    assert_eq!(r.status, 200);
    let slugs: Vec<&str> = r.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["slug"].as_str().unwrap())
        .collect();
    let mut sorted = slugs.clone();
    sorted.sort_unstable();
    assert_eq!(slugs, sorted);
    assert_eq!(slugs.len(), 6, "five defaults and ours: {slugs:?}");
    assert!(slugs.contains(&"token-flow"));
    assert_eq!(r.json["autocomplete"], json!({}));
    assert_eq!(
        r.json["pagination"],
        json!({"next": 0, "previous": 0, "count": 6, "current": 1, "total_pages": 1,
               "start_index": 1, "end_index": 6})
    );
    for f in r.json["results"].as_array().unwrap() {
        for key in [
            "pk",
            "slug",
            "stages",
            "policies",
            "cache_count",
            "export_url",
        ] {
            assert!(f.get(key).is_some(), "{key} in {f}");
        }
    }
    let login = r.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["slug"] == LOGIN)
        .unwrap();
    assert_eq!(login["stages"].as_array().unwrap().len(), 3, "{login}");

    let page = |n: usize| format!("{FLOWS}?page_size=4&page={n}");
    let r = c.send(Req::new(Method::GET, &page(1)).bearer(&token)).await;
    assert_eq!(
        r.json["pagination"],
        json!({"next": 2, "previous": 0, "count": 6, "current": 1, "total_pages": 2,
               "start_index": 1, "end_index": 4})
    );
    assert_eq!(r.json["results"].as_array().unwrap().len(), 4);
    let first: Vec<Value> = r.json["results"].as_array().unwrap().clone();
    let r = c.send(Req::new(Method::GET, &page(2)).bearer(&token)).await;
    assert_eq!(
        r.json["pagination"],
        json!({"next": 0, "previous": 1, "count": 6, "current": 2, "total_pages": 2,
               "start_index": 5, "end_index": 6})
    );
    let second = r.json["results"].as_array().unwrap();
    assert_eq!(second.len(), 2);
    assert!(
        second.iter().all(|f| !first.contains(f)),
        "pages do not overlap"
    );
    // Past the last page: DRF's 404 ("Invalid page.").
    let r = c.send(Req::new(Method::GET, &page(3)).bearer(&token)).await;
    assert_eq!(r.status, 404, "{}", r.text);

    // Delete.
    let r = c.send(Req::new(Method::DELETE, &item).bearer(&token)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(
        c.send(Req::new(Method::GET, &item).bearer(&token))
            .await
            .status,
        404
    );
    assert_eq!(
        c.send(Req::new(Method::DELETE, &item).bearer(&token))
            .await
            .status,
        404
    );
    assert_eq!(c.exec("token-flow").await.status, 404);
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_with_a_token_gives_a_link_and_a_session() {
    let s = start().await;
    let token = s.tokens.create(s.admin.pk.clone());
    let slug = defaults::PASSWORD_CHANGE;
    let path = format!("{FLOWS}{slug}/execute/");

    // No credentials.
    let r = s.browser().get(&path).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.json["code"], "not_authenticated");
    let r = s
        .browser()
        .send(Req::new(Method::GET, &format!("{FLOWS}no-such-flow/execute/")).bearer(&token))
        .await;
    assert_eq!(r.status, 404);

    let b = s.browser();
    // The link never comes from the `Host` header (issue 8 §6): relative without a
    // configured external URL.
    let r = b
        .send(
            Req::new(Method::GET, &path)
                .bearer(&token)
                .header("host", "evil.example"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"link": format!("/if/flow/{slug}/")}));
    let line = r.set_cookie(SESSION_COOKIE).expect("a session cookie");
    assert_cookie_attrs(&line, true);
    let id = b.session();
    let state = s.flow_state(&id, slug).await.expect("the plan is stored");
    assert!(!state["plan"].is_null());
    // The browser continues the planned flow (require_authenticated was checked
    // against the token's user when planning).
    let r = b.exec(slug).await;
    r.challenge("ak-stage-prompt");
    s.finish();
}

// ---------------------------------------------------------------------------------------
// Cancel and default-flow redirects

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_drops_the_plan_and_redirects() {
    let s = start().await;
    let b = s.browser();
    b.exec(LOGIN).await;
    b.answer(LOGIN, identification("akadmin"))
        .await
        .challenge("ak-stage-password");
    assert!(!s.flow_state(&b.session(), LOGIN).await.unwrap()["plan"].is_null());

    let r = b.get("/flows/-/cancel/?next=/x").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.location().as_deref(), Some("/x"));
    assert!(s.flow_state(&b.session(), LOGIN).await.unwrap()["plan"].is_null());
    // Back to the start.
    b.exec(LOGIN).await.challenge("ak-stage-identification");

    for next in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
    ] {
        let r = b
            .get(&format!("/flows/-/cancel/?next={}", urlencode(next)))
            .await;
        assert_eq!(r.status, 302, "{next}");
        assert_eq!(
            r.location().as_deref(),
            Some("/flows/-/default/invalidation/"),
            "{next}"
        );
    }
    // No next, and no session at all.
    let r = s.browser().get("/flows/-/cancel/").await;
    assert_eq!(
        r.location().as_deref(),
        Some("/flows/-/default/invalidation/")
    );

    // Cancel keeps the login.
    let admin = s.login("akadmin", ADMIN_PASSWORD).await;
    let r = admin.get("/flows/-/cancel/?next=/after").await;
    assert_eq!(r.location().as_deref(), Some("/after"));
    assert_eq!(admin.get(FLOWS).await.status, 200);
    s.finish();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_flow_redirects() {
    let s = start().await;
    let b = s.browser();
    let r = b.get("/flows/-/default/authentication/").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location().as_deref(),
        Some("/if/flow/default-authentication-flow/")
    );
    let r = b.get("/flows/-/default/authentication/?next=%2Fapp").await;
    assert_eq!(
        r.location().as_deref(),
        Some("/if/flow/default-authentication-flow/?next=%2Fapp")
    );
    let r = b.get("/flows/-/default/invalidation/").await;
    assert_eq!(
        r.location().as_deref(),
        Some("/if/flow/default-invalidation-flow/")
    );
    let r = b.get("/flows/-/default/enrollment/").await;
    assert_eq!(
        r.location().as_deref(),
        Some("/if/flow/default-enrollment-flow/")
    );
    // Enrollment requires an anonymous user: none applies to akadmin.
    let admin = s.login("akadmin", ADMIN_PASSWORD).await;
    assert_eq!(admin.get("/flows/-/default/enrollment/").await.status, 404);
    // Unknown designations.
    let r = b.get("/flows/-/default/nonsense/").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json, json!({"detail": "Not found.", "code": "not_found"}));
    // The flow page itself.
    let r = b.get("/if/flow/default-authentication-flow/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), "text/html");
    assert!(r.headers.contains_key("content-security-policy"));
    s.finish();
}

// ---------------------------------------------------------------------------------------
// Bad input

/// Asserts the browser's login plan is still at the identification stage.
async fn assert_not_advanced(s: &Server, b: &Browser, what: &str) {
    // Nothing stored (a new anonymous session holding only its fresh plan) is no
    // progress either.
    let history = s
        .flow_state(&b.session(), LOGIN)
        .await
        .and_then(|state| state["history"].as_array().map(Vec::len))
        .unwrap_or(0);
    assert_eq!(history, 0, "{what}: a stage was passed");
    let r = b.exec(LOGIN).await;
    assert_eq!(
        r.component(),
        "ak-stage-identification",
        "{what}: {}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_never_breaks_the_session() {
    let s = start().await;
    let b = s.browser();
    b.exec(LOGIN).await.challenge("ak-stage-identification");
    let id = b.session();
    let post = |ctype: Option<&'static str>, body: Vec<u8>| {
        Req::new(
            Method::POST,
            "/api/v3/flows/executor/default-authentication-flow/?query=",
        )
        .raw(ctype, body)
    };

    // Malformed JSON: authentik's flow error with a request id (transcript 20).
    for body in [
        &b"{\"component\": \"ak-stage-identification\", \"uid_field\": "[..],
        b"{'component': 1}",
        b"\xff\xfe\x00garbage",
        b"{\"a\":1} trailing",
    ] {
        let r = b.send(post(Some("application/json"), body.to_vec())).await;
        let v = r.challenge("ak-stage-flow-error");
        let request_id = v["request_id"].as_str().unwrap();
        assert!(!request_id.is_empty());
        assert!(r.set_cookie(SESSION_COOKIE).is_none(), "session kept");
        assert_not_advanced(&s, &b, "malformed JSON").await;
    }

    // Wrong content types.
    for ctype in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
    ] {
        let r = b
            .send(post(
                Some(ctype),
                identification("akadmin").to_string().into_bytes(),
            ))
            .await;
        assert_eq!(r.status, 415, "{ctype}: {}", r.text);
        assert_eq!(r.json["code"], "unsupported_media_type");
        assert_not_advanced(&s, &b, ctype).await;
    }

    // Over 64 KiB.
    let huge = json!({"component": "ak-stage-identification", "uid_field": "a".repeat(70 * 1024)});
    let r = b
        .send(post(
            Some("application/json"),
            huge.to_string().into_bytes(),
        ))
        .await;
    assert_eq!(r.status, 413, "{}", truncate(&r.text));
    assert_eq!(r.json["code"], "payload_too_large");
    assert_not_advanced(&s, &b, "too large").await;

    // Unknown flows.
    let r = b.get(&executor("no-such-flow")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json, json!({"detail": "Not found.", "code": "not_found"}));
    let r = b
        .post(&executor("no-such-flow"), &identification("akadmin"))
        .await;
    assert_eq!(r.status, 404);
    let r = b.get(&inspector("no-such-flow")).await;
    assert!(matches!(r.status, 403 | 404), "{}", r.status);
    let r = b.get("/api/v3/no/such/route/").await;
    assert_eq!(r.status, 404);
    assert_not_advanced(&s, &b, "unknown flow").await;

    // A slug that is not UTF-8, and methods the executor does not have: JSON errors
    // too (not axum's plain-text rejections).
    for path in [
        "/api/v3/flows/executor/%FF%FE/?query=",
        "/api/v3/flows/inspector/%C3%28/",
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.json["code"], "invalid", "{path}");
    }
    for method in [Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
        let r = b
            .send(Req::new(method.clone(), &executor(LOGIN)).json(&identification("akadmin")))
            .await;
        assert_eq!(r.status, 405, "{method}: {}", r.text);
        assert_eq!(
            r.json,
            json!({"detail": format!("Method \"{method}\" not allowed."), "code": "method_not_allowed"})
        );
        let allow = r
            .headers
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            allow.as_deref().is_some_and(|a| a.contains("POST")),
            "{allow:?}"
        );
    }
    assert_not_advanced(&s, &b, "unrouted method").await;

    // Wrong or bogus components: refused, no advance.
    for component in [
        json!("ak-stage-bogus"),
        json!("ak-stage-password"),
        json!(""),
        json!(7),
        json!(null),
        json!({"nested": true}),
    ] {
        let r = b
            .answer(
                LOGIN,
                json!({"component": component, "uid_field": "akadmin"}),
            )
            .await;
        r.challenge("ak-stage-identification");
        let errors = r.errors();
        assert_eq!(errors.len(), 1, "{component}: {}", r.text);
        assert!(
            errors["non_field_errors"][0].starts_with("Invalid component"),
            "{component}: {errors:?}"
        );
        assert_not_advanced(&s, &b, "wrong component").await;
    }
    // A password where an identifier is expected.
    let r = b.answer(LOGIN, password(ADMIN_PASSWORD)).await;
    r.challenge("ak-stage-identification");
    assert!(r.errors().contains_key("non_field_errors"));

    // Wrong JSON types in fields.
    for (uid, code) in [
        (json!({"a": 1}), "invalid"),
        (json!(["akadmin"]), "invalid"),
        (json!(true), "invalid"),
        (json!(null), "null"),
        (json!(""), "blank"),
    ] {
        let r = b
            .answer(
                LOGIN,
                json!({"component": "ak-stage-identification", "uid_field": uid}),
            )
            .await;
        r.challenge("ak-stage-identification");
        assert_eq!(
            r.json["response_errors"]["uid_field"][0]["code"], code,
            "{uid}: {}",
            r.text
        );
        assert_not_advanced(&s, &b, "wrong type").await;
    }
    // {} and a missing field (transcripts 21, 22).
    for body in [json!({}), json!({"component": "ak-stage-identification"})] {
        let r = b.answer(LOGIN, body).await;
        assert_eq!(
            r.challenge("ak-stage-identification")["response_errors"],
            json!({"uid_field": [{"string": "This field is required.", "code": "required"}]})
        );
    }

    // JSON that is not an object.
    for body in ["[1, 2]", "\"akadmin\"", "42", "null", "true"] {
        let r = b.send(post(Some("application/json"), body.into())).await;
        r.challenge("ak-stage-identification");
        let errors = r.errors();
        assert!(
            errors["non_field_errors"][0].starts_with("Invalid data. Expected a dictionary"),
            "{body}: {errors:?}"
        );
        assert_not_advanced(&s, &b, "non-object").await;
    }
    // Empty bodies count as `{}`.
    for ctype in [Some("application/json"), None] {
        let r = b.send(post(ctype, Vec::new())).await;
        assert_eq!(
            r.challenge("ak-stage-identification")["response_errors"]["uid_field"][0]["code"],
            "required"
        );
    }
    // A bogus query string is harmless.
    let r = b
        .get("/api/v3/flows/executor/default-authentication-flow/?query=%ZZ%&next=%%")
        .await;
    r.challenge("ak-stage-identification");

    // After all that, the same session still works, with a form body and a charset.
    assert_eq!(b.session(), id, "the session survived");
    let r = b
        .send(post(
            Some("application/x-www-form-urlencoded"),
            b"component=ak-stage-identification&uid_field=akadmin".to_vec(),
        ))
        .await;
    assert_eq!(r.challenge("ak-stage-password")["pending_user"], "akadmin");
    let r = b
        .send(post(
            Some("application/json; charset=utf-8"),
            password(ADMIN_PASSWORD).to_string().into_bytes(),
        ))
        .await;
    assert_eq!(r.challenge("xak-flow-redirect")["to"], "/");
    assert_eq!(b.get(FLOWS).await.status, 200);
    s.finish();
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_session_cookie_is_no_session() {
    let s = start().await;
    let admin = s.login("akadmin", ADMIN_PASSWORD).await;
    let real = admin.session();
    let too_long = "a".repeat(200);
    let unknown = "0123456789abcdef".repeat(4);
    for garbage in [
        "garbage!!",
        "../../etc/passwd",
        too_long.as_str(),
        "",
        "\"quoted\"",
        unknown.as_str(),
        &format!("{real}x"),
        &format!("{real}%00"),
    ] {
        let b = s.browser();
        let cookie = format!("{SESSION_COOKIE}={garbage}");
        let r = get_with_cookie(&b, &executor(LOGIN), &cookie).await;
        r.challenge("ak-stage-identification");
        let issued = r
            .cookie_value(SESSION_COOKIE)
            .unwrap_or_else(|| panic!("{garbage:?}: a fresh session is issued"));
        assert!(is_session_id(&issued), "{issued}");
        assert_ne!(issued, garbage, "a client-chosen id is never adopted");
        assert_ne!(issued, real);
        // The admin API does not see a session either.
        let r = get_with_cookie(&b, FLOWS, &cookie).await;
        assert_eq!(r.status, 403, "{garbage:?}: {}", r.text);
        let r = get_with_cookie(&b, &inspector(LOGIN), &cookie).await;
        assert_eq!(r.status, 403, "{garbage:?}");
        let r = b
            .send(
                Req::new(Method::POST, &executor(LOGIN))
                    .json(&identification("akadmin"))
                    .header("cookie", cookie.clone()),
            )
            .await;
        r.challenge("ak-stage-password");
        // With the issued cookie, the flow works.
        let b2 = s.browser();
        let r = get_with_cookie(&b2, &executor(LOGIN), &format!("{SESSION_COOKIE}={issued}")).await;
        r.challenge("ak-stage-identification");
    }
    // Several cookies, other names: the right one is used.
    let b = s.browser();
    let cookie = format!("other=1; {SESSION_COOKIE}={real}; x=y");
    assert_eq!(get_with_cookie(&b, FLOWS, &cookie).await.status, 200);
    s.finish();
}

// ---------------------------------------------------------------------------------------
// authentik's 302 on advance

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_on_advance_reproduces_authentiks_302() {
    let config = HttpConfig {
        redirect_on_advance: true,
        ..HttpConfig::default()
    };
    let s = start_with(config).await;
    let b = s.browser();
    let path = "/api/v3/flows/executor/default-authentication-flow/?query=next%3D%252Fapps";
    b.get(path).await.challenge("ak-stage-identification");

    let r = b.post(path, &identification("akadmin")).await;
    assert_eq!(r.status, 302, "{}", r.text);
    assert_eq!(r.location().as_deref(), Some(path), "to the same URL");
    assert!(r.text.is_empty());
    let r = b.get(&r.location().unwrap()).await;
    assert_eq!(r.challenge("ak-stage-password")["pending_user"], "akadmin");

    // Invalid answers are not advances: the challenge comes back directly.
    let r = b.post(path, &password("wrong")).await;
    assert_eq!(
        r.challenge("ak-stage-password")["response_errors"]["password"][0]["code"],
        "invalid"
    );
    let r = b
        .send(Req::new(Method::POST, path).raw(Some("application/json"), "{oops"))
        .await;
    r.challenge("ak-stage-flow-error");

    // The final answer is the redirect itself, with the new session cookie.
    let before = b.session();
    let r = b.post(path, &password(ADMIN_PASSWORD)).await;
    assert_eq!(r.challenge("xak-flow-redirect")["to"], "/apps");
    assert_ne!(b.session(), before);
    assert!(b.cookie(CSRF_COOKIE).is_some());

    // A logged-in advance is a 302 that carries no cookie change.
    let probe = s.install_probe_flow().await;
    b.exec(probe).await.challenge("ak-stage-prompt");
    let r = b
        .answer(
            probe,
            json!({"component": "ak-stage-prompt", "password": "x", "password_repeat": "x"}),
        )
        .await;
    assert_eq!(r.status, 302);
    assert_eq!(r.location(), Some(executor(probe)));
    assert!(r.set_cookies().is_empty());
    b.get(&r.location().unwrap())
        .await
        .challenge("ak-stage-dummy");
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_cookies_when_configured() {
    let s = start_with(HttpConfig {
        secure_cookies: true,
        ..HttpConfig::default()
    })
    .await;
    let r = s.browser().exec(LOGIN).await;
    let line = r.set_cookie(SESSION_COOKIE).unwrap();
    assert!(line.to_ascii_lowercase().contains("; secure"), "{line}");
    assert!(line.to_ascii_lowercase().contains("httponly"), "{line}");
    s.finish();
}

// ---------------------------------------------------------------------------------------
// Recorded authentik transcripts, replayed over HTTP

fn transcript(name: &str) -> Value {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/authentik-observed"
    );
    let path = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(name))
        .unwrap_or_else(|| panic!("no transcript {name}"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().filter(|k| *k != "type").cloned().collect())
        .unwrap_or_default()
}

/// Sends a transcript's request with our browser.
async fn replay_request(b: &Browser, t: &Value) -> Resp {
    let req = &t["request"];
    let method = Method::from_bytes(req["method"].as_str().unwrap().as_bytes()).unwrap();
    let path = req["path"].as_str().unwrap();
    let mut r = Req::new(method, path);
    match &req["body"] {
        Value::Null => {}
        Value::String(raw) => r = r.raw(Some("application/json"), raw.clone()),
        body => r = r.json(body),
    }
    b.send(r).await
}

/// Compares our challenge with authentik's: component, top-level keys (without our
/// legacy `type`), `flow_info`, and the given deterministic fields.
#[track_caller]
fn assert_like(ours: &Resp, theirs: &Value, same: &[&str], step: &str) {
    assert_eq!(ours.status, 200, "{step}: {}", ours.text);
    assert_eq!(ours.component(), theirs["component"], "{step}");
    assert_eq!(keys(&ours.json), keys(theirs), "{step}: {}", ours.text);
    assert_eq!(ours.json["flow_info"], theirs["flow_info"], "{step}");
    for field in same {
        assert_eq!(ours.json[*field], theirs[*field], "{step}: `{field}`");
    }
    // authentik's own answer satisfies the schema too.
    assert_eq!(
        schema().validate_challenge(theirs),
        Vec::<String>::new(),
        "{step}"
    );
}

/// Replays `steps` in order. A POST that authentik answered with its 302
/// continuation is compared, as DESIGN.md documents, with the challenge authentik's
/// client got at the end of the redirect chain; those redirect GETs are not sent.
async fn replay(b: &Browser, steps: &[&str]) -> Vec<Resp> {
    let mut ours = Vec::new();
    let mut i = 0;
    while let Some(name) = steps.get(i) {
        let t = transcript(name);
        let step = t["step"].as_str().unwrap().to_owned();
        let r = replay_request(b, &t).await;
        let mut theirs = t["response"].clone();
        if theirs["status"] == 302 {
            while steps.get(i + 1).is_some_and(|n| {
                transcript(n)["step"]
                    .as_str()
                    .unwrap()
                    .contains("-redirect")
            }) {
                i += 1;
                theirs = transcript(steps[i])["response"].clone();
            }
            assert_eq!(
                theirs["status"], 200,
                "{step}: the chain ends with a challenge"
            );
        }
        assert_like(
            &r,
            &theirs["json"],
            &["to", "user_fields", "response_errors", "pending_user"],
            &step,
        );
        ours.push(r);
        i += 1;
    }
    ours
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_login_01_to_06() {
    let s = start().await;
    let b = s.browser();
    let ours = replay(&b, &["01-", "02-", "03-", "04-", "05-", "06-"]).await;
    assert_eq!(ours.len(), 3, "GET, POST identification, POST password");
    // authentik's login ends with a new session cookie and the CSRF cookie (06).
    let last = &ours[2];
    assert!(last.set_cookie(SESSION_COOKIE).is_some());
    assert!(last.set_cookie(CSRF_COOKIE).is_some());
    let theirs: Vec<String> = transcript("06-")["response"]["set_cookie_raw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().split('=').next().unwrap().to_owned())
        .collect();
    assert!(
        theirs.contains(&"authentik_session".to_owned())
            && theirs.contains(&CSRF_COOKIE.to_owned())
    );
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_bad_json_19_to_22() {
    let s = start().await;
    let b = s.browser();
    let ours = replay(&b, &["19-", "20-", "21-", "22-"]).await;
    // The flow error carries a fresh request id each time.
    let theirs = transcript("20-");
    assert_ne!(
        ours[1].json["request_id"],
        theirs["response"]["json"]["request_id"]
    );
    assert_eq!(
        ours[1].json["request_id"].as_str().unwrap().len(),
        theirs["response"]["json"]["request_id"]
            .as_str()
            .unwrap()
            .len()
    );
    // Still at identification; the session goes on.
    b.answer(LOGIN, identification("akadmin"))
        .await
        .challenge("ak-stage-password");
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_anonymous_inspector_29_30() {
    let s = start().await;
    let b = s.browser();
    replay(&b, &["29-"]).await;
    let t = transcript("30-");
    let r = replay_request(&b, &t).await;
    // authentik answers 404 (HTML) to an anonymous inspector request; authflow
    // answers 403 JSON (permission denied), which its clients can parse.
    assert_eq!(t["response"]["status"], 404);
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"detail": "You do not have permission to perform this action.", "code": "permission_denied"})
    );
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_unknown_flow_31() {
    let s = start().await;
    let b = s.browser();
    let t = transcript("31-");
    let r = replay_request(&b, &t).await;
    // authentik: 404 with an HTML page; authflow: 404 JSON.
    assert_eq!(t["response"]["status"], 404);
    assert_eq!(r.status, 404);
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(r.json, json!({"detail": "Not found.", "code": "not_found"}));
    assert!(
        r.set_cookie(SESSION_COOKIE).is_none(),
        "no session for unknown flows"
    );
    s.finish();
}

// ---------------------------------------------------------------------------------------
// The validator itself

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recorded_challenge_is_validated() {
    let s = start().await;
    let b = s.browser();
    b.login("akadmin", ADMIN_PASSWORD).await;
    b.exec(defaults::INVALIDATION).await;
    let recorded = s.recorded();
    let executor_200 = recorded
        .iter()
        .filter(|r| r.path.starts_with("/api/v3/flows/executor/") && r.status == 200)
        .count();
    assert_eq!(executor_200, 4);
    let report = s.finish();
    assert_eq!(report.responses, recorded.len());
    assert_eq!(report.challenges, executor_200, "each challenge validated");
    // Nothing is validated twice; new responses are.
    assert_eq!(s.finish().responses, 0);
    b.exec(LOGIN).await;
    assert_eq!(s.finish().challenges, 1);
}

#[test]
fn validator_accepts_authentiks_own_challenges() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/authentik-observed"
    );
    let mut checked = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let t: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let path = t["request"]["path"].as_str().unwrap();
        let json = &t["response"]["json"];
        if path.starts_with("/api/v3/flows/executor/") && t["response"]["status"] == 200 {
            assert_eq!(
                schema().validate_challenge(json),
                Vec::<String>::new(),
                "{}",
                t["step"]
            );
            checked.insert(json["component"].as_str().unwrap().to_owned());
        }
    }
    for c in [
        "ak-stage-identification",
        "ak-stage-password",
        "xak-flow-redirect",
        "ak-stage-flow-error",
    ] {
        assert!(checked.contains(c), "{c} among {checked:?}");
    }
}

#[test]
fn validator_rejects_broken_challenges() {
    let ident = transcript("21-")["response"]["json"].clone();
    let pw = transcript("03-")["response"]["json"].clone();
    let mut ours = pw.clone();
    ours["type"] = json!("native");
    assert!(schema().validate_challenge(&ident).is_empty());
    assert!(schema().validate_challenge(&pw).is_empty());
    assert!(schema().validate_ours(&ours).is_empty());
    assert_eq!(
        schema().challenge_schema_name("ak-stage-password"),
        Some("PasswordChallenge")
    );

    type Break = fn(&mut Value);
    let broken: Vec<(&str, Value, Break)> = vec![
        ("missing required", pw.clone(), |v| {
            v.as_object_mut().unwrap().remove("pending_user");
        }),
        ("wrong type", ident.clone(), |v| {
            v["password_fields"] = json!("no")
        }),
        ("integer for string", pw.clone(), |v| {
            v["pending_user"] = json!(7)
        }),
        ("null where not nullable", pw.clone(), |v| {
            v["pending_user_avatar"] = Value::Null
        }),
        ("bad nested enum", ident.clone(), |v| {
            v["flow_info"]["layout"] = json!("diagonal")
        }),
        ("bad top-level enum", ident.clone(), |v| {
            v["flow_designation"] = json!("nonsense");
        }),
        ("nested required", ident.clone(), |v| {
            v["flow_info"].as_object_mut().unwrap().remove("cancel_url");
        }),
        ("ErrorDetail without code", ident.clone(), |v| {
            v["response_errors"]["uid_field"][0]
                .as_object_mut()
                .unwrap()
                .remove("code");
        }),
        ("response_errors not a list", ident.clone(), |v| {
            v["response_errors"]["uid_field"] = json!("required");
        }),
        ("array item type", ident.clone(), |v| {
            v["user_fields"] = json!(["email", 3])
        }),
        ("unknown component", pw.clone(), |v| {
            v["component"] = json!("ak-stage-nope")
        }),
        ("no component", pw.clone(), |v| {
            v.as_object_mut().unwrap().remove("component");
        }),
        ("undeclared property", pw.clone(), |v| {
            v["surprise"] = json!(1)
        }),
        ("undeclared nested property", pw.clone(), |v| {
            v["flow_info"]["surprise"] = json!(1);
        }),
        ("themed urls wrong type", pw.clone(), |v| {
            v["flow_info"]["background_themed_urls"] = json!({"light": 5});
        }),
        ("not an object", pw.clone(), |v| {
            *v = json!(["ak-stage-password"])
        }),
    ];
    for (what, mut v, break_it) in broken {
        break_it(&mut v);
        let errs = schema().validate_challenge(&v);
        assert!(!errs.is_empty(), "{what}: the validator accepted {v}");
    }
    // Nullable where the schema says so: accepted.
    let mut v = ident.clone();
    v["captcha_stage"] = Value::Null;
    v["user_fields"] = Value::Null;
    v["flow_info"]["background_themed_urls"] = Value::Null;
    assert!(schema().validate_challenge(&v).is_empty());
    // Our legacy `type` must match the component.
    let mut v = ours.clone();
    v["type"] = json!("redirect");
    assert!(!schema().validate_ours(&v).is_empty());
    v.as_object_mut().unwrap().remove("type");
    assert!(!schema().validate_ours(&v).is_empty());

    // The exchange checks fail on what they must refuse.
    let resp = |status: u16, ctype: &str, body: &str, path: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("content-type", ctype.parse().unwrap());
        Resp {
            method: "GET".into(),
            path: path.into(),
            status,
            headers,
            text: body.into(),
            json: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    };
    let exec = "/api/v3/flows/executor/x/?query=";
    assert!(
        check_exchange(&resp(
            500,
            "application/json",
            r#"{"detail":"x","code":"y"}"#,
            exec
        ))
        .1
        .len()
            == 1
    );
    assert!(
        !check_exchange(&resp(404, "text/html", "<html>", exec))
            .1
            .is_empty()
    );
    assert!(
        !check_exchange(&resp(400, "application/json", r#"{"detail":"x"}"#, exec))
            .1
            .is_empty()
    );
    assert!(
        !check_exchange(&resp(
            400,
            "application/json",
            r#"{"slug":"x","code":"invalid"}"#,
            exec
        ))
        .1
        .is_empty()
    );
    assert!(
        !check_exchange(&resp(302, "text/html", "", exec))
            .1
            .is_empty()
    );
    assert!(
        !check_exchange(&resp(200, "application/json", &pw.to_string(), exec))
            .1
            .is_empty(),
        "no legacy type"
    );
    let (validated, errs) = check_exchange(&resp(200, "application/json", &ours.to_string(), exec));
    assert!(validated && errs.is_empty(), "{errs:?}");
    assert!(
        check_exchange(&resp(
            404,
            "application/json",
            r#"{"detail":"Not found.","code":"not_found"}"#,
            exec
        ))
        .1
        .is_empty()
    );
}

/// The Lax session cookie accompanies cross-site top-level navigations: a link on
/// another site to the unenrollment flow's executor URL must not delete the visitor's
/// account. Browsers mark such requests `Sec-Fetch-Site: cross-site`; they are refused
/// (403 JSON) and change nothing, while same-origin requests work (a GET asks for
/// confirmation, see `tests/side_effects.rs`, and the confirming POST deletes).
#[tokio::test]
async fn cross_site_navigation_to_the_executor_is_refused() {
    let s = start().await;
    s.create_user("victim", "Victim-Pw-12345").await;
    let b = s.login("victim", "Victim-Pw-12345").await;
    let path = executor(defaults::UNENROLLMENT);
    for method in [Method::GET, Method::POST] {
        let mut req = Req::new(method, &path).header("sec-fetch-site", "cross-site");
        if req.method == Method::POST {
            req = req.json(&json!({}));
        }
        let r = b.send(req).await;
        assert_eq!(r.status, 403, "cross-site request refused");
    }
    let still_there = s
        .stores
        .users
        .find_user(UserField::Username, "victim", false)
        .await
        .unwrap();
    assert!(
        still_there.is_some(),
        "the account survived the cross-site request"
    );
    assert!(
        s.session(&b.session()).await.unwrap().user.is_some(),
        "still logged in"
    );

    // The same requests from the flow's own page (same origin) work: the GET asks
    // for confirmation, the confirming POST deletes.
    let r = b
        .send(Req::new(Method::GET, &path).header("sec-fetch-site", "same-origin"))
        .await;
    let token = r.challenge("ak-stage-consent")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = b
        .send(
            Req::new(Method::POST, &path)
                .json(&json!({"component": "ak-stage-consent", "token": token}))
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert_eq!(r.component(), "xak-flow-redirect");
    let gone = s
        .stores
        .users
        .find_user(UserField::Username, "victim", false)
        .await
        .unwrap();
    assert!(
        gone.is_none(),
        "same-origin unenrollment deletes the account"
    );
    s.finish();
}

// Issue 8 §6: links from the configured external URL; `https://` turns on `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_link_follows_the_external_url_and_https_makes_cookies_secure() {
    let config = HttpConfig::default()
        .with_external_url("https://auth.example.com/")
        .expect("a valid external URL");
    let s = start_with(config).await;
    let token = s.tokens.create(s.admin.pk.clone());
    let slug = defaults::PASSWORD_CHANGE;
    let b = s.browser();
    let r = b
        .send(
            Req::new(Method::GET, &format!("{FLOWS}{slug}/execute/"))
                .bearer(&token)
                .header("host", "evil.example"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"link": format!("https://auth.example.com/if/flow/{slug}/")})
    );
    let line = r.set_cookie(SESSION_COOKIE).expect("a session cookie");
    assert!(line.contains("; Secure"), "{line}");
    for bad in [
        "auth.example.com",
        "ftp://x",
        "https://x/path",
        "https://u:p@x",
        "https://",
    ] {
        assert!(
            HttpConfig::default().with_external_url(bad).is_err(),
            "{bad} accepted"
        );
    }
    s.finish();
}

// Issue 8 §6: per-session answers are never cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_inspector_and_api_answers_are_not_cached() {
    let s = start().await;
    let b = s.browser();
    for path in [
        executor(defaults::AUTHENTICATION),
        inspector(defaults::AUTHENTICATION),
        FLOWS.to_owned(),
        "/api/v3/no-such-route/".to_owned(),
    ] {
        let r = b.get(&path).await;
        assert_eq!(
            r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{path}: {}",
            r.status
        );
    }
    s.finish();
}

// Issue 8 §6: a body far over the limit is answered 413, and the client (still
// sending) reads it instead of seeing the connection reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_its_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start().await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let body = vec![b'a'; 8 * 1024 * 1024];
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        executor(defaults::AUTHENTICATION),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&body)
        .await
        .expect("the whole body is accepted");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf)).await
        {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
            Ok(Err(e)) => panic!("read failed after {} bytes: {e}", answer.len()),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Login throttling (issue 8 part 2)

/// One wrong-password attempt for `uid` from `b`, starting a new plan when the last one
/// was denied. Returns the password stage's answer (its errors, or the denial message).
async fn guess(b: &Browser, uid: &str, pw: &str) -> Value {
    let r = b.exec(LOGIN).await;
    if r.json["component"] == "ak-stage-identification"
        || r.json["component"] == "ak-stage-access-denied"
    {
        if r.json["component"] == "ak-stage-access-denied" {
            // The last plan was denied: a fresh GET plans anew.
            b.exec(LOGIN).await.challenge("ak-stage-identification");
        }
        b.answer(LOGIN, identification(uid))
            .await
            .challenge("ak-stage-password");
    }
    let r = b.answer(LOGIN, password(pw)).await;
    json!({
        "component": r.json["component"],
        "errors": r.json["response_errors"],
        "message": r.json["error_message"],
    })
}

fn refused(answer: &Value) -> bool {
    answer.to_string().contains("Too many failed attempts")
}

/// 60 wrong passwords from one IP (over many plans and fresh sessions): past the
/// threshold the checks are refused without evaluating the password — the right
/// password is refused too from that IP — while another IP logs in normally. An
/// unknown identifier gets exactly the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_throttled_per_ip_and_identifier() {
    let s = start().await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    // One session each, re-planning after every denial (the per-plan limit of 5).
    let bk = s.browser_from("127.0.0.2");
    let bu = s.browser_from("127.0.0.2");
    for i in 0..60 {
        known.push(guess(&bk, "akadmin", &format!("wrong-{i}")).await);
        unknown.push(guess(&bu, "no-such-user", &format!("wrong-{i}")).await);
    }
    // Then fresh sessions (no cookies) each time: still refused.
    for i in 0..10 {
        let b = s.browser_from("127.0.0.2");
        known.push(guess(&b, "akadmin", &format!("fresh-{i}")).await);
        let b = s.browser_from("127.0.0.2");
        unknown.push(guess(&b, "no-such-user", &format!("fresh-{i}")).await);
    }
    assert_eq!(known, unknown, "no account-existence signal");
    let first_refused = known
        .iter()
        .position(refused)
        .expect("throttled at some point");
    assert_eq!(first_refused, 10, "{:?}", known.get(..12));
    assert!(known[first_refused..].iter().all(refused), "{known:?}");

    // The right password from the throttled IP: refused, not logged in.
    let b = s.browser_from("127.0.0.2");
    let answer = guess(&b, "akadmin", ADMIN_PASSWORD).await;
    assert!(refused(&answer), "{answer}");
    assert!(b.cookie(CSRF_COOKIE).is_none(), "not logged in");

    // From another IP the owner logs in.
    s.browser_from("127.0.0.3")
        .login("akadmin", ADMIN_PASSWORD)
        .await;
    s.finish();
}

/// The throttle's counters decay: after the window (engine clock) the right password
/// works again from the same IP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_throttle_decays_after_the_window() {
    use authflow::clock::ManualClock;
    const WINDOW: u64 = 15 * 60; // ThrottleConfig::default().window
    let clock = Arc::new(ManualClock::new(1_000_000));
    let c = clock.clone();
    let s = support::start_custom(HttpConfig::default(), move |b| b.clock(c)).await;
    let b = s.browser_from("127.0.0.4");
    for i in 0..10 {
        assert!(!refused(&guess(&b, "akadmin", &format!("wrong-{i}")).await));
    }
    let answer = guess(&b, "akadmin", ADMIN_PASSWORD).await;
    assert!(refused(&answer), "{answer}");
    assert!(
        answer.to_string().contains("Try again in 15 minutes"),
        "{answer}"
    );
    clock.advance(WINDOW - 60);
    let answer = guess(&b, "akadmin", ADMIN_PASSWORD).await;
    assert!(
        answer.to_string().contains("Try again in 1 minute."),
        "{answer}"
    );
    clock.advance(60);
    let answer = guess(&b, "akadmin", ADMIN_PASSWORD).await;
    assert_eq!(answer["component"], "xak-flow-redirect", "{answer}");
    s.finish();
}

/// A request whose client IP the host does not know counts under one shared bucket
/// (fail closed) rather than escaping the throttle.
#[tokio::test]
async fn unknown_client_ip_is_throttled_as_one_bucket() {
    let stores = authflow::memory::Stores::new();
    let engine = stores.engine().build();
    defaults::install(stores.flows.as_ref()).await.unwrap();
    defaults::bootstrap_admin(stores.users.as_ref(), ADMIN_PASSWORD.into())
        .await
        .unwrap();
    let attempt = |pw: &'static str| {
        let engine = &engine;
        async move {
            // A new session each time, and no client IP.
            let req = authflow::FlowRequest::default();
            let out = engine.plan(&req, LOGIN).await.unwrap();
            let req = authflow::FlowRequest::new(Some(out.session_id), "");
            engine
                .step(&req, LOGIN, &identification("akadmin"))
                .await
                .unwrap();
            let out = engine.step(&req, LOGIN, &password(pw)).await.unwrap();
            out.challenge.to_json()
        }
    };
    for i in 0..10 {
        let v = attempt(if i % 2 == 0 { "wrong-a" } else { "wrong-b" }).await;
        assert!(!refused(&v), "attempt {i}: {v}");
    }
    let v = attempt("wrong-c").await;
    assert!(refused(&v), "{v}");
    let v = attempt(ADMIN_PASSWORD).await;
    assert!(refused(&v), "{v}");
}

/// Enrollment with an email that is already someone's identifier (here akadmin's
/// username in another case, and a case variant of an existing email) answers a field
/// error on the prompt — never a 5xx, never a new account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_with_a_taken_email_is_a_field_error() {
    let s = start().await;
    s.stores
        .users
        .create_user(
            authflow::store::NewUser::new("carol")
                .email("carol@corp.example")
                .password("Carol-Pw-12345"),
        )
        .await
        .unwrap();
    let before = s.stores.users.len();
    let slug = defaults::ENROLLMENT;
    for (i, email) in ["CAROL@corp.example", "Carol@Corp.Example"]
        .into_iter()
        .enumerate()
    {
        let b = s.browser();
        b.exec(slug).await.challenge("ak-stage-prompt");
        b.answer(
            slug,
            json!({"component": "ak-stage-prompt", "username": format!("mallory{i}"),
                   "password": "Mallory-Pw-1", "password_repeat": "Mallory-Pw-1"}),
        )
        .await
        .challenge("ak-stage-prompt");
        let r = b
            .answer(
                slug,
                json!({"component": "ak-stage-prompt", "name": "M", "email": email}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.challenge("ak-stage-prompt");
        assert_eq!(
            r.errors().get("email"),
            Some(&vec!["Email address is already in use.".to_owned()]),
            "{}",
            r.text
        );
    }
    assert_eq!(s.stores.users.len(), before, "no account created");
    s.finish();
}

// ---------------------------------------------------------------------------------------
// Memory bounds of anonymous traffic

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_query_is_refused_with_json_and_nothing_stored() {
    let s = start().await;
    let b = s.browser();
    let long = "a".repeat(authflow::http::DEFAULT_QUERY_LIMIT + 1);
    let path = format!("/api/v3/flows/executor/{LOGIN}/?query=next%3D%2F{long}");
    let r = b.get(&path).await;
    assert_eq!(r.status, 414, "{}", r.text);
    assert_eq!(r.json["code"], "query_too_long", "{}", r.text);
    let r = b
        .post(
            &path,
            &json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
        )
        .await;
    assert_eq!(r.status, 414, "{}", r.text);
    assert!(r.json["detail"].is_string());
    assert_eq!(s.stores.sessions.len(), 0, "nothing stored");
    // Up to the limit is fine.
    let ok = "a".repeat(authflow::http::DEFAULT_QUERY_LIMIT - 8);
    let r = b
        .get(&format!(
            "/api/v3/flows/executor/{LOGIN}/?query=next%3D{ok}"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookieless_gets_store_nothing_and_the_flow_continues_with_the_same_id() {
    let s = start().await;
    for _ in 0..50 {
        let b = s.browser();
        b.exec(LOGIN).await.challenge("ak-stage-identification");
        assert!(
            b.cookie(SESSION_COOKIE).is_some(),
            "a session cookie is issued"
        );
    }
    assert_eq!(
        s.stores.sessions.len(),
        0,
        "an anonymous GET whose plan the request reproduces stores nothing"
    );
    // The flow goes on from the unstored id: identification stores it, unchanged.
    let b = s.browser();
    b.exec(LOGIN).await.challenge("ak-stage-identification");
    let id = b.session();
    b.answer(
        LOGIN,
        json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
    )
    .await
    .challenge("ak-stage-password");
    assert_eq!(b.session(), id, "no rotation before login");
    assert!(
        s.session(&id).await.is_some(),
        "stored once it carries state"
    );
    assert_eq!(s.stores.sessions.len(), 1);
    b.answer(
        LOGIN,
        json!({"component": "ak-stage-password", "password": ADMIN_PASSWORD}),
    )
    .await
    .challenge("xak-flow-redirect");
    assert_ne!(b.session(), id, "rotated at login");
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_session_id_is_still_never_adopted() {
    let s = start().await;
    let b = s.browser();
    let made_up = "0123456789abcdef".repeat(4);
    let path = executor(LOGIN);
    let r = b
        .send(Req::new(Method::GET, &path).header("cookie", format!("{SESSION_COOKIE}={made_up}")))
        .await;
    assert_eq!(r.status, 200);
    let issued = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(SESSION_COOKIE))
        .map(str::to_owned)
        .expect("a fresh id is issued");
    assert!(!issued.contains(&made_up), "{issued}");
    s.finish();
}

// ---------------------------------------------------------------------------------------
// The current user

// authentik/core/api/users.py `UserViewSet.me`: `{"user": SessionUserSerializer(…)}` for
// the session's (or the token's) user; without credentials DRF's 403 "Authentication
// credentials were not provided.". Recorded: reference/authentik-observed/08-me-after-login.json.
#[tokio::test]
async fn users_me() {
    const ME: &str = "/api/v3/core/users/me/";
    let s = start().await;
    let anon = s.browser();
    let r = anon.get(ME).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        r.json["detail"],
        "Authentication credentials were not provided."
    );

    let admin = s.login("akadmin", ADMIN_PASSWORD).await;
    let r = admin.get(ME).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let user = &r.json["user"];
    let keys: BTreeSet<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // The recorded answer's fields, exactly.
    assert_eq!(
        keys,
        BTreeSet::from([
            "pk",
            "username",
            "name",
            "is_active",
            "is_superuser",
            "groups",
            "email",
            "avatar",
            "uid",
            "settings",
            "type",
            "system_permissions",
        ])
    );
    assert_eq!(user["pk"], s.admin.pk.to_string());
    assert_eq!(user["username"], "akadmin");
    assert_eq!(user["is_active"], true);
    assert_eq!(user["is_superuser"], true);
    assert_eq!(user["type"], "internal");
    assert_eq!(user["settings"], json!({}));
    assert!(
        user["avatar"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );
    assert_eq!(user["uid"].as_str().unwrap().len(), 64);
    let groups = user["groups"].as_array().unwrap();
    assert!(!groups.is_empty(), "{user}");
    for g in groups {
        assert!(g["name"].is_string() && g["pk"].is_string(), "{g}");
    }
    assert!(user["system_permissions"].is_array());

    // A bearer token answers the same user.
    let token = s.tokens.create(s.admin.pk.clone());
    let r = s
        .browser()
        .send(Req::new(reqwest::Method::GET, ME).bearer(&token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["user"]["username"], "akadmin");
    s.finish();
}

// authentik/flows/views/executor.py `ConfigureFlowInitView.get`: the stage must have a
// `configure_flow` (else 404); it is planned with `pending_user` = the logged-in user
// (not applicable: 404) and the browser redirected into it; the view needs a login.
#[tokio::test]
async fn configure_flow() {
    use authflow::model::{PasswordStage, Stage};
    use authflow::store::FlowAdmin;
    let s = start().await;
    let flows = s.stores.flows.clone();
    let with = Stage::new(
        "pw-configurable",
        PasswordStage {
            configure_flow: Some(defaults::PASSWORD_CHANGE.into()),
            ..PasswordStage::default()
        },
    );
    let without = Stage::new("pw-plain", PasswordStage::default());
    let flow = authflow::model::Flow::new(
        "configure-probe",
        "configure-probe",
        authflow::model::FlowDesignation::Authentication,
    );
    flows.put_flow(flow.clone()).await.unwrap();
    for (i, stage) in [&with, &without].into_iter().enumerate() {
        flows.put_stage(stage.clone()).await.unwrap();
        flows
            .put_binding(authflow::model::FlowStageBinding::new(
                flow.pk, stage.pk, i as i32,
            ))
            .await
            .unwrap();
    }
    let anonymous = s
        .browser()
        .get(&format!("/flows/-/configure/{}/", with.pk))
        .await;
    assert_eq!(anonymous.status, 302);
    assert_eq!(
        anonymous.location().as_deref(),
        Some(
            format!(
                "/flows/-/default/authentication/?next=/flows/-/configure/{}/",
                with.pk
            )
            .as_str()
        )
    );
    let b = s.login("akadmin", ADMIN_PASSWORD).await;
    let r = b.get(&format!("/flows/-/configure/{}/", with.pk)).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location().as_deref(),
        Some(format!("/if/flow/{}/", defaults::PASSWORD_CHANGE).as_str())
    );
    let r = b.get(&format!("/flows/-/configure/{}/", without.pk)).await;
    assert_eq!(r.status, 404);
    let r = b
        .get(&format!("/flows/-/configure/{}/", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(r.status, 404);
    s.finish();
}
