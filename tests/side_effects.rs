#![cfg(feature = "http")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! No side effect without a deliberate request (DESIGN §4 item 6), over real HTTP.
//!
//! A page on another site can make the visitor's browser GET any URL with the `Lax`
//! session cookie (top-level navigation), and older browsers send no `Sec-Fetch-*`
//! headers, so a GET must never delete, log out, log in or write. Side-effect stages
//! answer an `ak-stage-consent` confirmation first; only a CSRF-protected POST echoing
//! its token runs them. Every response is validated against authentik's OpenAPI schema
//! when the server is finished (`support::Server::finish`).

#[path = "common/http.rs"]
mod support;

use authflow::defaults;
use authflow::http::{CSRF_COOKIE, SESSION_COOKIE};
use authflow::model::UserField;
use authflow::store::UserDirectory;
use reqwest::Method;
use serde_json::{Value, json};
use support::{ADMIN_PASSWORD, Csrf, Req, Server, executor, inspector, start};

async fn exists(s: &Server, username: &str) -> bool {
    s.stores
        .users
        .find_user(UserField::Username, username, false)
        .await
        .unwrap()
        .is_some()
}

fn consent(token: &str) -> Value {
    json!({"component": "ak-stage-consent", "token": token})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unenrollment_asks_before_deleting() {
    let s = start().await;
    s.create_user("victim", "Victim-Pw-12345").await;
    let b = s.login("victim", "Victim-Pw-12345").await;
    let logged_in = b.session();
    let slug = defaults::UNENROLLMENT;

    // A plain top-level GET with the cookie and no Sec-Fetch headers (an older
    // browser following a link on another site): the account stays.
    let r = b.exec(slug).await;
    let c = r.challenge("ak-stage-consent");
    assert_eq!(c["header_text"], "Delete your account?");
    assert_eq!(c["permissions"], json!([]));
    assert_eq!(c["additional_permissions"], json!([]));
    let token = c["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32, "a random token: {token}");
    assert!(exists(&s, "victim").await, "a GET deletes nothing");
    // Asking again shows the same pending confirmation.
    assert_eq!(
        b.exec(slug).await.challenge("ak-stage-consent")["token"],
        token.as_str()
    );

    // A POST without the CSRF header is refused.
    let r = b
        .send(
            Req::new(Method::POST, &executor(slug))
                .json(&consent(&token))
                .csrf(Csrf::Omit),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(exists(&s, "victim").await);

    // A wrong or missing token shows the confirmation again with an error.
    for body in [
        consent("0123456789abcdef0123456789abcdef"),
        json!({"component": "ak-stage-consent"}),
        json!({"component": "ak-stage-consent", "token": 5}),
    ] {
        let r = b.answer(slug, body.clone()).await;
        r.challenge("ak-stage-consent");
        assert!(
            r.errors()
                .get("non_field_errors")
                .is_some_and(|e| !e.is_empty()),
            "{body}: {}",
            r.text
        );
        assert!(exists(&s, "victim").await, "{body}");
    }
    // A response addressed to another stage is no confirmation either.
    let r = b
        .answer(slug, json!({"component": "ak-stage-dummy", "token": token}))
        .await;
    r.challenge("ak-stage-consent");
    assert!(!r.errors().is_empty());
    assert!(exists(&s, "victim").await);
    assert_eq!(b.session(), logged_in, "still the same login");

    // The right token: deleted and logged out.
    let r = b.answer(slug, consent(&token)).await;
    assert_eq!(r.challenge("xak-flow-redirect")["to"], "/");
    assert!(
        !exists(&s, "victim").await,
        "confirmed: the account is gone"
    );
    assert!(r.set_cookie(SESSION_COOKIE).is_some(), "new session cookie");
    assert_ne!(b.session(), logged_in);
    assert!(s.session(&logged_in).await.is_none());
    assert!(b.cookie(CSRF_COOKIE).is_none());
    assert!(exists(&s, "akadmin").await, "the admin is untouched");
    s.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_asks_before_logging_out() {
    let s = start().await;
    let b = s.login("akadmin", ADMIN_PASSWORD).await;
    let logged_in = b.session();
    let slug = defaults::INVALIDATION;

    let r = b.exec(slug).await;
    let c = r.challenge("ak-stage-consent");
    assert_eq!(c["header_text"], "Log out?");
    let token = c["token"].as_str().unwrap().to_owned();
    assert!(r.set_cookie(SESSION_COOKIE).is_none());
    assert_eq!(b.session(), logged_in);
    assert!(
        s.session(&logged_in).await.unwrap().user.is_some(),
        "a GET keeps the login"
    );
    // The pending token is a secret: the inspector shows it redacted.
    let i = b.get(&inspector(slug)).await;
    assert_eq!(i.status, 200, "{}", i.text);
    assert!(!i.text.contains(&token), "{}", i.text);
    assert_eq!(
        i.json["current_plan"]["plan_context"]["confirmation_token"], "********",
        "{}",
        i.text
    );

    let r = b
        .send(
            Req::new(Method::POST, &executor(slug))
                .json(&consent(&token))
                .csrf(Csrf::Omit),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = b.answer(slug, consent("wrong")).await;
    r.challenge("ak-stage-consent");
    assert!(!r.errors().is_empty());
    assert!(s.session(&logged_in).await.unwrap().user.is_some());

    let r = b.answer(slug, consent(&token)).await;
    assert_eq!(r.challenge("xak-flow-redirect")["to"], "/");
    assert_ne!(b.session(), logged_in, "logout rotates the session");
    assert!(s.session(&logged_in).await.is_none());
    assert!(s.session(&b.session()).await.unwrap().user.is_none());
    s.finish();
}

/// `/flows/-/cancel/` → `/flows/-/default/invalidation/` → the flow page → the page's
/// own same-origin GET of the executor: a link on another site must not log out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cancel_chain_does_not_log_out() {
    let s = start().await;
    let b = s.login("akadmin", ADMIN_PASSWORD).await;
    let logged_in = b.session();
    let mut path = "/flows/-/cancel/".to_owned();
    for _ in 0..5 {
        let r = b.get(&path).await;
        if r.status != 302 {
            break;
        }
        path = r.location().unwrap();
    }
    assert_eq!(path, "/if/flow/default-invalidation-flow/");
    let r = b
        .send(
            Req::new(Method::GET, &executor(defaults::INVALIDATION))
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    r.challenge("ak-stage-consent");
    assert_eq!(b.session(), logged_in);
    assert!(
        s.session(&logged_in).await.unwrap().user.is_some(),
        "still logged in"
    );
    s.finish();
}

/// A POST that another stage accepted is the deliberate request: the password POST
/// logs in without a confirmation (the default login flow is unchanged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_post_logs_in_directly() {
    let s = start().await;
    let b = s.browser();
    b.login("akadmin", ADMIN_PASSWORD).await;
    assert!(s.session(&b.session()).await.unwrap().user.is_some());
    s.finish();
}

/// Login CSRF from browsers without `Sec-Fetch-Site`: a POST whose `Origin` is another
/// site is refused; the same origin, or no `Origin` (non-browser clients), is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_from_another_origin_is_refused() {
    let s = start().await;
    let b = s.browser();
    let slug = defaults::AUTHENTICATION;
    b.exec(slug).await.challenge("ak-stage-identification");
    let body = json!({"component": "ak-stage-identification", "uid_field": "akadmin"});
    for origin in ["http://evil.example", "null", &format!("{}.evil", b.base)] {
        let r = b
            .send(
                Req::new(Method::POST, &executor(slug))
                    .json(&body)
                    .header("origin", origin),
            )
            .await;
        assert_eq!(r.status, 403, "{origin}");
    }
    let r = b
        .send(
            Req::new(Method::POST, &executor(slug))
                .json(&body)
                .header("origin", b.base.clone()),
        )
        .await;
    r.challenge("ak-stage-password");
    s.finish();
}

/// The page does not start a flow by itself when another site navigated to it, and
/// its CSP allows only its own inline script and style (per-response nonce).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_waits_for_a_click_after_a_cross_site_navigation() {
    let s = start().await;
    let b = s.browser();
    let path = "/if/flow/default-unenrollment-flow/";
    let same = b.get(path).await;
    assert_eq!(same.status, 200);
    let cross = b
        .send(Req::new(Method::GET, path).header("sec-fetch-site", "cross-site"))
        .await;
    assert_eq!(cross.status, 200);
    assert!(
        same.text.contains(r#"data-autostart="true""#),
        "{}",
        same.text
    );
    assert!(
        cross.text.contains(r#"data-autostart="false""#),
        "{}",
        cross.text
    );

    let mut nonces = Vec::new();
    for r in [&same, &cross] {
        let csp = r.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|t| t.split('\'').next())
            .unwrap_or_else(|| panic!("a nonce in {csp}"))
            .to_owned();
        assert!(nonce.len() >= 22, "{nonce}");
        assert_eq!(csp.matches(&format!("'nonce-{nonce}'")).count(), 2, "{csp}");
        assert!(r.text.contains(&format!(r#"<script nonce="{nonce}">"#)));
        assert!(r.text.contains(&format!(r#"<style nonce="{nonce}">"#)));
        assert_eq!(r.text.matches("<script").count(), 1);
        assert_eq!(r.text.matches("<style").count(), 1);
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a fresh nonce per response");
    s.finish();
}

/// A link on another site to `/flows/-/cancel/` does not drop the visitor's flow in
/// progress; the same navigation made on this site does (authentik's cancel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_cancel_keeps_the_flow_in_progress() {
    let s = start().await;
    let b = s.browser();
    b.exec(defaults::AUTHENTICATION).await;
    let r = b
        .answer(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
        )
        .await;
    r.challenge("ak-stage-password");
    let id = b.session();
    let r = b
        .send(
            Req::new(Method::GET, "/flows/-/cancel/?next=%2F")
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_eq!(r.status, 302);
    assert!(
        s.flow_state(&id, defaults::AUTHENTICATION)
            .await
            .is_some_and(|f| !f["plan"].is_null()),
        "the plan survived the cross-site cancel"
    );
    b.exec(defaults::AUTHENTICATION)
        .await
        .challenge("ak-stage-password");
    let r = b
        .send(
            Req::new(Method::GET, "/flows/-/cancel/?next=%2F")
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert_eq!(r.status, 302);
    b.exec(defaults::AUTHENTICATION)
        .await
        .challenge("ak-stage-identification");
    s.finish();
}
