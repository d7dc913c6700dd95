//! The bridge between stored rosters and the RFC 6121 subscription state machine
//! (`rookery_proto::subscription`). Where it sits: the presence module (subscription stanzas in
//! either direction) and the roster module (`subscription='remove'`) load a contact's
//! [`SubState`] here, run the machine, and hand the [`Outcome`] back to [`save`], which writes
//! the roster item and returns the change to push. The stored inbound request itself (the full
//! stanza, RFC 6121 §3.1.3) is written by the caller, who holds the stanza.

use crate::util::parts;
use rookery_core::Server;
use rookery_proto::stanza::BareJid;
use rookery_proto::subscription::{Outcome, SubState};
use rookery_store::{RosterChange, RosterItem, StoreError};

/// One contact as stored: the roster item (if any) and the state derived from it.
#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub item: Option<RosterItem>,
    pub state: SubState,
}

/// The state of `contact` (a normalised bare JID string) in `account`'s roster. The pending
/// inbound request lives outside the roster (A.1: "None + Pending In" has no item), so it is a
/// second lookup.
pub(crate) async fn load(
    server: &Server,
    account: &BareJid,
    contact: &str,
) -> Result<Contact, StoreError> {
    let (user, domain) = parts(account);
    let roster = &server.stores().roster;
    let item = roster.get(user, domain, contact).await?;
    let pending_in = roster.has_pending_in(user, domain, contact).await?;
    let state = match &item {
        Some(it) => SubState {
            sub: it.subscription,
            pending_out: it.ask_out,
            pending_in,
            preapproved: it.approved,
            in_roster: true,
        },
        None => SubState {
            pending_in,
            ..SubState::NOT_IN_ROSTER
        },
    };
    Ok(Contact { item, state })
}

/// Writes the roster side of `outcome` (the item's `subscription`, `ask`, `approved`; name and
/// groups are the user's and stay as they were). Returns the change to push to interested
/// resources (RFC 6121 §2.1.6), or `None` when the stored item did not change.
pub(crate) async fn save(
    server: &Server,
    account: &BareJid,
    contact: &str,
    before: &Contact,
    outcome: &Outcome,
) -> Result<Option<RosterChange>, StoreError> {
    let (user, domain) = parts(account);
    let roster = &server.stores().roster;
    let new = outcome.new_state;
    if !new.in_roster {
        // The machine never deletes items (only a roster remove does, §2.5), but if a stored
        // item no longer belongs in the roster, removing it keeps store and state in step.
        if before.item.is_none() {
            return Ok(None);
        }
        let removed = roster.remove(user, domain, contact).await?;
        return Ok(removed.map(|version| RosterChange::Removed {
            version,
            jid: contact.to_owned(),
        }));
    }
    let mut item = before.item.clone().unwrap_or_else(|| RosterItem {
        jid: contact.to_owned(),
        ..RosterItem::default()
    });
    item.subscription = new.sub;
    item.ask_out = new.pending_out;
    item.approved = new.preapproved;
    if before.item.as_ref() == Some(&item) {
        return Ok(None);
    }
    let version = roster.put(user, domain, &item).await?;
    Ok(Some(RosterChange::Updated { version, item }))
}
