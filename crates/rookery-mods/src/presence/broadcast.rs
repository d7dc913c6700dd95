//! Availability presence (RFC 6121 §4): what a client's own presence does and who receives it.
//! Where it sits: the presence module's `from_client` hook gives us presence without a type
//! or of type `unavailable` from a local client (broadcast when it has no `to`, directed
//! presence when it has one); its `to_account` hook gives us probes and availability presence
//! addressed to a local account; `session_closed` ends with [`signed_off`]. Session state
//! (available, priority, last presence, directed recipients) is core's, written through the
//! sessions door's verbs.

use super::send;
use crate::util::{format_utc, parts, unix_now};
use rookery_core::{PresenceUpdate, Server, Session};
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, Jid, Stanza};
use rookery_store::RosterItem;
use rookery_xml::Element;
use std::collections::HashSet;

/// The roster items of `user`, or none if the store fails (presence is best-effort: a failed
/// lookup must not stop the user's own resources from getting the presence).
async fn roster_items(server: &Server, user: &BareJid) -> Vec<RosterItem> {
    let (u, d) = parts(user);
    match server.stores().roster.get_all(u, d).await {
        Ok((_, items)) => items,
        Err(e) => {
            tracing::error!(jid = %user, error = %e, what = "roster-get", "store error");
            Vec::new()
        }
    }
}

/// Contacts allowed to see the user's presence: subscription `from` or `both` (§4.2.2, §4.4.2).
fn subscribers(items: &[RosterItem]) -> Vec<BareJid> {
    items
        .iter()
        .filter(|i| i.subscription.has_from())
        .filter_map(|i| BareJid::new(&i.jid).ok())
        .collect()
}

/// The `<priority/>` of an available presence (RFC 6121 §4.7.2.3): an integer in −128..=127,
/// 0 when absent. Out-of-range values are clamped and unparseable ones read as 0, rather than
/// refusing the user's presence over a client bug.
pub(crate) fn priority(st: &Stanza) -> i8 {
    let Some(p) = st.element().get_child("priority", ns::CLIENT) else {
        return 0;
    };
    match p.text().trim().parse::<i64>() {
        Ok(v) => v.clamp(i64::from(i8::MIN), i64::from(i8::MAX)) as i8,
        Err(_) => 0,
    }
}

/// Sends `st` (from the session's full JID) to every subscriber and to the user's available
/// resources, `to` set per recipient. Returns the subscribers, so callers can skip them in the
/// directed-presence list.
async fn broadcast(
    server: &Server,
    user: &BareJid,
    st: &Stanza,
    items: &[RosterItem],
) -> Vec<BareJid> {
    let subs = subscribers(items);
    for contact in &subs {
        let mut copy = st.clone();
        copy.set_to(Some(Jid::from(contact.clone())));
        server.route(copy).await;
    }
    // §4.2.2 / §4.4.2: the user's own available resources get it too, the sender included
    // (clients use the echo to learn their presence was accepted).
    server.sessions().send_to_available(user, st, true);
    subs
}

/// Available presence without `to` (RFC 6121 §4.2 initial presence, §4.4 updates).
pub(crate) async fn available(server: &Server, session: &Session, st: Stanza) {
    let user = session.jid().to_bare();
    let prio = priority(&st);
    // The copy kept for later (probe answers, new subscribers, new sibling resources) says when
    // it was sent: XEP-0203 delay from our domain, as Prosody does and its blocking.scs expects.
    let mut last = st.clone();
    last.element_mut().append_child(
        Element::new("delay", ns::DELAY)
            .with_attr("from", user.domain().as_str())
            .with_attr("stamp", format_utc(unix_now())),
    );
    let update = PresenceUpdate::Available {
        priority: prio,
        last,
    };
    let Some(change) = server.sessions().set_presence(session, update) else {
        return;
    };
    let was_available = change.was_available;
    let items = roster_items(server, &user).await;
    broadcast(server, &user, &st, &items).await;
    if was_available {
        return;
    }
    // The new resource learns about its siblings too: the other resources' broadcasts went
    // out before it was available (Prosody does the same; clients show "other devices").
    for other in server.sessions().available(&user) {
        if other.session.id() == session.id() {
            continue;
        }
        if let Some(last) = &other.presence {
            let mut last = Stanza::clone(last);
            last.set_to(Some(Jid::from(session.jid().clone())));
            let _ = server.sessions().send_local(session, last);
        }
    }
    // §4.2.1 / §4.3.1: initial presence probes every contact the user is subscribed to.
    for item in &items {
        if item.subscription.has_to()
            && let Ok(contact) = BareJid::new(&item.jid)
        {
            send::probe(server, &user, &contact).await;
        }
    }
    redeliver_requests(server, session, &user).await;
    server.fire_initial_presence(session).await;
}

/// §3.1.3: subscription requests the user has not answered are delivered again, as received,
/// each time the user becomes available; here to the resource that just did.
async fn redeliver_requests(server: &Server, session: &Session, user: &BareJid) {
    let (u, d) = parts(user);
    let pending = match server.stores().roster.pending_in(u, d).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(jid = %user, error = %e, what = "pending-list", "store error");
            return;
        }
    };
    for (contact, xml) in pending {
        let parsed = rookery_xml::Element::parse(&xml)
            .ok()
            .and_then(|el| Stanza::new(el).ok());
        match parsed {
            Some(st) => {
                let _ = server.sessions().send_local(session, st);
            }
            None => {
                tracing::warn!(jid = %user, contact, what = "pending-parse", "unreadable stored request");
            }
        }
    }
}

/// Unavailable presence without `to` (§4.5.2): to subscribers, to the user's other available
/// resources, and to everyone who got directed presence from this session.
pub(crate) async fn unavailable(server: &Server, session: &Session, st: Stanza) {
    let Some(change) = server
        .sessions()
        .set_presence(session, PresenceUpdate::Unavailable)
    else {
        return;
    };
    let (was_available, directed) = (change.was_available, change.directed);
    if was_available {
        // The sender hears its own sign-off too, as with available presence (Prosody echoes
        // it; its lastactivity.scs expects it). The broadcast below no longer counts the
        // sender among the available resources.
        let mut echo = st.clone();
        echo.set_to(Some(Jid::from(session.jid().clone())));
        let _ = server.sessions().send_local(session, echo);
    }
    signed_off(
        server,
        &session.jid().to_bare(),
        st,
        was_available,
        directed,
    )
    .await;
}

/// The common end of a session's availability, by presence or by disconnection (§4.5.2,
/// §4.6.3). `st` is the `unavailable` presence, from the session's full JID.
pub(crate) async fn signed_off(
    server: &Server,
    user: &BareJid,
    st: Stanza,
    was_available: bool,
    directed: HashSet<Jid>,
) {
    let mut covered: HashSet<BareJid> = HashSet::new();
    if was_available {
        let items = roster_items(server, user).await;
        covered = broadcast(server, user, &st, &items)
            .await
            .into_iter()
            .collect();
    }
    // Directed presence is tracked even before initial presence (e.g. a MUC join), and its
    // recipients must learn the session is gone either way (§4.6.3).
    for to in directed {
        if covered.contains(&to.to_bare()) {
            continue;
        }
        let mut copy = st.clone();
        copy.set_to(Some(to));
        server.route(copy).await;
    }
}

/// Presence without a type or of type `unavailable`, with a `to` (§4.6 directed presence).
pub(crate) async fn directed(server: &Server, session: &Session, st: Stanza) {
    let Some(to) = st.to().cloned() else {
        return;
    };
    let user = session.jid().to_bare();
    let target = to.to_bare();
    if st.type_attr() == "unavailable" {
        server.sessions().record_directed(session, &to, false);
    } else if target != user && !is_subscriber(server, &user, &target).await {
        // §4.6.2: remember who got presence outside the subscription, so they get
        // `unavailable` when the session goes away. Subscribers hear it from the broadcast.
        server.sessions().record_directed(session, &to, true);
    }
    server.route(st).await;
}

async fn is_subscriber(server: &Server, user: &BareJid, contact: &BareJid) -> bool {
    let (u, d) = parts(user);
    match server.stores().roster.get(u, d, contact.as_str()).await {
        Ok(Some(item)) => item.subscription.has_from(),
        Ok(None) => false,
        Err(e) => {
            tracing::error!(jid = %user, error = %e, what = "roster-get", "store error");
            false
        }
    }
}

/// A probe addressed to a local account (§4.3.2). Answered with the last presence of each
/// available resource when the prober may see the user (subscription `from`/`both`, or the
/// user itself), with `unavailable` from the bare JID when it may but nobody is online, and not
/// at all otherwise: an unauthorised prober learns nothing, not even that the account exists.
pub(crate) async fn probe(server: &Server, st: &Stanza) {
    let (Some(user), Some(prober)) = (st.to().map(Jid::to_bare), st.from().cloned()) else {
        return;
    };
    if prober.to_bare() != user && !is_subscriber(server, &user, &prober.to_bare()).await {
        return;
    }
    let mut sent = 0usize;
    for r in server.sessions().available(&user) {
        if let Some(last) = &r.presence {
            let mut last = Stanza::clone(last);
            last.set_to(Some(prober.clone()));
            server.route(last).await;
            sent += 1;
        }
    }
    if sent == 0 {
        send::route_presence(server, Some("unavailable"), &Jid::from(user), &prober).await;
    }
}

/// Availability presence addressed to a local account (RFC 6121 §8.5.2.1.1 / §8.5.3.1): to a
/// full JID, that session if bound; to the bare JID, every available resource.
pub(crate) fn to_account(server: &Server, st: Stanza) {
    let Some(to) = st.to() else {
        return;
    };
    match to.try_as_full() {
        Ok(full) => {
            let full = full.clone();
            let _ = server.sessions().send_to(&full, st);
        }
        Err(bare) => {
            server.sessions().send_to_available(bare, &st, false);
        }
    }
}
