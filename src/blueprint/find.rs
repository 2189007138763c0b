//! `!Find`: the primary key of the first object of a model whose attributes match the
//! wanted values (authentik's `Find.resolve`: `model.objects.filter(**query).first()`),
//! over the importer's working copy and the user directory.

use serde_json::{Map, Value as Json};

use super::models::{self, Model};
use super::work::Work;
use crate::store::UserDirectory;

/// The pk of the first object of `model` matching `wanted`, or `null`.
pub(crate) async fn find(
    work: &mut Work,
    dir: &dyn UserDirectory,
    model: &Model,
    wanted: &Map<String, Json>,
) -> Result<Json, String> {
    let pk_of = |pk: String| Json::String(pk);
    let with_pk = |mut attrs: Map<String, Json>, pk: String| {
        attrs.insert("pk".into(), Json::String(pk));
        attrs
    };
    let found = match model {
        Model::Flow => work
            .flows
            .values()
            .find(|f| {
                models::attrs_match(&with_pk(models::flow_attrs(f), f.pk.to_string()), wanted)
            })
            .map(|f| f.pk.to_string()),
        Model::Stage(_) | Model::UnsupportedStage(_) | Model::AnyStage => {
            let name = match model {
                Model::Stage(k) => Some(models::stage_model_name(&models::default_stage(*k))),
                Model::UnsupportedStage(n) => Some(n.to_ascii_lowercase()),
                _ => None,
            };
            work.stages
                .values()
                .filter(|s| {
                    name.as_ref()
                        .is_none_or(|n| models::stage_model_name(&s.config).eq_ignore_ascii_case(n))
                })
                .find(|s| {
                    models::attrs_match(
                        &with_pk(models::stage_attrs(s, work), s.pk.to_string()),
                        wanted,
                    )
                })
                .map(|s| s.pk.to_string())
        }
        Model::FlowStageBinding => work
            .bindings
            .values()
            .find(|b| {
                models::attrs_match(&with_pk(models::binding_attrs(b), b.pk.to_string()), wanted)
            })
            .map(|b| b.pk.to_string()),
        Model::PolicyBinding => work
            .policy_bindings
            .values()
            .find(|b| {
                models::attrs_match(
                    &with_pk(models::policy_binding_attrs(b), b.pk.to_string()),
                    wanted,
                )
            })
            .map(|b| b.pk.to_string()),
        Model::Policy(kind) => work
            .policies
            .values()
            .filter(|p| models::policy_model_of(&p.kind) == Some(*kind))
            .find(|p| {
                models::attrs_match(&with_pk(models::policy_attrs(p), p.pk.to_string()), wanted)
            })
            .map(|p| p.pk.to_string()),
        Model::Prompt => work
            .prompts
            .values()
            .find(|p| {
                models::attrs_match(&with_pk(models::prompt_attrs(p), p.pk.to_string()), wanted)
            })
            .map(|p| p.pk.to_string()),
        Model::Group => {
            let group = if let Some(pk) = wanted.get("pk") {
                match models::ref_uuid("pk", pk)? {
                    Some(id) => work
                        .users
                        .group(dir, crate::model::GroupId::from_uuid(id))
                        .await
                        .map_err(|e| e.to_string())?,
                    None => None,
                }
            } else if let Some(Json::String(name)) = wanted.get("name") {
                work.users
                    .group_by_name(dir, name)
                    .await
                    .map_err(|e| e.to_string())?
            } else {
                return Err(
                    "!Find on authentik_core.group needs `pk` or `name` (authflow cannot list groups)"
                        .into(),
                );
            };
            group
                .filter(|g| {
                    models::attrs_match(&with_pk(models::group_attrs(g), g.pk.to_string()), wanted)
                })
                .map(|g| g.pk.to_string())
        }
        Model::User => {
            let user = if let Some(pk) = wanted.get("pk") {
                match models::ref_uuid("pk", pk)? {
                    Some(id) => work
                        .users
                        .user(dir, crate::model::UserId::from(id))
                        .await
                        .map_err(|e| e.to_string())?,
                    None => None,
                }
            } else if let Some(Json::String(name)) = wanted.get("username") {
                work.users
                    .user_by_name(dir, name)
                    .await
                    .map_err(|e| e.to_string())?
            } else if let Some(Json::String(email)) = wanted.get("email") {
                work.users
                    .user_by_email(dir, email)
                    .await
                    .map_err(|e| e.to_string())?
            } else {
                return Err(
                    "!Find on authentik_core.user needs `pk`, `username` or `email` (authflow cannot list users)"
                        .into(),
                );
            };
            user.filter(|u| {
                models::attrs_match(&with_pk(models::user_attrs(u), u.pk.to_string()), wanted)
            })
            .map(|u| u.pk.to_string())
        }
        Model::MetaApplyBlueprint => {
            return Err("!Find cannot look up authentik_blueprints.metaapplyblueprint".into());
        }
    };
    Ok(found.map_or(Json::Null, pk_of))
}
