//! Session ids the engine mints and later recognises (an HMAC tag under its key).

use crate::plan::SessionId;
use crate::random::Random;

/// Mints session ids that this engine can recognise later: 128 bits that nobody
/// without the key can predict, and a 128-bit HMAC-SHA256 tag over them (64 hex
/// characters, like before). A new anonymous session whose state is reproducible from
/// the request is not stored (see [`Engine::plan`](crate::Engine::plan)); its id is still handed out, and
/// because only ids with a valid tag are adopted when the store does not know them, a
/// client can never pick its own id (the fixation defence of "unknown ids are never
/// adopted" holds: the only adoptable ids are ones an engine with this key issued,
/// exactly as for stored sessions).
///
/// The unpredictable half is HMAC-SHA256(key, nonce ‖ counter) — a keyed PRF over a
/// counter, with a 128-bit nonce from the OS per engine so that instances sharing a
/// key never issue the same id — instead of a `getrandom` system call per id (the
/// syscall and hex formatting were a third of a cookie-less GET).
pub(crate) struct SessionIds {
    mac: hmac::Hmac<sha2::Sha256>,
    nonce: [u8; 16],
    counter: std::sync::atomic::AtomicU64,
}

fn hex_digit(n: u8) -> char {
    char::from(if n < 10 { b'0' + n } else { b'a' + (n - 10) })
}

fn hex_into(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b & 0x0f));
    }
}

impl SessionIds {
    /// Ids under `key` (a random one when `None` or empty), with the nonce and the
    /// random key drawn from `random`.
    pub(crate) fn new(key: Option<Vec<u8>>, random: &dyn Random) -> Self {
        use hmac::Mac;
        let random_key = || {
            let mut k = vec![0u8; 32];
            random.fill(&mut k);
            k
        };
        let key = key.filter(|k| !k.is_empty()).unwrap_or_else(random_key);
        // HMAC accepts keys of any length; the fallback never runs.
        let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
            .unwrap_or_else(|_| hmac::Hmac::<sha2::Sha256>::new(&Default::default()));
        let mut nonce = [0u8; 16];
        random.fill(&mut nonce);
        Self {
            mac,
            nonce,
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn tag(&self, random: &str) -> [u8; 16] {
        use hmac::Mac;
        let mut mac = self.mac.clone();
        mac.update(b"authflow-session-id:tag:");
        mac.update(random.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        for (o, b) in out.iter_mut().zip(full.iter()) {
            *o = *b;
        }
        out
    }

    pub(crate) fn mint(&self) -> SessionId {
        use hmac::Mac;
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut mac = self.mac.clone();
        mac.update(b"authflow-session-id:random:");
        mac.update(&self.nonce);
        mac.update(&n.to_le_bytes());
        let random = mac.finalize().into_bytes();
        let mut id = String::with_capacity(64);
        hex_into(&mut id, random.get(..16).unwrap_or_default());
        let tag = self.tag(&id);
        hex_into(&mut id, &tag);
        SessionId::parse(&id).unwrap_or_else(SessionId::generate)
    }

    pub(crate) fn minted(&self, id: &SessionId) -> bool {
        let s = id.as_str();
        match (s.get(..32), s.get(32..)) {
            (Some(random), Some(tag)) if tag.len() == 32 => {
                let mut want = String::with_capacity(32);
                hex_into(&mut want, &self.tag(random));
                crate::secret::constant_time_eq(&want, tag)
            }
            _ => false,
        }
    }
}
