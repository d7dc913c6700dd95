//! What the rest of the server holds of a local session: a cheap-clone `Session` naming the
//! session actor's bounded mailbox and the presence state routing reads. The actor (rookery-net:
//! TCP, TLS, a connection-manager link; later WebSocket, BOSH) owns its transport and holds
//! the receiving end. Only core writes to the mailbox and the state: modules go through the
//! verbs of `sessions.rs`, so a session on another node can stand behind the same verbs.

use crate::mailbox::{Mailbox, Refused};
use crate::outbox::{Origin, current_origin};
use crate::session_id::{NodeName, SessionId};
use rookery_proto::error::StreamError;
use rookery_proto::stanza::{FullJid, Jid, Stanza};
use std::collections::HashSet;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A message for a session actor.
///
/// Both payloads are boxed so that a queued message is a pointer: a mailbox that took a
/// burst keeps no `Stanza`-sized slots (≈ 5 KiB for 32 of them) around.
#[derive(Debug)]
pub enum SessionMsg {
    /// Write this stanza to the client (after the session's own outbound filters).
    Stanza(Box<Queued>),
    /// Send this stream error and close (e.g. resource conflict, account deleted).
    Close(Box<StreamError>),
}

/// A stanza in a mailbox, with where it came from when a stream-managed client sent it (its
/// receipt is released once this copy is written out or made durable, `outbox.rs`).
#[derive(Debug)]
pub struct Queued {
    pub stanza: Stanza,
    pub origin: Option<Origin>,
}

impl Queued {
    /// A stanza routed by this task: it carries the task's origin, if any.
    pub(crate) fn routed(stanza: Stanza) -> Box<Queued> {
        Box::new(Queued {
            stanza,
            origin: current_origin(),
        })
    }
}

/// A stanza a session's mailbox did not take, and why.
#[derive(Debug)]
pub struct Undelivered {
    pub reason: SendError,
    pub stanza: Stanza,
}

#[allow(clippy::panic)]
fn unreachable_stanza() -> Stanza {
    // Invariant: `refused` is only given back the `SessionMsg::Stanza` that `send` or
    // `send_wait` tried to queue; the channel returns exactly what it was given.
    panic!("the mailbox returned a message that was not sent")
}

/// A local session. `send` never waits; `send_wait` waits for room (backpressure on the
/// sender). A full mailbox never closes the session: only its own socket failing to drain
/// does (the actor's write timeout). See `mailbox.rs`.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    id: SessionId,
    /// `id` as text (the resumption id, the store's key), made once.
    id_text: Arc<str>,
    jid: FullJid,
    /// The queue, and the signal on which the actor closes at once.
    mailbox: Mailbox,
    /// RFC 6121 state other sessions' routing reads; written only by the verbs in
    /// `sessions.rs`.
    state: Mutex<PresenceState>,
    /// In the registry (false before binding, after it ended, and once replaced).
    bound: AtomicBool,
    /// A resumption (XEP-0198 §5) on another connection wants this session: its actor parks
    /// it instead of ending it when it sees the close signal.
    park_requested: AtomicBool,
    /// Resumable, with a durable record (`sm_record.rs`): presence changes are written to it.
    durable: AtomicBool,
}

/// Per-session state that routing reads.
#[derive(Debug, Default, Clone)]
pub(crate) struct PresenceState {
    /// Sent initial presence and not yet unavailable (RFC 6121 §4.2).
    pub available: bool,
    pub priority: i8,
    /// The last broadcast presence (for probes and for newly subscribed contacts).
    pub last: Option<Arc<Stanza>>,
    /// Requested the roster: an "interested resource" for roster pushes (RFC 6121 §2.1.6).
    pub interested: bool,
    /// Entities that got directed presence while available (they get unavailable at logout).
    pub directed: HashSet<Jid>,
}

/// Why a send did not reach the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The mailbox stayed full (for `send_wait`, past the patience): the caller takes its
    /// fallback (another resource, offline storage, a bounce). The session stays connected.
    Full,
    /// The session is gone.
    Closed,
}

impl Session {
    /// Creates a session (not yet bound) and the receiving end for the actor.
    pub(crate) fn new(
        node: &NodeName,
        jid: FullJid,
        capacity: usize,
    ) -> (Session, SessionReceiver) {
        Session::with_id(SessionId::random(node), jid, capacity)
    }

    /// A session that had `id` before (restored after a restart, `restore.rs`).
    pub(crate) fn with_id(
        id: SessionId,
        jid: FullJid,
        capacity: usize,
    ) -> (Session, SessionReceiver) {
        let inner = Arc::new(HandleInner {
            id_text: id.to_string().into(),
            id,
            jid,
            mailbox: Mailbox::new(capacity),
            state: Mutex::new(PresenceState::default()),
            bound: AtomicBool::new(false),
            park_requested: AtomicBool::new(false),
            durable: AtomicBool::new(false),
        });
        let rx = SessionReceiver {
            rx: MailboxReceiver(inner.clone()),
            close_now: CloseSignal(inner.clone()),
        };
        (Session { inner }, rx)
    }

    pub fn id(&self) -> &SessionId {
        &self.inner.id
    }
    /// The id as text (`SessionId`'s `Display`), without formatting it again.
    pub fn id_str(&self) -> &str {
        &self.inner.id_text
    }
    pub fn jid(&self) -> &FullJid {
        &self.inner.jid
    }

    /// Whether the session is in the registry (bound, not ended, not replaced).
    pub fn is_bound(&self) -> bool {
        self.inner.bound.load(Ordering::Acquire)
    }
    pub(crate) fn set_bound(&self, bound: bool) {
        self.inner.bound.store(bound, Ordering::Release);
    }

    /// Runs `f` on the presence state. A plain mutex held only for `f` (never across an
    /// await), so `f` must not do I/O.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut PresenceState) -> R) -> R {
        // A poisoned lock means a panic mid-update elsewhere; the data is plain values.
        let mut guard = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
    /// Whether the session has a durable record (resumption enabled, not ended).
    pub fn is_durable(&self) -> bool {
        self.inner.durable.load(Ordering::Acquire)
    }
    /// Marks it durable or not; whether it was.
    pub(crate) fn set_durable(&self, durable: bool) -> bool {
        self.inner.durable.swap(durable, Ordering::AcqRel)
    }

    /// Asks the actor to hand the session over to a resumption on another connection.
    pub(crate) fn request_park(&self) {
        self.inner.park_requested.store(true, Ordering::Release);
        self.inner.mailbox.set_close_now();
    }

    /// Whether a resumption elsewhere asked for this session (the actor then parks it).
    pub fn park_requested(&self) -> bool {
        self.inner.park_requested.load(Ordering::Acquire)
    }

    /// The connection is gone (`Mailbox::park`): the parked session's drainer reads the
    /// mailbox until a resumption's actor takes it over.
    pub(crate) fn park_mailbox(&self) {
        self.inner.park_requested.store(false, Ordering::Release);
        self.inner.mailbox.park();
    }

    pub(crate) fn resource(&self) -> &str {
        self.inner.jid.resource().as_str()
    }

    /// Queues a stanza for the client; never blocks. For what the server itself sends (presence
    /// broadcasts, roster pushes): it is refused only past the mailbox's hard limit. On failure
    /// the stanza comes back, so the caller can deliver it another way (offline storage,
    /// another resource, a bounce).
    #[allow(clippy::result_large_err)] // the stanza itself is handed back, not an error value
    pub(crate) fn send(&self, st: Stanza) -> Result<(), Undelivered> {
        self.inner
            .mailbox
            .push(SessionMsg::Stanza(Queued::routed(st)))
            .map_err(|e| self.refused(e))
    }

    /// Queues a stanza, waiting up to `patience` while the mailbox is at capacity: for stanzas
    /// routed on behalf of a sender (whose reads pause meanwhile: backpressure) and for bulk
    /// pushes the server starts (offline messages at login). The session's own task may call
    /// it only while it keeps draining its mailbox (the c2s actor does). Past `patience` (or at
    /// once, if an earlier sender already waited in vain and nothing was taken out since) the
    /// stanza comes back as `Full`.
    pub(crate) async fn send_wait(
        &self,
        st: Stanza,
        patience: std::time::Duration,
    ) -> Result<(), Undelivered> {
        self.inner
            .mailbox
            .push_wait(SessionMsg::Stanza(Queued::routed(st)), patience)
            .await
            .map_err(|e| self.refused(e))
    }

    /// Asks the session to close with a stream error.
    pub(crate) fn close(&self, err: StreamError) {
        if self
            .inner
            .mailbox
            .push(SessionMsg::Close(Box::new(err)))
            .is_err()
        {
            // Full or gone: the close signal makes the actor close anyway.
            self.inner.mailbox.set_close_now();
        }
    }

    /// A message the mailbox refused: the stanza is handed back for another route.
    fn refused(&self, refused: Refused) -> Undelivered {
        let (reason, msg) = match refused {
            Refused::Full(m) => (SendError::Full, m),
            Refused::Closed(m) => (SendError::Closed, m),
        };
        Undelivered {
            reason,
            stanza: match msg {
                SessionMsg::Stanza(queued) => queued.stanza,
                // `send` and `send_wait` only ever hand it the stanza they tried to queue.
                SessionMsg::Close(_) => unreachable_stanza(),
            },
        }
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}
impl Eq for Session {}

/// The actor's end of the mailbox.
#[derive(Debug)]
pub struct SessionReceiver {
    pub rx: MailboxReceiver,
    pub close_now: CloseSignal,
}

/// Takes messages out of a session's mailbox (the actor's side).
#[derive(Debug)]
pub struct MailboxReceiver(Arc<HandleInner>);

/// The mailbox is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Empty;

impl std::fmt::Display for Empty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the mailbox is empty")
    }
}

impl MailboxReceiver {
    /// The next message. The actor holds a handle of its own, so the mailbox never runs out
    /// of senders: this waits until a message comes (cancel-safe, for `select!`). Always
    /// `Some`; the `Option` keeps the shape of a channel receiver.
    pub async fn recv(&mut self) -> Option<SessionMsg> {
        Some(poll_fn(|cx| self.0.mailbox.poll_recv(cx)).await)
    }

    pub fn try_recv(&mut self) -> Result<SessionMsg, Empty> {
        self.0.mailbox.try_recv().ok_or(Empty)
    }

    /// Refuses further messages (they fail as closed); queued ones can still be taken.
    pub fn close(&mut self) {
        self.0.mailbox.close();
    }
}

impl Drop for MailboxReceiver {
    fn drop(&mut self) {
        // The actor is gone: senders must learn it now, not fill a queue nobody reads.
        self.0.mailbox.close();
    }
}

/// Raised when the session must close without waiting for its queue to drain (a close that
/// could not be queued).
#[derive(Debug)]
pub struct CloseSignal(Arc<HandleInner>);

impl CloseSignal {
    /// Resolves once the signal is raised (cancel-safe).
    pub async fn raised(&self) {
        poll_fn(|cx| self.0.mailbox.poll_close_now(cx)).await
    }

    pub fn is_raised(&self) -> bool {
        self.0.mailbox.is_close_now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::error::StreamCondition;
    use rookery_xml::Element;
    use std::time::Duration;

    fn stanza() -> Stanza {
        Stanza::new(Element::parse("<message xmlns='jabber:client' to='a@b'/>").unwrap()).unwrap()
    }

    /// Regression (issue: a burst of ~1,100 messages closed the *recipient* with
    /// policy-violation): a full mailbox refuses the stanza but never closes the session.
    #[tokio::test]
    async fn a_full_mailbox_refuses_but_does_not_close_the_session() {
        let (h, mut rx) = Session::new(&NodeName::new("t"), FullJid::new("a@b/r").unwrap(), 2);
        // Non-waiting sends go up to the hard limit (4 × capacity).
        for _ in 0..8 {
            assert!(h.send(stanza()).is_ok());
        }
        let back = h.send(stanza()).unwrap_err();
        assert_eq!(back.reason, SendError::Full);
        assert_eq!(
            back.stanza,
            stanza(),
            "the stanza comes back for another route"
        );
        assert!(!rx.close_now.is_raised(), "the recipient stays connected");
        for _ in 0..8 {
            assert!(rx.rx.try_recv().is_ok());
        }
        assert!(rx.rx.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_sender_gives_up_then_later_senders_fail_over_at_once() {
        let (h, mut rx) = Session::new(&NodeName::new("t"), FullJid::new("a@b/r").unwrap(), 1);
        h.send(stanza()).unwrap();
        let patience = Duration::from_secs(10);
        let t0 = tokio::time::Instant::now();
        let back = h.send_wait(stanza(), patience).await.unwrap_err();
        assert_eq!(back.reason, SendError::Full);
        assert_eq!(t0.elapsed(), patience, "the first waits out its patience");
        // Stalled: the next sender does not wait again...
        let t1 = tokio::time::Instant::now();
        assert!(h.send_wait(stanza(), patience).await.is_err());
        assert_eq!(t1.elapsed(), Duration::ZERO);
        // ...until the actor takes something out: then there is room and waiting again.
        assert!(rx.rx.try_recv().is_ok());
        assert!(h.send_wait(stanza(), patience).await.is_ok());
        assert!(!rx.close_now.is_raised());
    }

    #[tokio::test]
    async fn close_on_a_full_mailbox_still_closes() {
        let (h, rx) = Session::new(&NodeName::new("t"), FullJid::new("a@b/r").unwrap(), 1);
        for _ in 0..4 {
            h.send(stanza()).unwrap();
        }
        h.close(StreamError::new(StreamCondition::Conflict));
        assert!(rx.close_now.is_raised());
    }

    #[tokio::test]
    async fn send_to_a_gone_session_reports_closed() {
        let (h, rx) = Session::new(&NodeName::new("t"), FullJid::new("a@b/r").unwrap(), 1);
        drop(rx);
        assert_eq!(h.send(stanza()).unwrap_err().reason, SendError::Closed);
    }
}
