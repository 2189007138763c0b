//! Sending mail: the [`Mailer`] trait the email stage sends through, a
//! [`DevMailer`] for development (each message written to a directory and/or the log)
//! and, with feature `smtp`, an [`SmtpMailer`] (lettre: plain SMTP, STARTTLS required or
//! implicit TLS; authentication; timeouts).
//!
//! A host without a mailer ([`EngineBuilder::mailer`](crate::EngineBuilder::mailer)
//! not called) fails closed: an email stage denies with "This server cannot send
//! email." instead of pretending to have sent a link.

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;

#[cfg(feature = "smtp")]
mod smtp;
#[cfg(feature = "smtp")]
pub use smtp::{SmtpMailer, SmtpSecurity};

/// One message: sender, recipient, subject, and a text and an HTML body.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The envelope sender and `From` header (e.g. `authflow <noreply@example.com>`).
    pub from: String,
    /// The recipient's address.
    pub to: String,
    /// The recipient's display name (may be empty).
    pub to_name: String,
    /// Subject.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

impl std::fmt::Debug for Message {
    // The bodies carry single-use links: never in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MailError {
    /// The server could not be reached, refused the connection or timed out.
    #[error("mail server unavailable: {0}")]
    Unavailable(String),
    /// The server refused the message (sender, recipient, authentication, TLS).
    #[error("mail refused: {0}")]
    Refused(String),
    /// The message could not be built (an invalid address).
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// Sends mail. Implementations must not retry forever: the email stage waits for the
/// answer and shows an error when sending fails.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one message.
    async fn send(&self, message: &Message) -> Result<(), MailError>;

    /// A short description for startup logs ("SMTP to mail.example.com:465 (TLS)").
    fn describe(&self) -> String {
        "a mailer".into()
    }
}

/// A mailer for development: writes each message as an `.eml` file into a directory,
/// and/or prints it (with its links) to standard error. Never use it in production:
/// the links are bearer credentials.
#[derive(Debug)]
pub struct DevMailer {
    dir: Option<PathBuf>,
    log: bool,
    counter: Mutex<u64>,
}

impl DevMailer {
    /// Writes messages into `dir` (created when missing).
    pub fn to_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
            log: false,
            counter: Mutex::new(0),
        }
    }

    /// Prints messages to standard error.
    pub fn to_log() -> Self {
        Self {
            dir: None,
            log: true,
            counter: Mutex::new(0),
        }
    }

    /// Also prints messages to standard error.
    pub fn with_log(mut self) -> Self {
        self.log = true;
        self
    }

    /// The directory messages are written to, if any.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }
}

/// A message as an RFC 5322 text (a multipart/alternative body), for files and tests.
pub fn to_rfc5322(message: &Message) -> String {
    let boundary = "authflow-alternative";
    let to = if message.to_name.is_empty() {
        message.to.clone()
    } else {
        format!(
            "\"{}\" <{}>",
            message.to_name.replace(['"', '\r', '\n'], ""),
            message.to
        )
    };
    format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n\
         --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{}\r\n--{boundary}--\r\n",
        message.from.replace(['\r', '\n'], ""),
        to.replace(['\r', '\n'], ""),
        message.subject.replace(['\r', '\n'], " "),
        message.text,
        message.html
    )
}

#[async_trait]
impl Mailer for DevMailer {
    async fn send(&self, message: &Message) -> Result<(), MailError> {
        let n = {
            let mut c = self
                .counter
                .lock()
                .map_err(|_| MailError::Unavailable("dev mailer lock poisoned".into()))?;
            *c += 1;
            *c
        };
        if let Some(dir) = &self.dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| MailError::Unavailable(format!("{}: {e}", dir.display())))?;
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let path = dir.join(format!("{stamp}-{n}.eml"));
            std::fs::write(&path, to_rfc5322(message))
                .map_err(|e| MailError::Unavailable(format!("{}: {e}", path.display())))?;
        }
        if self.log {
            eprintln!(
                "[dev mailer] to {} — {}\n{}\n[end of message]",
                message.to, message.subject, message.text
            );
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match (&self.dir, self.log) {
            (Some(d), true) => format!("development mailer: files in {} and the log", d.display()),
            (Some(d), false) => format!("development mailer: files in {}", d.display()),
            (None, _) => "development mailer: messages printed to standard error".into(),
        }
    }
}

/// A mailer that keeps every message in memory (for tests and embedding hosts that
/// deliver mail themselves), optionally failing every send.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<Message>>,
    down: std::sync::atomic::AtomicBool,
}

impl MemoryMailer {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// The messages sent so far.
    pub fn sent(&self) -> Vec<Message> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Makes every later send fail as an unreachable server (`true`) or succeed.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, message: &Message) -> Result<(), MailError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(MailError::Unavailable("connection refused".into()));
        }
        self.sent
            .lock()
            .map_err(|_| MailError::Unavailable("outbox lock poisoned".into()))?
            .push(message.clone());
        Ok(())
    }

    fn describe(&self) -> String {
        "in-memory mailer".into()
    }
}

/// What every mail of the engine shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// The sender: envelope and `From` header. Default `authflow@localhost`.
    pub from: String,
    /// The base of every link in a mail, e.g. `https://id.example.com` (the mount
    /// prefix follows it). Never taken from a request's `Host`: without it, an email
    /// stage denies ("no external URL configured") rather than mail a link an attacker
    /// could have pointed at their own host.
    pub external_url: Option<String>,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            from: "authflow@localhost".into(),
            external_url: None,
        }
    }
}

impl MailSettings {
    /// Settings with this sender and link base (a trailing `/` is dropped).
    pub fn new(from: impl Into<String>, external_url: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            external_url: Some(external_url.into().trim_end_matches('/').to_owned()),
        }
    }
}

/// The mails a step sent before its save, by the binding that sent them: a step
/// retried after a compare-and-swap conflict finds its mail here instead of sending
/// it again (see [`crate::effects`]'s journal).
#[derive(Debug, Clone, Default)]
pub(crate) struct SentMails {
    sent: Vec<String>,
    replay: Vec<String>,
}

impl SentMails {
    /// Starts another attempt of the step.
    pub(crate) fn retry(&mut self) {
        self.replay = self.sent.clone();
    }

    /// Whether an earlier attempt of this step already sent the mail of `key` (the
    /// entry is used up).
    pub(crate) fn replayed(&mut self, key: &str) -> bool {
        match self.replay.iter().position(|k| k == key) {
            Some(i) => {
                self.replay.remove(i);
                true
            }
            None => false,
        }
    }

    /// Records a mail sent in this attempt.
    pub(crate) fn record(&mut self, key: &str) {
        self.sent.push(key.to_owned());
    }
}
