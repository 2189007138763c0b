#![cfg(feature = "http")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Password hashing off the async workers: the engine's `Blocking` hook, the HTTP
//! adapter's bounded `HashPool`, and the challenge error when the pool is full.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use authflow::blocking::{Blocking, BlockingJob, PoolBusy};
use authflow::hashing::{Argon2idHasher, PasswordHashing};
use authflow::http::{HASH_THREAD_PREFIX, HashPool};
use authflow::memory::{MemoryUserDirectory, Stores};
use authflow::{Engine, FlowRequest, Outcome, defaults};
use serde_json::{Value, json};

const LOGIN: &str = defaults::AUTHENTICATION;
const PASSWORD: &str = "hash-pool-password";

/// argon2id, recording the thread each hash and verification ran on.
#[derive(Default)]
struct ThreadRecorder {
    threads: Mutex<Vec<String>>,
}

impl ThreadRecorder {
    fn note(&self) {
        let name = std::thread::current().name().unwrap_or("").to_owned();
        self.threads.lock().unwrap().push(name);
    }
}

impl PasswordHashing for ThreadRecorder {
    fn hash(&self, password: &str) -> Result<String, String> {
        self.note();
        Argon2idHasher.hash(password)
    }
    fn verify(&self, hash: &str, password: &str) -> bool {
        self.note();
        Argon2idHasher.verify(hash, password)
    }
    fn needs_rehash(&self, hash: &str) -> bool {
        Argon2idHasher.needs_rehash(hash)
    }
}

/// A pool that is always full.
struct AlwaysBusy;

#[async_trait]
impl Blocking for AlwaysBusy {
    async fn run(&self, _job: BlockingJob) -> Result<(), PoolBusy> {
        Err(PoolBusy)
    }
}

async fn engine(pool: Option<Arc<dyn Blocking>>, hasher: Arc<dyn PasswordHashing>) -> Arc<Engine> {
    let mut stores = Stores::new();
    stores.users = Arc::new(MemoryUserDirectory::with_hasher(hasher));
    defaults::install(stores.flows.as_ref()).await.unwrap();
    defaults::bootstrap_admin(stores.users.as_ref(), PASSWORD.to_owned().into())
        .await
        .unwrap();
    let mut b = stores.engine();
    if let Some(p) = pool {
        b = b.blocking(p);
    }
    Arc::new(b.build())
}

/// GET and identify akadmin; returns the request for the password step.
async fn to_password(engine: &Engine) -> FlowRequest {
    let first = engine.plan(&FlowRequest::default(), LOGIN).await.unwrap();
    let req = FlowRequest {
        session_id: Some(first.session_id),
        ..FlowRequest::default()
    };
    let out = engine
        .step(
            &req,
            LOGIN,
            &json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
        )
        .await
        .unwrap();
    assert_eq!(out.challenge.component(), "ak-stage-password");
    req
}

async fn password(engine: &Engine, req: &FlowRequest, pw: &str) -> Outcome {
    engine
        .step(
            req,
            LOGIN,
            &json!({"component": "ak-stage-password", "password": pw}),
        )
        .await
        .expect("never an error (a 5xx) for a full pool")
}

#[tokio::test]
async fn a_full_pool_answers_a_challenge_error_not_a_5xx_and_counts_no_failure() {
    let engine = engine(Some(Arc::new(AlwaysBusy)), Arc::new(Argon2idHasher)).await;
    let req = to_password(&engine).await;
    for _ in 0..10 {
        let out = password(&engine, &req, PASSWORD).await;
        let v: Value = out.challenge.to_json();
        assert_eq!(v["component"], "ak-stage-password", "{v}");
        assert_eq!(
            v["response_errors"]["non_field_errors"][0]["string"],
            "Too many logins at once, try again",
            "{v}"
        );
        assert!(!out.logged_in);
    }
    // Ten refusals are not ten failed attempts (the limit is 5): the flow is intact.
    let state = engine
        .env()
        .sessions
        .load(req.session_id.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    let plan = state.value.flows[LOGIN].plan.clone().unwrap();
    assert_eq!(plan.bindings.len(), 2, "still at the password stage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_pool_runs_password_hashing_on_its_own_threads() {
    let recorder = Arc::new(ThreadRecorder::default());
    let pool: Arc<dyn Blocking> = Arc::new(HashPool::new(2, 8));
    let engine = engine(Some(pool), recorder.clone()).await;
    recorder.threads.lock().unwrap().clear();
    let req = to_password(&engine).await;
    let out = password(&engine, &req, "wrong").await;
    assert_eq!(out.challenge.component(), "ak-stage-password");
    let out = password(&engine, &req, PASSWORD).await;
    assert!(out.logged_in);
    let threads = recorder.threads.lock().unwrap().clone();
    assert!(threads.len() >= 2, "{threads:?}");
    for t in &threads {
        assert!(
            t.starts_with(HASH_THREAD_PREFIX),
            "hashing ran on `{t}`, not on the pool: {threads:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_pool_is_bounded_and_refuses_when_full() {
    let pool = Arc::new(HashPool::new(1, 1));
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    // Job 1 occupies the only thread until released.
    let p = pool.clone();
    let r = release_rx.clone();
    let first = tokio::spawn(async move {
        p.run(Box::pin(async move {
            started_tx.send(()).unwrap();
            r.lock().unwrap().recv().unwrap();
        }))
        .await
    });
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    // Job 2 waits in the queue (room for one).
    let p = pool.clone();
    let second = tokio::spawn(async move { p.run(Box::pin(async {})).await });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // Job 3 finds the queue full: refused at once, without running.
    let ran = Arc::new(Mutex::new(false));
    let flag = ran.clone();
    let third = pool
        .run(Box::pin(async move {
            *flag.lock().unwrap() = true;
        }))
        .await;
    assert_eq!(third, Err(PoolBusy));
    release_tx.send(()).unwrap();
    assert_eq!(first.await.unwrap(), Ok(()));
    assert_eq!(second.await.unwrap(), Ok(()));
    assert!(!*ran.lock().unwrap());
}
