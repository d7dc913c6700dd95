//! Stream-managed sessions that may be resumed (XEP-0198 §5), on the sessions door.
//!
//! A session whose client enabled resumption is registered here under its id while its
//! connection lives (`enable_resumption`), and gets a durable record (`sm_record.rs`) whose
//! outbox the actor fills as it writes (`outbox.rs`). When the connection is lost, the actor
//! parks the session instead of ending it (`park`): the session stays bound with its presence,
//! roster interest and directed presences, and a drainer task takes over its mailbox: what
//! arrives is numbered, queued behind the unacknowledged stanzas and appended to the outbox,
//! so senders never wait on a session nobody reads, and their receipts resolve once it is
//! durable. A client that authenticates as the same account and sends `<resume previd/>`
//! takes it all over (`resume`), also from a connection that is still open (that actor is
//! asked to park first). If nobody resumes within `[c2s] sm_resume_window_secs`, the session
//! ends: what the client never acknowledged goes to the account's other resources or offline
//! storage (messages, stamped with a XEP-0203 delay), requests get an error reply, and the
//! modules hear the session closed. Sessions a restart interrupted come back here parked
//! (`restore.rs`).

use crate::server::Server;
use crate::session::{Queued, Session, SessionMsg, SessionReceiver};
use crate::sessions::Sessions;
use crate::unacked::Unacked;
use rookery_proto::datetime::{format_utc, unix_now};
use rookery_proto::error::StanzaError;
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, Kind, Stanza};
use rookery_store::SmOp;
use rookery_xml::Element;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// What a lost connection's actor leaves for the connection that resumes it.
#[derive(Debug)]
pub struct Parked {
    /// The session's mailbox (kept open while parked).
    pub rx: SessionReceiver,
    /// Stanzas for the client not acknowledged, oldest first (written to the lost connection,
    /// or arrived while parked).
    pub unacked: Unacked,
    /// Stanzas the client sent that were handled: the `h` we report.
    pub handled: u32,
}

/// Why a `<resume/>` failed (XEP-0198 §5: `<failed>` with `item-not-found` either way, so
/// nobody learns whether someone else's session exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeFailed {
    /// No such session, an expired one, or another account's.
    NotFound,
}

/// The drainer of a parked session: stopped, it hands the parked state back.
struct Drain {
    stop: oneshot::Sender<()>,
    /// `None` when the drainer ended the session itself (it was asked to close).
    task: JoinHandle<Option<Parked>>,
}

impl Drain {
    async fn take(self) -> Option<Parked> {
        let _ = self.stop.send(());
        self.task.await.ok().flatten()
    }
}

enum Slot {
    /// Resumable, with a connection.
    Attached(Session),
    /// Waiting to be resumed; `generation` tells a stale expiry timer from the current one.
    Parked {
        session: Session,
        drain: Drain,
        generation: u64,
        at: i64,
    },
}

/// The resumable sessions, by id (`SessionId`'s text).
#[derive(Default)]
pub(crate) struct Resumable {
    slots: Mutex<HashMap<String, Slot>>,
    generation: std::sync::atomic::AtomicU64,
    /// Woken whenever a session is parked (a resumption waits for a takeover).
    parked: Notify,
}

impl Resumable {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // Map edits only, never across an await.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How long a resumption waits for a still-connected actor to hand its session over.
const TAKEOVER_WAIT: Duration = Duration::from_secs(10);

impl Sessions<'_> {
    /// The client enabled resumption: the session can be resumed by its id from now on, and
    /// its record is written. Returns the id to give the client (`<enabled id/>`).
    pub fn enable_resumption(&self, session: &Session, handled: u32, acked: u64) -> String {
        let id = session.id().to_string();
        self.resumable()
            .slots()
            .insert(id.clone(), Slot::Attached(session.clone()));
        session.set_durable(true);
        let rec = crate::sm_record::record(self.server(), session, handled, acked, None);
        self.server().outbox().queue(SmOp::Put(rec), None);
        id
    }

    /// The session ended for good (a clean close, a stream error, or resumption not enabled):
    /// it cannot be resumed any more, and its record goes.
    pub fn forget_resumption(&self, session: &Session) {
        let id = session.id().to_string();
        let mut slots = self.resumable().slots();
        if matches!(slots.get(&id), Some(Slot::Attached(s)) if s == session) {
            slots.remove(&id);
        }
        drop(slots);
        crate::sm_record::end_record(self.server(), session);
    }

    /// The connection was lost: keep the session for a resumption. `Err` gives `parked`
    /// back when the session is not resumable (the caller ends it as usual).
    #[allow(clippy::result_large_err)] // the parked state itself is handed back, not an error
    pub fn park(&self, session: &Session, parked: Parked) -> Result<(), Parked> {
        let Some(window) = self.server().config().c2s.sm_resume_window() else {
            return Err(parked);
        };
        {
            let slots = self.resumable().slots();
            match slots.get(&session.id().to_string()) {
                Some(Slot::Attached(s)) if s == session && session.is_bound() => {}
                _ => return Err(parked),
            }
        }
        let until = unix_now() + window.as_secs() as i64;
        let id = session.id().to_string();
        let outbox = self.server().outbox();
        outbox.queue(
            SmOp::Handled {
                session: id.clone(),
                handled: parked.handled,
            },
            None,
        );
        outbox.queue(
            SmOp::Park {
                session: id,
                until_ms: until * 1000,
            },
            None,
        );
        tracing::info!(jid = %session.jid(), what = "sm-parked", "connection lost; session waits to be resumed");
        hold(self.server(), session.clone(), parked, window);
        Ok(())
    }

    /// Takes over the session `id` for a connection authenticated as `account`: returns it
    /// with what its last connection left. A session still connected is asked to park first.
    pub async fn resume(
        &self,
        id: &str,
        account: &BareJid,
    ) -> Result<(Session, Parked), ResumeFailed> {
        let r = self.resumable();
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        loop {
            // Registered before the check, so a park between the check and the wait wakes us.
            let notified = r.parked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let taken = {
                let mut slots = r.slots();
                match slots.remove(id) {
                    // A parked session replaced meanwhile by a new bind of its resource is gone
                    // (its drainer ends it when it reads the close).
                    Some(Slot::Parked {
                        session,
                        drain,
                        generation,
                        at,
                    }) if session.jid().to_bare() == *account && session.is_bound() => {
                        slots.insert(id.to_owned(), Slot::Attached(session.clone()));
                        Some((session, drain, generation, at))
                    }
                    Some(Slot::Attached(session)) if session.jid().to_bare() == *account => {
                        session.request_park();
                        slots.insert(id.to_owned(), Slot::Attached(session));
                        None
                    }
                    Some(other) => {
                        // Someone else's: leave it, and say nothing about it.
                        slots.insert(id.to_owned(), other);
                        return Err(ResumeFailed::NotFound);
                    }
                    None => return Err(ResumeFailed::NotFound),
                }
            };
            if let Some((session, drain, _, at)) = taken {
                let Some(mut parked) = drain.take().await else {
                    // It ended while we took it (it was closed): nothing to resume.
                    r.slots().remove(id);
                    return Err(ResumeFailed::NotFound);
                };
                let server = self.server();
                let outbox = server.outbox();
                // Everything unacknowledged is about to be written to the new connection.
                let max = server.config().c2s.sm_max_attempts;
                let dead = parked.unacked.attempt(max);
                outbox.queue(
                    SmOp::Attempt {
                        session: id.to_owned(),
                        max_attempts: max,
                        now_ms: unix_now() * 1000,
                    },
                    None,
                );
                if dead > 0 {
                    // The client never got past these: they stay dead letters, and the
                    // session ends instead of sending the rest after them again.
                    tracing::warn!(jid = %session.jid(), dead, what = "sm-dead-letters", "stanzas written to {max} connections, never acknowledged; given up");
                    r.slots().remove(id);
                    end_parked(server, session, parked, at).await;
                    return Err(ResumeFailed::NotFound);
                }
                outbox.queue(
                    SmOp::Attach {
                        session: id.to_owned(),
                    },
                    None,
                );
                return Ok((session, parked));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ResumeFailed::NotFound);
            }
        }
    }

    /// Parked sessions (metrics, tests).
    pub fn parked_count(&self) -> usize {
        self.resumable()
            .slots()
            .values()
            .filter(|s| matches!(s, Slot::Parked { .. }))
            .count()
    }
}

/// Parks `session` in its slot with a drainer and an expiry timer `window` from now.
pub(crate) fn hold(server: &Server, session: Session, parked: Parked, window: Duration) {
    let id = session.id().to_string();
    let r = &server.inner().resumable;
    let generation = r
        .generation
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    session.park_mailbox();
    let (stop, stopped) = oneshot::channel();
    let task = server.tasks().spawn(drain(
        server.clone(),
        session.clone(),
        parked,
        stopped,
        generation,
    ));
    r.slots().insert(
        id.clone(),
        Slot::Parked {
            session,
            drain: Drain { stop, task },
            generation,
            at: unix_now(),
        },
    );
    r.parked.notify_waiters();
    let server = server.clone();
    server.clone().tasks().spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(window) => expire(&server, &id, generation).await,
            () = server.shutdown_token().cancelled() => {}
        }
    });
}

/// A parked session's mailbox reader: numbers what arrives, queues it behind the
/// unacknowledged stanzas and appends it to the outbox (releasing the senders' receipts once
/// durable). Stops when asked (a resumption or the expiry takes the state), at shutdown (the
/// record stays for the next start), or when the session is asked to close (it ends then).
async fn drain(
    server: Server,
    session: Session,
    mut parked: Parked,
    mut stop: oneshot::Receiver<()>,
    generation: u64,
) -> Option<Parked> {
    let id = session.id().to_string();
    loop {
        let msg = tokio::select! {
            biased;
            _ = &mut stop => return Some(parked),
            () = server.shutdown_token().cancelled() => return Some(parked),
            msg = parked.rx.rx.recv() => msg,
        };
        match msg {
            // Queued and appended, unless a sender resent it.
            Some(SessionMsg::Stanza(q)) => {
                let Queued { stanza, origin } = *q;
                parked
                    .unacked
                    .push_durable(server.outbox(), &id, stanza, origin);
            }
            // Replaced by a new bind, the account deleted, ...: the session ends now.
            Some(SessionMsg::Close(_)) | None => {
                let own = {
                    let mut slots = server.inner().resumable.slots();
                    match slots.get(&id) {
                        Some(Slot::Parked { generation: g, .. }) if *g == generation => {
                            slots.remove(&id)
                        }
                        _ => None,
                    }
                };
                let Some(Slot::Parked { at, .. }) = own else {
                    // Being taken over: the taker sees it unbound.
                    return Some(parked);
                };
                end_parked(&server, session, parked, at).await;
                return None;
            }
        }
    }
}

/// The resumption window of `id` ran out: end the session; nothing it held is lost.
async fn expire(server: &Server, id: &str, generation: u64) {
    let taken = {
        let mut slots = server.inner().resumable.slots();
        match slots.get(id) {
            Some(Slot::Parked { generation: g, .. }) if *g == generation => slots.remove(id),
            _ => None,
        }
    };
    let Some(Slot::Parked {
        session, drain, at, ..
    }) = taken
    else {
        return;
    };
    if let Some(parked) = drain.take().await {
        end_parked(server, session, parked, at).await;
    }
}

/// Ends a parked session: out of the registry, what it held routed again, its record gone,
/// the modules told.
async fn end_parked(server: &Server, session: Session, parked: Parked, at: i64) {
    tracing::info!(jid = %session.jid(), unacked = parked.unacked.len(), what = "sm-expired", "session not resumed in time; ended");
    let ended = server.sessions().unbind(&session);
    let Parked {
        mut rx,
        mut unacked,
        ..
    } = parked;
    rx.rx.close();
    let mut left = unacked.take();
    while let Ok(msg) = rx.rx.try_recv() {
        if let SessionMsg::Stanza(q) = msg {
            left.push(q.stanza);
        }
    }
    let domain = session.jid().domain().as_str().to_owned();
    for st in left {
        reroute(server, st, &domain, at).await;
    }
    // After the re-routing: a crash before this leaves the rows to be routed at next start.
    crate::sm_record::end_record(server, &session);
    if let Some(ended) = ended {
        server.fire_session_closed(&session, &ended).await;
    }
}

/// A stanza the expired session never acknowledged: a message goes where one for a resource
/// that is gone goes (another resource or offline storage, RFC 6121 §8.5.3.2.1), with a delay
/// saying since when it waited; a request is answered with an error; presence is dropped.
async fn reroute(server: &Server, mut st: Stanza, domain: &str, since: i64) {
    match st.kind() {
        Kind::Message if st.type_attr() != "error" => {
            if st.element().get_child("delay", ns::DELAY).is_none() {
                st.element_mut().append_child(
                    Element::new("delay", ns::DELAY)
                        .with_attr("from", domain)
                        .with_attr("stamp", format_utc(since)),
                );
            }
            server.route(st).await;
        }
        Kind::Iq if matches!(st.type_attr(), "get" | "set") => {
            server.bounce(&st, StanzaError::service_unavailable()).await;
        }
        _ => {}
    }
}

impl<'a> Sessions<'a> {
    fn resumable(&self) -> &'a Resumable {
        &self.server().inner().resumable
    }
}
