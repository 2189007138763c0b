//! A real SMTP server process for the tests: `tests/common/smtp_sink.py` (aiosmtpd,
//! Debian's `python3-aiosmtpd`, installed by `ci/install-python.sh`) on a free
//! loopback port, and what it received.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One message the server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The raw message (headers and body).
    pub data: String,
    /// The client authenticated.
    pub auth: bool,
}

impl Received {
    /// The first `http(s)://` link in the (quoted-printable decoded) text.
    pub fn link(&self) -> String {
        let text = if self.data.contains("quoted-printable") {
            decode_qp(&self.data)
        } else {
            self.data.clone()
        };
        let start = text
            .find("http://")
            .or_else(|| text.find("https://"))
            .unwrap_or_else(|| panic!("no link in {text}"));
        text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
            .collect()
    }
}

/// Undoes quoted-printable soft breaks and `=XX` escapes (good enough for links).
fn decode_qp(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The running server; stopped when dropped.
pub struct SmtpSink {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpSink {
    /// Starts a server (requiring AUTH with `credentials` `user:pass` when given).
    pub fn start(credentials: Option<&str>) -> Self {
        let python =
            std::env::var("AUTHFLOW_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/smtp_sink.py");
        let dir = std::env::temp_dir().join(format!("authflow-smtp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(&python);
            cmd.arg(script).arg(port.to_string()).arg(&dir);
            if let Some(c) = credentials {
                cmd.arg(c);
            }
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run {python} (aiosmtpd: ci/install-python.sh): {e}")
                });
            let mut line = String::new();
            let stdout = child.stdout.take().unwrap();
            let _ = BufReader::new(stdout).read_line(&mut line);
            if line.trim() == "ready" {
                return Self { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "the SMTP test server did not start: is aiosmtpd installed for {python}? \
             (apt-get install python3-aiosmtpd; ci/install-python.sh)"
        );
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                Received {
                    from: v["from"].as_str().unwrap_or("").to_owned(),
                    to: v["to"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    data: v["data"].as_str().unwrap_or("").to_owned(),
                    auth: v["auth"].as_bool().unwrap_or(false),
                }
            })
            .collect()
    }

    /// Waits until `n` messages arrived (at most 10 s) and returns them.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n || started.elapsed() > Duration::from_secs(10) {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (later connections are refused).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
