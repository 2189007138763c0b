//! Building authflow's objects from an entry's merged attributes, checking every
//! reference, and recording the changes.

use serde_json::{Map, Value as Json, json};
use uuid::Uuid;

use super::apply::{FileRun, Importer, Instance, Outcome};
use super::attrs::{EntryResult, bool_attr};
use super::models::{self, Model, StageModel};
use super::objects::derived_ptr;
use super::report::{EntryAction, SkippedEntry};
use super::target::UserTarget;
use super::work::{FlowOp, Op};
use crate::model::{
    BindingId, BindingSubject, FlowId, FlowStageBinding, GroupId, PolicyBinding, PolicyBindingId,
    PolicyId, Prompt, PromptId, Stage, StageConfig, StageId, UnsupportedStage, UserId,
};

pub(super) fn is_memory_users(t: &UserTarget<'_>) -> bool {
    matches!(t, UserTarget::Memory(_))
}

fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

impl Importer<'_> {
    pub(super) fn defaults(&self, model: &Model) -> Map<String, Json> {
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

    /// Rewrites every prompt stage that embeds the prompt `pk` (`None`: removes it).
    pub(super) async fn update_prompt_stages(
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
                self.apply_op(f, Op::Flow(FlowOp::PutStage(stage))).await?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn build(
        &self,
        f: &mut FileRun,
        index: usize,
        model: &Model,
        instance: Option<Instance>,
        new_pk: Uuid,
        mut merged: Map<String, Json>,
        data: &Map<String, Json>,
    ) -> EntryResult<Outcome> {
        let created_or_updated = |changed: bool| entry_action(instance.is_some(), changed);
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
                    self.apply_op(f, Op::Flow(FlowOp::PutFlow(flow))).await?;
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
                    self.apply_op(f, Op::Flow(FlowOp::PutBinding(binding)))
                        .await?;
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
                    if !self.options.expressions {
                        return Err(format!(
                            "expression policy `{}` cannot run: no expression evaluator is configured (build with the `python` feature, give the engine `authflow::python::PythonEvaluator` and import with `ImportOptions::expressions`)",
                            policy.name
                        ));
                    }
                }
                let changed = old.as_ref().is_none_or(|o| !same(o, &policy));
                if changed {
                    self.apply_op(f, Op::Flow(FlowOp::PutPolicy(policy)))
                        .await?;
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
                for flag in ["initial_value_expression", "placeholder_expression"] {
                    if bool_attr(&merged, flag)? == Some(true) && !self.options.expressions {
                        return Err(format!(
                            "`{flag}` is set, but the engine has no expression evaluator to run it (import with `ImportOptions::expressions(true)` when it has one, e.g. `authflow::python::PythonEvaluator`)"
                        ));
                    }
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
    pub(super) async fn build_stage(
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
                        resolve_refs(&mut merged, "validation_policies", "policy", |id| {
                            f.work.policies.contains_key(&PolicyId::from_uuid(id))
                        })?;
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
                        resolve_refs(&mut merged, "configuration_stages", "stage", |id| {
                            f.work.stages.contains_key(&StageId::from_uuid(id))
                        })?;
                    }
                    _ => {}
                }
                models::build_stage_config(*kind, merged)?
            }
            _ => return Err("not a stage".into()),
        };
        let mut stage = Stage { pk, name, config };
        if let (Err(errors), Model::Stage(_)) = (stage.validate(), model) {
            let fields: Vec<&str> = errors.iter().map(|(k, _)| k).collect();
            if !self.options.skip_unsupported {
                return Err(format!(
                    "{errors}; remove the setting, or import with `skip_unsupported` to keep the stage as one that denies access when a flow reaches it"
                ));
            }
            // Kept as a stage that denies access (never left out: a flow without it
            // would skip a check).
            let model_name = models::canonical_name(model);
            stage.config = StageConfig::Unsupported(UnsupportedStage {
                model: model_name.clone(),
            });
            f.report.skipped.push(SkippedEntry {
                index,
                model: model_name,
                id: None,
                identifiers: json!({"name": stage.name}),
                kept_as_denying_stage: true,
                reason: format!(
                    "authflow does not implement {}; a flow that reaches the stage denies access",
                    fields
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let changed = old.as_ref().is_none_or(|o| !same(o, &stage));
        if changed {
            self.apply_op(f, Op::Flow(FlowOp::PutStage(stage))).await?;
        }
        let action = entry_action(old.is_some(), changed);
        Ok(Outcome::Done(action, Some(Instance::Stage(pk))))
    }

    pub(super) async fn build_policy_binding(
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
        let user = models::ref_uuid("user", &get("user"))?.map(UserId::from);
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
        if let Some(u) = &user {
            if f.work
                .users
                .user(dir, u.clone())
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
            self.apply_op(f, Op::Flow(FlowOp::PutPolicyBinding(binding)))
                .await?;
        }
        let action = entry_action(old.is_some(), changed);
        Ok(Outcome::Done(action, Some(Instance::PolicyBinding(pk))))
    }
}

/// What applying an entry did, from whether the object existed and whether it changed.
pub(super) fn entry_action(existed: bool, changed: bool) -> EntryAction {
    match (existed, changed) {
        (false, _) => EntryAction::Created,
        (true, true) => EntryAction::Updated,
        (true, false) => EntryAction::Unchanged,
    }
}

/// Resolves the list of references under `key`, checks each names an existing object
/// (`what` in the error) and writes it back as pk strings.
fn resolve_refs(
    merged: &mut Map<String, Json>,
    key: &str,
    what: &str,
    exists: impl Fn(Uuid) -> bool,
) -> Result<(), String> {
    let value = merged.get(key).cloned().unwrap_or(Json::Null);
    let ids = models::ref_list(key, &value)?;
    if let Some(id) = ids.iter().find(|id| !exists(**id)) {
        return Err(format!("`{key}`: no {what} has the pk `{id}`"));
    }
    merged.insert(
        key.into(),
        json!(ids.iter().map(Uuid::to_string).collect::<Vec<_>>()),
    );
    Ok(())
}
