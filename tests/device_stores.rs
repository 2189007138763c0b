//! The device-store conformance suite (tests/common/device_conformance.rs) against
//! every backend: [`MemoryDevices`], SQLite and — when `AUTHFLOW_TEST_POSTGRES` is
//! set — PostgreSQL; and the SQL migration that adds `authflow_devices` (version 3),
//! applied to an empty database and on top of one at version 2.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/device_conformance.rs"]
mod device_conformance;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[path = "common/sql.rs"]
mod sql;

use std::sync::Arc;

use authflow::memory::MemoryDevices;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_devices_conform() {
    device_conformance::run(Arc::new(MemoryDevices::new()), "memory").await;
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_backends {
    use super::*;
    use authflow::sql::{Backend, MIGRATIONS};
    use authflow::store::{DeviceStore, DeviceUse};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sql_devices_conform() {
        for db in sql::databases().await {
            let store = Arc::new(db.open().await);
            device_conformance::run(store.clone(), db.label).await;
            store.close().await;
        }
    }

    /// Devices survive reopening the database (they are rows, not a cache).
    #[tokio::test]
    async fn devices_persist_across_reopening() {
        for db in sql::databases().await {
            let user = device_conformance::user();
            let d = device_conformance::device(&user, device_conformance::totp(), 1);
            {
                let store = db.open().await;
                store.add(d.clone()).await.unwrap();
                assert!(
                    store
                        .record_use(&user, &d.id, DeviceUse::TotpStep(5), 2)
                        .await
                        .unwrap()
                );
                store.close().await;
            }
            let store = db.open().await;
            let got = store.devices(&user).await.unwrap();
            assert_eq!(got.len(), 1, "{}", db.label);
            assert_eq!(got[0].last_used, Some(2), "{}", db.label);
            assert!(
                !store
                    .record_use(&user, &d.id, DeviceUse::TotpStep(5), 3)
                    .await
                    .unwrap(),
                "{}: the step stays used",
                db.label
            );
        }
    }

    /// Version 3 on an empty database: the latest schema, with `authflow_devices`.
    #[tokio::test]
    async fn the_devices_migration_applies_to_an_empty_database() {
        for db in sql::databases().await {
            let store = db.open().await;
            assert!(store.schema_version().await.unwrap() >= 3, "{}", db.label);
            let user = device_conformance::user();
            store
                .add(device_conformance::device(
                    &user,
                    device_conformance::webauthn(0),
                    1,
                ))
                .await
                .unwrap();
            assert_eq!(store.devices(&user).await.unwrap().len(), 1);
        }
    }

    /// A database at version 2 (made by hand, with a user and an app password in it)
    /// gets `authflow_devices`; its data stays.
    #[tokio::test]
    async fn the_devices_migration_applies_on_top_of_version_2() {
        use sqlx::Connection;
        for db in sql::databases().await {
            sqlx::any::install_default_drivers();
            let backend = Backend::of_url(&db.url).unwrap();
            let url = if backend == Backend::Sqlite {
                format!("{}?mode=rwc", db.url)
            } else {
                db.url.clone()
            };
            let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
            sqlx::query(
                "CREATE TABLE authflow_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
                 applied_at BIGINT NOT NULL)",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            for m in MIGRATIONS.iter().filter(|m| m.version <= 2) {
                for statement in m.sql(backend) {
                    sqlx::query(&statement).execute(&mut conn).await.unwrap();
                }
                sqlx::query("INSERT INTO authflow_schema VALUES ($1, $2, 0)")
                    .bind(m.version)
                    .bind(m.name)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            let pk = uuid::Uuid::new_v4().to_string();
            sqlx::query(
                "INSERT INTO authflow_users (pk, username, name, email, is_active, path, \
                 user_type, attributes, password_hash) \
                 VALUES ($1, 'kept', 'Kept', '', 1, 'users', 'internal', '{}', NULL)",
            )
            .bind(pk.clone())
            .execute(&mut conn)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO authflow_app_passwords (pk, user_pk, identifier, key_hash, \
                 description, created, expires, last_used) \
                 VALUES ('ap', $1, 'kept-token', 'h', 'd', 1, NULL, NULL)",
            )
            .bind(pk.clone())
            .execute(&mut conn)
            .await
            .unwrap();
            // The devices table does not exist yet.
            assert!(
                sqlx::query("SELECT COUNT(*) FROM authflow_devices")
                    .fetch_one(&mut conn)
                    .await
                    .is_err(),
                "{}",
                db.label
            );
            conn.close().await.unwrap();

            let store = db.open().await;
            assert_eq!(
                store.schema_version().await.unwrap(),
                MIGRATIONS.last().unwrap().version,
                "{}",
                db.label
            );
            assert_eq!(
                store
                    .app_password_hash("kept-token")
                    .await
                    .unwrap()
                    .as_deref(),
                Some("h"),
                "{}: version 2's rows stay",
                db.label
            );
            let user = authflow::model::UserId::new(pk);
            let d = device_conformance::device(&user, device_conformance::totp(), 1);
            store.add(d.clone()).await.unwrap();
            assert!(
                store
                    .record_use(&user, &d.id, DeviceUse::TotpStep(1), 2)
                    .await
                    .unwrap()
            );
            let applied: Vec<i64> = {
                let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
                let rows = sqlx::query("SELECT version FROM authflow_schema ORDER BY version")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                use sqlx::Row;
                rows.iter().map(|r| r.get::<i64, _>("version")).collect()
            };
            assert_eq!(applied[..3], [1, 2, 3], "{}", db.label);
        }
    }
}
