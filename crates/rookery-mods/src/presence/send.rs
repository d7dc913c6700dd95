//! Presence the server itself sends on a user's behalf: subscription auto-replies, probes, the
//! user's current presence to a newly subscribed contact, `unavailable` when a subscription is
//! cancelled. Shared by the broadcast and subscription halves of the presence module; every
//! stanza leaves through `Server::route`, so local and remote contacts are treated alike.

use rookery_core::Server;
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, Jid, Stanza};
use rookery_xml::Element;

/// `<presence type=ty from=from to=to/>` (`ty` `None` = available).
pub(crate) fn presence(ty: Option<&str>, from: &Jid, to: &Jid) -> Option<Stanza> {
    let mut el = Element::new("presence", ns::CLIENT)
        .with_attr("from", from.as_str())
        .with_attr("to", to.as_str());
    if let Some(ty) = ty {
        el.set_attr("type", ty);
    }
    match Stanza::new(el) {
        Ok(st) => Some(st),
        Err(e) => {
            // Both addresses are parsed JIDs and the type is one of ours: unreachable in
            // practice, logged rather than panicking if the JID crate ever disagrees.
            tracing::error!(error = ?e, what = "presence-build", "could not build presence");
            None
        }
    }
}

/// Routes a server-generated presence of type `ty` between two JIDs.
pub(crate) async fn route_presence(server: &Server, ty: Option<&str>, from: &Jid, to: &Jid) {
    if let Some(st) = presence(ty, from, to) {
        server.route(st).await;
    }
}

/// RFC 6121 §3.1.5 (and §3.4 / §3.1.3 for approvals the server makes itself): the contact may
/// now see the user, so send it the last presence of each of the user's available resources.
/// With none available the contact gets `unavailable` from the bare JID, so it learns the user
/// is offline rather than nothing (Prosody does the same).
pub(crate) async fn current_presence(server: &Server, user: &BareJid, contact: &BareJid) {
    let to = Jid::from(contact.clone());
    let mut sent = 0usize;
    for r in server.sessions().available(user) {
        if let Some(last) = &r.presence {
            let mut last = Stanza::clone(last);
            last.set_to(Some(to.clone()));
            server.route(last).await;
            sent += 1;
        }
    }
    if sent == 0 {
        route_presence(server, Some("unavailable"), &Jid::from(user.clone()), &to).await;
    }
}

/// RFC 6121 §3.2.2 / §3.3.3: the contact may no longer see the user, so each available resource
/// signs off towards it.
pub(crate) async fn unavailable_from_resources(server: &Server, user: &BareJid, contact: &BareJid) {
    let to = Jid::from(contact.clone());
    for r in server.sessions().available(user) {
        let from = Jid::from(r.jid().clone());
        route_presence(server, Some("unavailable"), &from, &to).await;
    }
}

/// A probe from the user's bare JID (RFC 6121 §4.3.1: probes are sent on the user's behalf, from
/// the bare JID, to contacts the user is subscribed to).
pub(crate) async fn probe(server: &Server, user: &BareJid, contact: &BareJid) {
    route_presence(
        server,
        Some("probe"),
        &Jid::from(user.clone()),
        &Jid::from(contact.clone()),
    )
    .await;
}

/// `<presence type='unavailable' from=from/>` without `to` (set per recipient by the broadcast).
pub(crate) fn unavailable_from(from: &Jid) -> Option<Stanza> {
    let el = Element::new("presence", ns::CLIENT)
        .with_attr("from", from.as_str())
        .with_attr("type", "unavailable");
    Stanza::new(el).ok()
}
