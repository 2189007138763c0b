//! The builder's settings for the captcha and invitation stages.

use std::sync::Arc;

use super::EngineBuilder;

impl EngineBuilder {
    /// Sets the verifier of the captcha stage's tokens (default: none, and the captcha
    /// stage denies). With the `captcha` feature,
    /// [`HttpCaptchaVerifier`](crate::captcha::HttpCaptchaVerifier) calls the
    /// provider's siteverify endpoint.
    pub fn captcha_verifier(mut self, verifier: Arc<dyn crate::captcha::CaptchaVerifier>) -> Self {
        self.env.captcha = Some(verifier);
        self
    }

    /// Sets the invitation store (default: in memory; `SqlStore` with the `sqlite` or
    /// `postgres` feature).
    pub fn invitations(mut self, store: Arc<dyn crate::store::InvitationStore>) -> Self {
        self.env.invitations = store;
        self
    }
}
