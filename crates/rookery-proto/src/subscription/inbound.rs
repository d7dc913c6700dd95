//! The user's server processing a subscription stanza from the contact addressed to the user:
//! RFC 6121 Appendix A.3 (tables A.3.1–A.3.4) plus the prose of §3.1.3, §3.1.6, §3.2.3,
//! §3.3.3 and the pre-approval rule of §3.4.
//!
//! A.3's general rule: deliver a stanza to the user only when it changes the state (a
//! repeated request is not delivered again; it is already recorded), and never change the
//! state otherwise. An inbound `subscribe` from a contact who already has, or was promised,
//! access is answered by the server itself.

use super::outcome::{Effects, Outcome, PresenceEffect};
use super::state::{DefinedState as D, SubKind, SubState};

/// Processes a subscription stanza of type `kind` that arrived from the contact for the user,
/// given the current state of that contact in the user's roster.
pub fn inbound(state: &SubState, kind: SubKind) -> Outcome {
    let cur = state.normalized();
    match kind {
        SubKind::Subscribe => subscribe(state, cur),
        SubKind::Unsubscribe => unsubscribe(state, cur),
        SubKind::Subscribed => subscribed(state, cur),
        SubKind::Unsubscribed => unsubscribed(state, cur),
    }
}

/// Table A.3.1 (inbound "subscribe"), §3.1.3 and §3.4.
fn subscribe(before: &SubState, cur: SubState) -> Outcome {
    // The server approves on the user's behalf: no delivery, `subscribed` back to the
    // contact, then the user's current presence, as the user's own approval would (§3.1.5).
    let auto_approve = |next: D| {
        let fx = Effects {
            auto_reply: Some(SubKind::Subscribed),
            send_presence: PresenceEffect::SendCurrentPresence,
            ..Effects::default()
        };
        Outcome::new(before, cur.with_defined(next), fx)
    };
    // A new request: deliver it to the available resources and store the whole stanza, to be
    // redelivered at each login until the user answers (§3.1.3). Storing it even when a
    // resource is online is what keeps it alive if that resource ignores it.
    let record = |next: D| {
        let fx = Effects {
            forward: true,
            keep_pending_stanza: true,
            ..Effects::default()
        };
        Outcome::new(before, cur.with_defined(next), fx)
    };
    // A repeated request while one is pending: not delivered again (the earlier one "will
    // have been recorded"). §3.1.3 says to store only one of them, "such as the first request
    // or last request"; we keep the last, whose extended content is the freshest.
    let repeat = || {
        let fx = Effects {
            keep_pending_stanza: true,
            ..Effects::default()
        };
        Outcome::new(before, cur, fx)
    };
    match cur.defined() {
        // §3.4: the user pre-approved this contact, which normalisation only allows in
        // "None", "None + Pending Out" and "To" (not subscribed, no request pending). These
        // rows override A.3.1's: no delivery, approve on the user's behalf. The pre-approval
        // is used up (`with_defined` clears it once the contact is subscribed).
        D::None if cur.preapproved => auto_approve(D::From),
        D::NonePendingOut if cur.preapproved => auto_approve(D::FromPendingOut),
        D::To if cur.preapproved => auto_approve(D::Both),
        // A.3.1 "None": deliver, new state "None + Pending In".
        D::None => record(D::NonePendingIn),
        // A.3.1 "None + Pending Out": deliver, new state "None + Pending Out+In".
        D::NonePendingOut => record(D::NonePendingOutIn),
        // A.3.1 "None + Pending In": no delivery, no state change.
        D::NonePendingIn => repeat(),
        // A.3.1 "None + Pending Out+In": no delivery, no state change.
        D::NonePendingOutIn => repeat(),
        // A.3.1 "To": deliver, new state "To + Pending In".
        D::To => record(D::ToPendingIn),
        // A.3.1 "To + Pending In": no delivery, no state change.
        D::ToPendingIn => repeat(),
        // A.3.1 "From", "From + Pending Out", "Both": no delivery, no state change, and the
        // server SHOULD auto-reply `subscribed` (§3.1.3: MUST) so the contact can
        // resynchronise.
        D::From => auto_approve(D::From),
        D::FromPendingOut => auto_approve(D::FromPendingOut),
        D::Both => auto_approve(D::Both),
    }
}

/// Table A.3.2 (inbound "unsubscribe") and §3.3.3: the contact gives up its subscription to
/// the user, or withdraws its pending request.
fn unsubscribe(before: &SubState, cur: SubState) -> Outcome {
    // The request the user never answered is withdrawn: deliver (so clients can drop it from
    // their UI) and forget the stored stanza.
    let withdraw = |next: D| {
        let fx = Effects {
            forward: true,
            drop_pending_stanza: true,
            ..Effects::default()
        };
        Outcome::new(before, cur.with_defined(next), fx)
    };
    // The contact's subscription ends: deliver, push, and send `unavailable` from each of the
    // user's available resources to the contact (§3.3.3).
    let end = |next: D| {
        let fx = Effects {
            forward: true,
            send_presence: PresenceEffect::SendUnavailable,
            ..Effects::default()
        };
        Outcome::new(before, cur.with_defined(next), fx)
    };
    match cur.defined() {
        // A.3.2 "None", "None + Pending Out", "To": no delivery, no state change.
        D::None | D::NonePendingOut | D::To => Outcome::new(before, cur, Effects::swallow()),
        // A.3.2 "None + Pending In": deliver, new state "None".
        D::NonePendingIn => withdraw(D::None),
        // A.3.2 "None + Pending Out+In": deliver, new state "None + Pending Out".
        D::NonePendingOutIn => withdraw(D::NonePendingOut),
        // A.3.2 "To + Pending In": deliver, new state "To".
        D::ToPendingIn => withdraw(D::To),
        // A.3.2 "From": deliver, new state "None".
        D::From => end(D::None),
        // A.3.2 "From + Pending Out": deliver, new state "None + Pending Out".
        D::FromPendingOut => end(D::NonePendingOut),
        // A.3.2 "Both": deliver, new state "To".
        D::Both => end(D::To),
    }
}

/// Table A.3.3 (inbound "subscribed") and §3.1.6: only an answer to the user's pending
/// request counts; an unsolicited approval is neither delivered nor acted upon, so a contact
/// cannot push its presence onto the user.
fn subscribed(before: &SubState, cur: SubState) -> Outcome {
    // The contact's server sends its presence itself (§3.1.5), so nothing is sent from here.
    let granted = |next: D| Outcome::new(before, cur.with_defined(next), Effects::forward());
    match cur.defined() {
        // A.3.3 "None": no delivery, no state change.
        D::None => Outcome::new(before, cur, Effects::swallow()),
        // A.3.3 "None + Pending Out": deliver, new state "To".
        D::NonePendingOut => granted(D::To),
        // A.3.3 "None + Pending In": no delivery, no state change.
        D::NonePendingIn => Outcome::new(before, cur, Effects::swallow()),
        // A.3.3 "None + Pending Out+In": deliver, new state "To + Pending In".
        D::NonePendingOutIn => granted(D::ToPendingIn),
        // A.3.3 "To", "To + Pending In", "From": no delivery, no state change.
        D::To | D::ToPendingIn | D::From => Outcome::new(before, cur, Effects::swallow()),
        // A.3.3 "From + Pending Out": deliver, new state "Both".
        D::FromPendingOut => granted(D::Both),
        // A.3.3 "Both": no delivery, no state change.
        D::Both => Outcome::new(before, cur, Effects::swallow()),
    }
}

/// Table A.3.4 (inbound "unsubscribed") and §3.2.3: the contact denies the user's pending
/// request or cancels the user's subscription. The `unavailable` presence that goes with a
/// cancellation comes from the contact's server (§3.2.2), not from here.
fn unsubscribed(before: &SubState, cur: SubState) -> Outcome {
    let lost = |next: D| Outcome::new(before, cur.with_defined(next), Effects::forward());
    match cur.defined() {
        // A.3.4 "None": no delivery, no state change.
        D::None => Outcome::new(before, cur, Effects::swallow()),
        // A.3.4 "None + Pending Out": deliver, new state "None" (request denied).
        D::NonePendingOut => lost(D::None),
        // A.3.4 "None + Pending In": no delivery, no state change.
        D::NonePendingIn => Outcome::new(before, cur, Effects::swallow()),
        // A.3.4 "None + Pending Out+In": deliver, new state "None + Pending In".
        D::NonePendingOutIn => lost(D::NonePendingIn),
        // A.3.4 "To": deliver, new state "None" (subscription cancelled).
        D::To => lost(D::None),
        // A.3.4 "To + Pending In": deliver, new state "None + Pending In".
        D::ToPendingIn => lost(D::NonePendingIn),
        // A.3.4 "From": no delivery, no state change.
        D::From => Outcome::new(before, cur, Effects::swallow()),
        // A.3.4 "From + Pending Out": deliver, new state "From".
        D::FromPendingOut => lost(D::From),
        // A.3.4 "Both": deliver, new state "From".
        D::Both => lost(D::From),
    }
}
