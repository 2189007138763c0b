//! `ak-stage-consent`: asks the user to consent to an application and remembers it
//! (always / permanent / expiring). The challenge's token is kept server-side in the
//! plan and compared in constant time.
//!
//! Granted consents are stored in the user's attributes under
//! [`CONSENT_ATTRIBUTE`]: `{app_slug: {"expires": unix_seconds|null, "permissions": [ids]}}`.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    Effect, Fields, Response, StageContext, StageError, StageKind, StageMeta, StageOutcome,
};
use crate::challenge::{
    Challenge, ChallengeBody, ConsentChallenge, ConsentPermission, ErrorDetail,
};
use crate::model::{ConsentMode, ConsentStage, NON_FIELD_ERRORS, parse_timedelta};
use crate::plan::keys;
use crate::secret::constant_time_eq;
use crate::store::{User, operation};

/// User attribute holding granted consents.
pub const CONSENT_ATTRIBUTE: &str = "goauthentik.io/consent";
const TOKEN_KEY: &str = "goauthentik.io/stages/consent/token";

fn requested(ctx: &StageContext<'_>) -> Vec<ConsentPermission> {
    ctx.context
        .get(keys::CONSENT_PERMISSIONS)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn application(ctx: &StageContext<'_>) -> Option<String> {
    ctx.context
        .get(keys::APPLICATION)
        .and_then(|a| a.get("slug").and_then(Value::as_str).or(a.as_str()))
        .map(str::to_owned)
}

async fn subject(ctx: &StageContext<'_>) -> Result<Option<User>, StageError> {
    Ok(match ctx.pending_user_record().await? {
        Some(u) => Some(u),
        None => ctx.request_user.cloned(),
    })
}

/// The permission ids the user already granted for `app`, if the grant is current.
fn granted(user: &User, app: &str, now: u64) -> Option<Vec<String>> {
    let entry = user.attributes.get(CONSENT_ATTRIBUTE)?.get(app)?;
    if let Some(expires) = entry.get("expires").and_then(Value::as_u64) {
        if expires <= now {
            return None;
        }
    }
    Some(
        entry
            .get("permissions")?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
    )
}

#[async_trait]
impl StageKind for ConsentStage {
    fn component(&self) -> Option<&str> {
        Some("ak-stage-consent")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_consent.consentstage",
            verbose_name: "Consent Stage",
            form_component: "ak-stage-consent-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let perms = requested(ctx);
        let mut already = Vec::new();
        if let (Some(app), Some(user), false) = (
            application(ctx),
            subject(ctx).await?,
            self.mode == ConsentMode::AlwaysRequire,
        ) {
            if let Some(ids) = granted(&user, &app, ctx.env.clock.now()) {
                let mut want: Vec<&str> = perms.iter().map(|p| p.id.as_str()).collect();
                want.sort_unstable();
                let mut have: Vec<&str> = ids.iter().map(String::as_str).collect();
                have.sort_unstable();
                if want == have {
                    return Ok(StageOutcome::Done);
                }
                already = ids;
            }
        }
        let (permissions, additional): (Vec<_>, Vec<_>) =
            perms.into_iter().partition(|p| already.contains(&p.id));
        let token = ctx.env.random.token();
        ctx.context.insert(TOKEN_KEY, token.clone().into());
        Ok(StageOutcome::Challenge(Challenge::new(
            ChallengeBody::Consent(ConsentChallenge {
                header_text: ctx.context.get_str(keys::CONSENT_HEADER).map(str::to_owned),
                permissions: if already.is_empty() {
                    additional.clone()
                } else {
                    permissions
                },
                additional_permissions: if already.is_empty() {
                    Vec::new()
                } else {
                    additional
                },
                token,
                ..Default::default()
            }),
        )))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        let mut fields = Fields::new(response);
        let token = fields.string("token", true, true, 128);
        let expected = ctx.context.get_str(TOKEN_KEY).unwrap_or("").to_owned();
        let valid =
            matches!(&token, Some(t) if !expected.is_empty() && constant_time_eq(t, &expected));
        if !valid {
            let errors = fields.into_errors();
            return match self.challenge(ctx).await? {
                StageOutcome::Challenge(mut c) => {
                    c.response_errors = errors;
                    if c.response_errors.is_empty() {
                        c = c.with_error(
                            NON_FIELD_ERRORS,
                            ErrorDetail::invalid("Invalid consent token, re-showing prompt"),
                        );
                    }
                    Ok(StageOutcome::Invalid(c))
                }
                other => Ok(other),
            };
        }
        ctx.context.remove(TOKEN_KEY);
        if self.mode != ConsentMode::AlwaysRequire {
            if let (Some(app), Some(mut user)) = (application(ctx), subject(ctx).await?) {
                let expires = match self.mode {
                    ConsentMode::Expiring => {
                        let secs = parse_timedelta(&self.consent_expire_in)
                            .map_err(StageError::Internal)?;
                        Some(ctx.env.clock.now().saturating_add(secs))
                    }
                    _ => None,
                };
                let ids: Vec<String> = requested(ctx).into_iter().map(|p| p.id).collect();
                let entry = user
                    .attributes
                    .entry(CONSENT_ATTRIBUTE.to_owned())
                    .or_insert_with(|| json!({}));
                if !entry.is_object() {
                    *entry = json!({});
                }
                if let Value::Object(m) = entry {
                    m.insert(app, json!({"expires": expires, "permissions": ids}));
                }
                // Fails (denies clearly) on a directory without management.
                ctx.env.users.require_admin(operation::UPDATE_USER)?;
                ctx.effects.push(Effect::UpdateUser(user));
            }
        }
        Ok(StageOutcome::Done)
    }
}
