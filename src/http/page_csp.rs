//! The flow page's Content-Security-Policy, and the one exception it makes: the
//! origin of a captcha provider's script, only while the session's current stage is
//! that captcha stage.
//!
//! The page's script fetches challenges after the page loaded, so the policy cannot
//! follow them; instead, when the page receives an `ak-stage-captcha` challenge whose
//! `js_url` its policy does not admit, it loads itself again once, and this module
//! builds the policy for the stage the session is at. Nothing is stored for that: the
//! session and the flow definition are only read (and, for a session whose plan is not
//! stored yet, the flow planned without storing), and only for flows with such a stage.

use axum::http::request::Parts;

use super::{AppState, session};
use crate::model::StageConfig;
use crate::plan::PlanContext;

/// The page's policy with the nonce of its inline script and style; `script_origins`
/// (already validated by [`origin_of`]) may also load scripts and frames.
pub(crate) fn policy(nonce: &str, script_origins: &[String]) -> String {
    let extra: String = script_origins.iter().map(|o| format!(" {o}")).collect();
    let frames = if extra.is_empty() {
        String::new()
    } else {
        format!(" frame-src 'self'{extra};")
    };
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}'{extra}; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:;{frames} base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// The script origins the session's current stage of flow `slug` needs (a captcha
/// stage's `js_url`), or none: for flows without such a stage (nothing is read then),
/// and on any store or planning error (the page then shows that the captcha cannot
/// load). The current stage is the stored plan's; a session without a stored plan for
/// this flow (a first visit's plan is not stored: any instance makes it again from the
/// request) gets the stage the planner would start at, planned without storing.
pub(crate) async fn script_origins(app: &AppState, req: &Parts, slug: &str) -> Vec<String> {
    let Ok(def) = app.engine.definition(slug).await else {
        return Vec::new();
    };
    if !def
        .stages
        .iter()
        .any(|b| script_url(&b.stage.config).is_some())
    {
        return Vec::new();
    }
    let stored = match session::session_id(&req.headers) {
        Some(id) => match app.engine.env().sessions.load(&id).await {
            Ok(loaded) => loaded.and_then(|l| {
                let plan = l.value.flows.get(slug)?.plan.as_ref()?;
                plan.bindings.first().map(|b| Some(b.binding))
            }),
            Err(_) => return Vec::new(),
        },
        None => None,
    };
    let current = match stored {
        Some(current) => current,
        None => {
            let mut freq = super::executor::flow_request(&app.config, req);
            // The page hands its own query string to the executor as `query`.
            freq.query = req.uri.query().unwrap_or("").to_owned();
            if freq.query.len() > app.config.query_limit {
                return Vec::new();
            }
            match app.engine.plan_only(&freq, slug, PlanContext::new()).await {
                Ok(plan) => plan.bindings.first().map(|b| b.binding),
                Err(_) => return Vec::new(),
            }
        }
    };
    current
        .and_then(|binding| def.binding(binding))
        .and_then(|b| script_url(&b.stage.config))
        .and_then(origin_of)
        .into_iter()
        .collect()
}

/// The script a stage's challenge makes the page load (a captcha provider's).
fn script_url(config: &StageConfig) -> Option<&str> {
    match config {
        StageConfig::Captcha(c) => Some(&c.js_url),
        _ => None,
    }
}

/// `scheme://host[:port]` of an `http`/`https` URL, lower-cased, for a CSP source
/// list; `None` for anything else (other schemes, user info, characters a policy or an
/// HTML attribute could misread).
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        match &authority[end..] {
            "" => (&authority[..end], None),
            rest => (&authority[..end], Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    } else {
        !host.is_empty()
            && !host.starts_with('.')
            && !host.starts_with('-')
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    if !host_ok {
        return None;
    }
    let port = match port {
        Some(p) if p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok() => {
            format!(":{p}")
        }
        Some(_) => return None,
        None => String::new(),
    };
    Some(format!("{scheme}://{}{port}", host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_of_provider_urls() {
        assert_eq!(
            origin_of("https://challenges.cloudflare.com/turnstile/v0/api.js").as_deref(),
            Some("https://challenges.cloudflare.com")
        );
        assert_eq!(
            origin_of("HTTPS://WWW.Recaptcha.net/recaptcha/api.js?render=x").as_deref(),
            Some("https://www.recaptcha.net")
        );
        assert_eq!(
            origin_of("http://127.0.0.2:4567/widget.js").as_deref(),
            Some("http://127.0.0.2:4567")
        );
        assert_eq!(
            origin_of("https://[::1]:8443/a.js").as_deref(),
            Some("https://[::1]:8443")
        );
        assert_eq!(
            origin_of("https://js.hcaptcha.com").as_deref(),
            Some("https://js.hcaptcha.com")
        );
    }

    #[test]
    fn anything_a_policy_could_misread_is_refused() {
        for bad in [
            "javascript:alert(1)",
            "data:text/javascript,alert(1)",
            "//cdn.example.com/a.js",
            "/static/a.js",
            "https://user:pw@cdn.example.com/a.js",
            "https://cdn.example.com;script-src */a.js",
            "https://cdn.example.com 'unsafe-inline'/a.js",
            "https://*.example.com/a.js",
            "https://cdn.example.com:99999/a.js",
            "https://cdn.example.com:/a.js",
            "https://cdn\"example.com/a.js",
            "https:///a.js",
            "ftp://cdn.example.com/a.js",
            "https://::1/a.js",
        ] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_policy_admits_extra_origins_only_when_given() {
        let plain = policy("n0nce", &[]);
        assert_eq!(
            plain,
            "default-src 'self'; script-src 'self' 'nonce-n0nce'; style-src 'self' 'nonce-n0nce'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
        let with = policy("n0nce", &["https://challenges.cloudflare.com".into()]);
        assert!(
            with.contains("script-src 'self' 'nonce-n0nce' https://challenges.cloudflare.com;")
        );
        assert!(with.contains("frame-src 'self' https://challenges.cloudflare.com;"));
        assert!(!with.contains("unsafe"));
    }
}
