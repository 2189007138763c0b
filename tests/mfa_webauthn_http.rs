//! The WebAuthn relying party over HTTP: the RP id is the host name of the configured
//! external URL, else of the request's `Host` (so `http://localhost:PORT` works), as
//! authentik's `get_rp_id` (authentik/stages/authenticator_webauthn/utils.py); every
//! challenge is checked against authentik's flow-executor schema by the harness.
#![cfg(all(feature = "http", feature = "webauthn"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/http.rs"]
mod support;

use authflow::defaults;
use authflow::http::HttpConfig;
use reqwest::Method;
use support::{ADMIN_PASSWORD, Req, Server, executor, start_with};

const COMPONENT: &str = "ak-stage-authenticator-webauthn";

/// The reference server's MFA setup flows (`defaults::install_mfa_setup`).
async fn with_setup_flow(s: &Server) {
    defaults::install_mfa_setup(s.stores.flows.as_ref())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_rp_id_comes_from_the_host_header() {
    let s = start_with(HttpConfig::default()).await;
    with_setup_flow(&s).await;
    let b = s.login("akadmin", ADMIN_PASSWORD).await;
    let port = s.base.rsplit(':').next().unwrap().to_owned();
    let path = executor(defaults::WEBAUTHN_SETUP);
    let r = b
        .send(Req::new(Method::GET, &path).header("host", format!("localhost:{port}")))
        .await;
    let v = r.challenge(COMPONENT);
    assert_eq!(v["registration"]["rp"]["id"], "localhost", "{v}");
    assert_eq!(v["registration"]["user"]["name"], "akadmin");
    // An IP address is no relying party: the stage denies, naming the origin.
    let r = b.exec(defaults::WEBAUTHN_SETUP).await;
    let v = r.challenge("ak-stage-access-denied");
    assert!(
        v["error_message"].as_str().unwrap().contains("domain name"),
        "{v}"
    );
}

#[tokio::test]
async fn the_external_url_wins_over_the_host_header() {
    let config = HttpConfig::default()
        .with_external_url("http://auth.example.com:8443")
        .unwrap();
    let s = start_with(config).await;
    with_setup_flow(&s).await;
    let b = s.login("akadmin", ADMIN_PASSWORD).await;
    let path = executor(defaults::WEBAUTHN_SETUP);
    let r = b
        .send(Req::new(Method::GET, &path).header("host", "evil.example"))
        .await;
    let v = r.challenge(COMPONENT);
    assert_eq!(v["registration"]["rp"]["id"], "auth.example.com", "{v}");
}
