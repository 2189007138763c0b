//! `ak-stage-email`: mails the pending user a link that resumes this flow's plan in
//! whichever browser opens it (authentik's `EmailStageView`; the link carries a
//! [flow token](crate::store::FlowTokens), restored by the executor).
//!
//! - On entry the link is sent once (`email_sent` in the context); a POST sends it
//!   again, at most `recovery_max_attempts` mails per user within
//!   `recovery_cache_timeout` (counted in the throttle store, across plans).
//! - Sending happens during the step, before its save, and is journalled: a step
//!   retried after a compare-and-swap conflict does not send twice. A mailer that
//!   fails shows the challenge with an error (the plan stays; a POST retries): never a
//!   5xx, never a silent pass. No mailer, or no external URL for the link: the stage
//!   denies (fail closed). The link's base is the engine's
//!   [`MailSettings::external_url`](crate::mail::MailSettings), never the request's
//!   `Host`.
//! - An unknown identifier (a pretended user: identification's `pretend_user_exists`)
//!   or a user without an address gets the same challenge, and no mail (no account
//!   enumeration). authentik does this in recovery flows only; authflow in every flow
//!   (a magic-link login must not enumerate either).
//! - Reached again from the link (`is_restored`): the token's user must be the pending
//!   user; `activate_user_on_success` activates the account; the stage is done. In a
//!   recovery flow the login at the end then ends the user's other sessions.

use async_trait::async_trait;
use serde_json::Value;

use super::email_template::{Vars, format_time, render};
use super::{Effect, Response, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::challenge::{Challenge, ChallengeBody, EmailChallenge, ErrorDetail};
use crate::events::{Event, EventAction};
use crate::mail::Message;
use crate::model::{EmailStage, FlowDesignation, NON_FIELD_ERRORS};
use crate::plan::{FlowPlan, keys};
use crate::store::{FlowToken, new_flow_token_key};

/// No mailer configured.
pub const NO_MAILER: &str = "This server cannot send email.";
/// No external URL configured.
pub const NO_EXTERNAL_URL: &str =
    "This server cannot send links: no external URL is configured (AUTHFLOW_EXTERNAL_URL).";
/// The mailer failed.
pub const SEND_FAILED: &str = "The email could not be sent. Please try again later.";
/// Too many mails.
pub const TOO_MANY: &str = "Too many emails were requested. Please wait a few minutes.";

/// The link is not one this server issued (or it was purged).
pub const LINK_UNKNOWN: &str = "This link is not valid. Please request a new one.";
/// The link was used already.
pub const LINK_USED: &str = "This link has already been used. Please request a new one.";
/// The link expired.
pub const LINK_EXPIRED: &str = "This link has expired. Please request a new one.";
/// The link belongs to another flow.
pub const LINK_OTHER_FLOW: &str = "This link belongs to another flow.";

/// What a send attempt gave.
enum Sent {
    /// Sent (or pretended, or replayed from an earlier attempt of this step).
    Ok,
    /// Show the challenge with this error.
    Error(String),
    /// Deny with this message.
    Deny(String),
}

fn challenge() -> Challenge {
    Challenge::new(ChallengeBody::Email(EmailChallenge {}))
}

/// The query of the link: the flow's own query without any `flow_token`, plus the new one.
fn link_query(query: &str, key: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
        if k != "flow_token" {
            out.append_pair(&k, &v);
        }
    }
    out.append_pair("flow_token", key);
    out.finish()
}

impl EmailStage {
    async fn send(&self, ctx: &mut StageContext<'_>) -> Result<Sent, StageError> {
        let Some(mailer) = ctx.env.mailer.clone() else {
            return Ok(Sent::Deny(NO_MAILER.into()));
        };
        let Some(base) = ctx.env.mail_settings.external_url.clone() else {
            return Ok(Sent::Deny(NO_EXTERNAL_URL.into()));
        };
        let Some(pending) = ctx.pending_user() else {
            return Ok(Sent::Deny("No pending user.".into()));
        };
        let record = ctx.pending_user_record().await?;
        if record.is_none() && pending.pk.is_some() {
            return Ok(Sent::Deny("No pending user.".into()));
        }
        let address = ctx
            .context
            .get_str(keys::EMAIL_OVERRIDE)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .or_else(|| record.as_ref().map(|u| u.email.clone()))
            .unwrap_or_default();
        // Counted per user (or typed identifier) across plans: a restart does not
        // reset it. Pretended users are counted like real ones.
        let subject_key = match &record {
            Some(u) => u.pk.to_string(),
            None => pending.username.to_lowercase(),
        };
        let journal_key = ctx.binding.pk.to_string();
        if ctx.effects.journal.mails.replayed(&journal_key) {
            return Ok(Sent::Ok);
        }
        let now = ctx.env.clock.now();
        let counter = ctx
            .env
            .throttle
            .hit(
                &format!("email:{}:{subject_key}", ctx.stage.pk),
                now,
                crate::model::parse_timedelta(&self.recovery_cache_timeout)
                    .unwrap_or(300)
                    .max(1),
            )
            .await?;
        if counter.count > self.recovery_max_attempts {
            return Ok(Sent::Error(TOO_MANY.into()));
        }
        let Some(user) = record.filter(|_| !address.is_empty()) else {
            // An unknown identifier, or an account without an address: the same
            // answer, no mail.
            ctx.effects.journal.mails.record(&journal_key);
            return Ok(Sent::Ok);
        };
        let (key, digest) = new_flow_token_key(ctx.env.random.as_ref());
        let expires = now.saturating_add(self.token_expiry_secs());
        let token = FlowToken {
            digest,
            flow: ctx.flow.slug.clone(),
            user: Some(user.pk.clone()),
            plan: FlowPlan {
                flow_pk: ctx.flow.pk,
                bindings: ctx.remaining.to_vec(),
                context: ctx.context.clone(),
            },
            created: now,
            expires,
            used: None,
        };
        ctx.env.flow_tokens.create(token).await?;
        // Tokens expired for a day are no longer worth a message of their own.
        let _ = ctx.env.flow_tokens.purge(now.saturating_sub(86_400)).await;
        let url = format!(
            "{base}{}",
            ctx.request.paths().flow_page(
                &ctx.flow.slug,
                &link_query(&ctx.request.query, key.expose())
            )
        );
        let expires_text = format_time(expires);
        let (text, html) = render(
            &self.template,
            &Vars {
                url: &url,
                username: &user.username,
                name: &user.name,
                email: &address,
                expires: &expires_text,
                token: key.expose(),
            },
        );
        let message = Message {
            from: ctx.env.mail_settings.from.clone(),
            to: address,
            to_name: user.name.clone(),
            subject: self.subject.clone(),
            text,
            html,
        };
        match mailer.send(&message).await {
            Ok(()) => {
                ctx.effects.journal.mails.record(&journal_key);
                let mut event = Event::new(EventAction::EmailSent)
                    .with("to", message.to.clone())
                    .with("subject", message.subject.clone());
                event.flow = Some(ctx.flow.slug.clone());
                event.user = Some(user.username.clone());
                ctx.effects.emit(event);
                Ok(Sent::Ok)
            }
            Err(e) => {
                let mut event = Event::new(EventAction::SystemException)
                    .with("stage", ctx.stage.name.clone())
                    .with("message", format!("sending the email failed: {e}"));
                event.flow = Some(ctx.flow.slug.clone());
                ctx.effects.emit(event);
                Ok(Sent::Error(SEND_FAILED.into()))
            }
        }
    }

    /// The link was followed: check the token's user, activate, done.
    async fn restored(
        &self,
        ctx: &mut StageContext<'_>,
        restored: Value,
    ) -> Result<StageOutcome, StageError> {
        let token_user = restored.get("user").and_then(Value::as_str);
        let pending = ctx.pending_user().and_then(|p| p.pk);
        if token_user.is_none() || token_user != pending.as_ref().map(|p| p.as_str()) {
            return Ok(StageOutcome::Deny(
                "This link was issued for another user.".into(),
            ));
        }
        let Some(mut user) = ctx.pending_user_record().await? else {
            return Ok(StageOutcome::Deny("No pending user.".into()));
        };
        if self.activate_user_on_success && !user.is_active {
            user.is_active = true;
            ctx.effects.push(Effect::UpdateUser(user));
        }
        if ctx.flow.designation == FlowDesignation::Recovery {
            ctx.context
                .insert(keys::END_OTHER_SESSIONS, Value::Bool(true));
        }
        Ok(StageOutcome::Done)
    }

    fn answer(sent: Sent, mut c: Challenge) -> StageOutcome {
        match sent {
            Sent::Ok => StageOutcome::Challenge(c),
            Sent::Error(message) => {
                c = c.with_error(NON_FIELD_ERRORS, ErrorDetail::invalid(message));
                StageOutcome::Challenge(c)
            }
            Sent::Deny(message) => StageOutcome::Deny(message),
        }
    }
}

#[async_trait]
impl StageKind for EmailStage {
    fn component(&self) -> Option<&str> {
        Some("ak-stage-email")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_email.emailstage",
            verbose_name: "Email Stage",
            form_component: "ak-stage-email-form",
        }
    }

    fn confirmation(&self, ctx: &StageContext<'_>) -> Option<String> {
        // Sending is a side effect: a GET that would send the first mail asks first
        // (a POST an earlier stage accepted, e.g. the identification, does not).
        (ctx.context.pending_user().is_some()
            && !ctx.context.contains(keys::IS_RESTORED)
            && !ctx.context.contains(keys::EMAIL_SENT))
        .then(|| "Send a link to your email address?".to_owned())
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        if let Some(restored) = ctx.context.get(keys::IS_RESTORED).cloned() {
            return self.restored(ctx, restored).await;
        }
        if ctx.pending_user().is_none() {
            return Ok(StageOutcome::Deny("No pending user.".into()));
        }
        if ctx.context.contains(keys::EMAIL_SENT) {
            // Sent (true), or tried and failed (false: the user asks again by POST).
            return Ok(StageOutcome::Challenge(challenge()));
        }
        let sent = self.send(ctx).await?;
        let ok = matches!(sent, Sent::Ok);
        ctx.context.insert(keys::EMAIL_SENT, Value::Bool(ok));
        Ok(Self::answer(sent, challenge()))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        _response: &Response,
    ) -> Result<StageOutcome, StageError> {
        if let Some(restored) = ctx.context.get(keys::IS_RESTORED).cloned() {
            return self.restored(ctx, restored).await;
        }
        if ctx.pending_user().is_none() {
            return Ok(StageOutcome::Deny("No pending user.".into()));
        }
        let sent = self.send(ctx).await?;
        if matches!(sent, Sent::Ok) {
            ctx.context.insert(keys::EMAIL_SENT, Value::Bool(true));
            // authentik's `EmailChallengeResponse.validate`: "email-sent".
            let c = challenge().with_error(
                NON_FIELD_ERRORS,
                ErrorDetail::new("Email Successfully sent.", "email-sent"),
            );
            return Ok(StageOutcome::Challenge(c));
        }
        Ok(Self::answer(sent, challenge()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_query_replaces_an_old_token() {
        assert_eq!(
            super::link_query("next=%2Fapp&flow_token=old", "new"),
            "next=%2Fapp&flow_token=new"
        );
        assert_eq!(super::link_query("", "k"), "flow_token=k");
        let _ = serde_json::json!({});
    }
}
