//! Stream-managed sessions that may be resumed (XEP-0198 §5), on the sessions door.
//!
//! A session whose client enabled resumption is registered here under its id while its
//! connection lives (`enable_resumption`). When the connection is lost, its actor parks the
//! session instead of ending it (`park`): the session stays bound with its presence, roster
//! interest and directed presences, its mailbox keeps collecting (without making senders
//! wait: nobody drains it), and the actor's unacknowledged stanzas and counters wait with it.
//! A client that authenticates as the same account and sends `<resume previd/>` takes it all
//! over (`resume`), also from a connection that is still open (that actor is asked to park
//! first). If nobody resumes within `[c2s] sm_resume_window_secs`, the session ends: what the
//! client never acknowledged goes to the account's other resources or offline storage
//! (messages, stamped with a XEP-0203 delay), requests get an error reply, and the modules
//! hear the session closed.

use crate::server::Server;
use crate::session::{Session, SessionMsg, SessionReceiver};
use crate::sessions::Sessions;
use rookery_proto::datetime::{format_utc, unix_now};
use rookery_proto::error::StanzaError;
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, Kind, Stanza};
use rookery_xml::Element;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// What a lost connection's actor leaves for the connection that resumes it.
#[derive(Debug)]
pub struct Parked {
    /// The session's mailbox (kept open while parked).
    pub rx: SessionReceiver,
    /// Stanzas written to the client and not acknowledged, oldest first.
    pub unacked: VecDeque<Stanza>,
    /// Stanzas the client sent that were handled: the `h` we report.
    pub handled: u32,
    /// Stanzas the client acknowledged (the stanzas sent are `acked + unacked.len()`).
    pub acked: u32,
}

/// Why a `<resume/>` failed (XEP-0198 §5: `<failed>` with `item-not-found` either way, so
/// nobody learns whether someone else's session exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeFailed {
    /// No such session, an expired one, or another account's.
    NotFound,
}

enum Slot {
    /// Resumable, with a connection.
    Attached(Session),
    /// Waiting to be resumed; `generation` tells a stale expiry timer from the current one.
    Parked {
        session: Session,
        parked: Parked,
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
    /// The client enabled resumption: the session can be resumed by its id from now on.
    /// Returns the id to give the client (`<enabled id/>`).
    pub fn enable_resumption(&self, session: &Session) -> String {
        let id = session.id().to_string();
        self.resumable()
            .slots()
            .insert(id.clone(), Slot::Attached(session.clone()));
        id
    }

    /// The session ended for good (a clean close, a stream error, or resumption not enabled):
    /// it cannot be resumed any more.
    pub fn forget_resumption(&self, session: &Session) {
        let id = session.id().to_string();
        let mut slots = self.resumable().slots();
        if matches!(slots.get(&id), Some(Slot::Attached(s)) if s == session) {
            slots.remove(&id);
        }
    }

    /// The connection was lost: keep the session for a resumption. `Err` gives `parked`
    /// back when the session is not resumable (the caller ends it as usual).
    pub fn park(&self, session: &Session, parked: Parked) -> Result<(), Parked> {
        let Some(window) = self.server().config().c2s.sm_resume_window() else {
            return Err(parked);
        };
        let id = session.id().to_string();
        let r = self.resumable();
        let generation = r
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut slots = r.slots();
            match slots.get(&id) {
                Some(Slot::Attached(s)) if s == session && session.is_bound() => {}
                _ => return Err(parked),
            }
            session.park_mailbox();
            slots.insert(
                id.clone(),
                Slot::Parked {
                    session: session.clone(),
                    parked,
                    generation,
                    at: unix_now(),
                },
            );
        }
        r.parked.notify_waiters();
        tracing::info!(jid = %session.jid(), what = "sm-parked", "connection lost; session waits to be resumed");
        let server = self.server().clone();
        self.server().tasks().spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(window) => expire(&server, &id, generation).await,
                () = server.shutdown_token().cancelled() => {}
            }
        });
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
            {
                let mut slots = r.slots();
                match slots.remove(id) {
                    // A parked session replaced meanwhile by a new bind of its resource is gone.
                    Some(Slot::Parked {
                        session, parked, ..
                    }) if session.jid().to_bare() == *account && session.is_bound() => {
                        slots.insert(id.to_owned(), Slot::Attached(session.clone()));
                        return Ok((session, parked));
                    }
                    Some(Slot::Attached(session)) if session.jid().to_bare() == *account => {
                        session.request_park();
                        slots.insert(id.to_owned(), Slot::Attached(session));
                    }
                    Some(other) => {
                        // Someone else's: leave it, and say nothing about it.
                        slots.insert(id.to_owned(), other);
                        return Err(ResumeFailed::NotFound);
                    }
                    None => return Err(ResumeFailed::NotFound),
                }
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
        session,
        parked,
        at,
        ..
    }) = taken
    else {
        return;
    };
    tracing::info!(jid = %session.jid(), unacked = parked.unacked.len(), what = "sm-expired", "session not resumed in time; ended");
    let ended = server.sessions().unbind(&session);
    let Parked {
        mut rx, unacked, ..
    } = parked;
    rx.rx.close();
    let mut left: Vec<Stanza> = unacked.into();
    while let Ok(msg) = rx.rx.try_recv() {
        if let SessionMsg::Stanza(st) = msg {
            left.push(*st);
        }
    }
    let domain = session.jid().domain().as_str().to_owned();
    for st in left {
        reroute(server, st, &domain, at).await;
    }
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
