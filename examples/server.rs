//! The authflow reference server: authentik's flow-executor API over the in-memory or
//! SQL stores, with the default flows (and authentik's default TOTP and static MFA setup
//! flows, `defaults::install_mfa_setup`) and the bootstrap admin `akadmin`.
//!
//! ```sh
//! AUTHFLOW_BOOTSTRAP_PASSWORD=changeme cargo run --example server --features http
//! # then open http://127.0.0.1:9000/if/flow/default-authentication-flow/
//! ```
//!
//! Environment: `AUTHFLOW_LISTEN` (default `127.0.0.1:9000`), `AUTHFLOW_BOOTSTRAP_PASSWORD`
//! (default: random, printed once), `AUTHFLOW_BOOTSTRAP_EMAIL` (akadmin's email, default
//! `root@localhost`), `AUTHFLOW_BOOTSTRAP_TOKEN` (an API token for akadmin),
//! `AUTHFLOW_SECRET_KEY` (CSRF key; random if unset — set the same value on every
//! instance that shares sessions), `AUTHFLOW_REDIS_URL` (share sessions, flows and the
//! login-throttle counters through Redis; needs the `redis` feature), `RUST_LOG` (default
//! `info`).
//! `AUTHFLOW_EXTERNAL_URL` (`--external-url`; the public base URL such as
//! `https://auth.example.com`: absolute links start with it, never with the request's
//! `Host`; an `https://` URL marks cookies `Secure`), `AUTHFLOW_SECURE_COOKIES=1`
//! (`--secure-cookies`; `Secure` cookies behind a TLS-terminating proxy).
//! `AUTHFLOW_TRUSTED_PROXIES` (`--trusted-proxies`; comma-separated IPs/CIDRs of reverse
//! proxies whose `Forwarded` / `X-Forwarded-For` give the client IP; from any other peer
//! those headers are ignored). `AUTHFLOW_MOUNT_PATH` (`--mount-path`, e.g. `/auth`:
//! serve every route, and every link, under that prefix).
//! `--listen ADDR` overrides `AUTHFLOW_LISTEN`, `--redis URL` overrides `AUTHFLOW_REDIS_URL`.
//! `--blueprints DIR` applies every authentik blueprint (`*.yaml`) in DIR at start, after
//! the default flows, in authentik's order (`metaapplyblueprint` dependencies first; files
//! labelled `blueprints.goauthentik.io/instantiate: "false"` are left alone) and logs a
//! report per file; a file that cannot be applied stops the start. `--skip-unsupported`
//! lets entries of models authflow lacks through (stages of those kinds deny access).
//! `--apply-examples` applies the labelled files too (e.g. authentik's `flows-login-2fa`,
//! whose validation binding's expression policy needs the `python` feature).
//! Both need the `blueprints` feature: `--features http,blueprints`. With the `captcha`
//! feature, captcha stages verify tokens at their `api_url` (siteverify over HTTP(S)).
//!
//! `--database URL` (`AUTHFLOW_DATABASE_URL`) keeps users, groups, flows, sessions,
//! reputation, login-throttle counters and audit events in SQL: `sqlite://PATH`
//! (`sqlite:///abs/path.db`, `sqlite://rel.db`; created if missing; feature `sqlite`),
//! `postgres://user:pass@host:port/db` (feature `postgres`) or `memory` (nothing
//! survives a restart). Built with `sqlite`, the default is the file `authflow.db` in the
//! working directory; otherwise `memory`. With `--redis` as well, sessions and throttle
//! counters go to Redis and the rest to the database. Instances on one database
//! bootstrap `akadmin` once: a later instance finds it (and keeps its password).
//! With `--database memory` the user directory is per instance: instances sharing Redis
//! each bootstrap the same `akadmin` (fixed id); accounts enrolled on one exist only there.
//! SIGTERM stops the server like Ctrl-C: in-flight requests finish, the pool closes.
//!
//! Mail (the recovery flow `default-recovery-flow`, the login-by-link flow
//! `default-magic-link-flow`, blueprints with email stages): `AUTHFLOW_SMTP_URL` —
//! `smtp://host:port` (plain SMTP, no TLS: a local relay only),
//! `smtp://host:port?starttls=required` (STARTTLS, refused if the server lacks it),
//! `smtps://user:pass@host:port` (implicit TLS; credentials percent-encoded, also
//! accepted on `smtp://`), each optionally with `timeout=SECONDS` (default 10); needs
//! the `smtp` feature. `AUTHFLOW_EMAIL_FROM` (envelope sender and `From`, default
//! `authflow@localhost`). Links in mail start with `AUTHFLOW_EXTERNAL_URL` (default
//! `http://<listen address>`), never with a request's `Host`. Without
//! `AUTHFLOW_SMTP_URL` a development mailer writes each mail to `AUTHFLOW_MAIL_DIR`
//! (default `./authflow-mail`) and prints it, link included, to standard error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use authflow::events::EventSink;
use authflow::http::{HashPool, HttpConfig, router};
use authflow::model::UserField;
use authflow::store::{
    FlowStore, ReputationStore, SessionStore, StoreError, ThrottleStore, User, UserDirectory,
};
use authflow::{defaults, memory};

/// Flows, sessions and login-throttle counters.
type Shared = (
    Arc<dyn FlowStore>,
    Arc<dyn SessionStore>,
    Arc<dyn ThrottleStore>,
);

/// Sessions, flows and login-throttle counters in Redis, shared by every instance.
#[cfg(feature = "redis")]
async fn shared_stores(url: &str) -> Result<Shared, Box<dyn std::error::Error>> {
    let sessions =
        authflow::redis::RedisSessionStore::connect(url, authflow::redis::RedisConfig::default())
            .await
            .map_err(|e| format!("cannot use Redis at {url}: {e}"))?;
    let flows = authflow::redis::RedisFlowStore::new(&sessions);
    let throttle = authflow::redis::RedisThrottleStore::new(&sessions);
    tracing::info!(%url, "sessions, flows and login-throttle counters in Redis");
    Ok((Arc::new(flows), Arc::new(sessions), Arc::new(throttle)))
}

#[cfg(not(feature = "redis"))]
async fn shared_stores(_url: &str) -> Result<Shared, Box<dyn std::error::Error>> {
    Err("this server was built without the `redis` feature: cargo run --example server --features http,redis".into())
}

/// Everything a SQL database holds, as the engine takes it.
struct Durable {
    flows: Arc<dyn FlowStore>,
    sessions: Arc<dyn SessionStore>,
    throttle: Arc<dyn ThrottleStore>,
    users: Arc<dyn UserDirectory>,
    reputation: Arc<dyn ReputationStore>,
    app_passwords: Arc<dyn authflow::store::AppPasswords>,
    devices: Arc<dyn authflow::store::DeviceStore>,
    invitations: Arc<dyn authflow::store::InvitationStore>,
    flow_tokens: Arc<dyn authflow::store::FlowTokens>,
    events: Arc<dyn EventSink>,
    close: Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn open_database(url: &str) -> Result<Durable, Box<dyn std::error::Error>> {
    let store = Arc::new(
        authflow::sql::SqlStore::open(url)
            .await
            .map_err(|e| format!("cannot use the database: {e}"))?,
    );
    tracing::info!(backend = ?store.backend(), "users, flows, sessions and events in the database");
    let events = Arc::new(store.event_sink()?);
    let closing = store.clone();
    Ok(Durable {
        flows: store.clone(),
        sessions: store.clone(),
        throttle: store.clone(),
        users: store.clone(),
        app_passwords: store.clone(),
        devices: store.clone(),
        invitations: store.clone(),
        flow_tokens: store.clone(),
        reputation: store,
        events,
        close: Box::new(move || Box::pin(async move { closing.close().await })),
    })
}

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
async fn open_database(url: &str) -> Result<Durable, Box<dyn std::error::Error>> {
    Err(format!("--database {url}: this server was built without the `sqlite` and `postgres` features: cargo run --example server --features http,sqlite").into())
}

/// The database URL: `--database`, `AUTHFLOW_DATABASE_URL`, else a SQLite file in the
/// working directory when built with `sqlite`, else `memory`.
fn database_url() -> String {
    arg("--database")
        .or_else(|| std::env::var("AUTHFLOW_DATABASE_URL").ok())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            if cfg!(feature = "sqlite") {
                "sqlite://authflow.db".into()
            } else {
                "memory".into()
            }
        })
}

/// The mailer: SMTP from `AUTHFLOW_SMTP_URL`, else the development mailer.
fn mailer() -> Result<Arc<dyn authflow::mail::Mailer>, Box<dyn std::error::Error>> {
    match std::env::var("AUTHFLOW_SMTP_URL").ok().filter(|u| !u.is_empty()) {
        #[cfg(feature = "smtp")]
        Some(url) => Ok(Arc::new(
            authflow::mail::SmtpMailer::from_url(&url).map_err(|e| format!("AUTHFLOW_SMTP_URL: {e}"))?,
        )),
        #[cfg(not(feature = "smtp"))]
        Some(_) => Err("AUTHFLOW_SMTP_URL: this server was built without the `smtp` feature: cargo run --example server --features http,smtp".into()),
        None => {
            let dir = std::env::var("AUTHFLOW_MAIL_DIR")
                .ok()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "authflow-mail".into());
            Ok(Arc::new(authflow::mail::DevMailer::to_dir(dir).with_log()))
        }
    }
}

/// akadmin, created on the first start of the first instance; later starts (and other
/// instances on the same directory) find it and leave its password alone.
async fn bootstrap(
    users: &dyn UserDirectory,
    password: impl FnOnce() -> String,
    email: &str,
) -> Result<User, Box<dyn std::error::Error>> {
    let find = || users.find_user(UserField::Username, defaults::ADMIN_USERNAME, true);
    if let Some(admin) = find().await? {
        tracing::info!("akadmin exists already");
        return Ok(admin);
    }
    match defaults::bootstrap_admin_with_email(users, password().into(), email).await {
        Ok(admin) => Ok(admin),
        // Another instance created it meanwhile: the directory refused a second one.
        Err(StoreError::Validation(_)) => Ok(find().await?.ok_or("cannot bootstrap akadmin")?),
        Err(e) => Err(e.into()),
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn flag(name: &str) -> bool {
    std::env::args().skip(1).any(|a| a == name)
}

/// Applies the blueprints of `dir` and logs what each file did.
#[cfg(feature = "blueprints")]
async fn apply_blueprints(
    dir: &str,
    in_memory: Option<&memory::MemoryFlowStore>,
    flows: &dyn FlowStore,
    users: authflow::blueprint::UserTarget<'_>,
    skip_unsupported: bool,
    examples: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    use authflow::blueprint::{FlowTarget, ImportOptions, Importer};
    let target = match in_memory {
        Some(m) => FlowTarget::Memory(m),
        None => FlowTarget::Store(flows),
    };
    let mut options = ImportOptions::new()
        .skip_unsupported(skip_unsupported)
        // The engine runs expression policies only when built with `python`.
        .expressions(cfg!(feature = "python"));
    options.apply_not_instantiated = examples;
    let report = Importer::new(target, users)
        .options(options)
        .apply_dir(dir)
        .await
        .map_err(|e| format!("cannot apply the blueprints in {dir}: {e}"))?;
    for r in report.files() {
        tracing::info!(file = %r.file, changes = r.changes, "blueprint applied: {}", r.summary());
        for s in &r.skipped {
            tracing::warn!(file = %r.file, entry = s.index, model = %s.model, "skipped: {}", s.reason);
        }
        for w in &r.warnings {
            tracing::warn!(file = %r.file, "{w}");
        }
    }
    for f in &report.not_instantiated {
        tracing::info!(file = %f, "blueprint not applied: labelled blueprints.goauthentik.io/instantiate: \"false\"");
    }
    Ok(())
}

#[cfg(not(feature = "blueprints"))]
async fn apply_blueprints(
    dir: &str,
    _in_memory: Option<&memory::MemoryFlowStore>,
    _flows: &dyn FlowStore,
    _users: &dyn UserDirectory,
    _skip_unsupported: bool,
    _examples: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    Err(format!("--blueprints {dir}: this server was built without the `blueprints` feature: cargo run --example server --features http,blueprints").into())
}

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
        if let Some(v) = a.strip_prefix(&format!("{name}=")) {
            return Some(v.to_owned());
        }
    }
    None
}

async fn log_requests(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    // The path only: query strings can carry identifiers we do not want in logs.
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    tracing::info!(%method, %path, status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let listen = arg("--listen")
        .or_else(|| std::env::var("AUTHFLOW_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("invalid listen address `{listen}`: {e}"))?;

    let stores = memory::Stores::new();
    let database = database_url();
    let durable = match database.as_str() {
        "memory" => None,
        url => Some(open_database(url).await?),
    };
    let redis_url = arg("--redis")
        .or_else(|| std::env::var("AUTHFLOW_REDIS_URL").ok())
        .filter(|u| !u.is_empty());
    let flows_in_memory = redis_url.is_none() && durable.is_none();
    let (mut flows, sessions, throttle): Shared = match (redis_url, &durable) {
        (Some(url), _) => shared_stores(&url).await?,
        (None, Some(d)) => (d.flows.clone(), d.sessions.clone(), d.throttle.clone()),
        (None, None) => (
            stores.flows.clone(),
            stores.sessions.clone(),
            Arc::new(memory::MemoryThrottle::new()),
        ),
    };
    // A database keeps the flows even when Redis has the sessions.
    if let Some(d) = &durable {
        flows = d.flows.clone();
    }
    let users: Arc<dyn UserDirectory> = match &durable {
        Some(d) => d.users.clone(),
        None => stores.users.clone(),
    };
    let reputation: Arc<dyn ReputationStore> = match &durable {
        Some(d) => d.reputation.clone(),
        None => stores.reputation.clone(),
    };
    let mut config = HttpConfig::default();
    if let Ok(key) = std::env::var("AUTHFLOW_SECRET_KEY") {
        config.secret_key = key.into_bytes();
    }
    if let Some(url) = arg("--external-url")
        .or_else(|| std::env::var("AUTHFLOW_EXTERNAL_URL").ok())
        .filter(|u| !u.is_empty())
    {
        config = config.with_external_url(&url)?;
    }
    if flag("--secure-cookies")
        || std::env::var("AUTHFLOW_SECURE_COOKIES")
            .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"))
    {
        config.secure_cookies = true;
    }
    let mailer = mailer()?;
    let external = arg("--external-url")
        .or_else(|| std::env::var("AUTHFLOW_EXTERNAL_URL").ok())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("http://{addr}"));
    let from = std::env::var("AUTHFLOW_EMAIL_FROM")
        .ok()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "authflow@localhost".into());
    tracing::info!(mailer = %mailer.describe(), %from, links = %external, "mail");
    // Login throttling is on with its defaults (authflow::throttle::ThrottleConfig).
    let builder = authflow::Engine::builder(flows.clone(), sessions, users.clone())
        .mailer(mailer)
        .mail_settings(authflow::mail::MailSettings::new(from, external))
        .reputation(reputation)
        .throttle_store(throttle)
        // Password hashing on a fixed pool of one thread per core with a bounded
        // queue, never on the async workers; a full queue asks the client to retry.
        .blocking(Arc::new(HashPool::default()))
        // Instances sharing sessions agree on ids they have not stored yet.
        .session_key(config.secret_key.clone());
    // Expression policies (authentik's Python expressions) run in the embedded CPython.
    #[cfg(feature = "python")]
    let builder = builder.expressions(Arc::new(authflow::python::PythonEvaluator::new()));
    // Captcha stages verify tokens with their provider's siteverify endpoint.
    #[cfg(feature = "captcha")]
    let builder =
        builder.captcha_verifier(Arc::new(authflow::captcha::HttpCaptchaVerifier::new()?));
    let builder = match &durable {
        // App passwords (the password stage's token backend) live in the database.
        Some(d) => builder
            .events(d.events.clone())
            .app_passwords(d.app_passwords.clone())
            // MFA devices too.
            .devices(d.devices.clone())
            // The catalogue is in the database: a cached flow definition is trusted for
            // 1 s without asking for its revision. Edits through this instance are seen
            // at once; an edit on another instance is served here within 1 s.
            .revision_check_interval(std::time::Duration::from_secs(1))
            .invitations(d.invitations.clone())
            .flow_tokens(d.flow_tokens.clone()),
        None => builder,
    };
    let engine = Arc::new(builder.build());
    // Idempotent: the default flows have fixed ids, so instances sharing Redis agree.
    defaults::install(flows.as_ref()).await?;
    // authentik's default MFA setup flows (TOTP, static recovery codes), built in.
    defaults::install_mfa_setup(flows.as_ref()).await?;
    // Recovery by emailed link (linked from the login page) and login by emailed link.
    defaults::install_recovery(flows.as_ref()).await?;
    defaults::magic_link(flows.as_ref()).await?;

    let password = || match std::env::var("AUTHFLOW_BOOTSTRAP_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            let p = uuid::Uuid::new_v4().simple().to_string();
            println!("akadmin password (shown once): {p}");
            p
        }
    };
    let email = std::env::var("AUTHFLOW_BOOTSTRAP_EMAIL").unwrap_or_default();
    let admin = bootstrap(users.as_ref(), password, &email).await?;
    if let Some(dir) = arg("--blueprints") {
        #[cfg(feature = "blueprints")]
        let user_target: authflow::blueprint::UserTarget<'_> = match &durable {
            Some(_) => users.as_ref().into(),
            None => stores.users.as_ref().into(),
        };
        #[cfg(not(feature = "blueprints"))]
        let user_target = users.as_ref();
        apply_blueprints(
            &dir,
            flows_in_memory.then_some(stores.flows.as_ref()),
            flows.as_ref(),
            user_target,
            flag("--skip-unsupported"),
            flag("--apply-examples"),
        )
        .await?;
    } else if flag("--skip-unsupported") {
        tracing::warn!("--skip-unsupported has no effect without --blueprints DIR");
    }

    if let Ok(token) = std::env::var("AUTHFLOW_BOOTSTRAP_TOKEN") {
        config.tokens.insert(&token, admin.pk);
    }
    if let Some(proxies) =
        arg("--trusted-proxies").or_else(|| std::env::var("AUTHFLOW_TRUSTED_PROXIES").ok())
    {
        config =
            config.with_trusted_proxies(proxies.split(',').filter(|p| !p.trim().is_empty()))?;
    }
    let mount = arg("--mount-path")
        .or_else(|| std::env::var("AUTHFLOW_MOUNT_PATH").ok())
        .unwrap_or_default();
    config = config.with_mount_path(&mount)?;

    let routes = router(engine, config);
    let app = if mount.is_empty() {
        routes
    } else {
        // Nested, the host's router answers paths outside the prefix: the same JSON 404.
        axum::Router::new()
            .nest(&mount, routes)
            .fallback(|| async { authflow::http::ApiError::NotFound })
    }
    .layer(axum::middleware::from_fn(log_requests));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "authflow listening; open http://{addr}{mount}/if/flow/default-authentication-flow/");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        shutdown_signal().await;
        tracing::info!("shutting down");
    })
    .await?;
    if let Some(d) = durable {
        (d.close)().await;
    }
    Ok(())
}
