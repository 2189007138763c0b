//! What the executor adds to every challenge: `flow_info` (title, background, cancel
//! link, layout) and the displayed user with an initials avatar.

use serde_json::Value;

use super::Exec;
use crate::challenge::{Challenge, FlowInfo};
use crate::plan::{FlowState, keys};
use crate::request::query_param;

/// The avatar shown when no user is displayed (authentik's default image).
pub const DEFAULT_AVATAR: &str = "/static/dist/assets/images/user_default.png";

impl Exec<'_> {
    pub(super) fn display_user(&self, fs: &FlowState) -> Option<String> {
        let context = fs.plan.as_ref().map(|p| &p.context);
        context
            .and_then(|c| c.get_str(keys::PENDING_USER_IDENTIFIER).map(str::to_owned))
            .or_else(|| context.and_then(|c| c.pending_user()).map(|p| p.username))
            .or_else(|| self.request_user.map(|u| u.username.clone()))
    }

    /// Adds `flow_info` and user info.
    pub(super) fn decorate(&self, mut c: Challenge, fs: &FlowState) -> Challenge {
        if !c.body.has_flow_info() {
            return c;
        }
        let display = self.display_user(fs);
        if c.flow_info.is_none() {
            let flow = &self.def.flow;
            let app = fs
                .plan
                .as_ref()
                .and_then(|p| p.context.get(keys::APPLICATION))
                .and_then(|a| a.get("name").and_then(Value::as_str).or(a.as_str()))
                .unwrap_or("")
                .to_owned();
            let title = if flow.title.contains("%(") {
                flow.title
                    .replace("%(app)s", &app)
                    .replace("%(user)s", display.as_deref().unwrap_or(""))
            } else {
                flow.title.clone()
            };
            let next = query_param(&fs.query, "next");
            let cancel_url = self.req.paths().cancel(next.as_deref());
            c.flow_info = Some(FlowInfo {
                title,
                background: flow.background_url().to_owned(),
                cancel_url,
                layout: flow.layout,
            });
        }
        match display.filter(|d| !d.is_empty()) {
            Some(name) => {
                let avatar = avatar(&name);
                c.body.set_user_info(&name, &avatar);
            }
            None => c.body.set_user_info("", DEFAULT_AVATAR),
        }
        c
    }
}

/// An initials avatar as an SVG data URI. It depends only on the displayed name, so
/// it reveals nothing about whether the account exists, and it loads nothing from
/// third parties (authentik's default uses Gravatar).
pub fn avatar(name: &str) -> String {
    use base64::Engine as _;
    let initials: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    let hash = name
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    let colors = [
        "#377b37", "#c0c852", "#2b6cb0", "#9b2c2c", "#6b46c1", "#b7791f", "#2c7a7b", "#97266d",
    ];
    let color = colors
        .get((hash as usize) % colors.len())
        .copied()
        .unwrap_or("#377b37");
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64px\" height=\"64px\" viewBox=\"0 0 64 64\" version=\"1.1\"><rect fill=\"{color}\" cx=\"32\" cy=\"32\" width=\"64\" height=\"64\" r=\"32\"/><text x=\"50%\" y=\"50%\" fill=\"#fff\" alignment-baseline=\"middle\" dominant-baseline=\"middle\" text-anchor=\"middle\" font-size=\"28\" font-weight=\"400\" dy=\".1em\">{initials}</text></svg>"
    );
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}
