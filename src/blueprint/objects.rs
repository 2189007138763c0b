//! Finding the object an entry means (by its identifiers), creating its pk, and the
//! create / update / delete decision of an entry.

use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};
use uuid::Uuid;

use super::apply::{FileRun, Importer, Instance, Outcome, State};
use super::attrs::EntryResult;
use super::models::{self, Model};
use super::python::merge_maps;
use super::report::EntryAction;
use super::work::{FlowOp, Op};
use crate::model::{
    BindingSubject, FlowId, FlowStageBinding, GroupId, PolicyId, Prompt, Stage, StageId, UserId,
};
use crate::store::Group;

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
pub(super) fn derived_ptr(pk: &Uuid) -> Uuid {
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
pub(super) fn known_keys(model: &Model) -> Vec<String> {
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

impl Importer<'_> {
    /// An entry for an object: finds it by its identifiers and creates, updates or
    /// deletes it.
    pub(super) async fn object(
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
                State::Created => {
                    return Ok(Outcome::Done(EntryAction::Kept, Some(inst.clone())));
                }
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

    pub(super) async fn find_existing(
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
                        .user(dir, UserId::from(id))
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
                    // A host's non-UUID user key is never a blueprint `pk`.
                    let matched = match u.pk.to_uuid() {
                        Some(id) => hit(&a, id),
                        None => !others.is_empty() && models::attrs_match(&a, &others),
                    };
                    matched.then_some((Instance::User(u.pk), a))
                })
            }
            Model::AnyStage | Model::MetaApplyBlueprint => None,
        })
    }

    pub(super) async fn apply_op(&self, f: &mut FileRun, op: Op) -> EntryResult<()> {
        f.work.apply(self.users.dir(), op).await
    }

    pub(super) async fn delete(&self, f: &mut FileRun, inst: Instance) -> EntryResult<()> {
        let op = match inst {
            Instance::Flow(pk) => {
                let slug = f
                    .work
                    .flows
                    .get(&pk)
                    .map(|x| x.slug.clone())
                    .ok_or("the flow vanished")?;
                Op::Flow(FlowOp::DeleteFlow(slug))
            }
            Instance::Stage(pk) => Op::Flow(FlowOp::DeleteStage(pk)),
            Instance::Binding(pk) => Op::Flow(FlowOp::DeleteBinding(pk)),
            Instance::Policy(pk) => Op::Flow(FlowOp::DeletePolicy(pk)),
            Instance::PolicyBinding(pk) => Op::Flow(FlowOp::DeletePolicyBinding(pk)),
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
}
