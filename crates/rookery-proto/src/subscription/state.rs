//! The data of the subscription state machine: the roster `subscription` attribute
//! ([`Subscription`]), the four subscription stanza types ([`SubKind`]), the nine RFC 6121
//! "defined states" ([`DefinedState`], Appendix A.1) and the stored per-contact state
//! ([`SubState`]).
//!
//! [`Subscription`] is also the type rookery-store keeps in a roster item (stored as its
//! attribute value, `as_str` / `FromStr`), so the store and this machine share one type.
//! `SubState` has public fields because rookery-mods fills it from storage; combinations the
//! RFC does not define are normalised ([`SubState::normalized`]) before any transition, so the
//! tables in `outbound.rs` / `inbound.rs` only ever see the nine defined states.

use std::fmt;
use std::str::FromStr;

/// The roster item's `subscription` attribute (RFC 6121 §2.1.2.5), i.e. who sees whose presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Subscription {
    /// Neither sees the other's presence.
    #[default]
    None,
    /// The user receives the contact's presence.
    To,
    /// The contact receives the user's presence.
    From,
    /// Both directions.
    Both,
}

impl Subscription {
    /// The attribute value: `none`, `to`, `from` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    /// Whether the user is subscribed to the contact's presence (`to` or `both`).
    pub fn has_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// Whether the contact is subscribed to the user's presence (`from` or `both`).
    pub fn has_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }

    /// Builds the attribute from its two directions.
    pub fn from_directions(to: bool, from: bool) -> Subscription {
        match (to, from) {
            (false, false) => Subscription::None,
            (true, false) => Subscription::To,
            (false, true) => Subscription::From,
            (true, true) => Subscription::Both,
        }
    }
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a value this module knows (a `subscription` attribute or a
/// subscription presence type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what}")]
pub struct ParseSubError {
    what: &'static str,
    value: String,
}

impl FromStr for Subscription {
    type Err = ParseSubError;

    /// Exact, case-sensitive attribute values. `remove` (RFC 6121 §2.5) is a roster-set
    /// instruction, never a stored state, so it is rejected here.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Subscription::None),
            "to" => Ok(Subscription::To),
            "from" => Ok(Subscription::From),
            "both" => Ok(Subscription::Both),
            other => Err(ParseSubError {
                what: "roster subscription",
                value: other.to_owned(),
            }),
        }
    }
}

/// The four subscription-related presence types (RFC 6121 §3, RFC 6120 §8.2.1 `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubKind {
    /// Request a subscription to the recipient's presence.
    Subscribe,
    /// Approve the recipient's subscription to the sender's presence (or pre-approve it).
    Subscribed,
    /// Stop one's own subscription to the recipient's presence.
    Unsubscribe,
    /// Deny a request, or cancel the recipient's existing subscription (or a pre-approval).
    Unsubscribed,
}

impl SubKind {
    /// Every kind, for exhaustive tests and loops.
    pub const ALL: [SubKind; 4] = [
        SubKind::Subscribe,
        SubKind::Subscribed,
        SubKind::Unsubscribe,
        SubKind::Unsubscribed,
    ];

    /// The presence `type` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            SubKind::Subscribe => "subscribe",
            SubKind::Subscribed => "subscribed",
            SubKind::Unsubscribe => "unsubscribe",
            SubKind::Unsubscribed => "unsubscribed",
        }
    }
}

impl fmt::Display for SubKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubKind {
    type Err = ParseSubError;

    /// Exact presence `type` values; the other types (`unavailable`, `probe`, `error`) are not
    /// subscription stanzas and are rejected.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "subscribe" => Ok(SubKind::Subscribe),
            "subscribed" => Ok(SubKind::Subscribed),
            "unsubscribe" => Ok(SubKind::Unsubscribe),
            "unsubscribed" => Ok(SubKind::Unsubscribed),
            other => Err(ParseSubError {
                what: "subscription presence type",
                value: other.to_owned(),
            }),
        }
    }
}

/// The nine "defined states" of RFC 6121 Appendix A.1, from the user's point of view.
/// "Out" is the user's own pending request to the contact (`ask='subscribe'`), "In" is the
/// contact's request the user has not answered yet. "To + Pending Out" and friends do not
/// exist: one cannot be waiting for a subscription one already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefinedState {
    /// "None".
    None,
    /// "None + Pending Out".
    NonePendingOut,
    /// "None + Pending In".
    NonePendingIn,
    /// "None + Pending Out+In".
    NonePendingOutIn,
    /// "To".
    To,
    /// "To + Pending In".
    ToPendingIn,
    /// "From".
    From,
    /// "From + Pending Out".
    FromPendingOut,
    /// "Both".
    Both,
}

impl DefinedState {
    /// Every defined state in the order of the RFC tables.
    pub const ALL: [DefinedState; 9] = [
        DefinedState::None,
        DefinedState::NonePendingOut,
        DefinedState::NonePendingIn,
        DefinedState::NonePendingOutIn,
        DefinedState::To,
        DefinedState::ToPendingIn,
        DefinedState::From,
        DefinedState::FromPendingOut,
        DefinedState::Both,
    ];

    /// The state's parts: `(subscription, pending_out, pending_in)`.
    pub fn parts(self) -> (Subscription, bool, bool) {
        match self {
            DefinedState::None => (Subscription::None, false, false),
            DefinedState::NonePendingOut => (Subscription::None, true, false),
            DefinedState::NonePendingIn => (Subscription::None, false, true),
            DefinedState::NonePendingOutIn => (Subscription::None, true, true),
            DefinedState::To => (Subscription::To, false, false),
            DefinedState::ToPendingIn => (Subscription::To, false, true),
            DefinedState::From => (Subscription::From, false, false),
            DefinedState::FromPendingOut => (Subscription::From, true, false),
            DefinedState::Both => (Subscription::Both, false, false),
        }
    }

    /// The RFC's name for the state, e.g. `"None + Pending Out+In"`.
    pub fn rfc_name(self) -> &'static str {
        match self {
            DefinedState::None => "None",
            DefinedState::NonePendingOut => "None + Pending Out",
            DefinedState::NonePendingIn => "None + Pending In",
            DefinedState::NonePendingOutIn => "None + Pending Out+In",
            DefinedState::To => "To",
            DefinedState::ToPendingIn => "To + Pending In",
            DefinedState::From => "From",
            DefinedState::FromPendingOut => "From + Pending Out",
            DefinedState::Both => "Both",
        }
    }
}

/// The server's stored view of one (user, contact) relationship.
///
/// Only the combinations of `sub`, `pending_out` and `pending_in` that form a
/// [`DefinedState`] are meaningful, and `preapproved` / `in_roster` have their own
/// constraints; see [`SubState::normalized`]. The transition functions normalise their input
/// and always return normalised states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubState {
    /// The roster `subscription` attribute.
    pub sub: Subscription,
    /// The user asked the contact for a subscription and has no answer yet (`ask='subscribe'`).
    pub pending_out: bool,
    /// The contact asked the user for a subscription and the user has not answered; the
    /// complete request stanza is stored and redelivered at each login (§3.1.3).
    pub pending_in: bool,
    /// The user pre-approved a subscription request from the contact (§3.4; `approved='true'`).
    pub preapproved: bool,
    /// A roster item exists. An unanswered inbound request alone does not create one (A.1:
    /// "None + Pending In" MUST NOT create a roster item until the user approves).
    pub in_roster: bool,
}

impl SubState {
    /// No roster item and nothing pending: a stranger.
    pub const NOT_IN_ROSTER: SubState = SubState {
        sub: Subscription::None,
        pending_out: false,
        pending_in: false,
        preapproved: false,
        in_roster: false,
    };

    /// The state with the given defined state, no pre-approval, and a roster item only if the
    /// defined state requires one (everything but "None" and "None + Pending In").
    pub fn from_defined(state: DefinedState) -> SubState {
        SubState::NOT_IN_ROSTER.with_defined(state)
    }

    /// Returns the nearest legal state. Rules, each from RFC 6121:
    /// - a pending request for a subscription that already exists is moot (A.1 defines no
    ///   "To + Pending Out" nor "From + Pending In"), so it is dropped;
    /// - a pre-approval only means something while the contact is not subscribed and has no
    ///   request waiting (§3.4.2 turns `subscribed` into a normal approval in the pending-in
    ///   states), so it is dropped otherwise;
    /// - a subscription, an `ask` or an `approved` flag lives on a roster item (§2.1.2), so
    ///   any of them implies `in_roster`.
    pub fn normalized(self) -> SubState {
        let mut s = self;
        if s.sub.has_to() {
            s.pending_out = false;
        }
        if s.sub.has_from() {
            s.pending_in = false;
        }
        if s.sub.has_from() || s.pending_in {
            s.preapproved = false;
        }
        if s.sub != Subscription::None || s.pending_out || s.preapproved {
            s.in_roster = true;
        }
        s
    }

    /// Whether the state is already normalised.
    pub fn is_normalized(&self) -> bool {
        self.normalized() == *self
    }

    /// The RFC 6121 Appendix A.1 defined state (of the normalised state).
    pub fn defined(&self) -> DefinedState {
        let s = self.normalized();
        match (s.sub, s.pending_out, s.pending_in) {
            (Subscription::None, false, false) => DefinedState::None,
            (Subscription::None, true, false) => DefinedState::NonePendingOut,
            (Subscription::None, false, true) => DefinedState::NonePendingIn,
            (Subscription::None, true, true) => DefinedState::NonePendingOutIn,
            (Subscription::To, _, false) => DefinedState::To,
            (Subscription::To, _, true) => DefinedState::ToPendingIn,
            (Subscription::From, false, _) => DefinedState::From,
            (Subscription::From, true, _) => DefinedState::FromPendingOut,
            (Subscription::Both, _, _) => DefinedState::Both,
        }
    }

    /// This state moved to `state`, keeping the pre-approval and roster-item flags, then
    /// normalised (so entering a state that needs a roster item creates one).
    pub fn with_defined(self, state: DefinedState) -> SubState {
        let (sub, pending_out, pending_in) = state.parts();
        SubState {
            sub,
            pending_out,
            pending_in,
            ..self
        }
        .normalized()
    }

    /// The roster item's `ask` attribute (RFC 6121 §2.1.2.2): `"subscribe"` while the user's
    /// own request is pending, otherwise absent.
    pub fn ask_attr(&self) -> Option<&'static str> {
        self.normalized().pending_out.then_some("subscribe")
    }

    /// The roster item's `approved` attribute (RFC 6121 §2.1.2.1): `true` only for a
    /// pre-approval; a server without pre-approval support would never set it.
    pub fn approved_attr(&self) -> bool {
        self.normalized().preapproved
    }

    /// Whether the contact appears in the user's roster (roster get, pushes). A stranger whose
    /// request is merely pending does not (A.1, "None + Pending In").
    pub fn is_visible_in_roster(&self) -> bool {
        self.normalized().in_roster
    }
}
