//! The validation seam ([`super::webauthn_validate`]) driven directly, through a
//! test stage that calls it, with kanidm's software passkey: registration through
//! the real setup stage, then assertions (with a user and passwordless), wrong origin,
//! replay, counter regression and re-renders.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use super::webauthn_validate;
use super::{Response, StageContext, StageError, StageKind, StageOutcome};
use crate::builder::FlowBuilder;
use crate::challenge::{Challenge, ChallengeBody, CustomChallenge, ErrorDetail};
use crate::memory::{MemoryDevices, Stores};
use crate::model::{
    AuthenticatorValidateStage, AuthenticatorWebauthnStage, CustomStage, FlowDesignation,
    IdentificationStage, UserField,
};
use crate::store::{DeviceSecret, DeviceStore, NewUser, UserAdmin};
use crate::{Engine, FlowRequest, Outcome};

const ORIGIN: &str = "http://localhost:9000";
const SEAM: &str = "test.webauthn-seam";

/// Calls the seam: the challenge carries `options`; a POST's `webauthn` is verified
/// and the stage denies with `ok:<owner>` on success (so the test sees the owner).
struct Seam;

#[async_trait]
impl StageKind for Seam {
    fn component(&self) -> Option<&str> {
        Some("x-seam")
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        Ok(StageOutcome::Challenge(render(ctx).await?))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        let stage = AuthenticatorValidateStage::default();
        let user = ctx.pending_user_record().await?;
        let assertion = response.get("webauthn").cloned().unwrap_or(Value::Null);
        match webauthn_validate::verify(ctx, &stage, user.as_ref(), &assertion).await? {
            Ok(device) => Ok(StageOutcome::Deny(format!("ok:{}", device.user))),
            Err(message) => Ok(StageOutcome::Invalid(
                render(ctx)
                    .await?
                    .with_error("webauthn", ErrorDetail::invalid(message)),
            )),
        }
    }
}

async fn render(ctx: &mut StageContext<'_>) -> Result<Challenge, StageError> {
    let stage = AuthenticatorValidateStage::default();
    let devices = match ctx.pending_user_record().await? {
        Some(u) => ctx.env.devices.devices(&u.pk).await?,
        None => Vec::new(),
    };
    let options = webauthn_validate::challenge(ctx, &stage, &devices).await?;
    let mut fields = serde_json::Map::new();
    fields.insert("options".into(), options.unwrap_or(Value::Null));
    Ok(Challenge::new(ChallengeBody::Custom(CustomChallenge {
        component: "x-seam".into(),
        fields,
    })))
}

struct Harness {
    engine: Engine,
    devices: Arc<MemoryDevices>,
    session: Option<crate::plan::SessionId>,
    origin: String,
    alice: crate::model::UserId,
}

impl Harness {
    async fn new() -> Self {
        let stores = Stores::new();
        let alice = stores
            .users
            .create_user(NewUser::new("alice").name("Alice"))
            .await
            .unwrap()
            .pk;
        let ident = || IdentificationStage {
            user_fields: vec![UserField::Username],
            ..IdentificationStage::default()
        };
        FlowBuilder::new("setup", FlowDesignation::StageConfiguration)
            .stage("setup-ident", ident())
            .stage("setup-webauthn", AuthenticatorWebauthnStage::default())
            .install(stores.flows.as_ref())
            .await
            .unwrap();
        FlowBuilder::new("login", FlowDesignation::Authentication)
            .stage("login-ident", ident())
            .stage("login-seam", CustomStage::new(SEAM))
            .install(stores.flows.as_ref())
            .await
            .unwrap();
        FlowBuilder::new("passwordless", FlowDesignation::Authentication)
            .stage("pwl-seam", CustomStage::new(SEAM))
            .install(stores.flows.as_ref())
            .await
            .unwrap();
        let devices = Arc::new(MemoryDevices::new());
        let engine = stores
            .engine()
            .devices(devices.clone())
            .register_stage(SEAM, Seam)
            .build();
        Self {
            engine,
            devices,
            session: None,
            origin: ORIGIN.into(),
            alice,
        }
    }

    fn request(&self) -> FlowRequest {
        let mut r = FlowRequest::new(self.session.clone(), "");
        r.origin = Some(self.origin.clone());
        r
    }

    async fn get(&mut self, slug: &str) -> Value {
        let out: Outcome = self.engine.plan(&self.request(), slug).await.unwrap();
        self.session = Some(out.session_id.clone());
        out.challenge.to_json()
    }

    async fn post(&mut self, slug: &str, body: Value) -> Value {
        let out = self
            .engine
            .step(&self.request(), slug, &body)
            .await
            .unwrap();
        self.session = Some(out.session_id.clone());
        out.challenge.to_json()
    }

    /// Registers a passkey for alice with `key`.
    async fn register(&mut self, key: &mut SoftPasskey) {
        self.session = None;
        self.get("setup").await;
        let c = self
            .post(
                "setup",
                json!({"component": "ak-stage-identification", "uid_field": "alice"}),
            )
            .await;
        assert_eq!(c["component"], "ak-stage-authenticator-webauthn", "{c}");
        let ccr = serde_json::from_value(json!({"publicKey": c["registration"]})).unwrap();
        let cred = key
            .do_registration(Url::parse(ORIGIN).unwrap(), ccr)
            .unwrap();
        let c = self
            .post(
                "setup",
                json!({"component": "ak-stage-authenticator-webauthn",
                       "response": serde_json::to_value(&cred).unwrap()}),
            )
            .await;
        assert_ne!(c["component"], "ak-stage-authenticator-webauthn", "{c}");
    }

    /// Starts the login flow up to the seam's challenge; returns its options.
    async fn login_options(&mut self) -> Value {
        self.session = None;
        self.get("login").await;
        let c = self
            .post(
                "login",
                json!({"component": "ak-stage-identification", "uid_field": "alice"}),
            )
            .await;
        assert_eq!(c["component"], "x-seam", "{c}");
        c["options"].clone()
    }

    async fn answer(&mut self, slug: &str, assertion: &Value) -> Value {
        self.post(slug, json!({"component": "x-seam", "webauthn": assertion}))
            .await
    }
}

fn sign(key: &mut SoftPasskey, origin: &str, options: &Value) -> Value {
    let rcr = serde_json::from_value(json!({"publicKey": options})).unwrap();
    let a = key
        .do_authentication(Url::parse(origin).unwrap(), rcr)
        .unwrap();
    serde_json::to_value(&a).unwrap()
}

fn ok(c: &Value) -> bool {
    c["component"] == "ak-stage-access-denied"
        && c["error_message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ok:"))
}

fn error_of(c: &Value) -> String {
    c["response_errors"]["webauthn"][0]["string"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn assertion_with_user_then_replay_refused() {
    let mut h = Harness::new().await;
    let mut key = SoftPasskey::new(false);
    h.register(&mut key).await;
    let options = h.login_options().await;
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(options["userVerification"], "preferred");
    assert_eq!(options["allowCredentials"].as_array().unwrap().len(), 1);
    // The soft passkey never sets UV: `preferred` accepts that (authentik does).
    let assertion = sign(&mut key, ORIGIN, &options);
    let c = h.answer("login", &assertion).await;
    assert!(ok(&c), "{c}");
    // Replayed into a new login: the challenge differs.
    let _ = h.login_options().await;
    let c = h.answer("login", &assertion).await;
    assert!(error_of(&c).contains("challenge differs"), "{c}");
}

#[tokio::test]
async fn rerender_keeps_the_challenge() {
    let mut h = Harness::new().await;
    let mut key = SoftPasskey::new(false);
    h.register(&mut key).await;
    let first = h.login_options().await;
    let again = h.get("login").await;
    assert_eq!(again["options"], first);
    // A client that signs the first challenge after the re-render is accepted.
    let assertion = sign(&mut key, ORIGIN, &first);
    let c = h.answer("login", &assertion).await;
    assert!(ok(&c), "{c}");
}

#[tokio::test]
async fn wrong_origin_refused() {
    let mut h = Harness::new().await;
    let mut key = SoftPasskey::new(false);
    h.register(&mut key).await;
    let options = h.login_options().await;
    let assertion = sign(&mut key, "https://evil.localhost", &options);
    let c = h.answer("login", &assertion).await;
    assert!(error_of(&c).contains("origin does not match"), "{c}");
    // The challenge survives a failed attempt: the right origin still works.
    let assertion = sign(&mut key, ORIGIN, &options);
    assert!(ok(&h.answer("login", &assertion).await));
}

#[tokio::test]
async fn counter_regression_refused() {
    let mut h = Harness::new().await;
    let mut key = SoftPasskey::new(false);
    h.register(&mut key).await;
    // A clone of the authenticator already went further.
    let alice = h.alice.clone();
    let mut d = h.devices.devices(&alice).await.unwrap().remove(0);
    if let DeviceSecret::Webauthn { sign_count, .. } = &mut d.secret {
        *sign_count = 100;
    }
    h.devices.remove(&alice, &d.id).await.unwrap();
    h.devices.add(d).await.unwrap();
    let options = h.login_options().await;
    let assertion = sign(&mut key, ORIGIN, &options);
    let c = h.answer("login", &assertion).await;
    assert!(error_of(&c).contains("compromised"), "{c}");
}

#[tokio::test]
async fn passwordless_finds_the_owner() {
    let mut h = Harness::new().await;
    let mut key = SoftPasskey::new(false);
    h.register(&mut key).await;
    let owner = h.alice.clone();
    h.session = None;
    let c = h.get("passwordless").await;
    let options = c["options"].clone();
    assert_eq!(options["allowCredentials"], json!([]), "{c}");
    // The soft passkey cannot discover credentials: tell it which one to use (the
    // server's state does not depend on allowCredentials).
    let DeviceSecret::Webauthn { credential_id, .. } =
        h.devices.devices(&owner).await.unwrap()[0].secret.clone()
    else {
        panic!("not webauthn")
    };
    let mut hinted = options.clone();
    hinted["allowCredentials"] = json!([{"type": "public-key", "id": credential_id}]);
    let assertion = sign(&mut key, ORIGIN, &hinted);
    let c = h.answer("passwordless", &assertion).await;
    assert_eq!(c["error_message"], format!("ok:{owner}"), "{c}");
}

#[tokio::test]
async fn unknown_credential_and_garbage_refused() {
    let mut h = Harness::new().await;
    let mut key = SoftPasskey::new(false);
    h.register(&mut key).await;
    let options = h.login_options().await;
    for bad in [json!(null), json!("x"), json!({"id": "AA", "response": {}})] {
        let c = h.answer("login", &bad).await;
        assert_eq!(error_of(&c), "Invalid device", "{c}");
    }
    // A second passkey nobody registered.
    let mut other = SoftPasskey::new(false);
    let ccr = serde_json::from_value(json!({"publicKey": {
        "rp": {"id": "localhost", "name": "x"},
        "user": {"id": "AA", "name": "m", "displayName": "m"},
        "challenge": "AAAA", "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
    }}))
    .unwrap();
    let cred = other
        .do_registration(Url::parse(ORIGIN).unwrap(), ccr)
        .unwrap();
    let mut hinted = options.clone();
    hinted["allowCredentials"] = json!([{"type": "public-key", "id": cred.id}]);
    let assertion = sign(&mut other, ORIGIN, &hinted);
    let c = h.answer("login", &assertion).await;
    assert_eq!(error_of(&c), "Invalid device", "{c}");
}

/// Re-encodes the binary fields of kanidm's assertion JSON as padded base64url.
fn padded(v: &Value) -> Value {
    use base64::Engine as _;
    let pad = |s: &Value| {
        let bytes = super::webauthn_core::decode_b64(s.as_str().unwrap()).unwrap();
        json!(base64::engine::general_purpose::URL_SAFE.encode(bytes))
    };
    let mut v = v.clone();
    v["rawId"] = pad(&v["rawId"]);
    for k in ["clientDataJSON", "authenticatorData", "signature"] {
        v["response"][k] = pad(&v["response"][k]);
    }
    v
}

#[tokio::test]
async fn both_assertion_forms_and_user_handles() {
    use base64::Engine as _;
    let mut h = Harness::new().await;
    let mut key = SoftPasskey::new(false);
    h.register(&mut key).await;
    let hex = super::webauthn_core::user_handle(&h.alice);
    let authentik_handle = base64::engine::general_purpose::STANDARD
        .decode(hex.as_bytes())
        .unwrap();
    let b64 = super::webauthn_core::b64url;

    // authentik's web client: padded fields, extensions as a JSON string, no handle.
    let options = h.login_options().await;
    let mut a = padded(&sign(&mut key, ORIGIN, &options));
    a.as_object_mut().unwrap().remove("extensions");
    a["assertionClientExtensions"] = json!("{}");
    a["response"]["userHandle"] = Value::Null;
    let c = h.answer("login", &a).await;
    assert!(ok(&c), "{c}");

    // Browsers' toJSON(): unpadded, clientExtensionResults, the handle as registered
    // (by a browser: the hex string; by authentik's client: its base64 decoding).
    for handle in [b64(hex.as_bytes()), b64(&authentik_handle)] {
        let options = h.login_options().await;
        let mut a = sign(&mut key, ORIGIN, &options);
        let ext = a.as_object_mut().unwrap().remove("extensions").unwrap();
        a["clientExtensionResults"] = ext;
        a["authenticatorAttachment"] = json!("cross-platform");
        a["response"]["userHandle"] = json!(handle);
        let c = h.answer("login", &a).await;
        assert!(ok(&c), "{handle}: {c}");
    }

    // A handle naming someone else.
    let options = h.login_options().await;
    let mut a = sign(&mut key, ORIGIN, &options);
    a["response"]["userHandle"] = json!(b64(b"someone-else"));
    let c = h.answer("login", &a).await;
    assert_eq!(error_of(&c), "Invalid device", "{c}");
}
