//! Tests beyond the Appendix A rows: attribute helpers, normalisation, pre-approval (§3.4),
//! the stored inbound request (§3.1.3) and contacts without a roster item. Properties over
//! every state and two-server exchanges are in `tests_props.rs`.

use super::*;
use DefinedState as D;

pub(super) fn item(state: D) -> SubState {
    SubState {
        in_roster: true,
        ..SubState::from_defined(state)
    }
}

pub(super) fn preapproved(state: D) -> SubState {
    SubState {
        preapproved: true,
        ..item(state)
    }
}

/// Every representable `SubState`, legal or not (4 × 2⁴).
pub(super) fn all_states() -> Vec<SubState> {
    let mut v = Vec::new();
    for sub in [
        Subscription::None,
        Subscription::To,
        Subscription::From,
        Subscription::Both,
    ] {
        for bits in 0..16u8 {
            v.push(SubState {
                sub,
                pending_out: bits & 1 != 0,
                pending_in: bits & 2 != 0,
                preapproved: bits & 4 != 0,
                in_roster: bits & 8 != 0,
            });
        }
    }
    v
}

// ---- attribute helpers -------------------------------------------------------------------

#[test]
fn sub_str_round_trip() {
    for (sub, s) in [
        (Subscription::None, "none"),
        (Subscription::To, "to"),
        (Subscription::From, "from"),
        (Subscription::Both, "both"),
    ] {
        assert_eq!(sub.as_str(), s);
        assert_eq!(sub.to_string(), s);
        assert_eq!(s.parse::<Subscription>(), Ok(sub));
    }
    for bad in ["remove", "None", "BOTH", "", " to"] {
        assert!(bad.parse::<Subscription>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn sub_directions() {
    for sub in [
        Subscription::None,
        Subscription::To,
        Subscription::From,
        Subscription::Both,
    ] {
        assert_eq!(
            Subscription::from_directions(sub.has_to(), sub.has_from()),
            sub
        );
    }
    assert!(Subscription::Both.has_to() && Subscription::Both.has_from());
    assert!(!Subscription::None.has_to() && !Subscription::None.has_from());
}

#[test]
fn sub_kind_str_round_trip() {
    for kind in SubKind::ALL {
        assert_eq!(kind.as_str().parse::<SubKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    for bad in ["unavailable", "probe", "error", "Subscribe", ""] {
        assert!(bad.parse::<SubKind>().is_err(), "{bad:?} accepted");
    }
    let err = "probe".parse::<SubKind>().err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("\"probe\" is not a valid subscription presence type")
    );
}

#[test]
fn ask_attr_only_while_own_request_pending() {
    assert_eq!(item(D::NonePendingOut).ask_attr(), Some("subscribe"));
    assert_eq!(item(D::NonePendingOutIn).ask_attr(), Some("subscribe"));
    assert_eq!(item(D::FromPendingOut).ask_attr(), Some("subscribe"));
    for d in [
        D::None,
        D::NonePendingIn,
        D::To,
        D::ToPendingIn,
        D::From,
        D::Both,
    ] {
        assert_eq!(item(d).ask_attr(), None, "{}", d.rfc_name());
    }
    // An `ask` next to an existing subscription is moot and never shown.
    let odd = SubState {
        sub: Subscription::Both,
        pending_out: true,
        ..SubState::NOT_IN_ROSTER
    };
    assert_eq!(odd.ask_attr(), None);
}

#[test]
fn visibility_in_roster() {
    assert!(!SubState::NOT_IN_ROSTER.is_visible_in_roster());
    // A.1 "None + Pending In": a stranger's request creates no roster item.
    assert!(!SubState::from_defined(D::NonePendingIn).is_visible_in_roster());
    assert!(item(D::NonePendingIn).is_visible_in_roster());
    assert!(item(D::None).is_visible_in_roster());
    for d in [D::NonePendingOut, D::To, D::From, D::Both] {
        assert!(SubState::from_defined(d).is_visible_in_roster(), "{d:?}");
    }
    // A pre-approval lives on an item (§3.4.2 creates one).
    let approved_stranger = SubState {
        preapproved: true,
        ..SubState::NOT_IN_ROSTER
    };
    assert!(approved_stranger.is_visible_in_roster());
    assert!(approved_stranger.approved_attr());
}

#[test]
fn inbound_recipients_per_kind() {
    assert_eq!(
        SubKind::Subscribe.inbound_recipients(),
        Recipients::AvailableResources
    );
    for kind in [
        SubKind::Subscribed,
        SubKind::Unsubscribe,
        SubKind::Unsubscribed,
    ] {
        assert_eq!(kind.inbound_recipients(), Recipients::InterestedResources);
    }
}

// ---- normalisation -----------------------------------------------------------------------

#[test]
fn defined_states_round_trip() {
    for d in DefinedState::ALL {
        let s = SubState::from_defined(d);
        assert!(s.is_normalized());
        assert_eq!(s.defined(), d);
        assert_eq!(item(d).defined(), d);
        let (sub, out, pending_in) = d.parts();
        assert_eq!((s.sub, s.pending_out, s.pending_in), (sub, out, pending_in));
    }
}

#[test]
fn normalisation_is_idempotent_and_lands_on_a_defined_state() {
    for s in all_states() {
        let n = s.normalized();
        assert_eq!(n.normalized(), n, "{s:?}");
        assert_eq!(SubState::from_defined(n.defined()).sub, n.sub);
        // Pending flags only ever get cleared, never invented.
        assert!(!n.pending_out || s.pending_out);
        assert!(!n.pending_in || s.pending_in);
        assert!(!n.preapproved || s.preapproved);
        assert_eq!(n.sub, s.sub);
    }
}

#[test]
fn illegal_combinations_are_normalised() {
    let to_out = SubState {
        sub: Subscription::To,
        pending_out: true,
        ..SubState::NOT_IN_ROSTER
    };
    assert_eq!(to_out.defined(), D::To);
    assert!(to_out.normalized().in_roster);
    let both_in = SubState {
        sub: Subscription::Both,
        pending_in: true,
        pending_out: true,
        in_roster: true,
        ..SubState::NOT_IN_ROSTER
    };
    assert_eq!(both_in.defined(), D::Both);
    let from_approved = SubState {
        preapproved: true,
        ..item(D::From)
    };
    assert!(!from_approved.normalized().preapproved);
    let pending_in_approved = SubState {
        preapproved: true,
        ..item(D::NonePendingIn)
    };
    assert!(!pending_in_approved.normalized().preapproved);
}

#[test]
fn an_unnormalised_stored_state_is_reported_for_storing() {
    // "To + Pending Out" does not exist; an inbound `subscribed` changes nothing in A.3.3
    // terms, but the cleaned-up state must still be written back.
    let stored = SubState {
        pending_out: true,
        ..item(D::To)
    };
    let out = inbound(&stored, SubKind::Subscribed);
    assert_eq!(out.new_state, item(D::To));
    assert!(out.state_changed);
    assert!(
        out.roster_push,
        "the stale ask='subscribe' must disappear from clients"
    );
    assert!(!out.forward);
}

// ---- pre-approval (§3.4) -----------------------------------------------------------------

#[test]
fn preapproval_of_a_stranger_creates_an_item() {
    // §3.4.2: contact not in the roster: create it with subscription "none" and
    // approved='true', push it, MUST NOT route the `subscribed`.
    let out = outbound(&SubState::NOT_IN_ROSTER, SubKind::Subscribed);
    assert_eq!(
        out.new_state,
        SubState {
            preapproved: true,
            in_roster: true,
            ..SubState::NOT_IN_ROSTER
        }
    );
    assert!(out.state_changed && out.roster_push);
    assert!(!out.forward);
    assert_eq!(out.send_presence, PresenceEffect::None);
    assert_eq!(out.new_state.ask_attr(), None);
    assert_eq!(out.new_state.sub.as_str(), "none");
}

#[test]
fn repeated_preapproval_changes_nothing() {
    for d in [D::None, D::NonePendingOut, D::To] {
        let out = outbound(&preapproved(d), SubKind::Subscribed);
        assert_eq!(out.new_state, preapproved(d));
        assert!(
            !out.state_changed && !out.roster_push && !out.forward,
            "{d:?}"
        );
    }
}

#[test]
fn preapproved_subscribe_is_approved_by_the_server() {
    for (from, to) in [
        (D::None, D::From),
        (D::NonePendingOut, D::FromPendingOut),
        (D::To, D::Both),
    ] {
        let out = inbound(&preapproved(from), SubKind::Subscribe);
        let ctx = format!("{from:?}: {out:?}");
        assert_eq!(out.new_state, item(to), "{ctx}");
        assert!(!out.new_state.preapproved, "pre-approval is used up, {ctx}");
        assert!(!out.forward, "MUST NOT deliver, {ctx}");
        assert_eq!(out.auto_reply, Some(SubKind::Subscribed), "{ctx}");
        assert_eq!(
            out.send_presence,
            PresenceEffect::SendCurrentPresence,
            "{ctx}"
        );
        assert!(out.state_changed && out.roster_push, "{ctx}");
        assert!(
            !out.keep_pending_stanza && !out.drop_pending_stanza,
            "{ctx}"
        );
    }
}

#[test]
fn unsubscribed_cancels_a_preapproval_silently() {
    // §3.2.2: remove the pre-approval and MUST NOT route the `unsubscribed`; no
    // `unavailable` either, the contact never had access.
    for d in [D::None, D::NonePendingOut, D::To] {
        let out = outbound(&preapproved(d), SubKind::Unsubscribed);
        assert_eq!(out.new_state, item(d), "{d:?}");
        assert!(out.state_changed && out.roster_push, "{d:?}");
        assert!(!out.forward, "{d:?}");
        assert_eq!(out.send_presence, PresenceEffect::None, "{d:?}");
    }
}

#[test]
fn preapproval_survives_stanzas_about_the_other_direction() {
    let cases = [
        (
            outbound(&preapproved(D::None), SubKind::Subscribe),
            D::NonePendingOut,
        ),
        (outbound(&preapproved(D::To), SubKind::Unsubscribe), D::None),
        (
            outbound(&preapproved(D::NonePendingOut), SubKind::Unsubscribe),
            D::None,
        ),
        (
            inbound(&preapproved(D::NonePendingOut), SubKind::Subscribed),
            D::To,
        ),
        (inbound(&preapproved(D::To), SubKind::Unsubscribed), D::None),
        (
            inbound(&preapproved(D::None), SubKind::Unsubscribe),
            D::None,
        ),
    ];
    for (out, to) in cases {
        assert_eq!(out.new_state, preapproved(to), "{out:?}");
    }
}

#[test]
fn subscribed_with_a_request_pending_is_an_approval_not_a_preapproval() {
    // §3.4.2: "To + Pending In", "None + Pending In", "None + Pending Out+In" are handled as
    // a normal approval (§3.1.5), even when the request came from a stranger.
    let out = outbound(
        &SubState::from_defined(D::NonePendingIn),
        SubKind::Subscribed,
    );
    assert_eq!(out.new_state, item(D::From));
    assert!(!out.new_state.preapproved);
    assert!(out.forward && out.roster_push && out.drop_pending_stanza);
    assert_eq!(out.send_presence, PresenceEffect::SendCurrentPresence);
}

// ---- the stored inbound request (§3.1.3) -------------------------------------------------

#[test]
fn keep_full_sub_req() {
    // A stranger asks: deliver it and keep the stanza as received (the caller stores the
    // original XML, never a rebuilt `<presence type='subscribe'/>`), without any roster item
    // or push (A.1: no item until the user approves).
    let first = inbound(&SubState::NOT_IN_ROSTER, SubKind::Subscribe);
    assert!(first.forward && first.keep_pending_stanza && first.state_changed);
    assert!(!first.drop_pending_stanza && !first.roster_push);
    assert_eq!(first.new_state, SubState::from_defined(D::NonePendingIn));
    assert!(!first.new_state.is_visible_in_roster());

    // It asks again: not delivered again, the stored stanza is replaced by the newer one
    // (one stored request per contact), nothing else changes.
    let again = inbound(&first.new_state, SubKind::Subscribe);
    assert!(!again.forward && again.keep_pending_stanza && !again.drop_pending_stanza);
    assert!(!again.state_changed && !again.roster_push);

    // Unrelated traffic leaves the stored request alone.
    for kind in [SubKind::Subscribed, SubKind::Unsubscribed] {
        let out = inbound(&again.new_state, kind);
        assert!(
            !out.keep_pending_stanza && !out.drop_pending_stanza,
            "{kind}"
        );
        assert_eq!(out.new_state, again.new_state, "{kind}");
    }
    let own = outbound(&again.new_state, SubKind::Subscribe);
    assert!(!own.drop_pending_stanza && own.new_state.pending_in);

    // Approving it, denying it, or the contact withdrawing it all delete the stored stanza.
    let approved = outbound(&again.new_state, SubKind::Subscribed);
    assert!(approved.drop_pending_stanza && approved.new_state.in_roster);
    let denied = outbound(&again.new_state, SubKind::Unsubscribed);
    assert!(denied.drop_pending_stanza && denied.forward);
    assert_eq!(denied.new_state, SubState::NOT_IN_ROSTER);
    assert!(
        denied.state_changed && !denied.roster_push,
        "no item, nothing to push"
    );
    let withdrawn = inbound(&again.new_state, SubKind::Unsubscribe);
    assert!(withdrawn.drop_pending_stanza && withdrawn.forward);
    assert_eq!(withdrawn.new_state, SubState::NOT_IN_ROSTER);
    assert!(!withdrawn.roster_push);
}

// ---- contacts without a roster item ------------------------------------------------------

#[test]
fn stranger_rows() {
    let s = SubState::NOT_IN_ROSTER;
    // §3.1.2: the user's request creates the item with ask='subscribe' and pushes it.
    let out = outbound(&s, SubKind::Subscribe);
    assert_eq!(out.new_state, SubState::from_defined(D::NonePendingOut));
    assert!(out.forward && out.roster_push && out.new_state.in_roster);
    // Routed "without exception", but nothing to change and no item to create.
    let out = outbound(&s, SubKind::Unsubscribe);
    assert!(out.forward && !out.state_changed && !out.roster_push);
    assert!(!out.new_state.in_roster);
    // Nothing to deny or cancel: SHOULD NOT route, MUST NOT send `unavailable`.
    let out = outbound(&s, SubKind::Unsubscribed);
    assert!(!out.forward && !out.state_changed);
    assert_eq!(out.send_presence, PresenceEffect::None);
    // Unsolicited answers from a stranger are dropped and create nothing.
    for kind in [
        SubKind::Subscribed,
        SubKind::Unsubscribed,
        SubKind::Unsubscribe,
    ] {
        let out = inbound(&s, kind);
        assert_eq!(out.new_state, s, "{kind}");
        assert!(!out.forward && !out.state_changed, "{kind}");
    }
}
