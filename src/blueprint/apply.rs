//! Applying a blueprint: the [`Importer`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::attrs::{EntryResult, bool_attr};
use super::library::{Library, read_capped};
use super::models::{self, Model};
use super::options::ImportOptions;
use super::python::truthy;
use super::report::{DirectoryReport, EntryAction, EntryReport, ImportReport, SkippedEntry};
use super::tags::{Context, EntryRef, EnvSource, Resolver};
use super::target::{FlowTarget, UserTarget};
use super::work::{Op, Work};
use super::{Blueprint, BlueprintError, parse};
use crate::model::{
    BindingId, FlowId, GroupId, PolicyBindingId, PolicyId, PromptId, StageConfig, StageId, UserId,
};

/// Applies authentik blueprints to a [`FlowStore`](crate::store::FlowStore) and a [`UserDirectory`](crate::store::UserDirectory).
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
    pub(super) flows: FlowTarget<'a>,
    pub(super) users: UserTarget<'a>,
    pub(super) options: ImportOptions,
}

/// State shared by the files of one run (cycles, files already applied).
pub(super) struct Run {
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
pub(super) enum State {
    Present,
    Created,
    MustCreated,
    Absent,
}

/// An existing object an entry's identifiers matched.
#[derive(Debug, Clone)]
pub(super) enum Instance {
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
    pub(super) fn pk(&self) -> String {
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
pub(super) struct FileRun {
    pub(super) file: String,
    pub(super) key: String,
    pub(super) bp: Blueprint,
    pub(super) work: Work,
    pub(super) refs: Vec<EntryRef>,
    /// Entry indexes by `id` (for `!KeyOf`).
    pub(super) ids: HashMap<String, Vec<usize>>,
    pub(super) report: ImportReport,
    /// authentik's pk map: a `pk` identifier → the pk of the object it matched.
    pub(super) pk_map: HashMap<String, String>,
    /// Prompts this file created or updated (to warn about unused ones).
    pub(super) prompts: Vec<(usize, PromptId)>,
    /// The last tag authflow does not support that an entry met (see
    /// [`Resolver::unsupported`]); reset per entry.
    pub(super) unsupported_tag: Option<String>,
}

/// What building an entry's object decided.
pub(super) enum Outcome {
    Done(EntryAction, Option<Instance>),
    /// Left out because something it needs was skipped.
    Cascade(String),
}

/// A file's report and the changes it wrote.
type FileFuture<'s> =
    Pin<Box<dyn Future<Output = Result<(ImportReport, Vec<Op>), BlueprintError>> + Send + 's>>;

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

    /// Sets [`ImportOptions::expressions`].
    pub fn expressions(mut self, yes: bool) -> Self {
        self.options.expressions = yes;
        self
    }

    /// Sets [`ImportOptions::file_base`].
    pub fn file_base(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.file_base = Some(dir.into());
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
                unsupported_tag: None,
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

    pub(super) async fn resolve(&self, f: &mut FileRun, v: &Yaml) -> EntryResult<Json> {
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
        )
        .with_file_base(self.options.file_base.as_deref());
        let out = r.resolve(v).await;
        if let Some(tag) = r.unsupported.take() {
            f.unsupported_tag = Some(tag);
        }
        out
    }

    pub(super) async fn entry_inner(
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

    /// Writes validated changes to the real stores.
    async fn commit(&self, file: &str, ops: &[Op]) -> Result<(), BlueprintError> {
        let flows = self.flows.store();
        let total = ops.len();
        for (applied, op) in ops.iter().enumerate() {
            let result = super::target::write(flows, self.users, op.clone()).await;
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
