//! What the rest of the server holds of a session: a cheap-clone handle to the session actor's
//! bounded mailbox. The actor (rookery-net: TCP, TLS, later a connection-manager link, WebSocket,
//! BOSH or another cluster node) owns its transport; everyone else only sends it messages.

use crate::mailbox::{Mailbox, Refused};
use rookery_proto::error::StreamError;
use rookery_proto::stanza::{FullJid, Stanza};
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A message for a session actor.
///
/// Both payloads are boxed so that a queued message is a pointer: a mailbox that took a
/// burst keeps no `Stanza`-sized slots (≈ 5 KiB for 32 of them) around.
#[derive(Debug)]
pub enum SessionMsg {
    /// Write this stanza to the client (after the session's own outbound filters).
    Stanza(Box<Stanza>),
    /// Send this stream error and close (e.g. resource conflict, account deleted).
    Close(Box<StreamError>),
}

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

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

/// Handle to a bound session. Sending never waits: a full mailbox means a slow reader, and the
/// session is told to close instead of letting its queue grow (ARCHITECTURE §6).
#[derive(Clone, Debug)]
pub struct SessionHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    id: u64,
    jid: FullJid,
    /// The queue, and the overflow signal on which the actor closes with policy-violation.
    mailbox: Mailbox,
}

/// Why a send did not reach the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The mailbox was full: the session has been told to close.
    Overflow,
    /// The session is gone.
    Closed,
}

impl SessionHandle {
    /// Creates a handle and the receiving end for the actor.
    pub fn new(jid: FullJid, capacity: usize) -> (SessionHandle, SessionReceiver) {
        let inner = Arc::new(HandleInner {
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            jid,
            mailbox: Mailbox::new(capacity),
        });
        let rx = SessionReceiver {
            rx: MailboxReceiver(inner.clone()),
            overflow: OverflowSignal(inner.clone()),
        };
        (SessionHandle { inner }, rx)
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }
    pub fn jid(&self) -> &FullJid {
        &self.inner.jid
    }

    /// Queues a stanza for the client; never blocks. On failure the stanza comes back, so the
    /// caller can deliver it another way (offline storage, another resource, a bounce).
    #[allow(clippy::result_large_err)] // the stanza itself is handed back, not an error value
    pub fn send(&self, st: Stanza) -> Result<(), Undelivered> {
        self.inner
            .mailbox
            .push(SessionMsg::Stanza(Box::new(st)))
            .map_err(|e| self.refused(e))
    }

    /// Queues a stanza, waiting up to `patience` for room: for bulk pushes the server itself
    /// starts (offline messages at login), which must not count as the client being slow the
    /// moment they outrun the mailbox. Never call it from the session's own task (it drains the
    /// mailbox). A client that doesn't make room within `patience` is a slow reader.
    pub async fn send_wait(
        &self,
        st: Stanza,
        patience: std::time::Duration,
    ) -> Result<(), Undelivered> {
        self.inner
            .mailbox
            .push_wait(SessionMsg::Stanza(Box::new(st)), patience)
            .await
            .map_err(|e| self.refused(e))
    }

    /// Asks the session to close with a stream error.
    pub fn close(&self, err: StreamError) {
        if let Err(e) = self.inner.mailbox.push(SessionMsg::Close(Box::new(err))) {
            if matches!(e, Refused::Full(_)) {
                tracing::warn!(jid = %self.inner.jid, what = "mailbox-full", "slow reader, closing");
            }
            // Full or gone: the overflow signal makes the actor close anyway.
            self.inner.mailbox.set_overflow();
        }
    }

    /// A message the mailbox refused. A full mailbox means a slow reader: the session is told
    /// to close (ARCHITECTURE §6). A refused stanza is handed back for another route.
    fn refused(&self, refused: Refused) -> Undelivered {
        let (reason, msg) = match refused {
            Refused::Full(m) => (SendError::Overflow, m),
            Refused::Closed(m) => (SendError::Closed, m),
        };
        if reason == SendError::Overflow {
            tracing::warn!(jid = %self.inner.jid, what = "mailbox-full", "slow reader, closing");
            self.inner.mailbox.set_overflow();
        }
        Undelivered {
            reason,
            stanza: match msg {
                SessionMsg::Stanza(stanza) => *stanza,
                // `send` and `send_wait` only ever hand it the stanza they tried to queue.
                SessionMsg::Close(_) => unreachable_stanza(),
            },
        }
    }
}

impl PartialEq for SessionHandle {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}
impl Eq for SessionHandle {}

/// The actor's end of the mailbox.
#[derive(Debug)]
pub struct SessionReceiver {
    pub rx: MailboxReceiver,
    pub overflow: OverflowSignal,
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

/// Raised when a send found the mailbox full (or a close could not be queued): the actor must
/// close the session as a slow reader.
#[derive(Debug)]
pub struct OverflowSignal(Arc<HandleInner>);

impl OverflowSignal {
    /// Resolves once the signal is raised (cancel-safe).
    pub async fn cancelled(&self) {
        poll_fn(|cx| self.0.mailbox.poll_overflow(cx)).await
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.mailbox.is_overflowed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::error::StreamCondition;
    use rookery_xml::Element;

    fn stanza() -> Stanza {
        Stanza::new(Element::parse("<message xmlns='jabber:client' to='a@b'/>").unwrap()).unwrap()
    }

    #[tokio::test]
    async fn full_mailbox_marks_the_session_as_slow_reader() {
        let (h, mut rx) = SessionHandle::new(FullJid::new("a@b/r").unwrap(), 2);
        assert!(h.send(stanza()).is_ok());
        assert!(h.send(stanza()).is_ok());
        assert!(!rx.overflow.is_cancelled());
        let back = h.send(stanza()).unwrap_err();
        assert_eq!(back.reason, SendError::Overflow);
        assert_eq!(
            back.stanza,
            stanza(),
            "the stanza comes back for another route"
        );
        assert!(rx.overflow.is_cancelled());
        // What was queued before the overflow is still there, nothing more.
        assert!(rx.rx.try_recv().is_ok());
        assert!(rx.rx.try_recv().is_ok());
        assert!(rx.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn close_on_a_full_mailbox_still_closes() {
        let (h, rx) = SessionHandle::new(FullJid::new("a@b/r").unwrap(), 1);
        h.send(stanza()).unwrap();
        h.close(StreamError::new(StreamCondition::Conflict));
        assert!(rx.overflow.is_cancelled());
    }

    #[tokio::test]
    async fn send_to_a_gone_session_reports_closed() {
        let (h, rx) = SessionHandle::new(FullJid::new("a@b/r").unwrap(), 1);
        drop(rx);
        assert_eq!(h.send(stanza()).unwrap_err().reason, SendError::Closed);
    }
}
