//! What the rest of the server holds of a session: a cheap-clone handle to the session actor's
//! bounded mailbox. The actor (rookery-net: TCP, TLS, later a connection-manager link, WebSocket,
//! BOSH or another cluster node) owns its transport; everyone else only sends it messages.

use rookery_proto::error::StreamError;
use rookery_proto::stanza::{FullJid, Stanza};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A message for a session actor.
///
/// Both payloads are boxed: the mailbox (a tokio channel) allocates its first block of 32
/// slots when the session binds, and every idle session keeps it. With the stanza inline a
/// slot would be as large as a `Stanza` (≈ 5 KiB per session); boxed, it is a pointer.
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
    tx: mpsc::Sender<SessionMsg>,
    /// Cancelled when the mailbox overflowed; the actor then closes with policy-violation.
    overflow: CancellationToken,
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
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflow = CancellationToken::new();
        let handle = SessionHandle {
            inner: Arc::new(HandleInner {
                id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
                jid,
                tx,
                overflow: overflow.clone(),
            }),
        };
        (handle, SessionReceiver { rx, overflow })
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
            .tx
            .try_send(SessionMsg::Stanza(Box::new(st)))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(m) => self.refused(SendError::Overflow, m),
                mpsc::error::TrySendError::Closed(m) => self.refused(SendError::Closed, m),
            })
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
        use tokio::sync::mpsc::error::SendTimeoutError;
        self.inner
            .tx
            .send_timeout(SessionMsg::Stanza(Box::new(st)), patience)
            .await
            .map_err(|e| match e {
                SendTimeoutError::Timeout(m) => self.refused(SendError::Overflow, m),
                SendTimeoutError::Closed(m) => self.refused(SendError::Closed, m),
            })
    }

    /// Asks the session to close with a stream error.
    pub fn close(&self, err: StreamError) {
        if let Err(e) = self.inner.tx.try_send(SessionMsg::Close(Box::new(err))) {
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                tracing::warn!(jid = %self.inner.jid, what = "mailbox-full", "slow reader, closing");
            }
            // Full or gone: the overflow token makes the actor close anyway.
            self.inner.overflow.cancel();
        }
    }

    /// A message the mailbox refused. A full mailbox means a slow reader: the session is told
    /// to close (ARCHITECTURE §6). A refused stanza is handed back for another route.
    fn refused(&self, reason: SendError, msg: SessionMsg) -> Undelivered {
        if reason == SendError::Overflow {
            tracing::warn!(jid = %self.inner.jid, what = "mailbox-full", "slow reader, closing");
            self.inner.overflow.cancel();
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
    pub rx: mpsc::Receiver<SessionMsg>,
    pub overflow: CancellationToken,
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
