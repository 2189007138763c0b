#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! authentik blueprints (`authflow::blueprint`): the 15 real blueprints in
//! `tests/fixtures/blueprints` (copied from authentik), run end to end against the
//! built-in default flows; idempotence, updates in place, states, tags, errors (with
//! nothing written), limits, fail-closed unsupported stages, and export round trips.
#![cfg(feature = "blueprints")]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authflow::blueprint::{
    BlueprintError, EntryAction, ImportOptions, Importer, Library, MAX_BLUEPRINT_BYTES,
    MAX_ENTRIES, export,
};
use authflow::events::{EventAction, MemoryEventSink};
use authflow::model::{
    BindingSubject, BindingTarget, NotConfiguredAction, PromptType, StageConfig, UserField,
};
use authflow::store::{FlowAdmin, FlowDefinition, FlowSource, FlowStore, UserAdmin, UserDirectory};
use authflow::{Engine, Outcome, defaults, memory};
use common::kit::{Client, error_messages, wire};
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "Akadmin-Local-Pw-1";

/// Files whose every model authflow has.
const SUPPORTED: &[&str] = &[
    "default-password-policy.yaml",
    "flow-default-authentication-flow.yaml",
    "flow-default-authenticator-static-setup.yaml",
    "flow-default-authenticator-totp-setup.yaml",
    "flow-default-authenticator-webauthn-setup.yaml",
    "flow-default-invalidation-flow.yaml",
    "flow-default-provider-authorization-explicit-consent.yaml",
    "flow-default-provider-authorization-implicit-consent.yaml",
    "flow-default-user-settings-flow.yaml",
    "flow-password-change.yaml",
    "flows-enrollment-2-stage.yaml",
    "flows-enrollment-email-verification.yaml",
    "flows-login-2fa.yaml",
    "flows-recovery-email-verification.yaml",
    "flows-unenrollment.yaml",
];

/// Files with stages of kinds authflow does not have yet, and exactly those entries.
const NEEDS_SKIP: &[(&str, &[(usize, &str)])] = &[];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blueprints")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn needs_skip(name: &str) -> bool {
    NEEDS_SKIP.iter().any(|(f, _)| *f == name)
}

/// A unique empty directory under the system's temp dir.
fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("authflow-blueprints-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An expression evaluator that runs nothing: every expression errors, so these tests
/// see the fail-closed path of an expression that cannot run (tests/python.rs runs
/// them for real).
struct NoPython;

#[async_trait::async_trait]
impl authflow::policy::ExpressionEvaluator for NoPython {
    async fn evaluate(
        &self,
        policy: &authflow::model::Policy,
        _expression: &str,
        _request: &mut authflow::policy::PolicyRequest<'_>,
    ) -> Result<authflow::policy::PolicyOutcome, authflow::policy::PolicyError> {
        Err(authflow::policy::PolicyError(format!(
            "expression policy `{}` is not run in these tests",
            policy.name
        )))
    }
}

/// Stores, an engine that records events (with the [`NoPython`] evaluator), and the
/// bootstrap admin.
struct Env {
    stores: memory::Stores,
    engine: Arc<Engine>,
    events: Arc<MemoryEventSink>,
}

impl Env {
    fn new() -> Self {
        let stores = memory::Stores::new();
        let events = Arc::new(MemoryEventSink::new());
        let engine = Arc::new(
            stores
                .engine()
                .events(events.clone())
                .expressions(Arc::new(NoPython))
                .build(),
        );
        Self {
            stores,
            engine,
            events,
        }
    }

    /// The built-in default flows.
    async fn builtin() -> Self {
        let env = Self::new();
        defaults::install(env.stores.flows.as_ref()).await.unwrap();
        env.admin().await;
        env
    }

    /// The given blueprints (each with its `metaapplyblueprint` dependencies).
    async fn imported(files: &[&str]) -> Self {
        let env = Self::new();
        for f in files {
            env.importer()
                .skip_unsupported(needs_skip(f))
                .apply_file(fixture(f))
                .await
                .unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        env.admin().await;
        env
    }

    async fn admin(&self) {
        defaults::bootstrap_admin(self.stores.users.as_ref(), ADMIN_PASSWORD.into())
            .await
            .unwrap();
    }

    /// An importer for this engine, which has an expression evaluator ([`NoPython`]).
    fn importer(&self) -> Importer<'_> {
        Importer::for_stores(&self.stores).expressions(true)
    }

    fn client(&self) -> Client {
        Client::new(self.engine.clone())
    }

    fn catalogue(&self) -> Value {
        serde_json::to_value(self.stores.flows.catalogue()).unwrap()
    }

    async fn def(&self, slug: &str) -> FlowDefinition {
        self.stores.flows.flow(slug).await.unwrap().unwrap()
    }

    /// Logs in through `default-authentication-flow`.
    async fn login(&self, username: &str, password: &str) -> Client {
        let mut c = self.client();
        let slug = defaults::AUTHENTICATION;
        c.get(slug).await;
        c.post(slug, ident(username)).await;
        let out = c.post(slug, pw(password)).await;
        assert!(out.logged_in, "login failed: {}", wire(&out));
        c
    }
}

fn ident(uid: &str) -> Value {
    json!({"component": "ak-stage-identification", "uid_field": uid})
}

fn pw(password: &str) -> Value {
    json!({"component": "ak-stage-password", "password": password})
}

/// A step as the client sees it: the component, where a redirect goes, the message
/// of a denial, the errors of an invalid response.
fn step(out: &Outcome) -> String {
    let w = wire(out);
    let mut s = out.challenge.component().to_owned();
    if let Some(to) = out.challenge.redirect_to() {
        s.push_str(&format!(" -> {to}"));
    }
    if let Some(m) = w.get("error_message").and_then(Value::as_str) {
        s.push_str(&format!(": {m}"));
    }
    let errors = error_messages(&w);
    if !errors.is_empty() {
        s.push_str(&format!(" {errors:?}"));
    }
    if out.logged_in {
        s.push_str(" [logged in]");
    }
    if out.logged_out {
        s.push_str(" [logged out]");
    }
    s
}

// ---------------------------------------------------------------------------------------
// The 15 blueprints

#[tokio::test]
async fn every_blueprint_imports() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 15);
    for name in &names {
        assert!(
            SUPPORTED.contains(&name.as_str()) || needs_skip(name),
            "{name} is classified"
        );
    }
    for name in SUPPORTED {
        let env = Env::new();
        let report = env
            .importer()
            .apply_file(fixture(name))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.skipped.is_empty(), "{name}: {:?}", report.skipped);
        assert!(report.changes > 0, "{name} wrote nothing");
        assert_eq!(
            report.entries.len(),
            authflow::blueprint::parse(name, &std::fs::read_to_string(fixture(name)).unwrap())
                .unwrap()
                .entry_count(),
            "{name}: one report line per entry"
        );
    }
    for (name, expected) in NEEDS_SKIP {
        // Without `skip_unsupported`: a clear error naming file, entry, model and what
        // to do — and nothing written.
        let env = Env::new();
        let err = env
            .importer()
            .apply_file(fixture(name))
            .await
            .expect_err(name);
        let (index, model) = expected[0];
        match &err {
            BlueprintError::UnsupportedModel {
                file,
                index: i,
                model: m,
                hint,
                ..
            } => {
                assert!(file.ends_with(name), "{file}");
                assert_eq!((*i, m.as_str()), (index, model));
                assert!(hint.contains("skip_unsupported"), "{hint}");
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(name)
                && text.contains(&format!("entries[{index}]"))
                && text.contains(model),
            "{text}"
        );
        assert!(
            env.stores.flows.catalogue().flows.is_empty(),
            "{name}: nothing written"
        );

        // With it: exactly those entries are reported, each kept as a denying stage.
        let report = env
            .importer()
            .skip_unsupported(true)
            .apply_file(fixture(name))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let skipped: Vec<(usize, &str, bool)> = report
            .skipped
            .iter()
            .map(|s| (s.index, s.model.as_str(), s.kept_as_denying_stage))
            .collect();
        let want: Vec<(usize, &str, bool)> = expected.iter().map(|(i, m)| (*i, *m, true)).collect();
        assert_eq!(skipped, want, "{name}");
        assert_eq!(
            report.count(EntryAction::ImportedAsUnsupported),
            expected.len()
        );
        let stage = env
            .stores
            .flows
            .catalogue()
            .stages
            .into_iter()
            .find(|s| matches!(&s.config, StageConfig::Unsupported(u) if u.model == model))
            .expect("the unsupported stage exists");
        assert!(
            env.stores
                .flows
                .catalogue()
                .bindings
                .iter()
                .any(|b| b.stage == stage.pk),
            "{name}: its binding exists"
        );
    }
}

#[tokio::test]
async fn prompt_type_and_older_prompt_type_both_work() {
    // flows-enrollment-2-stage.yaml uses `prompt_type:`, the email variant `type:`.
    for (file, skip) in [
        ("flows-enrollment-2-stage.yaml", false),
        ("flows-enrollment-email-verification.yaml", false),
    ] {
        let env = Env::new();
        env.importer()
            .skip_unsupported(skip)
            .apply_file(fixture(file))
            .await
            .unwrap();
        let def = env.def(defaults::ENROLLMENT).await;
        let StageConfig::Prompt(first) = &def.stages[0].stage.config else {
            panic!("{file}: first stage is a prompt");
        };
        let types: Vec<(&str, PromptType)> = first
            .fields
            .iter()
            .map(|f| (f.field_key.as_str(), f.prompt_type))
            .collect();
        assert_eq!(
            types,
            vec![
                ("username", PromptType::Username),
                ("password", PromptType::Password),
                ("password_repeat", PromptType::Password),
            ],
            "{file}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Same challenge sequences as the built-in default flows

/// Runs the login script: a wrong password, then the right one; and an unknown user.
async fn login_script(env: &Env) -> Vec<String> {
    let slug = defaults::AUTHENTICATION;
    let mut steps = Vec::new();
    let mut c = env.client();
    steps.push(step(&c.get(slug).await));
    steps.push(step(&c.post(slug, ident("akadmin")).await));
    steps.push(step(&c.post(slug, pw("wrong")).await));
    steps.push(step(&c.post(slug, pw(ADMIN_PASSWORD)).await));
    let mut c = env.client();
    steps.push(step(&c.get(slug).await));
    steps.push(step(&c.post(slug, ident("nobody@example.invalid")).await));
    steps.push(step(&c.post(slug, pw("whatever")).await));
    steps
}

#[tokio::test]
async fn default_authentication_flow_runs_like_the_builtin_one() {
    let builtin = Env::builtin().await;
    let imported = Env::imported(&["flow-default-authentication-flow.yaml"]).await;
    let expected = login_script(&builtin).await;
    assert_eq!(
        expected,
        vec![
            "ak-stage-identification",
            "ak-stage-password",
            "ak-stage-password {\"password\": [\"Invalid password\"]}",
            "xak-flow-redirect -> / [logged in]",
            "ak-stage-identification",
            "ak-stage-password",
            "ak-stage-password {\"password\": [\"Invalid password\"]}",
        ]
    );
    assert_eq!(login_script(&imported).await, expected);

    // The blueprint binds an expression policy (`password-optional`) to the password
    // binding with `failure_result: true`. With the NoPython evaluator it errors,
    // so the binding yields its failure_result, true: the password stage is kept —
    // which is what authentik's expression answers for a user without a backend.
    let def = imported.def(defaults::AUTHENTICATION).await;
    let password = def
        .stages
        .iter()
        .find(|s| matches!(s.stage.config, StageConfig::Password(_)))
        .unwrap();
    assert_eq!(password.binding.order, 20);
    assert_eq!(password.policies.len(), 1);
    assert!(password.policies[0].binding.failure_result);
    let errors = imported.events.of(EventAction::PolicyException);
    assert!(
        errors
            .iter()
            .any(|e| e.context.get("policy").and_then(Value::as_str)
                == Some("default-authentication-flow-password-stage")),
        "the expression policy errored: {errors:?}"
    );
    // The MFA stage (authenticator_validate, defaults: skip when not configured) is
    // bound at 30 and let the admin (no devices) through.
    assert!(def.stages.iter().any(|s| s.binding.order == 30
        && matches!(&s.stage.config, StageConfig::AuthenticatorValidate(a) if a.not_configured_action == NotConfiguredAction::Skip)));
    // Its `metaapplyblueprint` brought the password-change flow, which the password
    // stage's `!Find` then found.
    let StageConfig::Password(p) = &password.stage.config else {
        unreachable!()
    };
    assert_eq!(p.configure_flow.as_deref(), Some(defaults::PASSWORD_CHANGE));
    assert!(
        imported
            .stores
            .flows
            .flow(defaults::PASSWORD_CHANGE)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn enrollment_runs_like_the_builtin_one() {
    async fn script(env: &Env) -> Vec<String> {
        let slug = defaults::ENROLLMENT;
        let mut c = env.client();
        let mut steps = vec![step(&c.get(slug).await)];
        let first = |pw2: &str| {
            json!({"component": "ak-stage-prompt", "username": "newbie",
                   "password": "Sup3r-secret-pw", "password_repeat": pw2})
        };
        steps.push(step(&c.post(slug, first("different")).await));
        steps.push(step(&c.post(slug, first("Sup3r-secret-pw")).await));
        steps.push(step(
            &c.post(
                slug,
                json!({"component": "ak-stage-prompt", "name": "New Bie", "email": "newbie@example.invalid"}),
            )
            .await,
        ));
        let user = env
            .stores
            .users
            .find_user(UserField::Username, "newbie", false)
            .await
            .unwrap()
            .expect("enrolled");
        assert!(
            env.stores
                .users
                .verify_password(Some(user.pk), &"Sup3r-secret-pw".into())
                .await
                .unwrap()
        );
        steps
    }
    let expected = script(&Env::builtin().await).await;
    assert_eq!(
        expected.first().map(String::as_str),
        Some("ak-stage-prompt")
    );
    assert!(
        expected[1].contains("Passwords don't match."),
        "{expected:?}"
    );
    assert_eq!(
        expected.last().map(String::as_str),
        Some("xak-flow-redirect -> / [logged in]")
    );
    let imported = Env::imported(&["flows-enrollment-2-stage.yaml"]).await;
    assert_eq!(script(&imported).await, expected);
}

#[tokio::test]
async fn password_change_runs_like_the_builtin_one() {
    async fn script(env: &Env, new: &str) -> Vec<String> {
        let slug = defaults::PASSWORD_CHANGE;
        let mut c = env.login("akadmin", ADMIN_PASSWORD).await;
        let mut steps = vec![step(&c.get(slug).await)];
        steps.push(step(
            &c.post(
                slug,
                json!({"component": "ak-stage-prompt", "password": new, "password_repeat": new}),
            )
            .await,
        ));
        steps
    }
    let builtin = Env::builtin().await;
    let imported = Env::imported(&["flow-default-authentication-flow.yaml"]).await;
    let expected = script(&builtin, "a-much-longer-password").await;
    assert_eq!(expected, vec!["ak-stage-prompt", "xak-flow-redirect -> /"]);
    assert_eq!(script(&imported, "a-much-longer-password").await, expected);
    for env in [&builtin, &imported] {
        let admin = env
            .stores
            .users
            .find_user(UserField::Username, "akadmin", false)
            .await
            .unwrap()
            .unwrap();
        assert!(
            env.stores
                .users
                .verify_password(Some(admin.pk), &"a-much-longer-password".into())
                .await
                .unwrap()
        );
    }

    // Where they differ, by authentik's own design: the built-in flow validates the
    // length in the prompt (validation policy); the blueprint binds the password policy
    // to the user-write binding, so a short password is accepted by the prompt, the
    // write stage is dropped on re-evaluation, the flow ends — and the password stays.
    let builtin = Env::builtin().await;
    let imported = Env::imported(&["flow-default-authentication-flow.yaml"]).await;
    let short = script(&builtin, "short").await;
    assert_eq!(short[0], "ak-stage-prompt");
    assert!(short[1].starts_with("ak-stage-prompt"), "{short:?}");
    assert!(short[1].contains("8 characters"), "{short:?}");
    assert_eq!(
        script(&imported, "short").await,
        vec!["ak-stage-prompt", "xak-flow-redirect -> /"]
    );
    let admin = imported
        .stores
        .users
        .find_user(UserField::Username, "akadmin", false)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !imported
            .stores
            .users
            .verify_password(Some(admin.pk), &"short".into())
            .await
            .unwrap(),
        "the policy on the write binding kept the short password out"
    );
}

#[tokio::test]
async fn unenrollment_runs_like_the_builtin_one() {
    async fn script(env: &Env) -> Vec<String> {
        env.stores
            .users
            .create_user(authflow::store::NewUser::new("leaver").password("leaver-password"))
            .await
            .unwrap();
        let slug = defaults::UNENROLLMENT;
        let mut c = env.login("leaver", "leaver-password").await;
        let steps = vec![step(&c.confirm(slug, "Delete your account?").await)];
        assert!(
            env.stores
                .users
                .find_user(UserField::Username, "leaver", false)
                .await
                .unwrap()
                .is_none(),
            "deleted"
        );
        steps
    }
    let expected = script(&Env::builtin().await).await;
    assert!(expected[0].starts_with("xak-flow-redirect"), "{expected:?}");
    let imported = Env::imported(&[
        "flow-default-authentication-flow.yaml",
        "flows-unenrollment.yaml",
    ])
    .await;
    assert_eq!(script(&imported).await, expected);
}

#[tokio::test]
async fn invalidation_runs_like_the_builtin_one() {
    async fn script(env: &Env) -> Vec<String> {
        let mut c = env.login("akadmin", ADMIN_PASSWORD).await;
        vec![step(&c.confirm(defaults::INVALIDATION, "Log out?").await)]
    }
    let expected = script(&Env::builtin().await).await;
    assert_eq!(expected, vec!["xak-flow-redirect -> / [logged out]"]);
    let imported = Env::imported(&[
        "flow-default-authentication-flow.yaml",
        "flow-default-invalidation-flow.yaml",
    ])
    .await;
    assert_eq!(script(&imported).await, expected);
}

// ---------------------------------------------------------------------------------------
// Idempotence, updates, states

#[tokio::test]
async fn applying_twice_changes_nothing() {
    for name in SUPPORTED.iter().chain(NEEDS_SKIP.iter().map(|(n, _)| n)) {
        let env = Env::new();
        let importer = env.importer().skip_unsupported(needs_skip(name));
        importer.apply_file(fixture(name)).await.unwrap();
        let before = env.catalogue();
        let revisions: Vec<Option<u64>> = {
            let mut r = Vec::new();
            for f in env.stores.flows.flows().await.unwrap() {
                r.push(env.stores.flows.revision(&f.slug).await.unwrap());
            }
            r
        };
        let again = importer.apply_file(fixture(name)).await.unwrap();
        assert_eq!(again.changes, 0, "{name}: {}", again.summary());
        assert!(
            again.entries.iter().all(|e| !matches!(
                e.action,
                EntryAction::Created | EntryAction::Updated | EntryAction::Deleted
            )),
            "{name}: {}",
            again.summary()
        );
        assert_eq!(env.catalogue(), before, "{name}");
        let mut after = Vec::new();
        for f in env.stores.flows.flows().await.unwrap() {
            after.push(env.stores.flows.revision(&f.slug).await.unwrap());
        }
        assert_eq!(after, revisions, "{name}: no flow was even rewritten");
    }
}

#[tokio::test]
async fn a_changed_file_updates_in_place() {
    let env = Env::new();
    let original = std::fs::read_to_string(fixture("flows-enrollment-2-stage.yaml")).unwrap();
    env.importer()
        .apply_str("enrollment.yaml", &original)
        .await
        .unwrap();
    let before = env.def(defaults::ENROLLMENT).await;

    let edited = original
        .replace("title: Welcome to authentik!", "title: Join us")
        .replace("label: Name\n", "label: Full name\n")
        .replace(
            "user_creation_mode: always_create",
            "user_creation_mode: create_when_required",
        );
    assert_ne!(edited, original);
    let report = env
        .importer()
        .apply_str("enrollment.yaml", &edited)
        .await
        .unwrap();
    // The flow, the prompt, the stage embedding it, and the user-write stage.
    assert_eq!(
        report.count(EntryAction::Updated),
        3,
        "{}",
        report.summary()
    );
    assert_eq!(
        report.count(EntryAction::Created),
        0,
        "{}",
        report.summary()
    );

    let after = env.def(defaults::ENROLLMENT).await;
    assert_eq!(after.flow.pk, before.flow.pk);
    assert_eq!(after.flow.title, "Join us");
    let pks = |d: &FlowDefinition| {
        d.stages
            .iter()
            .map(|s| (s.binding.pk, s.stage.pk))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pks(&after),
        pks(&before),
        "bindings and stages keep their pks"
    );
    let StageConfig::Prompt(second) = &after.stages[1].stage.config else {
        panic!()
    };
    let StageConfig::Prompt(second_before) = &before.stages[1].stage.config else {
        panic!()
    };
    assert_eq!(second.fields[0].label, "Full name");
    assert_eq!(second.fields[0].pk, second_before.fields[0].pk);
    assert!(matches!(
        &after.stages[2].stage.config,
        StageConfig::UserWrite(w) if w.user_creation_mode == authflow::model::UserCreationMode::CreateWhenRequired
    ));
    // Attributes a file does not mention keep their values (authentik's partial update).
    let mut def = after.flow.clone();
    def.layout = authflow::model::FlowLayout::SidebarLeft;
    env.stores.flows.put_flow(def).await.unwrap();
    env.importer()
        .apply_str("enrollment.yaml", &edited)
        .await
        .unwrap();
    assert_eq!(
        env.def(defaults::ENROLLMENT).await.flow.layout,
        authflow::model::FlowLayout::SidebarLeft
    );
}

#[tokio::test]
async fn states_absent_created_and_must_created() {
    let env = Env::new();
    env.importer()
        .apply_file(fixture("flows-enrollment-2-stage.yaml"))
        .await
        .unwrap();
    let yaml = r#"
version: 1
entries:
  - model: authentik_flows.flow
    state: created
    id: flow
    identifiers: {slug: default-enrollment-flow}
    attrs: {name: ignored, title: ignored, designation: enrollment}
  - model: authentik_flows.flowstagebinding
    state: absent
    identifiers:
      target: !KeyOf flow
      stage: !Find [authentik_stages_user_login.userloginstage, [name, default-enrollment-user-login]]
      order: 100
  - model: authentik_stages_prompt.prompt
    state: absent
    identifiers: {name: default-enrollment-field-email}
  - model: authentik_stages_deny.denystage
    state: absent
    identifiers: {name: no-such-stage}
"#;
    let report = env.importer().apply_str("states.yaml", yaml).await.unwrap();
    let actions: Vec<EntryAction> = report.entries.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![
            EntryAction::Kept,
            EntryAction::Deleted,
            EntryAction::Deleted,
            EntryAction::NothingToDelete
        ]
    );
    let def = env.def(defaults::ENROLLMENT).await;
    assert_eq!(
        def.flow.title, "Welcome to authentik!",
        "`created` does not update"
    );
    assert_eq!(def.stages.len(), 3, "the login binding is gone");
    let StageConfig::Prompt(second) = &def.stages[1].stage.config else {
        panic!()
    };
    assert_eq!(
        second
            .fields
            .iter()
            .map(|f| f.field_key.as_str())
            .collect::<Vec<_>>(),
        vec!["name"],
        "the deleted prompt left the stage"
    );

    let must = "version: 1\nentries:\n  - model: authentik_flows.flow\n    state: must_created\n    identifiers: {slug: default-enrollment-flow}\n    attrs: {name: x, title: x}\n";
    let err = env
        .importer()
        .apply_str("must.yaml", must)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must_created"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Errors: nothing written

#[tokio::test]
async fn a_dangling_keyof_fails_and_writes_nothing() {
    let env = Env::new();
    let yaml = r#"
version: 1
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: half}
    attrs: {name: Half, title: Half, designation: authentication}
  - model: authentik_stages_dummy.dummystage
    id: dummy
    identifiers: {name: half-dummy}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf dumy, order: 0}
"#;
    let err = env
        .importer()
        .apply_str("dangling.yaml", yaml)
        .await
        .unwrap_err();
    match &err {
        BlueprintError::Entry {
            file,
            index,
            model,
            message,
            ..
        } => {
            assert_eq!(file, "dangling.yaml");
            assert_eq!(*index, 2);
            assert_eq!(model, "authentik_flows.flowstagebinding");
            assert!(
                message.contains("KeyOf") && message.contains("`dumy`"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        env.stores.flows.catalogue().flows.is_empty()
            && env.stores.flows.catalogue().stages.is_empty(),
        "all or nothing: the flow and stage of entries 0 and 1 were not written"
    );
}

#[tokio::test]
async fn a_store_validation_error_names_the_entry_and_writes_nothing() {
    let env = Env::builtin().await;
    let before = env.catalogue();
    let yaml = r#"
version: 1
entries:
  - model: authentik_flows.flow
    identifiers: {slug: fine}
    attrs: {name: Fine, title: Fine, designation: authentication}
  - model: authentik_flows.flow
    identifiers: {slug: "not a slug!"}
    attrs: {name: Bad, title: Bad}
"#;
    let err = env
        .importer()
        .apply_str("bad.yaml", yaml)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlueprintError::Entry { index: 1, message, .. } if message.contains("slug")),
        "{err}"
    );
    assert_eq!(env.catalogue(), before);
}

#[tokio::test]
async fn a_metaapplyblueprint_cycle_is_an_error() {
    let a = r#"
version: 1
metadata: {name: A}
entries:
  - model: authentik_flows.flow
    identifiers: {slug: from-a}
    attrs: {name: A, title: A, designation: authentication}
  - model: authentik_blueprints.metaapplyblueprint
    attrs: {identifiers: {name: B}}
"#;
    let b = r#"
version: 1
metadata: {name: B}
entries:
  - model: authentik_blueprints.metaapplyblueprint
    attrs: {identifiers: {name: A}}
  - model: authentik_flows.flow
    identifiers: {slug: from-b}
    attrs: {name: B, title: B, designation: authentication}
"#;
    let env = Env::new();
    let library = Library::from_files([("a.yaml", a), ("b.yaml", b)]);
    let err = env
        .importer()
        .options(ImportOptions::new().library(library))
        .apply_str("a.yaml", a)
        .await
        .unwrap_err();
    match &err {
        BlueprintError::Cycle { chain, .. } => {
            assert_eq!(chain, &["a.yaml", "b.yaml", "a.yaml"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains("a.yaml -> b.yaml -> a.yaml"),
        "{err}"
    );
    assert!(env.stores.flows.catalogue().flows.is_empty());

    // The same from a directory.
    let dir = temp_dir();
    std::fs::write(dir.join("a.yaml"), a).unwrap();
    std::fs::write(dir.join("b.yaml"), b).unwrap();
    let err = env.importer().apply_dir(&dir).await.unwrap_err();
    assert!(matches!(err, BlueprintError::Cycle { .. }), "{err}");
    let err = env
        .importer()
        .apply_file(dir.join("b.yaml"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlueprintError::Cycle { chain, .. } if chain == &["b.yaml", "a.yaml", "b.yaml"]),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(env.stores.flows.catalogue().flows.is_empty());
}

#[tokio::test]
async fn metaapplyblueprint_required_and_optional() {
    let yaml = |required: bool| {
        format!(
            "version: 1\nentries:\n  - model: authentik_blueprints.metaapplyblueprint\n    attrs:\n      identifiers: {{name: Nowhere}}\n      required: {required}\n"
        )
    };
    let env = Env::new();
    let report = env
        .importer()
        .apply_str("opt.yaml", &yaml(false))
        .await
        .unwrap();
    assert_eq!(report.entries[0].action, EntryAction::BlueprintNotFound);
    let err = env
        .importer()
        .apply_str("req.yaml", &yaml(true))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Required blueprint does not exist"),
        "{err}"
    );

    // From a directory, dependencies are applied first and only once.
    let report = env
        .importer()
        .skip_unsupported(true)
        .apply_dir(fixtures())
        .await
        .unwrap();
    let order: Vec<&str> = report
        .files()
        .iter()
        .map(|r| r.file.rsplit('/').next().unwrap())
        .collect();
    let pos = |f: &str| order.iter().position(|x| *x == f).unwrap();
    assert!(pos("flow-password-change.yaml") < pos("flow-default-authentication-flow.yaml"));
    assert_eq!(
        order
            .iter()
            .filter(|f| **f == "flow-password-change.yaml")
            .count(),
        1
    );
    // authentik's examples (instantiate: "false") are left alone.
    assert_eq!(report.not_instantiated.len(), 5);
    assert!(
        env.stores
            .flows
            .flow(defaults::ENROLLMENT)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn malformed_yaml_names_line_and_column() {
    let env = Env::new();
    let yaml = "version: 1\nentries:\n  - model: authentik_flows.flow\n    identifiers: {slug: x\n    attrs: {}\n";
    let err = env
        .importer()
        .apply_str("broken.yaml", yaml)
        .await
        .unwrap_err();
    let BlueprintError::Yaml { line, column, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(line.is_some() && column.is_some(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("broken.yaml: invalid YAML at line "),
        "{text}"
    );
    assert!(text.contains(", column "), "{text}");

    let dir = temp_dir();
    std::fs::write(dir.join("broken.yaml"), yaml).unwrap();
    let err = env
        .importer()
        .apply_file(dir.join("broken.yaml"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BlueprintError::Yaml { line: Some(_), .. }),
        "{err:?}"
    );
    // A directory with a broken file stops, naming it.
    let err = env.importer().apply_dir(&dir).await.unwrap_err();
    assert!(err.to_string().contains("broken.yaml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    for (bad, what) in [
        ("- just\n- a list\n", "mapping"),
        ("version: 2\nentries: []\n", "version"),
        ("version: 1\n", "entries"),
        ("version: 1\nentries:\n  - identifiers: {a: b}\n", "model"),
    ] {
        let err = env.importer().apply_str("bad.yaml", bad).await.unwrap_err();
        assert!(err.to_string().contains(what), "{bad:?}: {err}");
    }
    assert!(env.stores.flows.catalogue().flows.is_empty());
}

#[tokio::test]
async fn large_input_is_refused_quickly() {
    let env = Env::new();
    // 10 MB: refused by size, before parsing, from a string or a file.
    let mut big = String::from("version: 1\nentries:\n");
    let entry = "  - model: authentik_stages_dummy.dummystage\n    identifiers: {name: padding}\n";
    while big.len() < 10 * 1024 * 1024 {
        big.push_str(entry);
    }
    let started = Instant::now();
    let err = env
        .importer()
        .apply_str("big.yaml", &big)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BlueprintError::TooLarge { size, limit, .. } if size >= 10 * 1024 * 1024 && limit == MAX_BLUEPRINT_BYTES as u64),
        "{err:?}"
    );
    let dir = temp_dir();
    std::fs::write(dir.join("big.yaml"), &big).unwrap();
    let err = env
        .importer()
        .apply_file(dir.join("big.yaml"))
        .await
        .unwrap_err();
    assert!(matches!(err, BlueprintError::TooLarge { .. }), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Too many entries.
    let mut many = String::from("version: 1\nentries:\n");
    for _ in 0..=MAX_ENTRIES {
        many.push_str("  - model: x.y\n");
    }
    let err = env
        .importer()
        .apply_str("many.yaml", &many)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("entries"), "{err}");

    // An alias bomb ("billion laughs") is refused by the YAML reader.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h"])
    {
        bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let started = Instant::now();
    assert!(env.importer().apply_str("bomb.yaml", &bomb).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));

    // A `!Enumerate` blow-up is refused too.
    let blowup = r#"
version: 1
context:
  l: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99]
entries:
  - model: authentik_flows.flow
    identifiers: {slug: x}
    attrs:
      name: !Enumerate [!Context l, SEQ, !Enumerate [!Context l, SEQ, !Enumerate [!Context l, SEQ, !Enumerate [!Context l, SEQ, !Index 0]]]]
"#;
    let started = Instant::now();
    let err = env
        .importer()
        .apply_str("blowup.yaml", blowup)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expand"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    // The largest acceptable number of entries applies in reasonable time (a few
    // seconds in a debug build), and so does applying it again.
    let mut ok = String::from(
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    id: flow\n    identifiers: {slug: big}\n    attrs: {name: Big, title: Big, designation: authentication}\n",
    );
    let pairs = (MAX_ENTRIES - 1) / 2;
    for i in 0..pairs {
        ok.push_str(&format!(
            "  - model: authentik_stages_dummy.dummystage\n    id: s{i}\n    identifiers: {{name: stage-{i}}}\n  - model: authentik_flows.flowstagebinding\n    identifiers: {{target: !KeyOf flow, stage: !KeyOf s{i}, order: {i}}}\n"
        ));
    }
    let started = Instant::now();
    let report = env.importer().apply_str("ok.yaml", &ok).await.unwrap();
    assert_eq!(report.count(EntryAction::Created), 2 * pairs + 1);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(env.def("big").await.stages.len(), pairs);
    let started = Instant::now();
    let again = env.importer().apply_str("ok.yaml", &ok).await.unwrap();
    assert_eq!(again.changes, 0);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// Fail closed

#[tokio::test]
async fn an_unsupported_stage_denies_access_naming_its_kind() {
    // Recovery: identification (dropped: its expression policy errors and fails closed
    // at plan time) → email, which has no pending user: denied, nothing sent
    // (tests/email_blueprints.rs runs it with Python and a mailer).
    let env = Env::imported(&["flows-recovery-email-verification.yaml"]).await;
    let mut c = env.client();
    let out = c.get("default-recovery-flow").await;
    assert_eq!(out.challenge.component(), "ak-stage-access-denied");
    let message = wire(&out)["error_message"].as_str().unwrap().to_owned();
    assert_eq!(message, "No pending user.");
    // The binding pinned by pk in the blueprint kept its pk.
    let def = env.def("default-recovery-flow").await;
    assert!(
        def.stages
            .iter()
            .any(|s| s.binding.pk.to_string() == "1219d06e-2c06-4c5b-a162-78e3959c6cf0")
    );

    // Enrollment with email verification: the prompts run, then the email stage denies
    // (this engine has no mailer: fail closed).
    let env = Env::imported(&["flows-enrollment-email-verification.yaml"]).await;
    let mut c = env.client();
    let slug = defaults::ENROLLMENT;
    c.get(slug).await;
    c.post(
        slug,
        json!({"component": "ak-stage-prompt", "username": "mailer", "password": "Long-enough-1", "password_repeat": "Long-enough-1"}),
    )
    .await;
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-prompt", "name": "M", "email": "m@example.invalid"}),
        )
        .await;
    assert_eq!(out.challenge.component(), "ak-stage-access-denied");
    assert_eq!(
        wire(&out)["error_message"].as_str().unwrap(),
        authflow::stages::NO_MAILER
    );
    assert!(!out.logged_in);

    // The WebAuthn setup flow is supported now (tests/mfa_webauthn.rs): reached by a
    // logged-in user it is the real stage, which here denies for want of the
    // `webauthn` feature or (this in-process request has none) of an origin.
    let env = Env::imported(&[
        "flow-default-authentication-flow.yaml",
        "flow-default-authenticator-webauthn-setup.yaml",
    ])
    .await;
    let mut c = env.login("akadmin", ADMIN_PASSWORD).await;
    let out = c.get("default-authenticator-webauthn-setup").await;
    assert_eq!(out.challenge.component(), "ak-stage-access-denied");
    let message = wire(&out)["error_message"].as_str().unwrap().to_owned();
    let expected = if cfg!(feature = "webauthn") {
        "origin"
    } else {
        "`webauthn` cargo feature"
    };
    assert!(message.contains(expected), "{message}");
}

#[tokio::test]
async fn skipping_never_drops_a_policy_a_binding_needs() {
    let env = Env::new();
    let base = r#"
version: 1
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: guarded}
    attrs: {name: G, title: G, designation: authentication}
  - model: authentik_policies_geoip.geoippolicy
    id: geo
    identifiers: {name: only-here}
  - model: authentik_core.application
    id: app
    identifiers: {slug: app}
"#;
    // A binding on a skipped application: nothing to bind to, skipped with it.
    let on_app = format!(
        "{base}  - model: authentik_policies.policybinding\n    identifiers: {{target: !KeyOf app, group: null, policy: !KeyOf geo, order: 0}}\n"
    );
    let report = env
        .importer()
        .skip_unsupported(true)
        .apply_str("app.yaml", &on_app)
        .await
        .unwrap();
    let skipped: Vec<(usize, bool)> = report
        .skipped
        .iter()
        .map(|s| (s.index, s.kept_as_denying_stage))
        .collect();
    assert_eq!(skipped, vec![(1, false), (2, false), (3, false)]);

    // A binding of a skipped policy to the flow: refusing is the only safe answer.
    let on_flow = format!(
        "{base}  - model: authentik_policies.policybinding\n    identifiers: {{target: !KeyOf flow, policy: !KeyOf geo, order: 0}}\n"
    );
    let env = Env::new();
    let err = env
        .importer()
        .skip_unsupported(true)
        .apply_str("flow.yaml", &on_flow)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlueprintError::Entry { index: 3, message, .. } if message.contains("skipped") && message.contains("geoippolicy")),
        "{err}"
    );
    assert!(env.stores.flows.catalogue().flows.is_empty());

    // An identification stage with a captcha would be weaker without it: refused.
    let captcha = r#"
version: 1
entries:
  - model: authentik_stages_captcha.captchastage
    id: captcha
    identifiers: {name: captcha}
  - model: authentik_stages_identification.identificationstage
    identifiers: {name: ident}
    attrs: {user_fields: [username], captcha_stage: !KeyOf captcha}
"#;
    let err = env
        .importer()
        .skip_unsupported(true)
        .apply_str("captcha.yaml", captcha)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("captcha_stage"), "{err}");
}

// ---------------------------------------------------------------------------------------
// authenticator_validate

const MFA_FLOW: &str = r#"
version: 1
metadata: {name: MFA login}
context: {action: skip}
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: mfa-login}
    attrs: {name: MFA, title: MFA, designation: authentication}
  - model: authentik_stages_identification.identificationstage
    id: ident
    identifiers: {name: mfa-ident}
    attrs: {user_fields: [username]}
  - model: authentik_stages_password.passwordstage
    id: password
    identifiers: {name: mfa-password}
    attrs: {backends: [authentik.core.auth.InbuiltBackend]}
  - model: authentik_stages_authenticator_validate.authenticatorvalidatestage
    id: mfa
    identifiers: {name: mfa-validate}
    attrs:
      device_classes: [totp, webauthn]
      not_configured_action: !Context action
  - model: authentik_stages_user_login.userloginstage
    id: login
    identifiers: {name: mfa-user-login}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf ident, order: 10}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf password, order: 20}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf mfa, order: 30}
  - model: authentik_flows.flowstagebinding
    identifiers: {target: !KeyOf flow, stage: !KeyOf login, order: 100}
  - model: authentik_core.user
    identifiers: {username: plain}
    attrs: {password: plain-password-1}
"#;

async fn mfa_login(env: &Env, user: &str, password: &str) -> String {
    let mut c = env.client();
    c.get("mfa-login").await;
    c.post("mfa-login", ident(user)).await;
    step(&c.post("mfa-login", pw(password)).await)
}

// The not_configured_actions from a blueprint (devices and setup stages: tests/mfa_*.rs).
#[tokio::test]
async fn authenticator_validate_not_configured_actions() {
    let env = Env::new();
    let apply = |action: &'static str| {
        let importer = env
            .importer()
            .options(ImportOptions::new().context_value("action", json!(action)));
        async move { importer.apply_str("mfa.yaml", MFA_FLOW).await.unwrap() }
    };
    apply("skip").await;
    // skip: no (allowed) device → through.
    assert_eq!(
        mfa_login(&env, "plain", "plain-password-1").await,
        "xak-flow-redirect -> / [logged in]"
    );
    // deny: the stage is updated in place by the same file with another context.
    let report = apply("deny").await;
    assert_eq!(
        report.count(EntryAction::Updated),
        1,
        "{}",
        report.summary()
    );
    assert_eq!(
        mfa_login(&env, "plain", "plain-password-1").await,
        "ak-stage-access-denied: No (allowed) MFA authenticator configured."
    );
    // configure without configuration stages: denied.
    apply("configure").await;
    assert_eq!(
        mfa_login(&env, "plain", "plain-password-1").await,
        "ak-stage-access-denied: No (allowed) MFA authenticator configured."
    );
}

// ---------------------------------------------------------------------------------------
// Users, groups, tags

#[tokio::test]
async fn users_and_groups() {
    let env = Env::new();
    let hash = authflow::hashing::django_pbkdf2_hash("from-authentik", "seasalt", 1000);
    let yaml = format!(
        r#"
version: 1
entries:
  - model: authentik_core.group
    id: staff
    identifiers: {{name: staff}}
    attrs: {{attributes: {{team: ops}}}}
  - model: authentik_core.group
    id: admins
    identifiers: {{name: admins}}
    attrs: {{is_superuser: true, parent: !KeyOf staff}}
  - model: authentik_core.user
    id: alice
    identifiers: {{username: alice}}
    attrs: {{name: Alice, email: alice@example.invalid, password: alice-password-1, groups: [!KeyOf admins]}}
  - model: authentik_core.user
    identifiers: {{username: bob}}
    attrs: {{password_hash: "{hash}", type: external}}
  - model: authentik_flows.flow
    id: flow
    identifiers: {{slug: staff-only}}
    attrs: {{name: Staff, title: Staff, designation: authentication}}
  - model: authentik_policies.policybinding
    identifiers: {{target: !KeyOf flow, group: !Find [authentik_core.group, [name, staff]], order: 0}}
  - model: authentik_policies.policybinding
    identifiers: {{target: !KeyOf flow, user: !KeyOf alice, order: 1}}
"#
    );
    let report = env.importer().apply_str("users.yaml", &yaml).await.unwrap();
    assert_eq!(
        report.count(EntryAction::Created),
        7,
        "{}",
        report.summary()
    );
    let users = &env.stores.users;
    let alice = users
        .find_user(UserField::Username, "alice", false)
        .await
        .unwrap()
        .unwrap();
    let staff = users.find_group("staff").await.unwrap().unwrap();
    let admins = users.find_group("admins").await.unwrap().unwrap();
    assert_eq!(admins.parent, Some(staff.pk));
    assert!(admins.is_superuser);
    assert_eq!(staff.attributes["team"], "ops");
    assert_eq!(alice.groups, vec![admins.pk]);
    assert!(
        users
            .verify_password(Some(alice.pk.clone()), &"alice-password-1".into())
            .await
            .unwrap()
    );
    let bob = users
        .find_user(UserField::Username, "bob", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.user_type, "external");
    assert!(
        users
            .verify_password(Some(bob.pk), &"from-authentik".into())
            .await
            .unwrap()
    );
    let def = env.def("staff-only").await;
    let subjects: Vec<BindingSubject> = def
        .policies
        .iter()
        .map(|p| p.binding.subject.clone())
        .collect();
    assert_eq!(
        subjects,
        vec![
            BindingSubject::Group(staff.pk),
            BindingSubject::User(alice.pk)
        ]
    );
    assert!(
        def.policies
            .iter()
            .all(|p| p.binding.target == BindingTarget::Flow(def.flow.pk))
    );

    // Idempotent, including the password (checked, not rehashed).
    let again = env.importer().apply_str("users.yaml", &yaml).await.unwrap();
    assert_eq!(
        again.count(EntryAction::Unchanged) + again.count(EntryAction::Updated),
        7
    );
    assert_eq!(
        again.count(EntryAction::Updated),
        1,
        "only bob's imported hash is written again"
    );

    // A user whose username another user has (case-insensitively) is refused.
    let clash = "version: 1\nentries:\n  - model: authentik_core.user\n    identifiers: {pk: 1c1f8b4e-8f5a-4d0e-9a43-2b1d7c9e5f10}\n    attrs: {username: ALICE}\n";
    let err = env
        .importer()
        .apply_str("clash.yaml", clash)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("taken"), "{err}");
}

#[tokio::test]
async fn tags_resolve_as_in_authentik() {
    let env = Env::new();
    let yaml = r#"
version: 1
metadata: {name: Tags}
context:
  flow_name: From the file
  features: {fast: true}
  items: [alpha, beta]
entries:
  - model: authentik_flows.flow
    id: flow
    identifiers: {slug: !Format ["%s-%d", tags, 7]}
    attrs:
      name: !Context flow_name
      title: !Format ["%s (%s)", !Context [missing, fallback], !Env [AUTHFLOW_TEST_TITLE, unset]]
      designation: !If [!Condition [AND, !Context features, true], authentication, enrollment]
      compatibility_mode: !If [!Condition [XOR, true, true]]
  - model: authentik_stages_deny.denystage
    id: deny
    identifiers: {name: tags-deny}
    attrs:
      deny_message: !Format ["%s|%s|%s", !AtIndex [!Context items, -1], !AtIndex [!Context features, slow, no], !ParseJSON '{"a": [1]}']
  - model: authentik_stages_deny.denystage
    id: never
    conditions: [!Condition [NOR, true, false]]
    identifiers: {name: tags-never}
  - model: authentik_flows.flowstagebinding
    identifiers:
      # authentik `Find`: Django lookups in the query (objects.filter(**query))
      target: !Find [authentik_flows.flow, [slug__iexact, TAGS-7], [name__in, [x, From the caller]], [title__isnull, false]]
      stage: !KeyOf deny
      order: 0
  - model: authentik_core.user
    identifiers: {username: tagged}
    attrs:
      attributes:
        seq: !Enumerate [!Context items, SEQ, !Format ["%s:%s", !Index 0, !Value 0]]
        map: !Enumerate [!Context items, MAP, [!Value 0, !Enumerate [[x, y], SEQ, !Format ["%s-%s", !Value 1, !Value 0]]]]
"#;
    let mut env_vars = BTreeMap::new();
    env_vars.insert("AUTHFLOW_TEST_TITLE".to_owned(), "from env".to_owned());
    let report = env
        .importer()
        .options(
            ImportOptions::new()
                .env(env_vars)
                .context_value("flow_name", json!("From the caller")),
        )
        .apply_str("tags.yaml", yaml)
        .await
        .unwrap();
    assert_eq!(report.entries[2].action, EntryAction::ConditionsNotMet);
    let def = env.def("tags-7").await;
    assert_eq!(
        def.flow.name, "From the caller",
        "caller context over file context"
    );
    assert_eq!(def.flow.title, "fallback (from env)");
    assert_eq!(
        def.flow.designation,
        authflow::model::FlowDesignation::Authentication
    );
    assert!(!def.flow.compatibility_mode);
    let StageConfig::Deny(d) = &def.stages[0].stage.config else {
        panic!()
    };
    assert_eq!(d.deny_message, "beta|no|{'a': [1]}");
    let user = env
        .stores
        .users
        .find_user(UserField::Username, "tagged", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.attributes["seq"], json!(["0:alpha", "1:beta"]));
    assert_eq!(
        user.attributes["map"],
        json!({"alpha": ["alpha-x", "alpha-y"], "beta": ["beta-x", "beta-y"]}),
        "!Value 1 is the outer item, !Value 0 the inner one"
    );

    for (bad, what) in [
        ("!File /etc/passwd", "!File"),
        ("!Nope x", "unknown tag"),
        ("!Index 0", "!Enumerate"),
        ("!Format [\"%s %s\", a]", "not enough arguments"),
        ("!Condition [MAYBE, true]", "unknown mode"),
    ] {
        let yaml = format!(
            "version: 1\nentries:\n  - model: authentik_flows.flow\n    identifiers: {{slug: bad}}\n    attrs: {{name: {bad}, title: t}}\n"
        );
        let err = env
            .importer()
            .apply_str("bad.yaml", &yaml)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(what), "{bad}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// Export

/// A definition as JSON with every id replaced by the name of what it identifies, so
/// two imports of the same blueprint compare equal.
fn normalized(def: &FlowDefinition) -> Value {
    let mut names: HashMap<String, String> = HashMap::new();
    for s in &def.stages {
        names.insert(s.stage.pk.to_string(), format!("stage:{}", s.stage.name));
        if let StageConfig::Prompt(p) = &s.stage.config {
            for f in &p.fields {
                names.insert(f.pk.to_string(), format!("prompt:{}", f.name));
            }
        }
        for p in &s.policies {
            if let Some(policy) = &p.policy {
                names.insert(policy.pk.to_string(), format!("policy:{}", policy.name));
            }
        }
    }
    for p in def.policies.iter().filter_map(|p| p.policy.as_ref()) {
        names.insert(p.pk.to_string(), format!("policy:{}", p.name));
    }
    for p in def.validation_policies.values() {
        names.insert(p.pk.to_string(), format!("policy:{}", p.name));
    }
    fn scrub(v: &mut Value, names: &HashMap<String, String>) {
        match v {
            Value::String(s) => {
                if let Some(n) = names.get(s.as_str()) {
                    *s = n.clone();
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| scrub(x, names)),
            Value::Object(o) => {
                for k in ["policybindingmodel_ptr_id", "target"] {
                    o.remove(k);
                }
                o.values_mut().for_each(|x| scrub(x, names));
            }
            _ => {}
        }
    }
    let policies = |list: &[authflow::store::ResolvedBinding]| -> Value {
        list.iter()
            .map(|p| {
                let mut b = serde_json::to_value(&p.binding).unwrap();
                b.as_object_mut().unwrap().remove("pk");
                json!({"binding": b, "policy": p.policy.as_ref().map(|x| serde_json::to_value(&**x).unwrap())})
            })
            .collect()
    };
    let mut flow = serde_json::to_value(&def.flow).unwrap();
    flow.as_object_mut().unwrap().remove("pk");
    let stages: Vec<Value> = def
        .stages
        .iter()
        .map(|s| {
            let mut b = serde_json::to_value(&s.binding).unwrap();
            b.as_object_mut().unwrap().remove("pk");
            json!({"binding": b, "stage": serde_json::to_value(&*s.stage).unwrap(), "policies": policies(&s.policies)})
        })
        .collect();
    let mut validation: Vec<Value> = def
        .validation_policies
        .values()
        .map(|p| serde_json::to_value(&**p).unwrap())
        .collect();
    validation.sort_by_key(|v| v["name"].to_string());
    let mut v = json!({"flow": flow, "policies": policies(&def.policies), "stages": stages, "validation": validation});
    scrub(&mut v, &names);
    v
}

#[tokio::test]
async fn export_round_trips() {
    let all: Vec<&str> = SUPPORTED
        .iter()
        .copied()
        .chain(NEEDS_SKIP.iter().map(|(n, _)| *n))
        .collect();
    let mut exported_flows = 0;
    for name in all {
        let first = Env::imported(&[name]).await;
        let flows = first.stores.flows.flows().await.unwrap();
        let mut exports = Vec::new();
        for f in &flows {
            exports.push((f.slug.clone(), export(&first.def(&f.slug).await)));
        }
        // Into fresh stores: twice, so flows referring to each other (`!Find` by slug)
        // find each other whatever the order.
        let second = Env::new();
        for _ in 0..2 {
            for (slug, yaml) in &exports {
                second
                    .importer()
                    .skip_unsupported(true)
                    .apply_str(&format!("{slug}.yaml"), yaml)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: re-importing {slug}: {e}\n{yaml}"));
            }
        }
        for (slug, yaml) in &exports {
            assert_eq!(
                normalized(&second.def(slug).await),
                normalized(&first.def(slug).await),
                "{name}: {slug}\n{yaml}"
            );
            // And exporting again gives the same blueprint.
            assert_eq!(&export(&second.def(slug).await), yaml, "{name}: {slug}");
            exported_flows += 1;
        }
    }
    assert!(exported_flows >= 15, "{exported_flows}");

    // The built-in default flows round-trip too.
    let builtin = Env::builtin().await;
    for f in builtin.stores.flows.flows().await.unwrap() {
        let yaml = export(&builtin.def(&f.slug).await);
        let fresh = Env::new();
        fresh.importer().apply_str("x.yaml", &yaml).await.unwrap();
        assert_eq!(
            normalized(&fresh.def(&f.slug).await),
            normalized(&builtin.def(&f.slug).await),
            "{}\n{yaml}",
            f.slug
        );
    }
}

#[cfg(feature = "http")]
#[tokio::test]
async fn the_http_api_serves_the_export() {
    use authflow::http::{HttpConfig, router};
    let env = Env::imported(&["flow-default-authentication-flow.yaml"]).await;
    let admin = env
        .stores
        .users
        .find_user(UserField::Username, "akadmin", false)
        .await
        .unwrap()
        .unwrap();
    let config = HttpConfig::default();
    config.tokens.insert("export-token", admin.pk);
    let app = router(env.engine.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = |slug: &str| format!("http://{addr}/api/v3/flows/instances/{slug}/export/");
    let client = reqwest::Client::new();

    let resp = client
        .get(url(defaults::AUTHENTICATION))
        .bearer_auth("export-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"default-authentication-flow.yaml\""
    );
    let yaml = resp.text().await.unwrap();
    assert_eq!(yaml, export(&env.def(defaults::AUTHENTICATION).await));
    // The export_url the flows API advertises is this route.
    let flow = client
        .get(format!(
            "http://{addr}/api/v3/flows/instances/{}/",
            defaults::AUTHENTICATION
        ))
        .bearer_auth("export-token")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        flow["export_url"],
        format!(
            "/api/v3/flows/instances/{}/export/",
            defaults::AUTHENTICATION
        )
    );

    let anonymous = client
        .get(url(defaults::AUTHENTICATION))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
    let missing = client
        .get(url("no-such-flow"))
        .bearer_auth("export-token")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

// ---------------------------------------------------------------------------------------
// Any store, any directory

#[tokio::test]
async fn stores_seen_only_through_their_traits() {
    // The generic targets see what `FlowStore` / `UserDirectory` show.
    let env = Env::new();
    let flows: &dyn FlowStore = env.stores.flows.as_ref();
    let users: &dyn UserDirectory = env.stores.users.as_ref();
    let importer = Importer::new(flows, users).expressions(true);
    let first = importer
        .apply_file(fixture("flow-default-authentication-flow.yaml"))
        .await
        .unwrap();
    assert!(first.changes > 0);
    let again = importer
        .apply_file(fixture("flow-default-authentication-flow.yaml"))
        .await
        .unwrap();
    assert_eq!(again.changes, 0, "{}", again.summary());
    let memory = Env::imported(&["flow-default-authentication-flow.yaml"]).await;
    for slug in [defaults::AUTHENTICATION, defaults::PASSWORD_CHANGE] {
        assert_eq!(
            normalized(&env.def(slug).await),
            normalized(&memory.def(slug).await),
            "{slug}"
        );
    }
    // A disabled policy binding is invisible through the trait; applying again
    // rewrites it (its pk is derived from its identifiers) instead of adding another.
    let disabled = r#"
version: 1
entries:
  - model: authentik_policies_dummy.dummypolicy
    id: p
    identifiers: {name: off-policy}
    attrs: {result: false}
  - model: authentik_policies.policybinding
    identifiers:
      target: !Find [authentik_flows.flow, [slug, default-authentication-flow]]
      policy: !KeyOf p
      order: 99
    attrs: {enabled: false}
"#;
    for _ in 0..3 {
        importer.apply_str("disabled.yaml", disabled).await.unwrap();
    }
    let count = env
        .stores
        .flows
        .catalogue()
        .policy_bindings
        .iter()
        .filter(|b| b.order == 99)
        .count();
    assert_eq!(count, 1);
    // Only the in-memory directory takes password hashes.
    let hash = authflow::hashing::django_pbkdf2_hash("pw", "salt", 1000);
    let yaml = format!(
        "version: 1\nentries:\n  - model: authentik_core.user\n    identifiers: {{username: hashed}}\n    attrs: {{password_hash: \"{hash}\"}}\n"
    );
    let err = importer.apply_str("hash.yaml", &yaml).await.unwrap_err();
    assert!(err.to_string().contains("password_hash"), "{err}");
    assert!(
        users
            .find_user(UserField::Username, "hashed", false)
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn imports_can_run_on_any_executor_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let stores = memory::Stores::new();
    let importer = Importer::for_stores(&stores);
    assert_send(&importer.apply_str("x.yaml", "version: 1\nentries: []\n"));
    assert_send(&importer.apply_file("x.yaml"));
    assert_send(&importer.apply_dir("."));
}

#[tokio::test]
async fn refuses_what_would_weaken_a_flow_or_never_end() {
    let env = Env::new();
    let looping = "version: 1\ncontext:\n  a: !Context a\nentries:\n  - model: authentik_flows.flow\n    identifiers: {slug: loop}\n    attrs: {name: !Context a, title: t}\n";
    let err = env
        .importer()
        .apply_str("loop.yaml", looping)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refers to itself"), "{err}");
    let mut deep = String::from("x");
    for _ in 0..200 {
        deep = format!("!If [true, {deep}, n]");
    }
    let deep = format!(
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    identifiers: {{slug: deep}}\n    attrs: {{name: {deep}, title: t}}\n"
    );
    assert!(env.importer().apply_str("deep.yaml", &deep).await.is_err());

    let login = |binding: &str| {
        format!(
            "version: 1\nentries:\n  - model: authentik_stages_user_login.userloginstage\n    identifiers: {{name: login}}\n    attrs: {{network_binding: {binding}, session_duration: hours=1}}\n"
        )
    };
    let err = env
        .importer()
        .apply_str("login.yaml", &login("bind_asn_network_ip"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("network_binding"), "{err}");
    assert!(env.stores.flows.catalogue().stages.is_empty());
    let report = env
        .importer()
        .apply_str("login.yaml", &login("no_binding"))
        .await
        .unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

/// References in `validation_policies` and `configuration_stages` must name existing
/// objects: an unknown pk fails the entry (naming the field) and writes nothing.
#[tokio::test]
async fn unknown_referenced_pks_fail_the_entry() {
    for (model, field, what) in [
        (
            "authentik_stages_prompt.promptstage",
            "validation_policies",
            "policy",
        ),
        (
            "authentik_stages_authenticator_validate.authenticatorvalidatestage",
            "configuration_stages",
            "stage",
        ),
    ] {
        let env = Env::new();
        let yaml = format!(
            "version: 1\nentries:\n  - model: {model}\n    identifiers: {{name: refs}}\n    attrs: {{{field}: [\"0b9a4f2e-0000-4000-8000-000000000001\"]}}\n"
        );
        let err = env
            .importer()
            .apply_str("refs.yaml", &yaml)
            .await
            .unwrap_err();
        match &err {
            BlueprintError::Entry { message, .. } => assert!(
                message.contains(&format!("`{field}`: no {what} has the pk")),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            env.stores.flows.catalogue().stages.is_empty(),
            "nothing written"
        );
    }
}

// authentik runs every expression policy it imports; authflow can only run one when the
// engine has an expression evaluator, and without one `flows-login-2fa`'s
// `test-not-app-password` expression (authentik/policies/expression/
// evaluator.py `PolicyEvaluator.evaluate`) would always fail, silently changing the flow.
// So the import is refused, naming the policy.
#[tokio::test]
async fn expressions() {
    let env = Env::new();
    let err = Importer::for_stores(&env.stores)
        .skip_unsupported(needs_skip("flows-login-2fa.yaml"))
        .apply_file(fixture("flows-login-2fa.yaml"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no expression evaluator"), "{err}");
    assert!(err.contains("`test-not-app-password`"), "{err}");
    // Nothing was written.
    assert!(env.stores.flows.flows().await.unwrap().is_empty());
    // With an evaluator (`ImportOptions::expressions`), the same file imports.
    Importer::for_stores(&env.stores)
        .options(
            ImportOptions::new()
                .expressions(true)
                .skip_unsupported(needs_skip("flows-login-2fa.yaml")),
        )
        .apply_file(fixture("flows-login-2fa.yaml"))
        .await
        .unwrap();
}
