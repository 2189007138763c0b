#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The flow-token stores (memory, and SQLite with feature `sqlite`): found by digest,
//! single-use (two concurrent consumes: one wins), expired tokens not consumed, keys
//! stored only as digests, purge of long-expired tokens. authentik's `FlowToken`
//! (authentik/flows/models.py) and `_check_flow_token` (flows/views/executor.py).

use std::sync::Arc;

use authflow::model::{FlowId, UserId};
use authflow::plan::{FlowPlan, PlanContext};
use authflow::random::OsRandom;
use authflow::store::{FlowToken, FlowTokens, TokenState, flow_token_digest, new_flow_token_key};

fn token(digest: &str, expires: u64) -> FlowToken {
    FlowToken {
        digest: digest.to_owned(),
        flow: "default-recovery-flow".into(),
        user: Some(UserId::new("u1")),
        plan: FlowPlan {
            flow_pk: FlowId::new(),
            bindings: Vec::new(),
            context: PlanContext::new(),
        },
        created: 100,
        expires,
        used: None,
    }
}

async fn conformance(store: Arc<dyn FlowTokens>) {
    let (key, digest) = new_flow_token_key(&OsRandom);
    assert_eq!(key.expose().len(), 64, "256 random bits, hex");
    assert_eq!(
        flow_token_digest(key.expose()).as_deref(),
        Some(digest.as_str())
    );
    assert_ne!(digest, key.expose(), "only the digest is stored");
    store.create(token(&digest, 1000)).await.unwrap();
    assert!(
        store.create(token(&digest, 1000)).await.is_err(),
        "digests are unique"
    );
    let found = store.find(&digest).await.unwrap().unwrap();
    assert!(matches!(
        TokenState::of(Some(found.clone()), 500),
        TokenState::Valid(_)
    ));
    assert!(matches!(
        TokenState::of(Some(found), 1000),
        TokenState::Expired(_)
    ));

    // Concurrent consumes: exactly one wins.
    let (a, b) = tokio::join!(store.consume(&digest, 500), store.consume(&digest, 500));
    let winners = [a.unwrap(), b.unwrap()].into_iter().flatten().count();
    assert_eq!(winners, 1);
    let used = store.find(&digest).await.unwrap().unwrap();
    assert_eq!(used.used, Some(500));
    assert!(matches!(
        TokenState::of(Some(used), 500),
        TokenState::Used(_)
    ));

    // An expired token is not consumed.
    let (_, old) = new_flow_token_key(&OsRandom);
    store.create(token(&old, 200)).await.unwrap();
    assert!(store.consume(&old, 200).await.unwrap().is_none());
    assert!(store.consume("sha256$unknown", 1).await.unwrap().is_none());
    assert!(store.find("sha256$unknown").await.unwrap().is_none());

    // Purge drops tokens that expired before the bound, used or not.
    assert_eq!(store.purge(500).await.unwrap(), 1);
    assert!(store.find(&old).await.unwrap().is_none());
    assert!(store.find(&digest).await.unwrap().is_some());
}

#[test]
fn client_keys_that_cannot_be_ours_have_no_digest() {
    assert!(flow_token_digest("").is_none());
    assert!(flow_token_digest(&"A".repeat(64)).is_none());
    assert!(flow_token_digest(&"a".repeat(63)).is_none());
    assert!(flow_token_digest(&"0".repeat(64)).is_some());
}

#[tokio::test]
async fn memory_store() {
    conformance(Arc::new(authflow::memory::MemoryFlowTokens::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store() {
    let path = std::env::temp_dir().join(format!("authflow-tokens-{}.db", uuid::Uuid::new_v4()));
    let store = authflow::sql::SqlStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    conformance(Arc::new(store)).await;
    let _ = std::fs::remove_file(path);
}
