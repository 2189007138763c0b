//! Host-friendly HTTP API: the authflow router merges into a host app with its own
//! fallback and state.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use authflow::http::{HttpConfig, admin_router, executor_router, page_router, router};
use authflow::{defaults, memory};

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

async fn engine() -> Arc<authflow::Engine> {
    let stores = memory::Stores::new();
    let engine = Arc::new(stores.engine().build());
    defaults::install(stores.flows.as_ref()).await.unwrap();
    engine
}

#[derive(Clone)]
struct HostState {
    greeting: &'static str,
}

#[tokio::test]
async fn router_merges_beside_host_fallback_and_state() {
    let engine = engine().await;
    let app = axum::Router::new()
        .route(
            "/hello",
            axum::routing::get(|axum::extract::State(s): axum::extract::State<HostState>| async move {
                s.greeting
            }),
        )
        .merge(router(engine, HttpConfig::default()))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "host 404") })
        .with_state(HostState { greeting: "hi" });
    let base = serve(app).await;
    let c = reqwest::Client::new();
    let r = c.get(format!("{base}/hello")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hi");
    let r = c.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "host 404");
    let r = c
        .get(format!(
            "{base}/api/v3/flows/executor/default-authentication-flow/?query="
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["component"], "ak-stage-identification");
}

#[tokio::test]
async fn split_routers_serve_only_their_routes() {
    let engine = engine().await;
    let base = serve(executor_router(engine.clone(), HttpConfig::default())).await;
    let c = reqwest::Client::new();
    let ok = c
        .get(format!(
            "{base}/api/v3/flows/executor/default-authentication-flow/?query="
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let r = c
        .get(format!("{base}/if/flow/default-authentication-flow/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .get(format!("{base}/api/v3/flows/instances/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let base = serve(page_router(engine.clone(), HttpConfig::default())).await;
    let r = c
        .get(format!("{base}/if/flow/default-authentication-flow/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let base = serve(admin_router(engine, HttpConfig::default())).await;
    let r = c
        .get(format!("{base}/api/v3/flows/instances/"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 404);
}
