//! A conformance suite for [`SessionStore`] implementations, written once against
//! `&dyn SessionStore` so every store (memory today, Redis later) runs the same checks.
//!
//! Include it from a test crate with
//! `#[path = "common/session_conformance.rs"] mod session_conformance;` and call each
//! check on a store. The checks use fresh random session ids, so one store can run
//! them all. The expiry checks need a store built on a [`ManualClock`] with known
//! idle and absolute lifetimes.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use authflow::StoreError;
use authflow::clock::ManualClock;
use authflow::model::UserId;
use authflow::plan::{SessionId, SessionState};
use authflow::store::SessionStore;

/// A state recognisable by `mark` (kept in `authenticated_at`).
pub fn marked(mark: u64) -> SessionState {
    SessionState {
        authenticated_at: Some(mark),
        ..SessionState::default()
    }
}

/// The mark of a loaded state.
fn mark_of(state: &SessionState) -> Option<u64> {
    state.authenticated_at
}

/// Loads `(version, mark)`, or `None` when the session is missing.
async fn peek(store: &dyn SessionStore, id: &SessionId) -> Option<(u64, Option<u64>)> {
    store
        .load(id)
        .await
        .unwrap()
        .map(|v| (v.version, mark_of(&v.value)))
}

/// An unknown id loads as `None`; deleting it is not an error.
pub async fn load_missing_is_none(store: &dyn SessionStore) {
    let id = SessionId::generate();
    assert!(store.load(&id).await.unwrap().is_none());
    store.delete(&id).await.unwrap();
    assert!(store.load(&id).await.unwrap().is_none());
}

/// `save(None)` creates the session at version 1 with exactly the saved state; a
/// second `save(None)` on the existing session is a conflict and writes nothing.
pub async fn create_starts_at_version_one(store: &dyn SessionStore) {
    let id = SessionId::generate();
    assert_eq!(store.save(&id, &marked(7), None).await.unwrap(), 1);
    assert_eq!(peek(store, &id).await, Some((1, Some(7))));

    let err = store.save(&id, &marked(8), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(peek(store, &id).await, Some((1, Some(7))));
}

/// `save(Some(current))` writes and bumps the version by one, every time.
pub async fn save_with_current_version_bumps(store: &dyn SessionStore) {
    let id = SessionId::generate();
    store.save(&id, &marked(1), None).await.unwrap();
    for v in 1..=3u64 {
        assert_eq!(
            store.save(&id, &marked(v + 1), Some(v)).await.unwrap(),
            v + 1
        );
        assert_eq!(peek(store, &id).await, Some((v + 1, Some(v + 1))));
    }
}

/// `save(Some(stale))` fails with [`StoreError::Conflict`] and writes nothing; so
/// does `save(Some(_))` for a session that does not exist.
pub async fn stale_version_conflicts_and_writes_nothing(store: &dyn SessionStore) {
    let id = SessionId::generate();
    store.save(&id, &marked(1), None).await.unwrap();
    assert_eq!(store.save(&id, &marked(2), Some(1)).await.unwrap(), 2);

    for stale in [0, 1, 3, u64::MAX] {
        let err = store.save(&id, &marked(99), Some(stale)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict),
            "version {stale}: {err:?}"
        );
        assert_eq!(peek(store, &id).await, Some((2, Some(2))));
    }

    let missing = SessionId::generate();
    let err = store.save(&missing, &marked(5), Some(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert!(store.load(&missing).await.unwrap().is_none());
}

/// `delete` removes the session (and only it); the id can then be created anew at
/// version 1, and a writer holding the old version conflicts.
pub async fn delete_removes_the_session(store: &dyn SessionStore) {
    let id = SessionId::generate();
    let other = SessionId::generate();
    store.save(&id, &marked(1), None).await.unwrap();
    store.save(&id, &marked(2), Some(1)).await.unwrap();
    store.save(&other, &marked(3), None).await.unwrap();

    store.delete(&id).await.unwrap();
    assert!(store.load(&id).await.unwrap().is_none());
    assert_eq!(peek(store, &other).await, Some((1, Some(3))));

    let err = store.save(&id, &marked(4), Some(2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert!(store.load(&id).await.unwrap().is_none());
    assert_eq!(store.save(&id, &marked(5), None).await.unwrap(), 1);
    assert_eq!(peek(store, &id).await, Some((1, Some(5))));
}

/// Sessions expire `idle_ttl` seconds after their last write: a write resets the
/// idle timer, an expired session loads as `None`, a writer holding its version
/// conflicts, and the id can be created anew.
///
/// `store` must use `clock` and expire after `idle_ttl` idle seconds (`idle_ttl >= 2`,
/// absolute lifetime at least `3 * idle_ttl`).
pub async fn idle_expiry(store: &dyn SessionStore, clock: &ManualClock, idle_ttl: u64) {
    assert!(idle_ttl >= 2);
    let id = SessionId::generate();
    store.save(&id, &marked(1), None).await.unwrap();

    clock.advance(idle_ttl - 1);
    assert_eq!(peek(store, &id).await, Some((1, Some(1))));
    // The write resets the idle timer.
    assert_eq!(store.save(&id, &marked(2), Some(1)).await.unwrap(), 2);
    clock.advance(idle_ttl - 1);
    assert_eq!(peek(store, &id).await, Some((2, Some(2))));

    clock.advance(1);
    assert!(store.load(&id).await.unwrap().is_none());
    let err = store.save(&id, &marked(3), Some(2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert!(store.load(&id).await.unwrap().is_none());
    assert_eq!(store.save(&id, &marked(4), None).await.unwrap(), 1);
    assert_eq!(peek(store, &id).await, Some((1, Some(4))));
}

/// Sessions end `absolute_ttl` seconds after creation however often they are written.
///
/// `store` must use `clock`, with `idle_ttl >= 2` and `absolute_ttl > idle_ttl`.
pub async fn absolute_expiry(
    store: &dyn SessionStore,
    clock: &ManualClock,
    idle_ttl: u64,
    absolute_ttl: u64,
) {
    assert!(idle_ttl >= 2 && absolute_ttl > idle_ttl);
    let id = SessionId::generate();
    store.save(&id, &marked(0), None).await.unwrap();
    let mut version = 1;
    let mut elapsed = 0;
    // Keep the session busy (never idle) until just before its absolute end.
    while elapsed + idle_ttl - 1 < absolute_ttl {
        clock.advance(idle_ttl - 1);
        elapsed += idle_ttl - 1;
        version = store
            .save(&id, &marked(version), Some(version))
            .await
            .unwrap();
    }
    clock.advance(absolute_ttl - elapsed - 1);
    assert_eq!(peek(store, &id).await, Some((version, Some(version - 1))));
    clock.advance(1);
    assert!(store.load(&id).await.unwrap().is_none());
}

/// Polls futures together on the current task and collects their outputs in order.
async fn join_all<'a, T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'a>>>) -> Vec<T> {
    let mut futures: Vec<Option<_>> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

/// Asserts that of `results` (saver `i` wrote `marked(100 + i)` over `version`)
/// exactly one won, the others conflicted, and the stored state is the winner's.
async fn exactly_one_won(
    store: &dyn SessionStore,
    id: &SessionId,
    version: u64,
    results: &[Result<u64, StoreError>],
) {
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = winners[0];
    assert_eq!(results[winner].as_ref().unwrap(), &(version + 1));
    for (i, r) in results.iter().enumerate() {
        if i != winner {
            assert!(matches!(r, Err(StoreError::Conflict)), "saver {i}: {r:?}");
        }
    }
    assert_eq!(
        peek(store, id).await,
        Some((version + 1, Some(100 + winner as u64)))
    );
}

/// Concurrent savers holding the same version: exactly one wins, the others get
/// [`StoreError::Conflict`], and the stored state is the winner's. Also for creation
/// (`save(None)` racing on a new id).
pub async fn concurrent_savers_one_wins(store: &dyn SessionStore) {
    const SAVERS: u64 = 16;
    let id = SessionId::generate();
    let creators = (0..SAVERS)
        .map(|i| {
            let id = &id;
            Box::pin(async move { store.save(id, &marked(100 + i), None).await })
                as Pin<Box<dyn Future<Output = _> + Send + '_>>
        })
        .collect();
    let results = join_all(creators).await;
    exactly_one_won(store, &id, 0, &results).await;

    let version = store.load(&id).await.unwrap().unwrap().version;
    let updaters = (0..SAVERS)
        .map(|i| {
            let id = &id;
            Box::pin(async move { store.save(id, &marked(100 + i), Some(version)).await })
                as Pin<Box<dyn Future<Output = _> + Send + '_>>
        })
        .collect();
    let results = join_all(updaters).await;
    exactly_one_won(store, &id, version, &results).await;
}

/// As [`concurrent_savers_one_wins`], with the savers on separate runtime tasks so a
/// multi-threaded runtime runs them in parallel.
pub async fn parallel_savers_one_wins(store: Arc<dyn SessionStore>) {
    const SAVERS: u64 = 16;
    for round in 0..20 {
        let id = SessionId::generate();
        store.save(&id, &marked(round), None).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(SAVERS as usize));
        let handles: Vec<_> = (0..SAVERS)
            .map(|i| {
                let (store, id, barrier) = (store.clone(), id.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.save(&id, &marked(100 + i), Some(1)).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap());
        }
        exactly_one_won(store.as_ref(), &id, 1, &results).await;
    }
}

/// A state logged in as `user`.
fn logged_in(user: UserId) -> SessionState {
    SessionState {
        user: Some(user),
        ..SessionState::default()
    }
}

/// `delete_user_sessions(user, keep)` deletes every session logged in as `user` but
/// `keep`; sessions of other users, anonymous sessions and a session that was logged in
/// as `user` and has since logged out stay.
pub async fn delete_user_sessions_ends_only_that_users_other_sessions(store: &dyn SessionStore) {
    let (user, other) = (UserId::new_v4(), UserId::new_v4());
    let (a, b, keep) = (
        SessionId::generate(),
        SessionId::generate(),
        SessionId::generate(),
    );
    for id in [&a, &b, &keep] {
        store
            .save(id, &logged_in(user.clone()), None)
            .await
            .unwrap();
    }
    // Saved twice while logged in: still one session to delete.
    store
        .save(&b, &logged_in(user.clone()), Some(1))
        .await
        .unwrap();
    let others = SessionId::generate();
    store.save(&others, &logged_in(other), None).await.unwrap();
    let anonymous = SessionId::generate();
    store.save(&anonymous, &marked(3), None).await.unwrap();
    let logged_out = SessionId::generate();
    store
        .save(&logged_out, &logged_in(user.clone()), None)
        .await
        .unwrap();
    store.save(&logged_out, &marked(4), Some(1)).await.unwrap();

    assert_eq!(
        store
            .delete_user_sessions(user.clone(), &keep)
            .await
            .unwrap(),
        2
    );
    assert!(store.load(&a).await.unwrap().is_none());
    assert!(store.load(&b).await.unwrap().is_none());
    for id in [&keep, &others, &anonymous, &logged_out] {
        assert!(
            store.load(id).await.unwrap().is_some(),
            "{id:?} was deleted"
        );
    }
    // Nothing left to end; the other user's session is untouched by a second call.
    assert_eq!(store.delete_user_sessions(user, &keep).await.unwrap(), 0);
    assert_eq!(
        store
            .delete_user_sessions(UserId::new_v4(), &keep)
            .await
            .unwrap(),
        0
    );
    assert!(store.load(&others).await.unwrap().is_some());
}

/// Every check that needs no clock, in order.
pub async fn run_without_clock(store: Arc<dyn SessionStore>) {
    load_missing_is_none(store.as_ref()).await;
    create_starts_at_version_one(store.as_ref()).await;
    save_with_current_version_bumps(store.as_ref()).await;
    stale_version_conflicts_and_writes_nothing(store.as_ref()).await;
    delete_removes_the_session(store.as_ref()).await;
    concurrent_savers_one_wins(store.as_ref()).await;
    delete_user_sessions_ends_only_that_users_other_sessions(store.as_ref()).await;
    parallel_savers_one_wins(store).await;
}
