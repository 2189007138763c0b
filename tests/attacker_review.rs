#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Regressions found by an attacker's second look at the issue-8 security fixes.

mod common;

use authflow::model::{
    Flow, FlowDesignation, FlowStageBinding, IdentificationStage, PasswordStage, Stage, UserField,
    UserLoginStage,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use authflow::blocking::{Blocking, BlockingJob, PoolBusy};
use authflow::store::FlowAdmin;
use common::kit::{Client, Kit, kit, wire};
use serde_json::{Value, json};

const INLINE: &str = "inline-login";

/// A login flow whose identification stage takes the password inline, so one POST
/// identifies, checks the password and logs in.
async fn inline_login_flow(k: &Kit) {
    let flows = k.stores.flows.as_ref();
    let flow = Flow::new(INLINE, "Inline", FlowDesignation::Authentication);
    flows.put_flow(flow.clone()).await.unwrap();
    let pw = Stage::new("inline-password", PasswordStage::default());
    let ident = Stage::new(
        "inline-ident",
        IdentificationStage {
            user_fields: vec![UserField::Username],
            password_stage: Some(pw.pk),
            ..IdentificationStage::default()
        },
    );
    flows.put_stage(pw).await.unwrap();
    let login = Stage::new("inline-user-login", UserLoginStage::default());
    for (i, s) in [ident, login].into_iter().enumerate() {
        let b = FlowStageBinding::new(flow.pk, s.pk, i32::try_from(i).unwrap() * 10);
        flows.put_stage(s).await.unwrap();
        flows.put_binding(b).await.unwrap();
    }
}

fn inline(uid: &str, pw: &str) -> Value {
    json!({"component": "ak-stage-identification", "uid_field": uid, "password": pw})
}

/// Session fixation through the unstored anonymous session: an attacker fetches the
/// login page without a cookie and gets an engine-minted id that is not stored (it is
/// adoptable by design). Planted in the victim's browser, that id must not become the
/// victim's logged-in session when the very first stored write is the login itself
/// (identification with an inline password logs in with one POST).
#[tokio::test]
async fn a_login_never_keeps_an_unstored_id_the_client_brought() {
    let k = kit().await;
    inline_login_flow(&k).await;
    k.create_user("victim", "Victim-Pw-12345").await;

    // The attacker's cookie-less GET: a minted id, nothing stored.
    let mut attacker = k.client();
    attacker.get(INLINE).await;
    let planted = attacker.session_id();
    assert!(k.state(&planted).await.is_none(), "not stored yet");

    // The victim's browser carries the planted id and logs in with one POST.
    let mut victim = attacker.same_session();
    let out = victim
        .post(INLINE, inline("victim", "Victim-Pw-12345"))
        .await;
    assert!(out.logged_in, "{}", wire(&out));
    assert!(out.session_rotated, "the session id must rotate at login");
    assert_ne!(out.session_id, planted, "the planted id is not the login");
    assert!(
        k.engine.session_user(&planted).await.unwrap().is_none(),
        "the planted id carries no login"
    );
    assert!(
        k.engine
            .session_user(&out.session_id)
            .await
            .unwrap()
            .is_some()
    );
}

/// A hashing pool that takes its time before each job (a busy server) and counts the
/// jobs it ran, i.e. the passwords actually evaluated.
#[derive(Default)]
struct SlowPool {
    ran: AtomicUsize,
}

#[async_trait]
impl Blocking for SlowPool {
    async fn run(&self, job: BlockingJob) -> Result<(), PoolBusy> {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        self.ran.fetch_add(1, Ordering::SeqCst);
        job.await;
        Ok(())
    }
}

/// The throttle's check and its count must not be separable: guesses sent at once all
/// passed `refused()` before the first failure was counted (the hash runs on the pool
/// in between), so a burst got as many guesses as the server admits concurrently
/// instead of `max_failures_per_ip` (10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cannot_outrun_the_throttle() {
    let k = kit().await;
    inline_login_flow(&k).await;
    k.create_user("victim", "Victim-Pw-12345").await;
    let pool = Arc::new(SlowPool::default());
    let engine = Arc::new(k.stores.engine().blocking(pool.clone()).build());

    let guesses = (0..25).map(|i| {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut c = Client::new(engine).with_ip("203.0.113.7");
            c.post(INLINE, inline("victim", &format!("guess-{i}")))
                .await
        })
    });
    let mut answers = Vec::new();
    for g in guesses.collect::<Vec<_>>() {
        answers.push(wire(&g.await.unwrap()));
    }
    let evaluated = pool.ran.load(Ordering::SeqCst);
    assert!(
        evaluated <= 10,
        "{evaluated} passwords evaluated in one burst (limit 10): {answers:?}"
    );
    // And the right password is refused from there too now.
    let mut c = Client::new(engine.clone()).with_ip("203.0.113.7");
    let out = c.post(INLINE, inline("victim", "Victim-Pw-12345")).await;
    assert!(!out.logged_in, "{}", wire(&out));
}

/// A hashing pool that is always full.
struct AlwaysBusy;

#[async_trait]
impl Blocking for AlwaysBusy {
    async fn run(&self, _job: BlockingJob) -> Result<(), PoolBusy> {
        Err(PoolBusy)
    }
}

/// Counting a check before evaluating it must not turn "Too many logins at once"
/// answers into failed attempts: a user retrying while the pool is full is not
/// locked out once it drains.
#[tokio::test]
async fn checks_the_full_pool_refused_are_not_failed_attempts() {
    let k = kit().await;
    inline_login_flow(&k).await;
    k.create_user("victim", "Victim-Pw-12345").await;
    let throttle = Arc::new(authflow::memory::MemoryThrottle::new());
    let busy = Arc::new(
        k.stores
            .engine()
            .throttle_store(throttle.clone())
            .blocking(Arc::new(AlwaysBusy))
            .build(),
    );
    for _ in 0..15 {
        let mut c = Client::new(busy.clone()).with_ip("203.0.113.8");
        let v = wire(&c.post(INLINE, inline("victim", "Victim-Pw-12345")).await);
        assert_eq!(
            v["response_errors"]["non_field_errors"][0]["string"],
            "Too many logins at once, try again",
            "{v}"
        );
    }
    let drained = Arc::new(k.stores.engine().throttle_store(throttle).build());
    let mut c = Client::new(drained).with_ip("203.0.113.8");
    let out = c.post(INLINE, inline("victim", "Victim-Pw-12345")).await;
    assert!(out.logged_in, "{}", wire(&out));
}
