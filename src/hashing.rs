//! Password hashing: argon2id for new hashes; verification of argon2 and of Django's
//! `pbkdf2_sha256$…` hashes, so users imported from authentik keep their passwords
//! (they are rehashed to argon2id at their next good login).
//!
//! Hashing is slow by design. The core runs it inline; async hosts with many
//! concurrent logins should run their [`UserDirectory`](crate::store::UserDirectory)
//! verification on a blocking pool (e.g. `tokio::task::spawn_blocking`).

use argon2::Argon2;
use base64::Engine as _;
use password_hash::{PasswordHash, SaltString, rand_core::OsRng};

use crate::secret::constant_time_eq;

/// Largest PBKDF2 iteration count accepted from a stored hash (imported data must
/// not be able to stall the server).
pub const MAX_PBKDF2_ITERATIONS: u32 = 5_000_000;

/// Hashes and verifies passwords.
pub trait PasswordHashing: Send + Sync {
    /// A new hash of `password`.
    fn hash(&self, password: &str) -> Result<String, String>;
    /// Whether `password` matches `hash`. Malformed hashes never match.
    fn verify(&self, hash: &str, password: &str) -> bool;
    /// Whether `hash` should be replaced by a new [`hash`](Self::hash) after a good login.
    fn needs_rehash(&self, hash: &str) -> bool;
}

/// Does the work of one password check and answers `false`: call it from
/// [`UserDirectory::verify_password`](crate::store::UserDirectory::verify_password)
/// when there is no such user (or no usable hash), so timing does not reveal whether a
/// user exists. It hashes `password` once with `hasher` (the same cost as verifying
/// against a hash of that hasher's parameters).
pub fn verify_dummy(hasher: &dyn PasswordHashing, password: &str) -> bool {
    let _ = hasher.hash(password);
    false
}

/// argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes) for new hashes; also
/// verifies argon2i/argon2d and Django `pbkdf2_sha256$iterations$salt$hash`.
///
/// Each thread keeps one argon2 work area (the memory cost, 19 MiB by default) and
/// reuses it for every hash, instead of allocating and freeing 19 MiB per login: the
/// allocator otherwise keeps those freed blocks in per-thread arenas, so a burst of
/// logins left hundreds of MiB resident. With a bounded pool of hashing threads
/// ([`EngineBuilder::blocking`](crate::EngineBuilder::blocking)) memory stays at
/// about threads × memory cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Argon2idHasher;

/// Largest argon2 memory cost (KiB) accepted from a stored hash (256 MiB): imported
/// data must not be able to exhaust memory.
pub const MAX_ARGON2_M_COST: u32 = 256 * 1024;
/// Work areas up to this many 1 KiB blocks (64 MiB) are kept per thread for reuse;
/// larger ones (unusual imported hashes) are freed after use.
const KEPT_BLOCKS: usize = 64 * 1024;

thread_local! {
    static WORK_AREA: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Raw argon2 output into `out`, in this thread's reused work area.
fn argon2_into(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> bool {
    let need = argon.params().block_count();
    if need > KEPT_BLOCKS {
        let mut blocks = vec![argon2::Block::default(); need];
        return argon
            .hash_password_into_with_memory(password, salt, out, &mut blocks)
            .is_ok();
    }
    WORK_AREA.with(|area| {
        let Ok(mut area) = area.try_borrow_mut() else {
            return false;
        };
        if area.len() < need {
            area.resize(need, argon2::Block::default());
        }
        match area.get_mut(..need) {
            Some(blocks) => argon
                .hash_password_into_with_memory(password, salt, out, blocks)
                .is_ok(),
            None => false,
        }
    })
}

impl PasswordHashing for Argon2idHasher {
    fn hash(&self, password: &str) -> Result<String, String> {
        let salt = SaltString::generate(&mut OsRng);
        let params = argon2::Params::default();
        let argon = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params.clone(),
        );
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt
            .as_salt()
            .decode_b64(&mut salt_buf)
            .map_err(|e| e.to_string())?;
        let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
        if !argon2_into(&argon, password.as_bytes(), salt_bytes, &mut out) {
            return Err("argon2 failed".into());
        }
        let phc = PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: password_hash::ParamsString::try_from(&params).map_err(|e| e.to_string())?,
            salt: Some(salt.as_salt()),
            hash: Some(password_hash::Output::new(&out).map_err(|e| e.to_string())?),
        };
        Ok(phc.to_string())
    }

    fn verify(&self, hash: &str, password: &str) -> bool {
        if hash.starts_with("pbkdf2_sha256$") {
            return verify_django_pbkdf2(hash, password);
        }
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm) else {
            return false;
        };
        let version = match parsed.version.map(argon2::Version::try_from) {
            None => argon2::Version::default(),
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        let Ok(params) = argon2::Params::try_from(&parsed) else {
            return false;
        };
        if params.m_cost() > MAX_ARGON2_M_COST {
            return false;
        }
        let mut salt_buf = [0u8; 64];
        let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let mut out = vec![0u8; expected.len()];
        let argon = Argon2::new(algorithm, version, params);
        argon2_into(&argon, password.as_bytes(), salt_bytes, &mut out)
            && bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), &out[..]))
    }

    fn needs_rehash(&self, hash: &str) -> bool {
        !hash.starts_with("$argon2id$")
    }
}

/// Verifies a Django `pbkdf2_sha256$<iterations>$<salt>$<base64 sha256>` hash.
pub fn verify_django_pbkdf2(hash: &str, password: &str) -> bool {
    let mut parts = hash.split('$');
    let (Some("pbkdf2_sha256"), Some(iterations), Some(salt), Some(expected), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
        return false;
    }
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
    let computed = base64::engine::general_purpose::STANDARD.encode(out);
    constant_time_eq(&computed, expected)
}

/// Makes a Django-format hash (for tests and for exporting to authentik).
pub fn django_pbkdf2_hash(password: &str, salt: &str, iterations: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
    format!(
        "pbkdf2_sha256${iterations}${salt}${}",
        base64::engine::general_purpose::STANDARD.encode(out)
    )
}

/// The stored form of a high-entropy machine key (an app password,
/// [`crate::store::AppPasswords`]): `sha256$` and the lower-case hex SHA-256 of `key`.
///
/// A single unsalted SHA-256 is enough here, unlike for passwords: the keys are 256
/// random bits drawn by the store, so no dictionary or brute-force search can invert
/// the digest, and a salt protects nothing (no two keys collide). It is also cheap,
/// so checking every key of a user costs no argon2 run per key (which would make
/// each login attempt as slow as the user has app passwords).
pub fn token_digest(key: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256$");
    for b in d {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// **Danger: not for production.** A salted single SHA-256, fast enough for
/// benchmarks and tests that measure the engine rather than the password hash.
#[cfg(feature = "danger-fast-hasher")]
#[derive(Debug, Default, Clone, Copy)]
pub struct DangerFastHasher;

#[cfg(feature = "danger-fast-hasher")]
impl PasswordHashing for DangerFastHasher {
    fn hash(&self, password: &str) -> Result<String, String> {
        let salt = uuid::Uuid::new_v4().simple().to_string();
        Ok(format!("fast${salt}${}", fast_digest(&salt, password)))
    }

    fn verify(&self, hash: &str, password: &str) -> bool {
        match hash.split('$').collect::<Vec<_>>().as_slice() {
            ["fast", salt, digest] => constant_time_eq(&fast_digest(salt, password), digest),
            _ => Argon2idHasher.verify(hash, password),
        }
    }

    fn needs_rehash(&self, _hash: &str) -> bool {
        false
    }
}

#[cfg(feature = "danger-fast-hasher")]
fn fast_digest(salt: &str, password: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::new()
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_roundtrip() {
        let h = Argon2idHasher.hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(Argon2idHasher.verify(&h, "correct horse"));
        assert!(!Argon2idHasher.verify(&h, "wrong"));
        assert!(!Argon2idHasher.needs_rehash(&h));
    }

    #[test]
    fn argon2_matches_the_argon2_crate_both_ways() {
        use password_hash::{PasswordHasher as _, PasswordVerifier as _};
        // A hash made by the argon2 crate itself verifies here, and ours verifies there.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(Argon2idHasher.verify(&theirs, "pw"));
        assert!(!Argon2idHasher.verify(&theirs, "px"));
        let ours = Argon2idHasher.hash("pw").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
        // argon2i with other parameters, and a memory cost over the cap.
        let p = argon2::Params::new(4096, 3, 1, None).unwrap();
        let i = Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x13, p)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(Argon2idHasher.verify(&i, "pw"));
        assert!(Argon2idHasher.needs_rehash(&i));
        let huge = ours.replace("m=19456", "m=4000000");
        assert!(!Argon2idHasher.verify(&huge, "pw"));
    }

    #[test]
    fn django_pbkdf2() {
        // A hash Django produced for "password" (salt "seasalt", 260000 iterations) has
        // this shape; we make one the same way and check both directions.
        let h = django_pbkdf2_hash("hunter2", "seasalt", 1000);
        assert!(verify_django_pbkdf2(&h, "hunter2"));
        assert!(!verify_django_pbkdf2(&h, "hunter3"));
        assert!(Argon2idHasher.verify(&h, "hunter2"));
        assert!(Argon2idHasher.needs_rehash(&h));
        assert!(!verify_django_pbkdf2("pbkdf2_sha256$0$x$y", "a"));
        assert!(!verify_django_pbkdf2("pbkdf2_sha256$99999999999$x$y", "a"));
        assert!(!verify_django_pbkdf2("garbage", "a"));
    }

    #[test]
    fn django_known_vector() {
        // PBKDF2-HMAC-SHA256("password", "salt", 1) from RFC 7914 §11 / common test vectors:
        // 120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b
        let expected = base64::engine::general_purpose::STANDARD.encode([
            0x12, 0x0f, 0xb6, 0xcf, 0xfc, 0xf8, 0xb3, 0x2c, 0x43, 0xe7, 0x22, 0x52, 0x56, 0xc4,
            0xf8, 0x37, 0xa8, 0x65, 0x48, 0xc9, 0x2c, 0xcc, 0x35, 0x48, 0x08, 0x05, 0x98, 0x7c,
            0xb7, 0x0b, 0xe1, 0x7b,
        ]);
        assert!(verify_django_pbkdf2(
            &format!("pbkdf2_sha256$1$salt${expected}"),
            "password"
        ));
    }
}
