//! `ak-stage-identification`: finds the user by username, email or UPN.
//!
//! No user enumeration: with `pretend_user_exists` an unknown identifier is accepted
//! like a known one (the password stage then fails as for a wrong password), and the
//! work done does not depend on whether the user exists (both or neither verify a
//! password hash).

use async_trait::async_trait;
use serde_json::Value;

use super::{
    Effect, Fields, Response, StageContext, StageError, StageKind, StageMeta, StageOutcome,
};
use crate::challenge::{Challenge, ChallengeBody, IdentificationChallenge};
use crate::events::{Event, EventAction};
use crate::model::{FlowDesignation, IdentificationStage, StageConfig};
use crate::plan::{PendingUser, keys};
use crate::secret::Password;
use crate::throttle;

const FAILED: &str = "Failed to authenticate.";

impl IdentificationStage {
    fn build(&self, ctx: &StageContext<'_>) -> Challenge {
        // authentik's `reverse_with_qs`: the query is appended only when there is one.
        let link = |slug: &Option<String>| {
            slug.as_ref()
                .map(|s| ctx.request.paths().flow_page(s, &ctx.request.query))
        };
        let allow_show_password = self
            .password_stage
            .and_then(|id| ctx.definition.referenced_stages.get(&id))
            .is_some_and(|stage| match &stage.config {
                StageConfig::Password(p) => p.allow_show_password,
                _ => false,
            });
        let application_pre = ctx
            .context
            .get(keys::APPLICATION)
            .and_then(|a| a.get("name").and_then(Value::as_str).or(a.as_str()))
            .map(str::to_owned);
        Challenge::new(ChallengeBody::Identification(IdentificationChallenge {
            user_fields: self
                .user_fields
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
            password_fields: self.password_stage.is_some(),
            allow_show_password,
            flow_designation: ctx.flow.designation,
            captcha_stage: None,
            primary_action: if ctx.flow.designation == FlowDesignation::Authentication {
                "Log in"
            } else {
                "Continue"
            }
            .to_owned(),
            sources: Vec::new(),
            show_source_labels: self.show_source_labels,
            enable_remember_me: self.enable_remember_me,
            pending_user_identifier: None,
            enroll_url: link(&self.enrollment_flow),
            recovery_url: link(&self.recovery_flow),
            passwordless_url: link(&self.passwordless_flow),
            application_pre,
        }))
    }
}

#[async_trait]
impl StageKind for IdentificationStage {
    fn component(&self) -> Option<&str> {
        Some("ak-stage-identification")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_identification.identificationstage",
            verbose_name: "Identification Stage",
            form_component: "ak-stage-identification-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        Ok(StageOutcome::Challenge(self.build(ctx)))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        let mut fields = Fields::new(response);
        let uid = fields.string("uid_field", true, true, 254);
        let password = if self.password_stage.is_some() {
            fields.string("password", false, false, 1024)
        } else {
            None
        };
        let Some(uid) = uid.filter(|_| !fields.has_errors()) else {
            let mut challenge = self.build(ctx);
            challenge.response_errors = fields.into_errors();
            return Ok(StageOutcome::Invalid(challenge));
        };

        // Every configured field is looked up (same work whatever matches). An
        // identifier that names two different accounts (say one's email and another's
        // username) matches no one: it is treated as unknown rather than picking one by
        // field order, so no account can take over another's identifier.
        let mut found: Option<crate::store::User> = None;
        let mut ambiguous = false;
        for field in &self.user_fields {
            if let Some(user) = ctx
                .env
                .users
                .find_user(*field, &uid, self.case_insensitive_matching)
                .await?
            {
                match &found {
                    Some(f) if f.pk != user.pk => ambiguous = true,
                    Some(_) => {}
                    None => found = Some(user),
                }
            }
        }
        if ambiguous {
            found = None;
        }

        // The identifier as typed: the throttle and the password stage count under it,
        // so known and unknown identifiers are treated alike.
        ctx.context
            .insert(throttle::IDENTIFIER_KEY, uid.clone().into());
        let ip = ctx.request.client_ip.clone();

        // Inline password: verify for known and unknown users alike (same work either way),
        // unless the throttle refuses this identifier from this IP (then nothing is
        // evaluated). An inactive account answers like a wrong password, as in the
        // password stage.
        let mut message = FAILED.to_owned();
        // The inline password stage's `backends` decide as in the password stage (none
        // when the stage is missing: nothing matches, the same work is done).
        let inline_backends: &[String] = self
            .password_stage
            .and_then(|id| ctx.definition.referenced_stages.get(&id))
            .and_then(|stage| match &stage.config {
                StageConfig::Password(p) => Some(p.backends.as_slice()),
                _ => None,
            })
            .unwrap_or_default();
        let mut matched_backend = None;
        let password_ok = match (&self.password_stage, &password) {
            (Some(_), Some(pw)) => {
                // The check counts this attempt as a failure up front (given back on
                // success), so concurrent guesses cannot all pass it.
                match throttle::reserve(
                    ctx.env,
                    &mut ctx.effects.journal.reservations,
                    ip.as_deref(),
                    &uid,
                )
                .await?
                {
                    Err(wait) => {
                        message = throttle::refused_message(wait);
                        false
                    }
                    Ok(reservation) => {
                        let verified = super::password::authenticate(
                            ctx.env,
                            inline_backends,
                            found.as_ref().map(|u| &u.pk),
                            &Password::new(pw.as_str()),
                        )
                        .await;
                        if matches!(verified, Err(crate::store::StoreError::Busy)) {
                            // Not evaluated: no failed attempt.
                            throttle::release(
                                ctx.env,
                                &mut ctx.effects.journal.reservations,
                                ip.as_deref(),
                                &uid,
                                &reservation,
                            )
                            .await?;
                        }
                        matched_backend = verified?;
                        let ok = matched_backend.is_some()
                            && found.as_ref().is_some_and(|u| u.is_active);
                        if ok {
                            ctx.effects.push(Effect::ThrottleSuccess {
                                ip: ip.clone(),
                                identifier: uid.clone(),
                                reservation,
                            });
                        }
                        ok
                    }
                }
            }
            (Some(_), None) => false,
            (None, _) => true,
        };

        let failed = |ctx: &mut StageContext<'_>| {
            let mut c = self.build(ctx);
            c = c.with_error(
                crate::model::NON_FIELD_ERRORS,
                crate::challenge::ErrorDetail::invalid(message.as_str()),
            );
            StageOutcome::Invalid(c)
        };

        match found {
            Some(user) if password_ok => {
                ctx.context.set_pending_user(&PendingUser::of(&user));
                if !self.show_matched_user {
                    ctx.context
                        .insert(keys::PENDING_USER_IDENTIFIER, uid.clone().into());
                }
                if self.password_stage.is_some() {
                    let backend = matched_backend.unwrap_or(crate::model::INBUILT_BACKEND);
                    ctx.context.insert(keys::USER_BACKEND, backend.into());
                    ctx.context.insert(
                        keys::AUTH_METHOD,
                        super::password::auth_method(backend).into(),
                    );
                } else {
                    // authentik lowers the score of every unknown identifier here; a
                    // known one loses the same point, so scores tell nothing about
                    // existence (the login gives it back).
                    lower_reputation(ctx, &user.username).await?;
                }
                Ok(StageOutcome::Done)
            }
            Some(user) => {
                login_failed(ctx, &user.username).await?;
                Ok(failed(ctx))
            }
            None => {
                // As authentik: the pretended user is the pending user even when the
                // answer is a failure, so `restart_with_context` keeps it and policies
                // (e.g. reputation) see who was tried.
                ctx.context.set_pending_user(&PendingUser {
                    pk: None,
                    username: uid.clone(),
                    email: uid.clone(),
                    name: String::new(),
                });
                if !self.show_matched_user {
                    ctx.context
                        .insert(keys::PENDING_USER_IDENTIFIER, uid.clone().into());
                }
                if self.pretend_user_exists && self.password_stage.is_none() {
                    // As authentik: an unknown identifier costs one point — exactly what
                    // a known one costs at this step, so reputation-guarded stages
                    // cannot tell them apart.
                    lower_reputation(ctx, &uid).await?;
                    Ok(StageOutcome::Done)
                } else {
                    // One failure, one reputation point (`login_failed` lowers it).
                    login_failed(ctx, &uid).await?;
                    Ok(failed(ctx))
                }
            }
        }
    }
}

/// Identification without a credential check: reputation −1 for the IP and username,
/// made before the step's save (a penalty, see [`crate::effects`]).
async fn lower_reputation(ctx: &mut StageContext<'_>, username: &str) -> Result<(), StageError> {
    let ip = ctx.request.client_ip.clone();
    crate::effects::penalize(ctx.env, ctx.effects, ip.as_deref(), username).await?;
    Ok(())
}

/// Records a failed credential check: reputation −1 (at once) and a `login_failed`
/// event (applied after the step committed).
pub(crate) async fn login_failed(
    ctx: &mut StageContext<'_>,
    username: &str,
) -> Result<(), StageError> {
    lower_reputation(ctx, username).await?;
    let mut event = Event::new(EventAction::LoginFailed).with("stage", ctx.stage.name.clone());
    event.user = Some(username.to_owned());
    event.flow = Some(ctx.flow.slug.clone());
    event.client_ip = ctx.request.client_ip.clone();
    ctx.effects.emit(event);
    Ok(())
}
