//! authentik's models as authflow maps them: their names, the attributes of each
//! object as authentik's serializers show them (references as primary keys), and the
//! way back from (merged) attributes to authflow's typed objects.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json, json};
use uuid::Uuid;

pub(crate) use super::refs::{flow_ref, is_skipped, ref_list, ref_uuid, skipped_marker};
use super::work::Work;
use crate::model::{
    AuthenticatorStaticStage, AuthenticatorTotpStage, AuthenticatorValidateStage,
    AuthenticatorWebauthnStage, CaptchaStage, ConsentStage, DenyStage, DummyStage, Flow,
    FlowStageBinding, IdentificationStage, InvitationStage, PasswordPolicy, PasswordStage, Policy,
    PolicyKind, Prompt, PromptId, PromptStage, RedirectStage, ReputationPolicy, Stage, StageConfig,
    StageId, UserDeleteStage, UserLoginStage, UserLogoutStage, UserWriteStage,
};

/// Stage kinds authflow implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StageModel {
    Identification,
    Password,
    Prompt,
    UserWrite,
    UserLogin,
    UserLogout,
    UserDelete,
    Deny,
    Dummy,
    Redirect,
    Consent,
    AuthenticatorValidate,
    AuthenticatorTotp,
    AuthenticatorStatic,
    Captcha,
    Invitation,
    AuthenticatorWebauthn,
    Email,
}

/// Policy kinds authflow implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyModel {
    Expression,
    Password,
    Reputation,
    Dummy,
}

/// A model authflow knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Model {
    Flow,
    FlowStageBinding,
    PolicyBinding,
    /// A stage kind authflow implements.
    Stage(StageModel),
    /// A stage kind authflow does not implement (only with `skip_unsupported`, or
    /// for `!Find`): kept as [`StageConfig::Unsupported`].
    UnsupportedStage(String),
    /// `authentik_flows.stage`, the base of every stage (only for `!Find`).
    AnyStage,
    Prompt,
    Policy(PolicyModel),
    Group,
    User,
    MetaApplyBlueprint,
}

pub(super) const STAGES: &[(&str, StageModel)] = &[
    (
        "authentik_stages_identification.identificationstage",
        StageModel::Identification,
    ),
    (
        "authentik_stages_password.passwordstage",
        StageModel::Password,
    ),
    ("authentik_stages_prompt.promptstage", StageModel::Prompt),
    (
        "authentik_stages_user_write.userwritestage",
        StageModel::UserWrite,
    ),
    (
        "authentik_stages_user_login.userloginstage",
        StageModel::UserLogin,
    ),
    (
        "authentik_stages_user_logout.userlogoutstage",
        StageModel::UserLogout,
    ),
    (
        "authentik_stages_user_delete.userdeletestage",
        StageModel::UserDelete,
    ),
    ("authentik_stages_deny.denystage", StageModel::Deny),
    ("authentik_stages_dummy.dummystage", StageModel::Dummy),
    (
        "authentik_stages_redirect.redirectstage",
        StageModel::Redirect,
    ),
    ("authentik_stages_consent.consentstage", StageModel::Consent),
    (
        "authentik_stages_authenticator_validate.authenticatorvalidatestage",
        StageModel::AuthenticatorValidate,
    ),
    (
        "authentik_stages_authenticator_totp.authenticatortotpstage",
        StageModel::AuthenticatorTotp,
    ),
    (
        "authentik_stages_authenticator_static.authenticatorstaticstage",
        StageModel::AuthenticatorStatic,
    ),
    ("authentik_stages_captcha.captchastage", StageModel::Captcha),
    (
        "authentik_stages_invitation.invitationstage",
        StageModel::Invitation,
    ),
    (
        "authentik_stages_authenticator_webauthn.authenticatorwebauthnstage",
        StageModel::AuthenticatorWebauthn,
    ),
    ("authentik_stages_email.emailstage", StageModel::Email),
];

pub(super) const POLICIES: &[(&str, PolicyModel)] = &[
    (
        "authentik_policies_expression.expressionpolicy",
        PolicyModel::Expression,
    ),
    (
        "authentik_policies_password.passwordpolicy",
        PolicyModel::Password,
    ),
    (
        "authentik_policies_reputation.reputationpolicy",
        PolicyModel::Reputation,
    ),
    ("authentik_policies_dummy.dummypolicy", PolicyModel::Dummy),
];

/// The model named `name` (case-insensitively), if authflow has it.
pub(crate) fn lookup(name: &str) -> Option<Model> {
    let name = name.trim().to_ascii_lowercase();
    let m = match name.as_str() {
        "authentik_flows.flow" => Model::Flow,
        "authentik_flows.flowstagebinding" => Model::FlowStageBinding,
        "authentik_policies.policybinding" => Model::PolicyBinding,
        "authentik_flows.stage" => Model::AnyStage,
        "authentik_stages_prompt.prompt" => Model::Prompt,
        "authentik_core.group" => Model::Group,
        "authentik_core.user" => Model::User,
        "authentik_blueprints.metaapplyblueprint" => Model::MetaApplyBlueprint,
        // authentik's older name of the WebAuthn setup stage (its blueprints use it).
        "authentik_stages_authenticator_webauthn.authenticatewebauthnstage" => {
            Model::Stage(StageModel::AuthenticatorWebauthn)
        }
        other => {
            if let Some((_, s)) = STAGES.iter().find(|(n, _)| *n == other) {
                Model::Stage(*s)
            } else if let Some((_, p)) = POLICIES.iter().find(|(n, _)| *n == other) {
                Model::Policy(*p)
            } else {
                return None;
            }
        }
    };
    Some(m)
}

/// authentik's name of a model (lower case).
pub(crate) fn canonical_name(model: &Model) -> String {
    match model {
        Model::Flow => "authentik_flows.flow".into(),
        Model::FlowStageBinding => "authentik_flows.flowstagebinding".into(),
        Model::PolicyBinding => "authentik_policies.policybinding".into(),
        Model::Stage(k) => stage_name_of(*k).into(),
        Model::UnsupportedStage(m) => m.trim().to_ascii_lowercase(),
        Model::AnyStage => "authentik_flows.stage".into(),
        Model::Prompt => "authentik_stages_prompt.prompt".into(),
        Model::Policy(k) => POLICIES
            .iter()
            .find(|(_, p)| p == k)
            .map_or(CUSTOM_POLICY_MODEL, |(n, _)| *n)
            .into(),
        Model::Group => "authentik_core.group".into(),
        Model::User => "authentik_core.user".into(),
        Model::MetaApplyBlueprint => "authentik_blueprints.metaapplyblueprint".into(),
    }
}

/// Whether an unknown model is a stage kind (`<app>.<name>stage`).
pub(crate) fn is_stage_model(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    match name.split_once('.') {
        Some((app, model)) => !app.is_empty() && model.ends_with("stage") && model.len() > 5,
        None => false,
    }
}

/// The authentik model of a stage.
pub(crate) fn stage_model_name(config: &StageConfig) -> String {
    let kind = match config {
        StageConfig::Unsupported(u) => return u.model.clone(),
        StageConfig::Custom(_) => return CUSTOM_STAGE_MODEL.into(),
        StageConfig::Identification(_) => StageModel::Identification,
        StageConfig::Password(_) => StageModel::Password,
        StageConfig::Prompt(_) => StageModel::Prompt,
        StageConfig::UserWrite(_) => StageModel::UserWrite,
        StageConfig::UserLogin(_) => StageModel::UserLogin,
        StageConfig::UserLogout(_) => StageModel::UserLogout,
        StageConfig::UserDelete(_) => StageModel::UserDelete,
        StageConfig::Deny(_) => StageModel::Deny,
        StageConfig::Dummy(_) => StageModel::Dummy,
        StageConfig::Redirect(_) => StageModel::Redirect,
        StageConfig::Consent(_) => StageModel::Consent,
        StageConfig::AuthenticatorValidate(_) => StageModel::AuthenticatorValidate,
        StageConfig::AuthenticatorTotp(_) => StageModel::AuthenticatorTotp,
        StageConfig::AuthenticatorStatic(_) => StageModel::AuthenticatorStatic,
        StageConfig::Captcha(_) => StageModel::Captcha,
        StageConfig::Invitation(_) => StageModel::Invitation,
        StageConfig::AuthenticatorWebauthn(_) => StageModel::AuthenticatorWebauthn,
        StageConfig::Email(_) => StageModel::Email,
    };
    stage_name_of(kind).into()
}

fn stage_name_of(kind: StageModel) -> &'static str {
    STAGES
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(n, _)| *n)
        .unwrap_or("authentik_flows.stage")
}

/// The kind of a policy, unless it is host-defined.
pub(crate) fn policy_model_of(kind: &PolicyKind) -> Option<PolicyModel> {
    Some(match kind {
        PolicyKind::Expression { .. } => PolicyModel::Expression,
        PolicyKind::Password(_) => PolicyModel::Password,
        PolicyKind::Reputation(_) => PolicyModel::Reputation,
        PolicyKind::Dummy { .. } => PolicyModel::Dummy,
        PolicyKind::Custom(_) => return None,
    })
}

/// The authentik model of a policy.
pub(crate) fn policy_model_name(kind: &PolicyKind) -> &'static str {
    let Some(k) = policy_model_of(kind) else {
        return CUSTOM_POLICY_MODEL;
    };
    POLICIES
        .iter()
        .find(|(_, m)| *m == k)
        .map(|(n, _)| *n)
        .unwrap_or(CUSTOM_POLICY_MODEL)
}

/// Model name written for host-defined stages on export (re-importing fails closed).
pub(crate) const CUSTOM_STAGE_MODEL: &str = "authflow.customstage";
/// Model name written for host-defined policies on export.
pub(crate) const CUSTOM_POLICY_MODEL: &str = "authflow.custompolicy";

pub(crate) fn to_map<T: serde::Serialize>(v: &T) -> Map<String, Json> {
    match serde_json::to_value(v) {
        Ok(Json::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Deserialises merged attributes into a typed value, naming the problem.
pub(crate) fn typed<T: DeserializeOwned>(attrs: Map<String, Json>) -> Result<T, String> {
    serde_json::from_value(Json::Object(attrs)).map_err(|e| format!("invalid attributes: {e}"))
}

/// A flow's attributes.
pub(crate) fn flow_attrs(f: &Flow) -> Map<String, Json> {
    let mut m = to_map(f);
    m.remove("pk");
    m.remove("policybindingmodel_ptr_id");
    m
}

/// A flow-stage binding's attributes.
pub(crate) fn binding_attrs(b: &FlowStageBinding) -> Map<String, Json> {
    let mut m = to_map(b);
    m.remove("pk");
    m.remove("policybindingmodel_ptr_id");
    m
}

/// A policy binding's attributes (`target` is the flow's or binding's pk).
pub(crate) fn policy_binding_attrs(b: &crate::model::PolicyBinding) -> Map<String, Json> {
    use crate::model::{BindingSubject, BindingTarget};
    let mut m = Map::new();
    let target = match b.target {
        BindingTarget::Flow(f) => f.to_string(),
        BindingTarget::Stage(s) => s.to_string(),
    };
    m.insert("target".into(), json!(target));
    let (policy, group, user) = match &b.subject {
        BindingSubject::Policy(p) => (json!(p.to_string()), Json::Null, Json::Null),
        BindingSubject::Group(g) => (Json::Null, json!(g.to_string()), Json::Null),
        BindingSubject::User(u) => (Json::Null, Json::Null, json!(u.to_string())),
    };
    m.insert("policy".into(), policy);
    m.insert("group".into(), group);
    m.insert("user".into(), user);
    m.insert("negate".into(), json!(b.negate));
    m.insert("enabled".into(), json!(b.enabled));
    m.insert("order".into(), json!(b.order));
    m.insert("timeout".into(), json!(b.timeout));
    m.insert("failure_result".into(), json!(b.failure_result));
    m
}

/// Default attributes of a new policy binding.
pub(crate) fn policy_binding_defaults() -> Map<String, Json> {
    let mut m = Map::new();
    for k in ["policy", "group", "user"] {
        m.insert(k.into(), Json::Null);
    }
    m.insert("negate".into(), json!(false));
    m.insert("enabled".into(), json!(true));
    m.insert("order".into(), json!(0));
    m.insert("timeout".into(), json!(30));
    m.insert("failure_result".into(), json!(false));
    m
}

/// A policy's attributes.
pub(crate) fn policy_attrs(p: &Policy) -> Map<String, Json> {
    let mut m = match &p.kind {
        PolicyKind::Expression { expression } => {
            let mut m = Map::new();
            m.insert("expression".into(), json!(expression));
            m
        }
        PolicyKind::Password(pp) => to_map(pp),
        PolicyKind::Reputation(r) => to_map(r),
        PolicyKind::Dummy { result } => {
            let mut m = Map::new();
            m.insert("result".into(), json!(result));
            m
        }
        PolicyKind::Custom(c) => {
            let mut m = Map::new();
            m.insert("kind".into(), json!(c.name));
            m.insert("config".into(), c.config.clone());
            m
        }
    };
    m.insert("name".into(), json!(p.name));
    m.insert("execution_logging".into(), json!(p.execution_logging));
    m
}

/// Default attributes of a new policy of this kind.
pub(crate) fn policy_defaults(kind: PolicyModel) -> Map<String, Json> {
    let kind = match kind {
        PolicyModel::Expression => PolicyKind::Expression {
            expression: String::new(),
        },
        PolicyModel::Password => PolicyKind::Password(PasswordPolicy::default()),
        PolicyModel::Reputation => PolicyKind::Reputation(ReputationPolicy::default()),
        PolicyModel::Dummy => PolicyKind::Dummy { result: false },
    };
    let mut m = policy_attrs(&Policy::new("", kind));
    m.remove("name");
    if let Some(e) = m.get_mut("expression") {
        // Required: a new expression policy must bring its expression.
        *e = Json::Null;
    }
    m
}

/// Builds a policy from merged attributes.
pub(crate) fn build_policy(
    kind: PolicyModel,
    pk: crate::model::PolicyId,
    mut attrs: Map<String, Json>,
) -> Result<Policy, String> {
    let name = take_name(&mut attrs)?;
    let execution_logging = match attrs.remove("execution_logging") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => b,
        Some(other) => {
            return Err(format!(
                "`execution_logging`: expected a boolean, got `{other}`"
            ));
        }
    };
    let kind = match kind {
        PolicyModel::Expression => match attrs.remove("expression") {
            Some(Json::String(expression)) if !expression.trim().is_empty() => {
                PolicyKind::Expression { expression }
            }
            _ => return Err("`expression`: This field is required.".into()),
        },
        PolicyModel::Password => PolicyKind::Password(typed(attrs)?),
        PolicyModel::Reputation => PolicyKind::Reputation(typed(attrs)?),
        PolicyModel::Dummy => PolicyKind::Dummy {
            result: match attrs.remove("result") {
                None | Some(Json::Null) => false,
                Some(Json::Bool(b)) => b,
                Some(other) => return Err(format!("`result`: expected a boolean, got `{other}`")),
            },
        },
    };
    Ok(Policy {
        pk,
        name,
        execution_logging,
        kind,
    })
}

/// Takes the required, non-blank `name`.
pub(crate) fn take_name(attrs: &mut Map<String, Json>) -> Result<String, String> {
    match attrs.remove("name") {
        Some(Json::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Json::String(_)) | None | Some(Json::Null) => {
            Err("`name`: This field is required.".into())
        }
        Some(other) => Err(format!("`name`: expected a string, got `{other}`")),
    }
}

/// A prompt's attributes.
pub(crate) fn prompt_attrs(p: &Prompt) -> Map<String, Json> {
    let mut m = to_map(p);
    m.remove("pk");
    m
}

/// Default attributes of a new prompt.
pub(crate) fn prompt_defaults() -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("name".into(), json!(""));
    m.insert("required".into(), json!(true));
    m.insert("placeholder".into(), json!(""));
    m.insert("initial_value".into(), json!(""));
    m.insert("placeholder_expression".into(), json!(false));
    m.insert("initial_value_expression".into(), json!(false));
    m.insert("sub_text".into(), json!(""));
    m.insert("order".into(), json!(0));
    m
}

/// Keys a prompt entry may carry besides the prompt's own fields.
pub(crate) const PROMPT_EXTRA_KEYS: &[&str] = &["prompt_type"];

/// The default configuration of a stage kind.
pub(crate) fn default_stage(kind: StageModel) -> StageConfig {
    match kind {
        StageModel::Identification => IdentificationStage::default().into(),
        StageModel::Password => PasswordStage::default().into(),
        StageModel::Prompt => PromptStage::default().into(),
        StageModel::UserWrite => UserWriteStage::default().into(),
        StageModel::UserLogin => UserLoginStage::default().into(),
        StageModel::UserLogout => UserLogoutStage::default().into(),
        StageModel::UserDelete => UserDeleteStage::default().into(),
        StageModel::Deny => DenyStage::default().into(),
        StageModel::Dummy => DummyStage::default().into(),
        StageModel::Redirect => RedirectStage::default().into(),
        StageModel::Consent => ConsentStage::default().into(),
        StageModel::AuthenticatorValidate => AuthenticatorValidateStage::default().into(),
        StageModel::AuthenticatorTotp => AuthenticatorTotpStage::default().into(),
        StageModel::AuthenticatorStatic => AuthenticatorStaticStage::default().into(),
        StageModel::Captcha => CaptchaStage::default().into(),
        StageModel::Invitation => InvitationStage::default().into(),
        StageModel::AuthenticatorWebauthn => AuthenticatorWebauthnStage::default().into(),
        StageModel::Email => crate::model::EmailStage::default().into(),
    }
}

/// Flow-valued fields (authflow keeps slugs, authentik pks) per stage kind.
fn flow_fields(kind: &StageConfig) -> &'static [&'static str] {
    match kind {
        StageConfig::Identification(_) => {
            &["enrollment_flow", "recovery_flow", "passwordless_flow"]
        }
        StageConfig::Password(_)
        | StageConfig::AuthenticatorTotp(_)
        | StageConfig::AuthenticatorStatic(_)
        | StageConfig::AuthenticatorWebauthn(_) => &["configure_flow"],
        StageConfig::Redirect(_) => &["target_flow"],
        _ => &[],
    }
}

/// Settings of authentik's identification stage that would weaken it if ignored.
pub(crate) const IDENTIFICATION_REFUSED: &[&str] = &["captcha_stage", "webauthn_stage"];

/// Settings authflow does not have that would weaken a stage if ignored, with the
/// only value authflow can honour (authentik's default). Any other value is an error.
pub(crate) fn refused_settings(kind: StageModel) -> &'static [(&'static str, &'static str)] {
    match kind {
        // Binding a session to the client's network or location.
        StageModel::UserLogin => &[
            ("network_binding", "no_binding"),
            ("geoip_binding", "no_binding"),
        ],
        _ => &[],
    }
}

/// A stage's attributes (flow references as pks when the flow is known, prompt
/// fields as prompt pks).
pub(crate) fn stage_attrs(s: &Stage, work: &Work) -> Map<String, Json> {
    let mut m = match &s.config {
        StageConfig::Unsupported(_) | StageConfig::Custom(_) => Map::new(),
        other => to_map(other),
    };
    m.remove("kind");
    for field in flow_fields(&s.config) {
        if let Some(Json::String(slug)) = m.get(*field) {
            if let Some(f) = work.flow_by_slug(slug) {
                let pk = f.pk.to_string();
                m.insert((*field).to_owned(), json!(pk));
            }
        }
    }
    if let StageConfig::Prompt(p) = &s.config {
        let pks: Vec<Json> = p.fields.iter().map(|f| json!(f.pk.to_string())).collect();
        m.insert("fields".into(), Json::Array(pks));
    }
    if let StageConfig::Identification(_) = &s.config {
        for k in IDENTIFICATION_REFUSED {
            m.insert((*k).to_owned(), Json::Null);
        }
    }
    m.insert("name".into(), json!(s.name));
    m
}

/// Attribute names a stage kind understands.
pub(crate) fn stage_known_keys(kind: StageModel) -> Vec<String> {
    let stage = Stage {
        pk: StageId::new(),
        name: String::new(),
        config: default_stage(kind),
    };
    let mut keys: Vec<String> = to_map(&stage.config).into_iter().map(|(k, _)| k).collect();
    keys.retain(|k| k != "kind");
    keys.push("name".into());
    if kind == StageModel::Identification {
        keys.extend(IDENTIFICATION_REFUSED.iter().map(|k| (*k).to_owned()));
        // Checked separately: only a non-empty list is worth a warning.
        keys.push("sources".into());
    }
    keys.extend(refused_settings(kind).iter().map(|(k, _)| (*k).to_owned()));
    keys
}

/// Builds a stage's configuration from merged attributes whose references were
/// already checked: flow fields hold slugs, prompt `fields` hold prompt objects.
pub(crate) fn build_stage_config(
    kind: StageModel,
    attrs: Map<String, Json>,
) -> Result<StageConfig, String> {
    Ok(match kind {
        StageModel::Identification => StageConfig::Identification(typed(attrs)?),
        StageModel::Password => StageConfig::Password(typed(attrs)?),
        StageModel::Prompt => StageConfig::Prompt(typed(attrs)?),
        StageModel::UserWrite => StageConfig::UserWrite(typed(attrs)?),
        StageModel::UserLogin => StageConfig::UserLogin(typed(attrs)?),
        StageModel::UserLogout => StageConfig::UserLogout(typed(attrs)?),
        StageModel::UserDelete => StageConfig::UserDelete(typed(attrs)?),
        StageModel::Deny => StageConfig::Deny(typed(attrs)?),
        StageModel::Dummy => StageConfig::Dummy(typed(attrs)?),
        StageModel::Redirect => StageConfig::Redirect(typed(attrs)?),
        StageModel::Consent => StageConfig::Consent(typed(attrs)?),
        StageModel::AuthenticatorValidate => StageConfig::AuthenticatorValidate(typed(attrs)?),
        StageModel::AuthenticatorTotp => StageConfig::AuthenticatorTotp(typed(attrs)?),
        StageModel::AuthenticatorStatic => StageConfig::AuthenticatorStatic(typed(attrs)?),
        StageModel::Captcha => StageConfig::Captcha(typed(attrs)?),
        StageModel::Invitation => StageConfig::Invitation(typed(attrs)?),
        StageModel::AuthenticatorWebauthn => StageConfig::AuthenticatorWebauthn(typed(attrs)?),
        StageModel::Email => StageConfig::Email(typed(attrs)?),
    })
}

/// The flow-valued fields of a stage kind.
pub(crate) fn stage_flow_fields(kind: StageModel) -> &'static [&'static str] {
    flow_fields(&default_stage(kind))
}

/// Prompt objects for a list of prompt pks.
pub(crate) fn prompts_for(work: &Work, pks: &[Uuid]) -> Result<Vec<Prompt>, String> {
    pks.iter()
        .map(|pk| {
            work.prompts
                .get(&PromptId::from_uuid(*pk))
                .cloned()
                .ok_or_else(|| format!("`fields`: no prompt has the pk `{pk}`"))
        })
        .collect()
}

pub(crate) use super::directory_models::{group_attrs, group_defaults, user_attrs, user_defaults};
pub(crate) use super::matching::{LOOKUPS, attrs_match, split_lookup};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            lookup("authentik_flows.Flow"),
            Some(Model::Flow),
            "model names are case-insensitive"
        );
        assert_eq!(
            lookup("authentik_stages_deny.denystage"),
            Some(Model::Stage(StageModel::Deny))
        );
        assert_eq!(
            lookup("authentik_stages_captcha.captchastage_unknown"),
            None
        );
        assert!(is_stage_model("authentik_stages_email.emailstage"));
        assert!(is_stage_model(
            "authentik_stages_authenticator_webauthn.authenticatewebauthnstage"
        ));
        assert!(!is_stage_model("authentik_core.application"));
        for (name, kind) in STAGES {
            assert_eq!(canonical_name(&Model::Stage(*kind)), *name);
            assert_eq!(lookup(name), Some(Model::Stage(*kind)));
            assert_eq!(stage_model_name(&default_stage(*kind)), *name);
            assert_eq!(
                stage_model_name(&default_stage(*kind)),
                default_stage(*kind).meta().model_name
            );
        }
    }

    #[test]
    fn matching() {
        let a: Map<String, Json> = serde_json::from_value(json!({
            "slug": "x", "order": 10, "target": "6f1f5c5e-0c7b-4a3e-9a0e-3c8f4b6d2a11",
            "attributes": {"a": 1, "b": 2}
        }))
        .unwrap();
        let w = |v: Json| -> Map<String, Json> { serde_json::from_value(v).unwrap() };
        assert!(attrs_match(&a, &w(json!({"slug": "x", "order": "10"}))));
        assert!(attrs_match(
            &a,
            &w(json!({"target": "6F1F5C5E-0C7B-4A3E-9A0E-3C8F4B6D2A11"}))
        ));
        assert!(attrs_match(&a, &w(json!({"attributes": {"a": 1}}))));
        assert!(!attrs_match(&a, &w(json!({"attributes": {"a": 2}}))));
        assert!(!attrs_match(&a, &w(json!({"slug": "y"}))));
    }
}
