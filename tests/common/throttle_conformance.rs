//! Conformance of a `ThrottleStore` (login-throttle counters), run against the memory
//! and the Redis implementations.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use authflow::store::{ThrottleCounter, ThrottleStore};

/// Windows open at the first hit, count every hit, read as empty once passed, reopen
/// on the next hit; clear removes; concurrent hits are never lost.
pub async fn run(store: Arc<dyn ThrottleStore>, prefix: &str) {
    let key = format!("{prefix}conformance");
    let empty = ThrottleCounter::default();
    assert_eq!(store.get(&key, 1000, 60).await.unwrap(), empty);
    for n in 1..=3 {
        let c = store.hit(&key, 1000 + u64::from(n), 60).await.unwrap();
        assert_eq!(
            c,
            ThrottleCounter {
                count: n,
                since: 1001
            }
        );
    }
    assert_eq!(store.get(&key, 1060, 60).await.unwrap().count, 3);
    // The window is counted from the first hit.
    assert_eq!(store.get(&key, 1061, 60).await.unwrap(), empty);
    let c = store.hit(&key, 1061, 60).await.unwrap();
    assert_eq!(
        c,
        ThrottleCounter {
            count: 1,
            since: 1061
        }
    );
    store.clear(&key).await.unwrap();
    assert_eq!(store.get(&key, 1061, 60).await.unwrap(), empty);
    // Other keys are independent.
    store.hit(&format!("{key}:a"), 2000, 60).await.unwrap();
    assert_eq!(
        store.get(&format!("{key}:b"), 2000, 60).await.unwrap(),
        empty
    );

    // 50 concurrent hits: all counted.
    let key = format!("{prefix}concurrent");
    let mut handles = Vec::new();
    for _ in 0..50 {
        let (store, key) = (store.clone(), key.clone());
        handles.push(tokio::spawn(async move {
            store.hit(&key, 5000, 600).await.unwrap()
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(store.get(&key, 5001, 600).await.unwrap().count, 50);
}
