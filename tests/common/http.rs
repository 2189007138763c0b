//! Harness of `tests/http.rs`: a real authflow HTTP server on an ephemeral loopback
//! port, cookie-keeping browsers that record every response they receive, and a
//! validator for authentik's flow-executor OpenAPI schema
//! (`tests/fixtures/authentik-flow-executor.openapi.yaml`).
//!
//! Every response goes through [`Browser::send`], which records it on the [`Server`];
//! [`Server::finish`] (also run when the server is dropped) checks every recorded
//! response: no 5xx, 3xx with a `Location`, 4xx as JSON `{detail, code}` or field
//! errors, and every executor challenge against the schema picked by its `component`.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use authflow::http::{ApiTokens, CSRF_COOKIE, CSRF_HEADER, HttpConfig, SESSION_COOKIE, router};
use authflow::model::{
    DummyStage, Flow, FlowDesignation, FlowStageBinding, Prompt, PromptStage, PromptType, Stage,
};
use authflow::plan::{FlowState, SessionId, SessionState};
use authflow::store::{FlowAdmin, NewUser, SessionStore, User, UserAdmin};
use authflow::{Engine, defaults, memory};
use reqwest::Method;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

/// The bootstrap password used by the recorded authentik transcripts.
pub const ADMIN_PASSWORD: &str = "Akadmin-Local-Pw-1";

/// The executor URL of a flow (with authentik's empty `query`).
pub fn executor(slug: &str) -> String {
    format!("/api/v3/flows/executor/{slug}/?query=")
}

/// The inspector URL of a flow.
pub fn inspector(slug: &str) -> String {
    format!("/api/v3/flows/inspector/{slug}/")
}

// ---------------------------------------------------------------------------------------
// Responses

/// One recorded HTTP exchange.
#[derive(Debug, Clone)]
pub struct Resp {
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: Value,
}

impl Resp {
    /// Every `Set-Cookie` line.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `Set-Cookie` line for `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().into_iter().find(|c| {
            c.split(';')
                .next()
                .and_then(|p| p.split_once('='))
                .map(|p| p.0)
                == Some(name)
        })
    }

    /// The value a `Set-Cookie` line gives `name`.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        self.set_cookie(name).map(|c| {
            let first = c.split(';').next().unwrap();
            first.split_once('=').unwrap().1.trim().to_owned()
        })
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<String> {
        self.headers
            .get(reqwest::header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The content type without parameters.
    pub fn content_type(&self) -> String {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default()
    }

    /// The challenge's `component` (empty when absent).
    pub fn component(&self) -> &str {
        self.json["component"].as_str().unwrap_or("")
    }

    /// Asserts a 200 challenge with this component and returns its JSON.
    #[track_caller]
    pub fn challenge(&self, component: &str) -> &Value {
        assert_eq!(
            (self.status, self.component()),
            (200, component),
            "{} {}: {}",
            self.method,
            self.path,
            self.text
        );
        &self.json
    }

    /// `response_errors` as `{field: [message, …]}` (empty when absent).
    pub fn errors(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.json["response_errors"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, list)| {
                        let msgs = list
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|e| e["string"].as_str().unwrap().to_owned())
                            .collect();
                        (k.clone(), msgs)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------
// Server

/// What [`Server::finish`] checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Responses checked by this call.
    pub responses: usize,
    /// Executor challenges validated against the schema by this call.
    pub challenges: usize,
}

/// A running server over in-memory stores with the default flows and `akadmin`.
pub struct Server {
    pub base: String,
    pub stores: memory::Stores,
    pub engine: Arc<Engine>,
    pub admin: User,
    pub tokens: Arc<ApiTokens>,
    log: Arc<Mutex<Vec<Resp>>>,
    checked: Mutex<usize>,
    task: tokio::task::JoinHandle<()>,
}

/// A server with `HttpConfig::default()`.
pub async fn start() -> Server {
    start_with(HttpConfig::default()).await
}

/// A server with `config`.
pub async fn start_with(config: HttpConfig) -> Server {
    start_custom(config, |b| b).await
}

/// A server with `config` and an engine adjusted by `customize` (clock, throttle, …).
pub async fn start_custom(
    config: HttpConfig,
    customize: impl FnOnce(authflow::EngineBuilder) -> authflow::EngineBuilder,
) -> Server {
    let stores = memory::Stores::new();
    let engine = Arc::new(customize(stores.engine()).build());
    defaults::install(stores.flows.as_ref())
        .await
        .expect("install default flows");
    let admin = defaults::bootstrap_admin(stores.users.as_ref(), ADMIN_PASSWORD.into())
        .await
        .expect("bootstrap admin");
    let tokens = config.tokens.clone();
    let app = router(engine.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    Server {
        base: format!("http://{addr}"),
        stores,
        engine,
        admin,
        tokens,
        log: Arc::new(Mutex::new(Vec::new())),
        checked: Mutex::new(0),
        task,
    }
}

impl Server {
    /// A browser without cookies.
    pub fn browser(&self) -> Browser {
        self.browser_at(None)
    }

    /// A browser without cookies connecting from another loopback address (e.g.
    /// `127.0.0.2`): the server sees it as another client IP.
    pub fn browser_from(&self, ip: &str) -> Browser {
        self.browser_at(Some(ip.parse().expect("an IP address")))
    }

    fn browser_at(&self, ip: Option<std::net::IpAddr>) -> Browser {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .local_address(ip)
            .build()
            .unwrap();
        Browser {
            client,
            jar,
            base: self.base.clone(),
            log: self.log.clone(),
        }
    }

    /// A browser logged in as `username` through the default login flow.
    pub async fn login(&self, username: &str, password: &str) -> Browser {
        let b = self.browser();
        b.login(username, password).await;
        b
    }

    /// Creates an ordinary (non-superuser) user directly in the directory.
    pub async fn create_user(&self, username: &str, password: &str) -> User {
        self.stores
            .users
            .create_user(
                NewUser::new(username)
                    .email(format!("{username}@example.invalid"))
                    .name(username)
                    .password(password),
            )
            .await
            .expect("create user")
    }

    /// A flow that keeps a password in its plan context mid-flow: prompt (password,
    /// password_repeat) → dummy. Returns its slug.
    pub async fn install_probe_flow(&self) -> &'static str {
        let slug = "http-probe";
        let flows = self.stores.flows.as_ref();
        let flow = Flow::new(slug, "Probe", FlowDesignation::StageConfiguration);
        flows.put_flow(flow.clone()).await.unwrap();
        let prompt = Stage::new(
            "http-probe-prompt",
            PromptStage {
                fields: vec![
                    Prompt::new("password", "Password", PromptType::Password, 0),
                    Prompt::new(
                        "password_repeat",
                        "Password (repeat)",
                        PromptType::Password,
                        1,
                    ),
                ],
                validation_policies: vec![],
            },
        );
        let dummy = Stage::new("http-probe-dummy", DummyStage::default());
        for (order, stage) in [(0, prompt), (10, dummy)] {
            let binding = FlowStageBinding::new(flow.pk, stage.pk, order);
            flows.put_stage(stage).await.unwrap();
            flows.put_binding(binding).await.unwrap();
        }
        slug
    }

    /// The stored state of a session.
    pub async fn session(&self, id: &str) -> Option<SessionState> {
        let id = SessionId::parse(id).expect("well-formed session id");
        self.stores
            .sessions
            .load(&id)
            .await
            .unwrap()
            .map(|v| v.value)
    }

    /// The stored state of one flow of a session, as JSON (for before/after comparisons).
    pub async fn flow_state(&self, id: &str, slug: &str) -> Option<Value> {
        self.session(id)
            .await
            .and_then(|s| s.flows.get(slug).cloned())
            .map(|f: FlowState| serde_json::to_value(f).unwrap())
    }

    /// Every response recorded so far.
    pub fn recorded(&self) -> Vec<Resp> {
        self.log.lock().unwrap().clone()
    }

    /// Checks every response recorded since the last call; panics listing every
    /// problem.
    pub fn finish(&self) -> Report {
        let log = self.log.lock().unwrap().clone();
        let mut checked = self.checked.lock().unwrap();
        let mut report = Report::default();
        let mut problems = Vec::new();
        for r in log.iter().skip(*checked) {
            report.responses += 1;
            let (challenge, errs) = check_exchange(r);
            report.challenges += usize::from(challenge);
            problems.extend(errs.into_iter().map(|e| {
                format!(
                    "{} {} → {}: {e}\n    body: {}",
                    r.method,
                    r.path,
                    r.status,
                    truncate(&r.text)
                )
            }));
        }
        *checked = log.len();
        assert!(
            problems.is_empty(),
            "{} problem(s) in recorded responses:\n{}",
            problems.len(),
            problems.join("\n")
        );
        report
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        if !std::thread::panicking() {
            self.finish();
        }
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 400 {
        format!("{}…", s.chars().take(400).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// Checks one exchange. Returns whether it was an executor challenge that was
/// validated against the schema, and the problems.
pub fn check_exchange(r: &Resp) -> (bool, Vec<String>) {
    let mut errs = Vec::new();
    let mut challenge = false;
    let path = r.path.split('?').next().unwrap_or("");
    if r.status >= 500 {
        errs.push(format!("server error {}", r.status));
    }
    if (300..400).contains(&r.status) && r.location().is_none() {
        errs.push("redirect without Location".into());
    }
    if (400..500).contains(&r.status) {
        errs.extend(check_error_body(r));
    }
    if r.status == 200 && path.starts_with("/api/v3/flows/executor/") {
        if r.content_type() != "application/json" {
            errs.push(format!(
                "challenge with content type `{}`",
                r.content_type()
            ));
        }
        challenge = true;
        errs.extend(schema().validate_ours(&r.json));
    }
    if r.status == 200 && path.starts_with("/api/v3/") && r.content_type() != "application/json" {
        errs.push(format!(
            "API answer with content type `{}`",
            r.content_type()
        ));
    }
    (challenge, errs)
}

/// A 4xx body: JSON `{"detail": str, "code": str}` (authentik's `GenericError`) or
/// field errors `{"field": [str, …], …, "code": "invalid"}` (`ValidationError`).
pub fn check_error_body(r: &Resp) -> Vec<String> {
    let mut errs = Vec::new();
    if r.content_type() != "application/json" {
        errs.push(format!("error with content type `{}`", r.content_type()));
    }
    let Some(m) = r.json.as_object() else {
        errs.push("error body is not a JSON object".into());
        return errs;
    };
    if !m.get("code").is_some_and(Value::is_string) {
        errs.push("error body without a string `code`".into());
    }
    if m.contains_key("detail") {
        errs.extend(schema().validate_named("GenericError", &r.json));
        if m["detail"].as_str().is_none_or(str::is_empty) {
            errs.push("empty `detail`".into());
        }
        if m.len() != 2 {
            errs.push("error body has keys besides `detail` and `code`".into());
        }
    } else {
        errs.extend(schema().validate_named("ValidationError", &r.json));
        if m.len() < 2 {
            errs.push("field-error body names no field".into());
        }
        for (k, v) in m {
            if k == "code" {
                continue;
            }
            let ok = v
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
            if !ok {
                errs.push(format!(
                    "field error `{k}` is not a non-empty list of strings"
                ));
            }
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Browser

/// What to send as `X-authentik-CSRF`.
#[derive(Debug, Clone)]
pub enum Csrf {
    /// The `authentik_csrf` cookie, when the browser has one (like authentik's SPA).
    Auto,
    /// No header.
    Omit,
    /// This value.
    Value(String),
}

/// A cookie-keeping HTTP client; every response is recorded on its server.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub base: String,
    log: Arc<Mutex<Vec<Resp>>>,
}

/// A request.
pub struct Req<'a> {
    pub method: Method,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub body: Option<Vec<u8>>,
    pub csrf: Csrf,
    pub headers: Vec<(&'a str, String)>,
}

impl<'a> Req<'a> {
    pub fn new(method: Method, path: &'a str) -> Self {
        Self {
            method,
            path,
            content_type: None,
            body: None,
            csrf: Csrf::Auto,
            headers: Vec::new(),
        }
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(serde_json::to_vec(body).unwrap());
        self
    }

    pub fn raw(mut self, content_type: Option<&'a str>, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = content_type;
        self.body = Some(body.into());
        self
    }

    pub fn csrf(mut self, csrf: Csrf) -> Self {
        self.csrf = csrf;
        self
    }

    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }
}

impl Browser {
    fn url(&self) -> reqwest::Url {
        reqwest::Url::parse(&self.base).unwrap()
    }

    /// A cookie the browser would send.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let header = self.jar.cookies(&self.url())?;
        header
            .to_str()
            .unwrap()
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }

    /// The session cookie's value.
    pub fn session(&self) -> String {
        self.cookie(SESSION_COOKIE)
            .expect("browser has a session cookie")
    }

    /// Sends a request and records the response.
    pub async fn send(&self, req: Req<'_>) -> Resp {
        let mut rb = self
            .client
            .request(req.method.clone(), format!("{}{}", self.base, req.path))
            .header("accept", "application/json");
        if let Some(t) = req.content_type {
            rb = rb.header("content-type", t);
        }
        let csrf = match req.csrf {
            Csrf::Auto => self.cookie(CSRF_COOKIE),
            Csrf::Omit => None,
            Csrf::Value(v) => Some(v),
        };
        if let Some(v) = csrf {
            rb = rb.header(CSRF_HEADER, v);
        }
        for (k, v) in &req.headers {
            rb = rb.header(*k, v.as_str());
        }
        if let Some(body) = req.body {
            rb = rb.body(body);
        }
        let response = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} {}: transport error {e:?}", req.method, req.path));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("read body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let r = Resp {
            method: req.method.to_string(),
            path: req.path.to_owned(),
            status,
            headers,
            text,
            json,
        };
        self.log.lock().unwrap().push(r.clone());
        r
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Req::new(Method::GET, path)).await
    }

    /// POST JSON with the CSRF header when the browser has the cookie.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Req::new(Method::POST, path).json(body)).await
    }

    /// GET the flow's current challenge.
    pub async fn exec(&self, slug: &str) -> Resp {
        self.get(&executor(slug)).await
    }

    /// POST a response to the flow's current challenge.
    pub async fn answer(&self, slug: &str, body: Value) -> Resp {
        self.post(&executor(slug), &body).await
    }

    /// Runs the default login flow to the end; asserts the redirect home.
    pub async fn login(&self, username: &str, password: &str) {
        let slug = defaults::AUTHENTICATION;
        self.exec(slug).await.challenge("ak-stage-identification");
        self.answer(
            slug,
            json!({"component": "ak-stage-identification", "uid_field": username}),
        )
        .await
        .challenge("ak-stage-password");
        let r = self
            .answer(
                slug,
                json!({"component": "ak-stage-password", "password": password}),
            )
            .await;
        assert_eq!(
            r.challenge("xak-flow-redirect")["to"],
            "/",
            "login of {username}"
        );
        assert!(self.cookie(CSRF_COOKIE).is_some(), "logged in: CSRF cookie");
    }
}

// ---------------------------------------------------------------------------------------
// The wire contract: a validator for the subset of OpenAPI 3.0 the schema uses.

/// Schema keywords the validator understands or may ignore (annotations). Any other
/// keyword met while validating is reported, so an unsupported constraint can never
/// pass silently.
const KNOWN_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "nullable",
    "$ref",
    "allOf",
    "oneOf",
    "discriminator",
    "enum",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    // annotations
    "description",
    "readOnly",
    "writeOnly",
    "title",
    "default",
    "deprecated",
    "example",
];

/// authentik's flow-executor OpenAPI schema.
pub struct Schema {
    doc: Value,
}

/// The schema, loaded once.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(Schema::load)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Schema {
    pub fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/authentik-flow-executor.openapi.yaml"
        );
        let text = std::fs::read_to_string(path).expect("read the OpenAPI schema");
        let doc: Value = serde_norway::from_str(&text).expect("parse the OpenAPI schema");
        assert!(
            doc.pointer("/components/schemas/ChallengeTypes/oneOf")
                .is_some(),
            "schema has no ChallengeTypes"
        );
        Self { doc }
    }

    /// A named component schema.
    pub fn named(&self, name: &str) -> Option<&Value> {
        self.doc.pointer(&format!("/components/schemas/{name}"))
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        self.doc.pointer(reference.strip_prefix('#')?)
    }

    /// The schema name the `ChallengeTypes` discriminator maps `component` to.
    pub fn challenge_schema_name(&self, component: &str) -> Option<&str> {
        self.named("ChallengeTypes")?
            .pointer("/discriminator/mapping")?
            .get(component)?
            .as_str()?
            .rsplit('/')
            .next()
    }

    /// Validates a value against a named component schema.
    pub fn validate_named(&self, name: &str, v: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        match self.named(name) {
            Some(s) => self.check(s, v, "$", &mut errs, &[]),
            None => errs.push(format!("no schema named {name}")),
        }
        errs
    }

    /// Validates a challenge against `ChallengeTypes`: the discriminator picks the
    /// schema by `component`. The only property allowed beyond the schema's is the
    /// legacy top-level `type`.
    pub fn validate_challenge(&self, v: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        let root = self.named("ChallengeTypes").expect("ChallengeTypes");
        self.check(root, v, "$", &mut errs, &["type"]);
        errs
    }

    /// [`Schema::validate_challenge`], plus authflow's legacy `type` (DESIGN.md §5):
    /// present, and `redirect`/`shell`/`native` by component.
    pub fn validate_ours(&self, v: &Value) -> Vec<String> {
        let mut errs = self.validate_challenge(v);
        let expected = match v["component"].as_str() {
            Some("xak-flow-redirect") => "redirect",
            Some("xak-flow-shell") => "shell",
            _ => "native",
        };
        if v.get("type").and_then(Value::as_str) != Some(expected) {
            errs.push(format!(
                "$.type: expected legacy type `{expected}`, got {}",
                v.get("type").map_or("nothing".into(), Value::to_string)
            ));
        }
        errs
    }

    fn check(&self, schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>, extra: &[&str]) {
        let Some(s) = schema.as_object() else {
            errs.push(format!("{path}: schema is not an object"));
            return;
        };
        for k in s.keys() {
            if !KNOWN_KEYWORDS.contains(&k.as_str()) {
                errs.push(format!("{path}: unsupported schema keyword `{k}`"));
            }
        }
        let nullable = s.get("nullable").and_then(Value::as_bool) == Some(true);
        if v.is_null() && nullable {
            return;
        }
        if let Some(r) = s.get("$ref") {
            match r.as_str().and_then(|r| self.resolve(r)) {
                Some(target) => self.check(target, v, path, errs, extra),
                None => errs.push(format!("{path}: unresolvable $ref {r}")),
            }
        }
        if let Some(all) = s.get("allOf") {
            for sub in all.as_array().into_iter().flatten() {
                self.check(sub, v, path, errs, extra);
            }
        }
        if let Some(one) = s.get("oneOf") {
            self.check_one_of(s, one, v, path, errs, extra);
        }
        if let Some(allowed) = s.get("enum") {
            if !allowed.as_array().is_some_and(|a| a.contains(v)) {
                errs.push(format!("{path}: {v} is not one of {allowed}"));
            }
        }
        if let Some(t) = s.get("type").and_then(Value::as_str) {
            let ok = match t {
                "string" => v.is_string(),
                "boolean" => v.is_boolean(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                other => {
                    errs.push(format!("{path}: unsupported type `{other}`"));
                    true
                }
            };
            if !ok {
                errs.push(format!("{path}: expected {t}, got {} ({v})", kind_of(v)));
                return;
            }
        }
        if let Some(text) = v.as_str() {
            if let Some(f) = s.get("format").and_then(Value::as_str) {
                match f {
                    "uuid" => {
                        if uuid::Uuid::parse_str(text).is_err() {
                            errs.push(format!("{path}: `{text}` is not a uuid"));
                        }
                    }
                    // RFC 3339 as authflow writes it: `YYYY-MM-DDTHH:MM:SSZ`.
                    "date-time" => {
                        let b = text.as_bytes();
                        let shape = b.len() == 20
                            && b.iter().enumerate().all(|(i, c)| match i {
                                4 | 7 => *c == b'-',
                                10 => *c == b'T',
                                13 | 16 => *c == b':',
                                19 => *c == b'Z',
                                _ => c.is_ascii_digit(),
                            });
                        if !shape {
                            errs.push(format!("{path}: `{text}` is not an RFC 3339 date-time"));
                        }
                    }
                    other => errs.push(format!("{path}: unsupported format `{other}`")),
                }
            }
            let len = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if len < min {
                    errs.push(format!("{path}: shorter than {min}"));
                }
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if len > max {
                    errs.push(format!("{path}: longer than {max}"));
                }
            }
        }
        if let Some(n) = v.as_i64() {
            if s.get("minimum")
                .and_then(Value::as_i64)
                .is_some_and(|m| n < m)
            {
                errs.push(format!("{path}: {n} below the minimum"));
            }
            if s.get("maximum")
                .and_then(Value::as_i64)
                .is_some_and(|m| n > m)
            {
                errs.push(format!("{path}: {n} above the maximum"));
            }
        }
        if let (Some(items), Some(a)) = (s.get("items"), v.as_array()) {
            for (i, item) in a.iter().enumerate() {
                self.check(items, item, &format!("{path}[{i}]"), errs, &[]);
            }
        }
        if let Some(m) = v.as_object() {
            let is_object_schema = s.get("type").and_then(Value::as_str) == Some("object")
                || s.contains_key("properties")
                || s.contains_key("additionalProperties");
            if is_object_schema {
                self.check_object(s, m, path, errs, extra);
            }
        }
    }

    fn check_one_of(
        &self,
        s: &Map<String, Value>,
        one: &Value,
        v: &Value,
        path: &str,
        errs: &mut Vec<String>,
        extra: &[&str],
    ) {
        let alternatives: Vec<&Value> = one.as_array().into_iter().flatten().collect();
        if let Some(d) = s.get("discriminator") {
            let prop = d["propertyName"].as_str().unwrap_or("");
            let Some(value) = v.get(prop).and_then(Value::as_str) else {
                errs.push(format!("{path}: no string discriminator `{prop}`"));
                return;
            };
            let Some(reference) = d.pointer("/mapping").and_then(|m| m.get(value)) else {
                errs.push(format!(
                    "{path}: `{prop}` `{value}` is not in the discriminator mapping"
                ));
                return;
            };
            if !alternatives
                .iter()
                .any(|a| a.get("$ref") == Some(reference))
            {
                errs.push(format!(
                    "{path}: mapping target {reference} is not a oneOf alternative"
                ));
            }
            self.check(&json!({"$ref": reference}), v, path, errs, extra);
        } else {
            let passing = alternatives
                .iter()
                .filter(|a| {
                    let mut e = Vec::new();
                    self.check(a, v, path, &mut e, extra);
                    e.is_empty()
                })
                .count();
            if passing != 1 {
                errs.push(format!(
                    "{path}: matches {passing} oneOf alternatives, not exactly 1"
                ));
            }
        }
    }

    fn check_object(
        &self,
        s: &Map<String, Value>,
        m: &Map<String, Value>,
        path: &str,
        errs: &mut Vec<String>,
        extra: &[&str],
    ) {
        let empty = Map::new();
        let props = s
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for req in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = req.as_str().unwrap_or("");
            if !m.contains_key(req) {
                errs.push(format!("{path}: missing required `{req}`"));
            }
        }
        for (k, value) in m {
            let at = format!("{path}.{k}");
            if let Some(p) = props.get(k) {
                self.check(p, value, &at, errs, &[]);
                continue;
            }
            match s.get("additionalProperties") {
                Some(Value::Bool(false)) => errs.push(format!("{at}: additional property")),
                Some(Value::Bool(true)) => {}
                Some(ap) => self.check(ap, value, &at, errs, &[]),
                // Strict: a property the schema does not declare is reported, except
                // the ones the caller allows (the legacy `type`).
                None if extra.contains(&k.as_str()) => {}
                None => errs.push(format!("{at}: property not in the schema")),
            }
        }
    }
}
