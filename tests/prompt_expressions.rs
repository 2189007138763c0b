#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Prompt `placeholder_expression` / `initial_value_expression`
//! (authentik/stages/prompt/models.py `Prompt.get_initial_value` and
//! `get_placeholder`): the field's value is an expression evaluated with `user` and
//! `prompt_context` each time the stage shows it. authentik's default user-settings
//! flow fills its form this way.
#![cfg(all(feature = "python", feature = "blueprints"))]

mod common;

use std::sync::Arc;

use authflow::blueprint::Importer;
use authflow::model::{Flow, FlowDesignation, Prompt, PromptStage, PromptType, Stage, StageConfig};
use authflow::python::PythonEvaluator;
use authflow::store::{FlowAdmin, NewUser, UserAdmin};
use authflow::{Engine, defaults, memory};
use common::kit::Client;
use serde_json::{Value, json};

const SETTINGS: &str = "default-user-settings-flow";
const PASSWORD: &str = "Settings-Pw-123";

async fn engine(stores: &memory::Stores, python: bool) -> Arc<Engine> {
    defaults::install(stores.flows.as_ref()).await.unwrap();
    let builder = stores.engine();
    let builder = if python {
        builder.expressions(Arc::new(PythonEvaluator::new()))
    } else {
        builder
    };
    Arc::new(builder.build())
}

async fn logged_in(stores: &memory::Stores, engine: &Arc<Engine>) -> Client {
    stores
        .users
        .create_user(
            NewUser::new("ada")
                .name("Ada Lovelace")
                .email("ada@example.com")
                .password(PASSWORD),
        )
        .await
        .unwrap();
    let mut c = Client::new(engine.clone());
    c.get(defaults::AUTHENTICATION).await;
    c.post(defaults::AUTHENTICATION, json!({"uid_field": "ada"}))
        .await;
    let out = c
        .post(defaults::AUTHENTICATION, json!({"password": PASSWORD}))
        .await;
    assert!(out.logged_in);
    c
}

fn initial_values(challenge: &Value) -> Vec<(String, String)> {
    challenge["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field_key"].as_str().unwrap().to_owned(),
                f["initial_value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_user_settings_flow_shows_the_users_own_values() {
    let stores = memory::Stores::new();
    let engine = engine(&stores, true).await;
    Importer::for_stores(&stores)
        .expressions(true)
        .skip_unsupported(true)
        .apply_file("tests/fixtures/blueprints/flow-default-user-settings-flow.yaml")
        .await
        .unwrap();
    let mut c = logged_in(&stores, &engine).await;
    let out = c.get(SETTINGS).await;
    let challenge = out.challenge.to_json();
    assert_eq!(challenge["component"], "ak-stage-prompt", "{challenge}");
    let values = initial_values(&challenge);
    for (key, want) in [
        ("username", "ada"),
        ("name", "Ada Lovelace"),
        ("email", "ada@example.com"),
        ("attributes.settings.locale", ""),
    ] {
        assert!(
            values.iter().any(|(k, v)| k == key && v == want),
            "{key}: {values:?}"
        );
    }
    // The expression's source is never sent.
    assert!(
        !challenge.to_string().contains("return user"),
        "{challenge}"
    );
}

/// A flow with one prompt stage.
async fn prompt_flow(stores: &memory::Stores, fields: Vec<Prompt>) -> String {
    let flow = Flow::new("expr", "expr", FlowDesignation::StageConfiguration);
    stores.flows.put_flow(flow.clone()).await.unwrap();
    let stage = Stage::new(
        "expr-prompt",
        StageConfig::Prompt(PromptStage {
            fields,
            validation_policies: Vec::new(),
        }),
    );
    stores.flows.put_stage(stage.clone()).await.unwrap();
    stores
        .flows
        .put_binding(authflow::model::FlowStageBinding::new(flow.pk, stage.pk, 0))
        .await
        .unwrap();
    flow.slug
}

fn expression_prompt(key: &str, t: PromptType, placeholder: &str, initial: &str) -> Prompt {
    let mut p = Prompt::new(key, key, t, 0);
    p.placeholder = placeholder.into();
    p.placeholder_expression = !placeholder.is_empty();
    p.initial_value = initial.into();
    p.initial_value_expression = !initial.is_empty();
    p
}

#[tokio::test]
async fn a_placeholder_expression_gives_a_choice_field_its_choices_and_failures_stay_empty() {
    let stores = memory::Stores::new();
    let engine = engine(&stores, true).await;
    let slug = prompt_flow(
        &stores,
        vec![
            expression_prompt(
                "colour",
                PromptType::Dropdown,
                "return ['red', 'green', 'blue']",
                "return 'green'",
            ),
            expression_prompt("broken", PromptType::Text, "raise ValueError('x')", "1/0"),
        ],
    )
    .await;
    let mut c = Client::new(engine.clone());
    let challenge = c.get(&slug).await.challenge.to_json();
    let fields = challenge["fields"].as_array().unwrap();
    let colour = fields.iter().find(|f| f["field_key"] == "colour").unwrap();
    let choices: Vec<&str> = colour["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(choices, vec!["red", "green", "blue"]);
    assert_eq!(colour["initial_value"], "green");
    let broken = fields.iter().find(|f| f["field_key"] == "broken").unwrap();
    assert_eq!(broken["placeholder"], "");
    assert_eq!(broken["initial_value"], "");
    // A submitted choice is validated against the evaluated choices.
    let out = c
        .post(&slug, json!({"colour": "purple", "broken": "x"}))
        .await;
    assert!(
        out.challenge.to_json()["response_errors"]
            .get("colour")
            .is_some(),
        "{}",
        out.challenge.to_json()
    );
}

#[tokio::test]
async fn without_an_evaluator_the_import_refuses_and_values_stay_empty() {
    let stores = memory::Stores::new();
    let engine = engine(&stores, false).await;
    let err = Importer::for_stores(&stores)
        .skip_unsupported(true)
        .apply_file("tests/fixtures/blueprints/flow-default-user-settings-flow.yaml")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("initial_value_expression"),
        "{err}"
    );
    // Defined in code: the engine without an evaluator never shows the source.
    let slug = prompt_flow(
        &stores,
        vec![expression_prompt(
            "who",
            PromptType::Text,
            "",
            "return user.username",
        )],
    )
    .await;
    let mut c = Client::new(engine.clone());
    let challenge = c.get(&slug).await.challenge.to_json();
    assert_eq!(challenge["fields"][0]["initial_value"], "", "{challenge}");
}
