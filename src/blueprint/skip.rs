//! Entries that use a tag authflow does not support (`!FindObject`, or `!File`
//! without [`ImportOptions::file_base`](super::ImportOptions::file_base)): under
//! `skip_unsupported` they are skipped — a stage is kept as one that denies access,
//! like a stage of an unsupported kind — and so are the entries that refer to them;
//! the rest of the file applies.

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::apply::{FileRun, Importer, Outcome, Run, State};
use super::error::BlueprintError;
use super::models::{self, Model};
use super::report::{EntryAction, EntryReport, SkippedEntry};

impl Importer<'_> {
    /// One entry of a file.
    pub(super) async fn entry(
        &self,
        run: &mut Run,
        f: &mut FileRun,
        index: usize,
    ) -> Result<(), BlueprintError> {
        f.unsupported_tag = None;
        let result = self.entry_inner(run, f, index).await;
        let reason = f.unsupported_tag.take();
        match (result, reason) {
            (Err(BlueprintError::Entry { model, id, .. }), Some(reason))
                if self.options.skip_unsupported =>
            {
                self.skip_for_tag(f, index, model, id, reason).await;
                Ok(())
            }
            (result, _) => result,
        }
    }

    async fn skip_for_tag(
        &self,
        f: &mut FileRun,
        index: usize,
        model: String,
        id: Option<String>,
        reason: String,
    ) {
        let Some(raw) = f.bp.entries.get(index).cloned() else {
            return;
        };
        let identifiers = self
            .resolve(f, &raw.identifiers)
            .await
            .unwrap_or(Json::Null);
        // A stage is kept (without its attributes) as one that denies access: leaving
        // it out would let a flow skip a check.
        let mut kept = None;
        if models::is_stage_model(&model) {
            let bare = super::parse::RawEntry {
                attrs: Yaml::Null,
                ..raw.clone()
            };
            let as_unsupported = Model::UnsupportedStage(model.trim().to_ascii_lowercase());
            if let Ok(Outcome::Done(_, Some(inst))) = self
                .object(f, index, &bare, &as_unsupported, State::Present)
                .await
            {
                kept = Some(inst.pk());
            }
        }
        f.unsupported_tag = None;
        let denying = kept.is_some();
        f.report.skipped.push(SkippedEntry {
            index,
            model: model.clone(),
            id: id.clone(),
            identifiers,
            kept_as_denying_stage: denying,
            reason: if denying {
                format!("{reason}; the stage is kept as one that denies access")
            } else {
                reason
            },
        });
        if let Some(r) = f.refs.get_mut(index) {
            match &kept {
                Some(pk) => r.instance = Some(pk.clone()),
                None => r.skipped = Some(model.clone()),
            }
        }
        f.report.entries.push(EntryReport {
            index,
            model,
            id,
            action: if denying {
                EntryAction::ImportedAsUnsupported
            } else {
                EntryAction::Skipped
            },
            pk: kept,
        });
    }
}
