//! Where an import writes: [`FlowTarget`] and [`UserTarget`].

use super::work::snapshot;
use crate::catalogue::CatalogueSnapshot;
use crate::memory::{MemoryFlowStore, MemoryUserDirectory};
use crate::store::{FlowStore, StoreError, UserDirectory};

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
