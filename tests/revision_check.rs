//! The definition cache's revision check (`EngineBuilder::revision_check_interval`):
//! by default the flow's revision is asked on every request; with an interval, a
//! revision checked within it is trusted — except after a write through the engine's
//! own store, which is seen at once — and an edit made elsewhere (another instance on
//! the same database) is served within the interval. And the HTTP adapter's first GET
//! asks for the revision once, not twice, on a cache miss.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[path = "common/sql.rs"]
mod sql;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use authflow::memory::{MemoryFlowStore, MemorySessionStore, MemoryUserDirectory};
use authflow::model::{
    BindingId, Flow, FlowStageBinding, Policy, PolicyBinding, PolicyBindingId, PolicyId, Stage,
    StageId,
};
use authflow::store::{FlowAdmin, FlowDefinition, FlowSource, FlowStore, StoreError};
use authflow::{Engine, EngineBuilder, defaults};

const LOGIN: &str = defaults::AUTHENTICATION;

/// A flow store counting the revision queries the engine makes.
#[derive(Default)]
struct CountingRevisions {
    inner: MemoryFlowStore,
    revisions: AtomicUsize,
}

impl CountingRevisions {
    fn count(&self) -> usize {
        self.revisions.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl FlowSource for CountingRevisions {
    async fn flow(&self, slug: &str) -> Result<Option<FlowDefinition>, StoreError> {
        self.inner.flow(slug).await
    }
    async fn revision(&self, slug: &str) -> Result<Option<u64>, StoreError> {
        self.revisions.fetch_add(1, Ordering::SeqCst);
        self.inner.revision(slug).await
    }
    async fn flows(&self) -> Result<Vec<Flow>, StoreError> {
        self.inner.flows().await
    }
    fn local_writes(&self) -> u64 {
        self.inner.local_writes()
    }
}

#[async_trait]
impl FlowAdmin for CountingRevisions {
    async fn put_flow(&self, flow: Flow) -> Result<(), StoreError> {
        self.inner.put_flow(flow).await
    }
    async fn delete_flow(&self, slug: &str) -> Result<bool, StoreError> {
        self.inner.delete_flow(slug).await
    }
    async fn put_stage(&self, stage: Stage) -> Result<(), StoreError> {
        self.inner.put_stage(stage).await
    }
    async fn delete_stage(&self, pk: StageId) -> Result<bool, StoreError> {
        self.inner.delete_stage(pk).await
    }
    async fn put_binding(&self, binding: FlowStageBinding) -> Result<(), StoreError> {
        self.inner.put_binding(binding).await
    }
    async fn delete_binding(&self, pk: BindingId) -> Result<bool, StoreError> {
        self.inner.delete_binding(pk).await
    }
    async fn put_policy(&self, policy: Policy) -> Result<(), StoreError> {
        self.inner.put_policy(policy).await
    }
    async fn delete_policy(&self, pk: PolicyId) -> Result<bool, StoreError> {
        self.inner.delete_policy(pk).await
    }
    async fn put_policy_binding(&self, binding: PolicyBinding) -> Result<(), StoreError> {
        self.inner.put_policy_binding(binding).await
    }
    async fn delete_policy_binding(&self, pk: PolicyBindingId) -> Result<bool, StoreError> {
        self.inner.delete_policy_binding(pk).await
    }
}

async fn counted(
    customize: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> (Engine, Arc<CountingRevisions>) {
    let flows = Arc::new(CountingRevisions::default());
    defaults::install(flows.as_ref()).await.unwrap();
    let builder = Engine::builder(
        flows.clone(),
        Arc::new(MemorySessionStore::new()),
        Arc::new(MemoryUserDirectory::new()),
    );
    (customize(builder).build(), flows)
}

/// Retitles `slug` through `store`.
async fn retitle(store: &dyn FlowStore, slug: &str, title: &str) {
    let mut flow = store.flow(slug).await.unwrap().unwrap().flow;
    flow.title = title.into();
    store.put_flow(flow).await.unwrap();
}

#[tokio::test]
async fn by_default_every_request_checks_the_revision() {
    for customize in [(|b| b) as fn(EngineBuilder) -> EngineBuilder, |b| {
        b.revision_check_interval(Duration::ZERO)
    }] {
        let (engine, flows) = counted(customize).await;
        let first = engine.definition(LOGIN).await.unwrap();
        for _ in 0..9 {
            assert!(Arc::ptr_eq(
                &first,
                &engine.definition(LOGIN).await.unwrap()
            ));
        }
        assert_eq!(flows.count(), 10);
    }
}

#[tokio::test]
async fn within_the_interval_a_checked_revision_is_trusted() {
    let (engine, flows) = counted(|b| b.revision_check_interval(Duration::from_secs(60))).await;
    let first = engine.definition(LOGIN).await.unwrap();
    for _ in 0..99 {
        assert!(Arc::ptr_eq(
            &first,
            &engine.definition(LOGIN).await.unwrap()
        ));
    }
    assert_eq!(flows.count(), 1, "one revision query for 100 requests");
    // Another flow has its own check.
    engine.definition(defaults::INVALIDATION).await.unwrap();
    assert_eq!(flows.count(), 2);
    // An unknown flow is asked every time (nothing to trust).
    for _ in 0..2 {
        assert!(engine.definition("no-such-flow").await.is_err());
    }
    assert_eq!(flows.count(), 4);
}

#[tokio::test]
async fn a_write_through_the_engines_store_is_seen_at_once() {
    let (engine, flows) = counted(|b| b.revision_check_interval(Duration::from_secs(60))).await;
    let first = engine.definition(LOGIN).await.unwrap();
    retitle(flows.as_ref(), LOGIN, "Edited here").await;
    let second = engine.definition(LOGIN).await.unwrap();
    assert_eq!(second.flow.title, "Edited here");
    assert!(!Arc::ptr_eq(&first, &second));
    // A write to another flow makes one recheck (same revision: same definition).
    retitle(flows.as_ref(), defaults::INVALIDATION, "Other").await;
    assert!(Arc::ptr_eq(
        &second,
        &engine.definition(LOGIN).await.unwrap()
    ));
    let checks = flows.count();
    assert!(Arc::ptr_eq(
        &second,
        &engine.definition(LOGIN).await.unwrap()
    ));
    assert_eq!(flows.count(), checks, "trusted again after the recheck");
}

/// Two instances on one database: with an interval, an edit through the other
/// instance is served within it (not at once: the bound is the interval), an edit
/// through this one at once.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[tokio::test]
async fn an_edit_on_another_instance_is_served_within_the_interval() {
    const INTERVAL: Duration = Duration::from_millis(400);
    for db in sql::databases().await {
        let a = Arc::new(db.open().await);
        let b = Arc::new(db.open().await);
        defaults::install(a.as_ref()).await.unwrap();
        let engine = Engine::builder(a.clone(), a.clone(), a.clone())
            .revision_check_interval(INTERVAL)
            .build();
        let first = engine.definition(LOGIN).await.unwrap();
        let edited = std::time::Instant::now();
        retitle(b.as_ref(), LOGIN, "Edited on B").await;
        let mut seen = None;
        while edited.elapsed() < INTERVAL * 5 {
            let def = engine.definition(LOGIN).await.unwrap();
            if def.flow.title == "Edited on B" {
                seen = Some(edited.elapsed());
                break;
            }
            // Until then, the trusted definition.
            assert!(Arc::ptr_eq(&first, &def), "{}", db.label);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = seen.unwrap_or_else(|| panic!("{}: the edit on B was never served", db.label));
        assert!(
            seen <= INTERVAL + Duration::from_millis(300),
            "{}: {seen:?}",
            db.label
        );

        // An edit through A (the engine's own store) is served by the next request.
        retitle(a.as_ref(), LOGIN, "Edited on A").await;
        assert_eq!(
            engine.definition(LOGIN).await.unwrap().flow.title,
            "Edited on A"
        );
    }
}

/// The HTTP adapter's first GET of a visitor without a session asks for the revision
/// once on a miss of its challenge cache (it used to ask twice: once for the cache
/// lookup, once more when planning), and once on a hit.
#[cfg(feature = "http")]
#[tokio::test]
async fn the_first_get_checks_the_revision_once() {
    let (engine, flows) = counted(|b| b).await;
    let app = authflow::http::router(Arc::new(engine), authflow::http::HttpConfig::default());
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
    let url = format!("http://{addr}/api/v3/flows/executor/{LOGIN}/");
    let before = flows.count();
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("ak-stage-identification"));
    assert_eq!(flows.count() - before, 1, "a miss: one revision query");
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(flows.count() - before, 2, "a hit: one more");
}
