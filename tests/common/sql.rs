//! Databases for the SQL store tests: a fresh SQLite file per test, and — when
//! `AUTHFLOW_TEST_POSTGRES` holds a URL (`.ci/run` starts a throwaway cluster and sets
//! it) — a fresh PostgreSQL database per test on that server. Without the variable the
//! PostgreSQL half is skipped with a message, except under CI (`CI` set), where that
//! is a failure.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::PathBuf;

use authflow::sql::{SqlConfig, SqlStore};

/// One test database.
pub struct Db {
    /// `sqlite` or `postgres`.
    pub label: &'static str,
    /// Its URL.
    pub url: String,
    file: Option<PathBuf>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", f.display()));
            }
        }
    }
}

impl Db {
    /// Opens the store with default settings.
    pub async fn open(&self) -> SqlStore {
        SqlStore::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("{}: open {}: {e:?}", self.label, self.url))
    }

    /// Opens the store with settings.
    pub async fn open_with(&self, config: SqlConfig) -> SqlStore {
        SqlStore::open_with(&self.url, config)
            .await
            .unwrap_or_else(|e| panic!("{}: open {}: {e:?}", self.label, self.url))
    }
}

/// A fresh, empty SQLite database file.
pub fn sqlite() -> Db {
    let file = std::env::temp_dir().join(format!(
        "authflow-sql-test-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    Db {
        label: "sqlite",
        url: format!("sqlite://{}", file.display()),
        file: Some(file),
    }
}

/// A fresh, empty PostgreSQL database, or `None` (with a message) without a server.
pub async fn postgres() -> Option<Db> {
    let Ok(base) = std::env::var("AUTHFLOW_TEST_POSTGRES") else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "AUTHFLOW_TEST_POSTGRES is not set under CI: the PostgreSQL tests would be skipped"
            );
        }
        eprintln!(
            "SKIPPED the PostgreSQL half: set AUTHFLOW_TEST_POSTGRES=postgres://… \
             (bash ci/start-postgres.sh prints one)"
        );
        return None;
    };
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("AUTHFLOW_TEST_POSTGRES={base}: {e}"));
    let name = format!("authflow_t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    let (server, _) = base.rsplit_once('/').expect("a URL with a database name");
    Some(Db {
        label: "postgres",
        url: format!("{server}/{name}"),
        file: None,
    })
}

/// Every backend available: SQLite always, PostgreSQL when configured.
pub async fn databases() -> Vec<Db> {
    let mut dbs = vec![sqlite()];
    dbs.extend(postgres().await);
    dbs
}
