//! How an import behaves: [`ImportOptions`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::library::Library;

/// How an import behaves.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Let entries of models authflow does not have through instead of failing: a
    /// stage of an unsupported kind is kept as a stage that denies access when a flow
    /// reaches it (so its bindings still exist: fails closed); any other unsupported
    /// entry is left out. Every such entry is listed in [`ImportReport::skipped`](super::ImportReport::skipped).
    pub skip_unsupported: bool,
    /// Context merged over each blueprint's own `context` (authentik's instance
    /// context), read by `!Context`.
    pub context: Map<String, Json>,
    /// What `!Env` reads: `None` for the process environment, or a fixed map (to
    /// keep blueprints away from the server's secrets).
    pub env: Option<BTreeMap<String, String>>,
    /// Where `metaapplyblueprint` entries look for blueprints. Defaults to the
    /// directory of the file ([`Importer::apply_file`](super::Importer::apply_file)) or the directory being applied.
    pub library: Option<Arc<Library>>,
    /// [`Importer::apply_dir`](super::Importer::apply_dir): also apply files labelled
    /// `blueprints.goauthentik.io/instantiate: "false"` (authentik does not).
    pub apply_not_instantiated: bool,
    /// The engine that runs the imported flows has an expression evaluator
    /// ([`EngineBuilder::expressions`](crate::EngineBuilder::expressions), e.g.
    /// `authflow::python::PythonEvaluator`). Without it an expression policy is refused:
    /// it could only fail, and a failing policy silently changes what a flow does.
    pub expressions: bool,
    /// The directory `!File` may read from (authentik reads any path the server
    /// can). `None`: `!File` is refused — with [`skip_unsupported`](Self::skip_unsupported)
    /// the entries that use it are skipped. Relative paths are read below it;
    /// absolute paths and `..` must stay inside it.
    pub file_base: Option<std::path::PathBuf>,
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

    /// Sets [`expressions`](Self::expressions).
    pub fn expressions(mut self, yes: bool) -> Self {
        self.expressions = yes;
        self
    }

    /// Sets [`file_base`](Self::file_base).
    pub fn file_base(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.file_base = Some(dir.into());
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
