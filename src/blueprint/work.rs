//! The working copy an import builds its result on: every flow object of the target
//! store (mirrored in a [`Catalogue`] that validates each change with the rules every
//! flow store shares), the prompt definitions found in prompt stages, and an overlay
//! over the user directory. Changes are recorded as [`Op`]s and written to the real
//! stores only once the whole file has been applied here.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

pub(crate) use crate::catalogue::Op as FlowOp;
use crate::catalogue::{Catalogue, CatalogueSnapshot};
use crate::model::{
    BindingId, BindingTarget, Flow, FlowId, FlowStageBinding, GroupId, Policy, PolicyBinding,
    PolicyBindingId, PolicyId, Prompt, PromptId, Stage, StageConfig, StageId, UserField, UserId,
};
use crate::secret::Password;
use crate::store::{FlowStore, Group, StoreError, User, UserDirectory, operation};

/// One change to the stores: a flow-catalogue [`FlowOp`] or a user-directory change.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Flow(FlowOp),
    PutGroup(Group),
    CreateUser {
        user: User,
        password: Option<Password>,
        hash: Option<String>,
    },
    UpdateUser(User),
    SetPassword(UserId, Password),
    SetHash(User, String),
    DeleteUser(UserId),
}

impl Op {
    /// The [`UserAdmin`](crate::store::UserAdmin) operation this op needs (`None` for
    /// flow-catalogue ops).
    fn directory_operation(&self) -> Option<&'static str> {
        Some(match self {
            Op::Flow(_) => return None,
            Op::PutGroup(_) => operation::PUT_GROUP,
            Op::CreateUser { .. } => operation::CREATE_USER,
            Op::UpdateUser(_) | Op::SetHash(..) => operation::UPDATE_USER,
            Op::SetPassword(..) => operation::SET_PASSWORD,
            Op::DeleteUser(_) => operation::DELETE_USER,
        })
    }
}

/// Everything a [`FlowStore`] shows through its trait: the flows and what their
/// definitions reach (bound stages, bindings, enabled policy bindings, their policies
/// and the prompt stages' validation policies).
pub(crate) async fn snapshot(store: &dyn FlowStore) -> Result<CatalogueSnapshot, StoreError> {
    let mut c = CatalogueSnapshot::default();
    let mut stages = HashSet::new();
    let mut policies = HashSet::new();
    let mut pbs = HashSet::new();
    for flow in store.flows().await? {
        let Some(def) = store.flow(&flow.slug).await? else {
            continue;
        };
        c.flows.push(def.flow.clone());
        let mut add_pb = |rb: &crate::store::ResolvedBinding, c: &mut CatalogueSnapshot| {
            if pbs.insert(rb.binding.pk) {
                c.policy_bindings.push(rb.binding.clone());
            }
            if let Some(p) = &rb.policy {
                if policies.insert(p.pk) {
                    c.policies.push((**p).clone());
                }
            }
        };
        for rb in &def.policies {
            add_pb(rb, &mut c);
        }
        for bound in &def.stages {
            c.bindings.push(bound.binding.clone());
            if stages.insert(bound.stage.pk) {
                c.stages.push((*bound.stage).clone());
            }
            for rb in &bound.policies {
                add_pb(rb, &mut c);
            }
        }
        for p in def.validation_policies.values() {
            if policies.insert(p.pk) {
                c.policies.push((**p).clone());
            }
        }
    }
    Ok(c)
}

/// The import's view of the user directory: what it looked up, plus its own changes.
#[derive(Default)]
pub(crate) struct UserOverlay {
    users: HashMap<UserId, Option<User>>,
    /// Lower-cased username → user (None: known not to exist).
    names: HashMap<String, Option<UserId>>,
    groups: HashMap<GroupId, Option<Group>>,
    group_names: HashMap<String, Option<GroupId>>,
}

impl UserOverlay {
    fn remember_user(&mut self, user: &User) {
        self.names
            .insert(user.username.to_lowercase(), Some(user.pk.clone()));
        self.users.insert(user.pk.clone(), Some(user.clone()));
    }

    /// The user with this pk.
    pub async fn user(
        &mut self,
        dir: &dyn UserDirectory,
        pk: UserId,
    ) -> Result<Option<User>, StoreError> {
        if let Some(u) = self.users.get(&pk) {
            return Ok(u.clone());
        }
        let found = dir.user(pk.clone()).await?;
        match &found {
            Some(u) => self.remember_user(u),
            None => {
                self.users.insert(pk, None);
            }
        }
        Ok(found)
    }

    /// The user whose username equals `name` ASCII/Unicode case-insensitively.
    pub async fn user_by_name(
        &mut self,
        dir: &dyn UserDirectory,
        name: &str,
    ) -> Result<Option<User>, StoreError> {
        let key = name.to_lowercase();
        if let Some(entry) = self.names.get(&key) {
            return Ok(entry
                .as_ref()
                .and_then(|pk| self.users.get(pk).cloned().flatten()));
        }
        let found = dir.find_user(UserField::Username, name, true).await?;
        match &found {
            // The directory may know a newer version than our overlay does not.
            Some(u) => match self.users.get(&u.pk) {
                Some(ours) => return Ok(ours.clone()),
                None => self.remember_user(u),
            },
            None => {
                self.names.insert(key, None);
            }
        }
        Ok(found)
    }

    /// The user with this email.
    pub async fn user_by_email(
        &mut self,
        dir: &dyn UserDirectory,
        email: &str,
    ) -> Result<Option<User>, StoreError> {
        if let Some(u) = self
            .users
            .values()
            .flatten()
            .find(|u| !u.email.is_empty() && u.email == email)
        {
            return Ok(Some(u.clone()));
        }
        match dir.find_user(UserField::Email, email, false).await? {
            Some(u) => match self.users.get(&u.pk) {
                Some(ours) => Ok(ours.clone().filter(|o| o.email == email)),
                None => {
                    self.remember_user(&u);
                    Ok(Some(u))
                }
            },
            None => Ok(None),
        }
    }

    /// The group with this pk.
    pub async fn group(
        &mut self,
        dir: &dyn UserDirectory,
        pk: GroupId,
    ) -> Result<Option<Group>, StoreError> {
        if let Some(g) = self.groups.get(&pk) {
            return Ok(g.clone());
        }
        let found = dir.group(pk).await?;
        if let Some(g) = &found {
            self.group_names.insert(g.name.clone(), Some(g.pk));
        }
        self.groups.insert(pk, found.clone());
        Ok(found)
    }

    /// The group with this name.
    pub async fn group_by_name(
        &mut self,
        dir: &dyn UserDirectory,
        name: &str,
    ) -> Result<Option<Group>, StoreError> {
        if let Some(entry) = self.group_names.get(name) {
            return Ok(entry.and_then(|pk| self.groups.get(&pk).cloned().flatten()));
        }
        let found = dir.find_group(name).await?;
        match &found {
            Some(g) => match self.groups.get(&g.pk) {
                Some(ours) => return Ok(ours.clone()),
                None => {
                    self.groups.insert(g.pk, Some(g.clone()));
                    self.group_names.insert(name.to_owned(), Some(g.pk));
                }
            },
            None => {
                self.group_names.insert(name.to_owned(), None);
            }
        }
        Ok(found)
    }

    fn put_user(&mut self, user: &User) {
        if let Some(Some(old)) = self.users.get(&user.pk) {
            let old = old.username.to_lowercase();
            self.names.insert(old, None);
        }
        self.remember_user(user);
    }

    fn put_group(&mut self, group: &Group) {
        if let Some(Some(old)) = self.groups.get(&group.pk) {
            let old = old.name.clone();
            self.group_names.insert(old, None);
        }
        self.group_names.insert(group.name.clone(), Some(group.pk));
        self.groups.insert(group.pk, Some(group.clone()));
    }

    fn delete_user(&mut self, pk: UserId) {
        if let Some(Some(old)) = self.users.get(&pk) {
            let old = old.username.to_lowercase();
            self.names.insert(old, None);
        }
        self.users.insert(pk, None);
    }
}

/// The working copy of one import.
pub(crate) struct Work {
    scratch: Catalogue,
    pub flows: IndexMap<FlowId, Flow>,
    pub stages: IndexMap<StageId, Stage>,
    pub bindings: IndexMap<BindingId, FlowStageBinding>,
    pub policies: IndexMap<PolicyId, Policy>,
    pub policy_bindings: IndexMap<PolicyBindingId, PolicyBinding>,
    /// Prompt definitions: those embedded in prompt stages plus this import's.
    pub prompts: IndexMap<PromptId, Prompt>,
    flow_by_slug: HashMap<String, FlowId>,
    stage_by_name: HashMap<String, StageId>,
    policy_by_name: HashMap<String, PolicyId>,
    pub users: UserOverlay,
    pub ops: Vec<Op>,
}

impl Work {
    /// A working copy of `base`.
    pub fn new(base: CatalogueSnapshot) -> Self {
        let scratch = Catalogue::from_snapshot(base.clone());
        let mut w = Self {
            scratch,
            flows: IndexMap::new(),
            stages: IndexMap::new(),
            bindings: IndexMap::new(),
            policies: IndexMap::new(),
            policy_bindings: IndexMap::new(),
            prompts: IndexMap::new(),
            flow_by_slug: HashMap::new(),
            stage_by_name: HashMap::new(),
            policy_by_name: HashMap::new(),
            users: UserOverlay::default(),
            ops: Vec::new(),
        };
        w.load(base);
        w
    }

    fn load(&mut self, c: CatalogueSnapshot) {
        self.flows = c.flows.into_iter().map(|f| (f.pk, f)).collect();
        self.stages = c.stages.into_iter().map(|s| (s.pk, s)).collect();
        self.bindings = c.bindings.into_iter().map(|b| (b.pk, b)).collect();
        self.policies = c.policies.into_iter().map(|p| (p.pk, p)).collect();
        self.policy_bindings = c.policy_bindings.into_iter().map(|b| (b.pk, b)).collect();
        self.flow_by_slug = self
            .flows
            .values()
            .map(|f| (f.slug.clone(), f.pk))
            .collect();
        self.stage_by_name = self
            .stages
            .values()
            .map(|s| (s.name.clone(), s.pk))
            .collect();
        self.policy_by_name = self
            .policies
            .values()
            .map(|p| (p.name.clone(), p.pk))
            .collect();
        for stage in self.stages.values() {
            if let StageConfig::Prompt(p) = &stage.config {
                for field in &p.fields {
                    self.prompts
                        .entry(field.pk)
                        .or_insert_with(|| field.clone());
                }
            }
        }
    }

    /// Re-reads everything from the scratch store (after deletes, which cascade).
    fn resync(&mut self) {
        let prompts = std::mem::take(&mut self.prompts);
        let c = self.scratch.snapshot();
        self.load(c);
        for (pk, p) in prompts {
            self.prompts.insert(pk, p);
        }
    }

    pub fn flow_by_slug(&self, slug: &str) -> Option<&Flow> {
        self.flow_by_slug
            .get(slug)
            .and_then(|pk| self.flows.get(pk))
    }

    pub fn stage_by_name(&self, name: &str) -> Option<&Stage> {
        self.stage_by_name
            .get(name)
            .and_then(|pk| self.stages.get(pk))
    }

    pub fn policy_by_name(&self, name: &str) -> Option<&Policy> {
        self.policy_by_name
            .get(name)
            .and_then(|pk| self.policies.get(pk))
    }

    /// The policy-binding target with this id: a flow or a flow-stage binding, by its
    /// pk or its `policybindingmodel_ptr_id`.
    pub fn binding_target(&self, id: uuid::Uuid) -> Option<BindingTarget> {
        let flow = FlowId::from_uuid(id);
        if self.flows.contains_key(&flow) {
            return Some(BindingTarget::Flow(flow));
        }
        let binding = BindingId::from_uuid(id);
        if self.bindings.contains_key(&binding) {
            return Some(BindingTarget::Stage(binding));
        }
        if let Some(f) = self
            .flows
            .values()
            .find(|f| f.policybindingmodel_ptr_id == id)
        {
            return Some(BindingTarget::Flow(f.pk));
        }
        self.bindings
            .values()
            .find(|b| b.policybindingmodel_ptr_id == id)
            .map(|b| BindingTarget::Stage(b.pk))
    }

    /// Applies one change here (validated like the memory store does) and records it.
    pub async fn apply(&mut self, dir: &dyn UserDirectory, op: Op) -> Result<(), String> {
        self.apply_op(dir, op, true).await
    }

    /// Applies changes another import already wrote to the stores, without recording
    /// them as this import's.
    pub async fn replay(&mut self, dir: &dyn UserDirectory, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            self.apply_op(dir, op.clone(), false).await?;
        }
        Ok(())
    }

    /// Mirrors a flow change the catalogue accepted in the indexed copies.
    fn track(&mut self, op: &FlowOp) {
        match op {
            FlowOp::PutFlow(f) => {
                if let Some(old) = self.flows.get(&f.pk) {
                    let old = old.slug.clone();
                    self.flow_by_slug.remove(&old);
                }
                self.flow_by_slug.insert(f.slug.clone(), f.pk);
                self.flows.insert(f.pk, f.clone());
            }
            FlowOp::PutStage(s) => {
                if let Some(old) = self.stages.get(&s.pk) {
                    let old = old.name.clone();
                    self.stage_by_name.remove(&old);
                }
                self.stage_by_name.insert(s.name.clone(), s.pk);
                self.stages.insert(s.pk, s.clone());
            }
            FlowOp::PutBinding(b) => {
                self.bindings.insert(b.pk, b.clone());
            }
            FlowOp::PutPolicy(p) => {
                if let Some(old) = self.policies.get(&p.pk) {
                    let old = old.name.clone();
                    self.policy_by_name.remove(&old);
                }
                self.policy_by_name.insert(p.name.clone(), p.pk);
                self.policies.insert(p.pk, p.clone());
            }
            FlowOp::PutPolicyBinding(b) => {
                self.policy_bindings.insert(b.pk, b.clone());
            }
            FlowOp::DeleteFlow(_)
            | FlowOp::DeleteStage(_)
            | FlowOp::DeleteBinding(_)
            | FlowOp::DeletePolicy(_) => self.resync(),
            FlowOp::DeletePolicyBinding(pk) => {
                self.policy_bindings.shift_remove(pk);
            }
        }
    }

    async fn apply_op(
        &mut self,
        dir: &dyn UserDirectory,
        op: Op,
        record: bool,
    ) -> Result<(), String> {
        let err = |e: StoreError| match e {
            StoreError::Validation(v) => v.to_string(),
            other => other.to_string(),
        };
        // A directory without management refuses every user or group entry before
        // anything is written.
        if let Some(operation) = op.directory_operation() {
            if dir.admin().is_none() {
                return Err(StoreError::unsupported_message(operation));
            }
        }
        match &op {
            Op::Flow(fop) => {
                self.scratch.apply(fop.clone()).map_err(err)?;
                self.track(fop);
            }
            Op::PutGroup(g) => {
                if let Some(other) = self.users.group_by_name(dir, &g.name).await.map_err(err)? {
                    if other.pk != g.pk {
                        return Err(format!("a group named `{}` already exists", g.name));
                    }
                }
                self.users.put_group(g);
            }
            Op::CreateUser { user, .. } | Op::UpdateUser(user) | Op::SetHash(user, _) => {
                if let Some(other) = self
                    .users
                    .user_by_name(dir, &user.username)
                    .await
                    .map_err(err)?
                {
                    if other.pk != user.pk {
                        return Err(format!(
                            "the username `{}` is already taken by `{}`",
                            user.username, other.username
                        ));
                    }
                }
                self.users.put_user(user);
            }
            Op::SetPassword(..) => {}
            Op::DeleteUser(pk) => self.users.delete_user(pk.clone()),
        }
        if record {
            self.ops.push(op);
        }
        Ok(())
    }
}
