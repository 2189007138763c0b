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
use authflow::store::{NewUser, UserDirectory};
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
        Some(user.pk)
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
