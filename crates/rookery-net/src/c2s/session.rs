//! The bound c2s session actor: one task owning the socket, reading stanzas from the client and
//! the mailbox fed by the rest of the server, writing both ways. It stamps `from` on everything
//! the client sends (RFC 6120 §8.1.2.1), answers the legacy session iq, pings idle clients
//! (XEP-0199), enforces the unfinished-stanza timeout, and closes on shutdown, on a full mailbox
//! (slow reader) or on bad input with the right stream error.

use super::io::ClientIo;
use crate::stream::{ReadError, framer_stream_error};
use rookery_core::session::SessionReceiver;
use rookery_core::{Server, SessionHandle, SessionMsg};
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::{Jid, Stanza, StanzaParseError};
use rookery_xml::{Element, StreamEvent};
use std::time::Duration;
use tokio::time::Instant;

/// Mailbox messages written per flush, so one busy sender can't starve reads.
const WRITE_BATCH: usize = 64;

enum End {
    Clean,
    Dropped,
}

/// Memory: this future lives as long as the session, mostly idle, and stores inline whatever
/// any of its states holds across an `.await`. The stream is boxed, and the rare or large
/// awaits (handling a client stanza, re-routing at the end) are boxed futures, so the idle
/// state stays small.
pub(crate) async fn run<S: ClientIo>(
    server: Server,
    mut stream: Box<S>,
    handle: SessionHandle,
    mut rx: SessionReceiver,
) {
    let shutdown = server.shutdown_token().clone();
    let ping_every = server.config().c2s.ping_interval();
    let ping_timeout = server.config().c2s.ping_timeout();
    let idle_limit = server.config().limits.stanza_idle_timeout();
    let mut last_read = Instant::now();
    let mut ping_pending: Option<(String, Instant)> = None;
    let mut ping_seq: u64 = 0;
    // Stanzas written to the transport buffer but not yet flushed: if the write fails they go
    // back to the router instead of being lost with the connection.
    let mut unflushed: Vec<Stanza> = Vec::new();

    let end = 'outer: loop {
        // Process everything already buffered before waiting for more bytes.
        loop {
            match stream.poll_event() {
                Ok(Some(StreamEvent::Stanza(el))) => {
                    if let Err(err) = Box::pin(on_element(
                        &server,
                        &mut *stream,
                        &handle,
                        el,
                        &mut ping_pending,
                    ))
                    .await
                    {
                        Box::pin(stream.fail(&err)).await;
                        break 'outer End::Dropped;
                    }
                }
                Ok(Some(StreamEvent::Close)) => {
                    Box::pin(stream.close()).await;
                    break 'outer End::Clean;
                }
                Ok(Some(StreamEvent::Open(_))) => {
                    Box::pin(
                        stream.fail(
                            &StreamError::new(StreamCondition::NotWellFormed)
                                .with_text("unexpected stream header"),
                        ),
                    )
                    .await;
                    break 'outer End::Dropped;
                }
                Ok(None) => break,
                Err(e) => {
                    Box::pin(stream.fail(&framer_stream_error(&e))).await;
                    break 'outer End::Dropped;
                }
            }
        }
        // Next timer: a pending ping's deadline, the idle-ping time, or the unfinished-stanza limit.
        let next_tick = match (&ping_pending, ping_every) {
            (Some((_, deadline)), _) => *deadline,
            (None, Some(every)) => last_read + every,
            (None, None) => last_read + Duration::from_secs(3600),
        };
        let next_tick = if stream.in_stanza() {
            next_tick.min(last_read + idle_limit)
        } else {
            next_tick
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                Box::pin(stream.fail(&StreamError::new(StreamCondition::SystemShutdown))).await;
                break End::Clean;
            }
            _ = rx.overflow.cancelled() => {
                Box::pin(stream.fail(&StreamError::new(StreamCondition::PolicyViolation).with_text("too many stanzas queued for a slow reader")))
                    .await;
                break End::Dropped;
            }
            msg = rx.rx.recv() => {
                let Some(msg) = msg else { break End::Dropped };
                let mut next = Some(msg);
                let mut n = 0;
                while let Some(m) = next.take() {
                    match m {
                        SessionMsg::Stanza(st) => {
                            stream.queue(st.element());
                            unflushed.push(*st);
                        }
                        SessionMsg::Close(err) => {
                            Box::pin(stream.fail(&err)).await;
                            break 'outer End::Dropped;
                        }
                    }
                    n += 1;
                    if n < WRITE_BATCH {
                        next = rx.rx.try_recv().ok();
                    }
                }
                // A client that stops reading blocks this write; if meanwhile its mailbox
                // overflows, it is a slow reader: drop it now instead of after the write
                // timeout (there is no way to write a stream error to a full socket).
                let flushed = tokio::select! {
                    r = Box::pin(stream.flush()) => r.is_ok(),
                    _ = rx.overflow.cancelled() => false,
                };
                if !flushed {
                    tracing::info!(jid = %handle.jid(), what = "slow-reader", "client not reading, dropped");
                    break End::Dropped;
                }
                // Not `clear`: an idle session should not keep the last batch's room.
                unflushed = Vec::new();
            }
            r = stream.read_more() => {
                match r {
                    Ok(()) => {
                        last_read = Instant::now();
                        // Any traffic answers our liveness question.
                        ping_pending = None;
                    }
                    Err(ReadError::Closed) => break End::Dropped,
                    Err(ReadError::Xml(e)) => {
                        Box::pin(stream.fail(&framer_stream_error(&e))).await;
                        break End::Dropped;
                    }
                }
            }
            _ = tokio::time::sleep_until(next_tick) => {
                let now = Instant::now();
                if stream.in_stanza() && now >= last_read + idle_limit {
                    Box::pin(stream.fail(&StreamError::new(StreamCondition::ConnectionTimeout).with_text("stanza not completed in time")))
                        .await;
                    break End::Dropped;
                }
                if let Some((_, deadline)) = &ping_pending {
                    if now >= *deadline {
                        Box::pin(stream.fail(&StreamError::new(StreamCondition::ConnectionTimeout))).await;
                        break End::Dropped;
                    }
                } else if ping_every.is_some_and(|every| now >= last_read + every) {
                    ping_seq += 1;
                    let id = format!("rookery-ping-{ping_seq}");
                    let ping = Element::new("iq", ns::CLIENT)
                        .with_attr("type", "get")
                        .with_attr("id", id.as_str())
                        .with_attr("to", handle.jid().as_str())
                        .with_attr("from", handle.jid().domain().as_str())
                        .child(Element::new("ping", ns::PING));
                    if Box::pin(stream.send(&ping)).await.is_err() {
                        break End::Dropped;
                    }
                    ping_pending = Some((id, now + ping_timeout));
                }
            }
        }
    };
    server.registry().unbind(&handle);
    // Nothing accepted for this session is dropped with it: what was not written, or still
    // waits in the mailbox, is routed again now that the resource is gone (to another resource
    // or offline storage, RFC 6121 §8.5.3.2.1). A partly written batch may reach the client
    // twice; clients dedupe by id, while a lost message has no remedy.
    rx.rx.close();
    while let Ok(msg) = rx.rx.try_recv() {
        if let SessionMsg::Stanza(st) = msg {
            unflushed.push(*st);
        }
    }
    let clean = matches!(end, End::Clean);
    Box::pin(finish(server, handle, unflushed, clean)).await;
}

/// After the session: route what it did not write, tell the modules. Its own future so the
/// session's (idle) future does not carry room for it.
async fn finish(server: Server, handle: SessionHandle, unflushed: Vec<Stanza>, clean: bool) {
    for st in unflushed {
        if st.kind() == rookery_proto::stanza::Kind::Message {
            server.route(st).await;
        }
    }
    tracing::info!(jid = %handle.jid(), clean, what = "closed", "session ended");
    server.fire_session_closed(&handle, clean).await;
}

/// One element from the client. Err = close the stream with this error.
async fn on_element<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    handle: &SessionHandle,
    el: Element,
    ping_pending: &mut Option<(String, Instant)>,
) -> Result<(), StreamError> {
    let mut st = match Stanza::from_element(el, ns::CLIENT) {
        Ok(st) => st,
        Err((StanzaParseError::NotAStanza, original)) => {
            return Err(
                StreamError::new(StreamCondition::UnsupportedStanzaType).with_text(format!(
                    "unsupported element {{{}}}{}",
                    original.ns(),
                    original.name()
                )),
            );
        }
        Err((StanzaParseError::Bad(err), original)) => {
            // Reply straight to the client: the header was unusable for routing.
            if original.attr("type") != Some("error") {
                let mut reply =
                    Element::new(original.name(), ns::CLIENT).with_attr("type", "error");
                if let Some(id) = original.attr("id") {
                    reply.set_attr("id", id);
                }
                reply.append_child(err.to_element(ns::CLIENT));
                stream
                    .send(&reply)
                    .await
                    .map_err(|_| StreamError::new(StreamCondition::UndefinedCondition))?;
            }
            return Ok(());
        }
    };
    // RFC 6120 §8.1.2.1: the server stamps `from`; a client may only use its own JIDs.
    if let Some(from) = st.from() {
        let own_full = from.as_str() == handle.jid().as_str();
        let own_bare = from.is_bare() && from.to_bare() == handle.jid().to_bare();
        if !own_full && !own_bare {
            return Err(StreamError::new(StreamCondition::InvalidFrom));
        }
    }
    st.set_from(Some(Jid::from(handle.jid().clone())));

    if st.kind() == rookery_proto::stanza::Kind::Iq {
        let to_server = st
            .to()
            .is_none_or(|t| t.node().is_none() && t.domain() == handle.jid().domain());
        // The answer to our keepalive ping.
        let answers_ping = ping_pending
            .as_ref()
            .is_some_and(|(id, _)| st.id() == Some(id.as_str()));
        if answers_ping && to_server && matches!(st.type_attr(), "result" | "error") {
            *ping_pending = None;
            return Ok(());
        }
        // Legacy session establishment: a no-op since RFC 6121, answered for old clients.
        if st.type_attr() == "set"
            && st
                .iq_payload()
                .is_some_and(|p| p.is("session", ns::SESSION))
        {
            let mut reply = st.iq_result(None);
            reply.set_from(Some(Jid::from(handle.jid().domain().to_owned())));
            stream
                .send(reply.element())
                .await
                .map_err(|_| StreamError::new(StreamCondition::UndefinedCondition))?;
            return Ok(());
        }
    }
    server.handle_from_client(handle, st).await;
    Ok(())
}
