//! Time and timers come in through traits so that tests and benches can fix them
//! and the core never depends on an async runtime.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current time.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock tests can set and advance.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock at `now` seconds.
    pub fn new(now: u64) -> Self {
        Self(std::sync::atomic::AtomicU64::new(now))
    }

    /// Moves the clock forward.
    pub fn advance(&self, seconds: u64) {
        self.0
            .fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A boxed sleep future.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Sleeps, so policy timeouts can be enforced (hosts pass e.g. `tokio::time::sleep`).
///
/// Without a timer the engine still measures how long each policy took and treats
/// one that overran its binding's `timeout` as failed, but cannot interrupt it.
pub trait Timer: Send + Sync {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;
}

impl<F> Timer for F
where
    F: Fn(Duration) -> Sleep + Send + Sync,
{
    fn sleep(&self, duration: Duration) -> Sleep {
        self(duration)
    }
}

/// Polls `work` and `deadline` together; `None` when the deadline wins.
pub(crate) async fn race<T>(
    work: Pin<Box<dyn Future<Output = T> + Send + '_>>,
    deadline: Sleep,
) -> Option<T> {
    struct Race<'a, T> {
        work: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
        deadline: Sleep,
    }
    impl<T> Future for Race<'_, T> {
        type Output = Option<T>;
        fn poll(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            if let std::task::Poll::Ready(v) = self.work.as_mut().poll(cx) {
                return std::task::Poll::Ready(Some(v));
            }
            if self.deadline.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(None);
            }
            std::task::Poll::Pending
        }
    }
    Race { work, deadline }.await
}
