//! The server end of a connection-manager link (SEED-PROTOCOLS §3): header checks, the
//! `<handshake/>`, the configuration IQ, then the link's read loop — session `create` /
//! `close` / `failed` IQs, `<route streamid>` payloads handed to the client sessions, and the
//! link extension (acks, resume). The write half belongs to `link::run_writer`.
//!
//! When a link drops, its sessions stay: the CM moves them to another of its links with
//! `<resume previd h/>` and the unacknowledged tail follows them. If the CM doesn't resume
//! within `[cm] resume_grace_secs`, the sessions close and the messages still queued for them
//! go to offline storage.

use super::hub::Hub;
use super::link::{self, Link};
use super::stream::{CmIn, CmStream, CmTx, INBOX};
use super::{CmRegistry, wire};
use crate::c2s::new_stream_id;
use crate::stream::{ReadError, XmppStream, framer_stream_error, stream_error_xml};
use rookery_core::Server;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::{Stanza, normalize_domain};
use rookery_xml::{Element, Node, StreamEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Framer limits on a link: one link carries many clients' stanzas, each wrapped in a route.
fn link_limits(server: &Server) -> rookery_xml::Limits {
    let mut l = crate::limits::framer_limits_s2s(server);
    l.max_stanza_bytes = l
        .max_stanza_bytes
        .max(server.config().limits.stanza_bytes + 16 * 1024);
    l.max_depth += 1;
    l
}

/// Entry point for an accepted connection on a `cm` listener.
pub async fn serve_link(server: Server, cms: CmRegistry, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let mut stream = XmppStream::new(tcp, link_limits(&server), ns::CM_LINK);
    let Some((address, stream_id)) = open(&server, &mut stream, peer).await else {
        return;
    };
    let Some(hub) = handshake(&server, &cms, &mut stream, &address, &stream_id).await else {
        return;
    };
    let link = Link::new(stream_id, address.clone());
    hub.add_link(link.clone());
    tracing::info!(cm = %hub.name, link = %address, %peer, what = "cm-link-up", "connection manager link up");
    // The configuration the CM advertises to its clients.
    link.push(bytes::Bytes::from(wire::to_link_bytes(&configuration(
        &server,
    ))));

    let (framer, io) = stream.into_parts();
    let (rd, wr) = tokio::io::split(io);
    let writer = tokio::spawn(link::run_writer(
        link.clone(),
        wr,
        server.config().cm.heartbeat(),
    ));
    let mut reader = link::LinkReader::new(framer, rd);
    let shutdown = read_loop(&server, &hub, &link, &mut reader).await;
    if shutdown {
        // Sessions wrote their own system-shutdown; give the writer a moment to flush them,
        // then end the link with the stream error.
        let err = stream_error_xml(&StreamError::new(StreamCondition::SystemShutdown));
        link.push_control(format!("{err}{}", rookery_xml::STREAM_CLOSE).as_bytes());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), link.wait_written()).await;
    }
    link.kill();
    let _ = writer.await;
    // Close the socket now (the writer dropped its half): the CM must see the link end
    // (idle timeout, protocol error) at once, not when the resume grace below runs out.
    drop(reader);
    tracing::info!(cm = %hub.name, link = %address, what = "cm-link-down", "connection manager link down");
    if !shutdown {
        link_lost(server, cms, hub, link).await;
    }
}

/// Reads and answers the CM's stream header. Returns (link address, our stream id).
async fn open(
    server: &Server,
    stream: &mut XmppStream<TcpStream>,
    peer: SocketAddr,
) -> Option<(String, String)> {
    let ev = tokio::time::timeout(server.config().limits.header_timeout(), stream.next_event())
        .await
        .ok()?;
    let stream_id = new_stream_id();
    let header = match ev {
        Ok(StreamEvent::Open(h)) => h,
        Ok(_) => {
            reject(stream, None, &stream_id, StreamCondition::NotWellFormed).await;
            return None;
        }
        Err(ReadError::Xml(e)) => {
            let _ = stream
                .send_header(&[("id", stream_id.as_str()), ("version", "1.0")])
                .await;
            stream.fail(&framer_stream_error(&e)).await;
            return None;
        }
        Err(ReadError::Closed) => return None,
    };
    let to = header.attr("to").map(str::to_owned);
    let cond = if header.ns != ns::STREAM || header.default_ns.as_deref() != Some(ns::CM_LINK) {
        Some(StreamCondition::InvalidNamespace)
    } else if to.as_deref().is_none_or(|t| link_name(t).is_none()) {
        Some(StreamCondition::BadFormat)
    } else if server.config().cm.secret.is_none() {
        Some(StreamCondition::InternalServerError)
    } else {
        None
    };
    if let Some(cond) = cond {
        tracing::info!(%peer, ?to, condition = cond.as_str(), what = "cm-link-refused", "connection manager link refused");
        reject(stream, to.as_deref(), &stream_id, cond).await;
        return None;
    }
    let to = to.unwrap_or_default();
    let _ = stream
        .send_header(&[
            ("from", to.as_str()),
            ("id", stream_id.as_str()),
            ("version", "1.0"),
        ])
        .await;
    // No STARTTLS on links yet: run CMs on loopback or a private network (README).
    let _ = stream.send(&Element::new("features", ns::STREAM)).await;
    Some((to, stream_id))
}

/// The CM's name from a link address `name/worker` (the part before the first `/`).
fn link_name(address: &str) -> Option<String> {
    let name = address.split('/').next()?;
    normalize_domain(name)
        .or_else(|| (!name.is_empty() && name.len() <= 1023).then(|| name.to_owned()))
}

async fn reject(
    stream: &mut XmppStream<TcpStream>,
    to: Option<&str>,
    stream_id: &str,
    cond: StreamCondition,
) {
    let mut attrs = vec![("id", stream_id), ("version", "1.0")];
    if let Some(t) = to {
        attrs.push(("from", t));
    }
    let _ = stream.send_header(&attrs).await;
    stream.fail(&StreamError::new(cond)).await;
}

/// Waits for `<handshake>`; answers IQs and routes sent before it with `not-authorized`.
async fn handshake(
    server: &Server,
    cms: &CmRegistry,
    stream: &mut XmppStream<TcpStream>,
    address: &str,
    stream_id: &str,
) -> Option<Arc<Hub<CmTx>>> {
    let secret = server.config().cm.secret.clone().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + server.config().limits.auth_timeout();
    loop {
        let el = match tokio::time::timeout_at(deadline, stream.next_event()).await {
            Err(_) => {
                stream
                    .fail(&StreamError::new(StreamCondition::ConnectionTimeout))
                    .await;
                return None;
            }
            Ok(Ok(StreamEvent::Stanza(el))) => el,
            Ok(Ok(StreamEvent::Close)) => {
                stream.close().await;
                return None;
            }
            Ok(Ok(StreamEvent::Open(_))) => {
                stream
                    .fail(&StreamError::new(StreamCondition::NotWellFormed))
                    .await;
                return None;
            }
            Ok(Err(ReadError::Xml(e))) => {
                stream.fail(&framer_stream_error(&e)).await;
                return None;
            }
            Ok(Err(ReadError::Closed)) => return None,
        };
        match el.name() {
            "handshake" if el.ns() == ns::CM_LINK => {
                if !wire::digest_matches(&el.text(), stream_id, &secret) {
                    tracing::warn!(link = %address, what = "cm-handshake", "connection manager handshake failed");
                    stream
                        .fail(&StreamError::new(StreamCondition::NotAuthorized))
                        .await;
                    return None;
                }
                let name = link_name(address).unwrap_or_default();
                let hub = cms.hub(&name);
                if hub.has_live_address(address) {
                    stream
                        .fail(&StreamError::new(StreamCondition::Conflict))
                        .await;
                    return None;
                }
                if stream
                    .send(&Element::new("handshake", ns::CM_LINK))
                    .await
                    .is_err()
                {
                    return None;
                }
                return Some(hub);
            }
            "iq" if !matches!(el.attr("type"), Some("result" | "error")) => {
                let reply = wire::iq_error(&el, "auth", "not-authorized", None, None);
                if stream.send(&reply).await.is_err() {
                    return None;
                }
            }
            "route" => {
                let reply = route_error(&el, "auth", "not-authorized", None);
                if stream.send(&reply).await.is_err() {
                    return None;
                }
            }
            _ => {
                stream
                    .fail(&StreamError::new(StreamCondition::NotAuthorized))
                    .await;
                return None;
            }
        }
    }
}

/// `<route type='error' streamid>` with an `<error/>` (the payload is not echoed).
fn route_error(req: &Element, err_type: &str, cond: &str, app: Option<&str>) -> Element {
    let mut route = Element::new("route", ns::CM_LINK).with_attr("type", "error");
    for k in ["streamid", "to", "from"] {
        if let Some(v) = req.attr(k) {
            let key = match k {
                "to" => "from",
                "from" => "to",
                other => other,
            };
            route.set_attr(key, v);
        }
    }
    let mut error = Element::new("error", ns::CM_LINK)
        .with_attr("type", err_type)
        .child(Element::new(cond, ns::STANZAS));
    if let Some(a) = app {
        error.append_child(Element::new(a, ns::CM_ERRORS));
    }
    route.append_child(error);
    route
}

/// The configuration IQ (SEED-PROTOCOLS §3.3) plus Rookery's extension: acknowledgements,
/// the features after authentication, and the client stream limits the CM must enforce.
fn configuration(server: &Server) -> Element {
    let cfg = server.config();
    let mut c = Element::new("configuration", ns::CM);
    let mut tls = Element::new("starttls", ns::TLS);
    if cfg.c2s.require_encryption {
        tls.append_child(Element::new("required", ns::TLS));
    }
    c.append_child(tls);
    let mut mechs = Element::new("mechanisms", ns::SASL);
    // The CM terminates TLS, so the server has no channel binding to offer: no -PLUS.
    let no_bindings = rookery_proto::sasl::ChannelBindings::default();
    for m in rookery_proto::sasl::advertised_mechanisms(true, false, &no_bindings) {
        mechs.append_child(Element::new("mechanism", ns::SASL).with_text(m.name()));
    }
    c.append_child(mechs);
    if cfg.hosts.iter().any(|h| h.registration) {
        c.append_child(Element::new("register", ns::REGISTER_FEATURE));
    }
    let bound = Element::new("bound", ns::ROOKERY_CM)
        .child(Element::new("bind", ns::BIND))
        .child(Element::new("session", ns::SESSION).child(Element::new("optional", ns::SESSION)))
        .child(Element::new("ver", ns::ROSTER_VER))
        .child(Element::new("sub", ns::PRE_APPROVAL));
    c.append_child(bound);
    let l = &cfg.limits;
    c.append_child(
        Element::new("limits", ns::ROOKERY_CM)
            .with_attr("preauth-bytes", l.preauth_stanza_bytes.to_string())
            .with_attr("stanza-bytes", l.stanza_bytes.to_string())
            .with_attr("depth", l.max_depth.to_string())
            .with_attr("elements", l.max_elements.to_string())
            .with_attr("attrs", l.max_attrs.to_string())
            .with_attr("ns-decls", l.max_ns_decls.to_string())
            .with_attr("auth-secs", l.auth_timeout_secs.to_string()),
    );
    c.append_child(Element::new("acks", ns::ROOKERY_CM));
    Element::new("iq", ns::CM_LINK)
        .with_attr("type", "set")
        .with_attr("id", "config")
        .child(c)
}

/// Reads the link until it ends. True when it ended because the server is shutting down.
async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    server: &Server,
    hub: &Arc<Hub<CmTx>>,
    link: &Arc<Link>,
    stream: &mut link::LinkReader<R>,
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
        // Counted before it is handled: handling always completes once started (this task is
        // only stopped between elements), so an ack or `<resumed h/>` never claims less than
        // was taken, and a resumed tail never repeats an element.
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
            on_resume(hub, link, &el);
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
        Some((ns::CM, "close")) => match hub.session(&id) {
            Some(tx) => {
                let _ = tx.send(CmIn::Close).await;
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
            let st = Stanza::new(children[0].clone())
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
fn on_resume(hub: &Arc<Hub<CmTx>>, link: &Arc<Link>, el: &Element) {
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
    let Some(our_h) = hub.link(previd).map(|l| l.received()) else {
        link.push_control(&wire::link_ext("failed", previd, None));
        return;
    };
    let answer = wire::link_ext("resumed", previd, Some(our_h));
    if let Some(r) = hub.resume(previd, link, h, Some(&answer)) {
        tracing::info!(cm = %hub.name, from = %previd, onto = %link.address, sessions = r.moved, what = "cm-link-resumed", "link traffic resumed on another link");
    }
}

/// After a link dropped: if the CM doesn't speak the resume extension, move its sessions to a
/// live link at once; else wait for it to resume them, and when it doesn't, close them and
/// keep what was queued for them (messages go to offline storage).
async fn link_lost(server: Server, cms: CmRegistry, hub: Arc<Hub<CmTx>>, link: Arc<Link>) {
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
    for (_, tx) in &sessions {
        let _ = tx.send(CmIn::Close).await;
    }
    for bytes in tail {
        for st in routed_messages(&bytes) {
            rookery_core::deliver::store_undeliverable(&server, st).await;
        }
    }
    cms.forget_if_empty(&hub.name);
}

/// The messages inside serialized `<route>` elements (a dead link's queue).
fn routed_messages(bytes: &[u8]) -> Vec<Stanza> {
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
            for c in route.children() {
                if c.is("message", ns::CLIENT)
                    && let Ok(st) = Stanza::new(c.clone())
                {
                    out.push(st);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            got[0]
                .element()
                .get_child("body", ns::CLIENT)
                .unwrap()
                .text(),
            "hi"
        );
    }

    #[test]
    fn link_names() {
        assert_eq!(
            link_name("cm01/Connection Worker - 1").as_deref(),
            Some("cm01")
        );
        assert_eq!(link_name("/x"), None);
    }
}
