//! The catalogue rules, checked on a [`Catalogue`] directly (no store).

use super::*;
use crate::model::{DummyStage, FlowDesignation};

fn flow(slug: &str) -> Flow {
    Flow::new(slug, slug, FlowDesignation::Authentication)
}

fn stage(name: &str) -> Stage {
    Stage::new(name, DummyStage::default())
}

fn field_of(e: StoreError) -> String {
    match e {
        StoreError::Validation(v) => v.to_string(),
        other => panic!("expected a validation error, got {other}"),
    }
}

#[test]
fn catalogue_refuses_a_duplicate_slug() {
    let mut c = Catalogue::new();
    c.apply(Op::PutFlow(flow("login"))).unwrap();
    let err = c.apply(Op::PutFlow(flow("login"))).unwrap_err();
    assert!(field_of(err).contains("slug"));
    assert_eq!(c.flows().len(), 1);
    // Replacing the same flow (same pk) keeps its slug.
    let f = c.flow_by_slug("login").unwrap().clone();
    assert!(c.apply(Op::PutFlow(f)).unwrap());
}

#[test]
fn catalogue_refuses_a_duplicate_stage_name() {
    let mut c = Catalogue::new();
    c.apply(Op::PutStage(stage("s"))).unwrap();
    assert!(c.apply(Op::PutStage(stage("s"))).is_err());
}

#[test]
fn catalogue_refuses_dangling_references() {
    let mut c = Catalogue::new();
    let f = flow("login");
    let s = stage("s");
    let err = c
        .apply(Op::PutBinding(FlowStageBinding::new(f.pk, s.pk, 0)))
        .unwrap_err();
    let msg = field_of(err);
    assert!(msg.contains("target") && msg.contains("stage"), "{msg}");
    c.apply(Op::PutFlow(f.clone())).unwrap();
    let pb = PolicyBinding::new(
        BindingTarget::Flow(f.pk),
        BindingSubject::Policy(PolicyId::new()),
        0,
    );
    assert!(c.apply(Op::PutPolicyBinding(pb)).is_err());
    assert!(c.bindings_of(f.pk).is_empty());
}

#[test]
fn catalogue_cascades_deletes() {
    let mut c = Catalogue::new();
    let f = flow("login");
    let s = stage("s");
    let b = FlowStageBinding::new(f.pk, s.pk, 0);
    c.apply(Op::PutFlow(f.clone())).unwrap();
    c.apply(Op::PutStage(s.clone())).unwrap();
    c.apply(Op::PutBinding(b.clone())).unwrap();
    assert_eq!(c.definition("login").unwrap().stages.len(), 1);
    assert!(c.apply(Op::DeleteStage(s.pk)).unwrap());
    assert!(c.bindings_of(f.pk).is_empty());
    assert!(c.definition("login").unwrap().stages.is_empty());

    c.apply(Op::PutStage(s.clone())).unwrap();
    c.apply(Op::PutBinding(b)).unwrap();
    assert!(c.apply(Op::DeleteFlow("login".into())).unwrap());
    let snap = c.snapshot();
    assert!(snap.flows.is_empty() && snap.bindings.is_empty());
    assert_eq!(snap.stages.len(), 1, "stages outlive the flows using them");
    assert!(!c.apply(Op::DeleteFlow("login".into())).unwrap());
}

#[test]
fn catalogue_bumps_the_revision_of_touched_flows() {
    let mut c = Catalogue::new();
    let f = flow("login");
    let other = flow("other");
    let s = stage("s");
    c.apply(Op::PutFlow(f.clone())).unwrap();
    c.apply(Op::PutFlow(other)).unwrap();
    c.apply(Op::PutStage(s.clone())).unwrap();
    let r0 = c.revision("login").unwrap();
    let o0 = c.revision("other").unwrap();
    c.apply(Op::PutBinding(FlowStageBinding::new(f.pk, s.pk, 0)))
        .unwrap();
    let r1 = c.revision("login").unwrap();
    assert!(r1 > r0);
    // Editing a bound stage touches the flow using it, not the others.
    let mut s2 = s;
    s2.name = "renamed".into();
    c.apply(Op::PutStage(s2)).unwrap();
    assert!(c.revision("login").unwrap() > r1);
    assert_eq!(c.revision("other").unwrap(), o0);
    // A refused write changes nothing.
    let rev = c.revision("login").unwrap();
    assert!(c.apply(Op::PutFlow(flow("login"))).is_err());
    assert_eq!(c.revision("login").unwrap(), rev);
}

#[test]
fn catalogue_snapshot_round_trips() {
    let mut c = Catalogue::new();
    c.apply(Op::PutFlow(flow("login"))).unwrap();
    c.apply(Op::PutStage(stage("s"))).unwrap();
    let json = serde_json::to_string(&c.snapshot()).unwrap();
    let back = Catalogue::from_snapshot(serde_json::from_str(&json).unwrap());
    assert_eq!(back.flows().len(), 1);
    assert_eq!(back.snapshot().stages.len(), 1);
}
