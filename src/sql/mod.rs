//! Durable stores in SQLite (feature `sqlite`) or PostgreSQL (feature `postgres`).
//!
//! One [`SqlStore`] over one connection pool implements every storage trait:
//! [`FlowSource`](crate::store::FlowSource) + [`FlowAdmin`](crate::store::FlowAdmin)
//! (the flow catalogue), [`SessionStore`](crate::store::SessionStore),
//! [`UserDirectory`](crate::store::UserDirectory),
//! [`ReputationStore`](crate::store::ReputationStore) and
//! [`ThrottleStore`](crate::store::ThrottleStore),
//! [`AppPasswords`](crate::store::AppPasswords),
//! [`DeviceStore`](crate::store::DeviceStore) (MFA devices) and
//! [`InvitationStore`](crate::store::InvitationStore); [`SqlStore::event_sink`] gives an
//! [`EventSink`](crate::events::EventSink) writing audit events to a table.
//!
//! ```no_run
//! # async fn demo() -> Result<(), authflow::StoreError> {
//! use std::sync::Arc;
//! let store = Arc::new(authflow::sql::SqlStore::open("sqlite://authflow.db").await?);
//! authflow::defaults::install(store.as_ref()).await?;
//! let engine = authflow::Engine::builder(store.clone(), store.clone(), store.clone())
//!     .reputation(store.clone())
//!     .build();
//! # let _ = engine; Ok(()) }
//! ```
//!
//! ## URLs
//! As sqlx reads them: `sqlite://rel/path.db` or `sqlite:///abs/path.db` (created if
//! missing, put in WAL mode), `postgres://user:pass@host:port/db`.
//!
//! ## Design
//! Queries are built at run time (`sqlx::query` with binds, no compile-time macros, so
//! no database is needed to build) and run through sqlx's `Any` driver: one SQL text,
//! written in the common subset of both dialects (`$n` parameters, `ON CONFLICT … DO
//! UPDATE`, `RETURNING`, `CASE` instead of `GREATEST`), serves both databases, and one
//! non-generic `SqlStore` type implements the traits. Columns are `TEXT` and `BIGINT`
//! only (the types `Any` maps both ways); JSON is stored as text.
//!
//! Migrations ([`MIGRATIONS`]) are embedded, versioned, forward-only, recorded in the
//! table `authflow_schema` and applied by [`SqlStore::open`] under a lock (an advisory
//! lock on PostgreSQL), so several instances may start at once. A database newer than
//! this build is refused.
//!
//! Every call has a deadline ([`SqlConfig::timeout`], also the pool's acquire timeout);
//! a database that cannot be reached yields [`StoreError::Unavailable`] (the HTTP
//! adapter answers 503) and the pool reconnects by itself once it is back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::clock::{Clock, SystemClock};
use crate::hashing::{Argon2idHasher, PasswordHashing};
use crate::store::StoreError;

mod app_passwords;
mod devices;
mod events;
mod flow_tokens;
mod flows;
mod invitations;
mod migrations;
mod reputation;
mod sessions;
mod throttle;
mod users;
mod users_admin;

pub use events::{EVENT_QUEUE, SqlEventSink};
pub use migrations::{MIGRATIONS, Migration};

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (feature `sqlite`).
    Sqlite,
    /// PostgreSQL (feature `postgres`).
    Postgres,
}

impl Backend {
    /// The backend a URL names (`sqlite:` or `postgres:` / `postgresql:`), if this
    /// build has its feature.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        let backend = match scheme {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            _ => {
                return Err(StoreError::Unavailable(format!(
                    "unsupported database URL `{}`: expected sqlite://PATH or postgres://…",
                    redact(url)
                )));
            }
        };
        let built = match backend {
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Postgres => cfg!(feature = "postgres"),
        };
        if !built {
            return Err(StoreError::Unavailable(format!(
                "this build of authflow lacks the `{}` feature",
                backend.feature()
            )));
        }
        Ok(backend)
    }

    fn feature(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Settings of a [`SqlStore`].
#[derive(Clone)]
pub struct SqlConfig {
    /// Largest number of pooled connections (default 10; SQLite serialises writes
    /// anyway).
    pub max_connections: u32,
    /// Deadline of every call, including waiting for a pooled connection (default 3 s,
    /// so a lost database answers 503 within 5 s).
    pub timeout: Duration,
    /// Sessions expire after this many idle seconds (default 24 h).
    pub session_idle_ttl: u64,
    /// Sessions end this many seconds after creation (default 30 days).
    pub session_absolute_ttl: u64,
    /// The clock of session expiry and event timestamps.
    pub clock: Arc<dyn Clock>,
    /// The password hasher (default argon2id).
    pub hasher: Arc<dyn PasswordHashing>,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self {
            max_connections: 10,
            timeout: Duration::from_secs(3),
            session_idle_ttl: 24 * 3600,
            session_absolute_ttl: 30 * 24 * 3600,
            clock: Arc::new(SystemClock),
            hasher: Arc::new(Argon2idHasher),
        }
    }
}

impl std::fmt::Debug for SqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlConfig")
            .field("max_connections", &self.max_connections)
            .field("timeout", &self.timeout)
            .field("session_idle_ttl", &self.session_idle_ttl)
            .field("session_absolute_ttl", &self.session_absolute_ttl)
            .finish_non_exhaustive()
    }
}

/// Every authflow store in one SQL database. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    config: SqlConfig,
    /// A hash of a random password: unknown users are verified against it.
    dummy_hash: Arc<str>,
    /// The flow catalogue as last read, with the generation it was read at.
    catalogue: Arc<flows::CatalogueCache>,
    /// New sessions since the last sweep of expired ones.
    inserts: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = url.get(s + 3..at).unwrap_or_default();
            match creds.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:***{}",
                    url.get(..s + 3).unwrap_or_default(),
                    url.get(at..).unwrap_or_default()
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A database error as an unavailable store.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("sql: {e}"))
}

/// Whether a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A stored value that does not parse: the row is corrupt, the store unavailable.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("sql: malformed {what} in the database: {e}"))
}

/// A value to store as a signed 64-bit integer (saturating).
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored integer read back as unsigned (negatives as 0).
pub(crate) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqlStore {
    /// Opens (creating a SQLite file if missing) the database at `url`, applies the
    /// pending migrations and checks the connection. Fails clearly if the database
    /// cannot be reached, the URL names a backend this build lacks, or the schema is
    /// newer than this build.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, SqlConfig::default()).await
    }

    /// [`SqlStore::open`] with settings.
    pub async fn open_with(url: &str, config: SqlConfig) -> Result<Self, StoreError> {
        let backend = Backend::of_url(url)?;
        sqlx::any::install_default_drivers();
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        // An in-memory SQLite database lives as long as its one connection.
        let in_memory = backend == Backend::Sqlite && url.contains(":memory:");
        let options = AnyPoolOptions::new()
            .max_connections(if in_memory {
                1
            } else {
                config.max_connections.max(1)
            })
            .acquire_timeout(config.timeout);
        let options = if in_memory {
            options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            options
        };
        let options = if backend == Backend::Sqlite {
            // In WAL mode NORMAL never corrupts the file; a power loss may drop the last
            // commits. FULL (the default) costs an fsync per commit.
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            })
        } else {
            options
        };
        let pool = options.connect(&url);
        let pool = match tokio::time::timeout(config.timeout * 2, pool).await {
            Ok(Ok(pool)) => pool,
            Ok(Err(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "sql: cannot open {}: {e}",
                    redact(&url)
                )));
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "sql: cannot open {}: timed out",
                    redact(&url)
                )));
            }
        };
        let dummy_hash = config
            .hasher
            .hash(&uuid::Uuid::new_v4().to_string())
            .unwrap_or_default();
        let store = Self {
            pool,
            backend,
            config,
            dummy_hash: dummy_hash.into(),
            catalogue: Arc::default(),
            inserts: Arc::default(),
        };
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the one writer; the mode is kept in the file.
            store
                .bounded(sqlx::query("PRAGMA journal_mode=WAL").fetch_optional(&store.pool))
                .await?;
        }
        store
            .bounded(migrations::migrate(&store.pool, backend))
            .await?;
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The schema version of the database (the highest applied migration).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.bounded(migrations::current_version(&self.pool)).await
    }

    /// Checks the connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map(|_| ())
    }

    /// Closes the pool: waits for the calls in progress, then refuses new ones.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs one database call with the deadline: an error or a timeout is an
    /// unavailable store.
    pub(crate) async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.config.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("timed out")),
        }
    }

    /// Runs a multi-step operation (already mapping its own errors) with the deadline.
    pub(crate) async fn deadline<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.config.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(unavailable("timed out")),
        }
    }

    fn now(&self) -> u64 {
        self.config.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
        assert!(Backend::of_url("mysql://x").is_err());
        assert!(Backend::of_url("").is_err());
    }
}
