//! Presence subscriptions (RFC 6121 §3): the four subscription types in both directions, carried
//! out on top of the sans-IO state machine in `rookery_proto::subscription`. Where it sits: the
//! presence module's `from_client` hook hands us the types a client sends (with `to`), its
//! `to_account` hook the ones addressed to a local account; the roster module uses
//! [`outbound_effects`] when a removal cancels a subscription (§2.5.2). Each stanza: load the
//! contact's state (`roster::state`), run the machine, then apply the `Outcome` in the order
//! the machine's docs give (store, pending request, push, `unavailable`, route/deliver,
//! auto-reply, current presence).

use super::send;
use crate::roster::{push, roster_full, state};
use crate::util::parts;
use rookery_core::{Server, Session};
use rookery_proto::error::StanzaError;
use rookery_proto::stanza::{BareJid, Jid, Stanza};
use rookery_proto::subscription::SubState;
use rookery_proto::subscription::{self as machine, Outcome, PresenceEffect, Recipients, SubKind};

/// A subscription stanza from a local client (`from` stamped with its full JID, `to` present).
pub(crate) async fn from_client(server: &Server, session: &Session, st: Stanza, kind: SubKind) {
    let user = session.jid().to_bare();
    let Some(contact) = st.to().map(Jid::to_bare) else {
        return;
    };
    if contact == user {
        // One always sees one's own presence; a subscription to oneself means nothing and would
        // put the account into its own roster.
        return;
    }
    let key = contact.as_str();
    let loaded = match state::load(server, &user, key).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(jid = %user, error = %e, what = "roster-load", "store error");
            server.bounce(&st, StanzaError::internal()).await;
            return;
        }
    };
    let outcome = machine::outbound(&loaded.state, kind);
    if loaded.item.is_none() && outcome.new_state.in_roster {
        match roster_full(server, &user).await {
            Ok(false) => {}
            Ok(true) => {
                let err = StanzaError::not_allowed().with_text("roster is full");
                server.bounce(&st, err).await;
                return;
            }
            Err(e) => {
                server.bounce(&st, e).await;
                return;
            }
        }
    }
    // §3.1.2 and friends: the server pushes the changed item first, then routes.
    if outcome.state_changed {
        match state::save(server, &user, key, &loaded, &outcome).await {
            Ok(Some(change)) => push::push(server, &user, &change),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(jid = %user, error = %e, what = "roster-save", "store error");
                server.bounce(&st, StanzaError::internal()).await;
                return;
            }
        }
    }
    if outcome.drop_pending_stanza || (loaded.state.pending_in && !outcome.new_state.pending_in) {
        let (u, d) = parts(&user);
        if let Err(e) = server.stores().roster.remove_pending_in(u, d, key).await {
            tracing::error!(jid = %user, error = %e, what = "pending-remove", "store error");
        }
    }
    // §3.1.2, §3.1.5, §3.2.2, §3.3.2: subscription stanzas leave stamped with the user's bare
    // JID and addressed to the contact's bare JID; extended content is kept (§3.1.3 wants the
    // contact to see the complete request).
    let mut out = st;
    out.set_from(Some(Jid::from(user.clone())));
    out.set_to(Some(Jid::from(contact.clone())));
    apply_outbound(server, &user, &contact, Some(out), &outcome, kind).await;
}

/// Runs an outbound subscription stanza through the machine for its effects only (routing and
/// presence), storing nothing; returns the state it leads to. For roster removal (§2.5.2).
pub(crate) async fn outbound_effects(
    server: &Server,
    user: &BareJid,
    contact: &BareJid,
    current: SubState,
    kind: SubKind,
) -> SubState {
    let outcome = machine::outbound(&current, kind);
    let st = send::presence(
        Some(kind.as_str()),
        &Jid::from(user.clone()),
        &Jid::from(contact.clone()),
    );
    apply_outbound(server, user, contact, st, &outcome, kind).await;
    outcome.new_state
}

/// Steps 4–7 of the outcome for a stanza the user sent.
async fn apply_outbound(
    server: &Server,
    user: &BareJid,
    contact: &BareJid,
    st: Option<Stanza>,
    outcome: &Outcome,
    kind: SubKind,
) {
    if outcome.send_presence == PresenceEffect::SendUnavailable {
        // §3.2.2: "while the user is still subscribed", i.e. before the `unsubscribed`.
        send::unavailable_from_resources(server, user, contact).await;
    }
    if outcome.forward
        && let Some(st) = st
    {
        server.route(st).await;
    }
    if outcome.send_presence == PresenceEffect::SendCurrentPresence {
        send::current_presence(server, user, contact).await;
    }
    if kind == SubKind::Subscribed && outcome.forward && outcome.new_state.sub.has_to() {
        // The approval completed a mutual subscription: refresh the contact's presence at once
        // with a probe (§4.3.1 allows probing a contact the user is subscribed to at any time;
        // Prosody does this too, and its issue1121 test expects the contact's presence here).
        send::probe(server, user, contact).await;
    }
}

/// A subscription stanza addressed to a local account (`to` is the user, `from` the contact).
pub(crate) async fn to_account(server: &Server, mut st: Stanza, kind: SubKind) {
    let (Some(user), Some(contact)) = (st.to().map(Jid::to_bare), st.from().map(Jid::to_bare))
    else {
        return;
    };
    if !server.account_exists(&user).await {
        // RFC 6121 §8.5.1 (no such user): a request is answered with `unsubscribed` so the
        // requester's state settles; the other types are ignored.
        if kind == SubKind::Subscribe {
            let (from, to) = (Jid::from(user), Jid::from(contact));
            send::route_presence(server, Some("unsubscribed"), &from, &to).await;
        }
        return;
    }
    // Subscriptions are between bare JIDs (§3): a remote server may have left a resource on.
    st.set_from(Some(Jid::from(contact.clone())));
    let key = contact.as_str();
    let loaded = match state::load(server, &user, key).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(jid = %user, error = %e, what = "roster-load", "store error");
            return;
        }
    };
    let outcome = machine::inbound(&loaded.state, kind);
    if outcome.keep_pending_stanza
        && !loaded.state.pending_in
        && too_many_pending(server, &user).await
    {
        // A flood of requests from many JIDs must not grow storage without bound; the
        // requests already waiting keep their place.
        tracing::warn!(jid = %user, from = %contact, what = "pending-full", "too many pending subscription requests; dropped");
        return;
    }
    let mut change = None;
    if outcome.state_changed {
        match state::save(server, &user, key, &loaded, &outcome).await {
            Ok(c) => change = c,
            Err(e) => {
                // Nothing was stored, so nothing is delivered: the contact's server will
                // retry or the contact will resend; delivering a change we did not record
                // would leave client and store disagreeing.
                tracing::error!(jid = %user, error = %e, what = "roster-save", "store error");
                return;
            }
        }
    }
    let (u, d) = parts(&user);
    let roster = &server.stores().roster;
    if outcome.keep_pending_stanza {
        // §3.1.3: the complete stanza, extended content included, for redelivery at login.
        let xml = st.element().to_xml();
        if let Err(e) = roster.put_pending_in(u, d, key, &xml).await {
            tracing::error!(jid = %user, error = %e, what = "pending-put", "store error");
        }
    } else if (outcome.drop_pending_stanza
        || (loaded.state.pending_in && !outcome.new_state.pending_in))
        && let Err(e) = roster.remove_pending_in(u, d, key).await
    {
        tracing::error!(jid = %user, error = %e, what = "pending-remove", "store error");
    }
    if outcome.forward {
        deliver(server, &user, &st, kind.inbound_recipients());
    }
    // §3.1.6 / §3.2.3 / §3.3.3 show the notification delivered first, then the roster push.
    if let Some(change) = change {
        push::push(server, &user, &change);
    }
    if outcome.send_presence == PresenceEffect::SendUnavailable {
        send::unavailable_from_resources(server, &user, &contact).await;
    }
    let (user_jid, contact_jid) = (Jid::from(user.clone()), Jid::from(contact.clone()));
    if let Some(reply) = outcome.auto_reply {
        send::route_presence(server, Some(reply.as_str()), &user_jid, &contact_jid).await;
    }
    if outcome.send_presence == PresenceEffect::SendCurrentPresence {
        send::current_presence(server, &user, &contact).await;
    }
    if kind == SubKind::Subscribe && outcome.auto_reply.is_none() {
        // A request waiting for the user: acknowledge receipt with `unavailable` from the bare
        // JID, as Prosody does (its issue1121 test expects it). It reveals nothing: the
        // requester cannot see the user's presence yet.
        send::route_presence(server, Some("unavailable"), &user_jid, &contact_jid).await;
    }
}

/// Delivers an inbound subscription stanza to the user's resources the RFC names (§3.1.3:
/// available resources for requests; §3.1.6, §3.2.3, §3.3.3: interested ones for the rest).
fn deliver(server: &Server, user: &BareJid, st: &Stanza, to: Recipients) {
    for r in server.sessions().resources(user) {
        let wanted = match to {
            Recipients::AvailableResources => r.available,
            Recipients::InterestedResources => r.interested,
        };
        if wanted {
            let _ = server.sessions().send(&r.session, st.clone());
        }
    }
}

/// Subscription requests one account may have waiting for an answer.
pub(crate) const MAX_PENDING_IN: usize = 500;

async fn too_many_pending(server: &Server, user: &BareJid) -> bool {
    let (u, d) = parts(user);
    match server.stores().roster.pending_in(u, d).await {
        Ok(list) => list.len() >= MAX_PENDING_IN,
        Err(e) => {
            tracing::error!(jid = %user, error = %e, what = "pending-list", "store error");
            false
        }
    }
}
