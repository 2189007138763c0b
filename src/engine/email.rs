//! The builder's mail hooks: the mailer, the flow-token store and the mail settings.

use std::sync::Arc;

use super::EngineBuilder;

impl EngineBuilder {
    /// Sets the mailer email stages send through (default: none, and an email stage
    /// then denies with "This server cannot send email.": fail closed).
    pub fn mailer(mut self, mailer: Arc<dyn crate::mail::Mailer>) -> Self {
        self.env.mailer = Some(mailer);
        self
    }

    /// Sets the store of flow tokens, the plans mailed links resume (default: in
    /// memory; `authflow::sql::SqlStore` implements it too). Every instance serving
    /// the same users must share it.
    pub fn flow_tokens(mut self, store: Arc<dyn crate::store::FlowTokens>) -> Self {
        self.env.flow_tokens = store;
        self
    }

    /// Sets the sender and the link base of mail (see [`MailSettings`](crate::mail::MailSettings)).
    pub fn mail_settings(mut self, settings: crate::mail::MailSettings) -> Self {
        self.env.mail_settings = settings;
        self
    }
}
