#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Host stage kinds and policies by name ([`authflow::registry`]) and flows in code
//! ([`authflow::FlowBuilder`]): deterministic ids, serialisable catalogues, end-to-end
//! runs, and failing closed on names the engine does not know.

use authflow::builder::{self, BindTo};
use authflow::catalogue::{CatalogueSnapshot, Op};
use authflow::challenge::{ChallengeBody, CustomChallenge};
use authflow::model::{
    CustomPolicy, CustomStage, DenyStage, FlowDesignation, IdentificationStage, PasswordStage,
    PolicyKind, StageConfig, UserField, UserLoginStage,
};
use authflow::policy::{PolicyError, PolicyEvaluator, PolicyOutcome, PolicyRequest};
use authflow::stages::{Response, StageContext, StageError, StageKind, StageOutcome};
use authflow::store::{FlowSource, StoreError};
use authflow::{Engine, FlowBuilder, FlowRequest, Outcome, defaults, memory};
use serde_json::{Value, json};

const SLUG: &str = "host-login";
const TERMS: &str = "example.terms";
const ALLOWLIST: &str = "example.ip_allowlist";
const PASSWORD: &str = "correct horse";

/// A host stage: shows the terms version from its settings, passes when accepted.
struct Terms;

#[derive(serde::Deserialize)]
struct TermsConfig {
    version: u32,
}

#[async_trait::async_trait]
impl StageKind for Terms {
    fn component(&self) -> Option<&str> {
        Some("x-terms")
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let config: TermsConfig = ctx.config_as()?;
        let mut fields = serde_json::Map::new();
        fields.insert("version".into(), config.version.into());
        Ok(StageOutcome::Challenge(authflow::Challenge::new(
            ChallengeBody::Custom(CustomChallenge {
                component: "x-terms".into(),
                fields,
            }),
        )))
    }

    async fn respond(
        &self,
        _ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        if response.get("accept").and_then(Value::as_bool) == Some(true) {
            Ok(StageOutcome::Done)
        } else {
            Ok(StageOutcome::Deny("Terms not accepted.".into()))
        }
    }
}

/// A host policy: passes when the client IP is in its configured list.
struct Allowlist;

#[derive(serde::Deserialize)]
struct AllowlistConfig {
    ips: Vec<String>,
}

#[async_trait::async_trait]
impl PolicyEvaluator for Allowlist {
    async fn evaluate(
        &self,
        request: &mut PolicyRequest<'_>,
    ) -> Result<PolicyOutcome, PolicyError> {
        let config: AllowlistConfig = request.config_as()?;
        Ok(match request.client_ip {
            Some(ip) if config.ips.iter().any(|i| i == ip) => PolicyOutcome::pass(),
            _ => PolicyOutcome::fail("Not from an allowed network."),
        })
    }
}

/// identification → password → terms (custom, settings) → user_login, with the custom
/// allowlist policy on the flow.
fn login_flow() -> FlowBuilder {
    FlowBuilder::new(SLUG, FlowDesignation::Authentication)
        .title("Host login")
        .policy(
            "office-network",
            PolicyKind::Custom(
                CustomPolicy::new(ALLOWLIST).with_config(json!({"ips": ["192.0.2.1"]})),
            ),
        )
        .flow_policy("office-network")
        .stage(
            "host-identification",
            IdentificationStage {
                user_fields: vec![UserField::Username],
                ..IdentificationStage::default()
            },
        )
        .stage("host-password", PasswordStage::default())
        .stage(
            "host-terms",
            CustomStage::new(TERMS).with_config(json!({"version": 3})),
        )
        .stage("host-user-login", UserLoginStage::default())
}

fn registered(stores: &memory::Stores) -> Engine {
    stores
        .engine()
        .register_stage(TERMS, Terms)
        .register_policy(ALLOWLIST, Allowlist)
        .build()
}

async fn stores_with_user() -> memory::Stores {
    let stores = memory::Stores::new();
    defaults::bootstrap_admin(stores.users.as_ref(), PASSWORD.into())
        .await
        .unwrap();
    stores
}

/// A browser-like client from one IP.
struct Client<'a> {
    engine: &'a Engine,
    req: FlowRequest,
}

impl<'a> Client<'a> {
    fn new(engine: &'a Engine, ip: &str) -> Self {
        let req = FlowRequest {
            client_ip: Some(ip.into()),
            ..FlowRequest::default()
        };
        Self { engine, req }
    }

    async fn get(&mut self) -> Value {
        let out = self.engine.plan(&self.req, SLUG).await.unwrap();
        self.keep(out)
    }

    async fn post(&mut self, body: Value) -> Value {
        let out = self.engine.step(&self.req, SLUG, &body).await.unwrap();
        self.keep(out)
    }

    fn keep(&mut self, out: Outcome) -> Value {
        self.req.session_id = Some(out.session_id.clone());
        let mut json = out.challenge.to_json();
        json["logged_in"] = out.logged_in.into();
        json
    }

    /// Identification and password for `akadmin`; returns the next challenge.
    async fn log_in(&mut self) -> Value {
        let first = self.get().await;
        assert_eq!(first["component"], "ak-stage-identification", "{first}");
        let pw = self
            .post(json!({"component": "ak-stage-identification", "uid_field": "akadmin"}))
            .await;
        assert_eq!(pw["component"], "ak-stage-password", "{pw}");
        self.post(json!({"component": "ak-stage-password", "password": PASSWORD}))
            .await
    }
}

fn ids(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            Op::PutFlow(f) => format!("flow {} {}", f.pk, f.policybindingmodel_ptr_id),
            Op::PutStage(s) => format!("stage {}", s.pk),
            Op::PutBinding(b) => format!("binding {} {}", b.pk, b.policybindingmodel_ptr_id),
            Op::PutPolicy(p) => format!("policy {}", p.pk),
            Op::PutPolicyBinding(b) => format!("policy binding {} -> {:?}", b.pk, b.target),
            other => panic!("unexpected op {other:?}"),
        })
        .collect()
}

async fn definition_ids(stores: &memory::Stores) -> Vec<String> {
    let def = stores.flows.flow(SLUG).await.unwrap().unwrap();
    let mut out = vec![format!(
        "flow {} {}",
        def.flow.pk, def.flow.policybindingmodel_ptr_id
    )];
    for r in &def.policies {
        out.push(format!(
            "policy {} binding {}",
            r.policy.as_ref().unwrap().pk,
            r.binding.pk
        ));
    }
    for b in &def.stages {
        out.push(format!(
            "stage {} binding {} {}",
            b.stage.pk, b.binding.pk, b.binding.policybindingmodel_ptr_id
        ));
    }
    out
}

#[tokio::test]
async fn builder_ids_agree_across_builds_and_stores() {
    let a = login_flow().ops().unwrap();
    let b = login_flow().ops().unwrap();
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(a.len(), 1 + 4 + 1 + 4 + 1, "{:?}", ids(&a));
    assert_eq!(
        login_flow().flow_id(),
        builder::flow_id(SLUG),
        "the flow's id is derived from its slug"
    );
    let Op::PutStage(terms) = &a[3] else {
        panic!("{:?}", ids(&a))
    };
    assert_eq!(terms.pk, builder::stage_id("host-terms"));
    assert_eq!(
        builder::binding_id(SLUG, 30),
        match &a[8] {
            Op::PutBinding(b) => b.pk,
            other => panic!("{other:?}"),
        }
    );

    // Two instances with their own stores install the same objects.
    let one = stores_with_user().await;
    let two = stores_with_user().await;
    login_flow().install(one.flows.as_ref()).await.unwrap();
    login_flow().install(two.flows.as_ref()).await.unwrap();
    assert_eq!(definition_ids(&one).await, definition_ids(&two).await);

    // Installing again changes nothing: the revision stays, so running flows go on.
    let before = one.flows.revision(SLUG).await.unwrap();
    login_flow().install(one.flows.as_ref()).await.unwrap();
    assert_eq!(one.flows.revision(SLUG).await.unwrap(), before);
}

#[tokio::test]
async fn a_flow_started_on_one_instance_continues_after_another_installs_it() {
    let stores = stores_with_user().await;
    login_flow().install(stores.flows.as_ref()).await.unwrap();
    let engine = registered(&stores);
    let mut client = Client::new(&engine, "192.0.2.1");
    let first = client.get().await;
    assert_eq!(first["component"], "ak-stage-identification", "{first}");
    // "Another instance" redeploys with a changed title: the flow's revision moves, its
    // bindings keep their ids.
    login_flow()
        .title("Host login (v2)")
        .install(stores.flows.as_ref())
        .await
        .unwrap();
    let pw = client
        .post(json!({"component": "ak-stage-identification", "uid_field": "akadmin"}))
        .await;
    assert_eq!(pw["component"], "ak-stage-password", "{pw}");
}

#[tokio::test]
async fn reinstall_removes_bindings_the_builder_no_longer_has() {
    let stores = stores_with_user().await;
    login_flow().install(stores.flows.as_ref()).await.unwrap();
    FlowBuilder::new(SLUG, FlowDesignation::Authentication)
        .stage("host-identification", IdentificationStage::default())
        .stage("host-user-login", UserLoginStage::default())
        .install(stores.flows.as_ref())
        .await
        .unwrap();
    let def = stores.flows.flow(SLUG).await.unwrap().unwrap();
    let names: Vec<&str> = def.stages.iter().map(|b| b.stage.name.as_str()).collect();
    assert_eq!(names, ["host-identification", "host-user-login"]);
    assert!(def.policies.is_empty(), "{:?}", def.policies);
}

#[tokio::test]
async fn binding_a_policy_to_a_missing_stage_is_refused_naming_it() {
    let err = login_flow()
        .policy_binding(BindTo::Stage("nope".into()), "office-network", |_| {})
        .ops()
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound(m) if m.contains("`nope`") && m.contains("office-network")),
        "{err:?}"
    );
}

#[test]
fn duplicate_stages_and_orders_are_refused_naming_them() {
    let err = login_flow()
        .stage("host-password", PasswordStage::default())
        .ops()
        .unwrap_err();
    assert!(err.to_string().contains("`host-password` twice"), "{err}");
    let err = login_flow()
        .stage_with("host-deny", DenyStage::default(), |b| b.order = 20)
        .ops()
        .unwrap_err();
    assert!(
        err.to_string().contains("`host-password` and `host-deny`"),
        "{err}"
    );
}

#[tokio::test]
async fn custom_stages_and_policies_round_trip_through_serde() {
    let stores = memory::Stores::new();
    login_flow().install(stores.flows.as_ref()).await.unwrap();
    let def = stores.flows.flow(SLUG).await.unwrap().unwrap();
    let snapshot = CatalogueSnapshot {
        flows: vec![def.flow.clone()],
        stages: def.stages.iter().map(|b| (*b.stage).clone()).collect(),
        bindings: def.stages.iter().map(|b| b.binding.clone()).collect(),
        policies: def
            .policies
            .iter()
            .map(|r| (**r.policy.as_ref().unwrap()).clone())
            .collect(),
        policy_bindings: def.policies.iter().map(|r| r.binding.clone()).collect(),
    };
    let json = serde_json::to_value(&snapshot).unwrap();
    let back: CatalogueSnapshot = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), json);

    let terms = &back.stages[2];
    match &terms.config {
        StageConfig::Custom(c) => {
            assert_eq!(c.name, TERMS);
            assert_eq!(c.config, json!({"version": 3}));
        }
        other => panic!("{other:?}"),
    }
    match &back.policies[0].kind {
        PolicyKind::Custom(c) => {
            assert_eq!(c.name, ALLOWLIST);
            assert_eq!(c.config, json!({"ips": ["192.0.2.1"]}));
        }
        other => panic!("{other:?}"),
    }
    // The stored form names the kind; the settings are plain JSON.
    assert_eq!(
        json["stages"][2]["config"],
        json!({"kind": "custom", "name": TERMS, "config": {"version": 3}})
    );
}

#[cfg(feature = "blueprints")]
#[tokio::test]
async fn blueprint_export_writes_custom_kinds_and_settings() {
    let stores = memory::Stores::new();
    login_flow().install(stores.flows.as_ref()).await.unwrap();
    let def = stores.flows.flow(SLUG).await.unwrap().unwrap();
    let yaml = authflow::blueprint::export(&def);
    assert!(yaml.contains("authflow.customstage"), "{yaml}");
    assert!(yaml.contains(TERMS), "{yaml}");
    assert!(yaml.contains("authflow.custompolicy"), "{yaml}");
    assert!(
        yaml.contains(ALLOWLIST) && yaml.contains("192.0.2.1"),
        "{yaml}"
    );
}

#[tokio::test]
async fn a_registered_custom_stage_and_policy_run_end_to_end() {
    let stores = stores_with_user().await;
    login_flow().install(stores.flows.as_ref()).await.unwrap();
    let engine = registered(&stores);

    let mut client = Client::new(&engine, "192.0.2.1");
    let terms = client.log_in().await;
    assert_eq!(terms["component"], "x-terms", "{terms}");
    assert_eq!(terms["version"], 3, "the stage got its settings: {terms}");
    let done = client
        .post(json!({"component": "x-terms", "accept": true}))
        .await;
    assert_eq!(done["logged_in"], true, "{done}");

    // The policy's settings decide: another IP may not start the flow.
    let mut outsider = Client::new(&engine, "198.51.100.7");
    let refused = outsider.get().await;
    assert_eq!(refused["component"], "ak-stage-access-denied", "{refused}");
    assert!(
        refused.to_string().contains("Not from an allowed network."),
        "{refused}"
    );
}

fn assert_denied_naming(challenge: &Value, name: &str) {
    assert_eq!(
        challenge["component"], "ak-stage-access-denied",
        "{challenge}"
    );
    let message = challenge["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("`{name}`")) && message.contains("not registered"),
        "{challenge}"
    );
}

#[tokio::test]
async fn an_unregistered_custom_stage_denies_naming_it() {
    let stores = stores_with_user().await;
    login_flow().install(stores.flows.as_ref()).await.unwrap();
    // The policy is known, the stage kind is not.
    let engine = stores
        .engine()
        .register_policy(ALLOWLIST, Allowlist)
        .build();
    let mut client = Client::new(&engine, "192.0.2.1");
    let denied = client.log_in().await;
    assert_denied_naming(&denied, TERMS);
    assert_eq!(denied["logged_in"], false);
    // And stays denied: the next request starts over, it does not skip the stage.
    let again = client.log_in().await;
    assert_denied_naming(&again, TERMS);
    assert_eq!(again["logged_in"], false);
}

#[tokio::test]
async fn an_unregistered_flow_policy_keeps_the_flow_from_starting() {
    let stores = stores_with_user().await;
    // Negated, and "pass on error": evaluated, a failing policy would let this pass.
    login_flow()
        .policy(
            "lenient",
            PolicyKind::Custom(CustomPolicy::new("example.missing")),
        )
        .policy_binding(BindTo::Flow, "lenient", |b| {
            b.negate = true;
            b.failure_result = true;
        })
        .install(stores.flows.as_ref())
        .await
        .unwrap();
    let engine = registered(&stores);
    let mut client = Client::new(&engine, "192.0.2.1");
    let refused = client.get().await;
    assert_eq!(refused["component"], "ak-stage-access-denied", "{refused}");
    assert!(
        refused.to_string().contains("`lenient`")
            && refused.to_string().contains("example.missing"),
        "{refused}"
    );
}

/// A deny stage guarded by a host policy, re-evaluated when reached.
fn guarded_flow() -> FlowBuilder {
    FlowBuilder::new(SLUG, FlowDesignation::Authentication)
        .policy(
            "office-network",
            PolicyKind::Custom(
                CustomPolicy::new(ALLOWLIST).with_config(json!({"ips": ["192.0.2.1"]})),
            ),
        )
        .stage(
            "host-identification",
            IdentificationStage {
                user_fields: vec![UserField::Username],
                ..IdentificationStage::default()
            },
        )
        .stage("host-password", PasswordStage::default())
        .stage(
            "host-deny-outside",
            DenyStage {
                deny_message: "Outside the office.".into(),
            },
        )
        .policy_binding(
            BindTo::Stage("host-deny-outside".into()),
            "office-network",
            |b| b.negate = true,
        )
        .stage("host-user-login", UserLoginStage::default())
}

#[tokio::test]
async fn an_unregistered_stage_binding_policy_never_skips_its_stage() {
    let stores = stores_with_user().await;
    guarded_flow().install(stores.flows.as_ref()).await.unwrap();

    // With the policy registered the deny stage works as the recipe says.
    let engine = registered(&stores);
    let mut outsider = Client::new(&engine, "198.51.100.7");
    let denied = outsider.log_in().await;
    assert_eq!(denied["component"], "ak-stage-access-denied", "{denied}");
    let mut insider = Client::new(&engine, "192.0.2.1");
    assert_eq!(insider.log_in().await["logged_in"], true);

    // An engine without it: failing the binding would *skip* the deny stage and log the
    // outsider in. The flow does not start instead.
    let bare = stores.engine().build();
    let mut outsider = Client::new(&bare, "198.51.100.7");
    let refused = outsider.get().await;
    assert_eq!(refused["component"], "ak-stage-access-denied", "{refused}");
    assert!(
        refused.to_string().contains("`office-network`"),
        "{refused}"
    );

    // Planned on an instance that has it, continued on one that does not (a rolling
    // deploy): the re-evaluated binding denies at its stage, naming the policy.
    let mut client = Client::new(&engine, "198.51.100.7");
    client.get().await;
    let pw = client
        .post(json!({"component": "ak-stage-identification", "uid_field": "akadmin"}))
        .await;
    assert_eq!(pw["component"], "ak-stage-password", "{pw}");
    let mut moved = Client::new(&bare, "198.51.100.7");
    moved.req.session_id = client.req.session_id.clone();
    let denied = moved
        .post(json!({"component": "ak-stage-password", "password": PASSWORD}))
        .await;
    assert_eq!(denied["logged_in"], false, "{denied}");
    assert_eq!(denied["component"], "ak-stage-access-denied", "{denied}");
    assert!(denied.to_string().contains("`office-network`"), "{denied}");
}

#[cfg(feature = "redis")]
mod redis {
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::time::Duration;

    use authflow::redis::{RedisConfig, RedisFlowStore, RedisSessionStore};

    use super::*;

    /// `AUTHFLOW_TEST_REDIS`, or a redis-server child on a random port.
    struct Server {
        child: Option<Child>,
        url: String,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    fn server() -> Server {
        if let Ok(url) = std::env::var("AUTHFLOW_TEST_REDIS") {
            return Server { child: None, url };
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (or set AUTHFLOW_TEST_REDIS)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child: Some(child),
            url: format!("redis://127.0.0.1:{port}/"),
        }
    }

    #[tokio::test]
    async fn custom_kinds_round_trip_through_the_redis_store_and_run() {
        let server = server();
        let config = RedisConfig {
            key_prefix: format!("t{}:", uuid::Uuid::new_v4().simple()),
            timeout: Duration::from_millis(500),
            ..RedisConfig::default()
        };
        let sessions = RedisSessionStore::connect(&server.url, config.clone())
            .await
            .unwrap();
        let flows = Arc::new(RedisFlowStore::new(&sessions));
        login_flow().install(flows.as_ref()).await.unwrap();

        // A second instance reads the catalogue back: the custom kinds kept their
        // names and settings.
        let other = RedisSessionStore::connect(&server.url, config)
            .await
            .unwrap();
        let other_flows = Arc::new(RedisFlowStore::new(&other));
        let def = other_flows.flow(SLUG).await.unwrap().unwrap();
        match &def.stages[2].stage.config {
            StageConfig::Custom(c) => {
                assert_eq!(
                    (c.name.as_str(), &c.config),
                    (TERMS, &json!({"version": 3}))
                );
            }
            other => panic!("{other:?}"),
        }
        match &def.policies[0].policy.as_ref().unwrap().kind {
            PolicyKind::Custom(c) => assert_eq!(c.name, ALLOWLIST),
            other => panic!("{other:?}"),
        }

        // And runs it with its own registry.
        let stores = stores_with_user().await;
        let engine = Engine::builder(other_flows, Arc::new(other), stores.users.clone())
            .register_stage(TERMS, Terms)
            .register_policy(ALLOWLIST, Allowlist)
            .build();
        let mut client = Client::new(&engine, "192.0.2.1");
        let terms = client.log_in().await;
        assert_eq!(terms["version"], 3, "{terms}");
        let done = client
            .post(json!({"component": "x-terms", "accept": true}))
            .await;
        assert_eq!(done["logged_in"], true, "{done}");
    }
}
