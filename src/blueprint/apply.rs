//! Applying a blueprint: the [`Importer`], its options and targets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value as Json, json};
use serde_norway::Value as Yaml;
use uuid::Uuid;

use super::library::{Library, read_capped};
use super::models::{self, Model, StageModel};
use super::python::{merge_maps, truthy};
use super::report::{DirectoryReport, EntryAction, EntryReport, ImportReport, SkippedEntry};
use super::tags::{Context, EntryRef, EnvSource, Resolver};
use super::work::{Op, Work, snapshot};
use super::{Blueprint, BlueprintError, parse};
use crate::memory::{Catalogue, MemoryFlowStore, MemoryUserDirectory};
use crate::model::{
    BindingId, BindingSubject, FlowId, FlowStageBinding, GroupId, PolicyBinding, PolicyBindingId,
    PolicyId, Prompt, PromptId, Stage, StageConfig, StageId, UnsupportedStage, UserId,
};
use crate::secret::Password;
use crate::store::{FlowStore, Group, NewUser, StoreError, User, UserDirectory};

/// How an import behaves.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Let entries of models authflow does not have through instead of failing: a
    /// stage of an unsupported kind is kept as a stage that denies access when a flow
    /// reaches it (so its bindings still exist: fails closed); any other unsupported
    /// entry is left out. Every such entry is listed in [`ImportReport::skipped`].
    pub skip_unsupported: bool,
    /// Context merged over each blueprint's own `context` (authentik's instance
    /// context), read by `!Context`.
    pub context: Map<String, Json>,
    /// What `!Env` reads: `None` for the process environment, or a fixed map (to
    /// keep blueprints away from the server's secrets).
    pub env: Option<BTreeMap<String, String>>,
    /// Where `metaapplyblueprint` entries look for blueprints. Defaults to the
    /// directory of the file ([`Importer::apply_file`]) or the directory being applied.
    pub library: Option<Arc<Library>>,
    /// [`Importer::apply_dir`]: also apply files labelled
    /// `blueprints.goauthentik.io/instantiate: "false"` (authentik does not).
    pub apply_not_instantiated: bool,
}

impl ImportOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`skip_unsupported`](Self::skip_unsupported).
    pub fn skip_unsupported(mut self, yes: bool) -> Self {
        self.skip_unsupported = yes;
        self
    }

    /// Sets one context value.
    pub fn context_value(mut self, key: impl Into<String>, value: Json) -> Self {
        self.context.insert(key.into(), value);
        self
    }

    /// Makes `!Env` read from this map instead of the process environment.
    pub fn env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env = Some(env);
        self
    }

    /// Sets the [`library`](Self::library).
    pub fn library(mut self, library: Library) -> Self {
        self.library = Some(Arc::new(library));
        self
    }
}

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
    /// fail after validation ([`BlueprintError::Commit`]).
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
    fn store(&self) -> &'a dyn FlowStore {
        match *self {
            FlowTarget::Memory(m) => m,
            FlowTarget::Store(s) => s,
        }
    }

    async fn catalogue(&self) -> Result<Catalogue, StoreError> {
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
    fn dir(&self) -> &'a dyn UserDirectory {
        match *self {
            UserTarget::Memory(m) => m,
            UserTarget::Directory(d) => d,
        }
    }
}

/// Applies authentik blueprints to a [`FlowStore`] and a [`UserDirectory`].
///
/// Each file is all-or-nothing: its entries are applied in order to a working copy of
/// the stores (validated as the memory store validates), and only when every entry
/// succeeded are the changes written. Entries are matched by their `identifiers`, so
/// applying a file twice changes nothing and an edited file updates objects in place.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use authflow::blueprint::Importer;
/// let stores = authflow::memory::Stores::new();
/// let yaml = r#"
/// version: 1
/// metadata: {name: Logout}
/// entries:
///   - model: authentik_flows.flow
///     id: flow
///     identifiers: {slug: logout}
///     attrs: {name: Logout, title: Logout, designation: invalidation}
///   - model: authentik_stages_user_logout.userlogoutstage
///     id: logout
///     identifiers: {name: logout}
///   - model: authentik_flows.flowstagebinding
///     identifiers: {target: !KeyOf flow, stage: !KeyOf logout, order: 0}
/// "#;
/// let report = Importer::for_stores(&stores).apply_str("logout.yaml", yaml).await?;
/// assert_eq!(report.summary(), "logout.yaml (Logout): 3 created");
/// let again = Importer::for_stores(&stores).apply_str("logout.yaml", yaml).await?;
/// assert_eq!(again.changes, 0);
/// # Ok(()) }
/// ```
pub struct Importer<'a> {
    flows: FlowTarget<'a>,
    users: UserTarget<'a>,
    options: ImportOptions,
}

/// State shared by the files of one run (cycles, files already applied).
struct Run {
    library: Option<Arc<Library>>,
    lazy_dir: Option<PathBuf>,
    stack: Vec<String>,
    applied: HashSet<String>,
}

impl Run {
    fn new(library: Option<Arc<Library>>, lazy_dir: Option<PathBuf>) -> Self {
        Self {
            library,
            lazy_dir,
            stack: Vec::new(),
            applied: HashSet::new(),
        }
    }

    fn library(&mut self) -> Result<Option<Arc<Library>>, BlueprintError> {
        if self.library.is_none() {
            if let Some(dir) = self.lazy_dir.take() {
                self.library = Some(Arc::new(Library::from_dir(dir)?));
            }
        }
        Ok(self.library.clone())
    }
}

/// The desired state of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Present,
    Created,
    MustCreated,
    Absent,
}

/// An existing object an entry's identifiers matched.
#[derive(Debug, Clone, Copy)]
enum Instance {
    Flow(FlowId),
    Stage(StageId),
    Binding(BindingId),
    Policy(PolicyId),
    PolicyBinding(PolicyBindingId),
    Prompt(PromptId),
    Group(GroupId),
    User(UserId),
}

impl Instance {
    fn pk(&self) -> String {
        match self {
            Instance::Flow(x) => x.to_string(),
            Instance::Stage(x) => x.to_string(),
            Instance::Binding(x) => x.to_string(),
            Instance::Policy(x) => x.to_string(),
            Instance::PolicyBinding(x) => x.to_string(),
            Instance::Prompt(x) => x.to_string(),
            Instance::Group(x) => x.to_string(),
            Instance::User(x) => x.to_string(),
        }
    }
}

/// One file being applied.
struct FileRun {
    file: String,
    key: String,
    bp: Blueprint,
    work: Work,
    refs: Vec<EntryRef>,
    /// Entry indexes by `id` (for `!KeyOf`).
    ids: HashMap<String, Vec<usize>>,
    report: ImportReport,
    /// authentik's pk map: a `pk` identifier → the pk of the object it matched.
    pk_map: HashMap<String, String>,
    /// Prompts this file created or updated (to warn about unused ones).
    prompts: Vec<(usize, PromptId)>,
}

/// What building an entry's object decided.
enum Outcome {
    Done(EntryAction, Option<Instance>),
    /// Left out because something it needs was skipped.
    Cascade(String),
}

type EntryResult<T> = Result<T, String>;

/// A file's report and the changes it wrote.
type FileFuture<'s> =
    Pin<Box<dyn Future<Output = Result<(ImportReport, Vec<Op>), BlueprintError>> + Send + 's>>;

fn is_memory_users(t: &UserTarget<'_>) -> bool {
    matches!(t, UserTarget::Memory(_))
}

fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn bool_attr(m: &Map<String, Json>, key: &str) -> EntryResult<Option<bool>> {
    match m.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(format!("`{key}`: expected a boolean, got `{other}`")),
    }
}

fn string_attr(m: &Map<String, Json>, key: &str) -> EntryResult<Option<String>> {
    match m.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("`{key}`: expected a string, got `{other}`")),
    }
}

/// The pk of an object an entry creates: derived from its model and identifiers
/// (like the default flows' fixed ids), so every instance applying the same blueprint
/// creates the same objects, and re-creating an object a store does not show (an
/// unused stage, a disabled policy binding) replaces it instead of adding another.
fn derived_pk(model: &Model, ids: &Map<String, Json>) -> Uuid {
    let name = models::canonical_name(model);
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!(
            "urn:authflow:blueprint:{name}:{}",
            Json::Object(ids.clone())
        )
        .as_bytes(),
    )
}

/// The `policybindingmodel_ptr_id` of a new flow or binding, derived from its pk.
fn derived_ptr(pk: &Uuid) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("urn:authflow:blueprint:policybindingmodel:{pk}").as_bytes(),
    )
}

/// A UUID identifier value, for cheap pre-filtering.
fn uuid_of(v: Option<&Json>) -> Option<Uuid> {
    v.and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// A numeric identifier value (numbers or numeric strings), for cheap pre-filtering.
fn number_of(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Replaces values that are `pk` identifiers of earlier entries by the pk of the
/// object they matched (authentik's `__update_pks_for_attrs`).
fn update_pks(map: &mut Map<String, Json>, pk_map: &HashMap<String, String>) {
    if pk_map.is_empty() {
        return;
    }
    let swap = |v: &mut Json| {
        if let Json::String(s) = v {
            if let Some(new) = pk_map.get(&s.to_ascii_lowercase()) {
                *s = new.clone();
            }
        }
    };
    for v in map.values_mut() {
        match v {
            Json::Object(inner) => inner.values_mut().for_each(swap),
            Json::Array(items) => items.iter_mut().for_each(swap),
            other => swap(other),
        }
    }
}

/// Names of the attributes a model understands.
fn known_keys(model: &Model) -> Vec<String> {
    use crate::model::{Flow, FlowDesignation, PolicyBinding as PB};
    let keys = |m: Map<String, Json>| m.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    match model {
        Model::Flow => keys(models::flow_attrs(&Flow::new(
            "x",
            "x",
            FlowDesignation::Authentication,
        ))),
        Model::FlowStageBinding => keys(models::binding_attrs(&FlowStageBinding::new(
            FlowId::new(),
            StageId::new(),
            0,
        ))),
        Model::PolicyBinding => keys(models::policy_binding_attrs(&PB::new(
            crate::model::BindingTarget::Flow(FlowId::new()),
            BindingSubject::Policy(PolicyId::new()),
            0,
        ))),
        Model::Stage(kind) => models::stage_known_keys(*kind),
        Model::UnsupportedStage(_) | Model::AnyStage => vec!["name".into()],
        Model::Prompt => {
            let mut k = keys(models::prompt_attrs(&Prompt::new(
                "x",
                "x",
                crate::model::PromptType::Text,
                0,
            )));
            k.extend(models::PROMPT_EXTRA_KEYS.iter().map(|s| (*s).to_owned()));
            k
        }
        Model::Policy(kind) => {
            let mut k = keys(models::policy_defaults(*kind));
            k.push("name".into());
            k
        }
        Model::Group => {
            let mut k = keys(models::group_attrs(&Group::new("x")));
            k.push("users".into());
            k
        }
        Model::User => {
            let mut k = keys(models::user_defaults());
            k.extend(["username", "password", "password_hash"].map(String::from));
            k
        }
        Model::MetaApplyBlueprint => vec!["identifiers".into(), "required".into()],
    }
}

impl<'a> Importer<'a> {
    /// An importer writing to these stores.
    pub fn new(flows: impl Into<FlowTarget<'a>>, users: impl Into<UserTarget<'a>>) -> Self {
        Self {
            flows: flows.into(),
            users: users.into(),
            options: ImportOptions::default(),
        }
    }

    /// An importer writing to in-memory stores.
    pub fn for_stores(stores: &'a crate::memory::Stores) -> Self {
        Self::new(stores.flows.as_ref(), stores.users.as_ref())
    }

    /// Replaces the options.
    pub fn options(mut self, options: ImportOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets [`ImportOptions::skip_unsupported`].
    pub fn skip_unsupported(mut self, yes: bool) -> Self {
        self.options.skip_unsupported = yes;
        self
    }

    /// Parses and applies a blueprint given as text; `file` names it in errors and
    /// in the report. `metaapplyblueprint` entries look in
    /// [`ImportOptions::library`].
    pub async fn apply_str(&self, file: &str, yaml: &str) -> Result<ImportReport, BlueprintError> {
        let bp = parse(file, yaml)?;
        self.apply(file, bp).await
    }

    /// Applies a parsed blueprint.
    pub async fn apply(
        &self,
        file: &str,
        blueprint: Blueprint,
    ) -> Result<ImportReport, BlueprintError> {
        let mut run = Run::new(self.options.library.clone(), None);
        let (report, _) = self
            .run_file(&mut run, file.to_owned(), file.to_owned(), blueprint)
            .await?;
        Ok(report)
    }

    /// Reads and applies one file. `metaapplyblueprint` entries look for blueprints in
    /// the file's directory (unless [`ImportOptions::library`] is set).
    pub async fn apply_file(&self, path: impl AsRef<Path>) -> Result<ImportReport, BlueprintError> {
        let path = path.as_ref();
        let text = read_capped(path)?;
        let display = path.display().to_string();
        let bp = parse(&display, &text)?;
        let key = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| display.clone());
        let lazy = path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        });
        let mut run = Run::new(self.options.library.clone(), lazy);
        let (report, _) = self.run_file(&mut run, key, display, bp).await?;
        Ok(report)
    }

    /// Applies every `*.yaml` file under `dir` in authentik's order: by path, each
    /// file's `metaapplyblueprint` dependencies first. Files labelled
    /// `blueprints.goauthentik.io/instantiate: "false"` are left alone (see
    /// [`ImportOptions::apply_not_instantiated`]). The first file that cannot be
    /// applied stops the run; files applied before it stay applied.
    pub async fn apply_dir(
        &self,
        dir: impl AsRef<Path>,
    ) -> Result<DirectoryReport, BlueprintError> {
        let library = Arc::new(Library::from_dir(dir)?);
        let mut run = Run::new(Some(library.clone()), None);
        let mut out = DirectoryReport::default();
        for file in library.files() {
            let bp = file.parsed.clone()?;
            if !bp.instantiate() && !self.options.apply_not_instantiated {
                out.not_instantiated.push(file.display.clone());
                continue;
            }
            if run.applied.contains(&file.rel) {
                continue;
            }
            let (report, _) = self
                .run_file(&mut run, file.rel.clone(), file.display.clone(), bp)
                .await?;
            out.reports.push(report);
        }
        Ok(out)
    }

    fn run_file<'s>(
        &'s self,
        run: &'s mut Run,
        key: String,
        file: String,
        bp: Blueprint,
    ) -> FileFuture<'s> {
        Box::pin(async move {
            let base = self
                .flows
                .catalogue()
                .await
                .map_err(|e| BlueprintError::Commit {
                    file: file.clone(),
                    applied: 0,
                    total: 0,
                    error: e,
                })?;
            let mut ids: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, e) in bp.entries.iter().enumerate() {
                if let Some(id) = &e.id {
                    ids.entry(id.clone()).or_default().push(i);
                }
            }
            let refs = vec![EntryRef::default(); bp.entries.len()];
            let mut f = FileRun {
                report: ImportReport {
                    file: file.clone(),
                    name: bp.name().map(str::to_owned),
                    ..ImportReport::default()
                },
                file,
                key,
                bp,
                work: Work::new(base),
                refs,
                ids,
                pk_map: HashMap::new(),
                prompts: Vec::new(),
            };
            run.stack.push(f.key.clone());
            let result = self.entries(run, &mut f).await;
            run.stack.pop();
            result?;
            for (index, pk) in &f.prompts {
                let used = f.work.stages.values().any(|s| {
                    matches!(&s.config, StageConfig::Prompt(p) if p.fields.iter().any(|x| x.pk == *pk))
                });
                if !used {
                    f.report.warnings.push(format!(
                        "entries[{index}]: the prompt is used by no prompt stage; authflow keeps prompts only inside prompt stages, so it is not stored"
                    ));
                }
            }
            let ops = std::mem::take(&mut f.work.ops);
            self.commit(&f.file, &ops).await?;
            f.report.changes = ops.len();
            run.applied.insert(f.key.clone());
            Ok((f.report, ops))
        })
    }

    async fn entries(&self, run: &mut Run, f: &mut FileRun) -> Result<(), BlueprintError> {
        for index in 0..f.bp.entries.len() {
            self.entry(run, f, index).await?;
        }
        Ok(())
    }

    async fn resolve(&self, f: &mut FileRun, v: &Yaml) -> EntryResult<Json> {
        let env = match &self.options.env {
            Some(m) => EnvSource::Map(m.clone()),
            None => EnvSource::Process,
        };
        let context = Context {
            caller: &self.options.context,
            file: &f.bp.context,
        };
        let mut r = Resolver::new(
            &mut f.work,
            self.users.dir(),
            &f.refs,
            &f.ids,
            &context,
            &env,
        );
        r.resolve(v).await
    }

    async fn entry(
        &self,
        run: &mut Run,
        f: &mut FileRun,
        index: usize,
    ) -> Result<(), BlueprintError> {
        let Some(raw) = f.bp.entries.get(index).cloned() else {
            return Ok(());
        };
        let file = f.file.clone();
        let label = raw.model_label();
        let err = |message: String| BlueprintError::Entry {
            file: file.clone(),
            index,
            model: label.clone(),
            id: raw.id.clone(),
            message,
        };
        for k in &raw.unknown_keys {
            f.report.warnings.push(format!(
                "entries[{index}]: unknown key `{k}` in the entry was ignored"
            ));
        }
        if raw.has_permissions {
            f.report.warnings.push(format!(
                "entries[{index}]: `permissions` are not supported by authflow and were ignored"
            ));
        }
        let record = |f: &mut FileRun, model: &str, action: EntryAction, pk: Option<String>| {
            f.report.entries.push(EntryReport {
                index,
                model: model.to_owned(),
                id: raw.id.clone(),
                action,
                pk,
            });
        };
        for c in &raw.conditions {
            let v = self.resolve(f, c).await.map_err(&err)?;
            if !truthy(&v) {
                record(f, &label, EntryAction::ConditionsNotMet, None);
                return Ok(());
            }
        }
        let model = self.resolve(f, &raw.model).await.map_err(&err)?;
        let Json::String(model) = model else {
            return Err(err(format!("`model` must be a string, got `{model}`")));
        };
        let state = self.resolve(f, &raw.state).await.map_err(&err)?;
        let state = match state.as_str() {
            Some("present") => State::Present,
            Some("created") => State::Created,
            Some("must_created") => State::MustCreated,
            Some("absent") => State::Absent,
            _ => {
                return Err(err(format!(
                    "`state` must be present, created, must_created or absent, got `{state}`"
                )));
            }
        };
        let kind = match models::lookup(&model) {
            Some(Model::MetaApplyBlueprint) => {
                let action = self.meta(run, f, index, &raw.attrs).await?;
                record(f, &model, action, None);
                return Ok(());
            }
            Some(Model::AnyStage) => {
                return Err(err(
                    "authentik_flows.stage is abstract; use the model of the stage's kind".into(),
                ));
            }
            Some(m) => m,
            None => {
                let stage = models::is_stage_model(&model);
                if !self.options.skip_unsupported {
                    let hint = if stage {
                        "remove the entry (and the bindings that use the stage), or import with `skip_unsupported` to keep it as a stage that denies access when a flow reaches it"
                    } else {
                        "remove the entry (and what refers to it), or import with `skip_unsupported` to leave it out"
                    };
                    return Err(BlueprintError::UnsupportedModel {
                        file: f.file.clone(),
                        index,
                        id: raw.id.clone(),
                        model,
                        hint: hint.into(),
                    });
                }
                if !stage {
                    let identifiers = self
                        .resolve(f, &raw.identifiers)
                        .await
                        .unwrap_or(Json::Null);
                    f.report.skipped.push(SkippedEntry {
                        index,
                        model: model.clone(),
                        id: raw.id.clone(),
                        identifiers,
                        kept_as_denying_stage: false,
                        reason: format!("authflow does not support the model `{model}`"),
                    });
                    if let Some(r) = f.refs.get_mut(index) {
                        r.skipped = Some(model.clone());
                    }
                    record(f, &model, EntryAction::Skipped, None);
                    return Ok(());
                }
                Model::UnsupportedStage(model.clone())
            }
        };
        let outcome = self
            .object(f, index, &raw, &kind, state)
            .await
            .map_err(&err)?;
        match outcome {
            Outcome::Done(action, instance) => {
                let pk = instance.map(|i| i.pk());
                if let (Some(r), Some(pk)) = (f.refs.get_mut(index), &pk) {
                    r.instance = Some(pk.clone());
                }
                if let Model::UnsupportedStage(m) = &kind {
                    if state != State::Absent {
                        let identifiers = self
                            .resolve(f, &raw.identifiers)
                            .await
                            .unwrap_or(Json::Null);
                        f.report.skipped.push(SkippedEntry {
                            index,
                            model: m.clone(),
                            id: raw.id.clone(),
                            identifiers,
                            kept_as_denying_stage: true,
                            reason: format!(
                                "authflow does not support the stage kind `{m}`; a flow that reaches it denies access"
                            ),
                        });
                    }
                }
                let action = match (&kind, action) {
                    (
                        Model::UnsupportedStage(_),
                        EntryAction::Created
                        | EntryAction::Updated
                        | EntryAction::Unchanged
                        | EntryAction::Kept,
                    ) => EntryAction::ImportedAsUnsupported,
                    (_, a) => a,
                };
                record(f, &model, action, pk);
            }
            Outcome::Cascade(reason) => {
                let identifiers = self
                    .resolve(f, &raw.identifiers)
                    .await
                    .unwrap_or(Json::Null);
                f.report.skipped.push(SkippedEntry {
                    index,
                    model: model.clone(),
                    id: raw.id.clone(),
                    identifiers,
                    kept_as_denying_stage: false,
                    reason,
                });
                if let Some(r) = f.refs.get_mut(index) {
                    r.skipped = Some(model.clone());
                }
                record(f, &model, EntryAction::Skipped, None);
            }
        }
        Ok(())
    }

    /// `authentik_blueprints.metaapplyblueprint`: applies another blueprint.
    async fn meta(
        &self,
        run: &mut Run,
        f: &mut FileRun,
        index: usize,
        attrs: &Yaml,
    ) -> Result<EntryAction, BlueprintError> {
        let file = f.file.clone();
        let err = |message: String| BlueprintError::Entry {
            file: file.clone(),
            index,
            model: "authentik_blueprints.metaapplyblueprint".into(),
            id: None,
            message,
        };
        let attrs = self.resolve(f, attrs).await.map_err(&err)?;
        let Json::Object(attrs) = attrs else {
            return Err(err("`attrs` must be a mapping with `identifiers`".into()));
        };
        let Some(Json::Object(identifiers)) = attrs.get("identifiers") else {
            return Err(err("`attrs.identifiers`: This field is required.".into()));
        };
        let required = bool_attr(&attrs, "required").map_err(&err)?.unwrap_or(true);
        let library = run.library()?;
        let found = match &library {
            None => None,
            Some(lib) => {
                let mut hit = None;
                for (k, v) in identifiers {
                    let v = v
                        .as_str()
                        .ok_or_else(|| err(format!("`identifiers.{k}` must be a string")))?;
                    let candidate = match k.as_str() {
                        "name" => lib.by_name(v),
                        "path" => lib.by_path(v),
                        other => {
                            return Err(err(format!(
                                "`identifiers.{other}`: authflow finds blueprints by `name` (metadata.name) or `path`"
                            )));
                        }
                    };
                    match (hit, candidate) {
                        (_, None) => {
                            hit = None;
                            break;
                        }
                        (None, Some(c)) => hit = Some(c),
                        (Some(h), Some(c)) if std::ptr::eq(h, c) => {}
                        (Some(_), Some(_)) => {
                            hit = None;
                            break;
                        }
                    }
                }
                hit.cloned()
            }
        };
        let Some(target) = found else {
            if required {
                return Err(err(format!(
                    "Required blueprint does not exist: no blueprint matches {}{}",
                    Json::Object(identifiers.clone()),
                    if library.is_none() {
                        " (no blueprint directory or library is configured)"
                    } else {
                        " in the blueprint directory"
                    }
                )));
            }
            f.report.warnings.push(format!(
                "entries[{index}]: no blueprint matches {} (not required: skipped)",
                Json::Object(identifiers.clone())
            ));
            return Ok(EntryAction::BlueprintNotFound);
        };
        if let Some(pos) = run.stack.iter().position(|k| *k == target.rel) {
            let mut chain: Vec<String> = run
                .stack
                .get(pos..)
                .map(<[String]>::to_vec)
                .unwrap_or_default();
            chain.push(target.rel.clone());
            return Err(BlueprintError::Cycle {
                file: f.file.clone(),
                index,
                chain,
            });
        }
        if run.applied.contains(&target.rel) {
            return Ok(EntryAction::BlueprintAlreadyApplied);
        }
        let bp = target.parsed.clone()?;
        let (report, ops) = self
            .run_file(run, target.rel.clone(), target.display.clone(), bp)
            .await?;
        f.work.replay(self.users.dir(), &ops).await.map_err(|e| {
            err(format!(
                "the changes of `{}` conflict with this file's: {e}",
                target.rel
            ))
        })?;
        f.report.dependencies.push(report);
        Ok(EntryAction::AppliedBlueprint)
    }

    /// An entry for an object: finds it by its identifiers and creates, updates or
    /// deletes it.
    async fn object(
        &self,
        f: &mut FileRun,
        index: usize,
        raw: &super::parse::RawEntry,
        model: &Model,
        state: State,
    ) -> EntryResult<Outcome> {
        let ids = self.resolve(f, &raw.identifiers).await;
        let mut ids = match (ids, state) {
            (Ok(Json::Object(m)), _) if !m.is_empty() => m,
            (Ok(_), _) => return Err("No or invalid identifiers".into()),
            (Err(e), State::Absent) => {
                f.report.warnings.push(format!(
                    "entries[{index}]: state absent, but the identifiers could not be resolved ({e}): nothing deleted"
                ));
                return Ok(Outcome::Done(EntryAction::NothingToDelete, None));
            }
            (Err(e), _) => return Err(e),
        };
        update_pks(&mut ids, &f.pk_map);
        let known = known_keys(model);
        for k in ids.keys() {
            if k != "pk" && !known.contains(k) {
                return Err(format!("Invalid identifier field `{k}`"));
            }
        }
        // Policy bindings: a target given by its policybindingmodel id means its pk; a
        // target that was skipped takes the binding with it.
        if *model == Model::PolicyBinding {
            if let Some(t) = ids.get("target") {
                if models::is_skipped(t) {
                    return Ok(Outcome::Cascade(
                        "its `target` was skipped as unsupported, so there is nothing to bind to"
                            .into(),
                    ));
                }
                if let Some(id) = models::ref_uuid("target", t)? {
                    if let Some(target) = f.work.binding_target(id) {
                        let pk = match target {
                            crate::model::BindingTarget::Flow(x) => x.to_string(),
                            crate::model::BindingTarget::Stage(x) => x.to_string(),
                        };
                        ids.insert("target".into(), json!(pk));
                    }
                }
            }
        }
        let pk_ident = match ids.get("pk") {
            None | Some(Json::Null) => None,
            Some(v) => {
                Some(models::ref_uuid("pk", v)?.ok_or_else(|| "`pk`: expected a UUID".to_owned())?)
            }
        };
        let existing = self.find_existing(f, model, &ids, pk_ident).await?;
        if let (Some(pk), Some((inst, _))) = (pk_ident, &existing) {
            f.pk_map.insert(pk.to_string(), inst.pk());
        }
        if state == State::Absent {
            return match existing {
                Some((inst, _)) => {
                    self.delete(f, inst).await?;
                    Ok(Outcome::Done(EntryAction::Deleted, None))
                }
                None => Ok(Outcome::Done(EntryAction::NothingToDelete, None)),
            };
        }
        if let Some((inst, _)) = &existing {
            match state {
                State::Created => return Ok(Outcome::Done(EntryAction::Kept, Some(*inst))),
                State::MustCreated => {
                    return Err("State is set to must_created and object exists already".into());
                }
                _ => {}
            }
        }
        let attrs = self.resolve(f, &raw.attrs).await?;
        let mut data = match attrs {
            Json::Null => Map::new(),
            Json::Object(m) => m,
            other => return Err(format!("`attrs` must be a mapping, got `{other}`")),
        };
        update_pks(&mut data, &f.pk_map);
        if *model == Model::Prompt {
            if let Some(t) = data.remove("prompt_type") {
                if data.contains_key("type") {
                    f.report.warnings.push(format!(
                        "entries[{index}]: both `type` and `prompt_type` given; `type` wins"
                    ));
                } else {
                    data.insert("type".into(), t);
                }
            }
        }
        let mut ids_data = ids.clone();
        ids_data.remove("pk");
        merge_maps(&mut data, ids_data);
        if !matches!(model, Model::UnsupportedStage(_)) {
            for k in data.keys() {
                if !known.contains(k) {
                    f.report.warnings.push(format!(
                        "entries[{index}]: attribute `{k}` is not supported by authflow and was ignored"
                    ));
                }
            }
            data.retain(|k, _| known.contains(k));
        }
        let (instance, mut merged) = match existing {
            Some((inst, attrs)) => (Some(inst), attrs),
            None => (None, self.defaults(model)),
        };
        for (k, v) in data.clone() {
            merged.insert(k, v);
        }
        let pk = pk_ident.unwrap_or_else(|| derived_pk(model, &ids));
        self.build(f, index, model, instance, pk, merged, &data)
            .await
    }

    fn defaults(&self, model: &Model) -> Map<String, Json> {
        match model {
            Model::Stage(kind) => {
                let mut m = match serde_json::to_value(models::default_stage(*kind)) {
                    Ok(Json::Object(m)) => m,
                    _ => Map::new(),
                };
                m.remove("kind");
                if *kind == StageModel::Identification {
                    for k in models::IDENTIFICATION_REFUSED {
                        m.insert((*k).to_owned(), Json::Null);
                    }
                }
                m
            }
            Model::Policy(kind) => models::policy_defaults(*kind),
            Model::PolicyBinding => models::policy_binding_defaults(),
            Model::Prompt => models::prompt_defaults(),
            Model::Group => models::group_defaults(),
            Model::User => models::user_defaults(),
            _ => Map::new(),
        }
    }

    async fn find_existing(
        &self,
        f: &mut FileRun,
        model: &Model,
        ids: &Map<String, Json>,
        pk: Option<Uuid>,
    ) -> EntryResult<Option<(Instance, Map<String, Json>)>> {
        let mut others = ids.clone();
        others.remove("pk");
        let w = &f.work;
        let hit = |attrs: &Map<String, Json>, obj_pk: Uuid| {
            pk == Some(obj_pk) || (!others.is_empty() && models::attrs_match(attrs, &others))
        };
        Ok(match model {
            Model::Flow => {
                let narrowed: Vec<&crate::model::Flow> = match others.get("slug") {
                    Some(Json::String(s)) if pk.is_none() => {
                        w.flow_by_slug(s).into_iter().collect()
                    }
                    _ => w.flows.values().collect(),
                };
                narrowed.into_iter().find_map(|x| {
                    let a = models::flow_attrs(x);
                    hit(&a, *x.pk.as_uuid()).then_some((Instance::Flow(x.pk), a))
                })
            }
            Model::Stage(_) | Model::UnsupportedStage(_) => {
                let want = match model {
                    Model::Stage(k) => models::stage_model_name(&models::default_stage(*k)),
                    Model::UnsupportedStage(m) => m.to_ascii_lowercase(),
                    _ => String::new(),
                };
                let narrowed: Vec<&Stage> = match others.get("name") {
                    Some(Json::String(s)) if pk.is_none() => {
                        w.stage_by_name(s).into_iter().collect()
                    }
                    _ => w.stages.values().collect(),
                };
                let found = narrowed.into_iter().find_map(|x| {
                    let a = models::stage_attrs(x, w);
                    hit(&a, *x.pk.as_uuid()).then_some((x, a))
                });
                match found {
                    Some((x, _))
                        if !models::stage_model_name(&x.config).eq_ignore_ascii_case(&want) =>
                    {
                        return Err(format!(
                            "the stage `{}` exists as another kind (`{}`); authentik stage names are unique across kinds — rename one of them",
                            x.name,
                            models::stage_model_name(&x.config)
                        ));
                    }
                    Some((x, a)) => Some((Instance::Stage(x.pk), a)),
                    None => None,
                }
            }
            Model::FlowStageBinding => {
                // Cheap typed checks first; the full comparison only for candidates.
                let target = uuid_of(others.get("target"));
                let stage = uuid_of(others.get("stage"));
                let order = others.get("order").and_then(number_of);
                w.bindings
                    .values()
                    .filter(|x| {
                        pk == Some(*x.pk.as_uuid())
                            || (target.is_none_or(|t| t == *x.target.as_uuid())
                                && stage.is_none_or(|t| t == *x.stage.as_uuid())
                                && order.is_none_or(|o| o == f64::from(x.order)))
                    })
                    .find_map(|x| {
                        let a = models::binding_attrs(x);
                        hit(&a, *x.pk.as_uuid()).then_some((Instance::Binding(x.pk), a))
                    })
            }
            Model::PolicyBinding => {
                let target = uuid_of(others.get("target"));
                let order = others.get("order").and_then(number_of);
                w.policy_bindings
                    .values()
                    .filter(|x| {
                        let t = match x.target {
                            crate::model::BindingTarget::Flow(f) => *f.as_uuid(),
                            crate::model::BindingTarget::Stage(b) => *b.as_uuid(),
                        };
                        pk == Some(*x.pk.as_uuid())
                            || (target.is_none_or(|w| w == t)
                                && order.is_none_or(|o| o == f64::from(x.order)))
                    })
                    .find_map(|x| {
                        let a = models::policy_binding_attrs(x);
                        hit(&a, *x.pk.as_uuid()).then_some((Instance::PolicyBinding(x.pk), a))
                    })
            }
            Model::Policy(kind) => {
                let narrowed: Vec<&crate::model::Policy> = match others.get("name") {
                    Some(Json::String(s)) if pk.is_none() => {
                        w.policy_by_name(s).into_iter().collect()
                    }
                    _ => w.policies.values().collect(),
                };
                let found = narrowed.into_iter().find_map(|x| {
                    let a = models::policy_attrs(x);
                    hit(&a, *x.pk.as_uuid()).then_some((x, a))
                });
                match found {
                    Some((x, _)) if models::policy_model_of(&x.kind) != Some(*kind) => {
                        return Err(format!(
                            "the policy `{}` exists as another kind (`{}`); policy names are unique across kinds — rename one of them",
                            x.name,
                            models::policy_model_name(&x.kind)
                        ));
                    }
                    Some((x, a)) => Some((Instance::Policy(x.pk), a)),
                    None => None,
                }
            }
            Model::Prompt => {
                let name = others.get("name").and_then(Json::as_str);
                let key = others.get("field_key").and_then(Json::as_str);
                w.prompts
                    .values()
                    .filter(|x| {
                        pk == Some(*x.pk.as_uuid())
                            || (name.is_none_or(|n| n == x.name)
                                && key.is_none_or(|k| k == x.field_key))
                    })
                    .find_map(|x| {
                        let a = models::prompt_attrs(x);
                        hit(&a, *x.pk.as_uuid()).then_some((Instance::Prompt(x.pk), a))
                    })
            }
            Model::Group => {
                let dir = self.users.dir();
                let mut found = match pk {
                    Some(id) => f
                        .work
                        .users
                        .group(dir, GroupId::from_uuid(id))
                        .await
                        .map_err(|e| e.to_string())?,
                    None => None,
                };
                if found.is_none() {
                    found = match others.get("name") {
                        Some(Json::String(n)) => f
                            .work
                            .users
                            .group_by_name(dir, n)
                            .await
                            .map_err(|e| e.to_string())?,
                        _ if pk.is_some() => None,
                        _ => {
                            return Err(
                                "groups are found by `name` or `pk` (authflow cannot list groups)"
                                    .into(),
                            );
                        }
                    };
                }
                found.and_then(|g| {
                    let a = models::group_attrs(&g);
                    hit(&a, *g.pk.as_uuid()).then_some((Instance::Group(g.pk), a))
                })
            }
            Model::User => {
                let dir = self.users.dir();
                let mut found = match pk {
                    Some(id) => f
                        .work
                        .users
                        .user(dir, UserId::from_uuid(id))
                        .await
                        .map_err(|e| e.to_string())?,
                    None => None,
                };
                if found.is_none() {
                    found = match (others.get("username"), others.get("email")) {
                        (Some(Json::String(n)), _) => f
                            .work
                            .users
                            .user_by_name(dir, n)
                            .await
                            .map_err(|e| e.to_string())?,
                        (None, Some(Json::String(e))) => f
                            .work
                            .users
                            .user_by_email(dir, e)
                            .await
                            .map_err(|e| e.to_string())?,
                        _ if pk.is_some() => None,
                        _ => {
                            return Err("users are found by `username`, `email` or `pk` (authflow cannot list users)".into());
                        }
                    };
                }
                found.and_then(|u| {
                    let a = models::user_attrs(&u);
                    hit(&a, *u.pk.as_uuid()).then_some((Instance::User(u.pk), a))
                })
            }
            Model::AnyStage | Model::MetaApplyBlueprint => None,
        })
    }

    async fn apply_op(&self, f: &mut FileRun, op: Op) -> EntryResult<()> {
        f.work.apply(self.users.dir(), op).await
    }

    async fn delete(&self, f: &mut FileRun, inst: Instance) -> EntryResult<()> {
        let op = match inst {
            Instance::Flow(pk) => {
                let slug = f
                    .work
                    .flows
                    .get(&pk)
                    .map(|x| x.slug.clone())
                    .ok_or("the flow vanished")?;
                Op::DeleteFlow(slug)
            }
            Instance::Stage(pk) => Op::DeleteStage(pk),
            Instance::Binding(pk) => Op::DeleteBinding(pk),
            Instance::Policy(pk) => Op::DeletePolicy(pk),
            Instance::PolicyBinding(pk) => Op::DeletePolicyBinding(pk),
            Instance::Prompt(pk) => {
                f.work.prompts.shift_remove(&pk);
                return self.update_prompt_stages(f, pk, None).await;
            }
            Instance::Group(_) => {
                return Err(
                    "groups cannot be deleted through authflow's UserDirectory; delete it in the directory"
                        .into(),
                );
            }
            Instance::User(pk) => Op::DeleteUser(pk),
        };
        self.apply_op(f, op).await
    }

    /// Rewrites every prompt stage that embeds the prompt `pk` (`None`: removes it).
    async fn update_prompt_stages(
        &self,
        f: &mut FileRun,
        pk: PromptId,
        prompt: Option<&Prompt>,
    ) -> EntryResult<()> {
        let affected: Vec<Stage> = f
            .work
            .stages
            .values()
            .filter(|s| matches!(&s.config, StageConfig::Prompt(p) if p.fields.iter().any(|x| x.pk == pk)))
            .cloned()
            .collect();
        for mut stage in affected {
            let before = stage.clone();
            if let StageConfig::Prompt(p) = &mut stage.config {
                match prompt {
                    Some(new) => {
                        for field in p.fields.iter_mut().filter(|x| x.pk == pk) {
                            *field = new.clone();
                        }
                    }
                    None => p.fields.retain(|x| x.pk != pk),
                }
            }
            if !same(&before, &stage) {
                self.apply_op(f, Op::PutStage(stage)).await?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn build(
        &self,
        f: &mut FileRun,
        index: usize,
        model: &Model,
        instance: Option<Instance>,
        new_pk: Uuid,
        mut merged: Map<String, Json>,
        data: &Map<String, Json>,
    ) -> EntryResult<Outcome> {
        let created_or_updated = |changed: bool| {
            if instance.is_none() {
                EntryAction::Created
            } else if changed {
                EntryAction::Updated
            } else {
                EntryAction::Unchanged
            }
        };
        match model {
            Model::Flow => {
                let old = match instance {
                    Some(Instance::Flow(pk)) => f.work.flows.get(&pk).cloned(),
                    _ => None,
                };
                let pk = old.as_ref().map_or(FlowId::from_uuid(new_pk), |o| o.pk);
                let ptr = old.as_ref().map_or_else(
                    || derived_ptr(pk.as_uuid()),
                    |o| o.policybindingmodel_ptr_id,
                );
                merged.insert("pk".into(), json!(pk.to_string()));
                merged.insert("policybindingmodel_ptr_id".into(), json!(ptr.to_string()));
                let flow: crate::model::Flow = models::typed(merged)?;
                flow.validate().map_err(|e| e.to_string())?;
                let changed = old.as_ref() != Some(&flow);
                if changed {
                    self.apply_op(f, Op::PutFlow(flow)).await?;
                }
                Ok(Outcome::Done(
                    created_or_updated(changed),
                    Some(Instance::Flow(pk)),
                ))
            }
            Model::FlowStageBinding => {
                let old = match instance {
                    Some(Instance::Binding(pk)) => f.work.bindings.get(&pk).cloned(),
                    _ => None,
                };
                for k in ["target", "stage"] {
                    let v = merged.get(k).cloned().unwrap_or(Json::Null);
                    if models::ref_uuid(k, &v)?.is_none() {
                        return Err(format!("`{k}`: This field is required."));
                    }
                }
                let pk = old.as_ref().map_or(BindingId::from_uuid(new_pk), |o| o.pk);
                let ptr = old.as_ref().map_or_else(
                    || derived_ptr(pk.as_uuid()),
                    |o| o.policybindingmodel_ptr_id,
                );
                merged.insert("pk".into(), json!(pk.to_string()));
                merged.insert("policybindingmodel_ptr_id".into(), json!(ptr.to_string()));
                let mut binding: FlowStageBinding = models::typed(merged)?;
                if !binding.evaluate_on_plan && !binding.re_evaluate_policies {
                    binding.evaluate_on_plan = true;
                    f.report.warnings.push(format!(
                        "entries[{index}]: the binding has both evaluate_on_plan and re_evaluate_policies off (authentik's API refuses this, and its planner would never check the binding's policies); imported with evaluate_on_plan on"
                    ));
                }
                let changed = old.as_ref() != Some(&binding);
                if changed {
                    self.apply_op(f, Op::PutBinding(binding)).await?;
                }
                Ok(Outcome::Done(
                    created_or_updated(changed),
                    Some(Instance::Binding(pk)),
                ))
            }
            Model::PolicyBinding => self.build_policy_binding(f, instance, new_pk, merged).await,
            Model::Policy(kind) => {
                let old = match instance {
                    Some(Instance::Policy(pk)) => f.work.policies.get(&pk).cloned(),
                    _ => None,
                };
                let pk = old.as_ref().map_or(PolicyId::from_uuid(new_pk), |o| o.pk);
                let policy = models::build_policy(*kind, pk, merged)?;
                if let crate::model::PolicyKind::Expression { .. } = policy.kind {
                    f.report.warnings.push(format!(
                        "entries[{index}]: expression policy `{}` needs an expression evaluator (feature `python`); without one, its bindings yield their failure_result",
                        policy.name
                    ));
                }
                let changed = old.as_ref().is_none_or(|o| !same(o, &policy));
                if changed {
                    self.apply_op(f, Op::PutPolicy(policy)).await?;
                }
                Ok(Outcome::Done(
                    created_or_updated(changed),
                    Some(Instance::Policy(pk)),
                ))
            }
            Model::Stage(_) | Model::UnsupportedStage(_) => {
                self.build_stage(f, index, model, instance, new_pk, merged, data)
                    .await
            }
            Model::Prompt => {
                let old = match instance {
                    Some(Instance::Prompt(pk)) => f.work.prompts.get(&pk).cloned(),
                    _ => None,
                };
                let pk = old.as_ref().map_or(PromptId::from_uuid(new_pk), |o| o.pk);
                for (flag, field) in [
                    ("initial_value_expression", "initial_value"),
                    ("placeholder_expression", "placeholder"),
                ] {
                    if bool_attr(&merged, flag)? == Some(true) {
                        merged.insert(field.into(), json!(""));
                        f.report.warnings.push(format!(
                            "entries[{index}]: `{field}` is a Python expression (`{flag}`), which authflow does not evaluate here; the field's {field} is left empty"
                        ));
                    }
                    merged.remove(flag);
                }
                merged.insert("pk".into(), json!(pk.to_string()));
                let prompt: Prompt = models::typed(merged)?;
                let changed = old.as_ref().is_none_or(|o| !same(o, &prompt));
                f.work.prompts.insert(pk, prompt.clone());
                f.prompts.push((index, pk));
                if changed {
                    self.update_prompt_stages(f, pk, Some(&prompt)).await?;
                }
                Ok(Outcome::Done(
                    created_or_updated(changed),
                    Some(Instance::Prompt(pk)),
                ))
            }
            Model::Group => self.build_group(f, index, instance, new_pk, merged).await,
            Model::User => self.build_user(f, instance, new_pk, merged).await,
            Model::AnyStage | Model::MetaApplyBlueprint => Err("not an object model".into()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn build_stage(
        &self,
        f: &mut FileRun,
        index: usize,
        model: &Model,
        instance: Option<Instance>,
        new_pk: Uuid,
        mut merged: Map<String, Json>,
        data: &Map<String, Json>,
    ) -> EntryResult<Outcome> {
        let old = match instance {
            Some(Instance::Stage(pk)) => f.work.stages.get(&pk).cloned(),
            _ => None,
        };
        let pk = old.as_ref().map_or(StageId::from_uuid(new_pk), |o| o.pk);
        let name = models::take_name(&mut merged)?;
        let config = match model {
            Model::UnsupportedStage(m) => {
                StageConfig::Unsupported(UnsupportedStage { model: m.clone() })
            }
            Model::Stage(kind) => {
                for (k, allowed) in models::refused_settings(*kind) {
                    match merged.remove(*k) {
                        None | Some(Json::Null) => {}
                        Some(Json::String(v)) if v == *allowed => {}
                        Some(other) => {
                            return Err(format!(
                                "`{k}` is `{other}`, but authflow does not support it (only `{allowed}`); remove it (ignoring it would weaken the stage)"
                            ));
                        }
                    }
                }
                merged.remove("sources");
                for field in models::stage_flow_fields(*kind) {
                    let v = merged.get(*field).cloned().unwrap_or(Json::Null);
                    let slug = models::flow_ref(&f.work, field, &v)?;
                    merged.insert((*field).to_owned(), slug.map_or(Json::Null, Json::String));
                }
                match kind {
                    StageModel::Identification => {
                        for k in models::IDENTIFICATION_REFUSED {
                            if merged.remove(*k).is_some_and(|v| !v.is_null()) {
                                return Err(format!(
                                    "`{k}` is set, but authflow's identification stage does not support it; remove it (ignoring it would weaken the stage)"
                                ));
                            }
                        }
                        let v = merged.get("password_stage").cloned().unwrap_or(Json::Null);
                        if let Some(id) = models::ref_uuid("password_stage", &v)? {
                            match f.work.stages.get(&StageId::from_uuid(id)) {
                                Some(s) if matches!(s.config, StageConfig::Password(_)) => {}
                                Some(_) => {
                                    return Err("`password_stage` is not a password stage".into());
                                }
                                None => {
                                    return Err(format!(
                                        "`password_stage`: no stage has the pk `{id}`"
                                    ));
                                }
                            }
                        }
                        if let Some(Json::Array(sources)) = data.get("sources") {
                            if !sources.is_empty() {
                                f.report.warnings.push(format!(
                                    "entries[{index}]: `sources` are not supported by authflow and were ignored"
                                ));
                            }
                        }
                    }
                    StageModel::Prompt => {
                        let fields = merged.get("fields").cloned().unwrap_or(Json::Null);
                        let pks = models::ref_list("fields", &fields)?;
                        let prompts = models::prompts_for(&f.work, &pks)?;
                        merged.insert(
                            "fields".into(),
                            serde_json::to_value(prompts).map_err(|e| e.to_string())?,
                        );
                        let policies = merged
                            .get("validation_policies")
                            .cloned()
                            .unwrap_or(Json::Null);
                        let ids = models::ref_list("validation_policies", &policies)?;
                        for id in &ids {
                            if !f.work.policies.contains_key(&PolicyId::from_uuid(*id)) {
                                return Err(format!(
                                    "`validation_policies`: no policy has the pk `{id}`"
                                ));
                            }
                        }
                        merged.insert(
                            "validation_policies".into(),
                            json!(ids.iter().map(Uuid::to_string).collect::<Vec<_>>()),
                        );
                    }
                    StageModel::UserWrite => {
                        let v = merged
                            .get("create_users_group")
                            .cloned()
                            .unwrap_or(Json::Null);
                        if let Some(id) = models::ref_uuid("create_users_group", &v)? {
                            let g = f
                                .work
                                .users
                                .group(self.users.dir(), GroupId::from_uuid(id))
                                .await
                                .map_err(|e| e.to_string())?;
                            if g.is_none() {
                                return Err(format!(
                                    "`create_users_group`: no group has the pk `{id}`"
                                ));
                            }
                        }
                    }
                    StageModel::AuthenticatorValidate => {
                        let v = merged
                            .get("configuration_stages")
                            .cloned()
                            .unwrap_or(Json::Null);
                        let ids = models::ref_list("configuration_stages", &v)?;
                        for id in &ids {
                            if !f.work.stages.contains_key(&StageId::from_uuid(*id)) {
                                return Err(format!(
                                    "`configuration_stages`: no stage has the pk `{id}`"
                                ));
                            }
                        }
                        merged.insert(
                            "configuration_stages".into(),
                            json!(ids.iter().map(Uuid::to_string).collect::<Vec<_>>()),
                        );
                    }
                    _ => {}
                }
                models::build_stage_config(*kind, merged)?
            }
            _ => return Err("not a stage".into()),
        };
        let stage = Stage { pk, name, config };
        let changed = old.as_ref().is_none_or(|o| !same(o, &stage));
        if changed {
            self.apply_op(f, Op::PutStage(stage)).await?;
        }
        let action = if old.is_none() {
            EntryAction::Created
        } else if changed {
            EntryAction::Updated
        } else {
            EntryAction::Unchanged
        };
        Ok(Outcome::Done(action, Some(Instance::Stage(pk))))
    }

    async fn build_policy_binding(
        &self,
        f: &mut FileRun,
        instance: Option<Instance>,
        new_pk: Uuid,
        merged: Map<String, Json>,
    ) -> EntryResult<Outcome> {
        let old = match instance {
            Some(Instance::PolicyBinding(pk)) => f.work.policy_bindings.get(&pk).cloned(),
            _ => None,
        };
        let target_v = merged.get("target").cloned().unwrap_or(Json::Null);
        if models::is_skipped(&target_v) {
            return Ok(Outcome::Cascade(
                "its `target` was skipped as unsupported, so there is nothing to bind to".into(),
            ));
        }
        let target =
            models::ref_uuid("target", &target_v)?.ok_or("`target`: This field is required.")?;
        let target = f.work.binding_target(target).ok_or_else(|| {
            format!("`target`: no flow or flow-stage binding has the pk `{target}`")
        })?;
        let get = |k: &str| merged.get(k).cloned().unwrap_or(Json::Null);
        let policy = models::ref_uuid("policy", &get("policy"))?.map(PolicyId::from_uuid);
        let group = models::ref_uuid("group", &get("group"))?.map(GroupId::from_uuid);
        let user = models::ref_uuid("user", &get("user"))?.map(UserId::from_uuid);
        if let Some(p) = policy {
            if !f.work.policies.contains_key(&p) {
                return Err(format!("`policy`: no policy has the pk `{p}`"));
            }
        }
        let dir = self.users.dir();
        if let Some(g) = group {
            if f.work
                .users
                .group(dir, g)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("`group`: no group has the pk `{g}`"));
            }
        }
        if let Some(u) = user {
            if f.work
                .users
                .user(dir, u)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("`user`: no user has the pk `{u}`"));
            }
        }
        let subject =
            BindingSubject::from_fields(policy, group, user).map_err(|e| e.to_string())?;
        #[derive(serde::Deserialize)]
        struct Settings {
            negate: bool,
            enabled: bool,
            order: i32,
            timeout: u32,
            failure_result: bool,
        }
        let mut settings = Map::new();
        for k in ["negate", "enabled", "order", "timeout", "failure_result"] {
            settings.insert(k.into(), get(k));
        }
        let s: Settings = models::typed(settings)?;
        let pk = old
            .as_ref()
            .map_or(PolicyBindingId::from_uuid(new_pk), |o| o.pk);
        let binding = PolicyBinding {
            pk,
            target,
            subject,
            negate: s.negate,
            enabled: s.enabled,
            order: s.order,
            timeout: s.timeout,
            failure_result: s.failure_result,
        };
        let changed = old.as_ref() != Some(&binding);
        if changed {
            self.apply_op(f, Op::PutPolicyBinding(binding)).await?;
        }
        let action = if old.is_none() {
            EntryAction::Created
        } else if changed {
            EntryAction::Updated
        } else {
            EntryAction::Unchanged
        };
        Ok(Outcome::Done(action, Some(Instance::PolicyBinding(pk))))
    }

    async fn build_group(
        &self,
        f: &mut FileRun,
        index: usize,
        instance: Option<Instance>,
        new_pk: Uuid,
        mut merged: Map<String, Json>,
    ) -> EntryResult<Outcome> {
        let dir = self.users.dir();
        let old = match instance {
            Some(Instance::Group(pk)) => f
                .work
                .users
                .group(dir, pk)
                .await
                .map_err(|e| e.to_string())?,
            _ => None,
        };
        let pk = old.as_ref().map_or(GroupId::from_uuid(new_pk), |o| o.pk);
        let name = models::take_name(&mut merged)?;
        let parent = models::ref_uuid("parent", merged.get("parent").unwrap_or(&Json::Null))?
            .map(GroupId::from_uuid);
        if let Some(p) = parent {
            if p == pk {
                return Err("`parent`: a group cannot be its own parent".into());
            }
            if f.work
                .users
                .group(dir, p)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("`parent`: no group has the pk `{p}`"));
            }
        }
        let attributes = match merged.get("attributes") {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(m)) => m.clone(),
            Some(other) => return Err(format!("`attributes`: expected a mapping, got `{other}`")),
        };
        let group = Group {
            pk,
            name,
            parent,
            is_superuser: bool_attr(&merged, "is_superuser")?.unwrap_or(false),
            attributes,
        };
        let changed = old.as_ref() != Some(&group);
        if changed {
            self.apply_op(f, Op::PutGroup(group)).await?;
        }
        // `users`: members to add (authflow cannot list a group's members, so members
        // not listed are not removed).
        let members = models::ref_list("users", merged.get("users").unwrap_or(&Json::Null))?;
        let mut added = false;
        for id in members {
            let uid = UserId::from_uuid(id);
            let mut user = f
                .work
                .users
                .user(dir, uid)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("`users`: no user has the pk `{id}`"))?;
            if !user.groups.contains(&pk) {
                user.groups.push(pk);
                self.apply_op(f, Op::UpdateUser(user)).await?;
                added = true;
            }
        }
        if merged.contains_key("users") {
            f.report.warnings.push(format!(
                "entries[{index}]: `users` only adds members in authflow; members not listed are kept"
            ));
        }
        let action = if old.is_none() {
            EntryAction::Created
        } else if changed || added {
            EntryAction::Updated
        } else {
            EntryAction::Unchanged
        };
        Ok(Outcome::Done(action, Some(Instance::Group(pk))))
    }

    async fn build_user(
        &self,
        f: &mut FileRun,
        instance: Option<Instance>,
        new_pk: Uuid,
        merged: Map<String, Json>,
    ) -> EntryResult<Outcome> {
        let dir = self.users.dir();
        let old = match instance {
            Some(Instance::User(pk)) => f
                .work
                .users
                .user(dir, pk)
                .await
                .map_err(|e| e.to_string())?,
            _ => None,
        };
        let pk = old.as_ref().map_or(UserId::from_uuid(new_pk), |o| o.pk);
        let username = match string_attr(&merged, "username")? {
            Some(u) if !u.trim().is_empty() => u,
            _ => return Err("`username`: This field is required.".into()),
        };
        let mut groups = Vec::new();
        for id in models::ref_list("groups", merged.get("groups").unwrap_or(&Json::Null))? {
            let g = GroupId::from_uuid(id);
            if f.work
                .users
                .group(dir, g)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("`groups`: no group has the pk `{id}`"));
            }
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let attributes = match merged.get("attributes") {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(m)) => m.clone(),
            Some(other) => return Err(format!("`attributes`: expected a mapping, got `{other}`")),
        };
        let user = User {
            pk,
            username,
            name: string_attr(&merged, "name")?.unwrap_or_default(),
            email: string_attr(&merged, "email")?.unwrap_or_default(),
            is_active: bool_attr(&merged, "is_active")?.unwrap_or(true),
            path: string_attr(&merged, "path")?.unwrap_or_default(),
            user_type: string_attr(&merged, "type")?.unwrap_or_else(|| "internal".into()),
            attributes,
            groups,
        };
        let password = string_attr(&merged, "password")?.filter(|p| !p.is_empty());
        let hash = string_attr(&merged, "password_hash")?.filter(|h| !h.is_empty());
        if password.is_some() && hash.is_some() {
            return Err("give either `password` or `password_hash`, not both".into());
        }
        if let Some(h) = &hash {
            if !(h.starts_with("pbkdf2_sha256$") || h.starts_with("$argon2")) {
                return Err(
                    "`password_hash`: authflow verifies Django `pbkdf2_sha256$…` and argon2 (`$argon2…`) hashes only"
                        .into(),
                );
            }
            if !is_memory_users(&self.users) {
                return Err(
                    "`password_hash`: this user directory cannot take password hashes (only the in-memory one can); give `password` instead"
                        .into(),
                );
            }
        }
        let Some(old) = old else {
            if let Some(other) = f
                .work
                .users
                .user(dir, pk)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!(
                    "the user `{}` already has the pk `{pk}` this entry would create its user with; give its current username in `identifiers`",
                    other.username
                ));
            }
            self.apply_op(
                f,
                Op::CreateUser {
                    user,
                    password: password.map(Password::new),
                    hash,
                },
            )
            .await?;
            return Ok(Outcome::Done(
                EntryAction::Created,
                Some(Instance::User(pk)),
            ));
        };
        let mut changed = old != user;
        if changed {
            self.apply_op(f, Op::UpdateUser(user.clone())).await?;
        }
        if let Some(p) = password {
            let p = Password::new(p);
            let current = dir
                .verify_password(Some(pk), &p)
                .await
                .map_err(|e| e.to_string())?;
            if !current {
                self.apply_op(f, Op::SetPassword(pk, p)).await?;
                changed = true;
            }
        }
        if let Some(h) = hash {
            self.apply_op(f, Op::SetHash(user, h)).await?;
            changed = true;
        }
        let action = if changed {
            EntryAction::Updated
        } else {
            EntryAction::Unchanged
        };
        Ok(Outcome::Done(action, Some(Instance::User(pk))))
    }

    /// Writes validated changes to the real stores.
    async fn commit(&self, file: &str, ops: &[Op]) -> Result<(), BlueprintError> {
        let flows = self.flows.store();
        let dir = self.users.dir();
        let total = ops.len();
        for (applied, op) in ops.iter().enumerate() {
            let result: Result<(), StoreError> = match op.clone() {
                Op::PutFlow(x) => flows.put_flow(x).await,
                Op::DeleteFlow(slug) => flows.delete_flow(&slug).await.map(|_| ()),
                Op::PutStage(x) => flows.put_stage(x).await,
                Op::DeleteStage(pk) => flows.delete_stage(pk).await.map(|_| ()),
                Op::PutBinding(x) => flows.put_binding(x).await,
                Op::DeleteBinding(pk) => flows.delete_binding(pk).await.map(|_| ()),
                Op::PutPolicy(x) => flows.put_policy(x).await,
                Op::DeletePolicy(pk) => flows.delete_policy(pk).await.map(|_| ()),
                Op::PutPolicyBinding(x) => flows.put_policy_binding(x).await,
                Op::DeletePolicyBinding(pk) => flows.delete_policy_binding(pk).await.map(|_| ()),
                Op::PutGroup(g) => dir.put_group(g).await,
                Op::CreateUser {
                    user,
                    password,
                    hash,
                } => match (hash, self.users) {
                    (Some(h), UserTarget::Memory(m)) => m.import_user(user, Some(h)),
                    (Some(_), UserTarget::Directory(_)) => Err(StoreError::Unavailable(
                        "this user directory cannot take password hashes".into(),
                    )),
                    (None, _) => dir
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
                Op::UpdateUser(u) => dir.update_user(&u).await,
                Op::SetPassword(pk, p) => dir.set_password(pk, &p).await,
                Op::SetHash(user, h) => match self.users {
                    UserTarget::Memory(m) => m.import_user(user, Some(h)),
                    UserTarget::Directory(_) => Err(StoreError::Unavailable(
                        "this user directory cannot take password hashes".into(),
                    )),
                },
                Op::DeleteUser(pk) => dir.delete_user(pk).await.map(|_| ()),
            };
            result.map_err(|error| BlueprintError::Commit {
                file: file.to_owned(),
                applied,
                total,
                error,
            })?;
        }
        Ok(())
    }
}
