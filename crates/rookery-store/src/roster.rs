//! rookery-store, rosters: the [`RosterStore`] trait (RFC 6121 rosters with XEP-0237 versions
//! and pending inbound subscription requests) and the data it carries.
//!
//! Called by the roster and presence modules in rookery-mods through
//! [`crate::Stores::roster`]; implemented by `sqlite/roster.rs` and checked by
//! `contract/roster.rs`. The conventions every store trait follows are in the crate
//! documentation (`lib.rs`).
//!
//! The item's subscription is the RFC 6121 state machine's own [`Subscription`] type
//! (`rookery_proto::subscription`), stored as its attribute value (`none`, `to`, `from`,
//! `both`), so stored rosters and the machine never need converting.

use async_trait::async_trait;
use rookery_proto::subscription::Subscription;

use crate::StoreError;

/// Tombstones kept per account, by every backend. A client whose cached version predates
/// the oldest kept one gets the full roster instead of a delta, which is always correct,
/// just bigger.
pub(crate) const MAX_TOMBSTONES: i64 = 1000;

/// One roster entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterItem {
    /// Normalised bare JID of the contact.
    pub jid: String,
    pub name: Option<String>,
    /// The `subscription` attribute (RFC 6121 §2.1.2.5).
    pub subscription: Subscription,
    /// A subscribe request to the contact is pending (shown as `ask='subscribe'`).
    pub ask_out: bool,
    /// The contact's subscription is pre-approved (RFC 6121 §3.4).
    pub approved: bool,
    /// Groups are a set: the store returns them deduplicated and sorted.
    pub groups: Vec<String>,
}

/// One entry of a XEP-0237 roster delta. Each carries the roster version at which it
/// happened so the caller can send interim pushes with correct `ver` attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterChange {
    /// The item was added or changed; it is given in its current state.
    Updated { version: u64, item: RosterItem },
    /// The item with this JID was removed.
    Removed { version: u64, jid: String },
}

impl RosterChange {
    /// The roster version at which this change happened.
    pub fn version(&self) -> u64 {
        match self {
            RosterChange::Updated { version, .. } | RosterChange::Removed { version, .. } => {
                *version
            }
        }
    }

    /// The contact JID the change is about.
    pub fn jid(&self) -> &str {
        match self {
            RosterChange::Updated { item, .. } => &item.jid,
            RosterChange::Removed { jid, .. } => jid,
        }
    }
}

/// Rosters (RFC 6121) with XEP-0237 versioning, plus pending inbound subscription requests.
///
/// Each account has a version number starting at 0 that increases by one on every roster
/// change (`put` or a successful `remove`); each item remembers the version at which it last
/// changed, and removals leave a tombstone so deltas can report them. Old tombstones may be
/// pruned, after which deltas from before the pruned versions are no longer answerable.
#[async_trait]
pub trait RosterStore: Send + Sync {
    /// The current roster version and all items, sorted by JID.
    async fn get_all(&self, user: &str, domain: &str)
    -> Result<(u64, Vec<RosterItem>), StoreError>;

    /// The current version and every change after `version`, oldest first. `None` when
    /// `version` cannot be answered (newer than the current one, or older than the pruned
    /// history): the caller then sends the full roster. `Some((v, []))` when up to date.
    async fn changes_since(
        &self,
        user: &str,
        domain: &str,
        version: u64,
    ) -> Result<Option<(u64, Vec<RosterChange>)>, StoreError>;

    /// One item, or `None` if the contact is not in the roster.
    async fn get(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
    ) -> Result<Option<RosterItem>, StoreError>;

    /// Inserts or replaces the item (keyed by `item.jid`) and returns the new roster version.
    /// Always bumps the version, even if nothing changed.
    async fn put(&self, user: &str, domain: &str, item: &RosterItem) -> Result<u64, StoreError>;

    /// Removes the item and returns the new roster version, or `None` (no version bump) if
    /// the contact was not in the roster.
    async fn remove(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
    ) -> Result<Option<u64>, StoreError>;

    /// Records an inbound subscription request (the full stanza as serialized XML, RFC 6121
    /// §3.1.3) so it can be redelivered on every login until answered. Replaces an earlier
    /// request from the same contact, keeping its place in the redelivery order.
    async fn put_pending_in(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
        stanza_xml: &str,
    ) -> Result<(), StoreError>;

    /// Forgets the pending request from `contact`; `false` if there was none.
    async fn remove_pending_in(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
    ) -> Result<bool, StoreError>;

    /// All pending requests as `(contact, stanza_xml)`, in the order they first arrived.
    async fn pending_in(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Whether a request from `contact` is pending.
    async fn has_pending_in(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
    ) -> Result<bool, StoreError>;
}
