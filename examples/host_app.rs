//! An axum app that embeds authflow the way a host does:
//!
//! - **its own users table** with integer keys ([`HostUsers`]: three methods of
//!   [`UserDirectory`], no management — enrollment would be denied clearly);
//! - **a login flow defined in code** with [`FlowBuilder`]: identification → password →
//!   a custom "accept the terms" stage ([`AcceptTerms`]) → user login, and a custom
//!   policy on the flow that refuses blocked networks ([`BlockedNetworks`], failing
//!   closed when the client IP is unknown);
//! - **authflow mounted under `/auth`**, beside the app's own routes and its own 404;
//! - **a `/me` route** that reads the logged-in user with the [`LoggedIn`] extractor.
//!
//! ```sh
//! cargo run --example host_app --features http
//! # then open http://127.0.0.1:3000/auth/if/flow/host-login/ and log in as ada / lovelace-1843
//! curl -s http://127.0.0.1:3000/me     # 401 until logged in
//! ```
//!
//! `tests/host_app.rs` runs this app over real HTTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use authflow::challenge::{ChallengeBody, CustomChallenge};
use authflow::hashing::{Argon2idHasher, PasswordHashing, verify_dummy};
use authflow::http::{Authflow, HttpConfig, LoggedIn};
use authflow::model::{
    CustomPolicy, CustomStage, FlowDesignation, IdentificationStage, PasswordStage, PolicyKind,
    UserField, UserId, UserLoginStage,
};
use authflow::policy::{PolicyError, PolicyEvaluator, PolicyOutcome, PolicyRequest};
use authflow::secret::Password;
use authflow::stages::{Response, StageContext, StageError, StageKind, StageOutcome};
use authflow::store::{StoreError, User, UserDirectory, canonical_identifier};
use authflow::{Challenge, Engine, FlowBuilder, memory};
use axum::Router;
use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

/// The slug of the login flow this app defines.
pub const LOGIN_FLOW: &str = "host-login";

/// One row of the host's users table.
struct Row {
    id: i64,
    username: String,
    email: String,
    password_hash: String,
}

/// The host's own users, keyed by `i64`: authflow sees them through three methods.
pub struct HostUsers {
    rows: RwLock<HashMap<i64, Row>>,
    hasher: Arc<dyn PasswordHashing>,
}

impl HostUsers {
    /// An empty table hashing with `hasher` (argon2id in `main`).
    pub fn new(hasher: Arc<dyn PasswordHashing>) -> Self {
        Self {
            rows: RwLock::new(HashMap::new()),
            hasher,
        }
    }

    /// Adds a user (the host's own sign-up code would do this).
    pub fn add(&self, id: i64, username: &str, email: &str, password: &str) {
        let password_hash = self.hasher.hash(password).unwrap_or_default();
        let row = Row {
            id,
            username: username.into(),
            email: email.into(),
            password_hash,
        };
        self.rows
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, row);
    }

    fn to_user(row: &Row) -> User {
        User::new(row.id, &row.username).with_email(&row.email)
    }
}

#[async_trait]
impl UserDirectory for HostUsers {
    async fn user(&self, pk: UserId) -> Result<Option<User>, StoreError> {
        let Ok(id) = pk.as_str().parse::<i64>() else {
            return Ok(None);
        };
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        Ok(rows.get(&id).map(Self::to_user))
    }

    async fn find_user(
        &self,
        field: UserField,
        value: &str,
        case_insensitive: bool,
    ) -> Result<Option<User>, StoreError> {
        let norm = |s: &str| {
            if case_insensitive {
                canonical_identifier(s)
            } else {
                s.to_owned()
            }
        };
        let want = norm(value);
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        let mut found = rows.values().filter(|r| match field {
            UserField::Username => norm(&r.username) == want,
            UserField::Email => norm(&r.email) == want,
            _ => false,
        });
        // Exactly one match, never a guess between two.
        Ok(match (found.next(), found.next()) {
            (Some(row), None) => Some(Self::to_user(row)),
            _ => None,
        })
    }

    async fn verify_password(
        &self,
        user: Option<UserId>,
        password: &Password,
    ) -> Result<bool, StoreError> {
        let hash = user.and_then(|pk| {
            let id = pk.as_str().parse::<i64>().ok()?;
            let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
            rows.get(&id).map(|r| r.password_hash.clone())
        });
        Ok(match hash {
            Some(hash) => self.hasher.verify(&hash, password.expose()),
            // The same work for an unknown user: timing does not tell.
            None => verify_dummy(self.hasher.as_ref(), password.expose()),
        })
    }
}

/// A host stage: shows the terms (version from the stage's settings) and continues
/// once the user accepts them.
pub struct AcceptTerms;

#[derive(serde::Deserialize)]
struct TermsSettings {
    version: String,
}

#[async_trait]
impl StageKind for AcceptTerms {
    fn component(&self) -> Option<&str> {
        Some("x-accept-terms")
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let settings: TermsSettings = ctx.config_as()?;
        let mut fields = serde_json::Map::new();
        fields.insert("version".into(), settings.version.into());
        Ok(StageOutcome::Challenge(Challenge::new(
            ChallengeBody::Custom(CustomChallenge {
                component: "x-accept-terms".into(),
                fields,
            }),
        )))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        if response.get("accept").and_then(Value::as_bool) == Some(true) {
            return Ok(StageOutcome::Done);
        }
        // Not accepted: ask again, saying why.
        let StageOutcome::Challenge(c) = self.challenge(ctx).await? else {
            return Ok(StageOutcome::Deny("The terms could not be shown.".into()));
        };
        Ok(StageOutcome::Invalid(c.with_error(
            "accept",
            authflow::challenge::ErrorDetail::new("Please accept the terms.", "required"),
        )))
    }
}

/// A host policy: fails for clients in the configured networks (`"203.0.113.0/24"`,
/// exact IPs) and for clients whose IP is unknown.
pub struct BlockedNetworks;

#[derive(serde::Deserialize)]
struct BlockedSettings {
    blocked: Vec<String>,
}

fn in_network(ip: std::net::IpAddr, network: &str) -> bool {
    let (addr, bits) = network.split_once('/').unwrap_or((network, ""));
    let Ok(base) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    match (ip, base) {
        (std::net::IpAddr::V4(ip), std::net::IpAddr::V4(base)) => {
            let bits: u32 = bits.parse().unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(base) & mask
        }
        (ip, base) => ip == base,
    }
}

#[async_trait]
impl PolicyEvaluator for BlockedNetworks {
    async fn evaluate(
        &self,
        request: &mut PolicyRequest<'_>,
    ) -> Result<PolicyOutcome, PolicyError> {
        let settings: BlockedSettings = request.config_as()?;
        let Some(ip) = request.client_ip.and_then(|ip| ip.parse().ok()) else {
            return Ok(PolicyOutcome::fail("Your network could not be determined."));
        };
        if settings.blocked.iter().any(|n| in_network(ip, n)) {
            return Ok(PolicyOutcome::fail(
                "Logins from your network are not allowed.",
            ));
        }
        Ok(PolicyOutcome::pass())
    }
}

/// The app's state: authflow's handle plus whatever the host keeps.
#[derive(Clone)]
pub struct AppState {
    auth: Authflow,
    name: &'static str,
}

impl FromRef<AppState> for Authflow {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

async fn me(LoggedIn(user): LoggedIn) -> axum::Json<Value> {
    axum::Json(json!({"id": user.pk.as_str(), "username": user.username, "email": user.email}))
}

async fn home(axum::extract::State(state): axum::extract::State<AppState>) -> String {
    format!("{}: log in at /auth/if/flow/{LOGIN_FLOW}/", state.name)
}

/// Builds the app: the engine over `users`, the login flow, authflow under `/auth`.
/// `blocked` lists the networks the login flow refuses.
pub async fn app(
    users: Arc<HostUsers>,
    blocked: &[&str],
) -> Result<Router, Box<dyn std::error::Error>> {
    // Flows and sessions in memory for this example; a deployment uses durable stores
    // (see the README's "Running several instances").
    let stores = memory::Stores::new();
    let engine = Engine::builder(stores.flows.clone(), stores.sessions.clone(), users)
        .register_stage("example.accept-terms", AcceptTerms)
        .register_policy("example.blocked-networks", BlockedNetworks)
        .build();
    FlowBuilder::new(LOGIN_FLOW, FlowDesignation::Authentication)
        .title("Log in to the example app")
        .stage(
            "host-identification",
            IdentificationStage {
                user_fields: vec![UserField::Username, UserField::Email],
                ..IdentificationStage::default()
            },
        )
        .stage("host-password", PasswordStage::default())
        .stage(
            "host-terms",
            CustomStage::new("example.accept-terms").with_config(json!({"version": "2026-12"})),
        )
        .stage("host-user-login", UserLoginStage::default())
        .policy(
            "host-blocked-networks",
            PolicyKind::Custom(
                CustomPolicy::new("example.blocked-networks")
                    .with_config(json!({ "blocked": blocked })),
            ),
        )
        .flow_policy("host-blocked-networks")
        .install(stores.flows.as_ref())
        .await?;
    let auth = Authflow::new(
        Arc::new(engine),
        HttpConfig::default().with_mount_path("/auth")?,
    );
    Ok(Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .nest("/auth", auth.router())
        .fallback(|| async { (StatusCode::NOT_FOUND, "the host's own 404") })
        .with_state(AppState {
            auth,
            name: "example app",
        }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let users = Arc::new(HostUsers::new(Arc::new(Argon2idHasher)));
    users.add(1843, "ada", "ada@example.com", "lovelace-1843");
    let app = app(users, &["203.0.113.0/24"]).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("http://127.0.0.1:3000/auth/if/flow/{LOGIN_FLOW}/  (ada / lovelace-1843)");
    // ConnectInfo gives policies the client IP; without it IP checks fail closed.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
