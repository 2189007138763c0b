#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Memory vs SQLite vs PostgreSQL stores, side by side, one run: a full login
//! (plan, identification, password; same fast hasher everywhere) and an executor GET
//! (planning a flow on a fresh session: the definition comes from the engine's cache,
//! the SQL store answers one revision query — or none, in the rows `… 1s`, whose
//! engine trusts a revision checked within 1 s: `EngineBuilder::revision_check_interval`,
//! as the reference server sets it with a SQL catalogue).
//!
//! ```text
//! cargo bench --features sqlite,postgres,danger-fast-hasher --bench sql_stores
//! AUTHFLOW_TEST_POSTGRES=postgres://… cargo bench … # adds the PostgreSQL column
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use authflow::hashing::DangerFastHasher;
use authflow::memory::{
    MemoryFlowStore, MemoryReputation, MemorySessionStore, MemoryUserDirectory,
};
use authflow::sql::{SqlConfig, SqlStore};
use authflow::{Engine, FlowRequest, defaults};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

async fn memory_engine() -> Engine {
    let flows = Arc::new(MemoryFlowStore::new());
    let users = Arc::new(MemoryUserDirectory::with_hasher(Arc::new(DangerFastHasher)));
    defaults::install(flows.as_ref()).await.unwrap();
    defaults::bootstrap_admin(users.as_ref(), PASSWORD.into())
        .await
        .unwrap();
    Engine::builder(flows, Arc::new(MemorySessionStore::new()), users)
        .reputation(Arc::new(MemoryReputation::new()))
        .build()
}

async fn sql_engine(url: &str, revision_check: Option<Duration>) -> Engine {
    let store = Arc::new(
        SqlStore::open_with(
            url,
            SqlConfig {
                hasher: Arc::new(DangerFastHasher),
                ..SqlConfig::default()
            },
        )
        .await
        .unwrap(),
    );
    defaults::install(store.as_ref()).await.unwrap();
    // A database of an earlier run has akadmin already (with the same password).
    let _ = defaults::bootstrap_admin(store.as_ref(), PASSWORD.into()).await;
    let builder = Engine::builder(store.clone(), store.clone(), store.clone()).reputation(store);
    match revision_check {
        Some(interval) => builder.revision_check_interval(interval),
        None => builder,
    }
    .build()
}

async fn login(engine: &Engine) {
    let slug = defaults::AUTHENTICATION;
    let out = engine.plan(&FlowRequest::default(), slug).await.unwrap();
    let req = FlowRequest::new(Some(out.session_id), "");
    engine
        .step(
            &req,
            slug,
            &json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
        )
        .await
        .unwrap();
    let out = engine
        .step(
            &req,
            slug,
            &json!({"component": "ak-stage-password", "password": PASSWORD}),
        )
        .await
        .unwrap();
    assert!(out.logged_in);
}

async fn get(engine: &Engine) {
    engine
        .plan(&FlowRequest::default(), defaults::AUTHENTICATION)
        .await
        .unwrap();
}

/// Mean time of `f` over `n` runs after 20 warm-up runs.
async fn mean<F: std::future::Future<Output = ()>>(n: u32, mut f: impl FnMut() -> F) -> Duration {
    for _ in 0..20 {
        f().await;
    }
    let started = Instant::now();
    for _ in 0..n {
        f().await;
    }
    started.elapsed() / n
}

/// Counts the statements sqlx logs (target `sqlx::query`).
#[derive(Default)]
struct Statements(std::sync::atomic::AtomicU64);

impl tracing::Subscriber for Statements {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "sqlx::query"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let file = std::env::temp_dir().join(format!(
            "authflow-bench-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        let sqlite = format!("sqlite://{}", file.display());
        let second = Some(Duration::from_secs(1));
        let mut engines = vec![
            ("memory", memory_engine().await),
            ("sqlite", sql_engine(&sqlite, None).await),
            ("sqlite 1s", sql_engine(&sqlite, second).await),
        ];
        if let Ok(url) = std::env::var("AUTHFLOW_TEST_POSTGRES") {
            engines.push(("postgres", sql_engine(&url, None).await));
            engines.push(("postgres 1s", sql_engine(&url, second).await));
        } else {
            println!("(no AUTHFLOW_TEST_POSTGRES: PostgreSQL skipped)");
        }
        let mut base = (Duration::ZERO, Duration::ZERO);
        println!(
            "{:<12} {:>14} {:>10} {:>16} {:>10}",
            "stores", "login", "ratio", "executor GET", "ratio"
        );
        for (name, engine) in &engines {
            let l = mean(300, || login(engine)).await;
            let g = mean(1000, || get(engine)).await;
            if *name == "memory" {
                base = (l, g);
            }
            println!(
                "{name:<12} {:>11.1} µs {:>9.1}x {:>13.1} µs {:>9.1}x",
                l.as_secs_f64() * 1e6,
                l.as_secs_f64() / base.0.as_secs_f64(),
                g.as_secs_f64() * 1e6,
                g.as_secs_f64() / base.1.as_secs_f64(),
            );
        }
        // Store round trips of one login: the statements sqlx reports, per backend
        // (a global subscriber: SQLite runs its statements on a worker thread).
        let counter = Arc::new(Statements::default());
        tracing::dispatcher::set_global_default(tracing::Dispatch::from(counter.clone())).unwrap();
        for (name, engine) in engines.iter().filter(|(n, _)| *n != "memory") {
            counter.0.store(0, std::sync::atomic::Ordering::SeqCst);
            login(engine).await;
            println!(
                "{name}: {} statements (round trips) per login",
                counter.0.load(std::sync::atomic::Ordering::SeqCst)
            );
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    });
}
