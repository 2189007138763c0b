#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Issue 10: every authentik option authflow accepts does what authentik does. One test per
//! option, named after it, each citing the authentik function whose behaviour it asserts.

mod common;

use authflow::FlowRequest;
use authflow::model::{
    FlowDesignation, IdentificationStage, PasswordStage, UserField, UserLoginStage,
};
use authflow::plan::{PlanContext, SessionId, keys};
use authflow::store::{FlowAdmin, NewUser, UserAdmin, UserDirectory};
use common::upstream::TestEnv;
use serde_json::{Value, json};

/// A flow of identification (username) then a password stage configured by `password`.
async fn password_flow(env: &TestEnv, password: PasswordStage) -> authflow::model::Flow {
    let flow = env.create_test_flow(FlowDesignation::Authentication).await;
    let ident = env
        .stage(IdentificationStage {
            user_fields: vec![UserField::Username],
            ..IdentificationStage::default()
        })
        .await;
    env.bind(&flow, &ident, 0).await;
    let password = env.stage(password).await;
    env.bind(&flow, &password, 1).await;
    flow
}

// authentik/stages/password/stage.py `PasswordStageView.challenge_invalid`: the tries are
// counted first, then `tries >= failed_attempts_before_cancel` cancels, so `0` cancels on the
// first wrong password (it is not "unlimited").
#[tokio::test]
async fn failed_attempts_before_cancel() {
    let env = TestEnv::new();
    env.stores
        .users
        .create_user(NewUser::new("pw-user").password("Right-Password-1"))
        .await
        .expect("create user");
    for (limit, denied_after) in [(0_u32, 1_usize), (1, 1), (3, 3)] {
        let flow = password_flow(
            &env,
            PasswordStage {
                failed_attempts_before_cancel: limit,
                ..PasswordStage::default()
            },
        )
        .await;
        let mut client = env.client();
        client.get(&flow.slug).await;
        let out = client
            .post(&flow.slug, json!({"uid_field": "pw-user"}))
            .await;
        assert_eq!(out.challenge.component(), "ak-stage-password");
        for attempt in 1..=denied_after {
            let out = client.post(&flow.slug, json!({"password": "wrong"})).await;
            let expected = if attempt == denied_after {
                "ak-stage-access-denied"
            } else {
                "ak-stage-password"
            };
            assert_eq!(
                out.challenge.component(),
                expected,
                "limit {limit}, attempt {attempt}: {}",
                out.challenge.to_json()
            );
        }
    }
}

/// The identification challenge of a flow whose only stage is `ident`, planned with
/// `context` and shown to a client whose executor query is `query`.
async fn identification_challenge(
    env: &TestEnv,
    ident: IdentificationStage,
    context: PlanContext,
    query: &str,
) -> Value {
    let flow = env.create_test_flow(FlowDesignation::Authentication).await;
    let stage = env.stage(ident).await;
    env.bind(&flow, &stage, 0).await;
    let session = SessionId::generate();
    let plan = env
        .engine
        .plan_only(&FlowRequest::default(), &flow.slug, context)
        .await
        .expect("plan");
    env.store_plan(&session, &flow.slug, plan).await;
    let mut client = env.client().with_query(query);
    client.session = Some(session);
    let challenge = client.get(&flow.slug).await.challenge.to_json();
    assert_eq!(
        challenge["component"], "ak-stage-identification",
        "{challenge}"
    );
    challenge
}

// authentik/stages/identification/stage.py `IdentificationStageView.get_challenge`:
// `allow_show_password` is `bool(password_stage) and password_stage.allow_show_password`.
#[tokio::test]
async fn allow_show_password() {
    let env = TestEnv::new();
    for allow in [true, false] {
        let password = env
            .stage(PasswordStage {
                allow_show_password: allow,
                ..PasswordStage::default()
            })
            .await;
        let challenge = identification_challenge(
            &env,
            IdentificationStage {
                password_stage: Some(password.pk),
                ..IdentificationStage::default()
            },
            PlanContext::new(),
            "",
        )
        .await;
        assert_eq!(challenge["password_fields"], true);
        assert_eq!(challenge["allow_show_password"], allow, "{challenge}");
    }
    let challenge =
        identification_challenge(&env, IdentificationStage::default(), PlanContext::new(), "")
            .await;
    assert_eq!(challenge["allow_show_password"], false);
}

// authentik/stages/identification/stage.py `IdentificationStageView.get_challenge` builds the
// links with `reverse_with_qs` (authentik/lib/utils/urls.py), which appends `?query` only
// when the query is not empty.
#[tokio::test]
async fn enroll_url() {
    let env = TestEnv::new();
    let ident = IdentificationStage {
        enrollment_flow: Some("enroll".into()),
        recovery_flow: Some("recover".into()),
        passwordless_flow: Some("pwl".into()),
        ..IdentificationStage::default()
    };
    let challenge = identification_challenge(&env, ident.clone(), PlanContext::new(), "").await;
    assert_eq!(challenge["enroll_url"], "/if/flow/enroll/");
    assert_eq!(challenge["recovery_url"], "/if/flow/recover/");
    assert_eq!(challenge["passwordless_url"], "/if/flow/pwl/");
    let challenge = identification_challenge(&env, ident, PlanContext::new(), "next=%2Fapp").await;
    assert_eq!(challenge["enroll_url"], "/if/flow/enroll/?next=%2Fapp");
    assert_eq!(challenge["recovery_url"], "/if/flow/recover/?next=%2Fapp");
    assert_eq!(challenge["passwordless_url"], "/if/flow/pwl/?next=%2Fapp");
}

// authentik/stages/identification/stage.py `IdentificationStageView.get_challenge`: when the
// plan context has `application`, the challenge carries `application_pre` = its name.
#[tokio::test]
async fn application_pre() {
    let env = TestEnv::new();
    let mut context = PlanContext::new();
    context.insert(
        keys::APPLICATION,
        json!({"slug": "grafana", "name": "Grafana"}),
    );
    let challenge =
        identification_challenge(&env, IdentificationStage::default(), context, "").await;
    assert_eq!(challenge["application_pre"], "Grafana", "{challenge}");
    let challenge =
        identification_challenge(&env, IdentificationStage::default(), PlanContext::new(), "")
            .await;
    assert!(challenge.get("application_pre").is_none(), "{challenge}");
}

/// Runs a password policy on `password` (as the plan context's `password`) with `engine`.
async fn password_policy(
    engine: &authflow::Engine,
    policy: authflow::model::PasswordPolicy,
    password: &str,
) -> Result<authflow::policy::PolicyOutcome, authflow::policy::PolicyError> {
    let policy = authflow::model::Policy::new(
        "password-policy",
        authflow::model::PolicyKind::Password(policy),
    );
    let flow = authflow::model::Flow::new("pw", "pw", FlowDesignation::StageConfiguration);
    let mut context = PlanContext::new();
    context.insert("password", json!(password));
    let mut request = authflow::policy::PolicyRequest {
        user: None,
        username: None,
        context: &mut context,
        flow_plan: true,
        flow: &flow,
        client_ip: None,
        env: engine.env(),
        hooks: engine.registry().hooks(),
        config: &serde_json::Value::Null,
    };
    authflow::policy::run_policy(&policy, &mut request).await
}

// authentik/policies/password/models.py `PasswordPolicy.passes_zxcvbn`: zxcvbn over the
// first 100 characters; passes only when the score is above `zxcvbn_score_threshold`.
#[tokio::test]
async fn check_zxcvbn() {
    let engine = authflow::memory::Stores::new().engine().build();
    let policy = |threshold: u32| authflow::model::PasswordPolicy {
        check_static_rules: false,
        check_zxcvbn: true,
        zxcvbn_score_threshold: threshold,
        ..authflow::model::PasswordPolicy::default()
    };
    let weak = password_policy(&engine, policy(2), "password")
        .await
        .unwrap();
    assert!(!weak.passing);
    assert_eq!(
        weak.messages.first().map(String::as_str),
        Some("Password is too weak.")
    );
    let strong = password_policy(&engine, policy(2), "vQ7#mZ2!pLx9@wR4tK")
        .await
        .unwrap();
    assert!(strong.passing, "{:?}", strong.messages);
    // Score 4 is the maximum: a threshold of 4 refuses every password.
    let capped = password_policy(&engine, policy(4), "vQ7#mZ2!pLx9@wR4tK")
        .await
        .unwrap();
    assert!(!capped.passing);
}

/// A Have I Been Pwned range API that knows SHA-1("password") 3 times.
struct Pwned(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl authflow::policy::PwnedPasswords for Pwned {
    async fn range(&self, prefix: &str) -> Result<String, authflow::policy::PolicyError> {
        self.0.lock().unwrap().push(prefix.to_owned());
        Ok(
            "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:3\r\n"
                .into(),
        )
    }
}

// authentik/policies/password/models.py `PasswordPolicy.passes_hibp`: SHA-1 the password,
// ask the range API for the first 5 hex digits, fail when the count is above
// `hibp_allowed_count` ("Password exists on N online lists."). authflow has no network:
// the host registers the range lookup, and without one the option is refused by name.
#[tokio::test]
async fn check_have_i_been_pwned() {
    let policy = |allowed: u64| authflow::model::PasswordPolicy {
        check_static_rules: false,
        check_have_i_been_pwned: true,
        hibp_allowed_count: allowed,
        ..authflow::model::PasswordPolicy::default()
    };
    let without = authflow::memory::Stores::new().engine().build();
    let err = password_policy(&without, policy(0), "password")
        .await
        .unwrap_err();
    assert!(err.0.contains("`check_have_i_been_pwned`"), "{err:?}");

    let hook = std::sync::Arc::new(Pwned(std::sync::Mutex::new(Vec::new())));
    let engine = authflow::memory::Stores::new()
        .engine()
        .pwned_passwords(hook.clone())
        .build();
    let out = password_policy(&engine, policy(0), "password")
        .await
        .unwrap();
    assert!(!out.passing);
    assert_eq!(
        out.messages,
        vec!["Password exists on 3 online lists.".to_owned()]
    );
    assert!(
        password_policy(&engine, policy(3), "password")
            .await
            .unwrap()
            .passing
    );
    assert!(
        password_policy(&engine, policy(0), "not-in-the-list")
            .await
            .unwrap()
            .passing
    );
    assert_eq!(hook.0.lock().unwrap()[0], "5BAA6");
}

// authentik always runs its expression policies. An engine without an expression evaluator
// could only treat them as failing, silently changing the flow, so planning a flow that
// binds one is denied with a message naming the policy instead.
#[tokio::test]
async fn expression_policy_without_an_evaluator() {
    let env = TestEnv::new();
    let flow = env.create_test_flow(FlowDesignation::Authentication).await;
    let stage = env.stage(authflow::model::DummyStage::default()).await;
    let binding = env.bind(&flow, &stage, 0).await;
    let policy = env
        .policy(authflow::model::PolicyKind::Expression {
            expression: "return True".into(),
        })
        .await;
    env.bind_policy(
        authflow::model::BindingTarget::Stage(binding.pk),
        authflow::model::BindingSubject::Policy(policy.pk),
        0,
    )
    .await;
    let challenge = env.client().get(&flow.slug).await.challenge.to_json();
    assert_eq!(
        challenge["component"], "ak-stage-access-denied",
        "{challenge}"
    );
    let message = challenge["error_message"].as_str().unwrap();
    assert!(message.contains(&format!("`{}`", policy.name)), "{message}");
    assert!(message.contains("no expression evaluator"), "{message}");
}

/// A flow of identification, password and a user-login stage configured by `login`.
async fn login_flow(env: &TestEnv, login: UserLoginStage) -> authflow::model::Flow {
    let flow = password_flow(env, PasswordStage::default()).await;
    let login = env.stage(login).await;
    env.bind(&flow, &login, 2).await;
    flow
}

/// Runs `flow` up to the user-login stage as `username` / `password`.
async fn identify_and_authenticate(
    client: &mut common::kit::Client,
    flow: &authflow::model::Flow,
    username: &str,
    password: &str,
) -> authflow::Outcome {
    client.get(&flow.slug).await;
    let out = client
        .post(&flow.slug, json!({"uid_field": username}))
        .await;
    assert_eq!(out.challenge.component(), "ak-stage-password");
    client.post(&flow.slug, json!({"password": password})).await
}

// authentik/stages/user_login/stage.py `UserLoginStageView.do_login`: with
// `terminate_other_sessions` the login deletes the user's other sessions
// (`Session.objects.filter(authenticatedsession__user=user).exclude(session_key=...)`);
// the new session and other users' sessions stay.
#[tokio::test]
async fn terminate_other_sessions() {
    let env = TestEnv::new();
    let user = env
        .stores
        .users
        .create_user(NewUser::new("multi-device").password("Right-Password-1"))
        .await
        .expect("create user");
    let bystander = env.create_test_user("bystander").await;
    let laptop = env.login_session(&user).await;
    let phone = env.login_session(&user).await;
    let theirs = env.login_session(&bystander).await;
    let flow = login_flow(
        &env,
        UserLoginStage {
            terminate_other_sessions: true,
            ..UserLoginStage::default()
        },
    )
    .await;
    let mut client = env.client();
    let out =
        identify_and_authenticate(&mut client, &flow, "multi-device", "Right-Password-1").await;
    assert!(out.logged_in, "{}", out.challenge.to_json());
    assert!(
        env.session(&laptop).await.is_none(),
        "the laptop session survived"
    );
    assert!(
        env.session(&phone).await.is_none(),
        "the phone session survived"
    );
    assert_eq!(
        env.session(&theirs).await.and_then(|s| s.user),
        Some(bystander.pk)
    );
    assert_eq!(
        env.session(&client.session_id()).await.and_then(|s| s.user),
        Some(user.pk.clone())
    );

    // Without the option (the default) nothing else ends.
    let flow = login_flow(&env, UserLoginStage::default()).await;
    let tablet = env.login_session(&user).await;
    let mut client = env.client();
    let out =
        identify_and_authenticate(&mut client, &flow, "multi-device", "Right-Password-1").await;
    assert!(out.logged_in);
    assert!(env.session(&tablet).await.is_some());
}

// authentik/stages/user_login/stage.py `UserLoginStageView.dispatch`: with a
// `remember_me_offset` above zero the stage answers its `ak-stage-user-login` challenge
// (`UserLoginChallengeResponse.remember_me`, required) before logging in, and
// `set_session_duration` makes the session last `session_duration`, plus the offset when
// `remember_me` is true.
#[tokio::test]
async fn remember_me_offset() {
    let env = TestEnv::new();
    env.stores
        .users
        .create_user(NewUser::new("rememberer").password("Right-Password-1"))
        .await
        .expect("create user");
    let flow = login_flow(
        &env,
        UserLoginStage {
            session_duration: "hours=1".into(),
            remember_me_offset: "days=30".into(),
            ..UserLoginStage::default()
        },
    )
    .await;
    for (remember, lasts) in [(true, 3600 + 30 * 86_400), (false, 3600)] {
        let mut client = env.client();
        let out =
            identify_and_authenticate(&mut client, &flow, "rememberer", "Right-Password-1").await;
        assert!(!out.logged_in, "logged in before the remember-me answer");
        let v = out.challenge.to_json();
        assert_eq!(v["component"], "ak-stage-user-login", "{v}");
        assert_eq!(v["pending_user"], "rememberer");

        // `remember_me` is required.
        let out = client
            .post(&flow.slug, json!({"component": "ak-stage-user-login"}))
            .await;
        assert!(!out.logged_in);
        let v = out.challenge.to_json();
        assert_eq!(
            v["response_errors"]["remember_me"][0]["string"], "This field is required.",
            "{v}"
        );

        let out = client
            .post(
                &flow.slug,
                json!({"component": "ak-stage-user-login", "remember_me": remember}),
            )
            .await;
        assert!(out.logged_in, "{}", out.challenge.to_json());
        assert_eq!(out.login_expires_in, Some(lasts), "remember_me {remember}");
        let state = env.session(&client.session_id()).await.expect("session");
        let at = state.authenticated_at.expect("authenticated_at");
        assert_eq!(state.login_expires_at, Some(at + lasts));
    }

    // Without an offset the stage stays silent (no remember-me question).
    let flow = login_flow(
        &env,
        UserLoginStage {
            session_duration: "hours=1".into(),
            ..UserLoginStage::default()
        },
    )
    .await;
    let mut client = env.client();
    let out = identify_and_authenticate(&mut client, &flow, "rememberer", "Right-Password-1").await;
    assert!(out.logged_in, "{}", out.challenge.to_json());
    assert_eq!(out.login_expires_in, Some(3600));
}

// authentik's blueprints/system/bootstrap.yaml gives akadmin
// `email: !Env [AUTHENTIK_BOOTSTRAP_EMAIL, "root@localhost"]`. The reference server reads
// `AUTHFLOW_BOOTSTRAP_EMAIL` into `bootstrap_admin_with_email`.
#[tokio::test]
async fn bootstrap_email() {
    let stores = authflow::memory::Stores::new();
    let admin = authflow::defaults::bootstrap_admin_with_email(
        stores.users.as_ref(),
        "pw".to_owned().into(),
        "admin@example.com",
    )
    .await
    .unwrap();
    assert_eq!(admin.email, "admin@example.com");
    let stores = authflow::memory::Stores::new();
    let admin = authflow::defaults::bootstrap_admin_with_email(
        stores.users.as_ref(),
        "pw".to_owned().into(),
        "",
    )
    .await
    .unwrap();
    assert_eq!(admin.email, authflow::defaults::DEFAULT_ADMIN_EMAIL);
    assert_eq!(authflow::defaults::DEFAULT_ADMIN_EMAIL, "root@localhost");
}

/// An authenticator-validation stage with one setting changed by `adjust`: saving it is
/// refused naming `field`; so is importing it (attribute `field: yaml_value`), and with
/// `skip_unsupported` it is kept as a stage that denies access, the report naming `field`.
async fn refused_mfa_setting(
    field: &str,
    adjust: impl FnOnce(&mut authflow::model::AuthenticatorValidateStage),
    yaml_value: &str,
) {
    let env = TestEnv::new();
    let mut config = authflow::model::AuthenticatorValidateStage::default();
    adjust(&mut config);
    let err = env
        .flows
        .put_stage(authflow::model::Stage::new("mfa", config))
        .await
        .unwrap_err();
    let authflow::store::StoreError::Validation(errors) = &err else {
        panic!("{err:?}");
    };
    assert!(
        errors.get(field)[0].contains(&format!("`{field}`")),
        "{err}"
    );
    // The default is accepted.
    env.stage(authflow::model::AuthenticatorValidateStage::default())
        .await;
    #[cfg(feature = "blueprints")]
    {
        use authflow::blueprint::{ImportOptions, Importer};
        let stores = authflow::memory::Stores::new();
        let other = env.stage(authflow::model::DummyStage::default()).await;
        let yaml = format!(
            "version: 1\nentries:\n  - model: authentik_stages_authenticator_validate.authenticatorvalidatestage\n    identifiers: {{name: mfa}}\n    attrs: {{{field}: {}}}\n",
            yaml_value.replace("OTHER", &other.pk.to_string())
        );
        // A stage `configuration_stages` can refer to, in the importing stores.
        stores.flows.put_stage(other).await.unwrap();
        let err = Importer::for_stores(&stores)
            .options(ImportOptions::new().skip_unsupported(false))
            .apply_str("mfa.yaml", &yaml)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        let report = Importer::for_stores(&stores)
            .options(ImportOptions::new().skip_unsupported(true))
            .apply_str("mfa.yaml", &yaml)
            .await
            .unwrap();
        let skipped = &report.skipped[0];
        assert!(skipped.kept_as_denying_stage);
        assert!(
            skipped.reason.contains(&format!("`{field}`")),
            "{skipped:?}"
        );
        let stage = stores
            .flows
            .catalogue()
            .stages
            .into_iter()
            .find(|s| s.name == "mfa");
        assert!(
            matches!(
                stage.map(|s| s.config),
                Some(authflow::model::StageConfig::Unsupported(_))
            ),
            "kept as a denying stage"
        );
    }
}

// authentik/stages/authenticator_validate/models.py `AuthenticatorValidateStage.configuration_stages`
// (used with `not_configured_action: configure` to enroll a device): implemented now, so
// a list of existing stages is accepted (tests/mfa_validate.rs runs it).
#[tokio::test]
async fn configuration_stages() {
    let env = TestEnv::new();
    let other = env
        .stage(authflow::model::AuthenticatorTotpStage::default())
        .await;
    let config = authflow::model::AuthenticatorValidateStage {
        configuration_stages: vec![other.pk],
        ..Default::default()
    };
    env.flows
        .put_stage(authflow::model::Stage::new("mfa", config))
        .await
        .unwrap();
}

// authentik/stages/authenticator_validate/models.py `last_auth_threshold` (default
// `seconds=0`): a previous MFA validation within it skips the stage (implemented); a
// value that is not an authentik timedelta is refused by name.
#[tokio::test]
async fn last_auth_threshold() {
    refused_mfa_setting(
        "last_auth_threshold",
        |a| a.last_auth_threshold = "fortnights=2".into(),
        "fortnights=2",
    )
    .await;
}

// authentik/stages/authenticator_validate/models.py `webauthn_user_verification` (default
// `preferred`): `required`, `preferred` and `discouraged` are passed to the WebAuthn
// ceremony; another value is refused by name.
#[tokio::test]
async fn webauthn_user_verification() {
    refused_mfa_setting(
        "webauthn_user_verification",
        |a| a.webauthn_user_verification = "sometimes".into(),
        "sometimes",
    )
    .await;
}

/// A flow of a prompt stage with text fields `keys` then `write`.
async fn write_flow(
    env: &TestEnv,
    keys: &[&str],
    write: authflow::model::UserWriteStage,
) -> authflow::model::Flow {
    use authflow::model::{Prompt, PromptStage, PromptType};
    let flow = env.create_test_flow(FlowDesignation::Enrollment).await;
    let fields = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Prompt::new(*k, *k, PromptType::Text, i as i32).optional())
        .collect();
    let prompt = env
        .stage(PromptStage {
            fields,
            validation_policies: vec![],
        })
        .await;
    env.bind(&flow, &prompt, 0).await;
    let write = env.stage(write).await;
    env.bind(&flow, &write, 1).await;
    flow
}

async fn user_named(env: &TestEnv, username: &str) -> authflow::store::User {
    env.stores
        .users
        .find_user(UserField::Username, username, true)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no user {username}"))
}

// authentik/stages/user_write/stage.py `UserWriteStageView.write_attribute`: the key is
// `key.replace("_", ".")` split on dots, so `attributes_a_b` and `attributes.c_d` write the
// nested paths `a.b` and `c.d`.
#[tokio::test]
async fn attributes_prompt_keys() {
    let env = TestEnv::new();
    let flow = write_flow(
        &env,
        &["username", "attributes_a_b", "attributes.c_d"],
        authflow::model::UserWriteStage::default(),
    )
    .await;
    let mut client = env.client();
    client.get(&flow.slug).await;
    let out = client
        .post(
            &flow.slug,
            json!({"username": "attr-user", "attributes_a_b": "1", "attributes.c_d": "2"}),
        )
        .await;
    assert_eq!(
        out.challenge.component(),
        "xak-flow-redirect",
        "{}",
        out.challenge.to_json()
    );
    let user = user_named(&env, "attr-user").await;
    assert_eq!(user.attributes["a"]["b"], "1", "{:?}", user.attributes);
    assert_eq!(user.attributes["c"]["d"], "2", "{:?}", user.attributes);
    assert!(!user.attributes.contains_key("a_b"));
}

// authentik/stages/user_write/stage.py `UserWriteStageView.update_user`: a prompt key naming
// an existing user field is written to it (`hasattr`/`setattr`), e.g. `path`. authflow keeps
// a deny-list for privileged fields (`is_active`, `is_superuser`, `type`, `pk`, `groups`,
// password hashes), which are never written from prompt data.
#[tokio::test]
async fn user_field_prompt_keys() {
    let env = TestEnv::new();
    let flow = write_flow(
        &env,
        &["username", "path", "is_active", "type", "is_superuser"],
        authflow::model::UserWriteStage::default(),
    )
    .await;
    let mut client = env.client();
    client.get(&flow.slug).await;
    client
        .post(
            &flow.slug,
            json!({"username": "field-user", "path": "users/partners", "is_active": "false",
                   "type": "internal", "is_superuser": "true"}),
        )
        .await;
    let user = user_named(&env, "field-user").await;
    assert_eq!(user.path, "users/partners");
    assert!(user.is_active);
    assert_eq!(user.user_type, "external");
    assert!(user.attributes.is_empty(), "{:?}", user.attributes);
}

// authentik/stages/user_write/stage.py `UserWriteStageView.dispatch`: after `user.save()`,
// `user.ak_groups.add(create_users_group)` runs on every write, also when an existing user
// is updated.
#[tokio::test]
async fn create_users_group() {
    let env = TestEnv::new();
    let group = env.group("writers", None).await;
    let user = env.create_test_user("group-user").await;
    let flow = write_flow(
        &env,
        &["name"],
        authflow::model::UserWriteStage {
            create_users_group: Some(group.pk),
            ..authflow::model::UserWriteStage::default()
        },
    )
    .await;
    let mut client = env.client_as(&user).await;
    client.get(&flow.slug).await;
    let out = client.post(&flow.slug, json!({"name": "Group User"})).await;
    assert_eq!(
        out.challenge.component(),
        "xak-flow-redirect",
        "{}",
        out.challenge.to_json()
    );
    let user = user_named(&env, "group-user").await;
    assert_eq!(user.name, "Group User");
    assert!(user.groups.contains(&group.pk), "{:?}", user.groups);
}

// authentik/stages/user_write/stage.py `UserWriteStageView.ensure_user`: the new user's path
// is `plan.context.get("user_path", user_path_template)`.
#[tokio::test]
async fn user_path_template() {
    let env = TestEnv::new();
    let flow = write_flow(
        &env,
        &["username"],
        authflow::model::UserWriteStage {
            user_path_template: "users/template".into(),
            ..authflow::model::UserWriteStage::default()
        },
    )
    .await;
    for (context_path, username, expected) in [
        (Some("users/from-context"), "path-a", "users/from-context"),
        (None, "path-b", "users/template"),
    ] {
        let mut context = PlanContext::new();
        if let Some(p) = context_path {
            context.insert("user_path", json!(p));
        }
        let session = SessionId::generate();
        let plan = env
            .engine
            .plan_only(&FlowRequest::default(), &flow.slug, context)
            .await
            .expect("plan");
        env.store_plan(&session, &flow.slug, plan).await;
        let mut client = env.client();
        client.session = Some(session);
        client.post(&flow.slug, json!({"username": username})).await;
        assert_eq!(user_named(&env, username).await.path, expected);
    }
}

/// A prompt stage with `fields` followed by a dummy stage, planned with `prompt_data`
/// (when given) in a fresh session: the client and the flow's slug.
async fn prompt_flow(
    env: &TestEnv,
    fields: Vec<authflow::model::Prompt>,
    validation_policies: Vec<authflow::model::PolicyId>,
    prompt_data: Option<Value>,
) -> (common::kit::Client, String) {
    let flow = env.create_test_flow(FlowDesignation::Enrollment).await;
    let prompt = env
        .stage(authflow::model::PromptStage {
            fields,
            validation_policies,
        })
        .await;
    env.bind(&flow, &prompt, 0).await;
    let dummy = env.stage(authflow::model::DummyStage::default()).await;
    env.bind(&flow, &dummy, 1).await;
    let mut context = PlanContext::new();
    if let Some(d) = prompt_data {
        context.insert(keys::PROMPT_DATA, d);
    }
    let session = SessionId::generate();
    let plan = env
        .engine
        .plan_only(&FlowRequest::default(), &flow.slug, context)
        .await
        .expect("plan");
    env.store_plan(&session, &flow.slug, plan).await;
    let mut client = env.client();
    client.session = Some(session);
    (client, flow.slug)
}

/// POSTs `body` to the prompt and answers the stored `prompt_data` (the prompt must
/// accept it: the dummy stage comes next).
async fn submitted(
    env: &TestEnv,
    client: &mut common::kit::Client,
    slug: &str,
    body: Value,
) -> serde_json::Map<String, Value> {
    let out = client.post(slug, body).await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-dummy",
        "{}",
        out.challenge.to_json()
    );
    let session = client.session.clone().unwrap();
    env.stored_plan(&session, slug)
        .await
        .unwrap()
        .context
        .prompt_data()
        .cloned()
        .unwrap()
}

fn field(key: &str, t: authflow::model::PromptType) -> authflow::model::Prompt {
    let mut p = authflow::model::Prompt::new(key, key, t, 0);
    p.placeholder = String::new();
    p
}

// authentik/stages/prompt/models.py `Prompt.field` (hidden/static: `default=placeholder`,
// overridden by a non-empty current value) and `Prompt.get_initial_value` (the value already
// in `prompt_data`, else `initial_value`); authentik/stages/prompt/stage.py
// `PromptChallengeResponse.validate` stores that default for hidden, static and read-only
// fields, whatever the client sent.
#[tokio::test]
async fn hidden_field_value() {
    use authflow::model::PromptType;
    let env = TestEnv::new();
    let mut from_placeholder = field("h1", PromptType::Hidden);
    from_placeholder.placeholder = "ph".into();
    let mut from_initial = field("h2", PromptType::Hidden);
    from_initial.placeholder = "ph".into();
    from_initial.initial_value = "init".into();
    let mut from_context = field("h3", PromptType::Hidden);
    from_context.initial_value = "init".into();
    let mut stat = field("s", PromptType::Static);
    stat.placeholder = "static text".into();
    let mut read_only = field("r", PromptType::TextReadOnly);
    read_only.placeholder = "not a value".into();
    let (mut client, slug) = prompt_flow(
        &env,
        vec![
            from_placeholder,
            from_initial,
            from_context,
            stat,
            read_only,
        ],
        vec![],
        Some(json!({"h3": "ctx"})),
    )
    .await;
    let challenge = client.get(&slug).await.challenge.to_json();
    assert_eq!(
        challenge["fields"][2]["initial_value"], "ctx",
        "{challenge}"
    );
    let data = submitted(
        &env,
        &mut client,
        &slug,
        json!({"h1": "forged", "h2": "forged", "h3": "forged", "s": "forged", "r": "forged"}),
    )
    .await;
    assert_eq!(data["h1"], "ph");
    assert_eq!(data["h2"], "init");
    assert_eq!(data["h3"], "ctx");
    // Static values are stored too.
    assert_eq!(data["s"], "static text");
    // Read-only fields have no placeholder default.
    assert_eq!(data["r"], "");
}

// authentik/stages/prompt/models.py `Prompt.get_choices`: `prompt_data["<key>__choices"]`
// when present, else the placeholder — one choice unless it is an expression returning a
// list; `Prompt.get_initial_value`: an initial value that is not a choice becomes the first.
#[tokio::test]
async fn placeholder_choices() {
    use authflow::model::PromptType;
    let env = TestEnv::new();
    let mut one = field("one", PromptType::Dropdown);
    one.placeholder = "a, b".into();
    one.initial_value = "zzz".into();
    let mut listed = field("listed", PromptType::RadioButtonGroup);
    listed.placeholder = "ignored".into();
    listed.initial_value = "zzz".into();
    let (mut client, slug) = prompt_flow(
        &env,
        vec![one, listed],
        vec![],
        Some(json!({"listed__choices": ["x", "y"]})),
    )
    .await;
    let challenge = client.get(&slug).await.challenge.to_json();
    let fields = &challenge["fields"];
    assert_eq!(
        fields[0]["choices"],
        json!([{"value": "a, b", "label": "a, b"}]),
        "{challenge}"
    );
    assert_eq!(fields[0]["initial_value"], "a, b");
    assert_eq!(fields[1]["choices"][1]["value"], "y", "{challenge}");
    assert_eq!(fields[1]["initial_value"], "x");
    let out = client.post(&slug, json!({"one": "a", "listed": "y"})).await;
    assert!(out.challenge.to_json()["response_errors"]["one"].is_array());
    let data = submitted(
        &env,
        &mut client,
        &slug,
        json!({"one": "a, b", "listed": "y"}),
    )
    .await;
    assert_eq!(data["listed"], "y");
}

// authentik/stages/prompt/stage.py `PromptChallengeResponse.validate`: the validation
// policies' request context is replaced by `{"prompt_data": attrs}` — this stage's values
// only, not earlier prompt data.
#[tokio::test]
async fn validation_policies() {
    use authflow::model::PromptType;
    use std::sync::{Arc, Mutex};
    struct Seen(Arc<Mutex<Option<Value>>>);
    #[async_trait::async_trait]
    impl authflow::policy::PolicyEvaluator for Seen {
        async fn evaluate(
            &self,
            request: &mut authflow::policy::PolicyRequest<'_>,
        ) -> Result<authflow::policy::PolicyOutcome, authflow::policy::PolicyError> {
            *self.0.lock().unwrap() = Some(serde_json::to_value(&*request.context).unwrap());
            Ok(authflow::policy::PolicyOutcome::pass())
        }
    }
    let env = TestEnv::new();
    let seen = Arc::new(Mutex::new(None));
    let policy = env
        .policy(common::upstream::custom(Seen(seen.clone())))
        .await;
    let (mut client, slug) = prompt_flow(
        &env,
        vec![field("mine", PromptType::Text)],
        vec![policy.pk],
        Some(json!({"earlier": "x"})),
    )
    .await;
    client.get(&slug).await;
    submitted(&env, &mut client, &slug, json!({"mine": "v"})).await;
    let seen = seen.lock().unwrap().clone().unwrap();
    assert_eq!(seen, json!({"prompt_data": {"mine": "v"}}));
}

// authentik/stages/prompt/models.py `Prompt.field`: text and text-area fields are
// `CharField(trim_whitespace=False, allow_blank=not required)`, so their whitespace is kept
// and a blank optional value is stored as "" (clearing the field in a user settings flow).
#[tokio::test]
async fn text_field_whitespace_and_blank() {
    use authflow::model::PromptType;
    let env = TestEnv::new();
    let (mut client, slug) = prompt_flow(
        &env,
        vec![
            field("t", PromptType::Text),
            field("opt", PromptType::TextArea).optional(),
            field("mail", PromptType::Email).optional(),
        ],
        vec![],
        None,
    )
    .await;
    client.get(&slug).await;
    let data = submitted(
        &env,
        &mut client,
        &slug,
        json!({"t": "  spaced  ", "opt": "", "mail": ""}),
    )
    .await;
    assert_eq!(data["t"], "  spaced  ");
    assert_eq!(data["opt"], "");
    assert_eq!(data["mail"], "");
}

// authentik/stages/prompt/models.py `Prompt.field`: number fields are DRF `IntegerField`s.
#[tokio::test]
async fn number_field() {
    use authflow::model::PromptType;
    let env = TestEnv::new();
    let (mut client, slug) =
        prompt_flow(&env, vec![field("n", PromptType::Number)], vec![], None).await;
    client.get(&slug).await;
    let out = client.post(&slug, json!({"n": "1.5"})).await;
    assert_eq!(
        out.challenge.to_json()["response_errors"]["n"][0]["string"],
        "A valid integer is required."
    );
    let data = submitted(&env, &mut client, &slug, json!({"n": "42"})).await;
    assert_eq!(data["n"], json!(42));
    assert!(data["n"].is_i64());
}

// authentik/stages/prompt/stage.py `PromptChallengeResponse.validate`: passwords are compared
// only when the stage has exactly two password fields.
#[tokio::test]
async fn password_fields() {
    use authflow::model::PromptType;
    let env = TestEnv::new();
    let three = vec![
        field("p1", PromptType::Password),
        field("p2", PromptType::Password),
        field("p3", PromptType::Password),
    ];
    let (mut client, slug) = prompt_flow(&env, three, vec![], None).await;
    client.get(&slug).await;
    submitted(
        &env,
        &mut client,
        &slug,
        json!({"p1": "a", "p2": "b", "p3": "c"}),
    )
    .await;
    let two = vec![
        field("p1", PromptType::Password),
        field("p2", PromptType::Password),
    ];
    let (mut client, slug) = prompt_flow(&env, two, vec![], None).await;
    client.get(&slug).await;
    let out = client.post(&slug, json!({"p1": "a", "p2": "b"})).await;
    assert_eq!(
        out.challenge.to_json()["response_errors"]["non_field_errors"][0]["string"],
        "Passwords don't match."
    );
}
