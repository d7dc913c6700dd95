//! The read loop of an authenticated CM link on the server: session `create` / `close` / `failed`
//! IQs, `<route streamid>` payloads handed to the client sessions (both as Openfire's server
//! handles them, see `wire.rs`), and the link extension — acknowledgements and `<resume/>` of a
//! dropped link's traffic onto this one.

use super::serve::route_error;
use super::stream::{CmIn, CmStream, CmTx, INBOX};
use rookery_core::Server;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::{Stanza, normalize_domain};
use rookery_transport::cm::hub::Hub;
use rookery_transport::cm::link::{Link, LinkReader};
use rookery_transport::cm::wire;
use rookery_transport::stream::{ReadError, framer_stream_error, stream_error_xml};
use rookery_xml::{Element, Node, StreamEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Reads the link until it ends. True when it ended because the server is shutting down.
pub(super) async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    server: &Server,
    hub: &Arc<Hub<CmTx>>,
    link: &Arc<Link>,
    stream: &mut LinkReader<R>,
) -> bool {
    let idle = server.config().cm.idle_timeout();
    loop {
        let ev = tokio::select! {
            _ = server.shutdown_token().cancelled() => return true,
            _ = link.closed.cancelled() => return false,
            ev = tokio::time::timeout_at(stream.last_read() + idle, stream.next_event()) => ev,
        };
        let el = match ev {
            // Whitespace heartbeats arrived meanwhile (they yield no event): not idle.
            Err(_) if stream.last_read().elapsed() < idle => continue,
            Err(_) => {
                tracing::info!(link = %link.address, what = "cm-link-idle", "connection manager link idle, closing");
                return false;
            }
            Ok(Ok(StreamEvent::Stanza(el))) => el,
            Ok(Ok(StreamEvent::Close)) | Ok(Err(ReadError::Closed)) => return false,
            Ok(Ok(StreamEvent::Open(_))) => return false,
            Ok(Err(ReadError::Xml(e))) => {
                fail_link(link, &framer_stream_error(&e)).await;
                return false;
            }
        };
        // Counted before it is handled, within the reader's turn: handling always completes
        // once started (this task is only stopped between elements), so an ack or
        // `<resumed h/>` never claims less than was taken; and once the CM resumed this link
        // elsewhere (`Link::seal`), nothing more is taken from it, so a resumed tail never
        // repeats an element.
        let Some(_turn) = link.read_turn().await else {
            return false;
        };
        if wire::is_reliable(&el) {
            link.note_received();
        }
        if !on_element(server, hub, link, el).await {
            return false;
        }
    }
}

/// One element from the CM. False: the link must close.
async fn on_element(server: &Server, hub: &Arc<Hub<CmTx>>, link: &Arc<Link>, el: Element) -> bool {
    match (el.ns(), el.name()) {
        (ns::CM_LINK, "route") => {
            on_route(hub, link, el).await;
            true
        }
        (ns::CM_LINK, "iq") => {
            on_iq(server, hub, link, el).await;
            true
        }
        (ns::ROOKERY_CM, "a") => {
            if let Some(h) = wire::h_attr(&el) {
                link.ack(h);
            }
            true
        }
        (ns::ROOKERY_CM, "resume") => {
            on_resume(hub, link, &el).await;
            true
        }
        (ns::STREAM, "error") => false,
        _ => {
            // Top-level stanzas on a link are a protocol violation (Openfire: internal error).
            let err = StreamError::new(StreamCondition::UnsupportedStanzaType)
                .with_text("only route, iq and link control elements are allowed on a link");
            fail_link(link, &err).await;
            false
        }
    }
}

/// Ends the link with a stream error. Waits (bounded) for the writer to put it on the wire:
/// the caller kills the link next, and the writer stops at once when it is killed.
async fn fail_link(link: &Link, err: &StreamError) {
    let err = stream_error_xml(err);
    link.push_control(format!("{err}{}", rookery_xml::STREAM_CLOSE).as_bytes());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), link.wait_written()).await;
}

async fn on_route(hub: &Arc<Hub<CmTx>>, link: &Arc<Link>, mut el: Element) {
    let Some(streamid) = el.attr("streamid").map(str::to_owned) else {
        let reply = route_error(&el, "modify", "bad-request", Some("id-required"));
        link.push(bytes::Bytes::from(wire::to_link_bytes(&reply)));
        return;
    };
    if el.attr("type") == Some("error") {
        // The CM could not deliver something: nothing to answer (never an error to an error).
        return;
    }
    let Some(tx) = hub.session(&streamid) else {
        let reply = route_error(&el, "cancel", "item-not-found", None);
        link.push(bytes::Bytes::from(wire::to_link_bytes(&reply)));
        return;
    };
    let mut payload = el.take_nodes().into_iter().filter_map(|n| match n {
        Node::Element(e) => Some(e),
        Node::Text(_) => None,
    });
    let (Some(child), None) = (payload.next(), payload.next()) else {
        let reply = route_error(&el, "modify", "bad-request", Some("invalid-payload"));
        link.push(bytes::Bytes::from(wire::to_link_bytes(&reply)));
        return;
    };
    // Waiting here pushes back on the link (and so the CM) when a session falls behind.
    let child = wire::client_payload(child);
    let _ = tx.send(CmIn::Element(Box::new(child))).await;
}

async fn on_iq(server: &Server, hub: &Arc<Hub<CmTx>>, link: &Arc<Link>, el: Element) {
    let ty = el.attr("type").unwrap_or_default();
    if ty == "result" {
        if el.attr("id") == Some("config") && el.get_child("acks", ns::ROOKERY_CM).is_none() {
            // Not a Rookery CM: it will never acknowledge, so don't keep what was written.
            link.stop_retaining();
        }
        return;
    }
    if ty == "error" {
        tracing::info!(link = %link.address, iq = %el.to_xml(), what = "cm-iq-error", "connection manager answered with an error");
        return;
    }
    let reply = |r: Element| link.push(bytes::Bytes::from(wire::to_link_bytes(&r)));
    if ty != "set" {
        reply(wire::iq_error(&el, "modify", "bad-request", None, None));
        return;
    }
    let Some((session, action)) = wire::session_action(&el) else {
        reply(wire::iq_error(&el, "modify", "bad-request", None, None));
        return;
    };
    let Some(id) = session
        .attr("id")
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
    else {
        reply(wire::iq_error(
            &el,
            "modify",
            "bad-request",
            Some("id-required"),
            None,
        ));
        return;
    };
    let result = || {
        let mut r = Element::new("iq", ns::CM_LINK).with_attr("type", "result");
        if let Some(i) = el.attr("id") {
            r.set_attr("id", i);
        }
        r.child(Element::new("session", ns::CM).with_attr("id", id.as_str()))
    };
    match action.map(|a| (a.ns(), a.name())) {
        Some((ns::CM, "create")) => {
            let host = action
                .and_then(|a| a.get_child("host", ns::CM))
                .and_then(|h| h.attr("name"))
                .and_then(normalize_domain)
                .or_else(|| server.config().hosts.first().map(|h| h.domain.clone()))
                .unwrap_or_default();
            let addr = action
                .and_then(|a| a.get_child("host", ns::CM))
                .and_then(|h| h.attr("address"))
                .and_then(|a| a.parse::<std::net::IpAddr>().ok());
            let (tx, rx) = mpsc::channel(INBOX);
            if !hub.insert_session(&id, tx, link.clone()) {
                reply(wire::iq_error(&el, "cancel", "conflict", None, None));
                return;
            }
            let stream = CmStream::new(rx, hub.clone(), id.clone(), host);
            let peer = SocketAddr::new(
                addr.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                0,
            );
            // Answer first: the CM releases what the client sent meanwhile on seeing it.
            reply(result());
            server
                .tasks()
                .spawn(crate::c2s::serve_routed(server.clone(), stream, peer, id));
        }
        Some((ns::CM, "close")) => match hub.start_close(&id) {
            Some(tx) => {
                let lost = action.is_some_and(|a| a.get_child("lost", ns::ROOKERY_CM).is_some());
                let _ = tx.send(if lost { CmIn::Lost } else { CmIn::Close }).await;
                reply(result());
            }
            None => reply(wire::iq_error(&el, "cancel", "item-not-found", None, None)),
        },
        Some((ns::CM, "failed")) => {
            let children: Vec<&Element> =
                action.map(|a| a.children().collect()).unwrap_or_default();
            if children.len() != 1 {
                reply(wire::iq_error(
                    &el,
                    "modify",
                    "bad-request",
                    Some("invalid-payload"),
                    None,
                ));
                return;
            }
            let st = Stanza::new(wire::failed_payload(children[0].clone()))
                .ok()
                .filter(|st| st.kind() == rookery_proto::stanza::Kind::Message);
            let Some(st) = st else {
                // Only messages are stored; anything else is not a stanza the CM may hand back.
                reply(wire::iq_error(
                    &el,
                    "modify",
                    "bad-request",
                    Some("unknown-stanza"),
                    None,
                ));
                return;
            };
            reply(result());
            rookery_core::deliver::store_undeliverable(server, st).await;
        }
        _ => reply(wire::iq_error(&el, "modify", "bad-request", None, None)),
    }
}

/// `<resume previd h/>`: the CM moves a dead link's traffic onto this one.
async fn on_resume(hub: &Arc<Hub<CmTx>>, link: &Arc<Link>, el: &Element) {
    let (Some(previd), Some(h)) = (el.attr("previd"), wire::h_attr(el)) else {
        return;
    };
    if previd == link.id {
        return;
    }
    if let Some(our_h) = hub.already_resumed(previd) {
        // The link that carried our `<resumed/>` died before the CM read it: answer again;
        // the traffic moved on with that link and follows its own resume.
        link.push_control(&wire::link_ext("resumed", previd, Some(our_h)));
        return;
    }
    let Some(dead) = hub.link(previd) else {
        link.push_control(&wire::link_ext("failed", previd, None));
        return;
    };
    // The old connection may still hold bytes we have not read: stop its reader first, so
    // the count we report is final (the CM resends everything after it).
    let our_h = dead.seal().await;
    let answer = wire::link_ext("resumed", previd, Some(our_h));
    match hub.resume(previd, link, h, Some(&answer)) {
        Some(r) => {
            tracing::info!(cm = %hub.name, from = %previd, onto = %link.address, sessions = r.moved, what = "cm-link-resumed", "link traffic resumed on another link");
        }
        // Another `<resume/>` for the same link finished while we waited for the seal.
        None => match hub.already_resumed(previd) {
            Some(our_h) => link.push_control(&wire::link_ext("resumed", previd, Some(our_h))),
            None => link.push_control(&wire::link_ext("failed", previd, None)),
        },
    }
}
