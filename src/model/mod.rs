//! The flow model: flows, stages, bindings and policies, field for field with
//! authentik's schema, plus typed ids and validation.

mod captcha;
mod enums;
mod flow;
mod ids;
mod invitation;
mod policy;
mod prompt;
mod stage;
mod stage_authenticator;
mod stage_authenticator_webauthn;
mod stage_email;
mod validation;

pub use captcha::*;
pub use enums::*;
pub use flow::*;
pub use ids::*;
pub use invitation::*;
pub use policy::*;
pub use prompt::*;
pub use stage::*;
pub use stage_authenticator::*;
pub use stage_authenticator_webauthn::*;
pub use stage_email::{
    ACCOUNT_CONFIRMATION_TEMPLATE, EMAIL_TEMPLATES, EmailStage, PASSWORD_RESET_TEMPLATE,
};
pub use validation::*;
