//! Opening a mailed link: a flow request whose query holds `flow_token=<key>`
//! resumes the plan stored with that [flow token](crate::store::FlowTokens), in
//! whichever browser opens it (authentik's `FlowExecutorView._check_flow_token`; the
//! restored plan's context gets `is_restored`).
//!
//! Improvements over authentik:
//! - **A GET never uses the token** (mail scanners open links; authentik #8953). It
//!   answers an `ak-stage-consent` confirmation ("Continue …?") whose token is derived
//!   from the key; only a POST echoing it uses the token — atomically, once — and
//!   resumes the plan. Nothing is stored for the GET.
//! - **Distinct messages** for a link that is unknown, already used, expired or for
//!   another flow (authentik #9671, #21395).
//! - A session that was itself resumed by this token carries on (the page keeps the
//!   token in its URL for every later request of the flow).

use serde_json::{Value, json};

use super::{Exec, Input};
use crate::Error;
use crate::challenge::{Challenge, ChallengeBody, ConsentChallenge, ErrorDetail};
use crate::model::NON_FIELD_ERRORS;
use crate::plan::{FlowState, keys};
use crate::request::query_param;
use crate::secret::constant_time_eq;
use crate::stages::{LINK_EXPIRED, LINK_OTHER_FLOW, LINK_UNKNOWN, LINK_USED};
use crate::store::{TokenState, flow_token_digest};

/// The confirmation token for a key: derived, so the GET stores nothing.
fn confirmation_token(key: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("authflow flow-token confirmation\0{key}").as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

impl Exec<'_> {
    /// Handles `flow_token` in the query: `Ok(input)` to go on with the session's
    /// (possibly just restored) plan, `Err(challenge)` to answer now.
    pub(super) async fn flow_token<'i>(
        &mut self,
        fs: &mut FlowState,
        input: Input<'i>,
    ) -> Result<Result<Input<'i>, Challenge>, Error> {
        let Some(key) = query_param(&self.req.query, "flow_token") else {
            return Ok(Ok(input));
        };
        let digest = flow_token_digest(&key);
        let restored_from = fs
            .plan
            .as_ref()
            .and_then(|p| p.context.get(keys::IS_RESTORED))
            .and_then(|r| r.get("digest"))
            .and_then(Value::as_str);
        if let (Some(d), Some(r)) = (&digest, restored_from) {
            if constant_time_eq(d, r) {
                return Ok(Ok(input));
            }
        }
        let env = self.engine.env;
        let now = env.clock.now();
        let state = match &digest {
            Some(d) => TokenState::of(env.flow_tokens.find(d).await?, now),
            None => TokenState::Unknown,
        };
        let token = match state {
            TokenState::Unknown => return Ok(Err(self.denied(fs, LINK_UNKNOWN.into()))),
            TokenState::Used(_) => return Ok(Err(self.denied(fs, LINK_USED.into()))),
            TokenState::Expired(_) => return Ok(Err(self.denied(fs, LINK_EXPIRED.into()))),
            TokenState::Valid(t) => t,
        };
        if token.flow != self.def.flow.slug || token.plan.flow_pk != self.def.flow.pk {
            return Ok(Err(self.denied(fs, LINK_OTHER_FLOW.into())));
        }
        let expected = confirmation_token(&key);
        let error = match input {
            Input::Post(r) => match (r.get("component"), r.get("token")) {
                (Some(Value::String(c)), Some(Value::String(t)))
                    if c == crate::confirmation::COMPONENT && constant_time_eq(t, &expected) =>
                {
                    None
                }
                _ => Some("Confirm to continue."),
            },
            Input::NotAnObject(m) => Some(m),
            Input::Get => {
                return Ok(Err(self.confirm_link(fs, expected, None)));
            }
        };
        if let Some(message) = error {
            return Ok(Err(self.confirm_link(fs, expected, Some(message))));
        }
        let Some(digest) = digest else {
            return Ok(Err(self.denied(fs, LINK_UNKNOWN.into())));
        };
        let Some(token) = env.flow_tokens.consume(&digest, now).await? else {
            // Used or expired since the lookup (a concurrent click).
            let message = match TokenState::of(env.flow_tokens.find(&digest).await?, now) {
                TokenState::Expired(_) => LINK_EXPIRED,
                TokenState::Unknown => LINK_UNKNOWN,
                _ => LINK_USED,
            };
            return Ok(Err(self.denied(fs, message.into())));
        };
        let mut plan = token.plan;
        plan.context.insert(
            keys::IS_RESTORED,
            json!({"digest": digest, "user": token.user.map(|u| u.to_string())}),
        );
        fs.plan = Some(plan);
        fs.history.clear();
        fs.decisions.clear();
        // The user's own POST: side-effect stages after the restored one may run.
        self.accepted = true;
        Ok(Ok(Input::Get))
    }

    fn confirm_link(&self, fs: &FlowState, token: String, error: Option<&str>) -> Challenge {
        let header = if self.def.flow.title.is_empty() {
            "Continue with the link from your email?".to_owned()
        } else {
            format!(
                "{}: continue with the link from your email?",
                self.def.flow.title
            )
        };
        let mut c = Challenge::new(ChallengeBody::Consent(ConsentChallenge {
            header_text: Some(header),
            permissions: Vec::new(),
            additional_permissions: Vec::new(),
            token,
            ..Default::default()
        }));
        if let Some(message) = error {
            c = c.with_error(NON_FIELD_ERRORS, ErrorDetail::invalid(message));
        }
        self.decorate(c, fs)
    }
}
