//! The SMTP mailer (feature `smtp`): lettre's async transport over tokio with rustls.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{MailError, Mailer, Message};

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP, no TLS (`smtp://host:port`): only for a relay on the same host or
    /// a trusted network.
    Plain,
    /// STARTTLS, required: sending fails when the server does not offer it
    /// (`smtp://host:port?starttls=required`).
    StartTlsRequired,
    /// Implicit TLS from the first byte (`smtps://host:port`, usually port 465).
    ImplicitTls,
}

/// Sends mail through an SMTP server. Connects per message (no pool); the timeout
/// (default 10 seconds, authentik's) bounds each network operation, and twice it the
/// whole exchange.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
    security: SmtpSecurity,
    authenticated: bool,
    timeout: Duration,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Decodes `%XX` escapes (user names and passwords in the URL).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (Some(&b), _, _) => {
                out.push(b);
                i += 1;
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl SmtpMailer {
    /// A mailer from a URL:
    ///
    /// - `smtp://host:port` — plain SMTP (default port 25);
    /// - `smtp://host:port?starttls=required` — STARTTLS, required (default port 587);
    /// - `smtps://host:port` — implicit TLS (default port 465);
    ///
    /// each optionally with `user:password@` before the host (percent-encoded) and
    /// `timeout=<seconds>` in the query (default 10).
    ///
    /// ```
    /// # #[cfg(feature = "smtp")] {
    /// use authflow::mail::{SmtpMailer, SmtpSecurity};
    /// let m = SmtpMailer::from_url("smtps://mailer:s%40cret@mail.example.com").unwrap();
    /// assert_eq!(m.security(), SmtpSecurity::ImplicitTls);
    /// assert!(SmtpMailer::from_url("http://mail.example.com").is_err());
    /// # }
    /// ```
    pub fn from_url(url: &str) -> Result<Self, MailError> {
        let invalid = |m: &str| MailError::Invalid(format!("SMTP URL: {m}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected smtp://… or smtps://…"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        let rest = rest.trim_end_matches('/');
        let mut starttls = false;
        let mut timeout = Duration::from_secs(10);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match (k.as_ref(), v.as_ref()) {
                ("starttls", "required") => starttls = true,
                ("starttls", other) => {
                    return Err(invalid(&format!(
                        "starttls={other}: only starttls=required is supported"
                    )));
                }
                ("timeout", secs) => {
                    let s: u64 = secs
                        .parse()
                        .ok()
                        .filter(|s| (1..=600).contains(s))
                        .ok_or_else(|| invalid("timeout must be 1..=600 seconds"))?;
                    timeout = Duration::from_secs(s);
                }
                (other, _) => return Err(invalid(&format!("unknown parameter `{other}`"))),
            }
        }
        let security = match (scheme, starttls) {
            ("smtp", false) => SmtpSecurity::Plain,
            ("smtp", true) => SmtpSecurity::StartTlsRequired,
            ("smtps", false) => SmtpSecurity::ImplicitTls,
            ("smtps", true) => return Err(invalid("smtps:// is implicit TLS; drop starttls")),
            _ => return Err(invalid("expected smtp://… or smtps://…")),
        };
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || p.parse::<u16>().is_ok() => (
                h,
                Some(p.parse::<u16>().map_err(|_| invalid("invalid port"))?),
            ),
            _ => (hostport, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = port.unwrap_or(match security {
            SmtpSecurity::Plain => 25,
            SmtpSecurity::StartTlsRequired => 587,
            SmtpSecurity::ImplicitTls => 465,
        });
        let credentials = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            Credentials::new(percent_decode(user), percent_decode(pass))
        });
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| invalid(&format!("TLS: {e}")))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(timeout));
        builder = match security {
            SmtpSecurity::Plain => builder.tls(Tls::None),
            SmtpSecurity::StartTlsRequired => builder.tls(Tls::Required(tls(host)?)),
            SmtpSecurity::ImplicitTls => builder.tls(Tls::Wrapper(tls(host)?)),
        };
        let authenticated = credentials.is_some();
        if let Some(c) = credentials {
            builder = builder.credentials(c);
        }
        Ok(Self {
            transport: builder.build(),
            host: host.to_owned(),
            port,
            security,
            authenticated,
            timeout,
        })
    }

    /// How the connection is protected.
    pub fn security(&self) -> SmtpSecurity {
        self.security
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &Message) -> Result<(), MailError> {
        let invalid = |e: &dyn std::fmt::Display| MailError::Invalid(e.to_string());
        let from: Mailbox = message.from.parse().map_err(|e| invalid(&e))?;
        let to_addr = message.to.parse().map_err(|e| invalid(&e))?;
        let to = Mailbox::new(
            Some(message.to_name.clone()).filter(|n| !n.is_empty()),
            to_addr,
        );
        let email = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(message.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|e| invalid(&e))?;
        // One deadline for the whole exchange (connect, greeting, TLS, AUTH, DATA):
        // lettre's own timeout does not cover every read.
        let deadline = self.timeout.saturating_mul(2);
        match tokio::time::timeout(deadline, self.transport.send(email)).await {
            Err(_) => Err(MailError::Unavailable(format!(
                "no answer from {}:{} within {} s",
                self.host,
                self.port,
                deadline.as_secs()
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() || e.is_transient() => {
                Err(MailError::Refused(e.to_string()))
            }
            Ok(Err(e)) => Err(MailError::Unavailable(e.to_string())),
        }
    }

    fn describe(&self) -> String {
        let security = match self.security {
            SmtpSecurity::Plain => "plain, no TLS",
            SmtpSecurity::StartTlsRequired => "STARTTLS required",
            SmtpSecurity::ImplicitTls => "implicit TLS",
        };
        let auth = if self.authenticated {
            ", authenticated"
        } else {
            ""
        };
        format!("SMTP to {}:{} ({security}{auth})", self.host, self.port)
    }
}
