//! The server end of a connection-manager link (protocol: `wire.rs`): header checks, the
//! `<handshake/>` and the configuration IQ; then `dispatch.rs` reads the link and
//! `link::run_writer` writes it, and when it ends `expire.rs` decides what happens to its
//! sessions.
//!
//! When a link drops, its sessions stay: the CM moves them to another of its links with
//! `<resume previd h/>` and the unacknowledged tail follows them. If the CM doesn't resume
//! within `[cm] resume_grace_secs`, the sessions close and the messages still queued for them
//! go to offline storage.

use super::CmRegistry;
use super::stream::CmTx;
use rookery_core::Server;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::normalize_domain;
use rookery_transport::cm::hub::Hub;
use rookery_transport::cm::link::{self, Link};
use rookery_transport::cm::wire;
use rookery_transport::stream::{
    ReadError, XmppStream, framer_stream_error, new_stream_id, stream_error_xml,
};
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

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
    let shutdown = super::dispatch::read_loop(&server, &hub, &link, &mut reader).await;
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
        super::expire::link_lost(server, cms, hub, link).await;
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
pub(super) fn route_error(req: &Element, err_type: &str, cond: &str, app: Option<&str>) -> Element {
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

/// The configuration IQ Openfire's server sends after the handshake (client TLS policy, SASL
/// mechanisms, registration) plus Rookery's extension: acknowledgements,
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
    // The features after authentication, as c2s offers them (`c2s/features.rs`): bind, the
    // legacy session, stream management, then what the modules offer. The CM serves one set
    // for all its clients: the default host's.
    let mut bound = Element::new("bound", ns::ROOKERY_CM)
        .child(Element::new("bind", ns::BIND))
        .child(Element::new("session", ns::SESSION).child(Element::new("optional", ns::SESSION)))
        .child(Element::new("sm", ns::SM));
    let host = cfg
        .hosts
        .first()
        .map(|h| h.domain.as_str())
        .unwrap_or_default();
    for el in server.stream_features(rookery_core::Stage::AfterAuth, host) {
        bound.append_child(el);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names() {
        assert_eq!(
            link_name("cm01/Connection Worker - 1").as_deref(),
            Some("cm01")
        );
        assert_eq!(link_name("/x"), None);
    }
}
