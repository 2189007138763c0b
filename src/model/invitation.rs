//! Settings of the invitation stage (authentik's `InvitationStage`).

use serde::{Deserialize, Serialize};

/// Settings of the invitation stage: it finds the invitation named by the request's
/// `itoken` (or `token`) query parameter or by `prompt_data.token`, and merges the
/// invitation's `fixed_data` into the prompt data. See
/// [`Invitation`](crate::store::Invitation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationStage {
    /// Without a (valid) invitation, go on to the next stage instead of denying
    /// (default false: the flow is refused).
    #[serde(default)]
    pub continue_flow_without_invitation: bool,
}
