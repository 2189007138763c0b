//! The SQL stores (features `sqlite`, `postgres`) against SQLite files and, when
//! `AUTHFLOW_TEST_POSTGRES` is set, a real PostgreSQL: the shared session and
//! throttle conformance suites, the flow catalogue's rules and revisions, the engine's
//! definition cache across instances, persistence across restarts, and migrations.
#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "common/session_conformance.rs"]
mod session_conformance;
#[path = "common/sql.rs"]
mod sql;
#[path = "common/throttle_conformance.rs"]
mod throttle_conformance;

use std::sync::Arc;
use std::time::Duration;

use authflow::clock::ManualClock;
use authflow::events::{Event, EventAction, EventSink};
use authflow::model::{
    BindingSubject, BindingTarget, DenyStage, DummyStage, Flow, FlowDesignation, FlowStageBinding,
    Policy, PolicyBinding, PolicyKind, Stage, StageConfig,
};
use authflow::sql::{Backend, MIGRATIONS, SqlConfig, SqlStore};
use authflow::store::{FlowAdmin, FlowSource, FlowStore, ReputationStore, SessionStore, UserAdmin};
use authflow::{Engine, FlowRequest, StoreError, defaults};
use serde_json::json;

const IDLE: u64 = 600;
const ABSOLUTE: u64 = 3600;
const T0: u64 = 1_700_000_000;

fn is_validation_on(err: &StoreError, field: &str) -> bool {
    matches!(err, StoreError::Validation(e) if !e.get(field).is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_store_conformance() {
    for db in sql::databases().await {
        let store = db.open().await;
        session_conformance::run_without_clock(Arc::new(store)).await;
    }
}

#[tokio::test]
async fn session_expiry_conformance() {
    for db in sql::databases().await {
        let clock = Arc::new(ManualClock::new(T0));
        let store = db
            .open_with(SqlConfig {
                clock: clock.clone(),
                session_idle_ttl: IDLE,
                session_absolute_ttl: ABSOLUTE,
                ..SqlConfig::default()
            })
            .await;
        session_conformance::idle_expiry(&store, &clock, IDLE).await;
        session_conformance::absolute_expiry(&store, &clock, IDLE, ABSOLUTE).await;
        // Expired rows are swept.
        let id = authflow::plan::SessionId::generate();
        store
            .save(&id, &session_conformance::marked(1), None)
            .await
            .unwrap();
        clock.advance(ABSOLUTE);
        assert!(store.sweep_sessions().await.unwrap() >= 1, "{}", db.label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_store_conformance() {
    for db in sql::databases().await {
        throttle_conformance::run(Arc::new(db.open().await), "").await;
    }
}

#[tokio::test]
async fn reputation_is_summed_and_clamped() {
    for db in sql::databases().await {
        let store = db.open().await;
        assert_eq!(store.score(Some("1.2.3.4"), Some("u")).await.unwrap(), 0);
        store.adjust(Some("1.2.3.4"), Some("u"), -1).await.unwrap();
        store.adjust(None, Some("u"), -1).await.unwrap();
        assert_eq!(store.score(Some("1.2.3.4"), None).await.unwrap(), -1);
        assert_eq!(store.score(None, Some("u")).await.unwrap(), -2);
        assert_eq!(store.score(Some("1.2.3.4"), Some("u")).await.unwrap(), -3);
        for _ in 0..20 {
            store.adjust(Some("1.2.3.4"), None, -1).await.unwrap();
        }
        assert_eq!(store.score(Some("1.2.3.4"), None).await.unwrap(), -5);
        store.adjust(Some("9.9.9.9"), None, 100).await.unwrap();
        assert_eq!(store.score(Some("9.9.9.9"), None).await.unwrap(), 5);
        store.adjust(Some("9.9.9.9"), None, i64::MIN).await.unwrap();
        assert_eq!(store.score(Some("9.9.9.9"), None).await.unwrap(), -5);
    }
}

#[tokio::test]
async fn events_are_written_to_the_events_table() {
    for db in sql::databases().await {
        let store = db.open().await;
        let sink = store.event_sink().unwrap();
        let mut e = Event::new(EventAction::LoginFailed).with("stage", "password");
        e.user = Some("akadmin".into());
        e.client_ip = Some("127.0.0.1".into());
        sink.emit(e.clone());
        sink.emit(Event::new(EventAction::Login));
        sink.flush().await;
        let recent = sink.recent(10).await.unwrap();
        assert_eq!(recent.len(), 2, "{}", db.label);
        assert_eq!(recent[0].1.action, EventAction::Login);
        assert_eq!(recent[1].1, e);
        assert_eq!(sink.dropped(), 0);
    }
}

fn flow(slug: &str) -> Flow {
    Flow::new(slug, "A flow", FlowDesignation::Authentication)
}

#[tokio::test]
async fn flow_validation_errors() {
    for db in sql::databases().await {
        let sql = db.open().await;
        let store: &dyn FlowStore = &sql;
        for bad in ["", "has space", "ünïcode", "slash/slug", &"x".repeat(51)] {
            let err = store.put_flow(flow(bad)).await.unwrap_err();
            assert!(is_validation_on(&err, "slug"), "{bad:?}: {err:?}");
        }
        store.put_flow(flow(&"x".repeat(50))).await.unwrap();
        let first = flow("taken");
        store.put_flow(first.clone()).await.unwrap();
        let err = store.put_flow(flow("taken")).await.unwrap_err();
        assert!(is_validation_on(&err, "slug"), "{err:?}");
        store
            .put_flow(first.clone().with_title("Renamed"))
            .await
            .unwrap();
        let stage = Stage::new("a-stage", DummyStage::default());
        store.put_stage(stage.clone()).await.unwrap();
        let err = store
            .put_stage(Stage::new("a-stage", DummyStage::default()))
            .await
            .unwrap_err();
        assert!(is_validation_on(&err, "name"), "{err:?}");
        let dangling = FlowStageBinding::new(
            flow("ghost").pk,
            Stage::new("ghost", DummyStage::default()).pk,
            0,
        );
        let err = store.put_binding(dangling).await.unwrap_err();
        assert!(is_validation_on(&err, "target"), "{err:?}");
        assert!(is_validation_on(&err, "stage"), "{err:?}");
        // Nothing invalid was stored, and a fresh instance reads the same.
        for s in [sql.clone(), db.open().await] {
            let slugs: Vec<String> = s
                .flows()
                .await
                .unwrap()
                .into_iter()
                .map(|f| f.slug)
                .collect();
            assert_eq!(slugs, ["taken".to_owned(), "x".repeat(50)]);
            let def = s.flow("taken").await.unwrap().unwrap();
            assert_eq!(def.flow.title, "Renamed");
            assert!(def.stages.is_empty());
        }
        // Deletes cascade: the stage's bindings go with it.
        store
            .put_binding(FlowStageBinding::new(first.pk, stage.pk, 0))
            .await
            .unwrap();
        assert_eq!(store.flow("taken").await.unwrap().unwrap().stages.len(), 1);
        assert!(store.delete_stage(stage.pk).await.unwrap());
        assert!(!store.delete_stage(stage.pk).await.unwrap());
        assert!(
            db.open()
                .await
                .flow("taken")
                .await
                .unwrap()
                .unwrap()
                .stages
                .is_empty()
        );
        assert!(store.delete_flow("taken").await.unwrap());
        assert!(store.flow("taken").await.unwrap().is_none());
        assert!(store.revision("taken").await.unwrap().is_none());
    }
}

async fn revision(store: &dyn FlowStore, slug: &str) -> u64 {
    store.revision(slug).await.unwrap().unwrap()
}

#[tokio::test]
async fn revision_changes_with_every_write_that_touches_the_flow() {
    for db in sql::databases().await {
        let sql = db.open().await;
        let store: &dyn FlowStore = &sql;
        let f = flow("revised");
        store.put_flow(f.clone()).await.unwrap();
        let bystander = flow("bystander");
        store.put_flow(bystander.clone()).await.unwrap();
        assert!(store.revision("missing").await.unwrap().is_none());
        let mut rev = revision(store, "revised").await;
        let mut changed = |label: &'static str, new: u64| {
            assert_ne!(new, rev, "{label} did not change the revision");
            rev = new;
        };
        store
            .put_flow(f.clone().with_title("New title"))
            .await
            .unwrap();
        changed("put_flow", revision(store, "revised").await);
        let untouched = revision(store, "bystander").await;
        let stage = Stage::new("revised-stage", DummyStage::default());
        store.put_stage(stage.clone()).await.unwrap();
        let binding = FlowStageBinding::new(f.pk, stage.pk, 10);
        store.put_binding(binding.clone()).await.unwrap();
        changed("put_binding", revision(store, "revised").await);
        let mut moved = binding.clone();
        moved.order = 20;
        store.put_binding(moved).await.unwrap();
        changed("binding edit", revision(store, "revised").await);
        let mut edited = stage.clone();
        edited.config = StageConfig::Dummy(DummyStage { throw_error: true });
        store.put_stage(edited).await.unwrap();
        changed("stage edit", revision(store, "revised").await);
        assert_eq!(revision(store, "bystander").await, untouched);
        let policy = Policy::new("revised-policy", PolicyKind::Dummy { result: true });
        store.put_policy(policy.clone()).await.unwrap();
        changed("put_policy", revision(store, "revised").await);
        let pb = PolicyBinding::new(
            BindingTarget::Stage(binding.pk),
            BindingSubject::Policy(policy.pk),
            0,
        );
        store.put_policy_binding(pb.clone()).await.unwrap();
        changed("put_policy_binding", revision(store, "revised").await);
        assert!(store.delete_policy_binding(pb.pk).await.unwrap());
        changed("delete_policy_binding", revision(store, "revised").await);
        assert!(store.delete_binding(binding.pk).await.unwrap());
        changed("delete_binding", revision(store, "revised").await);
        // Reads and no-op deletes do not change it.
        store.flow("revised").await.unwrap();
        assert!(!store.delete_binding(binding.pk).await.unwrap());
        assert_eq!(revision(store, "revised").await, rev);
        // Another instance reads the same revision.
        assert_eq!(revision(&db.open().await, "revised").await, rev);
    }
}

/// Two instances on one database: a flow edited through one is served in its new
/// version by the other's engine, which otherwise keeps serving its cached definition.
#[tokio::test]
async fn a_flow_changed_on_one_instance_is_reloaded_by_the_other() {
    for db in sql::databases().await {
        let a = Arc::new(db.open().await);
        let b = Arc::new(db.open().await);
        defaults::install(a.as_ref()).await.unwrap();
        defaults::install(b.as_ref()).await.unwrap(); // idempotent
        let engine = Engine::builder(a.clone(), a.clone(), a.clone()).build();
        let slug = defaults::AUTHENTICATION;
        let first = engine.definition(slug).await.unwrap();
        assert!(Arc::ptr_eq(&first, &engine.definition(slug).await.unwrap()));
        assert_eq!(first.stages.len(), 3);

        let deny = Stage::new(
            "extra-deny",
            DenyStage {
                deny_message: "closed".into(),
            },
        );
        b.put_stage(deny.clone()).await.unwrap();
        b.put_binding(FlowStageBinding::new(first.flow.pk, deny.pk, 50))
            .await
            .unwrap();
        let second = engine.definition(slug).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &second), "{}", db.label);
        let names: Vec<&str> = second
            .stages
            .iter()
            .map(|s| s.stage.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "default-authentication-identification",
                "default-authentication-password",
                "extra-deny",
                "default-authentication-login",
            ]
        );
        assert!(Arc::ptr_eq(
            &second,
            &engine.definition(slug).await.unwrap()
        ));
        assert_eq!(engine.cache_count(slug), 1);
    }
}

async fn login(engine: &Engine, username: &str, password: &str) -> bool {
    let slug = defaults::AUTHENTICATION;
    let out = engine.plan(&FlowRequest::default(), slug).await.unwrap();
    let req = FlowRequest::new(Some(out.session_id.clone()), "");
    let out = engine
        .step(
            &req,
            slug,
            &json!({"component": "ak-stage-identification", "uid_field": username}),
        )
        .await
        .unwrap();
    assert_eq!(out.challenge.component(), "ak-stage-password");
    let out = engine
        .step(
            &req,
            slug,
            &json!({"component": "ak-stage-password", "password": password}),
        )
        .await
        .unwrap();
    out.logged_in
}

fn engine_on(store: &Arc<SqlStore>) -> Engine {
    Engine::builder(store.clone(), store.clone(), store.clone())
        .reputation(store.clone())
        .build()
}

/// Everything on one database: bootstrap (idempotent across instances), log in, then
/// "restart" (a new store on the same database) and log in again; a password changed
/// on one instance is refused on the other.
#[tokio::test]
async fn a_login_survives_a_restart_and_instances_share_users() {
    for db in sql::databases().await {
        let a = Arc::new(db.open().await);
        defaults::install(a.as_ref()).await.unwrap();
        let admin = defaults::bootstrap_admin(a.as_ref(), "Pw-sql-1".into())
            .await
            .unwrap();
        let b = Arc::new(db.open().await);
        defaults::install(b.as_ref()).await.unwrap();
        // The second instance's bootstrap finds the first's akadmin: the database
        // refuses a second one, and the lookup answers the same user.
        let err = defaults::bootstrap_admin(b.as_ref(), "Pw-sql-1".into())
            .await
            .unwrap_err();
        assert!(is_validation_on(&err, "username"), "{err:?}");
        use authflow::store::UserDirectory;
        let again = b
            .find_user(authflow::model::UserField::Username, "akadmin", true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(admin.pk, again.pk, "{}", db.label);
        assert_eq!(again.groups, admin.groups);

        assert!(login(&engine_on(&a), "akadmin", "Pw-sql-1").await);
        assert!(login(&engine_on(&b), "akadmin", "Pw-sql-1").await);
        b.set_password(admin.pk, &"Pw-sql-2".into()).await.unwrap();
        assert!(!login(&engine_on(&a), "akadmin", "Pw-sql-1").await);
        a.close().await;
        b.close().await;

        let restarted = Arc::new(db.open().await);
        assert!(login(&engine_on(&restarted), "akadmin", "Pw-sql-2").await);
    }
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database() {
    for db in sql::databases().await {
        let store = db.open().await;
        let latest = MIGRATIONS.last().unwrap().version;
        assert_eq!(store.schema_version().await.unwrap(), latest);
        // Opening again applies nothing and loses nothing.
        store.put_flow(flow("kept")).await.unwrap();
        let again = db.open().await;
        assert_eq!(again.schema_version().await.unwrap(), latest);
        assert!(again.flow("kept").await.unwrap().is_some());
    }
}

/// A database at version 1 (made by hand, with a row in it) is brought to the latest
/// version; its data stays.
#[tokio::test]
async fn migrations_apply_to_a_database_at_the_previous_version() {
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
        for statement in MIGRATIONS[0].sql(backend) {
            sqlx::query(&statement).execute(&mut conn).await.unwrap();
        }
        sqlx::query("INSERT INTO authflow_schema VALUES (1, 'v1', 0)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO authflow_reputation (key, score) VALUES ('ip:10.0.0.1', -3)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();

        let store = db.open().await;
        assert_eq!(
            store.schema_version().await.unwrap(),
            MIGRATIONS.last().unwrap().version
        );
        assert_eq!(store.score(Some("10.0.0.1"), None).await.unwrap(), -3);
        // The tables of versions 2 and 3 exist.
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        for table in [
            "authflow_app_passwords",
            "authflow_consents",
            "authflow_devices",
        ] {
            sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{}: {table}: {e}", db.label));
        }
        // A database newer than this build is refused, not downgraded.
        sqlx::query("INSERT INTO authflow_schema VALUES (999, 'future', 0)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let err = SqlStore::open(&db.url).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("newer")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://nobody:secret@127.0.0.1:{port}/none");
    let started = std::time::Instant::now();
    let config = SqlConfig {
        timeout: Duration::from_millis(500),
        ..SqlConfig::default()
    };
    match SqlStore::open_with(&url, config).await {
        Err(StoreError::Unavailable(m)) => assert!(!m.contains("secret"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = SqlStore::open("mysql://x/y").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// `sqlite::memory:` is one database (one connection), not one per pooled connection.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn an_in_memory_sqlite_database_is_one_database() {
    let store = SqlStore::open("sqlite::memory:").await.unwrap();
    for i in 0..20 {
        store.put_flow(flow(&format!("mem-{i}"))).await.unwrap();
    }
    assert_eq!(store.flows().await.unwrap().len(), 20);
    assert_eq!(
        store.schema_version().await.unwrap(),
        MIGRATIONS.last().unwrap().version
    );
}

/// 50 concurrent submits of one answer on one session: exactly one advances the plan,
/// the others are re-run on the fresh state or conflict; the pool (10 connections) is
/// never exhausted into an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_identical_posts_advance_the_plan_once() {
    for db in sql::databases().await {
        let store = Arc::new(db.open().await);
        defaults::install(store.as_ref()).await.unwrap();
        defaults::bootstrap_admin(store.as_ref(), "pw-sql".into())
            .await
            .unwrap();
        let engine = Arc::new(engine_on(&store));
        let slug = defaults::AUTHENTICATION;
        let first = engine.plan(&FlowRequest::default(), slug).await.unwrap();
        let sid = first.session_id.clone();
        let body = json!({"component": "ak-stage-identification", "uid_field": "akadmin"});
        let mut handles = Vec::new();
        for _ in 0..50 {
            let (engine, body, sid) = (engine.clone(), body.clone(), sid.clone());
            handles.push(tokio::spawn(async move {
                engine
                    .step(&FlowRequest::new(Some(sid), ""), slug, &body)
                    .await
            }));
        }
        let mut advanced = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(out) => {
                    assert_eq!(out.challenge.component(), "ak-stage-password");
                    if out.challenge.response_errors.is_empty() {
                        advanced += 1;
                    }
                }
                Err(authflow::Error::Conflict) => {}
                Err(e) => panic!("{}: unexpected error {e:?}", db.label),
            }
        }
        assert_eq!(advanced, 1, "{}", db.label);
        let state = store.load(&sid).await.unwrap().unwrap().value;
        assert_eq!(state.flows[slug].history.len(), 1, "{}", db.label);
    }
}
