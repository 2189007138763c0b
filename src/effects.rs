//! Side effects of a step, applied exactly once: the engine's outbox.
//!
//! Stages do not write users, emit events or grant rewards while they run. They
//! describe what they want done as [`Effect`]s in [`Effects`], and the engine applies
//! them **once, after the session's compare-and-swap save succeeded**. A save that
//! conflicts with a concurrent request retries the whole step on fresh state: the
//! stages run again and describe their effects again, and only the attempt that
//! committed is applied. So a conflict after user write cannot create the user twice
//! (or answer "Username is already taken." to its own enrollment), and two concurrent
//! submits of one response advance the flow once. All writes to the user directory
//! made by flows are in this module.
//!
//! Reads later in the same step see the pending writes: [`Effects::pending_user`]
//! (used by [`StageContext::pending_user_record`](crate::stages::StageContext::pending_user_record))
//! answers a user created in this step from its pre-drawn id, an updated one with its
//! new fields and a deleted one as gone. Checks that must hold at write time (a
//! username not taken) are made by the stage before it returns the effect; the
//! directory checks again atomically with the write.
//!
//! Penalties are the exception (the step's journal): a password check is counted by the
//! throttle *before* the password is evaluated (see [`crate::throttle`]), so concurrent
//! guesses cannot all pass the check first, and a failed identification lowers the
//! reputation at once, so a reputation policy later in the same request (or in a
//! concurrent one) sees it. These writes are journalled in the step's [`Effects`] and
//! carried into a retry, which finds them instead of making them again: one guess is
//! counted once. Rewards (clearing the throttle, the login's reputation point) are
//! effects applied after the commit; a step that never commits leaves its penalties
//! made (fail closed).
//!
//! # When applying fails after the commit
//!
//! Effects are applied in order. The first directory write that fails (a concurrent
//! enrollment took the username after the stage checked it; the directory is
//! unavailable) stops the rest: later effects and the step's login are not applied.
//! The engine then undoes the login and drops the flow's plan in the session it just
//! saved, and answers `ak-stage-access-denied` with the directory's message (for
//! example "Username is already taken."). The session is never logged in as a user
//! that does not exist (should that undo fail too, the request fails with the store
//! error, and the next request finds the session's user missing and ends its login).
//! Reputation, throttle and event effects cannot fail the step: an error there is
//! reported as a `system_exception` event and the rest is applied. A full hashing pool
//! (the password is hashed by the directory's write) answers "Too many logins at once,
//! try again"; the flow then starts over.

use crate::env::{Env, Services};
use crate::events::{Event, EventAction};
use crate::model::UserId;
use crate::plan::SessionId;
use crate::secret::Password;
use crate::store::{
    Device, DeviceUse, Invitation, NewUser, StoreError, User, UserAdmin, operation,
};
use crate::throttle::{self, Reservation, Reservations};

/// The denial of an enrollment whose single-use invitation another one consumed.
pub const INVITATION_USED: &str = "This invitation has already been used.";

/// One write a stage asks for, applied after the session was saved.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Effect {
    /// Create this user. `pk` is drawn up front (from the engine's
    /// [`Random`](crate::random::Random)) so later stages of the same step can name it.
    CreateUser(NewUser),
    /// Replace this user's fields (not the password).
    UpdateUser(User),
    /// Set a user's password.
    SetPassword {
        /// The user.
        user: UserId,
        /// The new password.
        password: Password,
    },
    /// Delete a user.
    DeleteUser(UserId),
    /// Change the reputation of an IP and/or username by `delta`.
    AdjustReputation {
        /// The client IP, if known.
        ip: Option<String>,
        /// The username.
        username: Option<String>,
        /// The change (−1 for a failure, +1 for a login).
        delta: i64,
    },
    /// A successful password check: clear the throttle's counter for this IP and
    /// identifier, give the reservation's hit back, make the IP familiar.
    ThrottleSuccess {
        /// The client IP, if known.
        ip: Option<String>,
        /// The identifier as typed.
        identifier: String,
        /// The check's reservation.
        reservation: Reservation,
    },
    /// Emit an audit event.
    Emit(Event),
    /// Store a new MFA device (a setup stage finished). A duplicate id or WebAuthn
    /// credential fails the step like a directory write.
    AddDevice(Device),
    /// Consume a single-use invitation (queued by user write just before the account's
    /// [`Effect::CreateUser`]): removed atomically
    /// ([`InvitationStore::consume`](crate::store::InvitationStore::consume)); when
    /// another enrollment consumed it first the step fails like a directory write
    /// ("This invitation has already been used.") and the account is not created.
    /// Put back if a later write of the step fails.
    ConsumeInvitation(Invitation),
}

/// What the stages of one step ask for: session changes (login, logout) the engine
/// makes in the state it saves, and [`Effect`]s it applies once after the save.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// Log this user in (rotates the session id).
    pub login: Option<UserId>,
    /// Login lifetime in seconds (`None`: browser session).
    pub login_duration: Option<u64>,
    /// Log the current user out (rotates the session id).
    pub logout: bool,
    /// With `login`: end the user's other sessions (`terminate_other_sessions`).
    pub terminate_other_sessions: bool,
    /// Writes applied in order after the session was saved.
    pub writes: Vec<Effect>,
    /// Writes that belong to `login` (its event, its reputation point): applied after
    /// `writes`, and dropped when the login is ([`Effects::cancel_login`]).
    pub login_writes: Vec<Effect>,
    /// Writes this step made before its save (kept across conflict retries).
    pub(crate) journal: Journal,
}

impl Effects {
    /// Queues a write.
    pub fn push(&mut self, effect: Effect) {
        self.writes.push(effect);
    }

    /// Queues an audit event.
    pub fn emit(&mut self, event: Event) {
        self.writes.push(Effect::Emit(event));
    }

    /// Drops the login this step asked for, with its writes.
    pub fn cancel_login(&mut self) {
        self.login = None;
        self.login_duration = None;
        self.terminate_other_sessions = false;
        self.login_writes.clear();
    }

    /// The user `pk` as this step's pending writes leave it: `Some(Some(user))` when
    /// created or updated in this step, `Some(None)` when deleted, `None` when this step
    /// did not touch it (ask the directory).
    pub fn pending_user(&self, pk: &UserId) -> Option<Option<User>> {
        self.writes.iter().rev().find_map(|e| match e {
            Effect::CreateUser(new) if new.pk.as_ref() == Some(pk) => {
                Some(record_of(new, pk.clone()))
            }
            Effect::UpdateUser(u) if &u.pk == pk => Some(Some(u.clone())),
            Effect::DeleteUser(p) if p == pk => Some(None),
            _ => None,
        })
    }

    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.login_writes.is_empty()
    }
}

/// The writes a step makes *before* its save, because they must be effective under
/// concurrency and visible to later stages of the same step: throttle hits (see
/// [`crate::throttle`]) and reputation penalties for failed or unverified
/// identifications (a reputation policy later in the same request, or in a concurrent
/// one, must see them). The engine keeps the journal across the compare-and-swap
/// retries of one step, and a retried stage finds its earlier write here instead of
/// making it again: one guess, one count. A step that never commits leaves them made
/// (fail closed). Rewards (the login's reputation point, clearing the throttle) are
/// [`Effect`]s, applied only after the commit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Journal {
    /// Throttle checks counted in this step.
    pub(crate) reservations: Reservations,
    /// Reputation penalties made in this step: (IP, username).
    penalties: Vec<(Option<String>, String)>,
    /// Penalties of earlier attempts not yet met again in this attempt.
    replay: Vec<(Option<String>, String)>,
    /// MFA device uses recorded in this step: (device id, use).
    device_uses: Vec<(String, DeviceUse)>,
    /// Device uses of earlier attempts not yet met again in this attempt.
    device_replay: Vec<(String, DeviceUse)>,
    /// MFA code checks counted in this step (their throttle keys).
    pub(crate) mfa_checks: Vec<String>,
    /// MFA code checks of earlier attempts not yet met again in this attempt.
    pub(crate) mfa_replay: Vec<String>,
    /// Mails sent in this step (the email stage).
    pub(crate) mails: crate::mail::SentMails,
}

impl Journal {
    /// Starts another attempt of the step: its penalties are met again, not made again.
    pub(crate) fn retry(&mut self) {
        self.replay = self.penalties.clone();
        self.device_replay = self.device_uses.clone();
        self.mfa_replay = self.mfa_checks.clone();
        self.mails.retry();
    }
}

/// Checks and records one use of `user`'s MFA device `id` **now** (before the step's
/// save, atomically in the store: a code is never accepted twice, even by two
/// concurrent requests), unless an earlier attempt of this step already recorded the
/// same use — then it counts as accepted again, so a retried step does not find its
/// own code spent. Returns whether the use was accepted.
pub(crate) async fn use_device(
    env: &Services,
    effects: &mut Effects,
    user: &UserId,
    id: &str,
    use_: DeviceUse,
) -> Result<bool, StoreError> {
    let journal = &mut effects.journal;
    if let Some(i) = journal
        .device_replay
        .iter()
        .position(|(d, u)| d == id && *u == use_)
    {
        journal.device_replay.remove(i);
        return Ok(true);
    }
    let now = env.clock.now();
    let accepted = env.devices.record_use(user, id, use_.clone(), now).await?;
    if accepted {
        journal.device_uses.push((id.to_owned(), use_));
    }
    Ok(accepted)
}

/// Lowers the reputation of the IP and `username` by one **now** (before the step's
/// save; see [`Journal`]), unless an earlier attempt of this step already did.
pub(crate) async fn penalize(
    env: &Services,
    effects: &mut Effects,
    ip: Option<&str>,
    username: &str,
) -> Result<(), StoreError> {
    let key = (ip.map(str::to_owned), username.to_owned());
    let journal = &mut effects.journal;
    if let Some(i) = journal.replay.iter().position(|k| *k == key) {
        journal.replay.remove(i);
        return Ok(());
    }
    env.reputation.adjust(ip, Some(username), -1).await?;
    journal.penalties.push(key);
    Ok(())
}

fn record_of(new: &NewUser, pk: UserId) -> Option<User> {
    Some(User {
        pk,
        username: new.username.clone(),
        name: new.name.clone(),
        email: new.email.clone(),
        is_active: new.is_active,
        path: new.path.clone(),
        user_type: new.user_type.clone(),
        attributes: new.attributes.clone(),
        groups: new.groups.clone(),
    })
}

/// A directory write that failed after the commit: what the client is told.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    /// The denial message.
    pub(crate) message: String,
}

/// Applies a committed step's effects (see the [module docs](self)): `Ok(Err(_))` when
/// a directory write failed (later effects and the login were not applied); `Err`
/// when ending the user's other sessions failed.
pub(crate) async fn apply(
    env: &Env,
    effects: &Effects,
    session: &SessionId,
) -> Result<Result<(), Failed>, StoreError> {
    for effect in &effects.writes {
        if let Err(failed) = apply_one(env, effect).await {
            restore_invitations(env, effects, effect).await;
            return Ok(Err(failed));
        }
    }
    let Some(user) = effects.login.clone() else {
        return Ok(Ok(()));
    };
    for effect in &effects.login_writes {
        if let Err(failed) = apply_one(env, effect).await {
            return Ok(Err(failed));
        }
    }
    if effects.terminate_other_sessions {
        // authentik's UserLoginStageView.do_login: the user's other sessions are
        // deleted once this one is logged in.
        env.sessions.delete_user_sessions(user, session).await?;
    }
    Ok(Ok(()))
}

/// Puts back the invitations consumed by the writes before `failed` (the step's
/// account was not created, so its invitation stays usable).
async fn restore_invitations(env: &Env, effects: &Effects, failed: &Effect) {
    for effect in &effects.writes {
        if std::ptr::eq(effect, failed) {
            break;
        }
        if let Effect::ConsumeInvitation(invitation) = effect {
            if let Err(e) = env.invitations.create(invitation.clone()).await {
                report(env, "invitation restore", &e);
            }
        }
    }
}

/// The directory's management, or the clear denial of a directory without it.
fn admin<'e>(env: &'e Env, op: &'static str) -> Result<&'e dyn UserAdmin, Failed> {
    env.users.admin().ok_or_else(|| Failed {
        message: StoreError::unsupported_message(op),
    })
}

/// The one place the engine writes to the user directory.
async fn apply_one(env: &Env, effect: &Effect) -> Result<(), Failed> {
    let directory = |e: StoreError, fallback: &str| Failed {
        message: match e {
            StoreError::Validation(v) => {
                let msg = v
                    .iter()
                    .flat_map(|(_, m)| m.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(" ");
                if msg.is_empty() { fallback.into() } else { msg }
            }
            // The hashing pool was full when the password was hashed for the write
            // (the executor's `BUSY` message).
            StoreError::Busy => "Too many logins at once, try again".into(),
            StoreError::Unsupported(op) => StoreError::unsupported_message(&op),
            _ => fallback.into(),
        },
    };
    const UPDATE: &str = "Failed to update user. Please try again later.";
    match effect {
        Effect::CreateUser(new) => admin(env, operation::CREATE_USER)?
            .create_user(new.clone())
            .await
            .map(|_| ())
            .map_err(|e| directory(e, UPDATE)),
        Effect::UpdateUser(user) => admin(env, operation::UPDATE_USER)?
            .update_user(user)
            .await
            .map_err(|e| directory(e, UPDATE)),
        Effect::SetPassword { user, password } => admin(env, operation::SET_PASSWORD)?
            .set_password(user.clone(), password)
            .await
            .map_err(|e| directory(e, UPDATE)),
        Effect::DeleteUser(pk) => {
            admin(env, operation::DELETE_USER)?
                .delete_user(pk.clone())
                .await
                .map_err(|e| directory(e, "Failed to delete user. Please try again later."))?;
            if let Err(e) = env.devices.remove_all(pk).await {
                report(env, "device removal", &e);
            }
            Ok(())
        }
        Effect::AddDevice(device) => env.devices.add(device.clone()).await.map_err(|e| {
            directory(
                e,
                "Failed to save the authenticator. Please try again later.",
            )
        }),
        Effect::ConsumeInvitation(invitation) => {
            match env
                .invitations
                .consume(invitation.pk, env.clock.now())
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(Failed {
                    message: INVITATION_USED.into(),
                }),
                Err(e) => Err(directory(
                    e,
                    "Failed to use the invitation. Please try again later.",
                )),
            }
        }
        Effect::AdjustReputation {
            ip,
            username,
            delta,
        } => {
            if let Err(e) = env
                .reputation
                .adjust(ip.as_deref(), username.as_deref(), *delta)
                .await
            {
                report(env, "reputation", &e);
            }
            Ok(())
        }
        Effect::ThrottleSuccess {
            ip,
            identifier,
            reservation,
        } => {
            if let Err(e) =
                throttle::record_success(env, ip.as_deref(), identifier, reservation).await
            {
                report(env, "throttle", &e);
            }
            Ok(())
        }
        Effect::Emit(event) => {
            env.events.emit(event.clone());
            Ok(())
        }
    }
}

/// An effect that could not be applied after the commit and does not fail the step.
fn report(env: &Env, what: &str, e: &StoreError) {
    env.events.emit(
        Event::new(EventAction::SystemException)
            .with("stage", "effects")
            .with("message", format!("{what} update after commit failed: {e}")),
    );
}
