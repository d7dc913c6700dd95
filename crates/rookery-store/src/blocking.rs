//! rookery-store, blocklists: the [`BlockStore`] trait (XEP-0191).
//!
//! Called by the blocking-command module in rookery-mods through [`crate::Stores::blocking`]
//! (also on the stanza routing path); implemented by `sqlite/blocking.rs` and checked by
//! `contract/blocking.rs`. The conventions every store trait follows are in the crate
//! documentation (`lib.rs`).

use async_trait::async_trait;

use crate::StoreError;

/// XEP-0191 blocklists: sets of JID strings (full, bare or domain form, as given).
#[async_trait]
pub trait BlockStore: Send + Sync {
    /// The blocklist, sorted.
    async fn list(&self, user: &str, domain: &str) -> Result<Vec<String>, StoreError>;

    /// Adds JIDs; ones already present are ignored.
    async fn add(&self, user: &str, domain: &str, jids: &[String]) -> Result<(), StoreError>;

    /// Removes JIDs; ones not present are ignored.
    async fn remove(&self, user: &str, domain: &str, jids: &[String]) -> Result<(), StoreError>;

    /// Empties the blocklist.
    async fn clear(&self, user: &str, domain: &str) -> Result<(), StoreError>;

    /// Exact string match; the caller checks the full, bare and domain forms it cares about.
    async fn is_blocked(&self, user: &str, domain: &str, jid: &str) -> Result<bool, StoreError>;
}
