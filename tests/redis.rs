//! The Redis stores against a real `redis-server` (installed by `.ci/run` from Debian's
//! packages) started on 127.0.0.1 with a random port.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/session_conformance.rs"]
mod session_conformance;
#[path = "common/throttle_conformance.rs"]
mod throttle_conformance;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authflow::model::{DummyStage, FlowStageBinding, Stage};
use authflow::redis::{RedisConfig, RedisFlowStore, RedisSessionStore};
use authflow::store::SessionStore;
use authflow::{Engine, Error, FlowRequest, StoreError, defaults, memory};
use serde_json::json;

/// A redis-server child process with an append-only file, so a killed server comes
/// back with its data.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("authflow-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Redis {
            child: None,
            port,
            dir,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server); .ci/run installs it");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config() -> RedisConfig {
    RedisConfig {
        key_prefix: format!("t{}:", uuid::Uuid::new_v4().simple()),
        timeout: Duration::from_millis(500),
        ..RedisConfig::default()
    }
}

#[tokio::test]
async fn session_store_conformance() {
    let redis = Redis::start();
    let store = RedisSessionStore::connect(&redis.url(), config())
        .await
        .unwrap();
    session_conformance::run_without_clock(Arc::new(store)).await;
}

#[tokio::test]
async fn unreachable_at_start_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisSessionStore::connect(&format!("redis://127.0.0.1:{port}/"), config())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(ref m) if m.contains("cannot reach")),
        "{err:?}"
    );
    let err = RedisSessionStore::connect("not a url", config())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(ref m) if m.contains("invalid URL")),
        "{err:?}"
    );
}

#[tokio::test]
async fn idle_session_expires_after_its_ttl() {
    let redis = Redis::start();
    let store = RedisSessionStore::connect(
        &redis.url(),
        RedisConfig {
            idle_ttl: 1,
            ..config()
        },
    )
    .await
    .unwrap();
    let id = authflow::plan::SessionId::generate();
    store
        .save(&id, &session_conformance::marked(1), None)
        .await
        .unwrap();
    assert!(store.load(&id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        store.load(&id).await.unwrap().is_none(),
        "idle session must be gone after its TTL"
    );
}

#[tokio::test]
async fn writes_never_extend_past_the_absolute_expiry() {
    let redis = Redis::start();
    let store = RedisSessionStore::connect(
        &redis.url(),
        RedisConfig {
            idle_ttl: 100,
            absolute_ttl: 2,
            ..config()
        },
    )
    .await
    .unwrap();
    let id = authflow::plan::SessionId::generate();
    let mut v = store
        .save(&id, &session_conformance::marked(1), None)
        .await
        .unwrap();
    // Keep writing (each write refreshes the idle TTL) until past the absolute expiry.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        match store
            .save(&id, &session_conformance::marked(2), Some(v))
            .await
        {
            Ok(next) => v = next,
            Err(StoreError::Conflict) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        store.load(&id).await.unwrap().is_none(),
        "absolute expiry must hold despite writes"
    );
}

async fn redis_engine(redis: &Redis, prefix: &RedisConfig) -> (Arc<Engine>, memory::Stores) {
    let sessions = RedisSessionStore::connect(&redis.url(), prefix.clone())
        .await
        .unwrap();
    let flows = Arc::new(RedisFlowStore::new(&sessions));
    let stores = memory::Stores::new();
    defaults::install(flows.as_ref()).await.unwrap();
    if stores.users.is_empty() {
        defaults::bootstrap_admin(stores.users.as_ref(), "pw-redis".into())
            .await
            .unwrap();
    }
    // Instances sharing a session store share the session key (`session_key` docs):
    // otherwise one that has not seen a new session stored yet mints its own for it.
    let engine = Engine::builder(flows, Arc::new(sessions), stores.users.clone())
        .reputation(stores.reputation.clone())
        .session_key(b"authflow-redis-tests".to_vec())
        .build();
    (Arc::new(engine), stores)
}

#[tokio::test]
async fn fifty_concurrent_identical_posts_advance_the_plan_once() {
    let redis = Redis::start();
    let (engine, _stores) = redis_engine(&redis, &config()).await;
    let slug = defaults::AUTHENTICATION;
    let first = engine.plan(&FlowRequest::default(), slug).await.unwrap();
    let sid = first.session_id.clone();
    let body = json!({"component": "ak-stage-identification", "uid_field": "akadmin"});
    let mut handles = Vec::new();
    for _ in 0..50 {
        let (engine, body, sid) = (engine.clone(), body.clone(), sid.clone());
        handles.push(tokio::spawn(async move {
            engine
                .step(&FlowRequest::new(Some(sid), ""), slug, &body)
                .await
        }));
    }
    let mut advanced = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(out) => {
                let c = out.challenge;
                assert_eq!(
                    c.component(),
                    "ak-stage-password",
                    "every answer shows the password stage: {:?}",
                    c.to_json()
                );
                if c.response_errors.is_empty() {
                    advanced += 1;
                } else {
                    // The losers were re-run on fresh state: their identification answer no
                    // longer matches the current stage and is refused.
                    assert!(c.response_errors.contains_key("non_field_errors"));
                }
            }
            Err(Error::Conflict) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(advanced, 1, "exactly one request advanced the plan");
    let state = engine
        .env()
        .sessions
        .load(&sid)
        .await
        .unwrap()
        .unwrap()
        .value;
    let fs = &state.flows[slug];
    assert_eq!(fs.history.len(), 1, "one stage passed");
    assert_eq!(
        fs.plan.as_ref().unwrap().bindings.len(),
        2,
        "password and login remain"
    );
}

#[tokio::test]
async fn redis_lost_mid_flow_then_back_continues_the_same_flow() {
    let mut redis = Redis::start();
    let (engine, _stores) = redis_engine(&redis, &config()).await;
    let slug = defaults::AUTHENTICATION;
    let out = engine.plan(&FlowRequest::default(), slug).await.unwrap();
    let sid = out.session_id;
    let req = FlowRequest::new(Some(sid.clone()), "");
    let out = engine
        .step(
            &req,
            slug,
            &json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
        )
        .await
        .unwrap();
    assert_eq!(out.challenge.component(), "ak-stage-password");

    redis.kill();
    let err = engine
        .step(
            &req,
            slug,
            &json!({"component": "ak-stage-password", "password": "pw-redis"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::Unavailable(_))),
        "{err:?}"
    );
    let err = engine.plan(&req, slug).await.unwrap_err();
    assert!(
        matches!(err, Error::Store(StoreError::Unavailable(_))),
        "{err:?}"
    );

    redis.spawn();
    // The connection manager reconnects; allow it a moment.
    let mut last = None;
    for _ in 0..40 {
        match engine
            .step(
                &req,
                slug,
                &json!({"component": "ak-stage-password", "password": "pw-redis"}),
            )
            .await
        {
            Ok(out) => {
                last = Some(out);
                break;
            }
            Err(Error::Store(StoreError::Unavailable(_))) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    let out = last.expect("redis came back");
    assert_eq!(
        out.challenge.redirect_to(),
        Some("/"),
        "{:?}",
        out.challenge.to_json()
    );
    assert!(out.logged_in);
}

#[tokio::test]
async fn a_flow_changed_on_one_instance_is_reloaded_by_the_other() {
    let redis = Redis::start();
    let cfg = config();
    let (a, _) = redis_engine(&redis, &cfg).await;
    let (b, _) = redis_engine(&redis, &cfg).await;
    let slug = defaults::INVALIDATION;
    let before = a.definition(slug).await.unwrap();
    assert_eq!(before.stages.len(), 1);
    assert_eq!(a.cache_count(slug), 1);

    // Instance B adds a stage to the flow.
    let flow = b.definition(slug).await.unwrap().flow.clone();
    let stage = Stage::new("added-on-b", DummyStage::default());
    b.env().flows.put_stage(stage.clone()).await.unwrap();
    b.env()
        .flows
        .put_binding(FlowStageBinding::new(flow.pk, stage.pk, 50))
        .await
        .unwrap();

    let after = a.definition(slug).await.unwrap();
    assert_eq!(
        after.stages.len(),
        2,
        "A dropped its cached definition and sees B's change"
    );
    assert!(!Arc::ptr_eq(&before, &after));
    assert_eq!(a.cache_count(slug), 1);
    // Unchanged generation: A serves the cached definition again.
    assert!(Arc::ptr_eq(&after, &a.definition(slug).await.unwrap()));
}

#[cfg(feature = "http")]
mod two_instances {
    use super::*;
    use authflow::http::{HttpConfig, router};

    async fn serve(engine: Arc<Engine>) -> String {
        let config = HttpConfig {
            secret_key: b"shared-secret".to_vec(),
            ..HttpConfig::default()
        };
        let app = router(engine, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
        format!("http://{addr}")
    }

    /// Two server instances (each its own engine, stores and port) sharing one Redis:
    /// start the login on A, send the password to B, continue on A; logout on B is seen by A.
    #[tokio::test]
    async fn login_across_instances_and_logout_seen_by_the_other() {
        let redis = Redis::start();
        let cfg = config();
        let (ea, _) = redis_engine(&redis, &cfg).await;
        let (eb, _) = redis_engine(&redis, &cfg).await;
        let (a, b) = (serve(ea).await, serve(eb).await);
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let exec = |base: &str, slug: &str| format!("{base}/api/v3/flows/executor/{slug}/?query=");
        let login = defaults::AUTHENTICATION;

        let c: serde_json::Value = client
            .get(exec(&a, login))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["component"], "ak-stage-identification");
        let c: serde_json::Value = client
            .post(exec(&a, login))
            .json(&json!({"component": "ak-stage-identification", "uid_field": "akadmin"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["component"], "ak-stage-password");
        let r = client
            .post(exec(&b, login))
            .json(&json!({"component": "ak-stage-password", "password": "pw-redis"}))
            .send()
            .await
            .unwrap();
        let csrf = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("authentik_csrf="))
            .map(|v| v.split(';').next().unwrap().to_owned())
            .expect("csrf cookie at login");
        let c: serde_json::Value = r.json().await.unwrap();
        assert_eq!(c["component"], "xak-flow-redirect");

        // On A the session is logged in: the password-change flow (require_authenticated) applies.
        let c: serde_json::Value = client
            .get(exec(&a, defaults::PASSWORD_CHANGE))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["component"], "ak-stage-prompt", "{c}");

        // Logout on B: the GET asks for confirmation, the confirming POST (with the CSRF
        // header, as every logged-in POST) logs out.
        let c: serde_json::Value = client
            .get(exec(&b, defaults::INVALIDATION))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["component"], "ak-stage-consent", "{c}");
        let token = c["token"].as_str().unwrap().to_owned();
        let c: serde_json::Value = client
            .post(exec(&b, defaults::INVALIDATION))
            .header("X-authentik-CSRF", &csrf)
            .json(&json!({"component": "ak-stage-consent", "token": token}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["component"], "xak-flow-redirect", "{c}");

        // A sees the logout: the password-change flow no longer applies.
        let c: serde_json::Value = client
            .get(exec(&a, defaults::PASSWORD_CHANGE))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["component"], "ak-stage-access-denied", "{c}");
    }

    /// Over HTTP against two instances: 50 concurrent identical POSTs on one session
    /// advance the plan once and never answer a 5xx; with Redis gone the same session
    /// gets 503 JSON, and once Redis is back it continues to a successful login.
    #[tokio::test]
    async fn concurrent_posts_and_a_redis_outage_over_http() {
        let mut redis = Redis::start();
        let cfg = config();
        let (ea, _) = redis_engine(&redis, &cfg).await;
        let (eb, _) = redis_engine(&redis, &cfg).await;
        let (a, b) = (serve(ea).await, serve(eb).await);
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let login = defaults::AUTHENTICATION;
        let exec = |base: &str| format!("{base}/api/v3/flows/executor/{login}/?query=");
        let c: serde_json::Value = client
            .get(exec(&a))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["component"], "ak-stage-identification");

        let body = json!({"component": "ak-stage-identification", "uid_field": "akadmin"});
        let mut handles = Vec::new();
        for i in 0..50 {
            let (client, url, body) = (
                client.clone(),
                exec(if i % 2 == 0 { &a } else { &b }),
                body.clone(),
            );
            handles.push(tokio::spawn(async move {
                client.post(url).json(&body).send().await.unwrap()
            }));
        }
        let mut advanced = 0;
        for h in handles {
            let r = h.await.unwrap();
            let status = r.status().as_u16();
            assert!(
                status == 200 || status == 409,
                "no 5xx or other errors: {status}"
            );
            let c: serde_json::Value = r.json().await.unwrap();
            if status == 200 {
                assert_eq!(c["component"], "ak-stage-password", "{c}");
                if c.get("response_errors").is_none() {
                    advanced += 1;
                }
            } else {
                assert_eq!(c["code"], "conflict", "{c}");
            }
        }
        assert_eq!(advanced, 1, "exactly one POST advanced the plan");

        redis.kill();
        let r = client.get(exec(&b)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 503);
        let c: serde_json::Value = r.json().await.unwrap();
        assert_eq!(c["code"], "store_unavailable", "{c}");
        let r = client
            .post(exec(&a))
            .json(&json!({"component": "ak-stage-password", "password": "pw-redis"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 503);

        redis.spawn();
        let mut done = None;
        for _ in 0..40 {
            let r = client
                .post(exec(&a))
                .json(&json!({"component": "ak-stage-password", "password": "pw-redis"}))
                .send()
                .await
                .unwrap();
            if r.status().as_u16() == 503 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            assert_eq!(r.status().as_u16(), 200);
            done = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        let c = done.expect("redis came back");
        assert_eq!(
            c["component"], "xak-flow-redirect",
            "the same session continued: {c}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_store_conformance() {
    let redis = Redis::start();
    let sessions = RedisSessionStore::connect(&redis.url(), config())
        .await
        .unwrap();
    let store = authflow::redis::RedisThrottleStore::new(&sessions);
    throttle_conformance::run(Arc::new(store), "").await;
}

/// Two instances sharing Redis share the login throttle: failures on one count on the
/// other, so spreading guesses over instances gains nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttle_is_shared_by_instances() {
    let redis = Redis::start();
    let cfg = config();
    let mut engines = Vec::new();
    for _ in 0..2 {
        let sessions = RedisSessionStore::connect(&redis.url(), cfg.clone())
            .await
            .unwrap();
        let throttle = Arc::new(authflow::redis::RedisThrottleStore::new(&sessions));
        let flows = Arc::new(RedisFlowStore::new(&sessions));
        defaults::install(flows.as_ref()).await.unwrap();
        let stores = memory::Stores::new();
        defaults::bootstrap_admin(stores.users.as_ref(), "pw-redis".into())
            .await
            .unwrap();
        let engine = Engine::builder(flows, Arc::new(sessions), stores.users.clone())
            .throttle_store(throttle)
            .build();
        engines.push((engine, stores));
    }
    let slug = defaults::AUTHENTICATION;
    async fn attempt(engine: &Engine, slug: &str, pw: &str) -> serde_json::Value {
        let req = FlowRequest::default().with_client_ip("192.0.2.9");
        let out = engine.plan(&req, slug).await.unwrap();
        let req = FlowRequest::new(Some(out.session_id), "").with_client_ip("192.0.2.9");
        let ident = json!({"component": "ak-stage-identification", "uid_field": "akadmin"});
        engine.step(&req, slug, &ident).await.unwrap();
        let pw = json!({"component": "ak-stage-password", "password": pw});
        engine
            .step(&req, slug, &pw)
            .await
            .unwrap()
            .challenge
            .to_json()
    }
    for i in 0..10 {
        let v = attempt(&engines[i % 2].0, slug, "wrong").await;
        assert!(!v.to_string().contains("Too many"), "{i}: {v}");
    }
    for (engine, _) in &engines {
        let v = attempt(engine, slug, "pw-redis").await;
        assert!(v.to_string().contains("Too many failed attempts"), "{v}");
    }
}
