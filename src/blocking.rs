//! Where CPU-heavy work runs: password hashing (verify, hash, rehash).
//!
//! The core has no runtime, so by default ([`Inline`]) the work runs on the caller, as
//! before. An async host gives the engine a bounded pool through
//! [`EngineBuilder::blocking`](crate::EngineBuilder::blocking); the `http` feature
//! ships one ([`http::HashPool`](crate::http::HashPool): a fixed number of dedicated
//! threads and a bounded queue). With a pool, the engine runs every password call of
//! the [`UserDirectory`] and its [`UserAdmin`] (`verify_password`, `set_password`,
//! `create_user` with a password) on it; a full queue answers [`StoreError::Busy`], which the flow executor
//! turns into the challenge error "Too many logins at once, try again" (never a 5xx).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::model::{GroupId, UserField, UserId};
use crate::secret::Password;
use crate::store::{Group, NewUser, StoreError, User, UserAdmin, UserDirectory, operation};

/// A unit of work for a [`Blocking`] pool: a future that may run CPU-heavy code
/// without yielding. It must be driven to completion (or dropped unstarted).
pub type BlockingJob = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The pool refused a job: it is at its bound. Nothing of the job ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the blocking pool is full")]
pub struct PoolBusy;

/// Runs CPU-heavy jobs away from the caller's async workers, with bounded concurrency.
#[async_trait]
pub trait Blocking: Send + Sync {
    /// Runs `job` to completion, or refuses it at once when the pool is full.
    async fn run(&self, job: BlockingJob) -> Result<(), PoolBusy>;
}

/// The default: runs the job on the caller (no runtime needed, never busy).
#[derive(Debug, Default, Clone, Copy)]
pub struct Inline;

#[async_trait]
impl Blocking for Inline {
    async fn run(&self, job: BlockingJob) -> Result<(), PoolBusy> {
        job.await;
        Ok(())
    }
}

/// Runs `f` on `pool` and returns its output.
async fn on_pool<T, F>(pool: &dyn Blocking, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let slot = Arc::new(Mutex::new(None));
    let out = slot.clone();
    pool.run(Box::pin(async move {
        let r = f.await;
        if let Ok(mut o) = out.lock() {
            *o = Some(r);
        }
    }))
    .await
    .map_err(|PoolBusy| StoreError::Busy)?;
    let r = slot.lock().ok().and_then(|mut o| o.take());
    r.unwrap_or_else(|| {
        Err(StoreError::Unavailable(
            "blocking job did not finish".into(),
        ))
    })
}

/// A [`UserDirectory`] whose password calls run on a [`Blocking`] pool; everything
/// else goes straight to the inner directory. It offers [`UserAdmin`] when the inner
/// directory does.
/// [`EngineBuilder::blocking`](crate::EngineBuilder::blocking) wraps the engine's
/// directory in one.
pub struct PooledUsers {
    inner: Arc<dyn UserDirectory>,
    pool: Arc<dyn Blocking>,
}

impl PooledUsers {
    /// Wraps `inner`, running its password work on `pool`.
    pub fn new(inner: Arc<dyn UserDirectory>, pool: Arc<dyn Blocking>) -> Self {
        Self { inner, pool }
    }
}

#[async_trait]
impl UserDirectory for PooledUsers {
    async fn user(&self, pk: UserId) -> Result<Option<User>, StoreError> {
        self.inner.user(pk).await
    }
    async fn find_user(
        &self,
        field: UserField,
        value: &str,
        case_insensitive: bool,
    ) -> Result<Option<User>, StoreError> {
        self.inner.find_user(field, value, case_insensitive).await
    }
    async fn verify_password(
        &self,
        user: Option<UserId>,
        password: &Password,
    ) -> Result<bool, StoreError> {
        let inner = self.inner.clone();
        let password = password.clone();
        on_pool(self.pool.as_ref(), async move {
            inner.verify_password(user, &password).await
        })
        .await
    }
    async fn group(&self, pk: GroupId) -> Result<Option<Group>, StoreError> {
        self.inner.group(pk).await
    }
    async fn find_group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        self.inner.find_group(name).await
    }
    async fn groups_of(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
        self.inner.groups_of(user).await
    }

    fn admin(&self) -> Option<&dyn UserAdmin> {
        self.inner.admin().map(|_| self as &dyn UserAdmin)
    }
}

#[async_trait]
impl UserAdmin for PooledUsers {
    async fn set_password(&self, user: UserId, password: &Password) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let password = password.clone();
        on_pool(self.pool.as_ref(), async move {
            inner
                .require_admin(operation::SET_PASSWORD)?
                .set_password(user, &password)
                .await
        })
        .await
    }
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let admin = self.inner.require_admin(operation::CREATE_USER)?;
        if user.password.is_none() {
            return admin.create_user(user).await;
        }
        let inner = self.inner.clone();
        on_pool(self.pool.as_ref(), async move {
            inner
                .require_admin(operation::CREATE_USER)?
                .create_user(user)
                .await
        })
        .await
    }
    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        self.inner
            .require_admin(operation::UPDATE_USER)?
            .update_user(user)
            .await
    }
    async fn delete_user(&self, pk: UserId) -> Result<bool, StoreError> {
        self.inner
            .require_admin(operation::DELETE_USER)?
            .delete_user(pk)
            .await
    }
    async fn put_group(&self, group: Group) -> Result<(), StoreError> {
        self.inner
            .require_admin(operation::PUT_GROUP)?
            .put_group(group)
            .await
    }
}
