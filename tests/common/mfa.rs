// Helpers of the MFA tests (tests/mfa_*.rs include this file with
// `#[path = "common/mfa.rs"] mod mfa;`): an independent RFC 6238 TOTP (not authflow's
// code), an engine over memory stores with a manual clock, and blueprint import.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
#[cfg(feature = "blueprints")]
use authflow::blueprint::Importer;
use authflow::clock::ManualClock;
use authflow::events::MemoryEventSink;
use authflow::memory::{self, MemoryDevices, MemorySessionStore};
use authflow::model::UserId;
use authflow::plan::{SessionId, SessionState};
use authflow::store::{NewUser, SessionStore, StoreError, User, UserAdmin, Versioned};
use authflow::{Engine, defaults};
use hmac::{Hmac, Mac};

/// A fixed start time (a multiple of 30 plus 5 seconds, far from step edges).
pub const T0: u64 = 1_800_000_005;

/// Decodes RFC 4648 base32 (upper case, no padding), independently of authflow.
pub fn base32_decode(s: &str) -> Vec<u8> {
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.chars() {
        let v = match c {
            'A'..='Z' => c as u64 - 'A' as u64,
            '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => panic!("not base32: {c}"),
        };
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// The RFC 6238 TOTP (HMAC-SHA1, 30 s) of `key` at `time`, written from the RFC for the
/// tests (checked against its test vectors below), not authflow's implementation.
pub fn totp(key: &[u8], time: u64, digits: u32) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
    mac.update(&(time / 30).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = (h[19] & 15) as usize;
    let v = (u32::from(h[o]) & 0x7f) << 24
        | u32::from(h[o + 1]) << 16
        | u32::from(h[o + 2]) << 8
        | u32::from(h[o + 3]);
    format!("{:0w$}", v % 10u32.pow(digits), w = digits as usize)
}

/// RFC 6238 appendix B (SHA-1) vectors for [`totp`].
pub fn check_totp_vectors() {
    let key = b"12345678901234567890";
    assert_eq!(totp(key, 59, 8), "94287082");
    assert_eq!(totp(key, 1_111_111_109, 8), "07081804");
    assert_eq!(totp(key, 1_234_567_890, 8), "89005924");
    assert_eq!(totp(key, 20_000_000_000, 8), "65353130");
}

/// A query parameter of a URL (no decoding needed for the values checked here).
pub fn param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
}

/// The secret of an `otpauth://` URL.
pub fn secret_of(config_url: &str) -> Vec<u8> {
    base32_decode(param(config_url, "secret").expect("a secret"))
}

/// A session store that answers `Conflict` to the next `n` saves it is armed for (as
/// a store does when another request wrote first); the engine retries the step.
pub struct ConflictingSessions {
    pub inner: Arc<MemorySessionStore>,
    pub conflicts: Mutex<usize>,
}

#[async_trait]
impl SessionStore for ConflictingSessions {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned<SessionState>>, StoreError> {
        self.inner.load(id).await
    }

    async fn save(
        &self,
        id: &SessionId,
        state: &SessionState,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        {
            let mut left = self.conflicts.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(StoreError::Conflict);
            }
        }
        self.inner.save(id, state, expected).await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.inner.delete(id).await
    }

    async fn delete_user_sessions(
        &self,
        user: UserId,
        keep: &SessionId,
    ) -> Result<usize, StoreError> {
        self.inner.delete_user_sessions(user, keep).await
    }
}

/// Stores, an engine with a manual clock, devices and (feature `python`) the Python
/// expression evaluator, the default flows and the bootstrap admin.
pub struct Mfa {
    pub stores: memory::Stores,
    pub engine: Arc<Engine>,
    pub events: Arc<MemoryEventSink>,
    pub clock: Arc<ManualClock>,
    pub devices: Arc<MemoryDevices>,
    pub sessions: Arc<ConflictingSessions>,
}

impl Mfa {
    pub async fn new() -> Self {
        let stores = memory::Stores::new();
        let events = Arc::new(MemoryEventSink::new());
        let clock = Arc::new(ManualClock::new(T0));
        let devices = Arc::new(MemoryDevices::new());
        let sessions = Arc::new(ConflictingSessions {
            inner: stores.sessions.clone(),
            conflicts: Mutex::new(0),
        });
        let builder = Engine::builder(stores.flows.clone(), sessions.clone(), stores.users.clone())
            .reputation(stores.reputation.clone())
            .events(events.clone())
            .clock(clock.clone())
            .devices(devices.clone());
        #[cfg(feature = "python")]
        let builder = builder.expressions(Arc::new(authflow::python::PythonEvaluator::new()));
        let engine = Arc::new(builder.build());
        defaults::install(stores.flows.as_ref()).await.unwrap();
        Self {
            stores,
            engine,
            events,
            clock,
            devices,
            sessions,
        }
    }

    /// Imports a blueprint from tests/fixtures/blueprints, without `skip_unsupported`.
    #[cfg(feature = "blueprints")]
    pub async fn import(&self, file: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/blueprints")
            .join(file);
        let report = Importer::for_stores(&self.stores)
            .expressions(cfg!(feature = "python"))
            .skip_unsupported(false)
            .apply_file(&path)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(report.skipped.is_empty(), "{file}: {}", report.summary());
        self.engine.clear_cache();
    }

    /// Imports blueprint text, without `skip_unsupported`.
    #[cfg(feature = "blueprints")]
    pub async fn import_str(&self, yaml: &str) {
        Importer::for_stores(&self.stores)
            .expressions(cfg!(feature = "python"))
            .skip_unsupported(false)
            .apply_str("test.yaml", yaml)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.engine.clear_cache();
    }

    pub async fn user(&self, username: &str, password: &str) -> User {
        self.stores
            .users
            .create_user(NewUser::new(username).name(username).password(password))
            .await
            .unwrap()
    }

    /// Arms `n` save conflicts.
    pub fn conflict_next_saves(&self, n: usize) {
        *self.sessions.conflicts.lock().unwrap() = n;
    }
}
