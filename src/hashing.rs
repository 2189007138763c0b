//! Password hashing: argon2id for new hashes; verification of argon2 and of Django's
//! `pbkdf2_sha256$…` hashes, so users imported from authentik keep their passwords
//! (they are rehashed to argon2id at their next good login).
//!
//! Hashing is slow by design. The core runs it inline; async hosts with many
//! concurrent logins should run their [`UserDirectory`](crate::store::UserDirectory)
//! verification on a blocking pool (e.g. `tokio::task::spawn_blocking`).

use argon2::Argon2;
use base64::Engine as _;
use password_hash::{
    PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng,
};

use crate::secret::constant_time_eq;

/// Largest PBKDF2 iteration count accepted from a stored hash (imported data must
/// not be able to stall the server).
pub const MAX_PBKDF2_ITERATIONS: u32 = 5_000_000;

/// Hashes and verifies passwords.
pub trait PasswordHasher: Send + Sync {
    /// A new hash of `password`.
    fn hash(&self, password: &str) -> Result<String, String>;
    /// Whether `password` matches `hash`. Malformed hashes never match.
    fn verify(&self, hash: &str, password: &str) -> bool;
    /// Whether `hash` should be replaced by a new [`hash`](Self::hash) after a good login.
    fn needs_rehash(&self, hash: &str) -> bool;
}

/// argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes) for new hashes; also
/// verifies argon2i/argon2d and Django `pbkdf2_sha256$iterations$salt$hash`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Argon2idHasher;

impl PasswordHasher for Argon2idHasher {
    fn hash(&self, password: &str) -> Result<String, String> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    }

    fn verify(&self, hash: &str, password: &str) -> bool {
        if hash.starts_with("pbkdf2_sha256$") {
            return verify_django_pbkdf2(hash, password);
        }
        match PasswordHash::new(hash) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
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

/// **Danger: not for production.** A salted single SHA-256, fast enough for
/// benchmarks and tests that measure the engine rather than the password hash.
#[cfg(feature = "danger-fast-hasher")]
#[derive(Debug, Default, Clone, Copy)]
pub struct DangerFastHasher;

#[cfg(feature = "danger-fast-hasher")]
impl PasswordHasher for DangerFastHasher {
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
