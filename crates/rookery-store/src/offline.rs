//! rookery-store, offline messages: the [`OfflineStore`] trait (XEP-0160).
//!
//! Called by the offline-message module in rookery-mods through [`crate::Stores::offline`];
//! implemented by `sqlite/offline.rs` and checked by `contract/offline.rs`. The conventions
//! every store trait follows are in the crate documentation (`lib.rs`).

use async_trait::async_trait;

use crate::StoreError;

/// XEP-0160 offline message storage.
#[async_trait]
pub trait OfflineStore: Send + Sync {
    /// Stores a message (serialized XML) received at `stamp_unix_ms`. [`StoreError::Limit`]
    /// if the account already holds `limit` messages (so `limit == 0` refuses everything).
    async fn push(
        &self,
        user: &str,
        domain: &str,
        stanza_xml: &str,
        stamp_unix_ms: i64,
        limit: usize,
    ) -> Result<(), StoreError>;

    /// All stored messages as `(stanza_xml, stamp_unix_ms)` in arrival order, deleting them
    /// in the same transaction (a message is handed out exactly once).
    async fn take_all(&self, user: &str, domain: &str) -> Result<Vec<(String, i64)>, StoreError>;

    /// How many messages are stored.
    async fn count(&self, user: &str, domain: &str) -> Result<usize, StoreError>;
}
