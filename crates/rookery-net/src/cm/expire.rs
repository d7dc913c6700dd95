//! What happens to a CM link that dropped and was not resumed: after `[cm] resume_grace_secs`
//! its sessions lose their connection (a stream-managed one waits to be resumed, the others
//! end) and the messages still queued for the others go to offline storage. A link of a
//! CM without the acknowledgement extension moves its sessions to a live link at once.

use super::CmRegistry;
use super::stream::{CmIn, CmTx};
use rookery_core::Server;
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_transport::cm::hub::Hub;
use rookery_transport::cm::link::Link;
use rookery_transport::cm::wire;
use rookery_xml::StreamEvent;
use std::collections::HashSet;
use std::sync::Arc;

/// After a link dropped: if the CM doesn't speak the resume extension, move its sessions to a
/// live link at once; else wait for it to resume them, and when it doesn't, tell them their
/// connection was lost and keep what was queued for those that do not keep it themselves
/// (messages go to offline storage).
pub(super) async fn link_lost(
    server: Server,
    cms: CmRegistry,
    hub: Arc<Hub<CmTx>>,
    link: Arc<Link>,
) {
    if !link.retaining()
        && let Some(live) = hub.pick_link()
    {
        hub.resume(&link.id, &live, 0, None);
        return;
    }
    let grace = server.config().cm.resume_grace();
    tokio::select! {
        _ = tokio::time::sleep(grace) => {}
        _ = server.shutdown_token().cancelled() => {}
    }
    let Some((sessions, tail)) = hub.drop_link(&link.id) else {
        return; // resumed
    };
    tracing::info!(cm = %hub.name, link = %link.address, sessions = sessions.len(), queued = tail.len(), what = "cm-link-expired", "link not resumed; closing its sessions");
    // Taken before the sessions hear of it: one that ends leaves the hub, flag and all.
    let managed: HashSet<&str> = sessions
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| hub.is_stream_managed(id))
        .collect();
    // Lost, not closed: to the session its client's connection broke, which a
    // stream-managed one survives (XEP-0198 §5), waiting to be resumed on another connection.
    for (_, tx) in &sessions {
        let _ = tx.send(CmIn::Lost).await;
    }
    for bytes in tail {
        for (streamid, st) in routed_messages(&bytes) {
            // A stream-managed session still holds its copy, to resend on resumption or
            // route on when its window ends: storing this one too would deliver it twice.
            if !managed.contains(streamid.as_str()) {
                rookery_core::deliver::store_undeliverable(&server, st).await;
            }
        }
    }
    cms.forget_if_empty(&hub.name);
}

/// The messages inside serialized `<route>` elements (a dead link's queue), each with its
/// route's stream id.
fn routed_messages(bytes: &[u8]) -> Vec<(String, Stanza)> {
    let mut framer = rookery_xml::Framer::new(rookery_xml::Limits {
        max_stanza_bytes: usize::MAX / 2,
        ..rookery_xml::Limits::default()
    });
    let mut head = Vec::new();
    rookery_xml::stream_open(&mut head, ns::CM_LINK, &[], &[]);
    framer.feed(&head);
    framer.feed(bytes);
    let mut out = Vec::new();
    while let Ok(Some(ev)) = framer.next_event() {
        if let StreamEvent::Stanza(route) = ev
            && route.is("route", ns::CM_LINK)
        {
            let streamid = route.attr("streamid").unwrap_or_default();
            for c in route.children() {
                let c = wire::client_payload(c.clone());
                if c.is("message", ns::CLIENT)
                    && let Ok(st) = Stanza::new(c)
                {
                    out.push((streamid.to_owned(), st));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_xml::Element;

    #[test]
    fn messages_are_recovered_from_queued_routes() {
        let mut out = Vec::new();
        let msg = Element::new("message", ns::CLIENT)
            .with_attr("to", "a@localhost/r")
            .with_attr("from", "b@localhost/x")
            .child(Element::new("body", ns::CLIENT).with_text("hi"));
        wire::write_route(&mut out, "localhost", "cm1", "s1", &msg);
        wire::write_route(
            &mut out,
            "localhost",
            "cm1",
            "s1",
            &Element::new("presence", ns::CLIENT),
        );
        let got = routed_messages(&out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "s1");
        assert_eq!(
            got[0]
                .1
                .element()
                .get_child("body", ns::CLIENT)
                .unwrap()
                .text(),
            "hi"
        );
    }
}
