#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! A bounded, loopback-only load generator for the HTTP adapter.
//!
//! In one process it starts, each on its own `127.0.0.1` port:
//! - the authflow router over the in-memory stores with the default flows and
//!   `akadmin` (argon2id hashing, as the reference server);
//! - with `--features danger-fast-hasher`, a second authflow router whose user
//!   directory uses the insecure [`DangerFastHasher`](authflow::hashing::DangerFastHasher),
//!   so the difference between the two shows what password verification costs;
//! - a bare axum handler answering a fixed JSON body: the identification challenge's
//!   own bytes, so both GETs move the same payload.
//!
//! Then, with one `reqwest` client and the same concurrency for both, it measures
//! executor GETs per second against bare GETs per second, and full logins per second
//! (GET + POST identification + POST password, a fresh cookie jar each) with 1 and 4
//! concurrent clients. Server CPU is read per thread from `/proc/self/task` (Linux):
//! the servers run on their own runtime, whose threads are named `loadgen-server`.
//!
//! ```sh
//! cargo run --release --example loadgen --features http
//! cargo run --release --example loadgen --features http,danger-fast-hasher -- --duration 5
//! ```
//!
//! Every measurement stops after `--duration` seconds (default 5) or `--max-requests`
//! HTTP requests (default 200000), whichever comes first. Traffic goes to loopback only.
//! Cookie-less GETs store nothing (their plan is reproducible from the request); each
//! login leaves a session in the in-memory store, which is bounded by its capacity.
//! The authflow server hashes passwords on an [`HashPool`] as the reference server does.
//!
//! Client and servers share the machine's cores, so requests per second are bounded by
//! both sides together; the server CPU per request or login is the steadier figure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use authflow::http::{HashPool, HttpConfig, router};
use authflow::memory::{MemoryUserDirectory, Stores};
use authflow::{defaults, hashing::PasswordHashing};
use axum::body::Bytes;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::{Value, json};

const USAGE: &str = "\
usage: loadgen [--mode compare|rss|storm] [--duration SECS] [--max-requests N] [--concurrency N]

  --mode compare      (default) executor GETs against a bare axum handler, then logins
  --mode rss          --max-requests cookie-less executor GETs (default 200000), then the
                      process's resident memory and the number of stored sessions
  --mode storm        GET latency (p50/p90) alone, then while 4 clients send wrong
                      passwords (argon2id), then alone again; resident memory after each
  --mode serve        only start the servers, print their URLs and serve for
                      --duration seconds (for an external client such as wrk)
  --duration SECS     length of each measurement (default 5)
  --max-requests N    cap on HTTP requests per measurement (default 200000)
  --concurrency N     concurrent clients for the GET comparison (default 4)

Logins are measured with 1 and 4 concurrent clients. Loopback only.";

const PASSWORD: &str = "loadgen-password";
const SERVER_THREADS: &str = "loadgen-server";
const CLIENT_THREADS: &str = "loadgen-client";
const EXECUTOR: &str = "/api/v3/flows/executor/default-authentication-flow/?query=";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Compare,
    Rss,
    Storm,
    Serve,
}

struct Options {
    mode: Mode,
    duration: Duration,
    max_requests: u64,
    concurrency: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        mode: Mode::Compare,
        duration: Duration::from_secs(5),
        max_requests: 200_000,
        concurrency: 4,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        if name == "-h" || name == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if !["--mode", "--duration", "--max-requests", "--concurrency"].contains(&name.as_str()) {
            return Err(format!("unknown argument {name}"));
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{name} needs a value"))?;
        match name.as_str() {
            "--mode" => {
                opts.mode = match value.as_str() {
                    "compare" => Mode::Compare,
                    "rss" => Mode::Rss,
                    "storm" => Mode::Storm,
                    "serve" => Mode::Serve,
                    _ => return Err(format!("bad --mode {value}")),
                };
            }
            "--duration" => {
                let secs: f64 = value
                    .parse()
                    .map_err(|_| format!("bad --duration {value}"))?;
                if !(0.1..=600.0).contains(&secs) {
                    return Err("--duration must be between 0.1 and 600 seconds".into());
                }
                opts.duration = Duration::from_secs_f64(secs);
            }
            "--max-requests" => {
                opts.max_requests = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("bad --max-requests {value}"))?;
            }
            "--concurrency" => {
                opts.concurrency = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or_else(|| format!("bad --concurrency {value} (1..=256)"))?;
            }
            _ => return Err(format!("unknown argument {name}")),
        }
    }
    Ok(opts)
}

// ---------------------------------------------------------------------------------
// CPU time of this process's threads, by thread name.

/// Summed CPU time of the threads whose name starts with `prefix`, or `None` when
/// `/proc/self/task` cannot be read (not Linux).
fn threads_cpu(prefix: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = entry.ok()?.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue; // the thread exited meanwhile
        };
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        // schedstat: "<ns on cpu> <ns waiting> <slices>"; stat: utime/stime in ticks.
        let from_schedstat = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .filter(|ns| *ns > 0)
            .map(Duration::from_nanos);
        let cpu = from_schedstat.or_else(|| {
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: u64 =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some(Duration::from_millis(ticks * 10))
        });
        total += cpu.unwrap_or_default();
    }
    Some(total)
}

/// Resident memory of this process (`VmRSS`, Linux), in MiB.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn fmt_rss() -> String {
    rss_mib().map_or_else(|| "n/a".into(), |m| format!("{m:.0} MiB"))
}

// ---------------------------------------------------------------------------------
// Servers.

/// Binds a loopback port and serves `app` on the current runtime.
async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    addr
}

/// The authflow router over fresh in-memory stores with the default flows and akadmin.
async fn authflow_server(hasher: Option<Arc<dyn PasswordHashing>>) -> (SocketAddr, Stores) {
    let mut stores = Stores::new();
    if let Some(h) = hasher {
        stores.users = Arc::new(MemoryUserDirectory::with_hasher(h));
    }
    // As the reference server: password hashing on the bounded pool.
    let engine = Arc::new(
        stores
            .engine()
            .blocking(Arc::new(HashPool::default()))
            .build(),
    );
    defaults::install(stores.flows.as_ref())
        .await
        .expect("install default flows");
    defaults::bootstrap_admin(stores.users.as_ref(), PASSWORD.to_owned().into())
        .await
        .expect("bootstrap akadmin");
    (serve(router(engine, HttpConfig::default())).await, stores)
}

/// A bare handler answering `body` as JSON.
async fn bare_server(body: Bytes) -> SocketAddr {
    let app = axum::Router::new().route(
        "/bare",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([(CONTENT_TYPE, "application/json")], body) }
        }),
    );
    serve(app).await
}

// ---------------------------------------------------------------------------------
// Client side.

/// A minimal cookie jar: name → value from `Set-Cookie`, sent back as `Cookie`.
#[derive(Default)]
struct Jar(HashMap<String, String>);

impl Jar {
    fn absorb(&mut self, response: &reqwest::Response) {
        for v in response.headers().get_all(SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let pair = v.split(';').next().unwrap_or("");
            if let Some((k, val)) = pair.split_once('=') {
                if val.is_empty() {
                    self.0.remove(k.trim());
                } else {
                    self.0.insert(k.trim().to_owned(), val.trim().to_owned());
                }
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

async fn get_ok(http: &reqwest::Client, url: &str, cookie: Option<&str>) -> Result<(), String> {
    let mut req = http.get(url);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let r = req.send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() || body.is_empty() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    Ok(())
}

/// Sends a request, keeps its cookies and checks the answered `component`.
async fn step(
    http: &reqwest::Client,
    jar: &mut Jar,
    url: &str,
    body: Option<Value>,
    expect: &str,
) -> Result<(), String> {
    let mut req = match &body {
        Some(b) => http.post(url).json(b),
        None => http.get(url),
    };
    if !jar.0.is_empty() {
        req = req.header(COOKIE, jar.header());
    }
    let r = req.send().await.map_err(|e| e.to_string())?;
    jar.absorb(&r);
    let status = r.status();
    let bytes = r.bytes().await.map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{e}"))?;
    let got = value.get("component").and_then(Value::as_str).unwrap_or("");
    if !status.is_success() || got != expect {
        return Err(format!(
            "expected {expect}, got HTTP {status} {}",
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    Ok(())
}

/// A full login as akadmin with a fresh cookie jar.
async fn login(http: &reqwest::Client, url: &str) -> Result<(), String> {
    let mut jar = Jar::default();
    step(http, &mut jar, url, None, "ak-stage-identification").await?;
    let ident = json!({"component": "ak-stage-identification", "uid_field": "akadmin"});
    step(http, &mut jar, url, Some(ident), "ak-stage-password").await?;
    let pw = json!({"component": "ak-stage-password", "password": PASSWORD});
    step(http, &mut jar, url, Some(pw), "xak-flow-redirect").await?;
    if !jar.0.contains_key("authentik_csrf") {
        return Err("logged-in session without the CSRF cookie".into());
    }
    Ok(())
}

/// An anonymous wrong-password attempt (unknown user: the pretend-user path hashes
/// against the dummy hash, so it costs one argon2id verification).
async fn wrong_password(http: &reqwest::Client, url: &str, n: u64) -> Result<(), String> {
    let mut jar = Jar::default();
    step(http, &mut jar, url, None, "ak-stage-identification").await?;
    let ident = json!({"component": "ak-stage-identification", "uid_field": format!("nobody-{n}")});
    step(http, &mut jar, url, Some(ident), "ak-stage-password").await?;
    let pw = json!({"component": "ak-stage-password", "password": "wrong"});
    step(http, &mut jar, url, Some(pw), "ak-stage-password").await
}

/// Starts a session and returns its `Cookie` header.
async fn session_cookie(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let mut jar = Jar::default();
    step(http, &mut jar, url, None, "ak-stage-identification").await?;
    Ok(jar.header())
}

// ---------------------------------------------------------------------------------
// Measurement.

#[derive(Clone)]
enum Work {
    /// GET without cookies.
    Get(String),
    /// GET with one session per client (the current challenge of an existing plan).
    GetInSession(String),
    /// Full logins.
    Login(String),
    /// GET + identification of an unknown user + a wrong password, a fresh jar each.
    WrongPassword(String),
}

impl Work {
    fn requests_per_op(&self) -> u64 {
        match self {
            Work::Login(_) | Work::WrongPassword(_) => 3,
            _ => 1,
        }
    }
}

struct Stats {
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    latencies: Vec<Duration>,
    server_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i]
    }

    fn server_cpu_per_op(&self) -> Option<Duration> {
        let cpu = self.server_cpu?;
        (self.ops > 0).then(|| cpu / u32::try_from(self.ops).unwrap_or(u32::MAX))
    }

    fn client_cpu_per_op(&self) -> Option<Duration> {
        let cpu = self.client_cpu?;
        (self.ops > 0).then(|| cpu / u32::try_from(self.ops).unwrap_or(u32::MAX))
    }
}

struct WorkerOut {
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    latencies: Vec<Duration>,
}

async fn worker(
    http: reqwest::Client,
    work: Work,
    deadline: Instant,
    budget: Arc<AtomicU64>,
) -> WorkerOut {
    let mut out = WorkerOut {
        ops: 0,
        errors: 0,
        first_error: None,
        latencies: Vec::new(),
    };
    let cookie = match &work {
        Work::GetInSession(url) => match session_cookie(&http, url).await {
            Ok(c) => Some(c),
            Err(e) => {
                out.errors += 1;
                out.first_error = Some(e);
                return out;
            }
        },
        _ => None,
    };
    let cost = work.requests_per_op();
    while Instant::now() < deadline {
        // Take this operation's requests from the shared cap.
        let taken = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(cost)
        });
        if taken.is_err() {
            break;
        }
        let started = Instant::now();
        let result = match &work {
            Work::Get(url) => get_ok(&http, url, None).await,
            Work::WrongPassword(url) => wrong_password(&http, url, out.ops).await,
            Work::GetInSession(url) => get_ok(&http, url, cookie.as_deref()).await,
            Work::Login(url) => login(&http, url).await,
        };
        match result {
            Ok(()) => {
                out.ops += 1;
                out.latencies.push(started.elapsed());
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
    out
}

async fn measure(http: &reqwest::Client, opts: &Options, work: Work, concurrency: usize) -> Stats {
    let budget = Arc::new(AtomicU64::new(opts.max_requests));
    let server_before = threads_cpu(SERVER_THREADS);
    let client_before = threads_cpu(CLIENT_THREADS);
    let started = Instant::now();
    let deadline = started + opts.duration;
    let handles: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(worker(http.clone(), work.clone(), deadline, budget.clone())))
        .collect();
    let mut stats = Stats {
        ops: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        server_cpu: None,
        client_cpu: None,
    };
    for h in handles {
        let out = h.await.expect("worker panicked");
        stats.ops += out.ops;
        stats.errors += out.errors;
        if stats.first_error.is_none() {
            stats.first_error = out.first_error;
        }
        stats.latencies.extend(out.latencies);
    }
    stats.elapsed = started.elapsed();
    stats.server_cpu = threads_cpu(SERVER_THREADS)
        .zip(server_before)
        .map(|(after, before)| after.saturating_sub(before));
    stats.client_cpu = threads_cpu(CLIENT_THREADS)
        .zip(client_before)
        .map(|(after, before)| after.saturating_sub(before));
    stats.latencies.sort_unstable();
    stats
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn fmt_opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "n/a".into(), fmt_dur)
}

fn report(label: &str, unit: &str, s: &Stats) {
    println!(
        "{label:<44} {:>9.0} {unit}/s  p50 {:>8}  p99 {:>8}  server CPU {:>8}/{unit}  client CPU {:>8}/{unit}  ({} in {:.1} s{})",
        s.rate(),
        fmt_dur(s.percentile(0.5)),
        fmt_dur(s.percentile(0.99)),
        fmt_opt(s.server_cpu_per_op()),
        fmt_opt(s.client_cpu_per_op()),
        s.ops,
        s.elapsed.as_secs_f64(),
        if s.errors > 0 {
            format!(
                ", {} errors, first: {}",
                s.errors,
                s.first_error.as_deref().unwrap_or("?")
            )
        } else {
            String::new()
        }
    );
}

fn runtime(name: &'static str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        // Keep blocking threads alive so their CPU time stays readable.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn fast_hasher() -> Option<Arc<dyn PasswordHashing>> {
    #[cfg(feature = "danger-fast-hasher")]
    {
        Some(Arc::new(authflow::hashing::DangerFastHasher))
    }
    #[cfg(not(feature = "danger-fast-hasher"))]
    {
        None
    }
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cpus.max(2);

    // Servers on their own runtime, so their threads' CPU time can be told apart.
    let server_rt = runtime(SERVER_THREADS, threads);
    let client_rt = runtime(CLIENT_THREADS, threads);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client");

    let ((authflow_addr, stores), fast_addr) = server_rt.block_on(async {
        let argon = authflow_server(None).await;
        let fast = match fast_hasher() {
            Some(h) => Some(authflow_server(Some(h)).await.0),
            None => None,
        };
        (argon, fast)
    });
    let executor = format!("http://{authflow_addr}{EXECUTOR}");

    // The bare handler answers the identification challenge's own bytes.
    let challenge = client_rt.block_on(async {
        let r = http.get(&executor).send().await.expect("GET executor");
        r.bytes().await.expect("executor body")
    });
    let bare_addr = server_rt.block_on(bare_server(challenge.clone()));
    let bare = format!("http://{bare_addr}/bare");

    println!(
        "authflow loadgen: {:.1} s per measurement, cap {} requests each, GET concurrency {}, \
         {cpus} CPU(s) shared by client and servers ({threads} threads each), loopback only",
        opts.duration.as_secs_f64(),
        opts.max_requests,
        opts.concurrency
    );
    println!(
        "authflow {authflow_addr} (argon2id){}, bare {bare_addr}; body {} bytes",
        fast_addr.map_or_else(String::new, |a| format!(", {a} (DangerFastHasher)")),
        challenge.len()
    );

    match opts.mode {
        Mode::Compare => {}
        Mode::Rss => {
            client_rt.block_on(rss(&http, &opts, &executor, &stores));
            return;
        }
        Mode::Storm => {
            client_rt.block_on(storm(&http, &opts, &executor));
            return;
        }
        Mode::Serve => {
            println!("executor {executor}\nbare {bare}");
            std::thread::sleep(opts.duration);
            return;
        }
    }

    client_rt.block_on(async {
        // Warm up: plan caches, connections, the allocator.
        for _ in 0..20 {
            let _ = get_ok(&http, &bare, None).await;
            let _ = get_ok(&http, &executor, None).await;
        }
        login(&http, &executor).await.expect("warm-up login");
        if let Some(a) = fast_addr {
            login(&http, &format!("http://{a}{EXECUTOR}"))
                .await
                .expect("warm-up login (fast)");
        }

        let c = opts.concurrency;
        let bare_s = measure(&http, &opts, Work::Get(bare.clone()), c).await;
        report(&format!("bare axum GET (c={c})"), "req", &bare_s);
        let sess = measure(&http, &opts, Work::GetInSession(executor.clone()), c).await;
        report(
            &format!("executor GET, existing session (c={c})"),
            "req",
            &sess,
        );
        let fresh = measure(&http, &opts, Work::Get(executor.clone()), c).await;
        report(
            &format!("executor GET, new session each (c={c})"),
            "req",
            &fresh,
        );
        // The bare handler again, so drift over time shows and the ratio uses both runs.
        let bare_again = measure(&http, &opts, Work::Get(bare.clone()), c).await;
        report(&format!("bare axum GET again (c={c})"), "req", &bare_again);
        let bare_rate = (bare_s.rate() + bare_again.rate()) / 2.0;
        println!(
            "ratio executor/bare GETs per second: {:.2} (existing session), {:.2} (new session \
             each); server CPU per GET: bare {} / {}, executor {} (existing session), {} (new session)",
            sess.rate() / bare_rate,
            fresh.rate() / bare_rate,
            fmt_opt(bare_s.server_cpu_per_op()),
            fmt_opt(bare_again.server_cpu_per_op()),
            fmt_opt(sess.server_cpu_per_op()),
            fmt_opt(fresh.server_cpu_per_op()),
        );

        let mut login_cpu = Vec::new();
        for c in [1, 4] {
            let s = measure(&http, &opts, Work::Login(executor.clone()), c).await;
            report(&format!("login argon2id (c={c})"), "login", &s);
            login_cpu.push(("argon2id", c, s.server_cpu_per_op()));
        }
        if let Some(a) = fast_addr {
            let url = format!("http://{a}{EXECUTOR}");
            for c in [1, 4] {
                let s = measure(&http, &opts, Work::Login(url.clone()), c).await;
                report(&format!("login DangerFastHasher (c={c})"), "login", &s);
                login_cpu.push(("fast", c, s.server_cpu_per_op()));
            }
        }

        let cpu = |name: &str, c: usize| -> Option<Duration> {
            login_cpu
                .iter()
                .find(|(n, cc, _)| *n == name && *cc == c)
                .and_then(|(_, _, d)| *d)
        };
        for c in [1, 4] {
            match (cpu("argon2id", c), cpu("fast", c)) {
                (Some(argon), Some(fast)) => println!(
                    "server CPU per login (c={c}): {} with argon2id, {} with DangerFastHasher → \
                     password verification ≈ {}, everything else (HTTP, planning, stages, \
                     sessions) ≈ {}",
                    fmt_dur(argon),
                    fmt_dur(fast),
                    fmt_dur(argon.saturating_sub(fast)),
                    fmt_dur(fast)
                ),
                (Some(argon), None) => println!(
                    "server CPU per login (c={c}): {} with argon2id (build with --features \
                     http,danger-fast-hasher to split off password verification)",
                    fmt_dur(argon)
                ),
                _ => println!("server CPU per login (c={c}): n/a (no /proc/self/task)"),
            }
        }
    });
}

/// `--mode rss`: cookie-less GETs, then resident memory and stored sessions.
async fn rss(http: &reqwest::Client, opts: &Options, executor: &str, stores: &Stores) {
    for _ in 0..20 {
        let _ = get_ok(http, executor, None).await;
    }
    let before = fmt_rss();
    let sessions_before = stores.sessions.len();
    let run = Options {
        mode: Mode::Rss,
        duration: Duration::from_secs(600),
        max_requests: opts.max_requests,
        concurrency: opts.concurrency,
    };
    let s = measure(http, &run, Work::Get(executor.to_owned()), opts.concurrency).await;
    report(
        &format!("executor GET, no cookie (c={})", opts.concurrency),
        "req",
        &s,
    );
    println!(
        "resident memory: {before} before, {} after {} cookie-less GETs; sessions stored: \
         {sessions_before} before, {} after",
        fmt_rss(),
        s.ops,
        stores.sessions.len()
    );
}

/// `--mode storm`: GET latency alone, under a 4-client wrong-password storm, alone again.
async fn storm(http: &reqwest::Client, opts: &Options, executor: &str) {
    let session = session_cookie(http, executor).await.expect("session");
    for _ in 0..20 {
        let _ = get_ok(http, executor, Some(&session)).await;
    }
    let probe = |label: String| {
        let http = http.clone();
        let url = executor.to_owned();
        let session = session.clone();
        let duration = opts.duration;
        async move {
            let deadline = Instant::now() + duration;
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match get_ok(&http, &url, Some(&session)).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
                // One client at a modest pace: the probe must not be the load.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat.sort_unstable();
            let pct = |p: f64| {
                lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize)
                    .copied()
                    .unwrap_or_default()
            };
            println!(
                "{label:<44} GET p50 {:>8}  p90 {:>8}  p99 {:>8}  ({} GETs, {errors} errors); RSS {}",
                fmt_dur(pct(0.5)),
                fmt_dur(pct(0.9)),
                fmt_dur(pct(0.99)),
                lat.len(),
                fmt_rss()
            );
        }
    };
    println!("resident memory at start: {}", fmt_rss());
    probe("quiet".into()).await;
    let run = Options {
        mode: Mode::Storm,
        duration: opts.duration,
        max_requests: opts.max_requests,
        concurrency: 4,
    };
    let storm = {
        let http = http.clone();
        let url = executor.to_owned();
        async move { measure(&http, &run, Work::WrongPassword(url), 4).await }
    };
    let (s, ()) = tokio::join!(
        storm,
        probe("during a 4-client wrong-password storm".into())
    );
    report("wrong-password attempts (c=4)", "attempt", &s);
    probe("quiet again".into()).await;
}
