//! Properties checked over every representable state (legal or not), and whole exchanges
//! between two servers running these functions, with auto-replies travelling back.

use super::tests_rules::{all_states, item};
use super::*;
use DefinedState as D;

// ---- properties over every representable state -------------------------------------------

#[test]
fn outcome_invariants_hold_everywhere() {
    for s in all_states() {
        for kind in SubKind::ALL {
            for (dir, process) in [
                ("outbound", outbound as fn(&SubState, SubKind) -> Outcome),
                ("inbound", inbound),
            ] {
                let out = process(&s, kind);
                let ctx = format!("{dir} {kind} from {s:?}: {out:?}");
                let n = s.normalized();
                assert!(out.new_state.is_normalized(), "{ctx}");
                assert_eq!(out.state_changed, out.new_state != s, "{ctx}");
                assert!(!out.roster_push || out.new_state.in_roster, "{ctx}");
                assert!(!out.roster_push || out.state_changed, "{ctx}");
                assert!(
                    !(out.keep_pending_stanza && out.drop_pending_stanza),
                    "{ctx}"
                );
                // Subscription stanzas never delete a roster item.
                assert!(!n.in_roster || out.new_state.in_roster, "{ctx}");
                // A stored request is kept exactly while one is pending afterwards, and
                // dropped exactly when a pending one was answered or withdrawn.
                if out.keep_pending_stanza {
                    assert!(out.new_state.pending_in, "{ctx}");
                }
                assert_eq!(
                    out.drop_pending_stanza,
                    s.pending_in && !out.new_state.pending_in,
                    "{ctx}"
                );
                // Only an inbound `subscribe` is ever answered by the server.
                if out.auto_reply.is_some() {
                    assert_eq!((dir, kind), ("inbound", SubKind::Subscribe), "{ctx}");
                    assert_eq!(out.auto_reply, Some(SubKind::Subscribed), "{ctx}");
                    assert!(!out.forward && out.new_state.sub.has_from(), "{ctx}");
                }
                let defined_changed = out.new_state.defined() != n.defined();
                match (dir, kind) {
                    // A.2: routed without exception.
                    ("outbound", SubKind::Subscribe | SubKind::Unsubscribe) => {
                        assert!(out.forward, "{ctx}");
                    }
                    // A.2 and A.3: routed or delivered exactly when the state changes.
                    // (A server-side approval changes the state without delivering, §3.4.)
                    _ => assert_eq!(
                        out.forward,
                        defined_changed && out.auto_reply.is_none(),
                        "{ctx}"
                    ),
                }
                // The contact may see the user exactly when it newly may; it gets
                // `unavailable` exactly when it no longer may.
                let gained = !n.sub.has_from() && out.new_state.sub.has_from();
                let lost = n.sub.has_from() && !out.new_state.sub.has_from();
                let resync = (dir, kind) == ("inbound", SubKind::Subscribe) && n.sub.has_from();
                let expected = if gained || resync {
                    PresenceEffect::SendCurrentPresence
                } else if lost {
                    PresenceEffect::SendUnavailable
                } else {
                    PresenceEffect::None
                };
                assert_eq!(out.send_presence, expected, "{ctx}");
            }
        }
    }
}

#[test]
fn each_direction_only_moves_its_own_flags() {
    for s in all_states() {
        let n = s.normalized();
        // The user's `subscribe`/`unsubscribe` and the contact's answers concern the user's
        // subscription to the contact: the contact's side is untouched.
        for (process, kind) in [
            (
                outbound as fn(&SubState, SubKind) -> Outcome,
                SubKind::Subscribe,
            ),
            (outbound, SubKind::Unsubscribe),
            (inbound, SubKind::Subscribed),
            (inbound, SubKind::Unsubscribed),
        ] {
            let after = process(&s, kind).new_state;
            assert_eq!(after.sub.has_from(), n.sub.has_from(), "{kind} {s:?}");
            assert_eq!(after.pending_in, n.pending_in, "{kind} {s:?}");
        }
        // The contact's requests and the user's answers concern the contact's subscription.
        for (process, kind) in [
            (
                inbound as fn(&SubState, SubKind) -> Outcome,
                SubKind::Subscribe,
            ),
            (inbound, SubKind::Unsubscribe),
            (outbound, SubKind::Subscribed),
            (outbound, SubKind::Unsubscribed),
        ] {
            let after = process(&s, kind).new_state;
            assert_eq!(after.sub.has_to(), n.sub.has_to(), "{kind} {s:?}");
            assert_eq!(after.pending_out, n.pending_out, "{kind} {s:?}");
        }
    }
}

// ---- two servers talking -----------------------------------------------------------------

/// Alice's view of Bob and Bob's view of Alice, each on its own server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pair {
    alice: SubState,
    bob: SubState,
}

/// Alice sends `kind` to Bob: her server processes it outbound, Bob's inbound if it was
/// routed, and any auto-reply travels back the same way.
fn alice_sends(p: Pair, kind: SubKind) -> Pair {
    exchange(p, kind, false)
}

fn bob_sends(p: Pair, kind: SubKind) -> Pair {
    exchange(p, kind, true)
}

fn exchange(p: Pair, kind: SubKind, from_bob: bool) -> Pair {
    let (sender, receiver) = if from_bob {
        (p.bob, p.alice)
    } else {
        (p.alice, p.bob)
    };
    let out = outbound(&sender, kind);
    let (mut sender, mut receiver) = (out.new_state, receiver);
    if out.forward {
        let inb = inbound(&receiver, kind);
        receiver = inb.new_state;
        if let Some(reply) = inb.auto_reply {
            // The receiver's server answers on its user's behalf: that reply is inbound
            // at the sender's server.
            sender = inbound(&sender, reply).new_state;
        }
    }
    if from_bob {
        Pair {
            alice: receiver,
            bob: sender,
        }
    } else {
        Pair {
            alice: sender,
            bob: receiver,
        }
    }
}

fn strangers() -> Pair {
    Pair {
        alice: SubState::NOT_IN_ROSTER,
        bob: SubState::NOT_IN_ROSTER,
    }
}

#[test]
fn mutual_subscription_and_teardown() {
    let p = alice_sends(strangers(), SubKind::Subscribe);
    assert_eq!(
        (p.alice.defined(), p.bob.defined()),
        (D::NonePendingOut, D::NonePendingIn)
    );
    let p = bob_sends(p, SubKind::Subscribed);
    assert_eq!((p.alice.defined(), p.bob.defined()), (D::To, D::From));
    let p = bob_sends(p, SubKind::Subscribe);
    assert_eq!(
        (p.alice.defined(), p.bob.defined()),
        (D::ToPendingIn, D::FromPendingOut)
    );
    let p = alice_sends(p, SubKind::Subscribed);
    assert_eq!((p.alice.defined(), p.bob.defined()), (D::Both, D::Both));

    let p = alice_sends(p, SubKind::Unsubscribe);
    assert_eq!((p.alice.defined(), p.bob.defined()), (D::From, D::To));
    let p = alice_sends(p, SubKind::Unsubscribed);
    assert_eq!((p.alice.defined(), p.bob.defined()), (D::None, D::None));
    assert!(p.alice.in_roster && p.bob.in_roster);
}

#[test]
fn preapproval_round_trip() {
    // Alice pre-approves Bob, then asks him herself; Bob asks back and is let in at once.
    let p = alice_sends(strangers(), SubKind::Subscribed);
    assert_eq!(
        p.bob,
        SubState::NOT_IN_ROSTER,
        "a pre-approval is not routed"
    );
    assert!(p.alice.preapproved);
    let p = bob_sends(p, SubKind::Subscribe);
    assert_eq!((p.alice.defined(), p.bob.defined()), (D::From, D::To));
    assert!(!p.alice.preapproved);
}

#[test]
fn resending_subscribe_resynchronises_a_lost_approval() {
    // Bob's server recorded the approval but Alice's never got the `subscribed`.
    let p = Pair {
        alice: item(D::NonePendingOut),
        bob: item(D::From),
    };
    let p = alice_sends(p, SubKind::Subscribe);
    assert_eq!((p.alice.defined(), p.bob.defined()), (D::To, D::From));
}

#[test]
fn crossing_requests_meet_in_both() {
    let p = alice_sends(strangers(), SubKind::Subscribe);
    let p = bob_sends(p, SubKind::Subscribe);
    assert_eq!(
        (p.alice.defined(), p.bob.defined()),
        (D::NonePendingOutIn, D::NonePendingOutIn)
    );
    let p = alice_sends(p, SubKind::Subscribed);
    let p = bob_sends(p, SubKind::Subscribed);
    assert_eq!((p.alice.defined(), p.bob.defined()), (D::Both, D::Both));
}
