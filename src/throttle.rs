//! Login throttling: failed password checks are counted per (client IP, identifier) and
//! per identifier across every session, and past a threshold further password checks
//! are refused **without evaluating the password**.
//!
//! The counters live in a [`ThrottleStore`](crate::store::ThrottleStore) (in memory by
//! default, `authflow::redis::RedisThrottleStore` (feature `redis`) when several instances share Redis), so
//! a fresh session or another server instance does not reset them. Time comes from the
//! engine's [`Clock`](crate::clock::Clock).
//!
//! # Rules (defaults in [`ThrottleConfig::default`])
//!
//! - **Per (IP, identifier)**: after [`ThrottleConfig::max_failures_per_ip`] (10) failed
//!   checks within [`ThrottleConfig::window`] (15 min, counted from the first failure),
//!   checks from that IP for that identifier are refused until the window has passed.
//!   A successful login clears this counter.
//! - **Per identifier** (all IPs): after [`ThrottleConfig::max_failures_per_identifier`]
//!   (100) failures within the window — a distributed attack — checks for that
//!   identifier are refused from every IP that is not *familiar* (an IP this identifier
//!   logged in from within [`ThrottleConfig::familiar_for`], 30 days). A global hard
//!   lock would let anyone lock any user out; a higher threshold plus familiar IPs keeps
//!   the owner able to log in from where they usually do while the attack goes on.
//! - Refused checks are not counted (the lock does not grow while it is hit), but they
//!   answer exactly like a wrong password plus a "try again later" hint, for known and
//!   unknown identifiers alike: the counters are keyed by the identifier as typed
//!   (normalised with [`canonical_identifier`]), so
//!   whether an account exists changes nothing.
//! - A check and its count are one step: the attempt is counted (atomically) before
//!   the password is evaluated and given back on success or when the hashing pool
//!   refused the check, so concurrent guesses cannot all pass the check before the
//!   first failure is counted. The count is made before the step's session save and
//!   journalled for the step: when the save loses a compare-and-swap race and the
//!   step is retried, the retry reuses the count instead of counting the same guess
//!   again. Giving it back on success is applied only once the step committed
//!   ([`crate::effects`]); a step that never commits leaves it counted (fail closed).
//! - A request without a client IP counts under one `unknown` bucket (fail closed);
//!   IPv6 addresses count per /64 (one host usually owns a whole /64).
//!
//! Set [`ThrottleConfig::disabled`] through
//! [`EngineBuilder::throttle`](crate::EngineBuilder::throttle) to turn it off (e.g. when
//! the host throttles in front of the engine).

use std::net::IpAddr;

use crate::env::Services;
use crate::store::{StoreError, ThrottleCounter, canonical_identifier};

/// Plan-context key holding the identifier as the user typed it (set by the
/// identification stage), so the password stage counts under the same key for known and
/// unknown users.
pub const IDENTIFIER_KEY: &str = "authflow/throttle/identifier";

pub use crate::throttle_config::ThrottleConfig;

/// The message of a refused check; the same for every identifier.
pub(crate) fn refused_message(retry_after: u64) -> String {
    let minutes = retry_after.div_ceil(60).max(1);
    format!(
        "Too many failed attempts. Try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    )
}

/// The bucket of a client IP: the address itself, its /64 for IPv6, `unknown` when the
/// host did not say (or said something that is not an address).
pub(crate) fn ip_bucket(ip: Option<&str>) -> String {
    match ip.and_then(|s| s.trim().parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
        None => "unknown".to_owned(),
    }
}

struct Keys {
    pair: String,
    identifier: String,
    familiar: String,
}

fn keys(ip: Option<&str>, identifier: &str) -> Keys {
    let ip = ip_bucket(ip);
    let id = canonical_identifier(identifier);
    Keys {
        pair: format!("fail:ip:{ip}:id:{id}"),
        identifier: format!("fail:id:{id}"),
        familiar: format!("ok:ip:{ip}:id:{id}"),
    }
}

/// The key counting hits of `counter`'s window opened at `since` that were given back
/// (successes, checks the hashing pool refused). It names the window, so what was
/// given back in one window never offsets the next one.
fn given_back(counter: &str, since: u64) -> String {
    format!("back:{since}:{counter}")
}

/// Failures in a counter's open window: its hits minus those given back.
async fn failures(
    env: &Services,
    key: &str,
    counter: ThrottleCounter,
    now: u64,
) -> Result<u32, StoreError> {
    if counter.count == 0 {
        return Ok(0);
    }
    let back = env
        .throttle
        .get(
            &given_back(key, counter.since),
            now,
            env.throttle_config.window,
        )
        .await?;
    Ok(counter.count.saturating_sub(back.count))
}

/// `Some(seconds to wait)` when a password check for `identifier` from `ip` must be
/// refused without evaluating the password.
pub(crate) async fn refused(
    env: &Services,
    ip: Option<&str>,
    identifier: &str,
) -> Result<Option<u64>, StoreError> {
    let cfg = &env.throttle_config;
    if !cfg.enabled() {
        return Ok(None);
    }
    let now = env.clock.now();
    let k = keys(ip, identifier);
    let left = |since: u64| since.saturating_add(cfg.window).saturating_sub(now).max(1);
    if cfg.max_failures_per_ip > 0 {
        let pair = env.throttle.get(&k.pair, now, cfg.window).await?;
        if pair.count >= cfg.max_failures_per_ip
            && failures(env, &k.pair, pair, now).await? >= cfg.max_failures_per_ip
        {
            return Ok(Some(left(pair.since)));
        }
    }
    if cfg.max_failures_per_identifier > 0 {
        let all = env.throttle.get(&k.identifier, now, cfg.window).await?;
        if all.count >= cfg.max_failures_per_identifier
            && failures(env, &k.identifier, all, now).await? >= cfg.max_failures_per_identifier
            && !familiar(env, &k, now).await?
        {
            return Ok(Some(left(all.since)));
        }
    }
    Ok(None)
}

async fn familiar(env: &Services, k: &Keys, now: u64) -> Result<bool, StoreError> {
    Ok(env
        .throttle
        .get(&k.familiar, now, env.throttle_config.familiar_for)
        .await?
        .count
        > 0)
}

/// A password check counted before it was evaluated: the windows its hits went into,
/// so that a success ([`Effect::ThrottleSuccess`](crate::effects::Effect::ThrottleSuccess))
/// or a check the hashing pool refused can give them back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reservation {
    pair_since: Option<u64>,
    identifier_since: Option<u64>,
}

/// The checks one step already counted, by (IP bucket, identifier). The engine keeps
/// it across the compare-and-swap retries of the step (in the step's
/// [`Journal`](crate::effects)), so the retried stage reuses its reservation: one
/// guess is counted once, however often the step is retried.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reservations(Vec<(String, Reservation)>);

/// Checks and counts one password check before the password is evaluated:
/// `Err(seconds to wait)` when it must be refused without evaluating the password,
/// else the [`Reservation`] of the failure counted up front (with the store's atomic
/// `hit`). Checking with [`refused`] and counting only after the (slow, pooled) hash
/// let a burst of concurrent guesses all pass the check before the first failure was
/// counted; reserving makes the check and the count one step, so no more than the
/// threshold are ever evaluated. A success gives the hits back through
/// [`record_success`], a check the hashing pool refused through [`release`].
///
/// A check this step already counted (in an attempt that lost a compare-and-swap
/// race, see [`Reservations`]) is not counted again: its reservation is reused.
pub(crate) async fn reserve(
    env: &Services,
    journal: &mut Reservations,
    ip: Option<&str>,
    identifier: &str,
) -> Result<Result<Reservation, u64>, StoreError> {
    let key = keys(ip, identifier).pair;
    if let Some((_, r)) = journal.0.iter().find(|(k, _)| *k == key) {
        return Ok(Ok(*r));
    }
    let reserved = reserve_new(env, ip, identifier).await?;
    if let Ok(r) = &reserved {
        journal.0.push((key, *r));
    }
    Ok(reserved)
}

async fn reserve_new(
    env: &Services,
    ip: Option<&str>,
    identifier: &str,
) -> Result<Result<Reservation, u64>, StoreError> {
    if let Some(wait) = refused(env, ip, identifier).await? {
        return Ok(Err(wait));
    }
    let cfg = &env.throttle_config;
    let mut r = Reservation::default();
    if !cfg.enabled() {
        return Ok(Ok(r));
    }
    let now = env.clock.now();
    let k = keys(ip, identifier);
    let left = |since: u64| since.saturating_add(cfg.window).saturating_sub(now).max(1);
    let pair = env.throttle.hit(&k.pair, now, cfg.window).await?;
    r.pair_since = Some(pair.since);
    if cfg.max_failures_per_ip > 0
        && pair.count > cfg.max_failures_per_ip
        && failures(env, &k.pair, pair, now).await? > cfg.max_failures_per_ip
    {
        return Ok(Err(left(pair.since)));
    }
    let all = env.throttle.hit(&k.identifier, now, cfg.window).await?;
    r.identifier_since = Some(all.since);
    if cfg.max_failures_per_identifier > 0
        && all.count > cfg.max_failures_per_identifier
        && failures(env, &k.identifier, all, now).await? > cfg.max_failures_per_identifier
        && !familiar(env, &k, now).await?
    {
        return Ok(Err(left(all.since)));
    }
    Ok(Ok(r))
}

/// Gives back the hits of a reservation whose password was never evaluated (the
/// hashing pool was full): a refused check is no failed attempt.
/// Forgotten by the journal too: a retry counts its check afresh.
pub(crate) async fn release(
    env: &Services,
    journal: &mut Reservations,
    ip: Option<&str>,
    identifier: &str,
    r: &Reservation,
) -> Result<(), StoreError> {
    let key = keys(ip, identifier).pair;
    journal.0.retain(|(k, _)| *k != key);
    let cfg = &env.throttle_config;
    if !cfg.enabled() {
        return Ok(());
    }
    let now = env.clock.now();
    let k = keys(ip, identifier);
    if let Some(since) = r.pair_since {
        env.throttle
            .hit(&given_back(&k.pair, since), now, cfg.window)
            .await?;
    }
    if let Some(since) = r.identifier_since {
        env.throttle
            .hit(&given_back(&k.identifier, since), now, cfg.window)
            .await?;
    }
    Ok(())
}

/// A successful check (applied after the step committed): clears the (IP, identifier) counter, gives the reservation's
/// hit of the per-identifier counter back (that counter counts an attack, not the
/// owner) and makes the IP familiar for the identifier.
pub(crate) async fn record_success(
    env: &Services,
    ip: Option<&str>,
    identifier: &str,
    r: &Reservation,
) -> Result<(), StoreError> {
    let cfg = &env.throttle_config;
    if !cfg.enabled() {
        return Ok(());
    }
    let now = env.clock.now();
    let k = keys(ip, identifier);
    env.throttle.clear(&k.pair).await?;
    if let Some(since) = r.identifier_since {
        env.throttle
            .hit(&given_back(&k.identifier, since), now, cfg.window)
            .await?;
    }
    env.throttle.clear(&k.familiar).await?;
    env.throttle.hit(&k.familiar, now, cfg.familiar_for).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_buckets() {
        assert_eq!(ip_bucket(None), "unknown");
        assert_eq!(ip_bucket(Some("not an ip")), "unknown");
        assert_eq!(ip_bucket(Some("10.0.0.1")), "10.0.0.1");
        assert_eq!(ip_bucket(Some("::ffff:10.0.0.1")), "10.0.0.1");
        assert_eq!(
            ip_bucket(Some("2001:db8:1:2:3:4:5:6")),
            ip_bucket(Some("2001:db8:1:2:ffff::1"))
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            refused_message(30),
            "Too many failed attempts. Try again in 1 minute."
        );
        assert_eq!(
            refused_message(900),
            "Too many failed attempts. Try again in 15 minutes."
        );
    }
}
