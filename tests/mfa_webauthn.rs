//! WebAuthn setup (`authenticator_webauthn`) end to end in-process, with kanidm's
//! software passkey (`webauthn-authenticator-rs`, feature `softpasskey`): the options
//! as authentik sends them (`AuthenticatorWebAuthnStageView.get_challenge` in
//! authentik/stages/authenticator_webauthn/stage.py), both credential JSON forms,
//! wrong origin, duplicate credentials, re-renders; the built-in setup flow and
//! authentik's blueprint. Without the `webauthn` feature the stage denies, naming it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
// Without the feature only the denial is tested.
#![cfg_attr(not(feature = "webauthn"), allow(unused, dead_code))]

use std::sync::Arc;

use authflow::events::{EventAction, MemoryEventSink};
use authflow::memory::{MemoryDevices, Stores};
use authflow::plan::SessionId;
use authflow::store::{NewUser, User, UserAdmin};
use authflow::{Engine, FlowRequest, defaults};
use serde_json::{Value, json};

const ORIGIN: &str = "http://localhost:9000";
const PASSWORD: &str = "Alice-Local-Pw-1";

struct Env {
    engine: Engine,
    devices: Arc<MemoryDevices>,
    events: Arc<MemoryEventSink>,
    alice: User,
    stores: Stores,
}

impl Env {
    /// The built-in flows and alice.
    async fn new() -> Self {
        let stores = Stores::new();
        defaults::install(stores.flows.as_ref()).await.unwrap();
        defaults::install_mfa_setup(stores.flows.as_ref())
            .await
            .unwrap();
        Self::with(stores).await
    }

    async fn with(stores: Stores) -> Self {
        let alice = stores
            .users
            .create_user(
                NewUser::new("alice")
                    .name("Alice Liddell")
                    .password(PASSWORD),
            )
            .await
            .unwrap();
        let devices = Arc::new(MemoryDevices::new());
        let events = Arc::new(MemoryEventSink::new());
        let engine = stores
            .engine()
            .devices(devices.clone())
            .events(events.clone())
            .build();
        Self {
            engine,
            devices,
            events,
            alice,
            stores,
        }
    }

    fn client(&self) -> Client<'_> {
        Client {
            engine: &self.engine,
            session: None,
            origin: Some(ORIGIN.into()),
        }
    }

    /// A client logged in as alice through the default login flow.
    async fn alice(&self) -> Client<'_> {
        let mut c = self.client();
        let slug = defaults::AUTHENTICATION;
        c.get(slug).await;
        c.post(
            slug,
            json!({"component": "ak-stage-identification", "uid_field": "alice"}),
        )
        .await;
        let v = c
            .post(
                slug,
                json!({"component": "ak-stage-password", "password": PASSWORD}),
            )
            .await;
        assert_eq!(v["component"], "xak-flow-redirect", "{v}");
        c
    }
}

struct Client<'a> {
    engine: &'a Engine,
    session: Option<SessionId>,
    origin: Option<String>,
}

impl Client<'_> {
    fn request(&self) -> FlowRequest {
        let mut r = FlowRequest::new(self.session.clone(), "");
        r.origin = self.origin.clone();
        r
    }

    async fn get(&mut self, slug: &str) -> Value {
        let out = self.engine.plan(&self.request(), slug).await.unwrap();
        self.session = Some(out.session_id.clone());
        out.challenge.to_json()
    }

    async fn post(&mut self, slug: &str, body: Value) -> Value {
        self.post_outcome(slug, body).await.challenge.to_json()
    }

    async fn post_outcome(&mut self, slug: &str, body: Value) -> authflow::Outcome {
        let out = self
            .engine
            .step(&self.request(), slug, &body)
            .await
            .unwrap();
        self.session = Some(out.session_id.clone());
        out
    }
}

#[cfg(not(feature = "webauthn"))]
#[tokio::test]
async fn without_the_feature_setup_denies_naming_it() {
    let env = Env::new().await;
    let mut c = env.alice().await;
    let v = c.get(defaults::WEBAUTHN_SETUP).await;
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    let m = v["error_message"].as_str().unwrap();
    assert!(m.contains("`webauthn` cargo feature"), "{m}");
}

#[cfg(feature = "webauthn")]
mod with_webauthn {
    use super::*;
    use authflow::store::{Device, DeviceSecret, DeviceStore};
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    use webauthn_authenticator_rs::prelude::Url;
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;

    const SETUP: &str = defaults::WEBAUTHN_SETUP;

    fn create(key: &mut SoftPasskey, origin: &str, registration: &Value) -> Value {
        let ccr = serde_json::from_value(json!({"publicKey": registration})).unwrap();
        let cred = key
            .do_registration(Url::parse(origin).unwrap(), ccr)
            .unwrap();
        serde_json::to_value(&cred).unwrap()
    }

    /// kanidm's credential JSON as a browser's `PublicKeyCredential.toJSON()` sends it.
    fn browser_form(cred: &Value) -> Value {
        json!({
            "id": cred["id"], "rawId": cred["rawId"], "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": cred["response"]["clientDataJSON"],
                "attestationObject": cred["response"]["attestationObject"],
                "transports": ["usb"],
                "publicKeyAlgorithm": -7,
            },
        })
    }

    /// As authentik's web client sends it (`transformNewAssertionForServer` in
    /// web/src/flow/stages/authenticator_webauthn/utils.ts), with padded base64url.
    fn authentik_form(cred: &Value) -> Value {
        let pad = |v: &Value| {
            let bytes = URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap();
            json!(URL_SAFE.encode(bytes))
        };
        json!({
            "id": cred["id"], "rawId": pad(&cred["rawId"]), "type": "public-key",
            "registrationClientExtensions": "{}",
            "response": {
                "clientDataJSON": pad(&cred["response"]["clientDataJSON"]),
                "attestationObject": pad(&cred["response"]["attestationObject"]),
            },
        })
    }

    async fn webauthn_devices(env: &Env) -> Vec<Device> {
        env.devices.devices(&env.alice.pk).await.unwrap()
    }

    #[tokio::test]
    async fn options_are_authentiks_and_stay_across_renders() {
        let env = Env::new().await;
        let mut c = env.alice().await;
        let v = c.get(SETUP).await;
        assert_eq!(v["component"], "ak-stage-authenticator-webauthn", "{v}");
        assert_eq!(v["pending_user"], "alice", "{v}");
        let r = &v["registration"];
        assert_eq!(
            r["rp"],
            json!({"id": "localhost", "name": "localhost"}),
            "{r}"
        );
        assert_eq!(r["user"]["name"], "alice");
        assert_eq!(r["user"]["displayName"], "Alice Liddell");
        // user.id: base64url of a 64-hex-character handle, which authentik's web
        // client decodes with atob (standard alphabet) and then decodes again.
        let id = r["user"]["id"].as_str().unwrap();
        let once = STANDARD_NO_PAD.decode(id).unwrap();
        assert_eq!(once.len(), 64);
        assert!(once.iter().all(u8::is_ascii_hexdigit), "{id}");
        assert!(STANDARD.decode(&once).is_ok());
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(r["challenge"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert!(
            r["pubKeyCredParams"]
                .as_array()
                .unwrap()
                .contains(&json!({"type": "public-key", "alg": -7})),
            "{r}"
        );
        assert_eq!(r["timeout"], 60000);
        assert_eq!(r["attestation"], "direct");
        assert_eq!(r["excludeCredentials"], json!([]));
        let sel = &r["authenticatorSelection"];
        assert_eq!(sel["residentKey"], "preferred", "{sel}");
        assert_eq!(sel["requireResidentKey"], false, "{sel}");
        assert_eq!(sel["userVerification"], "preferred", "{sel}");
        assert!(
            sel.get("authenticatorAttachment")
                .is_none_or(Value::is_null),
            "{sel}"
        );
        // A re-render (reload, second tab) gives the same options.
        let again = c.get(SETUP).await;
        assert_eq!(again["registration"], v["registration"]);
    }

    #[tokio::test]
    async fn registers_from_the_browser_form_then_excludes_it() {
        let env = Env::new().await;
        let mut c = env.alice().await;
        let v = c.get(SETUP).await;
        let mut key = SoftPasskey::new(false);
        let cred = create(&mut key, ORIGIN, &v["registration"]);
        let done = c
            .post(
                SETUP,
                json!({"component": "ak-stage-authenticator-webauthn", "response": browser_form(&cred)}),
            )
            .await;
        assert_eq!(done["component"], "xak-flow-redirect", "{done}");
        let devices = webauthn_devices(&env).await;
        assert_eq!(devices.len(), 1);
        let d = &devices[0];
        assert_eq!(d.name, "WebAuthn Device");
        assert!(d.confirmed);
        let DeviceSecret::Webauthn {
            credential_id,
            sign_count,
            ..
        } = &d.secret
        else {
            panic!("{d:?}")
        };
        assert_eq!(credential_id, cred["id"].as_str().unwrap());
        assert_eq!(*sign_count, 0);
        let events = env.events.of(EventAction::DeviceAdded);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].user.as_deref(), Some("alice"));
        assert_eq!(events[0].context["device_class"], "webauthn");
        assert_eq!(events[0].context["device"], json!(d.id));
        assert!(!format!("{events:?}").contains(credential_id.as_str()));

        // The next registration excludes it.
        let v = c.get(SETUP).await;
        let excluded = v["registration"]["excludeCredentials"].as_array().unwrap();
        assert_eq!(excluded.len(), 1, "{v}");
        assert_eq!(excluded[0]["id"], cred["id"]);
        assert_eq!(excluded[0]["type"], "public-key");
    }

    #[tokio::test]
    async fn registers_from_authentiks_web_client_form() {
        let env = Env::new().await;
        let mut c = env.alice().await;
        let v = c.get(SETUP).await;
        let mut key = SoftPasskey::new(false);
        let cred = create(&mut key, ORIGIN, &v["registration"]);
        let body = authentik_form(&cred);
        assert!(body["rawId"].as_str().unwrap().ends_with('='), "{body}");
        let done = c
            .post(
                SETUP,
                json!({"component": "ak-stage-authenticator-webauthn", "response": body}),
            )
            .await;
        assert_eq!(done["component"], "xak-flow-redirect", "{done}");
        assert_eq!(webauthn_devices(&env).await.len(), 1);
    }

    fn response_error(v: &Value) -> String {
        v["response_errors"]["response"][0]["string"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn wrong_origin_is_refused_and_the_challenge_survives() {
        let env = Env::new().await;
        let mut c = env.alice().await;
        let v = c.get(SETUP).await;
        let mut key = SoftPasskey::new(false);
        let cred = create(&mut key, "https://evil.localhost", &v["registration"]);
        let bad = c
            .post(
                SETUP,
                json!({"component": "ak-stage-authenticator-webauthn", "response": cred}),
            )
            .await;
        assert_eq!(bad["component"], "ak-stage-authenticator-webauthn", "{bad}");
        assert!(
            response_error(&bad).starts_with("Registration failed"),
            "{bad}"
        );
        assert_eq!(bad["registration"], v["registration"]);
        assert!(webauthn_devices(&env).await.is_empty());
        let cred = create(&mut key, ORIGIN, &v["registration"]);
        let done = c
            .post(
                SETUP,
                json!({"component": "ak-stage-authenticator-webauthn", "response": cred}),
            )
            .await;
        assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    }

    #[tokio::test]
    async fn duplicate_credential_and_garbage_are_refused() {
        let env = Env::new().await;
        let mut c = env.alice().await;
        let v = c.get(SETUP).await;
        for garbage in [
            json!(null),
            json!("x"),
            json!({"id": "AA"}),
            json!({"rawId": "!!", "response": {}}),
        ] {
            let bad = c
                .post(
                    SETUP,
                    json!({"component": "ak-stage-authenticator-webauthn", "response": garbage}),
                )
                .await;
            assert_eq!(bad["component"], "ak-stage-authenticator-webauthn", "{bad}");
            assert!(!response_error(&bad).is_empty(), "{bad}");
        }
        let mut key = SoftPasskey::new(false);
        let cred = create(&mut key, ORIGIN, &v["registration"]);
        // Someone registered this credential meanwhile.
        env.devices
            .add(Device {
                id: "other".into(),
                user: "someone".into(),
                name: "x".into(),
                created: 0,
                last_used: None,
                confirmed: true,
                secret: DeviceSecret::Webauthn {
                    credential_id: cred["id"].as_str().unwrap().to_owned(),
                    credential: Value::Null,
                    sign_count: 0,
                },
            })
            .await
            .unwrap();
        let bad = c
            .post(
                SETUP,
                json!({"component": "ak-stage-authenticator-webauthn", "response": cred}),
            )
            .await;
        assert_eq!(
            response_error(&bad),
            "Credential ID already exists.",
            "{bad}"
        );
        assert!(webauthn_devices(&env).await.is_empty());
    }

    #[tokio::test]
    async fn max_attempts_denies_after_failed_registrations() {
        use authflow::builder::FlowBuilder;
        use authflow::model::{
            AuthenticatorWebauthnStage, FlowDesignation, IdentificationStage, UserField,
        };
        let env = Env::new().await;
        FlowBuilder::new("limited-setup", FlowDesignation::StageConfiguration)
            .stage(
                "limited-ident",
                IdentificationStage {
                    user_fields: vec![UserField::Username],
                    ..IdentificationStage::default()
                },
            )
            .stage(
                "limited-webauthn",
                AuthenticatorWebauthnStage {
                    max_attempts: 2,
                    ..AuthenticatorWebauthnStage::default()
                },
            )
            .install(env.stores.flows.as_ref())
            .await
            .unwrap();
        let mut c = env.client();
        c.get("limited-setup").await;
        let v = c
            .post(
                "limited-setup",
                json!({"component": "ak-stage-identification", "uid_field": "alice"}),
            )
            .await;
        assert_eq!(v["component"], "ak-stage-authenticator-webauthn", "{v}");
        let bad = json!({"component": "ak-stage-authenticator-webauthn", "response": {}});
        let v = c.post("limited-setup", bad.clone()).await;
        assert_eq!(v["component"], "ak-stage-authenticator-webauthn", "{v}");
        let v = c.post("limited-setup", bad).await;
        assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
        assert!(
            v["error_message"]
                .as_str()
                .unwrap()
                .contains("Exceeded maximum attempts"),
            "{v}"
        );
    }

    #[tokio::test]
    async fn without_an_origin_the_stage_denies() {
        let env = Env::new().await;
        let mut c = env.alice().await;
        c.origin = None;
        let v = c.get(SETUP).await;
        assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
        assert!(
            v["error_message"].as_str().unwrap().contains("origin"),
            "{v}"
        );
    }

    /// authentik's blueprint imports without `skip_unsupported` and registers.
    #[cfg(feature = "blueprints")]
    #[tokio::test]
    async fn authentiks_blueprint_works_end_to_end() {
        use authflow::blueprint::Importer;
        use authflow::store::FlowSource;
        let stores = Stores::new();
        defaults::authentication(stores.flows.as_ref())
            .await
            .unwrap();
        let yaml = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/blueprints/flow-default-authenticator-webauthn-setup.yaml"),
        )
        .unwrap();
        Importer::for_stores(&stores)
            .apply_str("webauthn-setup.yaml", &yaml)
            .await
            .unwrap();
        let env = Env::with(stores).await;
        let def = env.stores.flows.flow(SETUP).await.unwrap().unwrap();
        let authflow::model::StageConfig::AuthenticatorWebauthn(stage) =
            &def.stages[0].stage.config
        else {
            panic!("{def:?}")
        };
        assert_eq!(stage.configure_flow.as_deref(), Some(SETUP));
        // require_authenticated: anonymous visitors are turned away.
        let v = env.client().get(SETUP).await;
        assert_ne!(v["component"], "ak-stage-authenticator-webauthn", "{v}");
        let mut c = env.alice().await;
        let v = c.get(SETUP).await;
        let mut key = SoftPasskey::new(false);
        let cred = create(&mut key, ORIGIN, &v["registration"]);
        let done = c
            .post(
                SETUP,
                json!({"component": "ak-stage-authenticator-webauthn", "response": cred}),
            )
            .await;
        assert_eq!(done["component"], "xak-flow-redirect", "{done}");
        assert_eq!(webauthn_devices(&env).await.len(), 1);
    }

    // ---- validation through `authenticator_validate` (authentik's
    // get_webauthn_challenge / validate_challenge_webauthn in
    // authentik/stages/authenticator_validate/challenge.py) ----

    const LOGIN: &str = "webauthn-login";
    const PASSWORDLESS: &str = "webauthn-passwordless";
    const VALIDATE: &str = "ak-stage-authenticator-validate";

    /// The built-in flows, plus identification → password → validate (webauthn only,
    /// deny when not configured) → login, and a passwordless validate → login.
    async fn validate_env() -> Env {
        use authflow::builder::FlowBuilder;
        use authflow::model::{
            AuthenticatorValidateStage, DeviceClass, FlowDesignation, IdentificationStage,
            NotConfiguredAction, PasswordStage, UserField, UserLoginStage,
        };
        let stores = Stores::new();
        defaults::install(stores.flows.as_ref()).await.unwrap();
        defaults::install_mfa_setup(stores.flows.as_ref())
            .await
            .unwrap();
        let validate = || AuthenticatorValidateStage {
            device_classes: vec![DeviceClass::Webauthn],
            not_configured_action: NotConfiguredAction::Deny,
            ..AuthenticatorValidateStage::default()
        };
        FlowBuilder::new(LOGIN, FlowDesignation::Authentication)
            .stage(
                "wl-ident",
                IdentificationStage {
                    user_fields: vec![UserField::Username],
                    ..IdentificationStage::default()
                },
            )
            .stage("wl-password", PasswordStage::default())
            .stage("wl-validate", validate())
            .stage("wl-login", UserLoginStage::default())
            .install(stores.flows.as_ref())
            .await
            .unwrap();
        FlowBuilder::new(PASSWORDLESS, FlowDesignation::Authentication)
            .stage("pwl-validate", validate())
            .stage("pwl-login", UserLoginStage::default())
            .install(stores.flows.as_ref())
            .await
            .unwrap();
        Env::with(stores).await
    }

    /// Registers a passkey for alice through the built-in setup flow.
    async fn register(env: &Env, key: &mut SoftPasskey) -> Value {
        let mut c = env.alice().await;
        let v = c.get(SETUP).await;
        let cred = create(key, ORIGIN, &v["registration"]);
        let done = c
            .post(
                SETUP,
                json!({"component": "ak-stage-authenticator-webauthn", "response": cred}),
            )
            .await;
        assert_eq!(done["component"], "xak-flow-redirect", "{done}");
        cred
    }

    /// A fresh client at the validation stage of [`LOGIN`]; its challenge.
    async fn to_validate(env: &Env) -> (Client<'_>, Value) {
        let mut c = env.client();
        c.get(LOGIN).await;
        c.post(
            LOGIN,
            json!({"component": "ak-stage-identification", "uid_field": "alice"}),
        )
        .await;
        let v = c
            .post(
                LOGIN,
                json!({"component": "ak-stage-password", "password": PASSWORD}),
            )
            .await;
        assert_eq!(v["component"], VALIDATE, "{v}");
        (c, v)
    }

    fn sign(key: &mut SoftPasskey, options: &Value) -> Value {
        let rcr = serde_json::from_value(json!({"publicKey": options})).unwrap();
        let a = key
            .do_authentication(Url::parse(ORIGIN).unwrap(), rcr)
            .unwrap();
        serde_json::to_value(&a).unwrap()
    }

    #[tokio::test]
    async fn login_with_a_passkey_through_the_validation_stage() {
        let env = validate_env().await;
        let mut key = SoftPasskey::new(false);
        let cred = register(&env, &mut key).await;
        let device = webauthn_devices(&env).await.remove(0);
        let (mut c, v) = to_validate(&env).await;
        assert_eq!(v["configuration_stages"], json!([]), "{v}");
        let dc = &v["device_challenges"][0];
        assert_eq!(dc["device_class"], "webauthn", "{v}");
        assert_eq!(dc["device_uid"], json!(device.id));
        assert!(dc["last_used"].is_null());
        let options = &dc["challenge"];
        assert_eq!(options["rpId"], "localhost", "{options}");
        assert_eq!(options["userVerification"], "preferred");
        assert_eq!(options["timeout"], 60000);
        assert_eq!(
            options["allowCredentials"],
            json!([{"type": "public-key", "id": cred["id"]}]),
            "{options}"
        );
        let assertion = sign(&mut key, options);
        let out = c
            .post_outcome(LOGIN, json!({"component": VALIDATE, "webauthn": assertion}))
            .await;
        assert!(out.logged_in, "{}", out.challenge.to_json());
        assert_eq!(out.user.as_ref(), Some(&env.alice.pk));
        let after = webauthn_devices(&env).await.remove(0);
        let DeviceSecret::Webauthn { sign_count, .. } = after.secret else {
            panic!()
        };
        assert_eq!(sign_count, 1);
        assert!(after.last_used.is_some());
        assert_eq!(env.events.of(EventAction::MfaValidated).len(), 1);

        // The same assertion in a new login: refused (its challenge was consumed).
        let (mut c, _) = to_validate(&env).await;
        let out = c
            .post_outcome(LOGIN, json!({"component": VALIDATE, "webauthn": assertion}))
            .await;
        assert!(!out.logged_in);
        let v = out.challenge.to_json();
        let m = v["response_errors"]["webauthn"][0]["string"]
            .as_str()
            .unwrap();
        assert!(m.contains("challenge differs"), "{v}");
    }

    #[tokio::test]
    async fn selected_challenge_then_the_first_challenge_signed() {
        let env = validate_env().await;
        let mut key = SoftPasskey::new(false);
        register(&env, &mut key).await;
        let (mut c, v) = to_validate(&env).await;
        let first = v["device_challenges"][0].clone();
        let again = c
            .post(
                LOGIN,
                json!({"component": VALIDATE, "selected_challenge": first}),
            )
            .await;
        assert_eq!(again["component"], VALIDATE, "{again}");
        assert_eq!(
            again["device_challenges"][0]["challenge"],
            first["challenge"]
        );
        // And a reload.
        let reload = c.get(LOGIN).await;
        assert_eq!(
            reload["device_challenges"][0]["challenge"],
            first["challenge"]
        );
        let assertion = sign(&mut key, &first["challenge"]);
        let out = c
            .post_outcome(LOGIN, json!({"component": VALIDATE, "webauthn": assertion}))
            .await;
        assert!(out.logged_in, "{}", out.challenge.to_json());
    }

    #[tokio::test]
    async fn passwordless_login() {
        let env = validate_env().await;
        let mut key = SoftPasskey::new(false);
        let cred = register(&env, &mut key).await;
        let mut c = env.client();
        let v = c.get(PASSWORDLESS).await;
        assert_eq!(v["component"], VALIDATE, "{v}");
        let dc = &v["device_challenges"][0];
        assert_eq!(dc["device_class"], "webauthn", "{v}");
        assert_eq!(dc["challenge"]["allowCredentials"], json!([]), "{v}");
        // The soft passkey cannot discover its credentials: name it (the server does
        // not depend on allowCredentials).
        let mut hinted = dc["challenge"].clone();
        hinted["allowCredentials"] = json!([{"type": "public-key", "id": cred["id"]}]);
        let assertion = sign(&mut key, &hinted);
        let out = c
            .post_outcome(
                PASSWORDLESS,
                json!({"component": VALIDATE, "webauthn": assertion}),
            )
            .await;
        assert!(out.logged_in, "{}", out.challenge.to_json());
        assert_eq!(out.user.as_ref(), Some(&env.alice.pk));
    }
}
