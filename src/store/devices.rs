//! MFA devices: a user's TOTP authenticators, static recovery-code sets and WebAuthn
//! credentials (authentik's `TOTPDevice`, `StaticDevice`, `WebAuthnDevice`).
//!
//! The setup stages add devices (as an [`Effect::AddDevice`](crate::effects::Effect::AddDevice),
//! after the step's save); the validation stage reads them and records each use with
//! [`DeviceStore::record_use`], which is **atomic**: a TOTP time step is accepted once
//! per device, a static code once, a WebAuthn signature counter only forwards. Secrets
//! ([`DeviceSecret`]) are redacted from `Debug`; static codes are stored only as
//! [`token_digest`](crate::hashing::token_digest)s.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::model::{DeviceClass, UserId};

/// A user's MFA device.
#[derive(Clone, Serialize, Deserialize)]
pub struct Device {
    /// Unique, stable id (authentik's `device_uid` in a `DeviceChallenge`).
    pub id: String,
    /// The owner.
    pub user: UserId,
    /// Display name.
    pub name: String,
    /// When it was added, seconds since the epoch.
    pub created: u64,
    /// When it was last used to validate, if ever.
    pub last_used: Option<u64>,
    /// Whether setup completed (authentik keeps unconfirmed TOTP devices; authflow keeps
    /// them in the plan instead, so stored devices are normally confirmed).
    pub confirmed: bool,
    /// The class-specific secret.
    pub secret: DeviceSecret,
}

impl Device {
    /// The device's class.
    pub fn class(&self) -> DeviceClass {
        self.secret.class()
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("name", &self.name)
            .field("class", &self.class())
            .field("created", &self.created)
            .field("last_used", &self.last_used)
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

/// The secret part of a device, by class.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "lowercase")]
pub enum DeviceSecret {
    /// A TOTP authenticator (RFC 6238, HMAC-SHA1).
    Totp {
        /// The shared key (raw bytes, at least 16).
        key: Vec<u8>,
        /// Digits of a code (6 or 8).
        digits: u8,
        /// Seconds per time step (30).
        period: u32,
        /// The last accepted time step: a code of it or earlier is never accepted again.
        last_step: Option<u64>,
    },
    /// A set of single-use recovery codes.
    Static {
        /// [`token_digest`](crate::hashing::token_digest)s of the codes not used yet.
        tokens: Vec<String>,
    },
    /// A WebAuthn credential (passkey or security key).
    Webauthn {
        /// The credential id, base64url without padding (unique across users).
        credential_id: String,
        /// The verifier's serialised credential (public key, algorithm, …).
        credential: serde_json::Value,
        /// The last signature counter seen (0: the authenticator keeps none).
        sign_count: u32,
    },
}

impl DeviceSecret {
    /// The class of device this secret belongs to.
    pub fn class(&self) -> DeviceClass {
        match self {
            DeviceSecret::Totp { .. } => DeviceClass::Totp,
            DeviceSecret::Static { .. } => DeviceClass::Static,
            DeviceSecret::Webauthn { .. } => DeviceClass::Webauthn,
        }
    }
}

impl fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceSecret::{:?}(***)", self.class())
    }
}

/// One use of a device, checked and recorded atomically by [`DeviceStore::record_use`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceUse {
    /// A TOTP code of this time step: accepted only when later than the device's
    /// `last_step`, which it becomes.
    TotpStep(u64),
    /// A static code with this [`token_digest`](crate::hashing::token_digest):
    /// accepted only while unused; it is removed.
    StaticToken(String),
    /// A WebAuthn assertion with this signature counter: accepted when greater than the
    /// stored one, or when both are 0 (authenticators without a counter); stored.
    WebauthnCounter(u32),
}

/// Where MFA devices live ([`crate::memory::MemoryDevices`], or a SQL store's
/// `authflow_devices` table). Set with
/// [`EngineBuilder::devices`](crate::EngineBuilder::devices); stages see it as
/// [`Services::devices`](crate::env::Services::devices).
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// The devices of `user`, oldest first.
    async fn devices(&self, user: &UserId) -> Result<Vec<Device>, StoreError>;
    /// The device with this id, whoever owns it.
    async fn device(&self, id: &str) -> Result<Option<Device>, StoreError>;
    /// The WebAuthn device with this credential id (base64url, no padding), for
    /// passwordless logins where the user comes from the credential.
    async fn webauthn_device(&self, credential_id: &str) -> Result<Option<Device>, StoreError>;
    /// Adds a device. A device id or WebAuthn credential id already stored is refused
    /// with [`StoreError::Validation`] (field `id` or `credential_id`).
    async fn add(&self, device: Device) -> Result<(), StoreError>;
    /// Removes `user`'s device `id`. Returns whether it existed.
    async fn remove(&self, user: &UserId, id: &str) -> Result<bool, StoreError>;
    /// Removes every device of `user` (the user was deleted). Returns how many.
    async fn remove_all(&self, user: &UserId) -> Result<usize, StoreError>;
    /// Checks and records one use of `user`'s device `id` **atomically** (see
    /// [`DeviceUse`]); on success `last_used` becomes `now`. Returns whether the use was
    /// accepted: `false` for a replayed step or code, a counter that did not move
    /// forward, a use of another class than the device's, or a device that does not
    /// exist or is not `user`'s.
    async fn record_use(
        &self,
        user: &UserId,
        id: &str,
        use_: DeviceUse,
        now: u64,
    ) -> Result<bool, StoreError>;
}

/// Applies `use_` to `device` in place (the rule every store implements; stores that
/// hold the whole device call it under their lock or transaction). Returns whether it
/// was accepted.
pub fn apply_use(device: &mut Device, use_: &DeviceUse, now: u64) -> bool {
    let accepted = match (&mut device.secret, use_) {
        (DeviceSecret::Totp { last_step, .. }, DeviceUse::TotpStep(step)) => {
            if last_step.is_some_and(|last| *step <= last) {
                false
            } else {
                *last_step = Some(*step);
                true
            }
        }
        (DeviceSecret::Static { tokens }, DeviceUse::StaticToken(digest)) => {
            let found =
                crate::store::matching_digest_str(digest, tokens.iter().map(String::as_str));
            match found {
                Some(i) => {
                    tokens.remove(i);
                    true
                }
                None => false,
            }
        }
        (DeviceSecret::Webauthn { sign_count, .. }, DeviceUse::WebauthnCounter(count))
            if *count > *sign_count || (*count == 0 && *sign_count == 0) =>
        {
            *sign_count = *count;
            true
        }
        _ => false,
    };
    if accepted {
        device.last_used = Some(now);
    }
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(secret: DeviceSecret) -> Device {
        Device {
            id: "d".into(),
            user: UserId::from("u"),
            name: "n".into(),
            created: 1,
            last_used: None,
            confirmed: true,
            secret,
        }
    }

    #[test]
    fn totp_steps_only_forward() {
        let mut d = device(DeviceSecret::Totp {
            key: vec![1; 20],
            digits: 6,
            period: 30,
            last_step: None,
        });
        assert!(apply_use(&mut d, &DeviceUse::TotpStep(10), 5));
        assert_eq!(d.last_used, Some(5));
        assert!(!apply_use(&mut d, &DeviceUse::TotpStep(10), 6));
        assert!(!apply_use(&mut d, &DeviceUse::TotpStep(9), 6));
        assert!(apply_use(&mut d, &DeviceUse::TotpStep(11), 7));
        assert!(!apply_use(&mut d, &DeviceUse::WebauthnCounter(1), 7));
    }

    #[test]
    fn static_tokens_once_and_counters_forward() {
        let mut d = device(DeviceSecret::Static {
            tokens: vec!["a".into(), "b".into()],
        });
        assert!(apply_use(&mut d, &DeviceUse::StaticToken("b".into()), 1));
        assert!(!apply_use(&mut d, &DeviceUse::StaticToken("b".into()), 1));
        let mut w = device(DeviceSecret::Webauthn {
            credential_id: "c".into(),
            credential: serde_json::Value::Null,
            sign_count: 0,
        });
        assert!(apply_use(&mut w, &DeviceUse::WebauthnCounter(0), 1));
        assert!(apply_use(&mut w, &DeviceUse::WebauthnCounter(3), 1));
        assert!(!apply_use(&mut w, &DeviceUse::WebauthnCounter(3), 1));
        assert!(!apply_use(&mut w, &DeviceUse::WebauthnCounter(0), 1));
    }

    #[test]
    fn debug_hides_secrets() {
        let d = device(DeviceSecret::Totp {
            key: b"supersecretkey!!".to_vec(),
            digits: 6,
            period: 30,
            last_step: None,
        });
        let s = format!("{d:?} {:?}", d.secret);
        assert!(!s.contains("115"), "{s}");
        assert!(!s.contains("supersecret"), "{s}");
    }
}
