//! Authenticator validation (silent while authflow has no MFA devices): applies
//! authentik's `not_configured_action` and fails closed for everything it cannot check.
//!
//! A user's devices are the list under the user attribute [`MFA_DEVICES_ATTRIBUTE`]
//! (`[{"device_class": "totp", …}, …]`), so hosts can say who has MFA without a
//! device store. authflow cannot validate any class yet:
//! - no device of an allowed class → `skip` (stage done), `deny` ("No (allowed) MFA
//!   authenticator configured."), or `configure` (denied: setup stages are not
//!   supported yet);
//! - a device of an allowed class → denied, naming the class (never let through);
//! - a malformed attribute → denied;
//! - no pending user: outside authentication flows the stage is done (as in
//!   authentik); in an authentication flow that allows WebAuthn, authentik would ask
//!   for a passkey, which authflow cannot check → denied.

use async_trait::async_trait;
use serde_json::Value;

use super::{StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::model::{AuthenticatorValidateStage, DeviceClass, FlowDesignation, NotConfiguredAction};

/// The user attribute listing a user's MFA devices: a list of objects with at least a
/// `device_class` (`static`, `totp`, `webauthn`, `duo`, `sms`, `email`).
pub const MFA_DEVICES_ATTRIBUTE: &str = "goauthentik.io/mfa-devices";

/// authentik's message for a user without an allowed device.
const NOT_CONFIGURED: &str = "No (allowed) MFA authenticator configured.";

/// The classes of a user's devices, or `Err` when the attribute is malformed.
fn device_classes(attributes: &serde_json::Map<String, Value>) -> Result<Vec<String>, ()> {
    let Some(value) = attributes.get(MFA_DEVICES_ATTRIBUTE) else {
        return Ok(Vec::new());
    };
    let list = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(list) => list,
        _ => return Err(()),
    };
    list.iter()
        .map(|d| {
            d.get("device_class")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(())
        })
        .collect()
}

impl AuthenticatorValidateStage {
    fn allows(&self, class: &str) -> bool {
        self.device_classes.iter().any(|c| c.as_str() == class)
    }

    fn not_configured(&self) -> StageOutcome {
        match self.not_configured_action {
            NotConfiguredAction::Skip => StageOutcome::Done,
            NotConfiguredAction::Deny => StageOutcome::Deny(NOT_CONFIGURED.into()),
            NotConfiguredAction::Configure => StageOutcome::Deny(format!(
                "{NOT_CONFIGURED} Setting up an authenticator here needs configuration stages, \
                 which authflow does not support yet; access is denied."
            )),
        }
    }
}

#[async_trait]
impl StageKind for AuthenticatorValidateStage {
    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_authenticator_validate.authenticatorvalidatestage",
            verbose_name: "Authenticator Validation Stage",
            form_component: "ak-stage-authenticator-validate-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let Some(pending) = ctx.pending_user() else {
            if ctx.flow.designation != FlowDesignation::Authentication {
                return Ok(StageOutcome::Done);
            }
            if self.device_classes.contains(&DeviceClass::Webauthn) {
                return Ok(StageOutcome::Deny(
                    "This flow asks for a passkey (passwordless WebAuthn), which authflow \
                     cannot validate yet; access is denied."
                        .into(),
                ));
            }
            return Ok(StageOutcome::Done);
        };
        // A pretended (unknown) or vanished user has no devices, as in authentik.
        let user = match pending.pk {
            Some(_) => ctx.pending_user_record().await?,
            None => None,
        };
        let Some(user) = user else {
            return Ok(self.not_configured());
        };
        let Ok(classes) = device_classes(&user.attributes) else {
            return Ok(StageOutcome::Deny(format!(
                "The user attribute `{MFA_DEVICES_ATTRIBUTE}` is malformed; access is denied."
            )));
        };
        match classes.iter().find(|c| self.allows(c)) {
            None => Ok(self.not_configured()),
            Some(class) => Ok(StageOutcome::Deny(format!(
                "This flow needs MFA validation of a `{class}` device, which authflow cannot \
                 do yet; access is denied."
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert(MFA_DEVICES_ATTRIBUTE.into(), v);
        m
    }

    #[test]
    fn reads_device_classes() {
        assert_eq!(device_classes(&serde_json::Map::new()), Ok(vec![]));
        assert_eq!(device_classes(&attrs(Value::Null)), Ok(vec![]));
        assert_eq!(
            device_classes(&attrs(json!([{"device_class": "totp", "name": "phone"}]))),
            Ok(vec!["totp".to_owned()])
        );
        assert_eq!(device_classes(&attrs(json!("totp"))), Err(()));
        assert_eq!(device_classes(&attrs(json!([{"name": "x"}]))), Err(()));
    }

    #[test]
    fn not_configured_actions() {
        let mut s = AuthenticatorValidateStage::default();
        assert!(matches!(s.not_configured(), StageOutcome::Done));
        s.not_configured_action = NotConfiguredAction::Deny;
        assert!(matches!(s.not_configured(), StageOutcome::Deny(m) if m == NOT_CONFIGURED));
        s.not_configured_action = NotConfiguredAction::Configure;
        assert!(
            matches!(s.not_configured(), StageOutcome::Deny(m) if m.contains("configuration stages"))
        );
    }
}
