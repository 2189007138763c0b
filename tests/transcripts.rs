#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Replays the recorded authentik 2025.8 transcripts
//! (`tests/fixtures/authentik-observed`, README in
//! `reference/authentik-observed/README.md`) in process and compares our answers with
//! authentik's, hop by hop.
//!
//! For every answer authentik gave as JSON we check: the same `component`; the same
//! set of top-level keys; the same `flow_info` keys and the same title, cancel_url,
//! layout and background; the same `response_errors` (fields, messages, codes); and the
//! same values for every other key except the ones we deliberately differ on.
//!
//! Deliberate differences (DESIGN.md §4, §5; lib.rs), each asserted explicitly:
//! - every challenge carries the legacy `type` (`native` / `redirect`);
//! - a valid POST answers the next challenge directly where authentik answers 302 and
//!   the client GETs it: our POST answer must equal authentik's next 200 GET answer;
//! - `pending_user_avatar` is an initials SVG computed locally, never a Gravatar URL;
//! - `request_id` of `ak-stage-flow-error` is random per request;
//! - a POST whose `component` is not the current stage's is refused with
//!   `non_field_errors` (authentik ignores `component`, transcripts 24–26);
//! - `cancel_url` keeps `?next=` (authentik ≥ 2025.12; the recording is 2025.8);
//! - the identification stage shows what the user typed, not the matched account.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use authflow::model::{
    BindingSubject, BindingTarget, DeniedAction, DummyStage, Flow, FlowDesignation,
    FlowStageBinding, Policy, PolicyBinding, PolicyKind, Stage,
};
use authflow::store::{FlowAdmin, UserAdmin, UserDirectory};
use authflow::{Outcome, defaults};
use common::kit::{ADMIN_PASSWORD, Client, Kit, kit, wire};
use serde_json::{Value, json};

/// One recorded HTTP hop.
#[derive(Debug, Clone)]
struct Hop {
    file: String,
    method: String,
    slug: String,
    /// The executor's `query` parameter, decoded.
    query: String,
    body: Value,
    status: u64,
    json: Value,
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/authentik-observed")
}

fn hop(n: u32) -> Hop {
    let prefix = format!("{n:02}-");
    let entry = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .unwrap_or_else(|| panic!("no transcript {prefix}*"));
    let file = entry.file_name().to_string_lossy().into_owned();
    let v: Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
    let path = v["request"]["path"].as_str().unwrap();
    let (route, qs) = path.split_once('?').unwrap_or((path, ""));
    let slug = route
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        route.starts_with("/api/v3/flows/executor/"),
        "{file}: not an executor hop"
    );
    let query = form_urlencoded::parse(qs.as_bytes())
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Hop {
        method: v["request"]["method"].as_str().unwrap().to_owned(),
        slug,
        query,
        body: v["request"]["body"].clone(),
        status: v["response"]["status"].as_u64().unwrap(),
        json: v["response"]["json"].clone(),
        file,
    }
}

fn hops(range: std::ops::RangeInclusive<u32>) -> Vec<Hop> {
    range.map(hop).collect()
}

/// Sends a recorded request. A string body is the raw text authentik received
/// (transcript 20); anything else is the JSON body.
async fn send(c: &mut Client, h: &Hop) -> Outcome {
    c.query = h.query.clone();
    match h.method.as_str() {
        "GET" => c.get(&h.slug).await,
        "POST" => match &h.body {
            Value::String(raw) => c.post_raw(&h.slug, raw.as_bytes()).await,
            body => c.post(&h.slug, body.clone()).await,
        },
        m => panic!("{}: unexpected method {m}", h.file),
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Compares our challenge with authentik's. `also_ignore` lists further top-level
/// keys whose values differ deliberately (the keys themselves must still match).
fn assert_like_authentik(ours: &Value, theirs: &Value, ctx: &str, also_ignore: &[&str]) {
    assert!(theirs.is_object(), "{ctx}: transcript has no JSON");
    assert_eq!(
        ours["component"], theirs["component"],
        "{ctx}: component\nours: {ours}"
    );

    // The legacy `type` we add on purpose (DESIGN.md §5).
    let expected_type = match theirs["component"].as_str() {
        Some("xak-flow-redirect") => "redirect",
        Some("xak-flow-shell") => "shell",
        _ => "native",
    };
    assert_eq!(ours["type"], expected_type, "{ctx}: legacy type");

    let mut our_keys = keys(ours);
    our_keys.remove("type");
    assert_eq!(
        our_keys,
        keys(theirs),
        "{ctx}: top-level keys\nours: {ours}"
    );

    if let Some(info) = theirs.get("flow_info") {
        let our_info = &ours["flow_info"];
        assert_eq!(keys(our_info), keys(info), "{ctx}: flow_info keys");
        for k in ["title", "cancel_url", "layout", "background"] {
            if !also_ignore.contains(&"flow_info.cancel_url") || k != "cancel_url" {
                assert_eq!(our_info[k], info[k], "{ctx}: flow_info.{k}");
            }
        }
    }

    assert_eq!(
        ours.get("response_errors"),
        theirs.get("response_errors"),
        "{ctx}: response_errors"
    );

    // Everything else is identical, except what we differ on by design.
    for (k, v) in theirs.as_object().unwrap() {
        let deliberate = matches!(
            k.as_str(),
            "flow_info" | "response_errors" | "pending_user_avatar" | "request_id"
        ) || also_ignore.contains(&k.as_str());
        if !deliberate {
            assert_eq!(&ours[k], v, "{ctx}: value of `{k}`");
        }
    }
    if let Some(a) = ours.get("pending_user_avatar") {
        let a = a.as_str().unwrap();
        assert!(
            a.starts_with("data:image/svg+xml;base64,")
                || a == "/static/dist/assets/images/user_default.png",
            "{ctx}: avatar must not leave the server: {a}"
        );
    }
    if theirs["component"] == "ak-stage-flow-error" {
        assert!(
            !ours["request_id"].as_str().unwrap_or("").is_empty(),
            "{ctx}"
        );
    }
}

/// Replays `hops` on one client. Where authentik answered 302 (and its client
/// followed with GETs), our answer to the same request must equal authentik's next
/// 200 answer; if the flow is still running, our GET shows that challenge too.
/// Returns our last outcome.
async fn replay(c: &mut Client, hops: &[Hop], also_ignore: &[&str]) -> Outcome {
    let mut last = None;
    let mut i = 0;
    while let Some(h) = hops.get(i) {
        let ours = send(c, h).await;
        let ctx = format!("{} ({} {})", h.file, h.method, h.slug);
        let mut j = i;
        if h.status == 302 {
            // authentik: 302 → GET (→ 302 → GET …) until a 200.
            j = i + 1;
            while hops[j].status == 302 {
                assert_eq!(hops[j].method, "GET", "{}", hops[j].file);
                j += 1;
            }
            assert_eq!(hops[j].method, "GET", "{}", hops[j].file);
        }
        let expected = &hops[j];
        assert_eq!(expected.status, 200, "{}", expected.file);
        let ctx = format!("{ctx} vs {}", expected.file);
        assert_like_authentik(&wire(&ours), &expected.json, &ctx, also_ignore);
        if j > i && expected.json.get("flow_info").is_some() {
            let again = c.get(&expected.slug).await;
            assert_like_authentik(
                &wire(&again),
                &expected.json,
                &format!("{ctx} (our GET)"),
                also_ignore,
            );
        }
        last = Some(ours);
        i = j + 1;
    }
    last.expect("at least one hop")
}

#[tokio::test]
async fn happy_login_01_06() {
    let k = kit().await;
    let mut c = k.client();
    let last = replay(&mut c, &hops(1..=6), &[]).await;
    assert!(last.logged_in);
    assert!(last.session_rotated);
    assert_eq!(last.user, Some(k.admin.pk));
}

#[tokio::test]
async fn login_with_next_32_37() {
    let k = kit().await;
    // The recorded admin had this email (transcript 33 identifies with it).
    let mut admin = k.admin.clone();
    admin.email = "akadmin@example.invalid".into();
    k.stores.users.update_user(&admin).await.unwrap();

    let h = hops(32..=37);
    let mut c = k.client();
    // 32: authentik 2025.8 drops `next` from cancel_url; we keep it (authentik
    // ≥ 2025.12 does too).
    let out = send(&mut c, &h[0]).await;
    let v = wire(&out);
    assert_like_authentik(&v, &h[0].json, "32", &["flow_info.cancel_url"]);
    assert_eq!(
        v["flow_info"]["cancel_url"],
        "/flows/-/cancel/?next=%2Fif%2Fadmin%2F"
    );
    assert_eq!(h[0].json["flow_info"]["cancel_url"], "/flows/-/cancel/");

    // 33 (302) → 34: authentik shows the matched account (`akadmin`); we show what
    // was typed, so the answer does not reveal which account an email belongs to.
    let out = send(&mut c, &h[1]).await;
    let v = wire(&out);
    assert_like_authentik(
        &v,
        &h[2].json,
        "33 vs 34",
        &["flow_info.cancel_url", "pending_user"],
    );
    assert_eq!(h[2].json["pending_user"], "akadmin");
    assert_eq!(v["pending_user"], "akadmin@example.invalid");

    // 35 (302) → 36 (302) → 37: straight to the redirect to `next`.
    let out = send(&mut c, &h[3]).await;
    assert_like_authentik(&wire(&out), &h[5].json, "35 vs 37", &[]);
    assert_eq!(out.challenge.redirect_to(), Some("/if/admin/"));
    assert!(out.logged_in);
}

#[tokio::test]
async fn wrong_password_11_15() {
    let k = kit().await;
    let mut c = k.client();
    let last = replay(&mut c, &hops(11..=15), &[]).await;
    assert!(!last.logged_in);
    // Two failures are not a lockout: the right password still works.
    let out = c
        .post(
            defaults::AUTHENTICATION,
            json!({"component": "ak-stage-password", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert!(out.logged_in);
}

#[tokio::test]
async fn unknown_user_16_18() {
    let k = kit().await;
    let mut c = k.client();
    replay(&mut c, &hops(16..=18), &[]).await;
}

#[tokio::test]
async fn unknown_user_password_55_58() {
    let k = kit().await;
    let mut c = k.client();
    let last = replay(&mut c, &hops(55..=58), &[]).await;
    assert!(!last.logged_in);
}

/// The session's plan; a new anonymous session holding only the plan planning gives
/// is not stored, so then that plan.
async fn plan_of(k: &Kit, c: &Client, slug: &str) -> Option<authflow::plan::FlowPlan> {
    match k.flow_state(&c.session_id(), slug).await {
        Some(fs) => fs.plan,
        None => c
            .engine
            .plan_only(&c.request(), slug, authflow::plan::PlanContext::new())
            .await
            .ok(),
    }
}

#[tokio::test]
async fn bad_json_19_22() {
    let k = kit().await;
    let mut c = k.client();
    let before = {
        let h = hop(19);
        send(&mut c, &h).await;
        plan_of(&k, &c, &h.slug).await
    };
    // 20: malformed JSON → ak-stage-flow-error, nothing changes.
    let h20 = hop(20);
    assert!(h20.body.is_string());
    let out = send(&mut c, &h20).await;
    assert_like_authentik(&wire(&out), &h20.json, &h20.file, &[]);
    let after = plan_of(&k, &c, &h20.slug).await;
    assert!(after.is_some());
    assert_eq!(after, before, "a malformed body must not change the plan");
    // 21, 22: field errors.
    replay(&mut c, &hops(21..=22), &[]).await;
}

#[tokio::test]
async fn wrong_component_23_26() {
    let k = kit().await;
    let h = hops(23..=26);
    let mut c = k.client();
    let out = send(&mut c, &h[0]).await;
    assert_like_authentik(&wire(&out), &h[0].json, &h[0].file, &[]);

    // 24: a password answer at the identification stage. authentik validates it as an
    // identification answer (`uid_field` required); we refuse the component itself.
    let out = send(&mut c, &h[1]).await;
    let ours = wire(&out);
    let theirs = &h[1].json;
    assert_eq!(ours["component"], theirs["component"]);
    assert_eq!(ours["flow_info"], theirs["flow_info"]);
    let mut their_keys = keys(theirs);
    their_keys.insert("type".into());
    assert_eq!(keys(&ours), their_keys, "same shape otherwise");
    assert_eq!(
        theirs["response_errors"],
        json!({"uid_field": [{"string": "This field is required.", "code": "required"}]})
    );
    let errors = ours["response_errors"].as_object().unwrap();
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["non_field_errors"],
        "{ours}"
    );
    assert_eq!(errors["non_field_errors"][0]["code"], "invalid");
    let msg = errors["non_field_errors"][0]["string"].as_str().unwrap();
    assert!(
        msg.contains("ak-stage-password") && msg.contains("ak-stage-identification"),
        "{msg}"
    );

    // 25: a bogus component with a valid identifier. authentik applies it (302 → the
    // password stage, 26); we refuse it and stay at identification.
    assert_eq!(h[2].status, 302);
    let out = send(&mut c, &h[2]).await;
    let ours = wire(&out);
    assert_eq!(ours["component"], "ak-stage-identification");
    assert!(
        ours["response_errors"]["non_field_errors"].is_array(),
        "{ours}"
    );
    assert!(ours["response_errors"].get("uid_field").is_none());
    // Sent with the right component, the same answer gets authentik's 26.
    let mut fixed = h[2].clone();
    fixed.body["component"] = json!("ak-stage-identification");
    let out = send(&mut c, &fixed).await;
    assert_like_authentik(&wire(&out), &h[3].json, "25 (fixed) vs 26", &[]);
}

#[tokio::test]
async fn post_without_prior_get_27_28() {
    let k = kit().await;
    let mut c = k.client();
    assert!(c.session.is_none());
    replay(&mut c, &hops(27..=28), &[]).await;
}

#[tokio::test]
async fn lockout_59_67() {
    let k = kit().await;
    let mut c = k.client();
    let h = hops(59..=67);
    assert_eq!(h[7].json["component"], "ak-stage-access-denied");
    let last = replay(&mut c, &h, &[]).await;
    assert!(!last.logged_in);
    assert_eq!(last.challenge.component(), "ak-stage-identification");
}

#[tokio::test]
async fn enrollment_68_75() {
    let k = kit().await;
    let mut c = k.client();
    let last = replay(&mut c, &hops(68..=73), &[]).await;
    assert!(last.logged_in, "enrollment ends logged in");
    assert!(
        k.stores
            .users
            .find_user(authflow::model::UserField::Username, "enroll-8399ba", false)
            .await
            .unwrap()
            .is_some()
    );
    // 74–75: a second browser tries the same username (and mismatching passwords);
    // field errors come first, so only the username is reported.
    let mut other = k.client();
    replay(&mut other, &hops(74..=75), &[]).await;
}

#[tokio::test]
async fn enrollment_password_mismatch_78_79() {
    let k = kit().await;
    let mut c = k.client();
    replay(&mut c, &hops(78..=79), &[]).await;
}

/// authentik's `default-denied-flow` of transcripts 76–77: a flow whose flow-level
/// policy denies everyone, `denied_action: message`.
async fn install_denied_flow(k: &Kit, subject: BindingSubject, policy: Option<Policy>) {
    let flows = k.stores.flows.as_ref();
    let mut flow = Flow::new(
        "default-denied-flow",
        "Denied",
        FlowDesignation::Authentication,
    );
    flow.denied_action = DeniedAction::Message;
    flows.put_flow(flow.clone()).await.unwrap();
    let stage = Stage::new("denied-flow-dummy", DummyStage::default());
    let binding = FlowStageBinding::new(flow.pk, stage.pk, 0);
    flows.put_stage(stage).await.unwrap();
    flows.put_binding(binding).await.unwrap();
    if let Some(p) = policy {
        flows.put_policy(p).await.unwrap();
    }
    flows
        .put_policy_binding(PolicyBinding::new(BindingTarget::Flow(flow.pk), subject, 0))
        .await
        .unwrap();
}

#[tokio::test]
async fn denied_flow_dummy_policy_76_77() {
    let k = kit().await;
    let policy = Policy::new("deny-everyone", PolicyKind::Dummy { result: false });
    install_denied_flow(&k, BindingSubject::Policy(policy.pk), Some(policy)).await;
    let mut c = k.client();
    // A failing policy's own messages are what the user sees (authentik's
    // `FlowNonApplicableException.messages`); a dummy policy's message is "dummy".
    // The recorded server's policy carried none, hence its generic text.
    let last = replay(&mut c, &hops(76..=77), &["error_message"]).await;
    assert_eq!(
        hop(77).json["error_message"],
        "Flow does not apply to current user."
    );
    assert_eq!(last.challenge.error_message(), Some("dummy"));
    assert!(!last.logged_in);
}

#[tokio::test]
async fn denied_flow_without_policy_message_76_77() {
    let k = kit().await;
    // A user binding to someone else: fails for everybody else, with no message, so
    // the generic text authentik recorded is shown.
    install_denied_flow(&k, BindingSubject::User(k.admin.pk.clone()), None).await;
    let mut c = k.client();
    replay(&mut c, &hops(76..=77), &[]).await;
}

#[tokio::test]
async fn unknown_flow_31() {
    let k = kit().await;
    let h = hop(31);
    // authentik answers 404 with an HTML page; the engine reports `FlowNotFound`
    // (the reference server maps it to a JSON 404).
    assert_eq!(h.status, 404);
    let mut c = k.client();
    let r = c.try_get(&h.slug).await;
    assert!(
        matches!(r, Err(authflow::Error::FlowNotFound(ref s)) if s == "no-such-flow"),
        "{r:?}"
    );
}

/// The comparison itself must notice every kind of difference it claims to check.
#[test]
fn comparator_detects_differences() {
    let theirs = hop(14).json;
    let mut ours = theirs.clone();
    ours["type"] = json!("native");
    assert_like_authentik(&ours, &theirs, "identical", &[]);

    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "component",
            Box::new(|v| v["component"] = json!("ak-stage-identification")),
        ),
        (
            "missing type",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("type");
            }),
        ),
        ("extra key", Box::new(|v| v["recovery_url"] = json!("/x"))),
        (
            "missing key",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("allow_show_password");
            }),
        ),
        (
            "title",
            Box::new(|v| v["flow_info"]["title"] = json!("Other")),
        ),
        (
            "cancel_url",
            Box::new(|v| v["flow_info"]["cancel_url"] = json!("/x")),
        ),
        (
            "flow_info key",
            Box::new(|v| v["flow_info"]["extra"] = json!(1)),
        ),
        (
            "error message",
            Box::new(|v| v["response_errors"]["password"][0]["string"] = json!("Wrong password")),
        ),
        (
            "error field",
            Box::new(|v| {
                v["response_errors"] =
                    json!({"non_field_errors": [{"string": "Invalid password", "code": "invalid"}]})
            }),
        ),
        (
            "value",
            Box::new(|v| v["pending_user"] = json!("someone-else")),
        ),
        (
            "gravatar",
            Box::new(|v| v["pending_user_avatar"] = json!("https://www.gravatar.com/avatar/x")),
        ),
    ];
    for (name, mutate) in mutations {
        let mut bad = ours.clone();
        mutate(&mut bad);
        let r = std::panic::catch_unwind(|| assert_like_authentik(&bad, &theirs, name, &[]));
        assert!(r.is_err(), "mutation `{name}` went unnoticed");
    }
}
