//! `ak-stage-captcha` (authentik's `CaptchaChallenge`).

use serde::{Deserialize, Serialize};

use super::UserInfo;

/// `ak-stage-captcha`: the page loads `js_url`, renders the provider's widget with
/// `site_key` (visibly when `interactive`) and posts the widget's `token`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptchaChallenge {
    /// User info.
    #[serde(flatten)]
    pub user: UserInfo,
    /// The provider's site (public) key.
    pub site_key: String,
    /// The provider's script.
    pub js_url: String,
    /// Whether the widget needs the user's interaction.
    pub interactive: bool,
}
