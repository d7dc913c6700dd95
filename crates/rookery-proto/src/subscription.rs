//! RFC 6121 presence-subscription state machine, sans-IO.
//!
//! Where it sits: rookery-mods' presence/roster module handles every presence stanza of type
//! `subscribe`, `subscribed`, `unsubscribe` or `unsubscribed`. For the (user, contact) pair it
//! loads a [`SubState`] from storage (the roster item, if any, plus whether a pending inbound
//! request is stored), calls [`outbound`] (the user sent the stanza) or [`inbound`] (the stanza
//! came from the contact for the user), and then carries out the returned [`Outcome`]:
//!
//! 1. `state_changed`: store `new_state` (roster item and pending-request record).
//! 2. `keep_pending_stanza` / `drop_pending_stanza`: store the *complete* inbound `subscribe`
//!    stanza as received (RFC 6121 §3.1.3 requires the full stanza, extended content included)
//!    or delete the stored one.
//! 3. `roster_push`: push the item to the user's interested resources (RFC 6121 §2.1.6).
//! 4. `send_presence` with `SendUnavailable`: send it *before* routing the stanza (§3.2.2:
//!    "while the user is still subscribed").
//! 5. `forward`: route the stanza to the contact (outbound, stamped with the user's bare JID
//!    per §3) or deliver it to the user (inbound, to [`SubKind::inbound_recipients`]).
//! 6. `auto_reply`: send that presence type from the user's bare JID to the contact's bare JID
//!    on the user's behalf.
//! 7. `send_presence` with `SendCurrentPresence`: after the approval went out (§3.1.5).
//!
//! Nothing here does I/O, looks at JIDs or keeps a clock; blocking (XEP-0191) and privacy
//! checks happen in the caller before these functions are reached.
//!
//! The transition tables are RFC 6121 Appendix A: A.2.1–A.2.4 (the user's server processing
//! *outbound* subscribe / unsubscribe / subscribed / unsubscribed) live in `outbound.rs`, and
//! A.3.1–A.3.4 (processing *inbound* ones) in `inbound.rs`, each row carrying a comment. The
//! prose of §3.1–§3.4 adds what the tables leave out: roster pushes, presence effects, the
//! stored request, and pre-approval (§3.4), which this server supports (it advertises
//! `urn:xmpp:features:pre-approval`).

mod inbound;
mod outbound;
mod outcome;
mod state;

#[cfg(test)]
mod tests_props;
#[cfg(test)]
mod tests_rules;
#[cfg(test)]
mod tests_tables;

pub use inbound::inbound;
pub use outbound::outbound;
pub use outcome::{Outcome, PresenceEffect, Recipients};
pub use state::{DefinedState, ParseSubError, SubKind, SubState, Subscription};
