//! A session's bounded mailbox (`session.rs`): what the router, modules and other sessions put
//! in, and what the session actor (rookery-net) takes out and writes to its client.
//!
//! Why not tokio's mpsc: every bound session owns one, and most sit idle. tokio's bounded
//! channel costs about 1.1 KiB per idle session (its cache-padded channel state, a first block
//! of 32 slots allocated up front, and a separate cancellation token for the close signal),
//! the largest single item in an idle plain connection after the socket itself. This one is a
//! `Mutex<VecDeque>` inside the handle's own allocation, whose queue is only allocated while
//! it holds messages, plus the close flag and the actor's waker: about 100 bytes.
//!
//! A full mailbox never says anything about the session: a burst from someone else can fill
//! it faster than one turn of the actor's write loop, and that must not cost the recipient its
//! connection (a slow reader is one whose own socket stops draining: the actor's write
//! timeout). So there are two bounds. `capacity` is where a sender that can wait (a stanza
//! routed on behalf of another session or stream: `push_wait`) waits for room, which pauses
//! that sender's own reads — backpressure to whoever is flooding. `limit` (a multiple of it)
//! bounds what the server itself queues without waiting (presence broadcasts, roster pushes);
//! past it a send is refused and the caller takes its fallback. When a waiting sender gives up,
//! the mailbox is marked stalled until the actor takes something out, so further senders fail
//! over at once instead of each waiting out its patience.
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

/// How many times `capacity` non-waiting sends may fill the queue to.
const LIMIT_FACTOR: usize = 4;

struct State {
    queue: VecDeque<SessionMsg>,
    /// Where waiting senders wait.
    capacity: usize,
    /// Where non-waiting sends are refused.
    limit: usize,
    /// The actor closed the mailbox (or dropped its end): sends fail as closed.
    closed: bool,
    /// A waiting sender gave up and the actor has taken nothing out since: don't wait again.
    stalled: bool,
    /// A close was requested that must not wait behind queued messages (or could not be
    /// queued): the actor closes the session now.
    close_now: bool,
    /// The actor's task, waiting for a message or for the close signal.
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
                limit: capacity.max(1).saturating_mul(LIMIT_FACTOR),
                closed: false,
                stalled: false,
                close_now: false,
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

    /// Queues `msg` below the hard limit; never waits.
    pub(crate) fn push(&self, msg: SessionMsg) -> Result<(), Refused> {
        self.push_below(msg, |s| s.limit).map_err(|(r, _)| r)
    }

    /// Queues `msg` if the queue is below `bound(state)`; a refusal says whether the sender
    /// may wait (not stalled).
    fn push_below(
        &self,
        msg: SessionMsg,
        bound: impl FnOnce(&State) -> usize,
    ) -> Result<(), (Refused, bool)> {
        let waker = {
            let mut s = self.lock();
            if s.closed {
                return Err((Refused::Closed(msg), false));
            }
            if s.queue.len() >= bound(&s) {
                let may_wait = !s.stalled;
                return Err((Refused::Full(msg), may_wait));
            }
            s.queue.push_back(msg);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues `msg`, waiting up to `patience` while the queue is at `capacity`. Gives up at
    /// once while the mailbox is stalled (an earlier sender waited in vain).
    pub(crate) async fn push_wait(
        &self,
        mut msg: SessionMsg,
        patience: std::time::Duration,
    ) -> Result<(), Refused> {
        // The common case, room now, costs one lock and no waiter registration.
        match self.push_below(msg, |s| s.capacity) {
            Ok(()) => return Ok(()),
            Err((Refused::Full(m), true)) => msg = m,
            Err((r, _)) => return Err(r),
        }
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before the check, so a pop between the check and the wait still
            // wakes us.
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.push_below(msg, |s| s.capacity) {
                Ok(()) => return Ok(()),
                Err((Refused::Full(m), true)) => msg = m,
                Err((r, _)) => return Err(r),
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                self.lock().stalled = true;
                return Err(Refused::Full(msg));
            }
        }
    }

    /// Asks the actor to close now, ahead of what is queued.
    pub(crate) fn set_close_now(&self) {
        let waker = {
            let mut s = self.lock();
            s.close_now = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_close_now(&self) -> bool {
        self.lock().close_now
    }

    /// The actor's side: the next message, or pending (with the waker kept).
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<SessionMsg> {
        let popped = {
            let mut s = self.lock();
            let popped = s.pop();
            if popped.is_none() {
                // Idle: hold no queue memory while waiting.
                s.queue = VecDeque::new();
                remember(&mut s.waker, cx);
            }
            popped
        };
        match popped {
            Some(msg) => Poll::Ready(self.made_room(msg)),
            None => Poll::Pending,
        }
    }

    /// The actor's side: a message if one is queued.
    pub(crate) fn try_recv(&self) -> Option<SessionMsg> {
        let popped = self.lock().pop();
        popped.map(|m| self.made_room(m))
    }

    /// Wakes waiting senders if the pop made room for them (outside the lock).
    fn made_room(&self, (msg, room): (SessionMsg, bool)) -> SessionMsg {
        if room {
            self.room.notify_waiters();
        }
        msg
    }

    /// The actor's side: ready once an immediate close was asked for.
    pub(crate) fn poll_close_now(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.close_now {
            return Poll::Ready(());
        }
        remember(&mut s.waker, cx);
        Poll::Pending
    }

    /// The connection is gone and a stream-managed session waits to be resumed: a close asked
    /// of that connection is forgotten. The mailbox is not marked stalled: the parked session's
    /// drainer (`resume.rs`) takes what arrives into its outbox without waiting on anything, so
    /// a sender that finds it full waits for room as with a live actor, instead of failing over
    /// to offline storage while the session is still there to be resumed.
    pub(crate) fn park(&self) {
        self.lock().close_now = false;
    }

    /// The actor's side: no more messages are accepted; queued ones can still be taken.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        // Senders waiting for room would otherwise wait out their patience.
        self.room.notify_waiters();
    }
}

impl State {
    /// Takes the oldest message, and whether waiting senders now have room: the pop took the
    /// queue below capacity (non-waiting sends may have taken it above; it comes down one pop
    /// at a time).
    fn pop(&mut self) -> Option<(SessionMsg, bool)> {
        let room = self.queue.len() == self.capacity;
        let msg = self.queue.pop_front()?;
        self.stalled = false;
        Some((msg, room))
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

    /// Regression: parking used to mark the mailbox stalled, from before parked sessions had
    /// a drainer, so a sender that found it full failed over at once.
    #[tokio::test(start_paused = true)]
    async fn a_parked_mailbox_still_lets_senders_wait_for_room() {
        let m = Arc::new(Mailbox::new(1));
        m.park();
        assert!(m.push(msg()).is_ok());
        let sender = tokio::spawn({
            let m = m.clone();
            async move { m.push_wait(msg(), Duration::from_secs(5)).await.is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished(), "it waits while the mailbox is full");
        assert!(recv_now(&m).is_ready(), "the drainer takes one");
        assert!(sender.await.unwrap());
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
