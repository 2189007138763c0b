//! [`BlueprintError`]: why a blueprint could not be applied.

use crate::store::StoreError;

/// Why a blueprint was not applied. Every variant names the file; nothing of that file
/// was written, except for [`BlueprintError::Commit`], which only a store that failed
/// (or changed underneath) while writing can cause.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BlueprintError {
    /// The file is larger than [`MAX_BLUEPRINT_BYTES`](super::MAX_BLUEPRINT_BYTES).
    #[error("{file}: the file has {size} bytes, more than the {limit} bytes a blueprint may have")]
    TooLarge {
        /// The file.
        file: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file is not valid YAML.
    #[error("{file}: invalid YAML{}: {message}", location(*line, *column))]
    Yaml {
        /// The file.
        file: String,
        /// 1-based line of the problem, when the parser knows it.
        line: Option<usize>,
        /// 1-based column of the problem, when the parser knows it.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// The document is YAML but not a blueprint (no `entries`, `version` not 1, …).
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// An entry cannot be applied: a tag did not resolve, a field is invalid, a
    /// reference points nowhere, the store rejected the object, ….
    #[error(
        "{file}: entries[{index}] (model `{model}`{}): {message}",
        id_suffix(id)
    )]
    Entry {
        /// The file.
        file: String,
        /// Index of the entry in `entries` (0-based).
        index: usize,
        /// The entry's model as written.
        model: String,
        /// The entry's `id`, if it has one.
        id: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// An entry's model (or stage kind) is one authflow does not have.
    #[error(
        "{file}: entries[{index}]{}: model `{model}` is not supported by authflow; {hint}",
        id_suffix(id)
    )]
    UnsupportedModel {
        /// The file.
        file: String,
        /// Index of the entry in `entries` (0-based).
        index: usize,
        /// The entry's `id`, if it has one.
        id: Option<String>,
        /// The model.
        model: String,
        /// What to do about it.
        hint: String,
    },
    /// `metaapplyblueprint` entries apply each other in a cycle.
    #[error("{file}: entries[{index}]: metaapplyblueprint cycle: {}", chain.join(" -> "))]
    Cycle {
        /// The file whose entry closes the cycle.
        file: String,
        /// Index of that entry.
        index: usize,
        /// The blueprints of the cycle, first and last being the same.
        chain: Vec<String>,
    },
    /// A file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Everything was validated, but the store failed while the changes were written:
    /// the first `applied` of `total` changes are in the store.
    #[error("{file}: the store failed after {applied} of {total} changes were written: {error}")]
    Commit {
        /// The file.
        file: String,
        /// Changes written before the failure.
        applied: usize,
        /// Changes in all.
        total: usize,
        /// The store's error.
        error: StoreError,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

fn id_suffix(id: &Option<String>) -> String {
    match id {
        Some(id) => format!(", id `{id}`"),
        None => String::new(),
    }
}

impl BlueprintError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            BlueprintError::TooLarge { file, .. }
            | BlueprintError::Yaml { file, .. }
            | BlueprintError::Invalid { file, .. }
            | BlueprintError::Entry { file, .. }
            | BlueprintError::UnsupportedModel { file, .. }
            | BlueprintError::Cycle { file, .. }
            | BlueprintError::Commit { file, .. } => file,
            BlueprintError::Io { path, .. } => path,
        }
    }
}
