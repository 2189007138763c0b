#![cfg(feature = "http")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The browser page `/if/flow/{slug}/`: what the server fills into it and the
//! Content-Security-Policy it is served with. (How it renders each challenge is
//! checked in Chromium by e2e/page-stages.mjs; its QR encoder by e2e/qr-check.mjs.)

#[path = "common/http.rs"]
mod support;

use std::sync::Arc;

use authflow::captcha::{CaptchaError, CaptchaVerifier, SiteverifyRequest};
use authflow::model::{CaptchaStage, DummyStage, FlowDesignation};
use authflow::{FlowBuilder, defaults};
use serde_json::json;

/// The nonce of the page's policy.
fn nonce(csp: &str) -> String {
    let start = csp.find("'nonce-").expect("a nonce") + "'nonce-".len();
    csp[start..].split('\'').next().unwrap().to_owned()
}

/// The policy without any other origin.
fn baseline(csp: &str) -> String {
    let n = nonce(csp);
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{n}'; style-src 'self' 'nonce-{n}'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

fn csp(r: &support::Resp) -> String {
    r.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_page_is_filled_in_and_keeps_its_policy() {
    let s = support::start().await;
    let b = s.browser();
    let r = b
        .get(&format!("/if/flow/{}/", defaults::AUTHENTICATION))
        .await;
    assert_eq!(r.status, 200);
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    let n = nonce(csp);
    assert_eq!(
        csp,
        format!(
            "default-src 'self'; script-src 'self' 'nonce-{n}'; style-src 'self' 'nonce-{n}'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "without a captcha stage the page admits no other origin"
    );
    assert!(!r.text.contains("{{"), "a placeholder is left in the page");
    assert!(r.text.contains("data-script-origins=\"\""));
    // The one script (the QR encoder, then the page's own) and the style run under the
    // nonce; there is no inline handler attribute.
    assert_eq!(r.text.matches(&format!("nonce=\"{n}\"")).count(), 2);
    assert_eq!(r.text.matches("<script").count(), 1);
    assert!(r.text.contains("const authflowQr ="));
    for handler in [
        "onclick=",
        "onload=",
        "onerror=",
        "onsubmit=",
        "javascript:",
    ] {
        assert!(!r.text.contains(handler), "{handler} in the page");
    }
    // Each response has its own nonce.
    let again = b
        .get(&format!("/if/flow/{}/", defaults::AUTHENTICATION))
        .await;
    let csp2 = again.headers["content-security-policy"].to_str().unwrap();
    assert_ne!(nonce(csp2), n);
    s.finish();
}

const CAPTCHA_FLOW: &str = "captcha-page";

/// A provider that accepts every token (the policy does not depend on it).
struct AcceptAll;

#[async_trait::async_trait]
impl CaptchaVerifier for AcceptAll {
    async fn siteverify(
        &self,
        _: &SiteverifyRequest<'_>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, CaptchaError> {
        Ok(serde_json::Map::from_iter([(
            "success".into(),
            true.into(),
        )]))
    }
}

async fn start() -> support::Server {
    support::start_custom(authflow::http::HttpConfig::default(), |b| {
        b.captcha_verifier(Arc::new(AcceptAll))
    })
    .await
}
const TURNSTILE: &str = "https://challenges.cloudflare.com";

#[tokio::test]
async fn a_captcha_provider_is_admitted_only_while_its_stage_is_current() {
    let s = start().await;
    FlowBuilder::new(CAPTCHA_FLOW, FlowDesignation::Authentication)
        .stage("before-captcha", DummyStage::default())
        .stage(
            "captcha",
            CaptchaStage {
                public_key: "site-key".into(),
                private_key: "secret-key".into(),
                js_url: format!("{TURNSTILE}/turnstile/v0/api.js?render=explicit"),
                interactive: true,
                ..Default::default()
            },
        )
        .install(s.stores.flows.as_ref())
        .await
        .unwrap();
    let page = format!("/if/flow/{CAPTCHA_FLOW}/");
    let b = s.browser();

    // No session yet.
    let r = b.get(&page).await;
    assert_eq!(csp(&r), baseline(&csp(&r)));
    // The session is at the dummy stage before the captcha.
    let r = b.get(&support::executor(CAPTCHA_FLOW)).await;
    assert_eq!(r.component(), "ak-stage-dummy");
    let r = b.get(&page).await;
    assert_eq!(csp(&r), baseline(&csp(&r)), "before the captcha stage");
    assert!(r.text.contains("data-script-origins=\"\""));

    // At the captcha stage: its provider's origin, and nothing else, for scripts and
    // the widget's frame.
    let r = b
        .post(
            &support::executor(CAPTCHA_FLOW),
            &json!({"component": "ak-stage-dummy"}),
        )
        .await;
    let r = if r.status == 302 {
        b.get(&support::executor(CAPTCHA_FLOW)).await
    } else {
        r
    };
    assert_eq!(r.component(), "ak-stage-captcha", "{}", r.json);
    let r = b.get(&page).await;
    let policy = csp(&r);
    let n = nonce(&policy);
    assert_eq!(
        policy,
        format!(
            "default-src 'self'; script-src 'self' 'nonce-{n}' {TURNSTILE}; style-src 'self' 'nonce-{n}'; img-src 'self' data:; frame-src 'self' {TURNSTILE}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
    );
    assert!(
        r.text
            .contains(&format!("data-script-origins=\"{TURNSTILE}\"")),
        "the page is told which origin its policy admits"
    );

    // The same session on another flow's page, and another visitor on this one: no.
    let r = b
        .get(&format!("/if/flow/{}/", defaults::AUTHENTICATION))
        .await;
    assert_eq!(csp(&r), baseline(&csp(&r)), "another flow's page");
    let other = s.browser();
    let r = other.get(&page).await;
    assert_eq!(csp(&r), baseline(&csp(&r)), "another visitor");
    s.finish();
}

#[tokio::test]
async fn a_first_captcha_stage_is_admitted_before_any_plan_is_stored() {
    // A flow that starts with the captcha: a first visit's plan is not stored (any
    // instance plans it again from the request), so the page's policy is built from
    // the plan the request would get.
    let s = start().await;
    FlowBuilder::new(CAPTCHA_FLOW, FlowDesignation::Authentication)
        .stage(
            "captcha",
            CaptchaStage {
                public_key: "site-key".into(),
                private_key: "secret-key".into(),
                js_url: format!("{TURNSTILE}/turnstile/v0/api.js"),
                interactive: true,
                ..Default::default()
            },
        )
        .stage("after-captcha", DummyStage::default())
        .install(s.stores.flows.as_ref())
        .await
        .unwrap();
    let page = format!("/if/flow/{CAPTCHA_FLOW}/");
    let b = s.browser();
    let r = b.get(&page).await;
    assert!(csp(&r).contains(&format!(" {TURNSTILE};")), "{}", csp(&r));
    let r = b.get(&support::executor(CAPTCHA_FLOW)).await;
    assert_eq!(r.component(), "ak-stage-captcha");
    let r = b.get(&page).await;
    assert!(
        csp(&r).contains(&format!("frame-src 'self' {TURNSTILE};")),
        "{}",
        csp(&r)
    );
    // Once the captcha is solved, the policy no longer admits the provider.
    let r = b
        .post(
            &support::executor(CAPTCHA_FLOW),
            &json!({"component": "ak-stage-captcha", "token": "any"}),
        )
        .await;
    let r = if r.status == 302 {
        b.get(&support::executor(CAPTCHA_FLOW)).await
    } else {
        r
    };
    assert_eq!(r.component(), "ak-stage-dummy", "{}", r.json);
    let r = b.get(&page).await;
    assert_eq!(csp(&r), baseline(&csp(&r)), "after the captcha stage");
    s.finish();
}

#[tokio::test]
async fn a_js_url_the_policy_could_misread_is_not_admitted() {
    let s = start().await;
    FlowBuilder::new(CAPTCHA_FLOW, FlowDesignation::Authentication)
        .stage(
            "captcha",
            CaptchaStage {
                public_key: "site-key".into(),
                private_key: "secret-key".into(),
                js_url: "https://cdn.example.com 'unsafe-inline'/api.js".into(),
                interactive: true,
                ..Default::default()
            },
        )
        .install(s.stores.flows.as_ref())
        .await
        .unwrap();
    let b = s.browser();
    let r = b.get(&support::executor(CAPTCHA_FLOW)).await;
    assert_eq!(r.component(), "ak-stage-captcha");
    let r = b.get(&format!("/if/flow/{CAPTCHA_FLOW}/")).await;
    assert_eq!(csp(&r), baseline(&csp(&r)));
    assert!(!csp(&r).contains("unsafe"));
    s.finish();
}
