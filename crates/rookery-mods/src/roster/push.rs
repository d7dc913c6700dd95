//! Roster pushes (RFC 6121 §2.1.6): after every change to an account's roster, the server sends
//! an iq set carrying the changed item and the new XEP-0237 version to each of the account's
//! *interested* resources (those that requested the roster). Called by the roster module (sets,
//! removals, version deltas) and the presence module (subscription changes). Pushes go straight
//! to the local sessions' mailboxes; the clients' results come back as iq results addressed to
//! the account and are dropped by core.

use super::item::change_element;
use rookery_core::{Server, SessionRef};
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, Jid, Stanza};
use rookery_store::RosterChange;
use rookery_xml::Element;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_PUSH: AtomicU64 = AtomicU64::new(1);

/// The push iq for one change, addressed to `to`. No `from`: §2.1.6 lets the server omit it,
/// and a client accepts a push only without `from` or from its own bare JID.
pub(crate) fn push_stanza(to: &Jid, change: &RosterChange) -> Option<Stanza> {
    let id = format!("roster-push-{}", NEXT_PUSH.fetch_add(1, Ordering::Relaxed));
    let query = Element::new("query", ns::ROSTER)
        .with_attr("ver", change.version().to_string())
        .child(change_element(change));
    let el = Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", id)
        .with_attr("to", to.as_str())
        .child(query);
    match Stanza::new(el) {
        Ok(st) => Some(st),
        Err(e) => {
            // Only a `to` the jid crate rejects could fail, and `to` came from a parsed JID.
            tracing::error!(error = ?e, what = "roster-push", "could not build push");
            None
        }
    }
}

/// Sends one push to a single session (XEP-0237 deltas go only to the requester).
pub(crate) fn push_to(server: &Server, session: &SessionRef, change: &RosterChange) {
    if let Some(st) = push_stanza(&Jid::from(session.jid().clone()), change) {
        // A full or closed mailbox is the session's problem (it is being closed); the change
        // is stored and the client gets it with its next roster get.
        let _ = server.sessions().send(session, st);
    }
}

/// Pushes a change to every interested resource of `account` (RFC 6121 §2.1.6).
pub(crate) fn push(server: &Server, account: &BareJid, change: &RosterChange) {
    for r in server.sessions().resources(account) {
        if r.interested {
            push_to(server, &r.session, change);
        }
    }
}
