//! [`PasswordBackend`]: a host's check for the password stage's LDAP or Kerberos
//! backend (authentik's `authentik.sources.ldap.auth.LDAPBackend`,
//! `authentik.sources.kerberos.auth.KerberosBackend`), registered with
//! [`EngineBuilder::password_backend`](crate::EngineBuilder::password_backend).

use async_trait::async_trait;

use super::StoreError;
use crate::model::UserId;
use crate::secret::Password;

/// Checks a password against an outside source for the pending user (`None` for an
/// unknown identifier: do the same work and answer `false`, so timing does not tell).
/// A backend name listed by a password stage without a registered hook never matches,
/// as in authentik when no such source is configured.
#[async_trait]
pub trait PasswordBackend: Send + Sync {
    /// Whether `password` is the user's password in this source.
    async fn verify(&self, user: Option<&UserId>, password: &Password) -> Result<bool, StoreError>;
}
