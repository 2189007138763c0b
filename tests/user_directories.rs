//! The user-directory conformance suite (tests/common/directory_conformance.rs) against
//! every backend: [`MemoryUserDirectory`], SQLite and — when `AUTHFLOW_TEST_POSTGRES`
//! is set — PostgreSQL (features `sqlite`, `postgres`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/directory_conformance.rs"]
mod directory_conformance;
#[path = "common/directory_identifiers.rs"]
mod directory_identifiers;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[path = "common/sql.rs"]
mod sql;

use std::sync::Arc;

use authflow::hashing::PasswordHashing;
use authflow::memory::MemoryUserDirectory;
use directory_conformance::{BoxFuture, Dir};

fn memory(hasher: Arc<dyn PasswordHashing>) -> BoxFuture<Dir> {
    Box::pin(async move {
        let dir = Arc::new(MemoryUserDirectory::with_hasher(hasher));
        let (importer, counter) = (dir.clone(), dir.clone());
        Dir::new(
            "memory",
            dir.clone(),
            dir,
            Box::new(move |user, hash| {
                let r = importer.import_user(user, hash);
                Box::pin(async move { r })
            }),
            Box::new(move || {
                let n = counter.len() as u64;
                Box::pin(async move { n })
            }),
            Box::new(()),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_directory_conforms() {
    directory_conformance::run(&memory, "memory").await;
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_backends {
    use super::*;
    use authflow::sql::SqlConfig;

    /// An empty directory in a fresh database of `db`'s kind.
    fn fresh(postgres: bool) -> impl Fn(Arc<dyn PasswordHashing>) -> BoxFuture<Dir> + Sync {
        move |hasher| {
            Box::pin(async move {
                let db = if postgres {
                    sql::postgres().await.expect("checked by the caller")
                } else {
                    sql::sqlite()
                };
                let store = Arc::new(
                    db.open_with(SqlConfig {
                        hasher,
                        ..SqlConfig::default()
                    })
                    .await,
                );
                let (importer, counter) = (store.clone(), store.clone());
                Dir::new(
                    db.label,
                    store.clone(),
                    store,
                    Box::new(move |user, hash| {
                        let store = importer.clone();
                        Box::pin(async move { store.import_user(user, hash).await })
                    }),
                    Box::new(move || {
                        let store = counter.clone();
                        Box::pin(async move { store.user_count().await.unwrap() })
                    }),
                    Box::new(db),
                )
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_directory_conforms() {
        directory_conformance::run(&fresh(false), "sqlite").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_directory_conforms() {
        // Reports (or, under CI, fails) the skip when no server is configured.
        if sql::postgres().await.is_none() {
            return;
        }
        directory_conformance::run(&fresh(true), "postgres").await;
    }
}
