//! Randomness comes in through a trait, like the [clock](crate::clock): request ids,
//! session ids, fresh user ids and confirmation tokens are all drawn from the engine's
//! [`Random`] ([`EngineBuilder::random`](crate::EngineBuilder::random)), so tests can
//! fix them and hosts can supply their own source.

use uuid::Uuid;

/// A source of random bytes. Everything the engine draws from it is a bearer secret
/// or an identifier that must not collide (session ids, tokens): implementations must
/// be cryptographically secure outside tests.
pub trait Random: Send + Sync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);

    /// A random (version 4) UUID.
    fn uuid(&self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// A random token: a v4 UUID as 32 lower-case hex characters (122 random bits),
    /// the format of request ids and confirmation tokens.
    fn token(&self) -> String {
        self.uuid().simple().to_string()
    }
}

/// The operating system's random number generator (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        use password_hash::rand_core::RngCore;
        password_hash::rand_core::OsRng.fill_bytes(buf);
    }
}

/// A deterministic generator for tests (SplitMix64 from a seed). **Not secure**:
/// never use it to serve real users.
#[derive(Debug)]
pub struct SeededRandom(std::sync::atomic::AtomicU64);

impl SeededRandom {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(std::sync::atomic::AtomicU64::new(seed))
    }
}

impl Random for SeededRandom {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mut z = self
                .0
                .fetch_add(0x9e37_79b9_7f4a_7c15, std::sync::atomic::Ordering::Relaxed)
                .wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            for (b, v) in chunk.iter_mut().zip(z.to_le_bytes()) {
                *b = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let r = OsRandom;
        let (a, b) = (r.token(), r.token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(r.uuid().get_version_num(), 4);
        let s = SeededRandom::new(7);
        let t = SeededRandom::new(7);
        assert_eq!(s.token(), t.token());
        assert_ne!(s.token(), s.token());
    }
}
