//! The builder's settings for the stores and hooks of the MFA, captcha and invitation
//! stages.

use std::sync::Arc;

use super::EngineBuilder;

impl EngineBuilder {
    /// Sets the MFA device store the authenticator stages use (default: an empty
    /// [`MemoryDevices`](crate::memory::MemoryDevices)).
    pub fn devices(mut self, store: Arc<dyn crate::store::DeviceStore>) -> Self {
        self.env.devices = store;
        self
    }

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
