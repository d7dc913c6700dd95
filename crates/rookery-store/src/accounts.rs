//! rookery-store, accounts: the [`AccountStore`] trait (accounts and their SCRAM credentials).
//!
//! Called by the SASL/registration code in rookery-mods and by the admin CLI through
//! [`crate::Stores::accounts`]; implemented by `sqlite/accounts.rs` and checked by
//! `contract/accounts.rs`. The conventions every store trait follows are in the crate
//! documentation (`lib.rs`).

use async_trait::async_trait;
use rookery_proto::sasl::Credentials;

use crate::StoreError;

/// Accounts and their SCRAM credentials.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an account; [`StoreError::Conflict`] if it already exists.
    async fn create(&self, user: &str, domain: &str, creds: &Credentials)
    -> Result<(), StoreError>;

    /// The stored credentials, or `None` if there is no such account.
    async fn credentials(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<Option<Credentials>, StoreError>;

    /// Replaces the credentials (password change); [`StoreError::NotFound`] if no account.
    async fn set_credentials(
        &self,
        user: &str,
        domain: &str,
        creds: &Credentials,
    ) -> Result<(), StoreError>;

    /// Whether the account exists.
    async fn exists(&self, user: &str, domain: &str) -> Result<bool, StoreError>;

    /// Deletes the account and all of its data (roster, pending subscriptions, offline
    /// messages, key/value documents, blocklist) atomically; [`StoreError::NotFound`] if no
    /// account.
    async fn delete(&self, user: &str, domain: &str) -> Result<(), StoreError>;

    /// All accounts as `(user, domain)`, optionally only those of one domain, sorted.
    async fn list(&self, domain: Option<&str>) -> Result<Vec<(String, String)>, StoreError>;
}
