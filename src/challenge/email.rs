//! `ak-stage-email` (authentik's `EmailChallenge`): "check your inbox". The response
//! (`EmailChallengeResponse`, no fields) asks for the mail again.

use serde::{Deserialize, Serialize};

/// `ak-stage-email`: the link was sent; a POST sends it again. No fields beyond
/// `flow_info` and `response_errors` (authentik's schema).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailChallenge {}
