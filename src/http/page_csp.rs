//! The flow page's Content-Security-Policy, and the one exception it makes: the
//! origin of a captcha provider's script, only while the session's current stage is
//! that captcha stage.
//!
//! The page's script fetches challenges after the page loaded, so the policy cannot
//! follow them; instead, when the page receives an `ak-stage-captcha` challenge whose
//! `js_url` its policy does not admit, it loads itself again once, and this module
//! builds the policy for the stage the session is at. Nothing is planned or stored for
//! that: the session and the flow definition are only read.

use axum::http::HeaderMap;

use super::{AppState, session};
use crate::model::StageConfig;

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
/// stage's `js_url`), or none: without a session, a plan for this flow, or on any
/// store error (the page then shows that the captcha cannot load).
pub(crate) async fn script_origins(app: &AppState, headers: &HeaderMap, slug: &str) -> Vec<String> {
    let Some(id) = session::session_id(headers) else {
        return Vec::new();
    };
    let Ok(Some(loaded)) = app.engine.env().sessions.load(&id).await else {
        return Vec::new();
    };
    let Some(current) = loaded
        .value
        .flows
        .get(slug)
        .and_then(|f| f.plan.as_ref())
        .and_then(|p| p.bindings.first())
    else {
        return Vec::new();
    };
    let Ok(def) = app.engine.definition(slug).await else {
        return Vec::new();
    };
    def.binding(current.binding)
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
