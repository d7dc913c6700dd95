//! XEP-0198 elements on the c2s stream: what the session actor does with `<enable/>`, `<r/>`,
//! `<a/>` and `<resume/>`, when it asks the client for an acknowledgement, and the resumption
//! of a parked session during negotiation (`<resume/>` instead of resource binding, §5).
//! The counting itself is `sm.rs`; parking and taking over sessions is core's
//! (`rookery_core::resume`).

use super::io::ClientIo;
use super::session::{End, Out};
use super::sm::{self, Sm};
use rookery_core::session::SessionReceiver;
use rookery_core::{Server, Session};
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::BareJid;
use rookery_xml::Element;
use tokio::time::Instant;

/// An SM element from the client on a bound session.
pub(crate) async fn on_element<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    handle: &Session,
    out: &mut Out,
    el: Element,
) -> Result<(), StreamError> {
    let io = |_| StreamError::new(StreamCondition::UndefinedCondition);
    match (el.name(), &mut out.sm) {
        ("enable", None) => {
            let c2s = &server.config().c2s;
            let mut sm = Sm::default();
            let mut enabled = Element::new("enabled", ns::SM);
            if let Some(window) = c2s.sm_resume_window().filter(|_| sm::wants_resume(&el)) {
                sm.resumable = true;
                let id = server.sessions().enable_resumption(
                    handle,
                    sm.durable_handled(),
                    sm.acked_seq(),
                );
                enabled.set_attr("id", id);
                enabled.set_attr("resume", "true");
                enabled.set_attr("max", window.as_secs().to_string());
            }
            // Stanzas sent before this are not counted (§3: counting starts with <enabled/>).
            out.sm = Some(sm);
            stream.set_stream_managed();
            out.unflushed = Vec::new();
            stream.send(&enabled).await.map_err(io)
        }
        ("r", Some(sm)) => match sm.on_request() {
            Some(h) => {
                persist_handled(server, handle, sm).await;
                stream.send(&sm::ack(h)).await.map_err(io)
            }
            // Answered when what it covers is durable (`settled`).
            None => Ok(()),
        },
        ("a", Some(sm)) => {
            let h = sm::h_of(&el).ok_or_else(|| {
                StreamError::new(StreamCondition::InvalidXml).with_text("<a/> without a valid h")
            })?;
            if let Some(upto) = sm.on_ack(h)? {
                persist_ack(server, handle, sm, upto);
            }
            Ok(())
        }
        // A second <enable/>, a <resume/> on a bound stream, <r/> or <a/> before <enable/>.
        ("enable" | "resume" | "r" | "a", _) => stream
            .send(&sm::failed("unexpected-request", None))
            .await
            .map_err(io),
        _ => Err(
            StreamError::new(StreamCondition::UnsupportedStanzaType).with_text(format!(
                "unsupported element {{{}}}{}",
                ns::SM,
                el.name()
            )),
        ),
    }
}

/// Sends everything a resumed session had not had acknowledged again, and asks for an
/// acknowledgement of it.
pub(crate) async fn resend<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    out: &mut Out,
) -> Result<(), ()> {
    let Some(sm) = &mut out.sm else {
        return Ok(());
    };
    if sm.unacked_len() == 0 {
        return Ok(());
    }
    // What arrived while parked was appended without waiting: committed before the client
    // sees it (see `write_batch`).
    server.outbox().flush().await;
    for st in sm.unacked() {
        stream.queue(st.element());
    }
    stream.queue(&sm::request());
    sm.requested(Instant::now());
    stream.flush().await.map_err(|_| ())
}

/// Receipts of stanzas the client sent may have resolved: drop them, and answer an `<r/>`
/// that waited for them (writing the `h` it reports to the record first).
pub(crate) async fn settled<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    handle: &Session,
    out: &mut Out,
) -> Result<(), ()> {
    let Some(sm) = &mut out.sm else {
        return Ok(());
    };
    // `h` is written to the record only when the client is told it (and when the session
    // parks): a record that lags only makes a sender resend after a crash, and the copies it
    // resends are recognised (`Unacked::is_duplicate`, the store's delivered origins).
    sm.settle();
    match sm.owed_answer() {
        Some(h) => {
            persist_handled(server, handle, sm).await;
            stream.send(&sm::ack(h)).await.map_err(|_| ())
        }
        None => Ok(()),
    }
}

/// The durable `h`, committed: the client is about to be told it, and a restarted server must
/// never report less than the client heard (it would send those stanzas again).
async fn persist_handled(server: &Server, handle: &Session, sm: &Sm) {
    if sm.resumable {
        server
            .outbox()
            .handled(handle.id_str(), sm.durable_handled());
        server.outbox().flush().await;
    }
}

/// The client acknowledged up to sequence number `upto`: its rows go.
fn persist_ack(server: &Server, handle: &Session, sm: &Sm, upto: u64) {
    if sm.resumable {
        server.outbox().ack(handle.id_str(), upto);
    }
}

/// After a batch was queued for the client: refuse to hold more than `sm_max_unacked`, and
/// queue `<r/>` with it when one is due.
pub(crate) fn after_batch<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    handle: &Session,
    out: &mut Out,
) -> Result<(), StreamError> {
    let Some(sm) = &mut out.sm else {
        return Ok(());
    };
    let c2s = &server.config().c2s;
    if sm.unacked_len() > c2s.sm_max_unacked {
        tracing::info!(jid = %handle.jid(), unacked = sm.unacked_len(), what = "sm-unacked-limit", "client does not acknowledge; closed");
        return Err(StreamError::new(StreamCondition::PolicyViolation)
            .with_text("too many unacknowledged stanzas"));
    }
    let now = Instant::now();
    if sm.request_due(c2s.sm_request_after, c2s.sm_request_wait(), now) {
        stream.queue(&sm::request());
        sm.requested(now);
    }
    Ok(())
}

/// When the actor's timer must look at stream management.
pub(crate) fn next_deadline(server: &Server, out: &Out) -> Option<Instant> {
    let c2s = &server.config().c2s;
    out.sm
        .as_ref()?
        .next_deadline(c2s.sm_request_wait(), c2s.sm_ack_timeout())
}

/// The timer fired: a request unanswered for `sm_ack_timeout_secs` means the connection is
/// dead (the session parks if resumable); a stanza unacknowledged for `sm_request_after_secs`
/// gets a request.
pub(crate) async fn on_tick<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    handle: &Session,
    out: &mut Out,
    now: Instant,
) -> Result<(), End> {
    let Some(sm) = &mut out.sm else {
        return Ok(());
    };
    let c2s = &server.config().c2s;
    if sm
        .requested_at
        .is_some_and(|t| now >= t + c2s.sm_ack_timeout())
    {
        tracing::info!(jid = %handle.jid(), what = "sm-ack-timeout", "no acknowledgement; connection considered lost");
        return Err(End::Lost);
    }
    if sm.request_due(c2s.sm_request_after, c2s.sm_request_wait(), now) {
        sm.requested(now);
        if stream.send(&sm::request()).await.is_err() {
            return Err(End::Lost);
        }
    }
    Ok(())
}

/// What a `<resume/>` during negotiation led to.
pub(crate) enum Resumed {
    /// The session is back on this connection: the actor runs it with this state.
    Session(Session, SessionReceiver, Box<Sm>),
    /// Refused (`<failed/>` was sent): negotiation goes on (the client may bind).
    Failed,
    /// The stream ended.
    Closed,
}

/// `<resume previd h/>` from a client authenticated as `account` (XEP-0198 §5).
pub(crate) async fn resume<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    account: &BareJid,
    el: &Element,
) -> Resumed {
    let (Some(previd), Some(h)) = (el.attr("previd"), sm::h_of(el)) else {
        return match stream.send(&sm::failed("bad-request", None)).await {
            Ok(()) => Resumed::Failed,
            Err(_) => Resumed::Closed,
        };
    };
    let Ok((session, parked)) = server.sessions().resume(previd, account).await else {
        tracing::debug!(jid = %account, what = "sm-resume-failed", "no such session to resume");
        return match stream.send(&sm::failed("item-not-found", None)).await {
            Ok(()) => Resumed::Failed,
            Err(_) => Resumed::Closed,
        };
    };
    let (mut sm, rx) = Sm::resumed(parked);
    match sm.on_resumed(h) {
        Ok(Some(upto)) => persist_ack(server, &session, &sm, upto),
        Ok(None) => {}
        Err(err) => {
            stream.fail(&err).await;
            // The session goes back to waiting for a proper resumption.
            let _ = server.sessions().park(&session, sm.park(rx));
            return Resumed::Closed;
        }
    }
    stream.set_stream_managed();
    let answer = Element::new("resumed", ns::SM)
        .with_attr("previd", previd)
        .with_attr("h", sm.durable_handled().to_string());
    if stream.send(&answer).await.is_err() {
        let _ = server.sessions().park(&session, sm.park(rx));
        return Resumed::Closed;
    }
    tracing::info!(jid = %session.jid(), unacked = sm.unacked_len(), what = "sm-resumed", "session resumed");
    Resumed::Session(session, rx, Box::new(sm))
}
