//! Drives a flow from a terminal against the in-memory stores.
//!
//! Installs the default flows, creates `akadmin` (password from
//! `AUTHFLOW_BOOTSTRAP_PASSWORD`, or a random one printed once), then shows each
//! challenge, reads the answers from stdin and posts them with `Engine::step`, until
//! the flow redirects (done) or denies access.
//!
//! ```text
//! cargo run --example cli                        # the default login flow
//! cargo run --example cli -- --flow default-enrollment-flow
//! cargo run --example cli -- --json              # print raw challenge JSON
//! printf 'akadmin\npw\n' | AUTHFLOW_BOOTSTRAP_PASSWORD=pw cargo run --example cli
//! ```
//!
//! Challenges go to stdout; prompts and status lines go to stderr. Passwords are read
//! as plain lines, so a terminal echoes them.
//!
//! Exit status: 0 when the flow finished, 1 on an error or end of input, 2 on bad
//! arguments, 3 when access was denied.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;

use authflow::challenge::{ChallengeBody, StagePrompt};
use authflow::model::PromptType;
use authflow::{Challenge, Engine, FlowRequest, Outcome, defaults, memory};
use serde_json::{Map, Value, json};

const USAGE: &str = "\
usage: cli [--flow <slug>] [--json]

  --flow <slug>  the flow to run (default: default-authentication-flow)
  --json         print each challenge as raw JSON instead of a human form
  -h, --help     show this help

env: AUTHFLOW_BOOTSTRAP_PASSWORD  akadmin's password (random and printed when unset)";

const EXIT_USAGE: u8 = 2;
const EXIT_DENIED: u8 = 3;

/// Command-line options.
#[derive(Debug)]
struct Args {
    flow: String,
    json: bool,
}

/// Parses the arguments; `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        flow: defaults::AUTHENTICATION.to_owned(),
        json: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => parsed.json = true,
            "--flow" => match args.next() {
                Some(slug) if !slug.is_empty() => parsed.flow = slug,
                _ => return Err("`--flow` needs a slug".into()),
            },
            other => match other.strip_prefix("--flow=") {
                Some(slug) if !slug.is_empty() => parsed.flow = slug.to_owned(),
                _ => return Err(format!("unknown argument `{other}`")),
            },
        }
    }
    Ok(Some(parsed))
}

/// The terminal: challenges to stdout, prompts and status to stderr, answers from stdin.
struct Console {
    input: Box<dyn BufRead>,
    /// stdin is a terminal (the user's Enter already ended the prompt line).
    interactive: bool,
}

impl Console {
    fn new() -> Self {
        let stdin = io::stdin();
        Self {
            interactive: stdin.is_terminal(),
            input: Box::new(stdin.lock()),
        }
    }

    /// Prints a rendered challenge.
    fn show(&mut self, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{text}")?;
        out.flush()
    }

    /// Prints a status line.
    fn status(&mut self, text: &str) -> io::Result<()> {
        writeln!(io::stderr(), "{text}")
    }

    /// Asks one question; `None` at end of input. Invalid UTF-8 is replaced, never fatal.
    fn ask(&mut self, prompt: &str) -> io::Result<Option<String>> {
        let mut err = io::stderr().lock();
        write!(err, "{prompt}: ")?;
        err.flush()?;
        let mut buf = Vec::new();
        if self.input.read_until(b'\n', &mut buf)? == 0 {
            writeln!(err)?;
            return Ok(None);
        }
        if !self.interactive {
            // Piped input is not echoed: end the prompt line ourselves (never echo answers).
            writeln!(err)?;
        }
        let line = String::from_utf8_lossy(&buf);
        Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()))
    }

    /// Asks a yes/no question (default no); `None` at end of input.
    fn confirm(&mut self, prompt: &str) -> io::Result<Option<bool>> {
        Ok(self.ask(&format!("{prompt} [y/N]"))?.map(|a| is_yes(&a)))
    }
}

fn is_yes(answer: &str) -> bool {
    matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes" | "true" | "1" | "on"
    )
}

/// What to do after showing a challenge.
enum Next {
    /// Post this response.
    Send(Value),
    /// Stop with this status.
    Stop(ExitCode),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            let _ = writeln!(io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut console = Console::new();
    match run(&args, &mut console).await {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// akadmin's password: from the environment, or random and printed once.
fn bootstrap_password(console: &mut Console) -> Result<String, Box<dyn std::error::Error>> {
    match std::env::var("AUTHFLOW_BOOTSTRAP_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(p),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err("AUTHFLOW_BOOTSTRAP_PASSWORD is not valid UTF-8".into())
        }
        _ => {
            let p = uuid::Uuid::new_v4().simple().to_string();
            console.status(&format!(
                "generated password for `{}` (shown once): {p}",
                defaults::ADMIN_USERNAME
            ))?;
            Ok(p)
        }
    }
}

async fn run(args: &Args, console: &mut Console) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let stores = memory::Stores::new();
    let engine = stores.engine().build();
    defaults::install(stores.flows.as_ref()).await?;
    let password = bootstrap_password(console)?;
    defaults::bootstrap_admin(stores.users.as_ref(), password.into()).await?;

    let slug = args.flow.as_str();
    let mut req = FlowRequest::default();
    let mut out = engine.plan(&req, slug).await?;
    loop {
        req.session_id = Some(out.session_id.clone());
        report_session(&engine, &out, console).await?;
        if args.json {
            console.show(&serde_json::to_string_pretty(&out.challenge)?)?;
        } else {
            console.show(&render(&out.challenge))?;
        }
        let response = match answer(&out.challenge, console)? {
            Some(Next::Send(response)) => response,
            Some(Next::Stop(code)) => return Ok(code),
            None => {
                console.status("end of input: stopping")?;
                return Ok(ExitCode::FAILURE);
            }
        };
        out = engine.step(&req, slug, &response).await?;
    }
}

/// Reports a login or logout that the last call caused.
async fn report_session(
    engine: &Engine,
    out: &Outcome,
    console: &mut Console,
) -> Result<(), Box<dyn std::error::Error>> {
    if out.logged_in {
        let name = engine
            .session_user(&out.session_id)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        console.status(&format!("logged in as `{name}`"))?;
    }
    if out.logged_out {
        console.status("logged out")?;
    }
    Ok(())
}

/// A challenge in a human form: title, component, fields, errors.
fn render(c: &Challenge) -> String {
    let mut lines = Vec::new();
    if let Some(info) = &c.flow_info {
        lines.push(format!("== {} ==", info.title));
    }
    lines.push(format!("[{}]", c.component()));
    match &c.body {
        ChallengeBody::Identification(i) => {
            lines.push(format!("  identify with: {}", i.user_fields.join(", ")));
            if i.password_fields {
                lines.push("  with password".into());
            }
            for (label, url) in [
                ("enroll", &i.enroll_url),
                ("recover", &i.recovery_url),
                ("passwordless", &i.passwordless_url),
            ] {
                if let Some(url) = url {
                    lines.push(format!("  {label}: {url}"));
                }
            }
        }
        ChallengeBody::Password(p) if !p.user.pending_user.is_empty() => {
            lines.push(format!("  user: {}", p.user.pending_user));
        }
        ChallengeBody::Prompt(p) => {
            for f in sorted(&p.fields) {
                let mut line = format!("  {} ({}", f.field_key, wire(f.prompt_type));
                if f.required && has_value(f.prompt_type) {
                    line.push_str(", required");
                }
                line.push_str(&format!(") {}", f.label));
                if let Some(choices) = &f.choices {
                    let values: Vec<&str> = choices.iter().map(|c| c.value.as_str()).collect();
                    line.push_str(&format!(" — one of: {}", values.join(", ")));
                }
                lines.push(line);
                if !f.sub_text.is_empty() {
                    lines.push(format!("      {}", f.sub_text));
                }
            }
        }
        ChallengeBody::Consent(cn) => {
            if let Some(h) = &cn.header_text {
                lines.push(format!("  {h}"));
            }
            for p in cn.permissions.iter().chain(&cn.additional_permissions) {
                lines.push(format!("  - {}", p.name));
            }
        }
        ChallengeBody::AccessDenied(d) => {
            lines.push(format!(
                "  access denied: {}",
                d.error_message.as_deref().unwrap_or("(no message)")
            ));
        }
        ChallengeBody::FlowError(e) => {
            lines.push(format!("  flow error, request id {}", e.request_id));
            if let Some(error) = &e.error {
                lines.push(format!("  {error}"));
            }
        }
        ChallengeBody::Redirect(r) => lines.push(format!("  redirect to {}", r.to)),
        ChallengeBody::Shell(s) => lines.push(format!("  {}", s.body)),
        ChallengeBody::Custom(cu) if !cu.fields.is_empty() => {
            lines.push(format!("  {}", Value::Object(cu.fields.clone())));
        }
        _ => {}
    }
    for (field, errors) in &c.response_errors {
        for e in errors {
            lines.push(format!("  ! {field}: {}", e.string));
        }
    }
    lines.join("\n")
}

fn sorted(fields: &[StagePrompt]) -> Vec<&StagePrompt> {
    let mut fields: Vec<&StagePrompt> = fields.iter().collect();
    fields.sort_by_key(|f| f.order);
    fields
}

/// The wire name of a prompt type (`text`, `password`, …).
fn wire(t: PromptType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{t:?}"))
}

/// Whether a prompt field takes a value the user types.
fn has_value(t: PromptType) -> bool {
    !matches!(
        t,
        PromptType::Separator
            | PromptType::Static
            | PromptType::AlertInfo
            | PromptType::AlertWarning
            | PromptType::AlertDanger
            | PromptType::Hidden
            | PromptType::TextReadOnly
            | PromptType::TextAreaReadOnly
    )
}

/// Reads the answer to a challenge; `None` at end of input. Every challenge that
/// expects a response reads at least one line, so the loop always ends with the input.
fn answer(c: &Challenge, console: &mut Console) -> io::Result<Option<Next>> {
    let component = c.component().to_owned();
    let mut response = Map::new();
    response.insert("component".into(), component.clone().into());
    match &c.body {
        ChallengeBody::Redirect(_) => {
            console.status("flow finished")?;
            return Ok(Some(Next::Stop(ExitCode::SUCCESS)));
        }
        ChallengeBody::AccessDenied(_) => {
            return Ok(Some(Next::Stop(ExitCode::from(EXIT_DENIED))));
        }
        ChallengeBody::FlowError(_) => return Ok(Some(Next::Stop(ExitCode::FAILURE))),
        ChallengeBody::Shell(_) | ChallengeBody::SessionEnd(_) => {
            return Ok(Some(Next::Stop(ExitCode::SUCCESS)));
        }
        ChallengeBody::Identification(i) => {
            let label = i
                .user_fields
                .iter()
                .map(|f| capitalize(f))
                .collect::<Vec<_>>()
                .join(" or ");
            let Some(uid) = console.ask(&label)? else {
                return Ok(None);
            };
            response.insert("uid_field".into(), uid.into());
            if i.password_fields {
                let Some(pw) = console.ask("Password")? else {
                    return Ok(None);
                };
                response.insert("password".into(), pw.into());
            }
        }
        ChallengeBody::AuthenticatorTotp(t) => {
            console.status(&format!(
                "Add this to your authenticator app: {}",
                t.config_url
            ))?;
            let Some(code) = console.ask("Code")? else {
                return Ok(None);
            };
            response.insert("code".into(), code.into());
        }
        ChallengeBody::AuthenticatorStatic(s) => {
            console.status(&format!("Your recovery codes: {}", s.codes.join(" ")))?;
            if console.ask("Press Enter once you saved them")?.is_none() {
                return Ok(None);
            }
        }
        ChallengeBody::AuthenticatorWebauthn(_) => {
            console.status("Setting up a WebAuthn device needs a browser; open the flow there.")?;
            return Ok(Some(Next::Stop(ExitCode::FAILURE)));
        }
        ChallengeBody::AuthenticatorValidate(v) => {
            if v.configuration_stages.is_empty() {
                let Some(code) = console.ask("Authenticator or recovery code")? else {
                    return Ok(None);
                };
                response.insert("code".into(), code.into());
            } else {
                for (i, s) in v.configuration_stages.iter().enumerate() {
                    console.status(&format!("{}: {}", i + 1, s.name))?;
                }
                let Some(choice) = console.ask("Set up which authenticator")? else {
                    return Ok(None);
                };
                let picked = choice
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|n| v.configuration_stages.get(n));
                if let Some(s) = picked {
                    response.insert("selected_stage".into(), s.pk.clone().into());
                }
            }
        }
        ChallengeBody::Password(p) => {
            let prompt = if p.user.pending_user.is_empty() {
                "Password".to_owned()
            } else {
                format!("Password for {}", p.user.pending_user)
            };
            let Some(pw) = console.ask(&prompt)? else {
                return Ok(None);
            };
            response.insert("password".into(), pw.into());
        }
        ChallengeBody::Prompt(p) => {
            let mut asked = false;
            for f in sorted(&p.fields) {
                if !has_value(f.prompt_type) {
                    if matches!(
                        f.prompt_type,
                        PromptType::Hidden
                            | PromptType::TextReadOnly
                            | PromptType::TextAreaReadOnly
                    ) {
                        response.insert(f.field_key.clone(), f.initial_value.clone().into());
                    }
                    continue;
                }
                asked = true;
                if f.prompt_type == PromptType::Checkbox {
                    let Some(yes) = console.confirm(&f.label)? else {
                        return Ok(None);
                    };
                    response.insert(f.field_key.clone(), yes.into());
                    continue;
                }
                let shows_default =
                    f.prompt_type != PromptType::Password && !f.initial_value.is_empty();
                let prompt = if shows_default {
                    format!("{} [{}]", f.label, f.initial_value)
                } else {
                    f.label.clone()
                };
                let Some(mut value) = console.ask(&prompt)? else {
                    return Ok(None);
                };
                if value.is_empty() && shows_default {
                    value = f.initial_value.clone();
                }
                response.insert(f.field_key.clone(), value.into());
            }
            if !asked && console.ask("Press Enter to continue")?.is_none() {
                return Ok(None);
            }
        }
        ChallengeBody::Dummy(_) => {
            if console.ask("Press Enter to continue")?.is_none() {
                return Ok(None);
            }
        }
        ChallengeBody::Email(_) => {
            // The link in the mail continues the flow (in a browser); Enter sends it again.
            console.status("a link was sent to your email address")?;
            if console.ask("Press Enter to send it again")?.is_none() {
                return Ok(None);
            }
        }
        ChallengeBody::Consent(cn) => match console.confirm("Give consent?")? {
            None => return Ok(None),
            Some(false) => {
                console.status("consent declined")?;
                return Ok(Some(Next::Stop(ExitCode::from(EXIT_DENIED))));
            }
            Some(true) => {
                response.insert("token".into(), cn.token.clone().into());
            }
        },
        ChallengeBody::UserLogin(_) => {
            let Some(remember) = console.confirm("Stay signed in?")? else {
                return Ok(None);
            };
            response.insert("remember_me".into(), remember.into());
        }
        ChallengeBody::Captcha(cc) => {
            // A captcha needs the provider's widget (a browser); a terminal can only
            // paste a token (e.g. from a provider's test keys).
            console.status(&format!(
                "captcha: solve it with site key {} ({}), then paste the token",
                cc.site_key, cc.js_url
            ))?;
            let Some(token) = console.ask("Captcha token")? else {
                return Ok(None);
            };
            response.insert("token".into(), token.into());
        }
        ChallengeBody::Custom(_) => loop {
            // Host-defined stage: the fields are up to the host; take raw JSON.
            let Some(line) = console.ask("Response as a JSON object (empty: {})")? else {
                return Ok(None);
            };
            if line.trim().is_empty() {
                break;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(Value::Object(map)) => {
                    response.extend(map);
                    response
                        .entry("component")
                        .or_insert_with(|| json!(component));
                    break;
                }
                Ok(_) => console.status("not a JSON object; try again")?,
                Err(e) => console.status(&format!("invalid JSON ({e}); try again"))?,
            }
        },
    }
    Ok(Some(Next::Send(Value::Object(response))))
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
