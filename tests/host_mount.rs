//! authflow nested in a host app: under `/auth` every link the server emits follows
//! the prefix; a host `/me` route gets the user through `LoggedIn` (and keeps the
//! session from idling out); the client IP comes from trusted proxies only;
//! `FlowQuery` builds and reads authentik's `query`.
#![cfg(feature = "http")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use authflow::clock::ManualClock;
use authflow::events::{EventAction, MemoryEventSink};
use authflow::http::{Authflow, CSRF_COOKIE, CSRF_HEADER, HttpConfig, LoggedIn, SESSION_COOKIE};
use authflow::memory::{MemorySessionStore, Stores};
use authflow::model::{
    Flow, FlowDesignation, FlowStageBinding, RedirectMode, RedirectStage, Stage, StageConfig,
};
use authflow::plan::SessionId;
use authflow::store::{FlowAdmin, FlowSource, SessionStore};
use authflow::{FlowQuery, defaults};
use axum::Router;
use axum::routing::get;
use reqwest::cookie::{CookieStore, Jar};
use serde_json::{Value, json};

const PASSWORD: &str = "Host-Mount-Pw-1";
const LOGIN: &str = defaults::AUTHENTICATION;
const START: u64 = 1_800_000_000;
const HOUR: u64 = 3600;

struct Host {
    base: String,
    stores: Stores,
    clock: Arc<ManualClock>,
    events: Arc<MemoryEventSink>,
}

async fn host(config: HttpConfig) -> Host {
    let clock = Arc::new(ManualClock::new(START));
    let stores = Stores {
        sessions: Arc::new(MemorySessionStore::with_expiry(
            clock.clone(),
            24 * HOUR,
            30 * 24 * HOUR,
        )),
        ..Stores::new()
    };
    let events = Arc::new(MemoryEventSink::new());
    let engine = Arc::new(
        stores
            .engine()
            .clock(clock.clone())
            .events(events.clone())
            .build(),
    );
    defaults::install(stores.flows.as_ref()).await.unwrap();
    defaults::bootstrap_admin(stores.users.as_ref(), PASSWORD.into())
        .await
        .unwrap();
    link_identification_flows(&stores).await;
    let auth = Authflow::new(engine, config);
    let app = Router::new()
        .route(
            "/me",
            get(|LoggedIn(user): LoggedIn| async move {
                axum::Json(json!({"username": user.username}))
            })
            .post(|LoggedIn(user): LoggedIn| async move { user.username }),
        )
        .nest("/auth", auth.router())
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "host 404") })
        .with_state(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Host {
        base: format!("http://{addr}"),
        stores,
        clock,
        events,
    }
}

fn mounted() -> HttpConfig {
    HttpConfig::default().with_mount_path("/auth").unwrap()
}

/// The default login's identification stage links to enrollment, recovery and a
/// passwordless flow.
async fn link_identification_flows(stores: &Stores) {
    let def = stores.flows.flow(LOGIN).await.unwrap().unwrap();
    for bound in &def.stages {
        if let StageConfig::Identification(mut ident) = bound.stage.config.clone() {
            ident.enrollment_flow = Some(defaults::ENROLLMENT.into());
            ident.recovery_flow = Some(defaults::PASSWORD_CHANGE.into());
            ident.passwordless_flow = Some(defaults::AUTHENTICATION.into());
            let mut stage = (*bound.stage).clone();
            stage.config = StageConfig::Identification(ident);
            stores.flows.put_stage(stage).await.unwrap();
        }
    }
}

struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
}

impl Host {
    fn browser(&self) -> Browser {
        self.browser_with(None, &[])
    }

    fn browser_with(&self, ip: Option<&str>, headers: &[(&'static str, &str)]) -> Browser {
        let jar = Arc::new(Jar::default());
        let mut default_headers = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            default_headers.insert(*k, v.parse().unwrap());
        }
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .local_address(ip.map(|ip| ip.parse::<IpAddr>().unwrap()))
            .default_headers(default_headers)
            .build()
            .unwrap();
        Browser {
            client,
            jar,
            base: self.base.clone(),
        }
    }
}

impl Browser {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    async fn post_json(&self, path: &str, body: Value) -> Value {
        let mut req = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(csrf) = self.cookie(CSRF_COOKIE) {
            req = req.header(CSRF_HEADER, csrf);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "POST {path}");
        r.json().await.unwrap()
    }

    fn cookie(&self, name: &str) -> Option<String> {
        let url: reqwest::Url = self.base.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .unwrap()
            .split("; ")
            .filter_map(|c| c.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .filter(|v| !v.is_empty())
    }

    fn session(&self) -> SessionId {
        SessionId::parse(&self.cookie(SESSION_COOKIE).expect("a session cookie")).unwrap()
    }

    /// Logs in through the default login flow at the executor URL `api` (what the page
    /// fetches); returns the final challenge.
    async fn login_at(&self, api: &str) -> Value {
        let c = self.get_json(api).await;
        assert_eq!(c["component"], "ak-stage-identification", "{c}");
        let c = self
            .post_json(
                api,
                json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
            )
            .await;
        assert_eq!(c["component"], "ak-stage-password", "{c}");
        self.post_json(
            api,
            json!({"component": "ak-stage-password", "password": PASSWORD}),
        )
        .await
    }

    async fn login(&self) {
        let c = self
            .login_at(&format!("/auth/api/v3/flows/executor/{LOGIN}/?query="))
            .await;
        assert_eq!(c["component"], "xak-flow-redirect", "{c}");
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn mount_paths_are_validated() {
    for bad in [
        "auth",
        "/auth/",
        "/",
        "//evil.example",
        "/a/../b",
        "/a/./b",
        "/a b",
        "/a?b",
        "/a%2F",
    ] {
        assert!(HttpConfig::default().with_mount_path(bad).is_err(), "{bad}");
    }
    for good in ["", "/auth", "/a/b-c_d.e~f"] {
        let c = HttpConfig::default().with_mount_path(good).unwrap();
        assert_eq!(c.mount_path.as_str(), good);
    }
}

#[tokio::test]
async fn page_is_served_under_the_prefix_and_calls_the_prefixed_api() {
    let h = host(mounted()).await;
    let b = h.browser();
    let r = b.get(&format!("/auth/if/flow/{LOGIN}/")).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"data-base="/auth""#), "{html}");
    assert!(html.contains(r#"base + "/api/v3/flows/executor/""#));
    // Not at the root: the host's own 404.
    let r = b.get(&format!("/if/flow/{LOGIN}/")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "host 404");
}

#[tokio::test]
async fn login_under_the_prefix_follows_every_emitted_link() {
    let h = host(mounted()).await;
    let b = h.browser();
    // The default-flow redirect lands on the prefixed page, keeping the query.
    let r = b
        .get("/auth/flows/-/default/authentication/?next=%2Fapp")
        .await;
    assert_eq!(r.status(), 302);
    let page = location(&r);
    assert_eq!(page, format!("/auth/if/flow/{LOGIN}/?next=%2Fapp"));
    // What the page then fetches: the executor under the same prefix, with the query.
    let query = page.split_once('?').unwrap().1;
    let api = format!(
        "/auth/api/v3/flows/executor/{LOGIN}/?{}",
        FlowQuery::parse(query).executor_param()
    );
    let c = b.get_json(&api).await;
    assert_eq!(c["component"], "ak-stage-identification");
    assert_eq!(
        c["flow_info"]["cancel_url"],
        "/auth/flows/-/cancel/?next=%2Fapp"
    );
    assert_eq!(
        c["enroll_url"],
        format!("/auth/if/flow/{}/?next=%2Fapp", defaults::ENROLLMENT)
    );
    assert_eq!(
        c["recovery_url"],
        format!("/auth/if/flow/{}/?next=%2Fapp", defaults::PASSWORD_CHANGE)
    );
    assert_eq!(
        c["passwordless_url"],
        format!("/auth/if/flow/{LOGIN}/?next=%2Fapp")
    );
    let done = b.login_at(&api).await;
    assert_eq!(done["component"], "xak-flow-redirect");
    assert_eq!(
        done["to"], "/app",
        "next is the host's own URL, kept as given"
    );
    // Cancel without `next` goes to the prefixed invalidation flow.
    let r = b.get("/auth/flows/-/cancel/").await;
    assert_eq!(location(&r), "/auth/flows/-/default/invalidation/");
    let r = b.get("/auth/flows/-/default/invalidation/").await;
    assert_eq!(
        location(&r),
        format!("/auth/if/flow/{}/", defaults::INVALIDATION)
    );
    // Admin answers: export_url and the execute link follow the prefix too.
    let list = b.get_json("/auth/api/v3/flows/instances/").await;
    let flows = list["results"].as_array().unwrap();
    assert!(!flows.is_empty());
    for f in flows {
        let export = f["export_url"].as_str().unwrap();
        assert!(
            export.starts_with("/auth/api/v3/flows/instances/"),
            "{export}"
        );
    }
    let exec = b
        .get_json(&format!(
            "/auth/api/v3/flows/instances/{}/execute/",
            defaults::PASSWORD_CHANGE
        ))
        .await;
    assert_eq!(
        exec["link"],
        format!("/auth/if/flow/{}/", defaults::PASSWORD_CHANGE)
    );
}

#[tokio::test]
async fn anonymous_configure_is_sent_to_the_prefixed_login() {
    let h = host(mounted()).await;
    let stage = uuid::Uuid::new_v4();
    let r = h
        .browser()
        .get(&format!("/auth/flows/-/configure/{stage}/"))
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        location(&r),
        format!("/auth/flows/-/default/authentication/?next=/auth/flows/-/configure/{stage}/")
    );
}

#[tokio::test]
async fn redirect_to_another_flow_follows_the_prefix() {
    let h = host(mounted()).await;
    let flows = h.stores.flows.as_ref();
    let flow = Flow::new("hop", "Hop", FlowDesignation::StageConfiguration);
    flows.put_flow(flow.clone()).await.unwrap();
    let stage = Stage::new(
        "hop-redirect",
        RedirectStage {
            mode: RedirectMode::Flow,
            target_flow: Some(LOGIN.into()),
            ..RedirectStage::default()
        },
    );
    flows.put_stage(stage.clone()).await.unwrap();
    flows
        .put_binding(FlowStageBinding::new(flow.pk, stage.pk, 0))
        .await
        .unwrap();
    let b = h.browser();
    let q = FlowQuery::new().next("/app").executor_param();
    let c = b
        .get_json(&format!("/auth/api/v3/flows/executor/hop/?{q}"))
        .await;
    assert_eq!(c["component"], "xak-flow-redirect", "{c}");
    assert_eq!(c["to"], format!("/auth/if/flow/{LOGIN}/?next=%2Fapp"));
}

#[tokio::test]
async fn root_mount_keeps_the_unprefixed_links() {
    // Mounted at the root (the default), nothing changes.
    let h = host(HttpConfig::default()).await;
    // The router is nested under /auth by the harness, but configured for the root:
    // links miss the prefix (and a warning is logged once) — the host must configure it.
    let c = h
        .browser()
        .get_json(&format!("/auth/api/v3/flows/executor/{LOGIN}/?query="))
        .await;
    assert_eq!(c["flow_info"]["cancel_url"], "/flows/-/cancel/");
    assert_eq!(
        c["enroll_url"],
        format!("/if/flow/{}/", defaults::ENROLLMENT)
    );
}

#[tokio::test]
async fn host_route_gets_the_logged_in_user_or_401() {
    let h = host(mounted()).await;
    let b = h.browser();
    let r = b.get("/me").await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "not_authenticated");
    b.login().await;
    assert_eq!(b.get_json("/me").await["username"], "akadmin");
    // A state-changing host route: the CSRF header is required for cookie sessions.
    let r = b
        .client
        .post(format!("{}/me", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = b
        .client
        .post(format!("{}/me", b.base))
        .header(CSRF_HEADER, b.cookie(CSRF_COOKIE).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "akadmin");
    // A garbage cookie is anonymous, not an error.
    let r = h
        .browser_with(None, &[("cookie", "authflow_session=../../x")])
        .get("/me")
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn reading_the_session_on_host_routes_keeps_it_alive() {
    let h = host(mounted()).await;
    let active = h.browser();
    let idle = h.browser();
    active.login().await;
    idle.login().await;
    let id = active.session();
    let version = |h: &Host, id: SessionId| {
        let sessions = h.stores.sessions.clone();
        async move { sessions.load(&id).await.unwrap().unwrap().version }
    };
    // Within the interval a read writes nothing.
    let v0 = version(&h, id.clone()).await;
    h.clock.advance(10);
    assert_eq!(active.get_json("/me").await["username"], "akadmin");
    assert_eq!(
        version(&h, id.clone()).await,
        v0,
        "no write within the interval"
    );
    // After the interval it is touched once, under the same id.
    h.clock.advance(authflow::session_touch::TOUCH_INTERVAL);
    active.get_json("/me").await;
    let v1 = version(&h, id.clone()).await;
    assert_eq!(v1, v0 + 1);
    active.get_json("/me").await;
    assert_eq!(
        version(&h, id.clone()).await,
        v1,
        "at most once per interval"
    );
    assert_eq!(active.session(), id, "never rotated");
    // 23 h later, another read: the active session is refreshed again.
    h.clock.advance(23 * HOUR);
    active.get_json("/me").await;
    // 2 h more (25 h after login): the idle one is gone, the active one stays.
    h.clock.advance(2 * HOUR);
    assert_eq!(active.get_json("/me").await["username"], "akadmin");
    assert_eq!(idle.get("/me").await.status(), 401);
    // …and 23 h without any read ends it too.
    h.clock.advance(24 * HOUR);
    assert_eq!(active.get("/me").await.status(), 401);
}

fn login_ip(h: &Host) -> Option<String> {
    h.events
        .of(EventAction::Login)
        .last()
        .and_then(|e| e.client_ip.clone())
}

#[tokio::test]
async fn forwarded_headers_of_an_untrusted_peer_are_not_believed() {
    let h = host(mounted().with_trusted_proxies(["127.0.0.1"]).unwrap()).await;
    let spoofer = h.browser_with(
        Some("127.0.0.2"),
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.8"),
        ],
    );
    spoofer.login().await;
    assert_eq!(login_ip(&h).as_deref(), Some("127.0.0.2"));
}

#[tokio::test]
async fn without_trusted_proxies_forwarded_headers_are_ignored() {
    let h = host(mounted()).await;
    let b = h.browser_with(Some("127.0.0.1"), &[("x-forwarded-for", "203.0.113.7")]);
    b.login().await;
    assert_eq!(login_ip(&h).as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn a_trusted_proxy_gives_the_rightmost_untrusted_hop() {
    let h = host(
        mounted()
            .with_trusted_proxies(["127.0.0.1", "10.0.0.0/8"])
            .unwrap(),
    )
    .await;
    // The client forged 6.6.6.6; the edge proxy appended the real 203.0.113.7, an
    // inner proxy 10.1.1.1 forwarded to us.
    let b = h.browser_with(
        Some("127.0.0.1"),
        &[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1")],
    );
    b.login().await;
    assert_eq!(login_ip(&h).as_deref(), Some("203.0.113.7"));
    let b = h.browser_with(
        Some("127.0.0.1"),
        &[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::5]:4711\";proto=https",
        )],
    );
    b.login().await;
    assert_eq!(login_ip(&h).as_deref(), Some("2001:db8::5"));
    // An unreadable hop leaves the IP unknown (IP-based checks then fail closed).
    let b = h.browser_with(Some("127.0.0.1"), &[("forwarded", "for=unknown")]);
    b.login().await;
    assert_eq!(login_ip(&h), None);
}

#[tokio::test]
async fn flow_query_round_trips_through_the_executor() {
    let q = FlowQuery::new().next("/app?tab=1&x=%2F");
    assert_eq!(FlowQuery::parse(&q.to_string()), q);
    assert_eq!(FlowQuery::from_executor_query(&q.executor_param()), q);
    assert_eq!(q.safe_next(), Some("/app?tab=1&x=%2F"));
    assert_eq!(
        FlowQuery::new().next("/app").executor_param(),
        "query=next%3D%252Fapp"
    );
    let h = host(mounted()).await;
    let b = h.browser();
    let done = b
        .login_at(&format!(
            "/auth/api/v3/flows/executor/{LOGIN}/?{}",
            q.executor_param()
        ))
        .await;
    assert_eq!(done["to"], "/app?tab=1&x=%2F");
    // An unsafe `next` is neither offered by FlowQuery nor followed by the engine.
    let evil = FlowQuery::new().next("https://evil.example/");
    assert_eq!(evil.safe_next(), None);
    let b = h.browser();
    let done = b
        .login_at(&format!(
            "/auth/api/v3/flows/executor/{LOGIN}/?{}",
            evil.executor_param()
        ))
        .await;
    assert_eq!(done["component"], "ak-stage-access-denied", "{done}");
}
