//! `ak-stage-password`: verifies the pending user's password; after
//! `failed_attempts_before_cancel` failures the plan is dropped and access denied.

use async_trait::async_trait;

use super::identification::login_failed;
use super::{
    Effect, Fields, Response, StageContext, StageError, StageKind, StageMeta, StageOutcome,
};
use crate::challenge::{Challenge, ChallengeBody, ErrorDetail, PasswordChallenge};
use crate::env::Services;
use crate::model::{INBUILT_BACKEND, PasswordStage, StageConfig, TOKEN_BACKEND, UserId};
use crate::plan::{PendingUser, keys};
use crate::secret::Password;
use crate::store::StoreError;
use crate::throttle;

/// Plan-context key counting failed attempts in this plan.
pub const FAILURES_KEY: &str = "goauthentik.io/stages/password/failures";
const INVALID: &str = "Invalid password";

impl PasswordStage {
    /// The challenge. authentik links the brand's recovery flow; authflow has no brand
    /// and links the recovery flow of the flow's identification stage (the same link the
    /// identification challenge carries).
    fn build(&self, ctx: &StageContext<'_>) -> Challenge {
        let recovery_url = ctx
            .definition
            .stages
            .iter()
            .find_map(|b| match &b.stage.config {
                StageConfig::Identification(i) => i
                    .recovery_flow
                    .as_ref()
                    .map(|slug| ctx.request.paths().flow_page(slug, &ctx.request.query)),
                _ => None,
            });
        Challenge::new(ChallengeBody::Password(PasswordChallenge {
            allow_show_password: self.allow_show_password,
            recovery_url,
            ..Default::default()
        }))
    }
}

#[async_trait]
impl StageKind for PasswordStage {
    fn component(&self) -> Option<&str> {
        Some("ak-stage-password")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_password.passwordstage",
            verbose_name: "Password Stage",
            form_component: "ak-stage-password-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        if ctx.pending_user().is_none() {
            return Ok(StageOutcome::Deny("Unknown error".into()));
        }
        Ok(StageOutcome::Challenge(self.build(ctx)))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        response: &Response,
    ) -> Result<StageOutcome, StageError> {
        let Some(pending) = ctx.pending_user() else {
            return Ok(StageOutcome::Deny("Unknown error".into()));
        };
        let mut fields = Fields::new(response);
        let Some(password) = fields.string("password", true, false, 1024) else {
            let mut c = self.build(ctx);
            c.response_errors = fields.into_errors();
            return Ok(StageOutcome::Invalid(c));
        };
        let password = Password::new(password);
        let ip = ctx.request.client_ip.clone();
        let identifier = ctx
            .context
            .get_str(throttle::IDENTIFIER_KEY)
            .map(str::to_owned)
            .unwrap_or_else(|| pending.username.clone());
        // Throttled: refused without looking at the password, the same for every
        // identifier (known or not). The check also counts this attempt as a failure
        // (given back on success), so concurrent guesses cannot all pass it.
        let reserved = throttle::reserve(
            ctx.env,
            &mut ctx.effects.journal.reservations,
            ip.as_deref(),
            &identifier,
        )
        .await?;
        let reservation = match reserved {
            Ok(r) => r,
            Err(wait) => {
                login_failed(ctx, &pending.username).await?;
                return Ok(self.failure(ctx, throttle::refused_message(wait)));
            }
        };
        // Pretended users (pk None) get the same work and the same answer.
        let verified = authenticate(ctx.env, &self.backends, pending.pk.as_ref(), &password).await;
        if matches!(verified, Err(StoreError::Busy)) {
            // Not evaluated: no failed attempt.
            throttle::release(
                ctx.env,
                &mut ctx.effects.journal.reservations,
                ip.as_deref(),
                &identifier,
                &reservation,
            )
            .await?;
        }
        let backend = verified?;
        let mut ok = backend.is_some();
        let mut record = None;
        if ok {
            record = ctx.pending_user_record().await?;
            // An inactive account answers like a wrong password: nothing is revealed.
            ok = record.as_ref().is_some_and(|u| u.is_active);
        }
        if let (true, Some(user)) = (ok, record) {
            ctx.effects.push(Effect::ThrottleSuccess {
                ip: ip.clone(),
                identifier: identifier.clone(),
                reservation,
            });
            ctx.context.remove(FAILURES_KEY);
            ctx.context.set_pending_user(&PendingUser::of(&user));
            let backend = backend.unwrap_or(INBUILT_BACKEND);
            ctx.context.insert(keys::USER_BACKEND, backend.into());
            ctx.context
                .insert(keys::AUTH_METHOD, auth_method(backend).into());
            return Ok(StageOutcome::Done);
        }
        login_failed(ctx, &pending.username).await?;
        Ok(self.failure(ctx, INVALID.into()))
    }
}

impl PasswordStage {
    /// A failed attempt: counted in the plan; denied once the plan's limit is reached.
    fn failure(&self, ctx: &mut StageContext<'_>, message: String) -> StageOutcome {
        let failures = ctx
            .context
            .get(FAILURES_KEY)
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
            .saturating_add(1);
        ctx.context.insert(FAILURES_KEY, failures.into());
        // authentik counts first and compares with `>=`: `0` cancels on the first failure.
        if failures >= u64::from(self.failed_attempts_before_cancel) {
            return StageOutcome::Deny(message);
        }
        StageOutcome::Invalid(
            self.build(ctx)
                .with_error("password", ErrorDetail::invalid(message)),
        )
    }
}

/// Tries `backends` in their order for `user` (`None`: a pretended user) and returns
/// the first that accepts `password` (authentik's `authenticate` in
/// authentik/stages/password/stage.py, which records the winner as `user_backend`):
/// [`INBUILT_BACKEND`] checks the directory password, [`TOKEN_BACKEND`] the user's
/// [app passwords](crate::store::AppPasswords); [`LDAP_BACKEND`](crate::model::LDAP_BACKEND)
/// and [`KERBEROS_BACKEND`](crate::model::KERBEROS_BACKEND) never match (authflow has
/// no such sources). Each backend is tried once.
///
/// The work does not depend on whether the user exists: a pretended user is checked
/// against no app passwords and a dummy password hash. Without the inbuilt backend the
/// directory password is never accepted, but the same hashing work is done, so a
/// token-only stage answers as slowly as the others.
pub(crate) async fn authenticate(
    services: &Services,
    backends: &[String],
    user: Option<&UserId>,
    password: &Password,
) -> Result<Option<&'static str>, StoreError> {
    let (mut directory, mut tokens) = (false, false);
    for backend in backends {
        match backend.as_str() {
            INBUILT_BACKEND if !directory => {
                directory = true;
                if services
                    .users
                    .verify_password(user.cloned(), password)
                    .await?
                {
                    return Ok(Some(INBUILT_BACKEND));
                }
            }
            TOKEN_BACKEND if !tokens => {
                tokens = true;
                // An unknown user is looked up under an id no user has: the same query.
                let pk = user.cloned().unwrap_or_else(|| UserId::new(""));
                let now = services.clock.now();
                if services.app_passwords.verify(&pk, password, now).await? {
                    return Ok(Some(TOKEN_BACKEND));
                }
            }
            other => {
                // LDAP, Kerberos: the host's hook when one is registered.
                let hook = services.password_backends.iter().find(|(n, _)| *n == other);
                if let Some((name, hook)) = hook {
                    if hook.verify(user, password).await? {
                        return Ok(Some(*name));
                    }
                }
            }
        }
    }
    if !directory {
        services.users.verify_password(None, password).await?;
    }
    Ok(None)
}

/// authentik's `auth_method` for a login through `backend`: `token` for the token
/// backend (authentik/core/auth.py `TokenBackend.authenticate` calls
/// `set_method("token", …)`), else `password`.
pub(crate) fn auth_method(backend: &str) -> &'static str {
    if backend == TOKEN_BACKEND {
        "token"
    } else {
        "password"
    }
}
