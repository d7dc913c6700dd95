//! rookery-store, per-account documents: the [`KvStore`] trait.
//!
//! Called by the vcard-temp, private XML storage and last activity modules in rookery-mods
//! through [`crate::Stores::kv`]; implemented by `sqlite/kv.rs` and checked by
//! `contract/kv.rs`. The conventions every store trait follows are in the crate
//! documentation (`lib.rs`).

use async_trait::async_trait;

use crate::StoreError;

/// Small per-account documents addressed by `(store, key)`: vcard-temp (XEP-0054), private
/// XML storage (XEP-0049, key = `"{ns}name"`), last activity (XEP-0012), ...
#[async_trait]
pub trait KvStore: Send + Sync {
    async fn get(
        &self,
        user: &str,
        domain: &str,
        store: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Inserts or replaces.
    async fn put(
        &self,
        user: &str,
        domain: &str,
        store: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError>;

    /// Deletes; succeeds if the key was already absent.
    async fn delete(
        &self,
        user: &str,
        domain: &str,
        store: &str,
        key: &str,
    ) -> Result<(), StoreError>;
}
