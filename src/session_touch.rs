//! Keeping an active user logged in: reads of a logged-in session refresh its idle
//! expiry.
//!
//! Session stores expire a session that has not been *saved* for their idle TTL
//! (24 h by default, [`MemorySessionStore`](crate::memory::MemorySessionStore) and the
//! Redis store alike). Flows save the session, but a user who only uses the host's own
//! routes (which read it through [`Engine::session_user`](crate::Engine::session_user))
//! would be logged out 24 h after login however active. So such a read saves the
//! session again — the same state with [`SessionState::touched_at`] set, under the
//! same id (never rotated), compare-and-swap on the loaded version — when the last
//! touch (or the login) is at least [`TOUCH_INTERVAL`] seconds old: at most one write
//! per session per interval, not one per request.
//!
//! A touch is best effort: a conflict means another request saved the session just
//! now (which refreshed the expiry anyway), and a store error leaves the read's answer
//! unchanged; neither is retried nor reported.

use crate::plan::{SessionId, SessionState};
use crate::store::{SessionStore, Versioned};

/// Least number of seconds between two touches of one session (60).
pub const TOUCH_INTERVAL: u64 = 60;

/// Whether a session last touched (or logged in) as `state` says is due at `now`.
pub fn due(state: &SessionState, now: u64) -> bool {
    let last = state.touched_at.or(state.authenticated_at).unwrap_or(0);
    now.saturating_sub(last) >= TOUCH_INTERVAL
}

/// Saves `loaded` back with `touched_at = now` when [`due`]; errors are ignored (see
/// the module docs).
pub(crate) async fn touch(
    sessions: &dyn SessionStore,
    id: &SessionId,
    loaded: Versioned<SessionState>,
    now: u64,
) {
    let Versioned { mut value, version } = loaded;
    if !due(&value, now) {
        return;
    }
    value.touched_at = Some(now);
    // Ok, Conflict (someone else just saved it) and Unavailable alike: nothing to do.
    let _ = sessions.save(id, &value, Some(version)).await;
}
