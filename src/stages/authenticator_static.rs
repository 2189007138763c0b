//! Static recovery codes (authentik's `AuthenticatorStaticStageView`): `token_count`
//! distinct codes of `token_length` characters from `[a-z0-9]` (authentik's
//! `generate_id` alphabet for these tokens), drawn from the engine's
//! [`Random`](crate::random::Random) without modulo bias.
//!
//! The codes are kept in the plan context (a key the inspector redacts) and shown in
//! `codes` until the user's POST, which saves the device with only their
//! [`token_digest`](crate::hashing::token_digest)s; they are never shown again. Each
//! code validates once ([`DeviceUse::StaticToken`](crate::store::DeviceUse)).

use async_trait::async_trait;
use serde_json::{Value, json};

use super::authenticator_totp::{NO_USER, mfa_event, setup_user};
use super::{Effect, Response, StageContext, StageError, StageKind, StageMeta, StageOutcome};
use crate::challenge::{AuthenticatorStaticChallenge, Challenge, ChallengeBody, UserInfo};
use crate::events::EventAction;
use crate::model::AuthenticatorStaticStage;
use crate::random::Random;
use crate::store::{Device, DeviceSecret, User};

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// One code of `length` characters from [`ALPHABET`].
fn code(random: &dyn Random, length: usize) -> String {
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 64];
    while out.len() < length {
        random.fill(&mut buf);
        for &b in &buf {
            // 252 = 7 × 36: larger bytes are dropped, so every character is equally likely.
            if let (true, Some(c)) = (b < 252, ALPHABET.get(usize::from(b % 36))) {
                if out.len() < length {
                    out.push(char::from(*c));
                }
            }
        }
    }
    out
}

/// `count` distinct codes.
pub(crate) fn codes(random: &dyn Random, count: usize, length: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(count);
    // Collisions are astronomically unlikely at the allowed lengths; the bound keeps
    // a broken generator from looping forever.
    let mut tries = 0;
    while out.len() < count && tries < count * 100 {
        tries += 1;
        let c = code(random, length);
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

impl AuthenticatorStaticStage {
    fn key(ctx: &StageContext<'_>) -> String {
        format!("authflow/authenticator_static/{}/tokens", ctx.stage.pk)
    }

    /// The codes shown to `user` by this stage, if any.
    fn shown_codes(&self, ctx: &StageContext<'_>, user: &User) -> Option<Vec<String>> {
        let count = self.token_count as usize;
        let length = self.token_length as usize;
        let v = ctx.context.get(&Self::key(ctx))?;
        if v.get("user").and_then(Value::as_str) != Some(user.pk.as_str()) {
            return None;
        }
        let codes: Vec<String> = serde_json::from_value(v.get("codes")?.clone()).ok()?;
        (codes.len() == count && codes.iter().all(|c| c.len() == length)).then_some(codes)
    }

    /// The codes of this stage for `user`, drawn on first use.
    fn pending_codes(&self, ctx: &mut StageContext<'_>, user: &User) -> Vec<String> {
        if let Some(c) = self.shown_codes(ctx, user) {
            return c;
        }
        let key = Self::key(ctx);
        let count = self.token_count as usize;
        let length = self.token_length as usize;
        let fresh = codes(ctx.env.random.as_ref(), count, length);
        ctx.context
            .insert(key, json!({"user": user.pk.as_str(), "codes": fresh}));
        fresh
    }
}

#[async_trait]
impl StageKind for AuthenticatorStaticStage {
    fn component(&self) -> Option<&str> {
        Some("ak-stage-authenticator-static")
    }

    fn meta(&self) -> StageMeta {
        StageMeta {
            model_name: "authentik_stages_authenticator_static.authenticatorstaticstage",
            verbose_name: "Static Authenticator Setup Stage",
            form_component: "ak-stage-authenticator-static-form",
        }
    }

    async fn challenge(&self, ctx: &mut StageContext<'_>) -> Result<StageOutcome, StageError> {
        let Some(user) = setup_user(ctx).await? else {
            return Ok(StageOutcome::Deny(NO_USER.into()));
        };
        let codes = self.pending_codes(ctx, &user);
        Ok(StageOutcome::Challenge(Challenge::new(
            ChallengeBody::AuthenticatorStatic(AuthenticatorStaticChallenge {
                user: UserInfo::default(),
                codes,
            }),
        )))
    }

    async fn respond(
        &self,
        ctx: &mut StageContext<'_>,
        _response: &Response,
    ) -> Result<StageOutcome, StageError> {
        let Some(user) = setup_user(ctx).await? else {
            return Ok(StageOutcome::Deny(NO_USER.into()));
        };
        // Only codes the user was shown are saved: a POST without them (no GET before,
        // another user's) shows the codes first.
        let Some(codes) = self.shown_codes(ctx, &user) else {
            return self.challenge(ctx).await;
        };
        ctx.context.remove(&Self::key(ctx));
        let id = ctx.env.random.uuid().to_string();
        let device = Device {
            id: id.clone(),
            user: user.pk.clone(),
            name: self
                .friendly_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| "Static Token".into()),
            created: ctx.env.clock.now(),
            last_used: None,
            confirmed: true,
            secret: DeviceSecret::Static {
                tokens: codes
                    .iter()
                    .map(|c| crate::hashing::token_digest(c))
                    .collect(),
            },
        };
        ctx.effects.push(Effect::AddDevice(device));
        let event = mfa_event(ctx, EventAction::DeviceAdded, &user.username)
            .with("device_class", "static")
            .with("device", id);
        ctx.effects.emit(event);
        Ok(StageOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn codes_are_distinct_and_from_the_alphabet() {
        let r = SeededRandom::new(7);
        let c = codes(&r, 6, 12);
        assert_eq!(c.len(), 6);
        for code in &c {
            assert_eq!(code.len(), 12);
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        }
        let mut d = c.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 6);
    }
}
