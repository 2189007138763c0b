//! Throttling of MFA codes (TOTP setup, validation): after `n` failed codes of a
//! user, the next check waits 2^(n−1) seconds (1 s after one failure, 2 s, 4 s, …, at
//! most the throttle window), like django-otp's `ThrottlingMixin` that authentik's
//! devices use — seconds, not minutes, so a typo costs nothing noticeable.
//!
//! [`crate::throttle`] (the password throttle) does not fit: it locks per (IP,
//! identifier) after a threshold, for minutes. Its store does: the counters live in
//! the engine's [`ThrottleStore`](crate::store::ThrottleStore) (memory, or Redis
//! shared by every instance), so neither a fresh session nor another server resets
//! them. Two keys per user: `mfa:fail:{user}` counts failures in the throttle window
//! (from the first one); `mfa:last:{user}`'s window start is the last check.
//!
//! A check is counted **before** the code is evaluated (the last-check time is set at
//! once), so concurrent guesses wait for each other instead of all passing the check;
//! a good code clears both keys. The count is journalled in the step (as
//! [`crate::throttle`]'s reservations are): a step retried after a save conflict finds
//! its check already counted and does not wait for itself.

use super::StageError;
use crate::effects::Effects;
use crate::env::Services;
use crate::model::UserId;

fn keys(user: &UserId) -> (String, String) {
    (format!("mfa:fail:{user}"), format!("mfa:last:{user}"))
}

/// The message of a refused check.
pub(crate) fn refused_message(seconds: u64) -> String {
    format!(
        "Too many failed attempts. Try again in {seconds} second{}.",
        if seconds == 1 { "" } else { "s" }
    )
}

/// Counts a check of a code for `user`: `Ok(None)` when it may be evaluated,
/// `Ok(Some(seconds))` when the user must wait (nothing counted).
pub(crate) async fn check(
    env: &Services,
    effects: &mut Effects,
    user: &UserId,
) -> Result<Option<u64>, StageError> {
    let (fail, last) = keys(user);
    let journal = &mut effects.journal;
    if let Some(i) = journal.mfa_replay.iter().position(|k| *k == fail) {
        journal.mfa_replay.remove(i);
        return Ok(None);
    }
    let now = env.clock.now();
    let window = env.throttle_config.window.max(1);
    let failures = env.throttle.get(&fail, now, window).await?;
    if failures.count > 0 {
        let previous = env.throttle.get(&last, now, window).await?;
        let delay = 1u64
            .checked_shl(failures.count.saturating_sub(1).min(62))
            .unwrap_or(u64::MAX)
            .min(window);
        if previous.count > 0 && now < previous.since.saturating_add(delay) {
            return Ok(Some(previous.since.saturating_add(delay) - now));
        }
    }
    env.throttle.hit(&fail, now, window).await?;
    env.throttle.clear(&last).await?;
    env.throttle.hit(&last, now, window).await?;
    effects.journal.mfa_checks.push(fail);
    Ok(None)
}

/// A good code: the user's failures are forgotten.
pub(crate) async fn success(env: &Services, user: &UserId) -> Result<(), StageError> {
    let (fail, last) = keys(user);
    env.throttle.clear(&fail).await?;
    env.throttle.clear(&last).await?;
    Ok(())
}
