#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Hostile and malformed input for every challenge stage (identification, password,
//! prompt, consent, dummy): the engine answers with `response_errors`, an access
//! denial or `ak-stage-flow-error` — never a panic, never an `Err` — and the flow stays
//! usable afterwards.
//!
//! Expectations follow authentik's serializers (DRF semantics, transcripts 19–22:
//! missing field → `required`, `{}` → field errors, malformed JSON →
//! `ak-stage-flow-error` with a `request_id`) and DESIGN.md §4 (a wrong `component`
//! or a non-object body is refused with `non_field_errors`).

mod common;

use std::collections::BTreeSet;

use authflow::model::{ConsentStage, DummyStage, Flow, FlowDesignation, FlowStageBinding, Stage};
use authflow::store::FlowAdmin;
use authflow::{Outcome, defaults};
use common::kit::{ADMIN_PASSWORD, Client, Kit, error_messages, kit, wire};
use serde_json::{Map, Value, json};

const CONSENT_FLOW: &str = "bad-input-consent";
const DUMMY_FLOW: &str = "bad-input-dummy";
const MB: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Under {
    Identification,
    Password,
    Prompt,
    Consent,
    Dummy,
}

impl Under {
    const ALL: [Under; 5] = [
        Under::Identification,
        Under::Password,
        Under::Prompt,
        Under::Consent,
        Under::Dummy,
    ];

    fn slug(self) -> &'static str {
        match self {
            Under::Identification | Under::Password => defaults::AUTHENTICATION,
            Under::Prompt => defaults::ENROLLMENT,
            Under::Consent => CONSENT_FLOW,
            Under::Dummy => DUMMY_FLOW,
        }
    }

    fn component(self) -> &'static str {
        match self {
            Under::Identification => "ak-stage-identification",
            Under::Password => "ak-stage-password",
            Under::Prompt => "ak-stage-prompt",
            Under::Consent => "ak-stage-consent",
            Under::Dummy => "ak-stage-dummy",
        }
    }

    /// A component of another stage kind.
    fn other_component(self) -> &'static str {
        match self {
            Under::Identification => "ak-stage-password",
            _ => "ak-stage-identification",
        }
    }

    /// The required fields of the response with valid values (the consent token is
    /// filled in from the current challenge).
    fn valid_fields(self) -> Vec<(&'static str, Value)> {
        match self {
            Under::Identification => vec![("uid_field", json!("akadmin"))],
            Under::Password => vec![("password", json!(ADMIN_PASSWORD))],
            Under::Prompt => vec![
                ("username", json!("valid-newcomer")),
                ("password", json!("Valid-Password-1")),
                ("password_repeat", json!("Valid-Password-1")),
            ],
            Under::Consent => vec![("token", json!("<token>"))],
            Under::Dummy => vec![],
        }
    }

    /// What a numeric value in `field` leads to: DRF's `CharField` accepts numbers
    /// as their text.
    fn number_in(self, field: &str) -> Expect {
        match (self, field) {
            // "12345" is an identifier like any other (unknown users are pretended).
            (Under::Identification, _) => Expect::Advance,
            // Wrong password.
            (Under::Password, _) => Expect::Errors(&["password"]),
            // A valid username.
            (Under::Prompt, "username") => Expect::Advance,
            // "12345" != the other password field.
            (Under::Prompt, _) => Expect::Errors(&["non_field_errors"]),
            // Wrong token.
            (Under::Consent, _) => Expect::Errors(&["non_field_errors"]),
            (Under::Dummy, _) => Expect::Advance,
        }
    }

    /// A fresh session positioned at this stage.
    async fn position(self, k: &Kit) -> Client {
        let mut c = k.client();
        let out = c.get(self.slug()).await;
        if self == Under::Password {
            let out = c
                .post(
                    self.slug(),
                    json!({"component": "ak-stage-identification", "uid_field": "akadmin"}),
                )
                .await;
            assert_eq!(out.challenge.component(), "ak-stage-password");
        } else {
            assert_eq!(out.challenge.component(), self.component());
        }
        c
    }

    /// The correct answer for the current challenge of `c`.
    async fn correct(self, c: &mut Client) -> Value {
        let mut body = Map::new();
        body.insert("component".into(), json!(self.component()));
        for (k, v) in self.valid_fields() {
            body.insert(k.into(), v);
        }
        if self == Under::Consent {
            let out = c.get(self.slug()).await;
            let token = wire(&out)["token"].clone();
            assert!(token.is_string(), "{}", wire(&out));
            body.insert("token".into(), token);
        }
        Value::Object(body)
    }
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Raw(Vec<u8>),
    /// The correct answer with one field replaced (`None`: removed).
    Field(&'static str, Option<Value>),
    /// The correct answer plus extra keys (or with `component` replaced).
    Extra(Vec<(&'static str, Value)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The same challenge with `response_errors` on exactly these keys; plan unchanged.
    Errors(&'static [&'static str]),
    /// `ak-stage-flow-error` with a `request_id`; nothing saved.
    FlowError,
    /// The stage accepted the answer.
    Advance,
    /// Anything but an engine error: errors, denial or advance.
    Any,
}

fn table(s: Under) -> Vec<(String, Body, Expect)> {
    const NFE: &[&str] = &["non_field_errors"];
    let mut t: Vec<(String, Body, Expect)> = vec![
        // Not an object (DRF: "Invalid data. Expected a dictionary, but got …").
        (
            "array body".into(),
            Body::Json(json!([])),
            Expect::Errors(NFE),
        ),
        (
            "array of the right answer".into(),
            Body::Json(json!([{"component": s.component()}])),
            Expect::Errors(NFE),
        ),
        (
            "string body".into(),
            Body::Json(json!("uid")),
            Expect::Errors(NFE),
        ),
        (
            "number body".into(),
            Body::Json(json!(42)),
            Expect::Errors(NFE),
        ),
        (
            "bool body".into(),
            Body::Json(json!(true)),
            Expect::Errors(NFE),
        ),
        (
            "null body".into(),
            Body::Json(Value::Null),
            Expect::Errors(NFE),
        ),
        // Components (DESIGN §4: refused, never applied to the current stage).
        (
            "unknown component".into(),
            Body::Extra(vec![("component", json!("ak-stage-bogus"))]),
            Expect::Errors(NFE),
        ),
        (
            "wrong stage's component".into(),
            Body::Extra(vec![("component", json!(s.other_component()))]),
            Expect::Errors(NFE),
        ),
        (
            "numeric component".into(),
            Body::Extra(vec![("component", json!(42))]),
            Expect::Errors(NFE),
        ),
        (
            "object component".into(),
            Body::Extra(vec![("component", json!({"component": s.component()}))]),
            Expect::Errors(NFE),
        ),
        (
            "huge component".into(),
            Body::Extra(vec![("component", json!("x".repeat(MB)))]),
            Expect::Errors(NFE),
        ),
        // Unknown extra fields are ignored (DRF): a positive control.
        (
            "extra unknown fields".into(),
            Body::Extra(vec![
                ("extra", json!({"nested": [1, null, {"a": "b"}]})),
                ("__proto__", json!({})),
            ]),
            Expect::Advance,
        ),
        // Malformed bytes (transcript 20).
        (
            "truncated JSON".into(),
            Body::Raw(b"{\"component\": ".to_vec()),
            Expect::FlowError,
        ),
        (
            "empty body".into(),
            Body::Raw(Vec::new()),
            Expect::FlowError,
        ),
        (
            "invalid UTF-8".into(),
            Body::Raw(vec![0xff, 0xfe, 0x00, 0x7b]),
            Expect::FlowError,
        ),
        (
            "bare word".into(),
            Body::Raw(b"nul".to_vec()),
            Expect::FlowError,
        ),
        (
            "trailing garbage".into(),
            Body::Raw(b"{} {".to_vec()),
            Expect::FlowError,
        ),
        (
            "deeply nested".into(),
            Body::Raw("[".repeat(100_000).into_bytes()),
            Expect::FlowError,
        ),
        (
            "1 MB of garbage".into(),
            Body::Raw(vec![b'{'; MB]),
            Expect::FlowError,
        ),
        // Well-formed but not an object, through the raw path.
        (
            "raw number".into(),
            Body::Raw(b"42".to_vec()),
            Expect::Errors(NFE),
        ),
        (
            "raw string".into(),
            Body::Raw(b"\"x\"".to_vec()),
            Expect::Errors(NFE),
        ),
    ];
    for (field, _) in s.valid_fields() {
        let f = |label: &str| format!("{field}: {label}");
        let e: &'static [&'static str] = Box::leak(vec![field].into_boxed_slice());
        t.extend([
            (f("missing"), Body::Field(field, None), Expect::Errors(e)),
            (
                f("null"),
                Body::Field(field, Some(Value::Null)),
                Expect::Errors(e),
            ),
            (
                f("true"),
                Body::Field(field, Some(json!(true))),
                Expect::Errors(e),
            ),
            (
                f("false"),
                Body::Field(field, Some(json!(false))),
                Expect::Errors(e),
            ),
            (
                f("empty array"),
                Body::Field(field, Some(json!([]))),
                Expect::Errors(e),
            ),
            (
                f("array"),
                Body::Field(field, Some(json!(["akadmin"]))),
                Expect::Errors(e),
            ),
            (
                f("empty object"),
                Body::Field(field, Some(json!({}))),
                Expect::Errors(e),
            ),
            (
                f("object"),
                Body::Field(field, Some(json!({"a": 1}))),
                Expect::Errors(e),
            ),
            (
                f("blank"),
                Body::Field(field, Some(json!(""))),
                Expect::Errors(e),
            ),
            (
                f("1 MB string"),
                Body::Field(field, Some(json!("a".repeat(MB)))),
                Expect::Errors(e),
            ),
            (
                f("number"),
                Body::Field(field, Some(json!(12345))),
                s.number_in(field),
            ),
            (
                f("float"),
                Body::Field(field, Some(json!(1.5e300))),
                Expect::Any,
            ),
            (
                f("control characters"),
                Body::Field(field, Some(json!("a\u{0}b\u{7}\r\n"))),
                Expect::Any,
            ),
        ]);
    }
    if s == Under::Dummy {
        // The dummy stage passes on any object answer (authentik's DummyStage).
        t.extend([
            (
                "empty object".into(),
                Body::Json(json!({})),
                Expect::Advance,
            ),
            (
                "odd fields".into(),
                Body::Extra(vec![("x", json!([1, {"y": null}])), ("z", json!(1e10))]),
                Expect::Advance,
            ),
        ]);
    } else {
        // Transcript 21: `{}` is validated like a response without fields.
        let required: Vec<&'static str> = s.valid_fields().iter().map(|(k, _)| *k).collect();
        let required: &'static [&'static str] = Box::leak(required.into_boxed_slice());
        t.push((
            "empty object".into(),
            Body::Json(json!({})),
            Expect::Errors(required),
        ));
        t.push((
            "component only".into(),
            Body::Json(json!({"component": s.component()})),
            Expect::Errors(required),
        ));
    }
    t
}

async fn materialise(s: Under, c: &mut Client, body: &Body) -> Body {
    match body {
        Body::Field(field, value) => {
            let mut v = s.correct(c).await;
            let m = v.as_object_mut().unwrap();
            match value {
                Some(value) => m.insert((*field).into(), value.clone()),
                None => m.remove(*field),
            };
            Body::Json(v)
        }
        Body::Extra(extra) => {
            let mut v = s.correct(c).await;
            let m = v.as_object_mut().unwrap();
            for (k, value) in extra {
                m.insert((*k).into(), value.clone());
            }
            Body::Json(v)
        }
        other => other.clone(),
    }
}

async fn send(c: &mut Client, slug: &str, body: &Body) -> Outcome {
    let r = match body {
        Body::Json(v) => c.try_post(slug, v.clone()).await,
        Body::Raw(b) => c.try_post_raw(slug, b).await,
        _ => unreachable!("materialised first"),
    };
    match r {
        Ok(o) => o,
        Err(e) => panic!("the engine failed: {e:?}"),
    }
}

/// How many stages of the flow have passed, and the stages still planned.
async fn progress(k: &Kit, c: &Client, slug: &str) -> (usize, Option<authflow::plan::FlowPlan>) {
    match k.flow_state(&c.session_id(), slug).await {
        Some(fs) => (fs.history.len(), fs.plan),
        // A new anonymous session that holds only the plan the request itself gives is
        // not stored: its plan is the one planning makes.
        None => (
            0,
            c.engine
                .plan_only(&c.request(), slug, authflow::plan::PlanContext::new())
                .await
                .ok(),
        ),
    }
}

fn assert_clear_errors(v: &Value, label: &str) {
    let errors = v["response_errors"]
        .as_object()
        .unwrap_or_else(|| panic!("{label}: no response_errors in {v}"));
    assert!(!errors.is_empty(), "{label}");
    for (field, list) in errors {
        let list = list.as_array().unwrap();
        assert!(!list.is_empty(), "{label}: {field}");
        for e in list {
            let msg = e["string"].as_str().unwrap();
            assert!(
                !msg.is_empty() && msg.len() < 300,
                "{label}: {field}: {msg}"
            );
            assert!(!e["code"].as_str().unwrap().is_empty(), "{label}");
        }
    }
}

/// Checks one outcome against its expectation. Returns whether the stage advanced.
async fn check(
    k: &Kit,
    s: Under,
    c: &Client,
    before: &(usize, Option<authflow::plan::FlowPlan>),
    out: &Outcome,
    expect: Expect,
    label: &str,
) -> bool {
    let v = wire(out);
    let after = progress(k, c, s.slug()).await;
    let advanced = after.0 > before.0;
    assert!(!out.logged_out, "{label}");
    match expect {
        Expect::Errors(keys) => {
            assert_eq!(v["component"], s.component(), "{label}: {v}");
            assert_clear_errors(&v, label);
            let got: BTreeSet<String> = error_messages(&v).into_keys().collect();
            let want: BTreeSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            assert_eq!(got, want, "{label}: {v}");
            assert!(!advanced, "{label}");
            assert!(!out.logged_in, "{label}");
            let bindings =
                |p: &Option<authflow::plan::FlowPlan>| p.as_ref().map(|p| p.bindings.clone());
            assert_eq!(
                bindings(&after.1),
                bindings(&before.1),
                "{label}: plan changed"
            );
            assert!(after.1.is_some(), "{label}: plan dropped");
        }
        Expect::FlowError => {
            assert_eq!(v["component"], "ak-stage-flow-error", "{label}: {v}");
            let rid = v["request_id"].as_str().unwrap_or("");
            assert!(!rid.is_empty(), "{label}: {v}");
            // authentik's shape (transcript 20) plus the legacy `type`.
            let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                BTreeSet::from(["component", "request_id", "type"]),
                "{label}"
            );
            assert_eq!(after.0, before.0, "{label}");
            assert_eq!(after.1, before.1, "{label}: plan changed");
            assert!(!out.logged_in);
        }
        Expect::Advance => {
            assert!(advanced, "{label}: did not advance: {v}");
        }
        Expect::Any => {
            if !advanced {
                match v["component"].as_str() {
                    Some("ak-stage-access-denied") => {
                        assert!(!out.challenge.error_message().unwrap_or("").is_empty());
                    }
                    Some(c) if c == s.component() => assert_clear_errors(&v, label),
                    _ => panic!("{label}: unexpected answer {v}"),
                }
            }
        }
    }
    advanced
}

async fn install_test_flows(k: &Kit) {
    let flows = k.stores.flows.as_ref();
    for (slug, stages) in [
        (
            CONSENT_FLOW,
            vec![
                Stage::new("bad-input-consent-stage", ConsentStage::default()),
                Stage::new("bad-input-consent-after", DummyStage::default()),
            ],
        ),
        (
            DUMMY_FLOW,
            vec![
                Stage::new("bad-input-dummy-1", DummyStage::default()),
                Stage::new("bad-input-dummy-2", DummyStage::default()),
            ],
        ),
    ] {
        let flow = Flow::new(slug, slug, FlowDesignation::Authorization);
        flows.put_flow(flow.clone()).await.unwrap();
        for (i, stage) in stages.into_iter().enumerate() {
            let b = FlowStageBinding::new(flow.pk, stage.pk, i32::try_from(i).unwrap());
            flows.put_stage(stage).await.unwrap();
            flows.put_binding(b).await.unwrap();
        }
    }
}

async fn run_table(s: Under) {
    let k = kit().await;
    install_test_flows(&k).await;
    for (label, body, expect) in table(s) {
        let label = format!("{s:?} / {label}");
        let mut c = s.position(&k).await;
        let body = materialise(s, &mut c, &body).await;
        let before = progress(&k, &c, s.slug()).await;
        let sid = c.session_id();
        let out = send(&mut c, s.slug(), &body).await;
        if !out.logged_in {
            assert_eq!(out.session_id, sid, "{label}: session changed");
        }
        let advanced = check(&k, s, &c, &before, &out, expect, &label).await;
        if !advanced && out.challenge.component() == s.component() {
            // Still usable: the correct answer advances now.
            let before = progress(&k, &c, s.slug()).await;
            let good = s.correct(&mut c).await;
            let out = send(&mut c, s.slug(), &Body::Json(good)).await;
            check(
                &k,
                s,
                &c,
                &before,
                &out,
                Expect::Advance,
                &format!("{label} → correct"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn identification_stage_survives_bad_input() {
    run_table(Under::Identification).await;
}

#[tokio::test]
async fn password_stage_survives_bad_input() {
    run_table(Under::Password).await;
}

#[tokio::test]
async fn prompt_stage_survives_bad_input() {
    run_table(Under::Prompt).await;
}

#[tokio::test]
async fn consent_stage_survives_bad_input() {
    run_table(Under::Consent).await;
}

#[tokio::test]
async fn dummy_stage_survives_bad_input() {
    run_table(Under::Dummy).await;
}

/// xorshift64*: small, deterministic, good enough to shake the parsers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "akadmin",
            "",
            " ",
            "ak-stage-identification",
            "ak-stage-password",
            "ak-stage-prompt",
            "ak-stage-consent",
            "ak-stage-dummy",
            "\u{0}",
            "ü",
            "😀",
            "\\",
            "\"",
            "'; DROP TABLE users; --",
            "%s%n",
            "../../",
            "//evil.example",
        ];
        let n = self.below(4);
        (0..n)
            .map(|_| PIECES[usize::try_from(self.below(PIECES.len() as u64)).unwrap()])
            .collect()
    }

    fn value(&mut self, depth: u32) -> Value {
        let pick = if depth == 0 {
            self.below(5)
        } else {
            self.below(7)
        };
        match pick {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => match self.below(3) {
                0 => json!(self.next() as i64),
                1 => json!(self.below(100)),
                _ => json!(f64::from(u32::try_from(self.below(1000)).unwrap()) / 7.0),
            },
            3 | 4 => json!(self.string()),
            5 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut m = Map::new();
                for _ in 0..self.below(4) {
                    m.insert(self.string(), self.value(depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    /// A response-like object: keys mostly from the stage's own fields.
    fn body(&mut self, s: Under) -> Value {
        let mut keys: Vec<&str> = s.valid_fields().iter().map(|(k, _)| *k).collect();
        keys.extend(["component", "uid_field", "password", "token", "junk"]);
        if self.below(10) == 0 {
            return self.value(3);
        }
        let mut m = Map::new();
        for _ in 0..self.below(5) {
            let key = keys[usize::try_from(self.below(keys.len() as u64)).unwrap()];
            let value = if key == "component" && self.below(2) == 0 {
                json!(s.component())
            } else {
                self.value(2)
            };
            m.insert(key.to_owned(), value);
        }
        Value::Object(m)
    }
}

#[tokio::test]
async fn pseudo_random_bodies_never_break_a_stage() {
    let k = kit().await;
    install_test_flows(&k).await;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for s in Under::ALL {
        let rounds = if s == Under::Password { 15 } else { 40 };
        let mut c = s.position(&k).await;
        for round in 0..rounds {
            let body = rng.body(s);
            let label = format!("{s:?} / random #{round}: {body}");
            let before = progress(&k, &c, s.slug()).await;
            let out = send(&mut c, s.slug(), &Body::Json(body)).await;
            let advanced = check(&k, s, &c, &before, &out, Expect::Any, &label).await;
            if advanced || out.challenge.component() != s.component() {
                c = s.position(&k).await;
            }
        }
        // Still usable.
        let before = progress(&k, &c, s.slug()).await;
        let good = s.correct(&mut c).await;
        let out = send(&mut c, s.slug(), &Body::Json(good)).await;
        check(
            &k,
            s,
            &c,
            &before,
            &out,
            Expect::Advance,
            &format!("{s:?} → correct"),
        )
        .await;
    }
}

#[tokio::test]
async fn responses_after_the_flow_finished() {
    let k = kit().await;
    install_test_flows(&k).await;

    // Login: finished; a replayed password answer meets a fresh plan's identification
    // stage and is refused, the user stays logged in.
    let mut c = k.login("akadmin", ADMIN_PASSWORD).await;
    let slug = defaults::AUTHENTICATION;
    let out = c
        .post(
            slug,
            json!({"component": "ak-stage-password", "password": ADMIN_PASSWORD}),
        )
        .await;
    let v = wire(&out);
    assert_eq!(v["component"], "ak-stage-identification", "{v}");
    assert!(error_messages(&v).contains_key("non_field_errors"), "{v}");
    assert!(!out.logged_in && !out.logged_out);
    assert_eq!(out.user, Some(k.admin.pk.clone()));
    let out = c.post(slug, json!({})).await;
    assert_eq!(
        error_messages(&wire(&out)).get("uid_field"),
        Some(&vec!["This field is required.".to_owned()])
    );

    // Enrollment: finished (and logged in); replaying an answer is not applicable any more.
    let mut e = k.client();
    let enroll = defaults::ENROLLMENT;
    e.get(enroll).await;
    let first = json!({"component": "ak-stage-prompt", "username": "late-replayer",
                       "password": "Replayer-Pw-1", "password_repeat": "Replayer-Pw-1"});
    e.post(enroll, first.clone()).await;
    let out = e
        .post(
            enroll,
            json!({"component": "ak-stage-prompt", "name": "Late", "email": "late@example.invalid"}),
        )
        .await;
    assert!(out.logged_in, "{}", wire(&out));
    for body in [first, json!({}), json!([])] {
        let out = e.post(enroll, body).await;
        assert_eq!(out.challenge.component(), "ak-stage-access-denied");
        assert_eq!(
            out.challenge.error_message(),
            Some("Flow does not apply to current user.")
        );
        assert!(out.user.is_some(), "still logged in");
    }

    // Consent: a finished flow's token is useless in the next run.
    let s = Under::Consent;
    let mut c = s.position(&k).await;
    let good = s.correct(&mut c).await;
    let out = c.post(CONSENT_FLOW, good.clone()).await;
    assert_eq!(out.challenge.component(), "ak-stage-dummy");
    let out = c
        .post(CONSENT_FLOW, json!({"component": "ak-stage-dummy"}))
        .await;
    assert_eq!(out.challenge.redirect_to(), Some("/"));
    let out = c.post(CONSENT_FLOW, good).await;
    let v = wire(&out);
    assert_eq!(v["component"], "ak-stage-consent", "{v}");
    assert!(error_messages(&v).contains_key("non_field_errors"), "{v}");

    // Dummy: a new plan is made on the fly (transcript 27) and the dummy accepts anything.
    let mut c = Under::Dummy.position(&k).await;
    c.post(DUMMY_FLOW, json!({})).await;
    let out = c.post(DUMMY_FLOW, json!({})).await;
    assert_eq!(out.challenge.redirect_to(), Some("/"));
    let out = c
        .post(DUMMY_FLOW, json!({"component": "ak-stage-dummy"}))
        .await;
    assert_eq!(out.challenge.component(), "ak-stage-dummy");
    assert_eq!(wire(&out)["name"], "bad-input-dummy-2");

    // Unenrollment: after the account is gone, replays are refused.
    k.create_user("gone", "Gone-Password-1").await;
    let mut g = k.login("gone", "Gone-Password-1").await;
    let out = g
        .confirm(defaults::UNENROLLMENT, "Delete your account?")
        .await;
    assert!(out.logged_out);
    for body in [json!({}), json!({"component": "ak-stage-dummy"})] {
        let out = g.post(defaults::UNENROLLMENT, body).await;
        assert_eq!(out.challenge.component(), "ak-stage-access-denied");
        assert_eq!(
            out.challenge.error_message(),
            Some("Flow does not apply to current user.")
        );
    }
}

#[tokio::test]
async fn malformed_bytes_without_a_session_or_flow() {
    let k = kit().await;
    // No session yet: a flow error, and a session id to continue with.
    let mut c = k.client();
    let out = c.post_raw(defaults::AUTHENTICATION, b"{oops").await;
    assert_eq!(out.challenge.component(), "ak-stage-flow-error");
    let out = c.get(defaults::AUTHENTICATION).await;
    assert_eq!(out.challenge.component(), "ak-stage-identification");
    // An unknown flow is the host's 404, whatever the body.
    let r = k
        .engine
        .step_raw(&c.request(), "no-such-flow", b"{oops")
        .await;
    assert!(matches!(r, Err(authflow::Error::FlowNotFound(_))), "{r:?}");
    let r = k
        .engine
        .step(&c.request(), "no-such-flow", &json!({}))
        .await;
    assert!(matches!(r, Err(authflow::Error::FlowNotFound(_))), "{r:?}");
}
