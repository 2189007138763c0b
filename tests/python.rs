//! Python expression policies (feature `python`): authentik's expression semantics run by PyO3.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(feature = "python")]
//! The `python` feature: authentik expression policies run by `PythonEvaluator`,
//! directly and inside flows driven in-process.
//!
//! Build prerequisite: `PYO3_PYTHON=/usr/bin/python3` (see `ci/install-python.sh`).

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use authflow::clock::Sleep;
use authflow::model::{
    BindingSubject, BindingTarget, DenyStage, DummyStage, Flow, FlowDesignation, PolicyBinding,
    PolicyKind, StageConfig,
};
use authflow::plan::{PlanContext, keys};
use authflow::policy::{ExpressionEvaluator, PolicyError, PolicyOutcome, PolicyRequest};
use authflow::python::{PythonEvaluator, TIMED_OUT};
use authflow::store::{FlowAdmin, FlowSource, User, UserAdmin};
use authflow::{Engine, defaults};
use common::kit::Client;
use common::upstream::TestEnv;
use serde_json::{Value, json};

/// authentik's `default-authentication-flow-password-optional` expression, verbatim from
/// `blueprints/default/flow-default-authentication-flow.yaml`.
const PASSWORD_OPTIONAL: &str = r#"flow_plan = request.context.get("flow_plan")
if not flow_plan:
    return True
# If the user does not have a backend attached to it, they haven't
# been authenticated yet and we need the password stage
return not hasattr(flow_plan.context.get("pending_user"), "backend")
"#;

/// A `TestEnv` whose engine runs Python expressions.
fn env_with(evaluator: PythonEvaluator) -> TestEnv {
    let mut env = TestEnv::new();
    env.engine = Arc::new(
        Engine::builder(
            env.flows.clone(),
            env.stores.sessions.clone(),
            env.users.clone(),
        )
        .reputation(env.stores.reputation.clone())
        .events(env.events.clone())
        .expressions(Arc::new(evaluator))
        .build(),
    );
    env
}

fn env() -> TestEnv {
    env_with(PythonEvaluator::new().with_timeout(Duration::from_secs(10)))
}

fn expression(source: &str) -> PolicyKind {
    PolicyKind::Expression {
        expression: source.to_owned(),
    }
}

/// A flow with one dummy stage and a flow-level expression policy. (Not an
/// authentication flow: one that does not apply to a logged-in user just finishes.)
async fn flow_with_policy(env: &TestEnv, source: &str, failure_result: bool) -> Flow {
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let stage = env.stage(DummyStage::default()).await;
    env.bind(&flow, &stage, 0).await;
    let policy = env.policy(expression(source)).await;
    let mut binding = PolicyBinding::new(
        BindingTarget::Flow(flow.pk),
        BindingSubject::Policy(policy.pk),
        0,
    );
    binding.failure_result = failure_result;
    env.save_policy_binding(binding).await;
    flow
}

/// Evaluates `source` directly with a subject and a plan context.
async fn eval_with(
    evaluator: &PythonEvaluator,
    env: &TestEnv,
    source: &str,
    user: Option<&User>,
    context: &mut PlanContext,
    client_ip: Option<&str>,
) -> Result<PolicyOutcome, PolicyError> {
    let policy = authflow::model::Policy::new("test-expression", expression(source));
    let flow = Flow::new(
        "python-test",
        "Python test",
        FlowDesignation::Authentication,
    );
    let mut request = PolicyRequest {
        user,
        username: user.map(|u| u.username.as_str()),
        context,
        flow_plan: true,
        flow: &flow,
        client_ip,
        env: env.engine.env(),
        hooks: env.engine.registry().hooks(),
        config: &serde_json::Value::Null,
    };
    evaluator.evaluate(&policy, source, &mut request).await
}

async fn eval(source: &str) -> Result<PolicyOutcome, PolicyError> {
    let env = TestEnv::new();
    eval_with(
        &PythonEvaluator::new(),
        &env,
        source,
        None,
        &mut PlanContext::new(),
        None,
    )
    .await
}

fn assert_denied_with(challenge: &Value, text: &str) {
    assert_eq!(
        challenge["component"], "ak-stage-access-denied",
        "{challenge}"
    );
    let message = challenge["error_message"].as_str().unwrap_or_default();
    assert!(message.contains(text), "`{text}` not in {challenge}");
}

#[tokio::test]
async fn truthy_falsy_and_none_returns() {
    for (source, passing) in [
        ("return True", true),
        ("return 1", true),
        ("return 'yes'", true),
        ("return [0]", true),
        ("return False", false),
        ("return 0", false),
        ("return ''", false),
        ("return []", false),
        ("return None", false),
        ("x = 1", false), // no return: None
    ] {
        let out = eval(source).await.unwrap();
        assert_eq!(out.passing, passing, "{source}");
        assert!(out.messages.is_empty(), "{source}: {:?}", out.messages);
    }
}

#[tokio::test]
async fn ak_message_collects_messages() {
    let out = eval("ak_message('one')\nak_message(2)\nreturn True")
        .await
        .unwrap();
    assert_eq!(
        out,
        PolicyOutcome::new(true, vec!["one".into(), "2".into()])
    );
}

#[tokio::test]
async fn ak_message_reaches_the_denied_challenge() {
    let env = env();
    let flow = flow_with_policy(&env, "ak_message(\"nope\")\nreturn False", false).await;
    let out = env.client().get(&flow.slug).await;
    assert_denied_with(&out.challenge.to_json(), "nope");
}

#[tokio::test]
async fn exception_yields_failure_result() {
    // Directly: the exception's text.
    assert_eq!(
        eval("return 1 / 0").await,
        Err(PolicyError("division by zero".into()))
    );
    assert_eq!(
        eval("return {}['missing']").await,
        Err(PolicyError("'missing'".into()))
    );
    // An exception without text reports its type.
    assert_eq!(
        eval("raise ValueError()").await,
        Err(PolicyError("ValueError".into()))
    );

    // failure_result false: denied with the error text.
    let env = env();
    let flow = flow_with_policy(&env, "return 1 / 0", false).await;
    let out = env.client().get(&flow.slug).await;
    assert_denied_with(&out.challenge.to_json(), "division by zero");

    // failure_result true: the flow applies.
    let flow = flow_with_policy(&env, "return 1 / 0", true).await;
    let out = env.client().get(&flow.slug).await;
    assert_eq!(out.challenge.component(), "ak-stage-dummy");
}

#[tokio::test]
async fn syntax_errors_are_reported_and_checked() {
    let err = eval("return (").await.unwrap_err();
    assert!(err.0.contains("line 1"), "{err:?}");
    assert!(PythonEvaluator::check("return request.user.is_authenticated").is_ok());
    assert!(PythonEvaluator::check(PASSWORD_OPTIONAL).is_ok());
    let err = PythonEvaluator::check("x = 1\nreturn (").unwrap_err();
    assert!(
        err.contains("<expression>") && err.contains("line 2"),
        "{err}"
    );
    assert!(PythonEvaluator::check("if True\n    return 1").is_err());

    // Through a flow: failure_result applies with Python's message.
    let env = env();
    let flow = flow_with_policy(&env, "return (", false).await;
    let out = env.client().get(&flow.slug).await;
    assert_denied_with(&out.challenge.to_json(), "line 1");
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_timeout() {
    let env = TestEnv::new();
    let evaluator = PythonEvaluator::new().with_timeout(Duration::from_secs(1));
    for source in [
        "while True: pass",
        // `except Exception` does not swallow the timeout.
        "while True:\n    try:\n        pass\n    except Exception:\n        pass",
        // Blocked in C: the watchdog answers; the thread finishes on its own.
        "import time\ntime.sleep(20)\nreturn True",
    ] {
        let started = Instant::now();
        let out = eval_with(
            &evaluator,
            &env,
            source,
            None,
            &mut PlanContext::new(),
            None,
        )
        .await;
        let took = started.elapsed();
        assert_eq!(out, Err(PolicyError(TIMED_OUT.into())), "{source}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{source}: {took:?}"
        );
    }

    // In a flow, without an engine timer: denied with the timeout message.
    let env = env_with(PythonEvaluator::new().with_timeout(Duration::from_secs(1)));
    let flow = flow_with_policy(&env, "while True:\n    pass", false).await;
    let started = Instant::now();
    let out = env.client().get(&flow.slug).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_denied_with(&out.challenge.to_json(), "timed out");

    // The interpreter is still usable afterwards.
    assert!(eval("return True").await.unwrap().passing);
}

#[tokio::test]
async fn the_engine_timer_also_stops_an_expression() {
    let mut env = TestEnv::new();
    let timer = |d: Duration| -> Sleep { Box::pin(tokio::time::sleep(d)) };
    env.engine = Arc::new(
        Engine::builder(
            env.flows.clone(),
            env.stores.sessions.clone(),
            env.users.clone(),
        )
        .expressions(Arc::new(PythonEvaluator::new()))
        .timer(Arc::new(timer))
        .build(),
    );
    let flow = env.create_test_flow(FlowDesignation::Authentication).await;
    let stage = env.stage(DummyStage::default()).await;
    env.bind(&flow, &stage, 0).await;
    // Records how it was stopped in a module-level dict that outlives the evaluation.
    let source = r#"
import sys
try:
    while True:
        pass
except BaseException as exc:
    sys.modules["_authflow_expression"].__dict__["engine_timer_test"] = type(exc).__name__
    raise
"#;
    let policy = env.policy(expression(source)).await;
    let mut binding = PolicyBinding::new(
        BindingTarget::Flow(flow.pk),
        BindingSubject::Policy(policy.pk),
        0,
    );
    binding.timeout = 1;
    env.save_policy_binding(binding).await;
    let started = Instant::now();
    let out = env.client().get(&flow.slug).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_denied_with(&out.challenge.to_json(), "timed out");

    // The dropped evaluation stopped its worker long before its own 30 s deadline.
    let probe = r#"return __import__("sys").modules["_authflow_expression"].__dict__.get("engine_timer_test") == "ExpressionTimeout""#;
    let deadline = Instant::now() + Duration::from_secs(3);
    while !eval(probe).await.unwrap().passing {
        assert!(Instant::now() < deadline, "the expression is still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn evaluation_does_not_block_the_executor() {
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let out = eval("import time\ntime.sleep(0.5)\nreturn True")
        .await
        .unwrap();
    assert!(out.passing);
    ticker.abort();
    // The ticker ran on this same thread while Python slept on its worker.
    assert!(ticks.load(Ordering::SeqCst) >= 10, "{ticks:?}");
}

#[tokio::test]
async fn flow_plan_context_writes_reach_later_stages() {
    let env = env();
    let flow = env.create_test_flow(FlowDesignation::Authentication).await;
    let dummy = env.stage(DummyStage::default()).await;
    let deny = env
        .stage(DenyStage {
            deny_message: "from the stage".into(),
        })
        .await;
    let first = env.bind(&flow, &dummy, 0).await;
    env.bind(&flow, &deny, 1).await;
    let policy = env
        .policy(expression(
            "flow_plan.context[\"deny_message\"] = \"from python\"\nreturn True",
        ))
        .await;
    env.bind_policy(
        BindingTarget::Stage(first.pk),
        BindingSubject::Policy(policy.pk),
        0,
    )
    .await;

    let mut client = env.client();
    let out = client.get(&flow.slug).await;
    assert_eq!(out.challenge.component(), "ak-stage-dummy");
    let plan = env
        .stored_plan(&client.session_id(), &flow.slug)
        .await
        .unwrap();
    assert_eq!(
        plan.context.get(keys::DENY_MESSAGE),
        Some(&json!("from python"))
    );
    let out = client
        .post(&flow.slug, json!({"component": "ak-stage-dummy"}))
        .await;
    assert_denied_with(&out.challenge.to_json(), "from python");
}

#[tokio::test]
async fn context_is_copied_back_as_json() {
    let env = TestEnv::new();
    let evaluator = PythonEvaluator::new();
    let mut context = PlanContext::new();
    context.insert("keep", json!({"a": [1, 2.5, "x", null]}));
    context.insert("delete_me", json!(1));
    context.insert("stays", json!("old"));
    let source = r#"
assert context is request.context
assert context["flow_plan"] is flow_plan
assert context is not flow_plan.context
plan = flow_plan.context
plan["number"] = 3
plan["nested"] = {"list": [1, (2, 3)], "set": {4}}
del plan["delete_me"]
plan["stays"] = object()      # not JSON: keeps the old value
plan["absent"] = lambda: 1    # not JSON: stays absent
plan["ip"] = ak_client_ip
return True
"#;
    let out = eval_with(
        &evaluator,
        &env,
        source,
        None,
        &mut context,
        Some("10.1.2.3"),
    )
    .await
    .unwrap();
    assert!(out.passing);
    let got: Vec<(&str, &Value)> = context.iter().map(|(k, v)| (k.as_str(), v)).collect();
    assert_eq!(
        got,
        vec![
            ("keep", &json!({"a": [1, 2.5, "x", null]})),
            ("stays", &json!("old")),
            ("number", &json!(3)),
            ("nested", &json!({"list": [1, [2, 3]], "set": [4]})),
            ("ip", &json!("10.1.2.3")),
        ]
    );

    // Writes before an exception are kept too (authentik mutates the plan in place).
    let mut context = PlanContext::new();
    let out = eval_with(
        &evaluator,
        &env,
        "flow_plan.context['seen'] = True\nreturn 1 / 0",
        None,
        &mut context,
        None,
    )
    .await;
    assert_eq!(out, Err(PolicyError("division by zero".into())));
    assert_eq!(context.get("seen"), Some(&json!(true)));
}

#[tokio::test]
async fn scope_matches_authentik() {
    let env = TestEnv::new();
    let evaluator = PythonEvaluator::new();
    let mut context = PlanContext::new();
    context.insert("is_sso", json!(true));
    let source = r#"
assert ak_is_sso_flow is True
assert ak_client_ip == ip_address("192.0.2.7")
assert ak_client_ip in ip_network("192.0.2.0/24")
assert http_request is request.http_request
assert http_request.client_ip == "192.0.2.7"
assert http_request.META["REMOTE_ADDR"] == "192.0.2.7"
assert request.obj.slug == "python-test"
assert request.user.username == "AnonymousUser"
assert not request.user.is_authenticated and request.user.is_anonymous
assert request.user.pk is None
assert not ak_is_group_member(request.user, name="anything")
assert regex_match("abc", "b") and regex_replace("abc", "b", "x") == "axc"
assert list_flatten([1, 2]) == 1 and list_flatten([]) is None
ak_logger.info("checked", password="hunter2", who="anon")
return True
"#;
    let out = eval_with(
        &evaluator,
        &env,
        source,
        None,
        &mut context,
        Some("192.0.2.7"),
    )
    .await;
    assert_eq!(out, Ok(PolicyOutcome::pass()));

    // Without a client IP: authentik's 255.255.255.255.
    let out = eval_with(
        &evaluator,
        &env,
        "return str(ak_client_ip) == '255.255.255.255' and not ak_is_sso_flow",
        None,
        &mut PlanContext::new(),
        None,
    )
    .await;
    assert!(out.unwrap().passing);
}

#[tokio::test]
async fn request_user_and_group_membership_of_a_logged_in_user() {
    let env = env();
    let admins = env.group("admins", None).await;
    let ops = env.group("ops", Some(admins.pk)).await;
    let alice = env.create_user_in("alice", &[ops.pk]).await;
    let bob = env.create_test_user("bob").await;
    let flow = flow_with_policy(
        &env,
        r#"
user = request.user
ak_message(f"user={user.username} authenticated={user.is_authenticated}")
ak_message("direct=" + ",".join(g.name for g in user.groups.all()))
return user.username == "alice" and ak_is_group_member(user, name="admins")
"#,
        false,
    )
    .await;

    // alice is in `ops`, a child of `admins`: member through the parent.
    let mut client = env.client_as(&alice).await;
    let out = client.get(&flow.slug).await;
    assert_eq!(out.challenge.component(), "ak-stage-dummy");

    let mut client = env.client_as(&bob).await;
    let out = client.get(&flow.slug).await;
    let challenge = out.challenge.to_json();
    assert_denied_with(&challenge, "user=bob authenticated=True");

    // Direct groups and filters through `user.groups`.
    let out = eval_with(
        &PythonEvaluator::new(),
        &env,
        r#"
u = request.user
assert u.pk == ALICE and u.email == "alice@example.invalid" and u.is_active
assert [g.name for g in u.groups.all()] == ["ops"]
assert u.groups.filter(name="ops").exists() and not u.groups.filter(name="admins").exists()
assert sorted(g.name for g in u.all_groups()) == ["admins", "ops"]
assert ak_is_group_member(u, name__iexact="OPS")
assert not ak_is_group_member(u, name="nope")
return True
"#
        .replace("ALICE", &format!("{:?}", alice.pk.to_string()))
        .as_str(),
        Some(&alice),
        &mut PlanContext::new(),
        None,
    )
    .await;
    assert_eq!(out, Ok(PolicyOutcome::pass()));
}

#[tokio::test]
async fn ak_user_by_looks_users_up() {
    let env = TestEnv::new();
    let alice = env.create_test_user("alice").await;
    let evaluator = PythonEvaluator::new();
    let source = r#"
u = ak_user_by(username="alice")
assert u is not None and u.username == "alice" and u.email == "alice@example.invalid"
assert ak_user_by(username="nobody") is None
assert ak_user_by(email="alice@example.invalid").pk == u.pk
assert ak_user_by(email__iexact="ALICE@example.invalid").pk == u.pk
assert ak_user_by(pk=u.pk) == u
assert ak_user_by(username="alice", is_active=False) is None
assert ak_user_by(username="alice", no_such_field=1) is None
assert ak_user_by(pk="not-a-uuid") is None
flow_plan.context["pending_user"] = u
return True
"#;
    let mut context = PlanContext::new();
    let out = eval_with(&evaluator, &env, source, None, &mut context, None).await;
    assert_eq!(out, Ok(PolicyOutcome::pass()));
    // A user object written to the context becomes the pending-user record.
    let pending = context.pending_user().unwrap();
    assert_eq!(pending.pk, Some(alice.pk));
    assert_eq!(pending.username, "alice");
}

#[tokio::test]
async fn pending_user_is_a_user_object() {
    let env = TestEnv::new();
    let alice = env.create_test_user("alice").await;
    let evaluator = PythonEvaluator::new();
    let mut context = PlanContext::new();
    context.set_pending_user(&authflow::plan::PendingUser::of(&alice));
    let before = context.clone();
    let source = r#"
p = context["pending_user"]
assert p.username == "alice" and p.is_authenticated and p.attributes == {}
assert not hasattr(p, "backend")
return True
"#;
    let out = eval_with(&evaluator, &env, source, None, &mut context, None).await;
    assert_eq!(out, Ok(PolicyOutcome::pass()));
    // Unchanged values come back unchanged.
    assert_eq!(context, before);
}

/// authentik's own `password-optional` expression on the password binding of the
/// default login flow: the password stage runs unless identification already
/// authenticated the user (inline password: `pending_user` has a `backend`).
#[tokio::test]
async fn authentik_password_optional_expression_decides_both_ways() {
    let env = env();
    defaults::install(env.flows.as_ref()).await.unwrap();
    let carol = env.create_test_user("carol").await;
    env.stores
        .users
        .set_password(carol.pk, &"carol-pw-123456".into())
        .await
        .unwrap();
    let slug = defaults::AUTHENTICATION;
    let def = env.flows.flow(slug).await.unwrap().unwrap();
    let password = def
        .stages
        .iter()
        .find(|b| matches!(b.stage.config, StageConfig::Password(_)))
        .unwrap();
    let policy = env.policy(expression(PASSWORD_OPTIONAL)).await;
    let mut binding = PolicyBinding::new(
        BindingTarget::Stage(password.binding.pk),
        BindingSubject::Policy(policy.pk),
        10,
    );
    binding.failure_result = true;
    env.save_policy_binding(binding).await;

    // Identification without a password: no backend yet, the password stage runs.
    let mut client = env.client();
    assert_eq!(
        client.get(slug).await.challenge.component(),
        "ak-stage-identification"
    );
    let out = client
        .post(
            slug,
            json!({"component": "ak-stage-identification", "uid_field": "carol"}),
        )
        .await;
    assert_eq!(out.challenge.component(), "ak-stage-password");
    let out = client
        .post(
            slug,
            json!({"component": "ak-stage-password", "password": "carol-pw-123456"}),
        )
        .await;
    assert!(out.logged_in, "{}", out.challenge.to_json());
    // The expression itself answered True (not an error turned into `failure_result`).
    assert!(
        env.events
            .of(authflow::events::EventAction::PolicyException)
            .is_empty(),
        "{:?}",
        env.events.events()
    );

    // Identification with an inline password stage: the user is authenticated there
    // (`user_backend` set), so the expression skips the password stage.
    let ident = def
        .stages
        .iter()
        .find(|b| matches!(b.stage.config, StageConfig::Identification(_)))
        .unwrap();
    let mut stage = (*ident.stage).clone();
    if let StageConfig::Identification(s) = &mut stage.config {
        s.password_stage = Some(password.stage.pk);
    }
    env.flows.put_stage(stage).await.unwrap();
    let mut client = Client::new(env.engine.clone());
    client.get(slug).await;
    let out = client
        .post(
            slug,
            json!({"component": "ak-stage-identification", "uid_field": "carol", "password": "carol-pw-123456"}),
        )
        .await;
    assert!(out.logged_in, "{}", out.challenge.to_json());
    assert_ne!(out.challenge.component(), "ak-stage-password");

    // The same expression without a plan in the request context answers True.
    let direct = eval(&PASSWORD_OPTIONAL.replace(
        "flow_plan = request.context.get(\"flow_plan\")",
        "flow_plan = None",
    ))
    .await
    .unwrap();
    assert!(direct.passing);
}

#[tokio::test]
async fn compiled_once_per_policy_and_source() {
    let env = TestEnv::new();
    let evaluator = PythonEvaluator::new();
    let policy = authflow::model::Policy::new("cached", expression("return True"));
    let flow = Flow::new("cache-test", "Cache", FlowDesignation::Authentication);
    for source in ["return True", "return True", "return 1", "return True"] {
        let mut context = PlanContext::new();
        let mut request = PolicyRequest {
            user: None,
            username: None,
            context: &mut context,
            flow_plan: true,
            flow: &flow,
            client_ip: None,
            env: env.engine.env(),
            hooks: env.engine.registry().hooks(),
            config: &serde_json::Value::Null,
        };
        assert!(
            evaluator
                .evaluate(&policy, source, &mut request)
                .await
                .unwrap()
                .passing
        );
    }
    assert_eq!(evaluator.cached_expressions(), 2);
}

/// A `tracing` writer into a shared buffer (installed once for this test binary).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured_logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with_writer(move || writer.clone())
            .init();
        logs
    })
    .clone()
}

#[tokio::test]
async fn ak_logger_logs_through_tracing_without_secrets() {
    let logs = captured_logs();
    let out = eval(
        "ak_logger.warning('login check', password='hunter2', user_token='abc', who='carol')\nreturn True",
    )
    .await
    .unwrap();
    assert!(out.passing);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("login check"))
        .unwrap_or_else(|| panic!("no log line in {text:?}"));
    assert!(line.contains("who='carol'"), "{line}");
    assert!(line.contains("test-expression"), "{line}");
    assert!(
        !line.contains("hunter2") && !line.contains("abc'"),
        "{line}"
    );
}

// authentik/flows/planner.py `FlowPlanner.plan` runs flow-level policies on a copy of the
// default context (no `flow_plan`); `_build_plan` and flows/markers.py
// `ReevaluateMarker.process` give a stage binding's policies a new `request.context` with
// `flow_plan` and the plan context's keys copied in. The expression's `context` is that
// `request.context` (authentik/policies/expression/evaluator.py
// `PolicyEvaluator.set_policy_request`), so only writes to `flow_plan.context` stay in the
// plan: `context["redirect"] = …` does not change where the flow ends.
#[tokio::test]
async fn context() {
    let env = env();
    let flow = env
        .create_test_flow(FlowDesignation::StageConfiguration)
        .await;
    let dummy = env.stage(DummyStage::default()).await;
    let binding = env.bind(&flow, &dummy, 0).await;
    let on_flow = env
        .policy(expression(
            "assert \"flow_plan\" not in request.context\ncontext[\"redirect\"] = \"/flow-level\"\nreturn True",
        ))
        .await;
    env.bind_policy(
        BindingTarget::Flow(flow.pk),
        BindingSubject::Policy(on_flow.pk),
        0,
    )
    .await;
    let on_stage = env
        .policy(expression(
            "assert request.context[\"flow_plan\"] is flow_plan\ncontext[\"redirect\"] = \"/stage-level\"\nflow_plan.context[\"kept\"] = 1\nreturn True",
        ))
        .await;
    env.bind_policy(
        BindingTarget::Stage(binding.pk),
        BindingSubject::Policy(on_stage.pk),
        0,
    )
    .await;

    let mut client = env.client();
    let out = client.get(&flow.slug).await;
    assert_eq!(
        out.challenge.component(),
        "ak-stage-dummy",
        "{}",
        out.challenge.to_json()
    );
    let plan = env
        .stored_plan(&client.session_id(), &flow.slug)
        .await
        .unwrap();
    assert_eq!(plan.context.get("redirect"), None);
    assert_eq!(plan.context.get("kept"), Some(&json!(1)));
    let out = client
        .post(&flow.slug, json!({"component": "ak-stage-dummy"}))
        .await;
    let challenge = out.challenge.to_json();
    assert_eq!(challenge["component"], "xak-flow-redirect", "{challenge}");
    assert_eq!(challenge["to"], "/", "{challenge}");
}
