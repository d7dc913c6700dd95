//! What processing one subscription stanza asks the caller (rookery-mods' presence/roster
//! module) to do: the [`Outcome`] of [`super::outbound`] / [`super::inbound`].
//!
//! The transition code only decides the new state and the stanza-level effects; whether the
//! state must be stored and whether a roster push is due are derived here from the before and
//! after states, so no table row can forget them.

use super::state::{SubKind, SubState, Subscription};

/// The result of processing one subscription stanza. See the module docs of
/// [`crate::subscription`] for the order in which the caller applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The state after the stanza, always normalised.
    pub new_state: SubState,
    /// `new_state` differs from the state passed in (compared field by field, so a stored
    /// state that merely needed normalising is reported too): store it.
    pub state_changed: bool,
    /// What a roster item shows (existence, `subscription`, `ask`, `approved`) changed and an
    /// item exists afterwards: push it to the user's interested resources (RFC 6121 §2.1.6,
    /// and the "roster push" steps of §3.1.2, §3.1.5, §3.1.6, §3.2.2, §3.2.3, §3.3.2, §3.3.3,
    /// §3.4.2). A change of `pending_in` alone shows nowhere in the roster, so it pushes
    /// nothing.
    pub roster_push: bool,
    /// Outbound: route the stanza to the contact. Inbound: deliver it to the user, to the
    /// resources named by [`SubKind::inbound_recipients`]. `false` wherever the RFC says the
    /// server MUST NOT or SHOULD NOT route/deliver.
    pub forward: bool,
    /// The server answers the contact with this type on the user's behalf, from the user's
    /// bare JID (only ever `Subscribed`, for an inbound `subscribe` that is already approved
    /// or pre-approved, §3.1.3 and §3.4).
    pub auto_reply: Option<SubKind>,
    /// Presence the server sends on the user's behalf to the contact as a consequence.
    pub send_presence: PresenceEffect,
    /// Store the inbound `subscribe` stanza exactly as received, replacing any stored one, and
    /// redeliver it whenever the user next becomes available until the request is answered
    /// (§3.1.3). The stanza is kept, never rebuilt, so its extended content survives.
    pub keep_pending_stanza: bool,
    /// Delete the stored inbound `subscribe`: it was answered, or the contact withdrew it (or
    /// the stored state said one was pending where none can be).
    pub drop_pending_stanza: bool,
}

/// Presence the user's server sends to the contact, from each of the user's available
/// resources, because of a subscription change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PresenceEffect {
    /// Nothing.
    #[default]
    None,
    /// The contact may now see the user: send the user's current presence from every
    /// available resource, after the `subscribed` went out (§3.1.5).
    SendCurrentPresence,
    /// The contact may no longer see the user: send `unavailable` from every available
    /// resource, before the `unsubscribed` is routed, "while the user is still subscribed"
    /// (§3.2.2), or after an inbound `unsubscribe` removed the contact's subscription (§3.3.3).
    SendUnavailable,
}

/// Which of the user's resources receive a delivered inbound subscription stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipients {
    /// Resources that sent initial presence (RFC 6121 §3.1.3: requests go to available
    /// resources, and wait in storage when there are none).
    AvailableResources,
    /// Resources that requested the roster (§3.1.6, §3.2.3, §3.3.3: notifications that come
    /// with a roster push go to interested resources).
    InterestedResources,
}

impl SubKind {
    /// Where an inbound stanza of this kind is delivered when [`Outcome::forward`] is set.
    pub fn inbound_recipients(self) -> Recipients {
        match self {
            SubKind::Subscribe => Recipients::AvailableResources,
            SubKind::Subscribed | SubKind::Unsubscribe | SubKind::Unsubscribed => {
                Recipients::InterestedResources
            }
        }
    }
}

/// The stanza-level effects a transition decides; the rest of [`Outcome`] is derived.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Effects {
    pub forward: bool,
    pub auto_reply: Option<SubKind>,
    pub send_presence: PresenceEffect,
    pub keep_pending_stanza: bool,
    pub drop_pending_stanza: bool,
}

impl Effects {
    /// Route or deliver the stanza, nothing else.
    pub fn forward() -> Effects {
        Effects {
            forward: true,
            ..Effects::default()
        }
    }

    /// Neither route nor deliver, nothing else ("no state change" rows).
    pub fn swallow() -> Effects {
        Effects::default()
    }
}

/// The parts of a state a roster item shows (RFC 6121 §2.1.2: existence, `subscription`,
/// `ask`, `approved`), taken as stored rather than normalised: if storage held a stale flag,
/// clients may have been shown it, and the push corrects them.
fn shown(s: &SubState) -> (bool, Subscription, bool, bool) {
    (s.in_roster, s.sub, s.pending_out, s.preapproved)
}

impl Outcome {
    /// Builds the outcome of moving from `before` (as passed in by the caller) to `after`.
    pub(super) fn new(before: &SubState, after: SubState, fx: Effects) -> Outcome {
        let after = after.normalized();
        Outcome {
            new_state: after,
            state_changed: after != *before,
            roster_push: after.in_roster && shown(before) != shown(&after),
            forward: fx.forward,
            auto_reply: fx.auto_reply,
            send_presence: fx.send_presence,
            keep_pending_stanza: fx.keep_pending_stanza,
            // Also covers a stale stored request that normalisation discarded (a pending-in
            // flag stored next to a subscription the contact already has).
            drop_pending_stanza: fx.drop_pending_stanza || (before.pending_in && !after.pending_in),
        }
    }
}
