//! The user's server processing a subscription stanza the user sent to the contact: RFC 6121
//! Appendix A.2 (tables A.2.1–A.2.4) plus the prose of §3.1.2, §3.1.5, §3.2.2, §3.3.2 and
//! the pre-approval rules of §3.4.2.
//!
//! A.2's general rule: `subscribe` and `unsubscribe` are routed "without exception", even
//! when nothing changes, so that a user can resynchronise a subscription the two servers
//! disagree about; `subscribed` and `unsubscribed` are routed only when they change the state
//! (the server "SHOULD NOT route" them otherwise, and must not change the state).

use super::outcome::{Effects, Outcome, PresenceEffect};
use super::state::{DefinedState as D, SubKind, SubState};

/// Processes a subscription stanza of type `kind` that the user sends to the contact, given
/// the current state of that contact in the user's roster.
pub fn outbound(state: &SubState, kind: SubKind) -> Outcome {
    let cur = state.normalized();
    match kind {
        SubKind::Subscribe => subscribe(state, cur),
        SubKind::Unsubscribe => unsubscribe(state, cur),
        SubKind::Subscribed => subscribed(state, cur),
        SubKind::Unsubscribed => unsubscribed(state, cur),
    }
}

/// Table A.2.1 (outbound "subscribe") and §3.1.2. Every row routes. Entering a pending-out
/// state creates the roster item if there was none (§3.1.2: the roster push "containing the
/// potential contact" with `ask='subscribe'`), which `with_defined` does by normalising.
fn subscribe(before: &SubState, cur: SubState) -> Outcome {
    let next = match cur.defined() {
        // A.2.1 "None": route, new state "None + Pending Out".
        D::None => D::NonePendingOut,
        // A.2.1 "None + Pending Out": route (a resend), no state change.
        D::NonePendingOut => D::NonePendingOut,
        // A.2.1 "None + Pending In": route, new state "None + Pending Out+In".
        D::NonePendingIn => D::NonePendingOutIn,
        // A.2.1 "None + Pending Out+In": route, no state change.
        D::NonePendingOutIn => D::NonePendingOutIn,
        // A.2.1 "To": route (resynchronisation), no state change.
        D::To => D::To,
        // A.2.1 "To + Pending In": route, no state change.
        D::ToPendingIn => D::ToPendingIn,
        // A.2.1 "From": route, new state "From + Pending Out".
        D::From => D::FromPendingOut,
        // A.2.1 "From + Pending Out": route, no state change.
        D::FromPendingOut => D::FromPendingOut,
        // A.2.1 "Both": route (resynchronisation), no state change.
        D::Both => D::Both,
    };
    // A pre-approval is about the contact's access to the user and survives the user's own
    // request (§3.4 does not tie the two).
    Outcome::new(before, cur.with_defined(next), Effects::forward())
}

/// Table A.2.2 (outbound "unsubscribe") and §3.3.2. Every row routes; the user gives up the
/// subscription to the contact, or the pending request for one. The roster item stays
/// (removing it is a roster set with `subscription='remove'`, §2.5, not this stanza).
fn unsubscribe(before: &SubState, cur: SubState) -> Outcome {
    let next = match cur.defined() {
        // A.2.2 "None": route, no state change.
        D::None => D::None,
        // A.2.2 "None + Pending Out": route, new state "None" (request withdrawn).
        D::NonePendingOut => D::None,
        // A.2.2 "None + Pending In": route, no state change.
        D::NonePendingIn => D::NonePendingIn,
        // A.2.2 "None + Pending Out+In": route, new state "None + Pending In".
        D::NonePendingOutIn => D::NonePendingIn,
        // A.2.2 "To": route, new state "None".
        D::To => D::None,
        // A.2.2 "To + Pending In": route, new state "None + Pending In".
        D::ToPendingIn => D::NonePendingIn,
        // A.2.2 "From": route, no state change.
        D::From => D::From,
        // A.2.2 "From + Pending Out": route, new state "From".
        D::FromPendingOut => D::From,
        // A.2.2 "Both": route, new state "From".
        D::Both => D::From,
    };
    // §3.4 lets only an outbound `unsubscribed` cancel a pre-approval; `unsubscribe` is about
    // the other direction and leaves it alone.
    Outcome::new(before, cur.with_defined(next), Effects::forward())
}

/// Table A.2.3 (outbound "subscribed"), §3.1.5 (approval) and §3.4.2 (pre-approval).
fn subscribed(before: &SubState, cur: SubState) -> Outcome {
    // An approval of a pending request: route it, drop the stored request (answered), and
    // once the `subscribed` is out send the user's current presence to the contact (§3.1.5:
    // "MUST then also send current presence ... from each of the user's available
    // resources"). Approving creates the roster item if the request came from a stranger
    // (A.1: the item waits "until the user has approved").
    let approve = |next: D| {
        let fx = Effects {
            forward: true,
            send_presence: PresenceEffect::SendCurrentPresence,
            drop_pending_stanza: true,
            ..Effects::default()
        };
        Outcome::new(before, cur.with_defined(next), fx)
    };
    match cur.defined() {
        // A.2.3 "None", "None + Pending Out", "To": no route, no subscription state change.
        // §3.4.2: with no request pending this is a pre-approval: set `approved`, creating
        // the item with subscription "none" if there was none, push it, and MUST NOT route
        // the stanza. Already pre-approved: nothing changes, so no push either.
        D::None | D::NonePendingOut | D::To => {
            let after = SubState {
                preapproved: true,
                ..cur
            };
            Outcome::new(before, after, Effects::swallow())
        }
        // A.2.3 "None + Pending In": route, new state "From".
        D::NonePendingIn => approve(D::From),
        // A.2.3 "None + Pending Out+In": route, new state "From + Pending Out".
        D::NonePendingOutIn => approve(D::FromPendingOut),
        // A.2.3 "To + Pending In": route, new state "Both".
        D::ToPendingIn => approve(D::Both),
        // A.2.3 "From", "From + Pending Out", "Both": the contact is already subscribed; no
        // route, no state change (§3.1.5 / §3.4.2: MUST NOT modify the item nor route).
        D::From | D::FromPendingOut | D::Both => Outcome::new(before, cur, Effects::swallow()),
    }
}

/// Table A.2.4 (outbound "unsubscribed"): denying a pending request (§3.1.4/§3.1.5) or
/// cancelling the contact's subscription (§3.2.2), and cancelling a pre-approval (§3.2.2).
fn unsubscribed(before: &SubState, cur: SubState) -> Outcome {
    // Denial of a pending request: route it and forget the stored request. The contact never
    // saw the user's presence, so no `unavailable` is sent: it would only reveal the user's
    // resources to someone who was refused.
    let deny = |next: D| {
        let fx = Effects {
            forward: true,
            drop_pending_stanza: true,
            ..Effects::default()
        };
        Outcome::new(before, cur.with_defined(next), fx)
    };
    // Cancellation of the contact's subscription: `unavailable` from every available resource
    // first, "while the user is still subscribed", then route the `unsubscribed` (§3.2.2).
    let cancel = |next: D| {
        let fx = Effects {
            forward: true,
            send_presence: PresenceEffect::SendUnavailable,
            ..Effects::default()
        };
        Outcome::new(before, cur.with_defined(next), fx)
    };
    match cur.defined() {
        // A.2.4 "None", "None + Pending Out", "To": no route, no subscription state change
        // (§3.2.2: SHOULD NOT route, MUST NOT send `unavailable`). A pre-approval, if any, is
        // cancelled: §3.2.2 removes it, MUST NOT route, and the item changed, so it is pushed.
        D::None | D::NonePendingOut | D::To => {
            let after = SubState {
                preapproved: false,
                ..cur
            };
            Outcome::new(before, after, Effects::swallow())
        }
        // A.2.4 "None + Pending In": route, new state "None".
        D::NonePendingIn => deny(D::None),
        // A.2.4 "None + Pending Out+In": route, new state "None + Pending Out".
        D::NonePendingOutIn => deny(D::NonePendingOut),
        // A.2.4 "To + Pending In": route, new state "To".
        D::ToPendingIn => deny(D::To),
        // A.2.4 "From": route, new state "None".
        D::From => cancel(D::None),
        // A.2.4 "From + Pending Out": route, new state "None + Pending Out".
        D::FromPendingOut => cancel(D::NonePendingOut),
        // A.2.4 "Both": route, new state "To".
        D::Both => cancel(D::To),
    }
}
