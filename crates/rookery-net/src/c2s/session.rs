//! The bound c2s session actor: one task owning the socket, reading stanzas from the client and
//! the mailbox fed by the rest of the server, writing both ways. It stamps `from` on everything
//! the client sends (RFC 6120 §8.1.2.1), answers the legacy session iq, pings idle clients
//! (XEP-0199), enforces the unfinished-stanza timeout and the sender's rate limits (`shaper.rs`:
//! reads pause), and closes on shutdown, on a socket that stops draining (slow reader: the
//! write timeout) or on bad input with the right stream error.
//!
//! While a stanza from the client is being routed, the actor keeps writing its own mailbox out:
//! routing may wait for room in a recipient's full mailbox (backpressure, `mailbox.rs`), and two
//! sessions flooding each other must not wait on each other.
//!
//! With XEP-0198 stream management (`sm.rs`, `sm_wire.rs`) every stanza written stays queued
//! until the client acknowledges it; a connection lost while resumption is on parks the session
//! in core (`rookery_core::resume`) instead of ending it.

use super::confirm::{Confirm, Due};
use super::io::ClientIo;
use super::sm::Sm;
use crate::shaper::Shaper;
use rookery_config::PeerKind;
use rookery_core::outbox::{Origin, Receipt, tracked};
use rookery_core::recent::RecentOrigins;
use rookery_core::session::SessionReceiver;
use rookery_core::{Queued, Server, Session, SessionMsg};
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_transport::stream::{ReadError, framer_stream_error};
use rookery_xml::{Element, StreamEvent};
use std::time::Duration;
use tokio::time::Instant;

/// Mailbox messages written per flush, so one busy sender can't starve reads.
const WRITE_BATCH: usize = 64;

pub(crate) enum End {
    /// The client closed its stream.
    Clean,
    /// The server is shutting down (a session that cannot park).
    Shutdown,
    /// Ended with a stream error of ours (or the client's): the session is over.
    Dropped,
    /// The connection was lost (or taken over by a resumption): a resumable session parks.
    Lost,
}

/// What the actor wrote and the client has not confirmed: with stream management the SM
/// queue, else the stanzas of the batch being flushed.
pub(crate) struct Out {
    pub unflushed: Vec<Stanza>,
    pub sm: Option<Sm>,
    /// Senders' receipts of what this batch writes (`rookery_core::outbox`), released once it
    /// is flushed (a resumable session's go with its outbox rows instead).
    receipts: Vec<Receipt>,
    /// Origins of stanzas written lately (a session without stream management): a sender's
    /// resent duplicate is not written twice.
    seen: RecentOrigins,
    /// Rows were appended to the outbox for the batch being written.
    appended: bool,
    /// Without stream management: messages written and not yet confirmed (`confirm.rs`).
    pub confirm: Confirm,
}

/// Origins remembered by a session without stream management.
const SEEN: usize = 64;

impl Out {
    pub(crate) fn new(sm: Option<Sm>) -> Out {
        Out {
            unflushed: Vec::new(),
            sm,
            receipts: Vec::new(),
            seen: RecentOrigins::new(SEEN),
            appended: false,
            confirm: Confirm::default(),
        }
    }

    /// A sender's resent duplicate of a stanza this session already has.
    fn is_duplicate(&self, origin: &str) -> bool {
        match &self.sm {
            Some(sm) => sm.is_duplicate(origin),
            None => self.seen.contains(origin),
        }
    }

    /// `q` was queued for the client: keep it until confirmed, and its receipt until durable.
    fn sent(&mut self, server: &Server, handle: &Session, q: Queued) {
        let Queued { stanza, origin } = q;
        let key = origin.as_ref().map(|o| o.key.clone());
        match &mut self.sm {
            Some(sm) if sm.resumable => {
                sm.on_sent_durable(
                    server.outbox(),
                    handle.id_str(),
                    stanza,
                    origin,
                    Instant::now(),
                );
                self.appended = true;
            }
            Some(sm) => {
                self.receipts.extend(origin.map(|o| o.receipt));
                sm.on_sent(stanza, key, Instant::now());
            }
            None => {
                self.receipts.extend(origin.map(|o| o.receipt));
                if let Some(key) = key {
                    self.seen.insert(key);
                }
                self.unflushed.push(stanza);
            }
        }
    }

    /// How a session ends at shutdown: a resumable one stays resumable (its record waits for
    /// the next start), any other ends cleanly.
    fn at_shutdown(&self) -> End {
        if self.sm.as_ref().is_some_and(|sm| sm.resumable) {
            End::Lost
        } else {
            End::Shutdown
        }
    }
}

/// Memory: this future lives as long as the session, mostly idle, and stores inline whatever
/// any of its states holds across an `.await`. The stream is boxed, and the rare or large
/// awaits (handling a client stanza, writing a batch, re-routing at the end) are boxed futures,
/// so the idle state stays small.
pub(crate) async fn run<S: ClientIo>(
    server: Server,
    mut stream: Box<S>,
    handle: Session,
    mut rx: SessionReceiver,
    resumed: Option<Sm>,
) {
    let shutdown = server.shutdown_token().clone();
    let ping_every = server.config().c2s.ping_interval();
    let ping_timeout = server.config().c2s.ping_timeout();
    let idle_limit = server.config().limits.stanza_idle_timeout();
    let confirm_delay = server
        .config()
        .c2s
        .delivery_confirm()
        .filter(|_| stream.confirms_delivery());
    // A client whose socket takes nothing for this long is a slow reader.
    stream.set_write_timeout(server.config().limits.write_timeout());
    let mut shaper = Shaper::new(server.config().limits.shaping(PeerKind::Client));
    // Reading is paused until then (the sender overspent its rate).
    let mut paused_until: Option<Instant> = None;
    let mut last_read = Instant::now();
    let mut ping_pending: Option<(String, Instant)> = None;
    let mut ping_seq: u64 = 0;
    // Stanzas written to the transport buffer but not yet flushed (or, with stream management,
    // not yet acknowledged): if the connection fails they go back to the router instead of
    // being lost with it.
    let mut out = Out::new(resumed);
    if out.sm.is_some()
        && Box::pin(super::sm_wire::resend(&server, &mut *stream, &mut out))
            .await
            .is_err()
    {
        return Box::pin(super::session_end::end_session(
            server,
            handle,
            rx,
            out,
            End::Lost,
        ))
        .await;
    }

    let end = 'outer: loop {
        // Process everything already buffered before waiting for more bytes, unless the
        // client has used up its rate.
        while paused_until.is_none() {
            if let Some(at) = shaper.pause(handle.jid()) {
                paused_until = Some(at);
                break;
            }
            match stream.poll_event() {
                Ok(Some(StreamEvent::Stanza(el))) if el.ns() == ns::SM => {
                    if let Err(err) = Box::pin(super::sm_wire::on_element(
                        &server,
                        &mut *stream,
                        &handle,
                        &mut out,
                        el,
                    ))
                    .await
                    {
                        Box::pin(stream.fail(&err)).await;
                        break 'outer End::Dropped;
                    }
                }
                Ok(Some(StreamEvent::Stanza(el))) => {
                    shaper.charge_stanza();
                    let routed = match Box::pin(super::element::on_element(
                        &mut *stream,
                        &handle,
                        el,
                        &mut ping_pending,
                        &mut out.confirm,
                        confirm_delay,
                    ))
                    .await
                    {
                        Ok(routed) => routed,
                        Err(err) => {
                            Box::pin(stream.fail(&err)).await;
                            break 'outer End::Dropped;
                        }
                    };
                    if let Some(st) = routed {
                        // With stream management the copies carry a receipt: `h` counts
                        // the stanza once its effect is durable.
                        let origin = out.sm.as_mut().map(|sm| sm.track(handle.id_str()));
                        let routing = route_draining(
                            &server,
                            &mut *stream,
                            &handle,
                            &mut rx,
                            &mut out,
                            st,
                            origin,
                        );
                        if let Err(end) = Box::pin(routing).await {
                            if let Some(sm) = &mut out.sm {
                                sm.on_handled();
                            }
                            break 'outer end;
                        }
                    }
                    if let Some(sm) = &mut out.sm {
                        sm.on_handled();
                        // Receipts that resolved meanwhile: dropped here, without a wake-up
                        // of their own (the actor waits on them only while an <r/> is owed),
                        // and an owed answer that is due now goes out.
                        let settled =
                            super::sm_wire::settled(&server, &mut *stream, &handle, &mut out);
                        if Box::pin(settled).await.is_err() {
                            break 'outer End::Lost;
                        }
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
        // Next timer: a pending ping's deadline, the idle-ping time, the unfinished-stanza
        // limit, or the end of a rate-limit pause.
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
        let next_tick = paused_until.map_or(next_tick, |p| next_tick.min(p));
        let next_tick =
            super::sm_wire::next_deadline(&server, &out).map_or(next_tick, |d| next_tick.min(d));
        let next_tick = out
            .confirm
            .next_deadline()
            .map_or(next_tick, |d| next_tick.min(d));
        let buffered_before = stream.buffered_len();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                Box::pin(stream.fail(&StreamError::new(StreamCondition::SystemShutdown))).await;
                break out.at_shutdown();
            }
            () = settle_next(&mut out.sm), if out.sm.as_ref().is_some_and(Sm::awaits_answer) => {
                if Box::pin(super::sm_wire::settled(&server, &mut *stream, &handle, &mut out)).await.is_err() {
                    break End::Lost;
                }
            }
            _ = rx.close_now.raised() => {
                break Box::pin(closed_by_server(&mut *stream, &handle)).await;
            }
            msg = rx.rx.recv() => {
                let Some(msg) = msg else { break End::Dropped };
                let batch = write_batch(&mut *stream, &server, &handle, &mut rx, &mut out, msg);
                if let Err(end) = Box::pin(batch).await {
                    break end;
                }
            }
            r = stream.read_more(), if paused_until.is_none() => {
                match r {
                    Ok(()) => {
                        // What the read added. Behind a connection manager this counts
                        // elements, not bytes: there the stanza budget is what shapes, and the
                        // CM's own framer caps sizes.
                        shaper.charge_bytes(stream.buffered_len().saturating_sub(buffered_before));
                        last_read = Instant::now();
                        // Any traffic answers our liveness question.
                        ping_pending = None;
                    }
                    Err(ReadError::Closed) => break End::Lost,
                    Err(ReadError::Xml(e)) => {
                        Box::pin(stream.fail(&framer_stream_error(&e))).await;
                        break End::Dropped;
                    }
                }
            }
            _ = tokio::time::sleep_until(next_tick) => {
                let now = Instant::now();
                match Box::pin(super::sm_wire::on_tick(&server, &mut *stream, &handle, &mut out, now)).await {
                    Ok(()) => {}
                    Err(end) => break end,
                }
                match out.confirm.on_tick(handle.jid(), ping_timeout, now) {
                    Due::Nothing => {}
                    Due::Ping(ping) => {
                        if Box::pin(stream.send(&ping)).await.is_err() {
                            break End::Lost;
                        }
                    }
                    Due::TimedOut => {
                        Box::pin(stream.fail(&StreamError::new(StreamCondition::ConnectionTimeout).with_text("delivery not confirmed"))).await;
                        break End::Lost;
                    }
                }
                if paused_until.is_some_and(|p| now >= p) {
                    paused_until = None;
                    // The client was not idle: we were not reading it.
                    last_read = now;
                    continue;
                }
                if stream.in_stanza() && now >= last_read + idle_limit {
                    Box::pin(stream.fail(&StreamError::new(StreamCondition::ConnectionTimeout).with_text("stanza not completed in time")))
                        .await;
                    break End::Dropped;
                }
                if let Some((_, deadline)) = &ping_pending {
                    if now >= *deadline {
                        Box::pin(stream.fail(&StreamError::new(StreamCondition::ConnectionTimeout))).await;
                        break End::Lost;
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
                        break End::Lost;
                    }
                    ping_pending = Some((id, now + ping_timeout));
                }
            }
        }
    };
    Box::pin(super::session_end::end_session(
        server, handle, rx, out, end,
    ))
    .await;
}

/// Waits for the oldest receipt of a stanza the client sent (only polled while an `<r/>`
/// waits for it).
async fn settle_next(sm: &mut Option<Sm>) {
    match sm {
        Some(sm) => sm.next_settled().await,
        None => std::future::pending().await,
    }
}

/// A close the server asked for without waiting (`CloseSignal`): a resumption of this session
/// on another connection (XEP-0198 §5; the session then parks for it), or anything else
/// (a stream error, and the session ends).
async fn closed_by_server<S: ClientIo>(stream: &mut S, handle: &Session) -> End {
    if handle.park_requested() {
        let err = StreamError::new(StreamCondition::Conflict)
            .with_text("the session was resumed on another connection");
        stream.fail(&err).await;
        return End::Lost;
    }
    let err = StreamError::new(StreamCondition::PolicyViolation)
        .with_text("session closed by the server");
    stream.fail(&err).await;
    End::Dropped
}

/// Routes one stanza from the client while writing out what arrives in the session's own
/// mailbox meanwhile. Routing waits when a recipient's mailbox is full; the sender's reads stay
/// paused for that long (backpressure), but its own deliveries keep flowing. If the session
/// ends meanwhile, the routing finishes on its own task: the stanza was accepted, it is not
/// dropped.
async fn route_draining<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    handle: &Session,
    rx: &mut SessionReceiver,
    out: &mut Out,
    st: Stanza,
    origin: Option<Origin>,
) -> Result<(), End> {
    let mut route = Box::pin({
        let (server, handle) = (server.clone(), handle.clone());
        async move {
            match origin {
                Some(origin) => tracked(origin, server.handle_from_client(&handle, st)).await,
                None => server.handle_from_client(&handle, st).await,
            }
        }
    });
    loop {
        tokio::select! {
            biased;
            () = &mut route => return Ok(()),
            _ = server.shutdown_token().cancelled() => {
                server.tasks().spawn(route);
                Box::pin(stream.fail(&StreamError::new(StreamCondition::SystemShutdown))).await;
                return Err(out.at_shutdown());
            }
            _ = rx.close_now.raised() => {
                server.tasks().spawn(route);
                return Err(Box::pin(closed_by_server(stream, handle)).await);
            }
            msg = rx.rx.recv() => {
                let Some(msg) = msg else { return Err(End::Dropped) };
                let batch = write_batch(stream, server, handle, rx, out, msg);
                if let Err(end) = Box::pin(batch).await {
                    server.tasks().spawn(route);
                    return Err(end);
                }
            }
        }
    }
}

/// Writes `first` and up to a batch of what follows it in the mailbox, then flushes. A socket
/// that does not take the bytes within the write timeout is a slow reader: the session ends
/// (and what was not written is routed again).
async fn write_batch<S: ClientIo>(
    stream: &mut S,
    server: &Server,
    handle: &Session,
    rx: &mut SessionReceiver,
    out: &mut Out,
    first: SessionMsg,
) -> Result<(), End> {
    let mut next = Some(first);
    let mut n = 0;
    while let Some(m) = next.take() {
        match m {
            SessionMsg::Stanza(q) => {
                let Queued { stanza, origin } = *q;
                if origin.as_ref().is_some_and(|o| out.is_duplicate(&o.key)) {
                    // A sender resent it after its own resumption; the client has it.
                } else if let Some(stanza) = server.to_client(handle, stanza) {
                    // `Point::ToClient`: a module may hold or drop it (client state indication).
                    stream.queue(stanza.element());
                    out.sent(server, handle, Queued { stanza, origin });
                }
            }
            SessionMsg::Close(err) => {
                stream.fail(&err).await;
                return Err(End::Dropped);
            }
        }
        n += 1;
        if n < WRITE_BATCH {
            next = rx.rx.try_recv().ok();
        }
    }
    // Stream management: bound the unacknowledged queue, and ask for an acknowledgement
    // with the batch when one is due.
    if let Err(err) = super::sm_wire::after_batch(server, stream, handle, out) {
        stream.fail(&err).await;
        return Err(End::Dropped);
    }
    // A resumable session's rows are committed before the client can see their stanzas:
    // what a client received is always in its outbox, so after a crash the server never
    // holds less than the client (its `h` would be "too high") and a sender's resent copy
    // finds the first one there (`Unacked::is_duplicate`).
    if out.appended {
        out.appended = false;
        server.outbox().flush().await;
    }
    // A client that stops reading blocks this write until the stream's write timeout
    // (`[limits] write_timeout_secs`, set at the start of `run`); a close the server asks for
    // meanwhile (e.g. a resource conflict) need not wait for it (there is no
    // way to write a stream error to a full socket anyway).
    let flushed = tokio::select! {
        r = stream.flush() => r.is_ok(),
        _ = rx.close_now.raised() => {
            if handle.park_requested() {
                // A resumption takes the session over; the stanzas stay unacknowledged.
                return Err(End::Lost);
            }
            false
        }
        // Shutdown does not wait out the write timeout either; what was not written goes
        // back to the router (offline storage) like any unwritten batch.
        _ = server.shutdown_token().cancelled() => return Err(out.at_shutdown()),
    };
    if !flushed {
        tracing::info!(jid = %handle.jid(), what = "slow-reader", "client not reading, dropped");
        // A dead connection looks the same: a resumable session parks.
        return Err(End::Lost);
    }
    // Without stream management the messages wait for a delivery confirmation.
    if out.sm.is_none()
        && stream.confirms_delivery()
        && let Some(delay) = server.config().c2s.delivery_confirm()
    {
        out.confirm
            .written(&mut out.unflushed, delay, Instant::now());
    }
    // Not `clear`: an idle session should not keep the last batch's room.
    out.unflushed = Vec::new();
    out.receipts = Vec::new();
    Ok(())
}
