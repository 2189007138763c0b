//! authentik blueprints (feature `blueprints`): apply blueprint YAML to a
//! [`FlowStore`](crate::store::FlowStore) and a [`UserDirectory`](crate::store::UserDirectory),
//! and [`export`] flows as blueprints.
//!
//! A blueprint is authentik's declarative format (`version: 1`, `metadata`, `context`,
//! `entries`); each entry names a `model`, the `identifiers` that find the object,
//! its `attrs`, an optional `id` other entries refer to with `!KeyOf`, a `state`
//! (`present`, `created`, `must_created`, `absent`) and `conditions`. authflow reads
//! authentik's own blueprints unchanged:
//!
//! | model | authflow |
//! | --- | --- |
//! | `authentik_flows.flow`, `authentik_flows.flowstagebinding`, `authentik_policies.policybinding` | [`Flow`](crate::model::Flow), [`FlowStageBinding`](crate::model::FlowStageBinding), [`PolicyBinding`](crate::model::PolicyBinding) |
//! | `authentik_stages_{identification,password,prompt,user_write,user_login,user_logout,user_delete,deny,dummy,redirect,consent,authenticator_validate}.*stage` | [`StageConfig`](crate::model::StageConfig) |
//! | `authentik_stages_prompt.prompt` | a [`Prompt`](crate::model::Prompt), kept inside the prompt stages that use it (accepts `type` and the older `prompt_type`) |
//! | `authentik_policies_{expression,password,reputation,dummy}.*policy` | [`PolicyKind`](crate::model::PolicyKind) |
//! | `authentik_core.group`, `authentik_core.user` | [`Group`](crate::store::Group), [`User`](crate::store::User) (`password` is hashed by the directory; the in-memory directory also takes a Django `password_hash`) |
//! | `authentik_blueprints.metaapplyblueprint` | applies the blueprint with that `metadata.name` (or `path`) from the same directory first |
//!
//! Tags: `!KeyOf`, `!Find`, `!Context`, `!Format`, `!Env`, `!If`, `!Condition`,
//! `!Enumerate`/`!Index`/`!Value`, `!AtIndex`, `!ParseJSON`, and `!File` below
//! [`ImportOptions::file_base`] (off without one). `!FindObject` is not supported.
//! With [`ImportOptions::skip_unsupported`], an entry that uses an unsupported or
//! disabled tag is skipped, and so are the entries that refer to it; the rest of the
//! file applies.
//!
//! Guarantees:
//! - **Idempotent.** Entries are matched by their identifiers (a flow by slug, a stage
//!   by name, a binding by target, stage and order, …): applying a file twice changes
//!   nothing; an edited file updates objects in place, keeping their primary keys;
//!   attributes an entry does not mention keep their values, as in authentik.
//! - **All or nothing per file.** Entries apply to a working copy; the stores are
//!   written only when the whole file succeeded. Errors name the file, the entry and
//!   the model; YAML errors give line and column. Files over
//!   [`MAX_BLUEPRINT_BYTES`] or with more than [`MAX_ENTRIES`] entries are refused.
//! - **Fails closed.** A model authflow does not have is an error, unless
//!   [`ImportOptions::skip_unsupported`]: then a stage of an unsupported kind is
//!   kept as a stage that denies access naming its kind, other entries are left out,
//!   and every such entry is listed in [`ImportReport::skipped`]. Settings that
//!   would weaken a stage if ignored (an identification stage's captcha) are errors.
//!   An expression policy is an error unless [`ImportOptions::expressions`] says the
//!   engine has an expression evaluator: without one it could only fail, silently
//!   changing the flow (in `flows-login-2fa`, skipping the MFA stage).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use authflow::blueprint::{ImportOptions, Importer};
//! let stores = authflow::memory::Stores::new();
//! let yaml = r#"
//! version: 1
//! metadata:
//!   name: Example - Deny
//! context:
//!   who: strangers
//! entries:
//!   - model: authentik_flows.flow
//!     id: flow
//!     identifiers: {slug: closed}
//!     attrs: {name: Closed, title: Closed, designation: authentication}
//!   - model: authentik_stages_deny.denystage
//!     id: deny
//!     identifiers: {name: deny}
//!     attrs: {deny_message: !Format ["Closed to %s.", !Context who]}
//!   - model: authentik_flows.flowstagebinding
//!     identifiers: {target: !KeyOf flow, stage: !KeyOf deny, order: 10}
//! "#;
//! let importer = Importer::for_stores(&stores).options(ImportOptions::new().skip_unsupported(false));
//! let report = importer.apply_str("deny.yaml", yaml).await?;
//! assert_eq!(report.changes, 3);
//! # Ok(()) }
//! ```

mod apply;
mod attrs;
mod build;
mod build_directory;
mod directory_models;
mod error;
mod export;
mod find;
mod library;
mod matching;
mod models;
mod objects;
mod options;
mod parse;
mod python;
mod refs;
mod report;
mod skip;
mod support;
mod tags;
mod target;
mod work;

pub use apply::Importer;
pub use error::BlueprintError;
pub use export::export;
pub use library::Library;
pub use options::ImportOptions;
pub use parse::{
    Blueprint, BlueprintMetadata, LABEL_INSTANTIATE, MAX_BLUEPRINT_BYTES, MAX_ENTRIES, parse,
};
pub use report::{DirectoryReport, EntryAction, EntryReport, ImportReport, SkippedEntry};
pub use target::{FlowTarget, UserTarget};
