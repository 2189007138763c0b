#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Session-store round trips (one load + one compare-and-swap save) against the
//! in-memory store and a local Redis, in the same run; plus the cost and size of the
//! session encoding (JSON, which we use, against MessagePack).
//!
//! ```text
//! cargo bench --features redis --bench sessions
//! ```
//!
//! The Redis part starts its own `redis-server` on a random loopback port (Debian's
//! `redis-server` package), or uses `AUTHFLOW_BENCH_REDIS_URL` when set.

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authflow::memory::MemorySessionStore;
use authflow::plan::{SessionId, SessionState};
use authflow::redis::{RedisConfig, RedisSessionStore};
use authflow::store::SessionStore;
use authflow::{FlowRequest, defaults, memory};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

/// A realistic session: mid-login, pending user set, one history entry.
fn sample_state(rt: &tokio::runtime::Runtime) -> SessionState {
    rt.block_on(async {
        let stores = memory::Stores::new();
        let engine = stores.engine().build();
        defaults::install(stores.flows.as_ref()).await.unwrap();
        let slug = defaults::AUTHENTICATION;
        let out = engine.plan(&FlowRequest::default(), slug).await.unwrap();
        let req = FlowRequest::new(Some(out.session_id), "next=%2Fapp%2F");
        let out = engine
            .step(&req, slug, &json!({"component": "ak-stage-identification", "uid_field": "someone@example.com"}))
            .await
            .unwrap();
        stores.sessions.load(&out.session_id).await.unwrap().unwrap().value
    })
}

fn start_redis() -> (Option<Child>, String) {
    if let Ok(url) = std::env::var("AUTHFLOW_BENCH_REDIS_URL") {
        return (None, url);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server) or AUTHFLOW_BENCH_REDIS_URL");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (Some(child), format!("redis://127.0.0.1:{port}/"))
}

async fn round_trip(store: &dyn SessionStore, id: &SessionId) {
    let v = store.load(id).await.unwrap().unwrap();
    store.save(id, &v.value, Some(v.version)).await.unwrap();
}

fn bench_sessions(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = sample_state(&rt);

    let mut g = c.benchmark_group("session_round_trip");
    let memory: Arc<dyn SessionStore> = Arc::new(MemorySessionStore::new());
    let id = SessionId::generate();
    rt.block_on(memory.save(&id, &state, None)).unwrap();
    g.bench_function("memory", |b| {
        b.to_async(&rt).iter(|| round_trip(memory.as_ref(), &id))
    });

    let (mut child, url) = start_redis();
    let redis: Arc<dyn SessionStore> = Arc::new(
        rt.block_on(RedisSessionStore::connect(&url, RedisConfig::default()))
            .unwrap(),
    );
    let id = SessionId::generate();
    rt.block_on(redis.save(&id, &state, None)).unwrap();
    g.bench_function("redis", |b| {
        b.to_async(&rt).iter(|| round_trip(redis.as_ref(), &id))
    });
    g.finish();
    rt.block_on(redis.delete(&id)).unwrap();
    if let Some(c) = child.as_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }

    let json_bytes = serde_json::to_vec(&state).unwrap();
    let msgpack_bytes = rmp_serde::to_vec_named(&state).unwrap();
    println!(
        "session encoding size: JSON {} bytes, MessagePack {} bytes",
        json_bytes.len(),
        msgpack_bytes.len()
    );
    let mut g = c.benchmark_group("session_encoding");
    g.bench_function("json_roundtrip", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&state)).unwrap();
            black_box(serde_json::from_slice::<SessionState>(&bytes).unwrap())
        })
    });
    g.bench_function("msgpack_roundtrip", |b| {
        b.iter(|| {
            let bytes = rmp_serde::to_vec_named(black_box(&state)).unwrap();
            black_box(rmp_serde::from_slice::<SessionState>(&bytes).unwrap())
        })
    });
    g.finish();
}

mod group {
    //! The benchmark group.
    use super::*;
    criterion_group!(benches, bench_sessions);
}
criterion_main!(group::benches);
