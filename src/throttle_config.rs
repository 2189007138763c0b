//! [`ThrottleConfig`]: the login throttle's thresholds (its behaviour is in
//! [`crate::throttle`]).

/// Thresholds and window of the login throttle. See [`crate::throttle`].
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

    pub(crate) fn enabled(&self) -> bool {
        self.max_failures_per_ip > 0 || self.max_failures_per_identifier > 0
    }
}
