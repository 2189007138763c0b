//! In-memory implementations of the storage traits: the embedded default for a
//! single process. Passwords are stored as real argon2id hashes.
//!
//! For several server instances, use a shared [`SessionStore`] (e.g. Redis) instead of
//! [`MemorySessionStore`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;

use crate::clock::{Clock, SystemClock};
use crate::hashing::{Argon2idHasher, PasswordHasher};
use crate::model::{
    BindingId, BindingSubject, BindingTarget, Flow, FlowId, FlowStageBinding, GroupId, Policy,
    PolicyBinding, PolicyBindingId, PolicyId, Stage, StageId, UserField, UserId, ValidationErrors,
};
use crate::plan::{SessionId, SessionState};
use crate::secret::Password;
use crate::store::{
    FlowDefinition, FlowStore, Group, NewUser, ReputationStore, SessionStore, StoreError,
    ThrottleCounter, ThrottleStore, User, UserDirectory, Versioned, canonical_identifier,
    validate_username,
};

fn poisoned() -> StoreError {
    StoreError::Unavailable("in-memory store lock poisoned".into())
}

/// All in-memory stores, ready to hand to [`Engine::builder`](crate::Engine::builder).
#[derive(Clone)]
pub struct Stores {
    /// Flows.
    pub flows: Arc<MemoryFlowStore>,
    /// Sessions.
    pub sessions: Arc<MemorySessionStore>,
    /// Users.
    pub users: Arc<MemoryUserDirectory>,
    /// Reputation.
    pub reputation: Arc<MemoryReputation>,
}

impl Stores {
    /// Empty stores with argon2id hashing and the system clock.
    pub fn new() -> Self {
        Self {
            flows: Arc::new(MemoryFlowStore::new()),
            sessions: Arc::new(MemorySessionStore::new()),
            users: Arc::new(MemoryUserDirectory::new()),
            reputation: Arc::new(MemoryReputation::new()),
        }
    }

    /// An engine builder over these stores.
    pub fn engine(&self) -> crate::EngineBuilder {
        crate::Engine::builder(
            self.flows.clone(),
            self.sessions.clone(),
            self.users.clone(),
        )
        .reputation(self.reputation.clone())
    }
}

impl Default for Stores {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------
// Flows

#[derive(Default)]
struct FlowData {
    flows: HashMap<FlowId, Flow>,
    stages: HashMap<StageId, Arc<Stage>>,
    bindings: HashMap<BindingId, FlowStageBinding>,
    policies: HashMap<PolicyId, Arc<Policy>>,
    policy_bindings: HashMap<PolicyBindingId, PolicyBinding>,
    revisions: HashMap<FlowId, u64>,
    counter: u64,
}

impl FlowData {
    fn bump(&mut self, flows: impl IntoIterator<Item = FlowId>) {
        for f in flows {
            self.counter += 1;
            self.revisions.insert(f, self.counter);
        }
    }

    fn bump_all(&mut self) {
        let all: Vec<FlowId> = self.flows.keys().copied().collect();
        self.bump(all);
    }

    fn flows_of_stage(&self, stage: StageId) -> Vec<FlowId> {
        self.bindings
            .values()
            .filter(|b| b.stage == stage)
            .map(|b| b.target)
            .collect()
    }

    fn flow_of_target(&self, target: BindingTarget) -> Option<FlowId> {
        match target {
            BindingTarget::Flow(f) => Some(f),
            BindingTarget::Stage(b) => self.bindings.get(&b).map(|b| b.target),
        }
    }

    fn by_slug(&self, slug: &str) -> Option<&Flow> {
        self.flows.values().find(|f| f.slug == slug)
    }
}

/// Flows, stages, bindings and policies in memory.
#[derive(Default)]
pub struct MemoryFlowStore {
    data: RwLock<FlowData>,
}

/// Every flow object of a store as one serialisable value (for shared stores and
/// backups). Host-defined (`Custom`) stages and policies cannot be serialised.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Catalogue {
    /// Flows.
    pub flows: Vec<Flow>,
    /// Stages.
    pub stages: Vec<Stage>,
    /// Flow-stage bindings.
    pub bindings: Vec<FlowStageBinding>,
    /// Policies.
    pub policies: Vec<Policy>,
    /// Policy bindings.
    pub policy_bindings: Vec<PolicyBinding>,
}

impl MemoryFlowStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding a catalogue (no validation: it came from a store).
    pub fn from_catalogue(c: Catalogue) -> Self {
        let mut d = FlowData {
            flows: c.flows.into_iter().map(|f| (f.pk, f)).collect(),
            ..FlowData::default()
        };
        d.stages = c.stages.into_iter().map(|s| (s.pk, Arc::new(s))).collect();
        d.bindings = c.bindings.into_iter().map(|b| (b.pk, b)).collect();
        d.policies = c
            .policies
            .into_iter()
            .map(|p| (p.pk, Arc::new(p)))
            .collect();
        d.policy_bindings = c.policy_bindings.into_iter().map(|b| (b.pk, b)).collect();
        Self {
            data: RwLock::new(d),
        }
    }

    /// A snapshot of every object, in a stable order.
    pub fn catalogue(&self) -> Catalogue {
        let Ok(d) = self.data.read() else {
            return Catalogue::default();
        };
        let mut c = Catalogue {
            flows: d.flows.values().cloned().collect(),
            stages: d.stages.values().map(|s| (**s).clone()).collect(),
            bindings: d.bindings.values().cloned().collect(),
            policies: d.policies.values().map(|p| (**p).clone()).collect(),
            policy_bindings: d.policy_bindings.values().cloned().collect(),
        };
        c.flows.sort_by(|a, b| a.slug.cmp(&b.slug));
        c.stages.sort_by_key(|s| s.pk);
        c.bindings.sort_by_key(|b| b.pk);
        c.policies.sort_by_key(|p| p.pk);
        c.policy_bindings.sort_by_key(|b| b.pk);
        c
    }

    /// A stage by id.
    pub fn stage(&self, pk: StageId) -> Option<Stage> {
        self.data
            .read()
            .ok()?
            .stages
            .get(&pk)
            .map(|s| (**s).clone())
    }

    /// The bindings of a flow, unordered.
    pub fn bindings_of(&self, flow: FlowId) -> Vec<FlowStageBinding> {
        self.data
            .read()
            .map(|d| {
                d.bindings
                    .values()
                    .filter(|b| b.target == flow)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl FlowStore for MemoryFlowStore {
    async fn flow(&self, slug: &str) -> Result<Option<FlowDefinition>, StoreError> {
        let d = self.data.read().map_err(|_| poisoned())?;
        let Some(flow) = d.by_slug(slug).cloned() else {
            return Ok(None);
        };
        let bindings: Vec<FlowStageBinding> = d
            .bindings
            .values()
            .filter(|b| b.target == flow.pk)
            .cloned()
            .collect();
        let pbs: Vec<PolicyBinding> = d.policy_bindings.values().cloned().collect();
        Ok(Some(FlowDefinition::assemble(
            flow,
            bindings,
            &d.stages,
            &pbs,
            &d.policies,
        )))
    }

    async fn revision(&self, slug: &str) -> Result<Option<u64>, StoreError> {
        let d = self.data.read().map_err(|_| poisoned())?;
        Ok(d.by_slug(slug)
            .map(|f| d.revisions.get(&f.pk).copied().unwrap_or(0)))
    }

    async fn flows(&self) -> Result<Vec<Flow>, StoreError> {
        let d = self.data.read().map_err(|_| poisoned())?;
        let mut flows: Vec<Flow> = d.flows.values().cloned().collect();
        flows.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(flows)
    }

    async fn put_flow(&self, flow: Flow) -> Result<(), StoreError> {
        flow.validate().map_err(StoreError::Validation)?;
        let mut d = self.data.write().map_err(|_| poisoned())?;
        if d.flows
            .values()
            .any(|f| f.slug == flow.slug && f.pk != flow.pk)
        {
            return Err(StoreError::Validation(ValidationErrors::field(
                "slug",
                "flow with this slug already exists.",
            )));
        }
        let pk = flow.pk;
        d.flows.insert(pk, flow);
        d.bump([pk]);
        Ok(())
    }

    async fn delete_flow(&self, slug: &str) -> Result<bool, StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let Some(pk) = d.by_slug(slug).map(|f| f.pk) else {
            return Ok(false);
        };
        d.flows.remove(&pk);
        let removed: Vec<BindingId> = d
            .bindings
            .values()
            .filter(|b| b.target == pk)
            .map(|b| b.pk)
            .collect();
        for b in &removed {
            d.bindings.remove(b);
        }
        d.policy_bindings.retain(|_, pb| match pb.target {
            BindingTarget::Flow(f) => f != pk,
            BindingTarget::Stage(b) => !removed.contains(&b),
        });
        d.revisions.remove(&pk);
        Ok(true)
    }

    async fn put_stage(&self, stage: Stage) -> Result<(), StoreError> {
        stage.validate().map_err(StoreError::Validation)?;
        if stage.name.trim().is_empty() {
            return Err(StoreError::Validation(ValidationErrors::field(
                "name",
                "This field may not be blank.",
            )));
        }
        let mut d = self.data.write().map_err(|_| poisoned())?;
        if d.stages
            .values()
            .any(|s| s.name == stage.name && s.pk != stage.pk)
        {
            return Err(StoreError::Validation(ValidationErrors::field(
                "name",
                "stage with this name already exists.",
            )));
        }
        let pk = stage.pk;
        d.stages.insert(pk, Arc::new(stage));
        let flows = d.flows_of_stage(pk);
        d.bump(flows);
        Ok(())
    }

    async fn delete_stage(&self, pk: StageId) -> Result<bool, StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let existed = d.stages.remove(&pk).is_some();
        let flows = d.flows_of_stage(pk);
        let removed: Vec<BindingId> = d
            .bindings
            .values()
            .filter(|b| b.stage == pk)
            .map(|b| b.pk)
            .collect();
        for b in &removed {
            d.bindings.remove(b);
        }
        d.policy_bindings
            .retain(|_, pb| !matches!(pb.target, BindingTarget::Stage(b) if removed.contains(&b)));
        d.bump(flows);
        Ok(existed)
    }

    async fn put_binding(&self, binding: FlowStageBinding) -> Result<(), StoreError> {
        binding.validate().map_err(StoreError::Validation)?;
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let mut errors = ValidationErrors::new();
        if !d.flows.contains_key(&binding.target) {
            errors.add(
                "target",
                format!("Invalid pk \"{}\" - object does not exist.", binding.target),
            );
        }
        if !d.stages.contains_key(&binding.stage) {
            errors.add(
                "stage",
                format!("Invalid pk \"{}\" - object does not exist.", binding.stage),
            );
        }
        errors.into_result().map_err(StoreError::Validation)?;
        let old = d
            .bindings
            .insert(binding.pk, binding.clone())
            .map(|b| b.target);
        d.bump(old.into_iter().chain([binding.target]));
        Ok(())
    }

    async fn delete_binding(&self, pk: BindingId) -> Result<bool, StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let Some(b) = d.bindings.remove(&pk) else {
            return Ok(false);
        };
        d.policy_bindings
            .retain(|_, pb| pb.target != BindingTarget::Stage(pk));
        d.bump([b.target]);
        Ok(true)
    }

    async fn put_policy(&self, policy: Policy) -> Result<(), StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        if d.policies
            .values()
            .any(|p| p.name == policy.name && p.pk != policy.pk)
        {
            return Err(StoreError::Validation(ValidationErrors::field(
                "name",
                "policy with this name already exists.",
            )));
        }
        d.policies.insert(policy.pk, Arc::new(policy));
        // Policies can be referenced from many places (bindings, prompt validation):
        // invalidate every flow; policy edits are rare.
        d.bump_all();
        Ok(())
    }

    async fn delete_policy(&self, pk: PolicyId) -> Result<bool, StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let existed = d.policies.remove(&pk).is_some();
        d.policy_bindings
            .retain(|_, pb| pb.subject != BindingSubject::Policy(pk));
        d.bump_all();
        Ok(existed)
    }

    async fn put_policy_binding(&self, binding: PolicyBinding) -> Result<(), StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let Some(flow) = d.flow_of_target(binding.target) else {
            return Err(StoreError::Validation(ValidationErrors::field(
                "target",
                "Invalid target - object does not exist.",
            )));
        };
        if let BindingSubject::Policy(p) = binding.subject {
            if !d.policies.contains_key(&p) {
                return Err(StoreError::Validation(ValidationErrors::field(
                    "policy",
                    format!("Invalid pk \"{p}\" - object does not exist."),
                )));
            }
        }
        let old = d
            .policy_bindings
            .insert(binding.pk, binding)
            .and_then(|b| d.flow_of_target(b.target));
        d.bump(old.into_iter().chain([flow]));
        Ok(())
    }

    async fn delete_policy_binding(&self, pk: PolicyBindingId) -> Result<bool, StoreError> {
        let mut d = self.data.write().map_err(|_| poisoned())?;
        let Some(b) = d.policy_bindings.remove(&pk) else {
            return Ok(false);
        };
        let flow = d.flow_of_target(b.target);
        d.bump(flow);
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------
// Sessions

struct Entry {
    state: SessionState,
    version: u64,
    touched: u64,
    created: u64,
}

/// Default [`MemorySessionStore`] capacity (sessions).
pub const DEFAULT_SESSION_CAPACITY: usize = 100_000;
/// A [`MemorySessionStore`] sweeps expired sessions every this many new sessions.
pub const SWEEP_EVERY: u64 = 1024;

struct Sessions {
    map: HashMap<SessionId, Entry>,
    /// Sessions saved with a user, per user. May name sessions that are gone or no
    /// longer logged in as that user (checked on use; pruned at every sweep).
    by_user: HashMap<UserId, HashSet<SessionId>>,
    /// New sessions since the last sweep.
    inserts: u64,
}

/// Sessions in memory, with compare-and-swap versions and idle/absolute expiry.
///
/// Memory is bounded without a background task:
/// - every [`SWEEP_EVERY`] new sessions (and whenever the store is full) a sweep drops
///   every expired session, so sessions that are never loaded again do not stay;
/// - at most `capacity` sessions are kept (default [`DEFAULT_SESSION_CAPACITY`]).
///   When a new session finds the store full, a batch of 1/64 of the capacity (at
///   least one) is evicted in this order: **anonymous sessions first** (no user, or
///   a login that has expired), least recently used first; **logged-in sessions only
///   when no anonymous one is left**, least recently used first. So a flood of
///   anonymous visitors can never log anyone out while an anonymous session remains.
pub struct MemorySessionStore {
    sessions: Mutex<Sessions>,
    clock: Arc<dyn Clock>,
    idle_ttl: u64,
    absolute_ttl: u64,
    capacity: usize,
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySessionStore {
    /// Sessions expire after 24 h idle or 30 days in all; at most
    /// [`DEFAULT_SESSION_CAPACITY`] are kept.
    pub fn new() -> Self {
        Self::with_expiry(Arc::new(SystemClock), 24 * 3600, 30 * 24 * 3600)
    }

    /// Custom clock and expiry (seconds).
    pub fn with_expiry(clock: Arc<dyn Clock>, idle_ttl: u64, absolute_ttl: u64) -> Self {
        Self {
            sessions: Mutex::new(Sessions {
                map: HashMap::new(),
                by_user: HashMap::new(),
                inserts: 0,
            }),
            clock,
            idle_ttl,
            absolute_ttl,
            capacity: DEFAULT_SESSION_CAPACITY,
        }
    }

    /// Keeps at most `capacity` sessions (at least 1); see the type's docs for the
    /// eviction order.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Number of stored (possibly expired) sessions.
    pub fn len(&self) -> usize {
        self.sessions.lock().map(|s| s.map.len()).unwrap_or(0)
    }

    /// True when no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired session now (also done automatically, see the type's docs).
    pub fn sweep(&self) {
        let now = self.clock.now();
        if let Ok(mut s) = self.sessions.lock() {
            self.sweep_locked(&mut s, now);
        }
    }

    fn expired(&self, e: &Entry, now: u64) -> bool {
        now.saturating_sub(e.touched) >= self.idle_ttl
            || now.saturating_sub(e.created) >= self.absolute_ttl
    }

    fn sweep_locked(&self, s: &mut Sessions, now: u64) {
        s.map.retain(|_, e| !self.expired(e, now));
        let Sessions { map, by_user, .. } = s;
        by_user.retain(|user, ids| {
            ids.retain(|id| map.get(id).is_some_and(|e| e.state.user == Some(*user)));
            !ids.is_empty()
        });
        s.inserts = 0;
    }

    /// Makes room for one new session: sweeps when due or full, then evicts a batch
    /// (anonymous first, least recently used first) if still full.
    fn make_room(&self, s: &mut Sessions, now: u64) {
        s.inserts += 1;
        if s.inserts >= SWEEP_EVERY || s.map.len() >= self.capacity {
            self.sweep_locked(s, now);
        }
        if s.map.len() < self.capacity {
            return;
        }
        let batch = (self.capacity / 64).max(1);
        let excess = s.map.len() + 1 - self.capacity;
        let evict = batch.max(excess).min(s.map.len());
        // (logged in, last use): anonymous sorts first, then the oldest.
        let mut order: Vec<((bool, u64), &SessionId)> = s
            .map
            .iter()
            .map(|(id, e)| {
                let logged_in =
                    e.state.user.is_some() && e.state.login_expires_at.is_none_or(|t| t > now);
                ((logged_in, e.touched), id)
            })
            .collect();
        if evict < order.len() {
            order.select_nth_unstable_by_key(evict, |(k, _)| *k);
        }
        let victims: Vec<SessionId> = order
            .into_iter()
            .take(evict)
            .map(|(_, id)| id.clone())
            .collect();
        for id in victims {
            s.map.remove(&id);
        }
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned<SessionState>>, StoreError> {
        let now = self.clock.now();
        let mut s = self.sessions.lock().map_err(|_| poisoned())?;
        match s.map.get(id) {
            Some(e) if self.expired(e, now) => {
                s.map.remove(id);
                Ok(None)
            }
            Some(e) => Ok(Some(Versioned {
                value: e.state.clone(),
                version: e.version,
            })),
            None => Ok(None),
        }
    }

    async fn save(
        &self,
        id: &SessionId,
        state: &SessionState,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut s = self.sessions.lock().map_err(|_| poisoned())?;
        let current = s
            .map
            .get(id)
            .filter(|e| !self.expired(e, now))
            .map(|e| (e.version, e.created));
        let saved = match (current, expected) {
            (None, None) => {
                s.map.remove(id);
                self.make_room(&mut s, now);
                s.map.insert(
                    id.clone(),
                    Entry {
                        state: state.clone(),
                        version: 1,
                        touched: now,
                        created: now,
                    },
                );
                Ok(1)
            }
            (Some((v, created)), Some(want)) if v == want => {
                s.map.insert(
                    id.clone(),
                    Entry {
                        state: state.clone(),
                        version: v + 1,
                        touched: now,
                        created,
                    },
                );
                Ok(v + 1)
            }
            _ => Err(StoreError::Conflict),
        };
        if let (Ok(_), Some(user)) = (&saved, state.user) {
            s.by_user.entry(user).or_default().insert(id.clone());
        }
        saved
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.sessions.lock().map_err(|_| poisoned())?.map.remove(id);
        Ok(())
    }

    async fn delete_user_sessions(
        &self,
        user: UserId,
        keep: &SessionId,
    ) -> Result<usize, StoreError> {
        let mut s = self.sessions.lock().map_err(|_| poisoned())?;
        let Some(ids) = s.by_user.remove(&user) else {
            return Ok(0);
        };
        let mut deleted = 0;
        for id in ids {
            if &id == keep {
                s.by_user.entry(user).or_default().insert(id);
            } else if s.map.get(&id).is_some_and(|e| e.state.user == Some(user)) {
                s.map.remove(&id);
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

// ---------------------------------------------------------------------------------------
// Users

struct UserRecord {
    user: User,
    hash: Option<String>,
}

/// Users and groups in memory; passwords hashed with argon2id by default.
pub struct MemoryUserDirectory {
    users: RwLock<HashMap<UserId, UserRecord>>,
    groups: RwLock<HashMap<GroupId, Group>>,
    hasher: Arc<dyn PasswordHasher>,
    dummy_hash: String,
}

impl Default for MemoryUserDirectory {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryUserDirectory {
    /// An empty directory hashing with argon2id.
    pub fn new() -> Self {
        Self::with_hasher(Arc::new(Argon2idHasher))
    }

    /// An empty directory with another hasher.
    pub fn with_hasher(hasher: Arc<dyn PasswordHasher>) -> Self {
        // Unknown users are verified against this hash so they cost the same work.
        let dummy_hash = hasher
            .hash(&uuid::Uuid::new_v4().to_string())
            .unwrap_or_default();
        Self {
            users: RwLock::new(HashMap::new()),
            groups: RwLock::new(HashMap::new()),
            hasher,
            dummy_hash,
        }
    }

    /// Imports a user with an existing hash (e.g. Django `pbkdf2_sha256$…` from authentik).
    ///
    /// The same identifier rules as [`UserDirectory::create_user`] apply.
    pub fn import_user(&self, user: User, hash: Option<String>) -> Result<(), StoreError> {
        let mut users = self.users.write().map_err(|_| poisoned())?;
        check_identifiers(&users, &user)?;
        users.insert(user.pk, UserRecord { user, hash });
        Ok(())
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.read().map(|u| u.len()).unwrap_or(0)
    }

    /// True when there are no users.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The directory's identifier rules, checked under the write lock together with the
/// write (so two concurrent enrollments cannot both take one identifier): a valid
/// username ([`validate_username`]); usernames and emails unique after
/// [`canonical_identifier`] (NFKC + case folding) *across both fields* — no user's
/// username or email may equal another user's username or email, so an identifier
/// never names two accounts (an email shaped like someone's username cannot take
/// their logins over).
fn check_identifiers(users: &HashMap<UserId, UserRecord>, user: &User) -> Result<(), StoreError> {
    validate_username(&user.username)
        .map_err(|m| StoreError::Validation(ValidationErrors::field("username", m)))?;
    let username = canonical_identifier(&user.username);
    let email = Some(canonical_identifier(&user.email)).filter(|e| !e.is_empty());
    let (mut username_taken, mut email_taken) = (false, false);
    for other in users.values().map(|r| &r.user).filter(|u| u.pk != user.pk) {
        let theirs = [
            Some(canonical_identifier(&other.username)),
            Some(canonical_identifier(&other.email)).filter(|e| !e.is_empty()),
        ];
        username_taken |= theirs.iter().flatten().any(|t| *t == username);
        email_taken |= email
            .as_ref()
            .is_some_and(|e| theirs.iter().flatten().any(|t| t == e));
    }
    let mut errors = ValidationErrors::new();
    if username_taken {
        errors.add("username", "Username is already taken.");
    }
    if email_taken {
        errors.add("email", "Email address is already in use.");
    }
    errors.into_result().map_err(StoreError::Validation)
}

fn field_value(user: &User, field: UserField) -> Option<&str> {
    match field {
        UserField::Username => Some(&user.username),
        UserField::Email => Some(&user.email)
            .filter(|e| !e.is_empty())
            .map(String::as_str),
        UserField::Upn => user.attributes.get("upn").and_then(|v| v.as_str()),
    }
}

#[async_trait]
impl UserDirectory for MemoryUserDirectory {
    async fn user(&self, pk: UserId) -> Result<Option<User>, StoreError> {
        Ok(self
            .users
            .read()
            .map_err(|_| poisoned())?
            .get(&pk)
            .map(|r| r.user.clone()))
    }

    async fn find_user(
        &self,
        field: UserField,
        value: &str,
        case_insensitive: bool,
    ) -> Result<Option<User>, StoreError> {
        use unicode_normalization::UnicodeNormalization;
        let want = if case_insensitive {
            canonical_identifier(value)
        } else {
            value.trim().nfkc().collect()
        };
        if want.is_empty() {
            return Ok(None);
        }
        let users = self.users.read().map_err(|_| poisoned())?;
        let mut found = users
            .values()
            .map(|r| &r.user)
            .filter(|u| match field_value(u, field) {
                Some(v) if case_insensitive => canonical_identifier(v) == want,
                Some(v) => v.trim().nfkc().eq(want.chars()),
                None => false,
            });
        // Never pick one of several by map order: an ambiguous value matches no one.
        match (found.next(), found.next()) {
            (Some(u), None) => Ok(Some(u.clone())),
            _ => Ok(None),
        }
    }

    async fn verify_password(
        &self,
        user: Option<UserId>,
        password: &Password,
    ) -> Result<bool, StoreError> {
        let hash = match user {
            Some(pk) => self
                .users
                .read()
                .map_err(|_| poisoned())?
                .get(&pk)
                .and_then(|r| r.hash.clone()),
            None => None,
        };
        let Some(hash) = hash else {
            // Same work as a real check, then fail.
            let _ = self.hasher.verify(&self.dummy_hash, password.expose());
            return Ok(false);
        };
        let ok = self.hasher.verify(&hash, password.expose());
        if ok && self.hasher.needs_rehash(&hash) {
            if let (Some(pk), Ok(new)) = (user, self.hasher.hash(password.expose())) {
                if let Some(r) = self.users.write().map_err(|_| poisoned())?.get_mut(&pk) {
                    r.hash = Some(new);
                }
            }
        }
        Ok(ok)
    }

    async fn set_password(&self, user: UserId, password: &Password) -> Result<(), StoreError> {
        let hash = self
            .hasher
            .hash(password.expose())
            .map_err(StoreError::Unavailable)?;
        let mut users = self.users.write().map_err(|_| poisoned())?;
        let r = users
            .get_mut(&user)
            .ok_or_else(|| StoreError::NotFound(format!("user `{user}`")))?;
        r.hash = Some(hash);
        Ok(())
    }

    async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        validate_username(&new.username)
            .map_err(|m| StoreError::Validation(ValidationErrors::field("username", m)))?;
        let hash = match &new.password {
            Some(p) => Some(
                self.hasher
                    .hash(p.expose())
                    .map_err(StoreError::Unavailable)?,
            ),
            None => None,
        };
        let user = User {
            pk: new.pk.unwrap_or_default(),
            username: new.username,
            name: new.name,
            email: new.email,
            is_active: new.is_active,
            path: new.path,
            user_type: new.user_type,
            attributes: new.attributes,
            groups: new.groups,
        };
        let mut users = self.users.write().map_err(|_| poisoned())?;
        if users.contains_key(&user.pk) {
            return Err(StoreError::Validation(ValidationErrors::field(
                "username",
                "Username is already taken.",
            )));
        }
        check_identifiers(&users, &user)?;
        users.insert(
            user.pk,
            UserRecord {
                user: user.clone(),
                hash,
            },
        );
        Ok(user)
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let mut users = self.users.write().map_err(|_| poisoned())?;
        check_identifiers(&users, user)?;
        let r = users
            .get_mut(&user.pk)
            .ok_or_else(|| StoreError::NotFound(format!("user `{}`", user.pk)))?;
        r.user = user.clone();
        Ok(())
    }

    async fn delete_user(&self, pk: UserId) -> Result<bool, StoreError> {
        Ok(self
            .users
            .write()
            .map_err(|_| poisoned())?
            .remove(&pk)
            .is_some())
    }

    async fn group(&self, pk: GroupId) -> Result<Option<Group>, StoreError> {
        Ok(self
            .groups
            .read()
            .map_err(|_| poisoned())?
            .get(&pk)
            .cloned())
    }

    async fn find_group(&self, name: &str) -> Result<Option<Group>, StoreError> {
        Ok(self
            .groups
            .read()
            .map_err(|_| poisoned())?
            .values()
            .find(|g| g.name == name)
            .cloned())
    }

    async fn put_group(&self, group: Group) -> Result<(), StoreError> {
        let mut groups = self.groups.write().map_err(|_| poisoned())?;
        if groups
            .values()
            .any(|g| g.name == group.name && g.pk != group.pk)
        {
            return Err(StoreError::Validation(ValidationErrors::field(
                "name",
                "group with this name already exists.",
            )));
        }
        groups.insert(group.pk, group);
        Ok(())
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<Group>, StoreError> {
        let direct = match self.users.read().map_err(|_| poisoned())?.get(&user) {
            Some(r) => r.user.groups.clone(),
            None => return Ok(Vec::new()),
        };
        let groups = self.groups.read().map_err(|_| poisoned())?;
        let mut out: Vec<Group> = Vec::new();
        for g in direct {
            let mut cur = groups.get(&g);
            // Parent chains are walked at most 64 deep (a cycle cannot hang us).
            for _ in 0..64 {
                let Some(group) = cur else { break };
                if out.iter().any(|o| o.pk == group.pk) {
                    break;
                }
                out.push(group.clone());
                cur = group.parent.and_then(|p| groups.get(&p));
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Reputation

/// Reputation scores in memory, clamped to authentik's default limits (−5 … +5) per key.
#[derive(Debug, Default)]
pub struct MemoryReputation {
    scores: Mutex<HashMap<String, i64>>,
}

/// Lowest score one IP or username can reach.
pub const REPUTATION_LOWER_LIMIT: i64 = -5;
/// Highest score one IP or username can reach.
pub const REPUTATION_UPPER_LIMIT: i64 = 5;

impl MemoryReputation {
    /// No scores.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ReputationStore for MemoryReputation {
    async fn score(&self, ip: Option<&str>, username: Option<&str>) -> Result<i64, StoreError> {
        let s = self.scores.lock().map_err(|_| poisoned())?;
        let get = |k: String| s.get(&k).copied().unwrap_or(0);
        Ok(ip.map(|i| get(format!("ip:{i}"))).unwrap_or(0)
            + username.map(|u| get(format!("user:{u}"))).unwrap_or(0))
    }

    async fn adjust(
        &self,
        ip: Option<&str>,
        username: Option<&str>,
        delta: i64,
    ) -> Result<(), StoreError> {
        let mut s = self.scores.lock().map_err(|_| poisoned())?;
        let keys = ip
            .map(|i| format!("ip:{i}"))
            .into_iter()
            .chain(username.map(|u| format!("user:{u}")));
        for k in keys {
            let e = s.entry(k).or_insert(0);
            *e = (*e + delta).clamp(REPUTATION_LOWER_LIMIT, REPUTATION_UPPER_LIMIT);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Login throttle

/// Login-throttle counters in memory (one process). Expired counters are swept whenever
/// the map has doubled since the last sweep, so memory stays proportional to the keys
/// with an open window.
#[derive(Debug, Default)]
pub struct MemoryThrottle {
    inner: Mutex<ThrottleData>,
}

#[derive(Debug, Default)]
struct ThrottleData {
    /// key → (count, since, expires_at)
    counters: HashMap<String, (u32, u64, u64)>,
    swept_len: usize,
}

impl MemoryThrottle {
    /// No counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored (possibly expired) counters.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|d| d.counters.len()).unwrap_or(0)
    }

    /// True when no counter is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ThrottleStore for MemoryThrottle {
    async fn get(&self, key: &str, now: u64, window: u64) -> Result<ThrottleCounter, StoreError> {
        let d = self.inner.lock().map_err(|_| poisoned())?;
        Ok(match d.counters.get(key) {
            Some(&(count, since, _)) if now < since.saturating_add(window) => {
                ThrottleCounter { count, since }
            }
            _ => ThrottleCounter::default(),
        })
    }

    async fn hit(&self, key: &str, now: u64, window: u64) -> Result<ThrottleCounter, StoreError> {
        let mut d = self.inner.lock().map_err(|_| poisoned())?;
        if d.counters.len() >= d.swept_len.saturating_mul(2).max(1024) {
            d.counters.retain(|_, &mut (_, _, expires)| expires > now);
            d.swept_len = d.counters.len();
        }
        let e = d.counters.entry(key.to_owned()).or_insert((0, now, 0));
        if now >= e.1.saturating_add(window) || e.0 == 0 {
            *e = (0, now, now.saturating_add(window));
        }
        e.0 = e.0.saturating_add(1);
        Ok(ThrottleCounter {
            count: e.0,
            since: e.1,
        })
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.inner
            .lock()
            .map_err(|_| poisoned())?
            .counters
            .remove(key);
        Ok(())
    }
}
