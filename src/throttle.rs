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
//! - A request without a client IP counts under one `unknown` bucket (fail closed);
//!   IPv6 addresses count per /64 (one host usually owns a whole /64).
//!
//! Set [`ThrottleConfig::disabled`] through
//! [`EngineBuilder::throttle`](crate::EngineBuilder::throttle) to turn it off (e.g. when
//! the host throttles in front of the engine).

use std::net::IpAddr;

use crate::env::Env;
use crate::store::{StoreError, canonical_identifier};

/// Plan-context key holding the identifier as the user typed it (set by the
/// identification stage), so the password stage counts under the same key for known and
/// unknown users.
pub const IDENTIFIER_KEY: &str = "authflow/throttle/identifier";

/// Thresholds and window of the login throttle. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Seconds a counter lives, from its first failure (default 900 = 15 min).
    pub window: u64,
    /// Failures from one IP for one identifier before that pair is refused (default 10;
    /// 0 disables this rule).
    pub max_failures_per_ip: u32,
    /// Failures from all IPs for one identifier before unfamiliar IPs are refused
    /// (default 100; 0 disables this rule).
    pub max_failures_per_identifier: u32,
    /// Seconds an IP stays familiar for an identifier after a successful login from it
    /// (default 30 days).
    pub familiar_for: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            window: 15 * 60,
            max_failures_per_ip: 10,
            max_failures_per_identifier: 100,
            familiar_for: 30 * 24 * 3600,
        }
    }
}

impl ThrottleConfig {
    /// No throttling at all (only the per-plan `failed_attempts_before_cancel` applies).
    pub fn disabled() -> Self {
        Self {
            max_failures_per_ip: 0,
            max_failures_per_identifier: 0,
            ..Self::default()
        }
    }

    fn enabled(&self) -> bool {
        self.max_failures_per_ip > 0 || self.max_failures_per_identifier > 0
    }
}

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

/// `Some(seconds to wait)` when a password check for `identifier` from `ip` must be
/// refused without evaluating the password.
pub(crate) async fn refused(
    env: &Env,
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
        if pair.count >= cfg.max_failures_per_ip {
            return Ok(Some(left(pair.since)));
        }
    }
    if cfg.max_failures_per_identifier > 0 {
        let all = env.throttle.get(&k.identifier, now, cfg.window).await?;
        if all.count >= cfg.max_failures_per_identifier
            && env
                .throttle
                .get(&k.familiar, now, cfg.familiar_for)
                .await?
                .count
                == 0
        {
            return Ok(Some(left(all.since)));
        }
    }
    Ok(None)
}

/// Counts one failed (evaluated) password check.
pub(crate) async fn record_failure(
    env: &Env,
    ip: Option<&str>,
    identifier: &str,
) -> Result<(), StoreError> {
    let cfg = &env.throttle_config;
    if !cfg.enabled() {
        return Ok(());
    }
    let now = env.clock.now();
    let k = keys(ip, identifier);
    env.throttle.hit(&k.pair, now, cfg.window).await?;
    env.throttle.hit(&k.identifier, now, cfg.window).await?;
    Ok(())
}

/// A successful check: clears the (IP, identifier) counter and makes the IP familiar
/// for the identifier. The per-identifier counter stays (it counts an attack, not the
/// owner).
pub(crate) async fn record_success(
    env: &Env,
    ip: Option<&str>,
    identifier: &str,
) -> Result<(), StoreError> {
    let cfg = &env.throttle_config;
    if !cfg.enabled() {
        return Ok(());
    }
    let now = env.clock.now();
    let k = keys(ip, identifier);
    env.throttle.clear(&k.pair).await?;
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
