//! One test per row of RFC 6121 Appendix A tables A.2.1–A.2.4 (outbound) and A.3.1–A.3.4
//! (inbound): module = table, test = row. Each row starts from the defined state with a roster
//! item and no pre-approval, and states every effect it expects; effects not listed must be
//! absent. The pre-approval variants and the roster-less states are in `tests_rules.rs`.

use super::*;
use DefinedState as D;

/// Effects a row expects besides the new state and the forward flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fx {
    /// `roster_push`.
    Push,
    /// `auto_reply == Some(Subscribed)`.
    Reply,
    /// `send_presence == SendCurrentPresence`.
    Current,
    /// `send_presence == SendUnavailable`.
    Unavail,
    /// `keep_pending_stanza`.
    Keep,
    /// `drop_pending_stanza`.
    Drop,
    /// The new state carries a pre-approval (§3.4).
    Approved,
}

fn check(
    process: fn(&SubState, SubKind) -> Outcome,
    kind: SubKind,
    from: D,
    to: D,
    forward: bool,
    fx: &[Fx],
) {
    let before = SubState {
        in_roster: true,
        ..SubState::from_defined(from)
    };
    let out = process(&before, kind);
    let ctx = format!("{kind} in {:?}: {out:?}", from.rfc_name());
    assert_eq!(out.new_state.defined(), to, "new state, {ctx}");
    assert_eq!(out.forward, forward, "forward, {ctx}");
    assert_eq!(
        out.roster_push,
        fx.contains(&Fx::Push),
        "roster_push, {ctx}"
    );
    let reply = fx.contains(&Fx::Reply).then_some(SubKind::Subscribed);
    assert_eq!(out.auto_reply, reply, "auto_reply, {ctx}");
    let presence = if fx.contains(&Fx::Current) {
        PresenceEffect::SendCurrentPresence
    } else if fx.contains(&Fx::Unavail) {
        PresenceEffect::SendUnavailable
    } else {
        PresenceEffect::None
    };
    assert_eq!(out.send_presence, presence, "send_presence, {ctx}");
    let keep = fx.contains(&Fx::Keep);
    assert_eq!(out.keep_pending_stanza, keep, "keep_pending_stanza, {ctx}");
    let drop = fx.contains(&Fx::Drop);
    assert_eq!(out.drop_pending_stanza, drop, "drop_pending_stanza, {ctx}");
    let approved = fx.contains(&Fx::Approved);
    assert_eq!(out.new_state.preapproved, approved, "preapproved, {ctx}");
    // No subscription stanza removes a roster item (only a roster set does, §2.5).
    assert!(out.new_state.in_roster, "in_roster, {ctx}");
    let changed = to != from || approved;
    assert_eq!(out.state_changed, changed, "state_changed, {ctx}");
}

/// `table!(module: function Kind { row: From => To, forward [+ Fx]*; ... })`.
macro_rules! table {
    ($(#[$doc:meta])* $name:ident: $process:ident $kind:ident {
        $($row:ident: $from:ident => $to:ident, $forward:literal $(+ $fx:ident)*;)*
    }) => {
        $(#[$doc])*
        mod $name {
            use super::*;
            $(
                #[test]
                fn $row() {
                    check($process, SubKind::$kind, D::$from, D::$to, $forward, &[$(Fx::$fx),*]);
                }
            )*
        }
    };
}

table!(
    /// A.2.1: outbound "subscribe" is routed in every state (§3.1.2, resynchronisation).
    a2_1_outbound_subscribe: outbound Subscribe {
        none: None => NonePendingOut, true + Push;
        none_pending_out: NonePendingOut => NonePendingOut, true;
        none_pending_in: NonePendingIn => NonePendingOutIn, true + Push;
        none_pending_out_in: NonePendingOutIn => NonePendingOutIn, true;
        to: To => To, true;
        to_pending_in: ToPendingIn => ToPendingIn, true;
        from: From => FromPendingOut, true + Push;
        from_pending_out: FromPendingOut => FromPendingOut, true;
        both: Both => Both, true;
    }
);

table!(
    /// A.2.2: outbound "unsubscribe" is routed in every state (§3.3.2).
    a2_2_outbound_unsubscribe: outbound Unsubscribe {
        none: None => None, true;
        none_pending_out: NonePendingOut => None, true + Push;
        none_pending_in: NonePendingIn => NonePendingIn, true;
        none_pending_out_in: NonePendingOutIn => NonePendingIn, true + Push;
        to: To => None, true + Push;
        to_pending_in: ToPendingIn => NonePendingIn, true + Push;
        from: From => From, true;
        from_pending_out: FromPendingOut => From, true + Push;
        both: Both => From, true + Push;
    }
);

table!(
    /// A.2.3: outbound "subscribed" approves a pending request (§3.1.5) or, with none
    /// pending, records a pre-approval without routing (§3.4.2).
    a2_3_outbound_subscribed: outbound Subscribed {
        none: None => None, false + Push + Approved;
        none_pending_out: NonePendingOut => NonePendingOut, false + Push + Approved;
        none_pending_in: NonePendingIn => From, true + Push + Current + Drop;
        none_pending_out_in: NonePendingOutIn => FromPendingOut, true + Push + Current + Drop;
        to: To => To, false + Push + Approved;
        to_pending_in: ToPendingIn => Both, true + Push + Current + Drop;
        from: From => From, false;
        from_pending_out: FromPendingOut => FromPendingOut, false;
        both: Both => Both, false;
    }
);

table!(
    /// A.2.4: outbound "unsubscribed" denies a pending request or cancels the contact's
    /// subscription, with `unavailable` first (§3.2.2).
    a2_4_outbound_unsubscribed: outbound Unsubscribed {
        none: None => None, false;
        none_pending_out: NonePendingOut => NonePendingOut, false;
        none_pending_in: NonePendingIn => None, true + Drop;
        none_pending_out_in: NonePendingOutIn => NonePendingOut, true + Drop;
        to: To => To, false;
        to_pending_in: ToPendingIn => To, true + Drop;
        from: From => None, true + Push + Unavail;
        from_pending_out: FromPendingOut => NonePendingOut, true + Push + Unavail;
        both: Both => To, true + Push + Unavail;
    }
);

table!(
    /// A.3.1: inbound "subscribe" is delivered and stored once (§3.1.3), and auto-approved
    /// when the contact already has a subscription.
    a3_1_inbound_subscribe: inbound Subscribe {
        none: None => NonePendingIn, true + Keep;
        none_pending_out: NonePendingOut => NonePendingOutIn, true + Keep;
        none_pending_in: NonePendingIn => NonePendingIn, false + Keep;
        none_pending_out_in: NonePendingOutIn => NonePendingOutIn, false + Keep;
        to: To => ToPendingIn, true + Keep;
        to_pending_in: ToPendingIn => ToPendingIn, false + Keep;
        from: From => From, false + Reply + Current;
        from_pending_out: FromPendingOut => FromPendingOut, false + Reply + Current;
        both: Both => Both, false + Reply + Current;
    }
);

table!(
    /// A.3.2: inbound "unsubscribe" withdraws the contact's request or ends its subscription
    /// (§3.3.3).
    a3_2_inbound_unsubscribe: inbound Unsubscribe {
        none: None => None, false;
        none_pending_out: NonePendingOut => NonePendingOut, false;
        none_pending_in: NonePendingIn => None, true + Drop;
        none_pending_out_in: NonePendingOutIn => NonePendingOut, true + Drop;
        to: To => To, false;
        to_pending_in: ToPendingIn => To, true + Drop;
        from: From => None, true + Push + Unavail;
        from_pending_out: FromPendingOut => NonePendingOut, true + Push + Unavail;
        both: Both => To, true + Push + Unavail;
    }
);

table!(
    /// A.3.3: inbound "subscribed" counts only as the answer to a pending request (§3.1.6).
    a3_3_inbound_subscribed: inbound Subscribed {
        none: None => None, false;
        none_pending_out: NonePendingOut => To, true + Push;
        none_pending_in: NonePendingIn => NonePendingIn, false;
        none_pending_out_in: NonePendingOutIn => ToPendingIn, true + Push;
        to: To => To, false;
        to_pending_in: ToPendingIn => ToPendingIn, false;
        from: From => From, false;
        from_pending_out: FromPendingOut => Both, true + Push;
        both: Both => Both, false;
    }
);

table!(
    /// A.3.4: inbound "unsubscribed" denies the user's request or cancels the user's
    /// subscription (§3.2.3).
    a3_4_inbound_unsubscribed: inbound Unsubscribed {
        none: None => None, false;
        none_pending_out: NonePendingOut => None, true + Push;
        none_pending_in: NonePendingIn => NonePendingIn, false;
        none_pending_out_in: NonePendingOutIn => NonePendingIn, true + Push;
        to: To => None, true + Push;
        to_pending_in: ToPendingIn => NonePendingIn, true + Push;
        from: From => From, false;
        from_pending_out: FromPendingOut => From, true + Push;
        both: Both => From, true + Push;
    }
);
