//! The email stage's message bodies: the built-in templates and inline ones, with
//! the variables `url`, `user`, `expires` and `token` (HTML-escaped in the HTML body).

use crate::model::{ACCOUNT_CONFIRMATION_TEMPLATE, PASSWORD_RESET_TEMPLATE};

/// What a template can show.
pub(super) struct Vars<'a> {
    pub(super) url: &'a str,
    pub(super) username: &'a str,
    pub(super) name: &'a str,
    pub(super) email: &'a str,
    pub(super) expires: &'a str,
    pub(super) token: &'a str,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// Replaces `{{ var }}` (spaces optional) with `value(var)`.
fn substitute(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match value(name) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text and HTML bodies of `template` (a built-in name or an inline template).
pub(super) fn render(template: &str, vars: &Vars<'_>) -> (String, String) {
    let (text, html) = match template {
        ACCOUNT_CONFIRMATION_TEMPLATE => (
            "Welcome, {{ user.name }}!\n\nConfirm your account by opening this link:\n\n{{ url }}\n\n\
             The link is valid until {{ expires }}. If you did not sign up, ignore this email.\n"
                .to_owned(),
            "<p>Welcome, {{ user.name }}!</p><p>Confirm your account:</p>\
             <p><a href=\"{{ url }}\">Confirm account</a></p>\
             <p>The link is valid until {{ expires }}. If you did not sign up, ignore this email.</p>"
                .to_owned(),
        ),
        PASSWORD_RESET_TEMPLATE => (
            "Hi {{ user.name }},\n\nYou requested a link to set a new password (or to log in). Open it:\n\n\
             {{ url }}\n\nThe link is valid until {{ expires }} and works once. If you did not ask \
             for it, ignore this email.\n"
                .to_owned(),
            "<p>Hi {{ user.name }},</p><p>You requested a link to set a new password (or to log in).</p>\
             <p><a href=\"{{ url }}\">Continue</a></p><p>The link is valid until {{ expires }} and \
             works once. If you did not ask for it, ignore this email.</p>"
                .to_owned(),
        ),
        inline => (strip_tags(inline), inline.to_owned()),
    };
    let value = |name: &str, esc: bool| {
        let v = match name {
            "url" => vars.url,
            "user.username" | "user" => vars.username,
            "user.name" => {
                if vars.name.is_empty() {
                    vars.username
                } else {
                    vars.name
                }
            }
            "user.email" => vars.email,
            "expires" => vars.expires,
            "token" => vars.token,
            _ => return None,
        };
        Some(if esc { escape(v) } else { v.to_owned() })
    };
    (
        substitute(&text, |n| value(n, false)),
        substitute(&html, |n| value(n, true)),
    )
}

/// A plain-text version of an inline HTML template (tags dropped).
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        if !in_tag && rest.starts_with("{{") {
            out.push_str("{{");
            rest = &rest[2..];
            continue;
        }
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
pub(super) fn format_time(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_escaped_in_html_only() {
        let vars = Vars {
            url: "https://x/?a=1&b=2",
            username: "<bob>",
            name: "",
            email: "b@x",
            expires: "2026-01-01 00:00 UTC",
            token: "k",
        };
        let (text, html) = render("<p>{{ url }} {{user}} {{ nope }}</p>", &vars);
        assert_eq!(text, "https://x/?a=1&b=2 <bob> {{ nope }}");
        assert_eq!(html, "<p>https://x/?a=1&amp;b=2 &lt;bob&gt; {{ nope }}</p>");
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}
