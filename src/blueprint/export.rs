//! Writing a flow back as a blueprint ([`export`]).

use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};
use serde_norway::value::{Tag, TaggedValue};
use serde_norway::{Mapping, Value as Yaml};

use super::models;
use crate::model::{
    BindingSubject, PolicyBinding, PolicyId, PromptId, Stage, StageConfig, StageId,
};
use crate::store::FlowDefinition;

fn tagged(tag: &str, value: Yaml) -> Yaml {
    Yaml::Tagged(Box::new(TaggedValue {
        tag: Tag::new(tag),
        value,
    }))
}

fn key_of(id: &str) -> Yaml {
    tagged("KeyOf", Yaml::String(id.to_owned()))
}

fn find(model: &str, field: &str, value: &str) -> Yaml {
    tagged(
        "Find",
        Yaml::Sequence(vec![
            Yaml::String(model.to_owned()),
            Yaml::Sequence(vec![
                Yaml::String(field.to_owned()),
                Yaml::String(value.to_owned()),
            ]),
        ]),
    )
}

fn yaml(v: &Json) -> Yaml {
    serde_norway::to_value(v).unwrap_or(Yaml::Null)
}

fn mapping(pairs: Vec<(&str, Yaml)>) -> Yaml {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Yaml::String(k.to_owned()), v);
    }
    Yaml::Mapping(m)
}

fn attrs_yaml(m: Map<String, Json>, refs: Vec<(&str, Yaml)>) -> Yaml {
    let mut out = Mapping::new();
    for (k, v) in m {
        out.insert(Yaml::String(k), yaml(&v));
    }
    for (k, v) in refs {
        out.insert(Yaml::String(k.to_owned()), v);
    }
    Yaml::Mapping(out)
}

fn entry(model: &str, id: Option<&str>, identifiers: Yaml, attrs: Option<Yaml>) -> Yaml {
    let mut pairs = vec![("model", Yaml::String(model.to_owned()))];
    if let Some(id) = id {
        pairs.push(("id", Yaml::String(id.to_owned())));
    }
    pairs.push(("identifiers", identifiers));
    if let Some(a) = attrs {
        pairs.push(("attrs", a));
    }
    mapping(pairs)
}

/// Stage references inside a stage's configuration.
fn stage_refs(s: &Stage) -> Vec<StageId> {
    match &s.config {
        StageConfig::Identification(i) => i.password_stage.into_iter().collect(),
        StageConfig::AuthenticatorValidate(a) => a.configuration_stages.clone(),
        _ => Vec::new(),
    }
}

/// Writes a flow as an authentik blueprint (version 1) that re-imports to the same
/// flow: the flow, its policies, prompts, stages, stage bindings and (enabled) policy
/// bindings, linked with `!KeyOf`. Objects outside the flow are referred to with
/// `!Find` (other flows by slug, groups and users by pk). Host-defined stages and
/// policies are written with the models `authflow.customstage` /
/// `authflow.custompolicy` and their registered kind name and settings as `kind` and
/// `config`; they do not import yet (a stage imported with `skip_unsupported` denies
/// access).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use authflow::store::FlowSource;
/// let stores = authflow::memory::Stores::new();
/// authflow::defaults::install(stores.flows.as_ref()).await?;
/// let def = stores.flows.flow(authflow::defaults::INVALIDATION).await?.unwrap();
/// let yaml = authflow::blueprint::export(&def);
/// assert!(yaml.contains("authentik_stages_user_logout.userlogoutstage"));
///
/// let fresh = authflow::memory::Stores::new();
/// authflow::blueprint::Importer::for_stores(&fresh).apply_str("export.yaml", &yaml).await?;
/// assert!(fresh.flows.flow(authflow::defaults::INVALIDATION).await?.is_some());
/// # Ok(()) }
/// ```
pub fn export(def: &FlowDefinition) -> String {
    let slug = def.flow.slug.clone();
    let mut entries: Vec<Yaml> = Vec::new();

    // The flow.
    let mut flow_attrs = models::flow_attrs(&def.flow);
    flow_attrs.remove("slug");
    entries.push(entry(
        "authentik_flows.flow",
        Some("flow"),
        mapping(vec![("slug", Yaml::String(slug.clone()))]),
        Some(attrs_yaml(flow_attrs, vec![])),
    ));

    // Policies: bound ones, then prompt validation policies.
    let mut policies: Vec<std::sync::Arc<crate::model::Policy>> = Vec::new();
    let mut policy_ids: HashMap<PolicyId, String> = HashMap::new();
    let bound = def
        .policies
        .iter()
        .chain(def.stages.iter().flat_map(|s| s.policies.iter()))
        .filter_map(|rb| rb.policy.clone());
    let mut validation: Vec<_> = def.validation_policies.values().cloned().collect();
    validation.sort_by(|a, b| a.name.cmp(&b.name));
    for p in bound.chain(validation) {
        if !policy_ids.contains_key(&p.pk) {
            policy_ids.insert(p.pk, format!("policy-{}", policy_ids.len() + 1));
            policies.push(p);
        }
    }
    for p in &policies {
        let Some(id) = policy_ids.get(&p.pk) else {
            continue;
        };
        let mut attrs = models::policy_attrs(p);
        attrs.remove("name");
        entries.push(entry(
            models::policy_model_name(&p.kind),
            Some(id),
            mapping(vec![("name", Yaml::String(p.name.clone()))]),
            Some(attrs_yaml(attrs, vec![])),
        ));
    }

    // Prompts of the prompt stages.
    let mut prompt_ids: HashMap<PromptId, String> = HashMap::new();
    for bound in &def.stages {
        let StageConfig::Prompt(p) = &bound.stage.config else {
            continue;
        };
        for field in &p.fields {
            if prompt_ids.contains_key(&field.pk) {
                continue;
            }
            let id = format!("prompt-{}", prompt_ids.len() + 1);
            prompt_ids.insert(field.pk, id.clone());
            let mut attrs = models::prompt_attrs(field);
            let identifiers = if field.name.is_empty() {
                attrs.remove("field_key");
                mapping(vec![("field_key", Yaml::String(field.field_key.clone()))])
            } else {
                attrs.remove("name");
                mapping(vec![("name", Yaml::String(field.name.clone()))])
            };
            entries.push(entry(
                "authentik_stages_prompt.prompt",
                Some(&id),
                identifiers,
                Some(attrs_yaml(attrs, vec![])),
            ));
        }
    }

    // Stages, those referring to other stages of the flow after them.
    let mut distinct: Vec<&Stage> = Vec::new();
    for b in &def.stages {
        if !distinct.iter().any(|s| s.pk == b.stage.pk) {
            distinct.push(&b.stage);
        }
    }
    let in_flow: Vec<StageId> = distinct.iter().map(|s| s.pk).collect();
    let mut stage_ids: HashMap<StageId, String> = HashMap::new();
    let mut ordered: Vec<&Stage> = Vec::new();
    let mut pending = distinct.clone();
    while !pending.is_empty() {
        let (ready, rest): (Vec<&Stage>, Vec<&Stage>) = pending.iter().partition(|s| {
            stage_refs(s)
                .iter()
                .all(|r| !in_flow.contains(r) || ordered.iter().any(|o| o.pk == *r))
        });
        if ready.is_empty() {
            // A cycle: the rest refer to each other by pk.
            ordered.extend(rest);
            break;
        }
        ordered.extend(ready);
        pending = rest;
    }
    for s in &ordered {
        stage_ids.insert(s.pk, format!("stage-{}", stage_ids.len() + 1));
    }
    let stage_ref = |pk: &StageId, emitted: &[StageId]| match stage_ids.get(pk) {
        Some(id) if emitted.contains(pk) => key_of(id),
        _ => find("authentik_flows.stage", "pk", &pk.to_string()),
    };
    let flow_ref = |target: &str| {
        if target == slug {
            key_of("flow")
        } else {
            find("authentik_flows.flow", "slug", target)
        }
    };
    let mut emitted: Vec<StageId> = Vec::new();
    for s in &ordered {
        let Some(id) = stage_ids.get(&s.pk) else {
            continue;
        };
        let identifiers = mapping(vec![("name", Yaml::String(s.name.clone()))]);
        let model = models::stage_model_name(&s.config);
        let attrs = match &s.config {
            StageConfig::Unsupported(_) => None,
            StageConfig::Custom(c) => Some(mapping(vec![
                ("kind", Yaml::String(c.name.clone())),
                ("config", yaml(&c.config)),
            ])),
            config => {
                let mut m = models::to_map(config);
                m.remove("kind");
                let mut refs: Vec<(&str, Yaml)> = Vec::new();
                match config {
                    StageConfig::Identification(i) => {
                        for (k, v) in [
                            ("enrollment_flow", &i.enrollment_flow),
                            ("recovery_flow", &i.recovery_flow),
                            ("passwordless_flow", &i.passwordless_flow),
                        ] {
                            if let Some(t) = v {
                                m.remove(k);
                                refs.push((k, flow_ref(t)));
                            }
                        }
                        if let Some(p) = &i.password_stage {
                            m.remove("password_stage");
                            refs.push(("password_stage", stage_ref(p, &emitted)));
                        }
                    }
                    StageConfig::Password(p) => {
                        if let Some(t) = &p.configure_flow {
                            m.remove("configure_flow");
                            refs.push(("configure_flow", flow_ref(t)));
                        }
                    }
                    StageConfig::Redirect(r) => {
                        if let Some(t) = &r.target_flow {
                            m.remove("target_flow");
                            refs.push(("target_flow", flow_ref(t)));
                        }
                    }
                    StageConfig::Prompt(p) => {
                        m.remove("fields");
                        m.remove("validation_policies");
                        let fields = p
                            .fields
                            .iter()
                            .filter_map(|f| prompt_ids.get(&f.pk).map(|id| key_of(id)))
                            .collect();
                        refs.push(("fields", Yaml::Sequence(fields)));
                        let validation = p
                            .validation_policies
                            .iter()
                            .filter_map(|pk| policy_ids.get(pk).map(|id| key_of(id)))
                            .collect();
                        refs.push(("validation_policies", Yaml::Sequence(validation)));
                    }
                    StageConfig::UserWrite(w) => {
                        if let Some(g) = &w.create_users_group {
                            m.remove("create_users_group");
                            refs.push((
                                "create_users_group",
                                find("authentik_core.group", "pk", &g.to_string()),
                            ));
                        }
                    }
                    StageConfig::AuthenticatorValidate(a) => {
                        m.remove("configuration_stages");
                        let stages = a
                            .configuration_stages
                            .iter()
                            .map(|pk| stage_ref(pk, &emitted))
                            .collect();
                        refs.push(("configuration_stages", Yaml::Sequence(stages)));
                    }
                    // A secret (write-only in authentik's serializer): never exported;
                    // set it again after importing the export.
                    StageConfig::Captcha(_) => {
                        m.remove("private_key");
                    }
                    _ => {}
                }
                Some(attrs_yaml(m, refs))
            }
        };
        entries.push(entry(&model, Some(id), identifiers, attrs));
        emitted.push(s.pk);
    }

    // Stage bindings.
    let mut binding_ids = HashMap::new();
    for (n, b) in def.stages.iter().enumerate() {
        let id = format!("binding-{}", n + 1);
        binding_ids.insert(b.binding.pk, id.clone());
        let stage = stage_ids.get(&b.stage.pk).map_or(Yaml::Null, |s| key_of(s));
        let mut attrs = models::binding_attrs(&b.binding);
        for k in ["target", "stage", "order"] {
            attrs.remove(k);
        }
        entries.push(entry(
            "authentik_flows.flowstagebinding",
            Some(&id),
            mapping(vec![
                ("target", key_of("flow")),
                ("stage", stage),
                ("order", yaml(&json!(b.binding.order))),
            ]),
            Some(attrs_yaml(attrs, vec![])),
        ));
    }

    // Policy bindings.
    let policy_binding = |pb: &PolicyBinding, target: Yaml| {
        let subject = match &pb.subject {
            BindingSubject::Policy(p) => (
                "policy",
                policy_ids.get(p).map_or_else(
                    || find("authentik_policies.policy", "pk", &p.to_string()),
                    |id| key_of(id),
                ),
            ),
            BindingSubject::Group(g) => {
                ("group", find("authentik_core.group", "pk", &g.to_string()))
            }
            BindingSubject::User(u) => ("user", find("authentik_core.user", "pk", u.as_str())),
        };
        let attrs = mapping(vec![
            ("negate", Yaml::Bool(pb.negate)),
            ("enabled", Yaml::Bool(pb.enabled)),
            ("timeout", yaml(&json!(pb.timeout))),
            ("failure_result", Yaml::Bool(pb.failure_result)),
        ]);
        entry(
            "authentik_policies.policybinding",
            None,
            mapping(vec![
                ("target", target),
                subject,
                ("order", yaml(&json!(pb.order))),
            ]),
            Some(attrs),
        )
    };
    for rb in &def.policies {
        entries.push(policy_binding(&rb.binding, key_of("flow")));
    }
    for b in &def.stages {
        let Some(id) = binding_ids.get(&b.binding.pk) else {
            continue;
        };
        for rb in &b.policies {
            entries.push(policy_binding(&rb.binding, key_of(id)));
        }
    }

    let mut labels = Mapping::new();
    labels.insert(
        Yaml::String("blueprints.goauthentik.io/generated".into()),
        Yaml::String("true".into()),
    );
    let doc = mapping(vec![
        ("version", Yaml::Number(1.into())),
        (
            "metadata",
            mapping(vec![
                ("name", Yaml::String(format!("authflow export: {slug}"))),
                ("labels", Yaml::Mapping(labels)),
            ]),
        ),
        ("entries", Yaml::Sequence(entries)),
    ]);
    let body = serde_norway::to_string(&doc).unwrap_or_else(|e| format!("# export failed: {e}\n"));
    format!("# authentik blueprint of the flow `{slug}`, written by authflow\n{body}")
}
