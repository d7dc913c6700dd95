//! A session's bounded mailbox (`session.rs`): what the router, modules and other sessions put
//! in, and what the session actor (rookery-net) takes out and writes to its client.
//!
//! Why not tokio's mpsc: every bound session owns one, and most sit idle. tokio's bounded
//! channel costs about 1.1 KiB per idle session (its cache-padded channel state, a first block
//! of 32 slots allocated up front, and a separate cancellation token for the overflow signal),
//! the largest single item in an idle plain connection after the socket itself. This one is a
//! `Mutex<VecDeque>` inside the handle's own allocation, whose queue is only allocated while
//! it holds messages, plus the overflow flag and the actor's waker: about 100 bytes.
//!
//! Semantics kept from before: sends never wait (a full mailbox is a slow reader: the sender
//! gets its stanza back and the actor is told by the overflow signal), except `send_wait`,
//! which waits for room up to a deadline; after the actor closes the mailbox every send fails
//! as closed and what was queued can still be taken out.

use crate::session::SessionMsg;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

pub(crate) struct Mailbox {
    state: Mutex<State>,
    /// Senders waiting in `send_wait` for room.
    room: Notify,
}

struct State {
    queue: VecDeque<SessionMsg>,
    capacity: usize,
    /// The actor closed the mailbox (or dropped its end): sends fail as closed.
    closed: bool,
    /// A send found the mailbox full: the actor must close the session.
    overflow: bool,
    /// The actor's task, waiting for a message or for the overflow signal.
    waker: Option<Waker>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mailbox")
    }
}

/// Why `push` refused a message (it comes back with the error).
pub(crate) enum Refused {
    Full(SessionMsg),
    Closed(SessionMsg),
}

impl Mailbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Mailbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity: capacity.max(1),
                closed: false,
                overflow: false,
                waker: None,
            }),
            room: Notify::new(),
        }
    }

    /// Poisoning needs a panic while the lock is held; nothing here can panic then (no user
    /// code runs under it), so the state is intact either way.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `msg` if there is room; never waits.
    pub(crate) fn push(&self, msg: SessionMsg) -> Result<(), Refused> {
        let waker = {
            let mut s = self.lock();
            if s.closed {
                return Err(Refused::Closed(msg));
            }
            if s.queue.len() >= s.capacity {
                return Err(Refused::Full(msg));
            }
            s.queue.push_back(msg);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues `msg`, waiting up to `patience` for room.
    pub(crate) async fn push_wait(
        &self,
        mut msg: SessionMsg,
        patience: std::time::Duration,
    ) -> Result<(), Refused> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before the check, so a pop between the check and the wait still
            // wakes us.
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.push(msg) {
                Err(Refused::Full(m)) => msg = m,
                other => return other,
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Refused::Full(msg));
            }
        }
    }

    /// Raises the overflow signal (the actor closes the session).
    pub(crate) fn set_overflow(&self) {
        let waker = {
            let mut s = self.lock();
            s.overflow = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_overflowed(&self) -> bool {
        self.lock().overflow
    }

    /// The actor's side: the next message, or pending (with the waker kept).
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<SessionMsg> {
        let (msg, had_waiters) = {
            let mut s = self.lock();
            let full = s.queue.len() >= s.capacity;
            match s.queue.pop_front() {
                Some(m) => (m, full),
                None => {
                    // Idle: hold no queue memory while waiting.
                    s.queue = VecDeque::new();
                    remember(&mut s.waker, cx);
                    return Poll::Pending;
                }
            }
        };
        if had_waiters {
            self.room.notify_waiters();
        }
        Poll::Ready(msg)
    }

    /// The actor's side: a message if one is queued.
    pub(crate) fn try_recv(&self) -> Option<SessionMsg> {
        let (msg, full) = {
            let mut s = self.lock();
            let full = s.queue.len() >= s.capacity;
            (s.queue.pop_front(), full)
        };
        if full && msg.is_some() {
            self.room.notify_waiters();
        }
        msg
    }

    /// The actor's side: ready once the overflow signal is raised.
    pub(crate) fn poll_overflow(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.overflow {
            return Poll::Ready(());
        }
        remember(&mut s.waker, cx);
        Poll::Pending
    }

    /// The actor's side: no more messages are accepted; queued ones can still be taken.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        // Senders waiting for room would otherwise wait out their patience.
        self.room.notify_waiters();
    }
}

fn remember(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_proto::error::{StreamCondition, StreamError};
    use std::sync::Arc;
    use std::time::Duration;

    fn msg() -> SessionMsg {
        SessionMsg::Close(Box::new(StreamError::new(StreamCondition::Conflict)))
    }

    fn recv_now(m: &Mailbox) -> Poll<SessionMsg> {
        m.poll_recv(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_sender_gets_in_when_the_actor_makes_room() {
        let m = Arc::new(Mailbox::new(1));
        assert!(m.push(msg()).is_ok());
        let sender = tokio::spawn({
            let m = m.clone();
            async move { m.push_wait(msg(), Duration::from_secs(5)).await.is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished(), "it waits while the mailbox is full");
        assert!(recv_now(&m).is_ready());
        assert!(sender.await.unwrap());
        assert!(recv_now(&m).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_sender_gives_up_after_its_patience() {
        let m = Mailbox::new(1);
        assert!(m.push(msg()).is_ok());
        let r = m.push_wait(msg(), Duration::from_secs(5)).await;
        assert!(matches!(r, Err(Refused::Full(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn closing_releases_waiting_senders_as_closed() {
        let m = Arc::new(Mailbox::new(1));
        assert!(m.push(msg()).is_ok());
        let sender = tokio::spawn({
            let m = m.clone();
            async move { m.push_wait(msg(), Duration::from_secs(3600)).await }
        });
        tokio::task::yield_now().await;
        m.close();
        assert!(matches!(sender.await.unwrap(), Err(Refused::Closed(_))));
        // What was queued before the close can still be taken.
        assert!(m.try_recv().is_some());
    }

    #[test]
    fn an_idle_mailbox_holds_no_queue_memory() {
        let m = Mailbox::new(64);
        for _ in 0..40 {
            assert!(m.push(msg()).is_ok());
        }
        while recv_now(&m).is_ready() {}
        assert_eq!(m.lock().queue.capacity(), 0);
    }

    #[test]
    fn a_send_wakes_the_waiting_actor() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let m = Mailbox::new(4);
        assert!(m.poll_recv(&mut Context::from_waker(&waker)).is_pending());
        assert!(m.push(msg()).is_ok());
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
    }
}
