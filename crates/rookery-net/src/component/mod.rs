//! XEP-0114 external components, server side: one task per connection on a `component`
//! listener. `handshake.rs` checks the stream header and the shared-secret handshake; then the
//! connection binds its domain in core's component table (`Server::components`) through a
//! bounded mailbox (`link.rs`) and this actor runs the stream: stanzas routed to the domain (or
//! its subdomains) are written out in `jabber:component:accept`, and stanzas the component sends
//! go to `Server::route` once their `from` is shown to be within its domain (`invalid-from`
//! otherwise, as Prosody does). Idle streams get a whitespace keepalive so a dead peer is
//! noticed; shutdown sends `system-shutdown`; when the connection ends the domain is unbound
//! (it then answers `service-unavailable`) and what was still queued for it bounces.

mod handshake;
mod link;

use crate::shaper::Shaper;
use link::Link;
use rookery_config::PeerKind;
use rookery_core::Server;
use rookery_core::components::{BindError, ComponentLink};
use rookery_proto::error::{StanzaError, StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::{Jid, Stanza, StanzaParseError};
use rookery_transport::limits::UnauthGuard;
use rookery_transport::stream::{ReadError, XmppStream, framer_stream_error};
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the stream may stay silent in our direction before we send a single space. TCP
/// notices a vanished peer only when it has something to send; this makes sure it does, about
/// as often as Prosody and ejabberd do.
pub const KEEPALIVE: Duration = Duration::from_secs(60);

/// Queued stanzas written per flush, so a busy router can't starve reads.
const WRITE_BATCH: usize = 64;

/// Entry point for an accepted connection on a `component` listener. `guard` holds the
/// connection's unauthenticated slot until the handshake succeeded.
pub async fn serve(server: Server, tcp: TcpStream, peer: SocketAddr, guard: UnauthGuard) {
    serve_with(server, tcp, peer, guard, KEEPALIVE).await;
}

pub(crate) async fn serve_with(
    server: Server,
    tcp: TcpStream,
    peer: SocketAddr,
    guard: UnauthGuard,
    keepalive: Duration,
) {
    let _ = tcp.set_nodelay(true);
    let limits = crate::limits::framer_limits(&server, false);
    let mut stream = XmppStream::new(tcp, limits, ns::COMPONENT);
    let Some(domain) = handshake::accept(&server, &mut stream, peer).await else {
        return;
    };
    drop(guard);
    let (link, rx) = Link::new(server.config().limits.session_mailbox);
    let link_id = link.link_id();
    match server.components().bind(&domain, Arc::new(link)) {
        Ok(()) => {}
        Err(BindError::Conflict) => {
            // XEP-0114 has no stanza distribution; like Prosody, the first connection keeps
            // the domain and the newcomer is told why it can't have it.
            tracing::warn!(%peer, %domain, what = "component-conflict", "component domain already connected");
            let err = StreamError::new(StreamCondition::Conflict)
                .with_text("another connection already serves this component domain");
            stream.fail(&err).await;
            return;
        }
        Err(BindError::LocalHost) => {
            stream
                .fail(&StreamError::new(StreamCondition::HostUnknown))
                .await;
            return;
        }
    }
    // Bound before the component hears of its success, so nothing it is sent afterwards can
    // miss it.
    let ok = stream
        .send(&Element::new("handshake", ns::COMPONENT))
        .await
        .is_ok();
    tracing::info!(%peer, %domain, what = "component-connected", "component connected");
    stream.set_limits(crate::limits::framer_limits_s2s(&server));
    let mut unflushed = Vec::new();
    let mut rx = rx;
    let clean = if ok {
        run(
            &server,
            &mut stream,
            &domain,
            &mut rx,
            &mut unflushed,
            keepalive,
        )
        .await
    } else {
        false
    };
    server.components().unbind_all(link_id);
    // Nothing accepted for the component is dropped silently: what was queued or not yet
    // flushed bounces to its sender, as for a component that was never there.
    rx.close();
    while let Ok(st) = rx.try_recv() {
        unflushed.push(st);
    }
    for st in unflushed {
        server.bounce(&st, StanzaError::service_unavailable()).await;
    }
    tracing::info!(%peer, %domain, clean, what = "component-disconnected", "component disconnected");
}

/// The bound stream until it ends; true for a clean end (the component closed, or shutdown).
async fn run<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    domain: &str,
    rx: &mut mpsc::Receiver<Stanza>,
    unflushed: &mut Vec<Stanza>,
    keepalive: Duration,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let shutdown = server.shutdown_token().clone();
    let idle_limit = server.config().limits.stanza_idle_timeout();
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    let mut shaper = Shaper::new(server.config().limits.shaping(PeerKind::Component));
    // Reading is paused until then (the component overspent its rate: `shaper.rs`).
    let mut paused_until: Option<Instant> = None;
    loop {
        // Everything already buffered first, then wait for more.
        while paused_until.is_none() {
            if let Some(at) = shaper.pause(&domain) {
                paused_until = Some(at);
                break;
            }
            match stream.poll_event() {
                Ok(Some(StreamEvent::Stanza(el))) => {
                    shaper.charge_stanza();
                    if let Err(err) = on_element(server, stream, domain, el).await {
                        tracing::warn!(%domain, error = %err, what = "component-stream-error", "closing component stream");
                        stream.fail(&err).await;
                        return false;
                    }
                }
                Ok(Some(StreamEvent::Close)) => {
                    stream.close().await;
                    return true;
                }
                Ok(Some(StreamEvent::Open(_))) => {
                    let err = StreamError::new(StreamCondition::NotWellFormed)
                        .with_text("unexpected stream header");
                    stream.fail(&err).await;
                    return false;
                }
                Ok(None) => break,
                Err(e) => {
                    stream.fail(&framer_stream_error(&e)).await;
                    return false;
                }
            }
        }
        let mut next_tick = last_write + keepalive;
        if stream.framer().in_stanza() {
            next_tick = next_tick.min(last_read + idle_limit);
        }
        let buffered_before = stream.framer().buffered_len();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                stream.fail(&StreamError::new(StreamCondition::SystemShutdown)).await;
                return true;
            }
            st = rx.recv() => {
                // The sender half lives in the component table until we unbind: never None here.
                let Some(st) = st else { return false };
                stream.queue(st.element());
                unflushed.push(st);
                while unflushed.len() < WRITE_BATCH {
                    let Ok(st) = rx.try_recv() else { break };
                    stream.queue(st.element());
                    unflushed.push(st);
                }
                if stream.flush().await.is_err() {
                    tracing::info!(%domain, what = "component-write-failed", "component not reading");
                    return false;
                }
                unflushed.clear();
                last_write = Instant::now();
            }
            r = stream.read_more(), if paused_until.is_none() => match r {
                Ok(()) => {
                    shaper.charge_bytes(stream.framer().buffered_len().saturating_sub(buffered_before));
                    last_read = Instant::now();
                }
                Err(ReadError::Closed) => return false,
                Err(ReadError::Xml(e)) => {
                    stream.fail(&framer_stream_error(&e)).await;
                    return false;
                }
            },
            _ = tokio::time::sleep_until(paused_until.unwrap_or(next_tick)), if paused_until.is_some() => {
                paused_until = None;
                // Not idle: we were not reading it.
                last_read = Instant::now();
            }
            _ = tokio::time::sleep_until(next_tick) => {
                let now = Instant::now();
                if stream.framer().in_stanza() && now >= last_read + idle_limit {
                    let err = StreamError::new(StreamCondition::ConnectionTimeout)
                        .with_text("stanza not completed in time");
                    stream.fail(&err).await;
                    return false;
                }
                if now >= last_write + keepalive {
                    stream.queue_raw(b" ");
                    if stream.flush().await.is_err() {
                        return false;
                    }
                    last_write = now;
                }
            }
        }
    }
}

/// One element from the component. Err = close the stream with this error.
async fn on_element<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    domain: &str,
    el: Element,
) -> Result<(), StreamError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    // Stanzas inherit `jabber:component:accept`; some libraries write `jabber:client`
    // explicitly, which Prosody and ejabberd accept too.
    let parsed = match Stanza::from_element(el, ns::COMPONENT) {
        Err((StanzaParseError::NotAStanza, el)) if el.ns() == ns::CLIENT => {
            Stanza::from_element(el, ns::CLIENT)
        }
        other => other,
    };
    let mut st = match parsed {
        Ok(st) => st,
        Err((StanzaParseError::NotAStanza, el)) => {
            return Err(StreamError::new(StreamCondition::UnsupportedStanzaType)
                .with_text(format!("unsupported element {{{}}}{}", el.ns(), el.name())));
        }
        Err((StanzaParseError::Bad(err), el)) => {
            // An unusable address: answer the component itself, addressed back with the raw
            // attributes so a component serving many JIDs can tell which stanza failed.
            if el.attr("type") != Some("error") {
                let mut reply = Element::new(el.name(), ns::CLIENT).with_attr("type", "error");
                for (attr, from) in [("id", "id"), ("to", "from"), ("from", "to")] {
                    if let Some(v) = el.attr(from) {
                        reply.set_attr(attr, v);
                    }
                }
                reply.append_child(err.to_element(ns::CLIENT));
                write(stream, &reply).await?;
            }
            return Ok(());
        }
    };
    // The component is trusted for its own domain only (XEP-0114 §3; Prosody's
    // validate_from_addresses): anything else is spoofing. A missing `from` means the component
    // itself, as Prosody and Metronome read it (older components omit it).
    let from_ok = match st.from() {
        Some(f) => within_domain(f.domain().as_str(), domain),
        None => {
            let own = Jid::new(domain)
                .map_err(|_| StreamError::new(StreamCondition::InternalServerError))?;
            st.set_from(Some(own));
            true
        }
    };
    if !from_ok {
        let from = st.element().attr("from").unwrap_or_default();
        return Err(
            StreamError::new(StreamCondition::InvalidFrom).with_text(format!(
                "'from' must be an address at {domain} or its subdomains, not {from}"
            )),
        );
    }
    if st.to().is_none() {
        // Components must address every stanza (there is no implicit recipient).
        let err = StanzaError::bad_request("components must give a 'to' address");
        if let Some(reply) = st.error_reply(err) {
            write(stream, reply.element()).await?;
        }
        return Ok(());
    }
    server.route(st).await;
    Ok(())
}

async fn write<IO>(stream: &mut XmppStream<IO>, el: &Element) -> Result<(), StreamError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    stream
        .send(el)
        .await
        .map_err(|_| StreamError::new(StreamCondition::UndefinedCondition))
}

/// Whether `candidate` is `domain` or a subdomain of it, on label boundaries:
/// `room.echo.example` is within `echo.example`, `xecho.example` is not.
fn within_domain(candidate: &str, domain: &str) -> bool {
    candidate == domain
        || candidate
            .strip_suffix(domain)
            .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
}

#[cfg(test)]
mod tests;
