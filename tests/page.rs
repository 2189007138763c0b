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

use authflow::defaults;

/// The nonce of the page's policy.
fn nonce(csp: &str) -> String {
    let start = csp.find("'nonce-").expect("a nonce") + "'nonce-".len();
    csp[start..].split('\'').next().unwrap().to_owned()
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
    // Both scripts (the QR encoder, the page's own) and the style run under the nonce;
    // there is no inline handler attribute.
    assert_eq!(r.text.matches(&format!("nonce=\"{n}\"")).count(), 3);
    assert_eq!(r.text.matches("<script").count(), 2);
    assert!(r.text.contains("const authflowQr ="));
    for handler in ["onclick=", "onload=", "onerror=", "onsubmit=", "javascript:"] {
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
