//! Where an import writes: [`FlowTarget`] and [`UserTarget`].

use super::work::{FlowOp, Op, snapshot};
use crate::catalogue::CatalogueSnapshot;
use crate::memory::{MemoryFlowStore, MemoryUserDirectory};
use crate::store::{FlowStore, NewUser, StoreError, UserDirectory, operation};

/// The flow store an import writes to.
#[derive(Clone, Copy)]
pub enum FlowTarget<'a> {
    /// An in-memory store: the import sees every object in it.
    Memory(&'a MemoryFlowStore),
    /// Any other store: the import sees what the [`FlowStore`] trait shows — flows
    /// and what their definitions reach (bound stages, their bindings, enabled policy
    /// bindings and their policies). Objects it cannot see (a stage no flow uses, a
    /// disabled policy binding) are written again on every apply — with the same pk,
    /// derived from the entry's identifiers, so they are replaced, not duplicated —
    /// and an unseen object with the same unique name as a new one makes the write
    /// fail after validation ([`BlueprintError::Commit`](super::BlueprintError::Commit)).
    Store(&'a dyn FlowStore),
}

impl<'a> From<&'a MemoryFlowStore> for FlowTarget<'a> {
    fn from(s: &'a MemoryFlowStore) -> Self {
        FlowTarget::Memory(s)
    }
}

impl<'a> From<&'a dyn FlowStore> for FlowTarget<'a> {
    fn from(s: &'a dyn FlowStore) -> Self {
        FlowTarget::Store(s)
    }
}

impl<'a> FlowTarget<'a> {
    pub(super) fn store(&self) -> &'a dyn FlowStore {
        match *self {
            FlowTarget::Memory(m) => m,
            FlowTarget::Store(s) => s,
        }
    }

    pub(super) async fn catalogue(&self) -> Result<CatalogueSnapshot, StoreError> {
        match self {
            FlowTarget::Memory(m) => Ok(m.catalogue()),
            FlowTarget::Store(s) => snapshot(*s).await,
        }
    }
}

/// The user directory an import writes to.
#[derive(Clone, Copy)]
pub enum UserTarget<'a> {
    /// The in-memory directory: users may also bring a Django `pbkdf2_sha256$…` hash
    /// (`password_hash`).
    Memory(&'a MemoryUserDirectory),
    /// Any other directory: passwords only in clear (`password`), hashed by it.
    Directory(&'a dyn UserDirectory),
}

impl<'a> From<&'a MemoryUserDirectory> for UserTarget<'a> {
    fn from(s: &'a MemoryUserDirectory) -> Self {
        UserTarget::Memory(s)
    }
}

impl<'a> From<&'a dyn UserDirectory> for UserTarget<'a> {
    fn from(s: &'a dyn UserDirectory) -> Self {
        UserTarget::Directory(s)
    }
}

impl<'a> UserTarget<'a> {
    pub(super) fn dir(&self) -> &'a dyn UserDirectory {
        match *self {
            UserTarget::Memory(m) => m,
            UserTarget::Directory(d) => d,
        }
    }
}

/// Writes one validated change to the real stores. Changes of users and groups need
/// the directory's [`UserAdmin`](crate::store::UserAdmin) (else
/// [`StoreError::Unsupported`]; the importer refuses such entries before writing).
pub(super) async fn write(
    flows: &dyn FlowStore,
    users: UserTarget<'_>,
    op: Op,
) -> Result<(), StoreError> {
    let dir = users.dir();
    match op {
        Op::Flow(FlowOp::PutFlow(x)) => flows.put_flow(x).await,
        Op::Flow(FlowOp::DeleteFlow(slug)) => flows.delete_flow(&slug).await.map(|_| ()),
        Op::Flow(FlowOp::PutStage(x)) => flows.put_stage(x).await,
        Op::Flow(FlowOp::DeleteStage(pk)) => flows.delete_stage(pk).await.map(|_| ()),
        Op::Flow(FlowOp::PutBinding(x)) => flows.put_binding(x).await,
        Op::Flow(FlowOp::DeleteBinding(pk)) => flows.delete_binding(pk).await.map(|_| ()),
        Op::Flow(FlowOp::PutPolicy(x)) => flows.put_policy(x).await,
        Op::Flow(FlowOp::DeletePolicy(pk)) => flows.delete_policy(pk).await.map(|_| ()),
        Op::Flow(FlowOp::PutPolicyBinding(x)) => flows.put_policy_binding(x).await,
        Op::Flow(FlowOp::DeletePolicyBinding(pk)) => {
            flows.delete_policy_binding(pk).await.map(|_| ())
        }
        Op::PutGroup(g) => dir.require_admin(operation::PUT_GROUP)?.put_group(g).await,
        Op::CreateUser {
            user,
            password,
            hash,
        } => match (hash, users) {
            (Some(h), UserTarget::Memory(m)) => m.import_user(user, Some(h)),
            (Some(_), UserTarget::Directory(_)) => Err(StoreError::Unavailable(
                "this user directory cannot take password hashes".into(),
            )),
            (None, _) => dir
                .require_admin(operation::CREATE_USER)?
                .create_user(NewUser {
                    pk: Some(user.pk),
                    username: user.username,
                    name: user.name,
                    email: user.email,
                    is_active: user.is_active,
                    path: user.path,
                    user_type: user.user_type,
                    attributes: user.attributes,
                    groups: user.groups,
                    password,
                })
                .await
                .map(|_| ()),
        },
        Op::UpdateUser(u) => {
            dir.require_admin(operation::UPDATE_USER)?
                .update_user(&u)
                .await
        }
        Op::SetPassword(pk, p) => {
            dir.require_admin(operation::SET_PASSWORD)?
                .set_password(pk, &p)
                .await
        }
        Op::SetHash(user, h) => match users {
            UserTarget::Memory(m) => m.import_user(user, Some(h)),
            UserTarget::Directory(_) => Err(StoreError::Unavailable(
                "this user directory cannot take password hashes".into(),
            )),
        },
        Op::DeleteUser(pk) => dir
            .require_admin(operation::DELETE_USER)?
            .delete_user(pk)
            .await
            .map(|_| ()),
    }
}
