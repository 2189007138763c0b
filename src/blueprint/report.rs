//! What an import did: per entry, skipped entries and warnings.

use serde::Serialize;
use serde_json::Value as Json;

/// What happened to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryAction {
    /// A new object was created.
    Created,
    /// An existing object (matched by its identifiers) was changed in place.
    Updated,
    /// The object already was as described.
    Unchanged,
    /// `state: created` and the object exists: left as it is.
    Kept,
    /// `state: absent`: the object was deleted.
    Deleted,
    /// `state: absent` and there was nothing to delete.
    NothingToDelete,
    /// A `conditions` entry was false: the entry was left out.
    ConditionsNotMet,
    /// A stage kind authflow does not have, kept (with `skip_unsupported`) as a stage
    /// that denies access when a flow reaches it.
    ImportedAsUnsupported,
    /// Left out with `skip_unsupported` (also listed in [`ImportReport::skipped`]).
    Skipped,
    /// `metaapplyblueprint`: the blueprint was applied (see
    /// [`ImportReport::dependencies`]).
    AppliedBlueprint,
    /// `metaapplyblueprint`: the blueprint had already been applied in this run.
    BlueprintAlreadyApplied,
    /// `metaapplyblueprint` with `required: false`: no such blueprint.
    BlueprintNotFound,
}

impl EntryAction {
    /// Lower-case name, as in [`ImportReport::summary`].
    pub fn as_str(&self) -> &'static str {
        match self {
            EntryAction::Created => "created",
            EntryAction::Updated => "updated",
            EntryAction::Unchanged => "unchanged",
            EntryAction::Kept => "kept",
            EntryAction::Deleted => "deleted",
            EntryAction::NothingToDelete => "nothing to delete",
            EntryAction::ConditionsNotMet => "conditions not met",
            EntryAction::ImportedAsUnsupported => "imported as unsupported",
            EntryAction::Skipped => "skipped",
            EntryAction::AppliedBlueprint => "applied blueprint",
            EntryAction::BlueprintAlreadyApplied => "blueprint already applied",
            EntryAction::BlueprintNotFound => "blueprint not found",
        }
    }
}

/// One entry's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryReport {
    /// Index in `entries` (0-based).
    pub index: usize,
    /// The model.
    pub model: String,
    /// The entry's `id`.
    pub id: Option<String>,
    /// What happened.
    pub action: EntryAction,
    /// The object's primary key, when there is one.
    pub pk: Option<String>,
}

/// An entry `skip_unsupported` let through without importing it as such.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedEntry {
    /// Index in `entries` (0-based).
    pub index: usize,
    /// The model.
    pub model: String,
    /// The entry's `id`.
    pub id: Option<String>,
    /// Its resolved identifiers (`null` when they could not be resolved).
    pub identifiers: Json,
    /// True when it was kept as a stage that denies access
    /// ([`StageConfig::Unsupported`](crate::model::StageConfig::Unsupported)); false
    /// when it was left out.
    pub kept_as_denying_stage: bool,
    /// Why.
    pub reason: String,
}

/// The outcome of applying one blueprint file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// The file (path or name as given).
    pub file: String,
    /// Its `metadata.name`.
    pub name: Option<String>,
    /// Every entry, in order.
    pub entries: Vec<EntryReport>,
    /// Entries `skip_unsupported` let through (a subset of `entries`).
    pub skipped: Vec<SkippedEntry>,
    /// Things authflow ignored or changed (unsupported attributes, Python expressions
    /// it cannot evaluate, …).
    pub warnings: Vec<String>,
    /// Blueprints applied by `metaapplyblueprint` entries, in order.
    pub dependencies: Vec<ImportReport>,
    /// Store writes made for this file (0 when it changed nothing).
    pub changes: usize,
}

impl ImportReport {
    /// How many entries had this outcome.
    pub fn count(&self, action: EntryAction) -> usize {
        self.entries.iter().filter(|e| e.action == action).count()
    }

    /// This report's dependencies (recursively, in the order they were applied)
    /// followed by this report.
    pub fn all(&self) -> Vec<&ImportReport> {
        let mut out = Vec::new();
        for d in &self.dependencies {
            out.extend(d.all());
        }
        out.push(self);
        out
    }

    /// One line: `file (name): 3 created, 1 unchanged, 1 skipped; 2 warnings`.
    pub fn summary(&self) -> String {
        const ORDER: &[EntryAction] = &[
            EntryAction::Created,
            EntryAction::Updated,
            EntryAction::Unchanged,
            EntryAction::Kept,
            EntryAction::Deleted,
            EntryAction::NothingToDelete,
            EntryAction::ConditionsNotMet,
            EntryAction::ImportedAsUnsupported,
            EntryAction::Skipped,
            EntryAction::AppliedBlueprint,
            EntryAction::BlueprintAlreadyApplied,
            EntryAction::BlueprintNotFound,
        ];
        let counts: Vec<String> = ORDER
            .iter()
            .filter_map(|a| {
                let n = self.count(*a);
                (n > 0).then(|| format!("{n} {}", a.as_str()))
            })
            .collect();
        let mut s = match &self.name {
            Some(n) => format!("{} ({n}): ", self.file),
            None => format!("{}: ", self.file),
        };
        if counts.is_empty() {
            s.push_str("no entries");
        } else {
            s.push_str(&counts.join(", "));
        }
        if !self.warnings.is_empty() {
            s.push_str(&format!("; {} warnings", self.warnings.len()));
        }
        s
    }
}

/// The outcome of applying a directory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DirectoryReport {
    /// Files applied, in order (files applied as another's dependency are inside that
    /// file's [`ImportReport::dependencies`]).
    pub reports: Vec<ImportReport>,
    /// Files left alone because they are labelled
    /// `blueprints.goauthentik.io/instantiate: "false"` (authentik's examples).
    pub not_instantiated: Vec<String>,
}

impl DirectoryReport {
    /// Every applied file's report, dependencies before the files that needed them.
    pub fn files(&self) -> Vec<&ImportReport> {
        self.reports.iter().flat_map(ImportReport::all).collect()
    }
}
