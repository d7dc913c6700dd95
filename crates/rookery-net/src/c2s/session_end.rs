//! The end of a c2s session's connection (`session.rs` calls it when its loop ends): a
//! stream-managed session with resumption parks in core for a later `<resume/>` (XEP-0198 §5);
//! any other session leaves the registry, and nothing it was given is lost: what it did not
//! write, or what the client did not acknowledge, and what still waits in its mailbox is
//! routed again (another resource or offline storage), then the modules hear it ended.

use super::session::{End, Out};
use super::sm::Sm;
use rookery_core::session::SessionReceiver;
use rookery_core::{Ended, Server, Session, SessionMsg};
use rookery_proto::stanza::Stanza;

/// How long a parking session waits for its client's last stanzas to become durable.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The connection is over: park a resumable session for a resumption, or end the session.
pub(crate) async fn end_session(
    server: Server,
    handle: Session,
    mut rx: SessionReceiver,
    mut out: Out,
    end: End,
) {
    if matches!(end, End::Lost)
        && let Some(mut sm) = out.sm.take_if(|sm| sm.resumable)
    {
        // What the client sent is routed already; wait (briefly) until it is durable, so the
        // `h` the session parks with, and resumes with, counts all of it.
        let _ = tokio::time::timeout(SETTLE_WAIT, async {
            while sm.has_pending() {
                sm.next_settled().await;
                sm.settle();
            }
        })
        .await;
        match server.sessions().park(&handle, sm.park(rx)) {
            Ok(()) => return,
            Err(parked) => {
                let (sm, back) = Sm::resumed(parked);
                rx = back;
                out.sm = Some(sm);
            }
        }
    }
    server.sessions().forget_resumption(&handle);
    // Out of the registry first, so nothing new is routed here as if it were available.
    let ended = server.sessions().unbind(&handle);
    // Nothing accepted for this session is dropped with it: what was not written (or not
    // acknowledged, with stream management), or still waits in the mailbox, is routed again
    // now that the resource is gone (to another resource or offline storage, RFC 6121
    // §8.5.3.2.1). A partly written batch may reach the client twice; clients dedupe by id,
    // while a lost message has no remedy.
    // Oldest first: what waited for a delivery confirmation (written before any stream
    // management was enabled), then what stream management did not see acknowledged.
    let mut left = out.confirm.take();
    if matches!(end, End::Clean) {
        // The client closed its stream itself, after reading what came before its close:
        // unconfirmed is not unread (routing it again would only duplicate it).
        left.clear();
    }
    left.extend(out.sm.as_mut().map(Sm::take_unacked).unwrap_or_default());
    left.append(&mut out.unflushed);
    rx.rx.close();
    while let Ok(msg) = rx.rx.try_recv() {
        if let SessionMsg::Stanza(q) = msg {
            left.push(q.stanza);
        }
    }
    let ended = ended.map(|mut e| {
        e.clean = matches!(end, End::Clean | End::Shutdown);
        e
    });
    Box::pin(finish(server, handle, left, ended)).await;
}

/// After the session: route what it did not write, tell the modules. Its own future so the
/// session's (idle) future does not carry room for it.
async fn finish(server: Server, handle: Session, unflushed: Vec<Stanza>, ended: Option<Ended>) {
    for st in unflushed {
        if st.kind() == rookery_proto::stanza::Kind::Message {
            server.route(st).await;
        }
    }
    let clean = ended.as_ref().is_some_and(|e| e.clean);
    tracing::info!(jid = %handle.jid(), clean, what = "closed", "session ended");
    // A replaced session was reported when its successor bound (`Sessions::bind`).
    if let Some(ended) = ended {
        server.fire_session_closed(&handle, &ended).await;
    }
}
