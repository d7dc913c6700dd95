//! The durable side of stream management: the group-commit writer that puts resumable
//! sessions' records and outboxes in the store (`rookery_store::SmStore`), and the receipts
//! that tell a sender when what it sent is durable.
//!
//! Session actors (rookery-net) and core's parked sessions (`resume.rs`) never wait on disk:
//! they queue `SmOp`s here and go on writing to their sockets. One writer task takes whatever
//! has queued up (up to `BATCH` ops) and applies it in one transaction, so the commit rate, not
//! the op rate, is what the store pays for; under load batches grow by themselves, idle a
//! single op commits at once.
//!
//! What does wait is the *sender's* acknowledgement (XEP-0198 §4: `<a h/>` says a stanza was
//! handled). A stanza a stream-managed client sent is routed inside `tracked`: every copy
//! queued for a session carries an `Origin` with a clone of its `Receipt`. A copy written to a
//! resumable session's outbox hands its clone to the writer, which drops it after the commit;
//! anywhere else the clone is dropped once the stanza was written to its socket or stored
//! (offline storage completes inside the routing call). When the last clone is gone, the
//! sender's `Durable` resolves and its `h` may count the stanza.

use rookery_proto::stanza::Stanza;
use rookery_store::{OutboxRow, SmOp, SmStore};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most ops applied in one transaction.
const BATCH: usize = 512;
/// A batch smaller than this waits `LINGER` once for more.
const LINGER_BELOW: usize = 64;
const LINGER: Duration = Duration::from_micros(500);

/// A share in one routed stanza's durability; the stanza is durable once every share is
/// dropped. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Receipt(#[allow(dead_code)] Arc<oneshot::Sender<()>>);

/// Resolves when every `Receipt` of a stanza is dropped.
#[derive(Debug)]
pub struct Durable {
    rx: oneshot::Receiver<()>,
    /// Resolved already (a finished receiver must not be polled again).
    done: bool,
}

/// A new receipt and the future that waits for it.
pub fn receipt() -> (Receipt, Durable) {
    let (tx, rx) = oneshot::channel();
    (Receipt(Arc::new(tx)), Durable { rx, done: false })
}

impl Durable {
    /// Whether it resolved already (without waiting).
    pub fn is_done(&mut self) -> bool {
        if !self.done {
            self.done = matches!(
                self.rx.try_recv(),
                Err(oneshot::error::TryRecvError::Closed)
            );
        }
        self.done
    }
}

impl Future for Durable {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        // Nothing is ever sent: the channel closes when the last `Receipt` drops.
        let r = Pin::new(&mut self.rx).poll(cx).map(|_| ());
        self.done = r.is_ready();
        r
    }
}

/// Where a routed stanza came from: the sending session and its stanza number (the dedupe key
/// a resent duplicate repeats, `OutboxRow::origin`), and the sender's receipt.
#[derive(Clone, Debug)]
pub struct Origin {
    pub key: Arc<str>,
    pub receipt: Receipt,
}

impl Origin {
    /// The key of stanza number `n` of session `session` (its `SessionId` text).
    pub fn new(session: &str, n: u32, receipt: Receipt) -> Origin {
        Origin {
            key: format!("{session}#{n}").into(),
            receipt,
        }
    }
}

tokio::task_local! {
    static ORIGIN: Origin;
}

/// Runs `f` (the routing of one client stanza) so that every copy it queues for a session
/// carries `origin`.
pub async fn tracked<F: Future>(origin: Origin, f: F) -> F::Output {
    ORIGIN.scope(origin, f).await
}

/// The origin of the stanza being routed by this task, if it is tracked.
pub(crate) fn current_origin() -> Option<Origin> {
    ORIGIN.try_with(Origin::clone).ok()
}

// Ops travel by value through the queue: boxing each would cost an allocation per stanza
// written, for a slot size the channel's blocks absorb.
#[allow(clippy::large_enum_variant)]
enum Job {
    Op(SmOp, Option<Receipt>),
    /// Resolved once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// The queue to the writer task (`Server::outbox`).
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Job>,
}

impl Outbox {
    /// Starts the writer on `store`; it runs until every `Outbox` clone is dropped.
    pub(crate) fn start(store: Arc<dyn SmStore>) -> Outbox {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, rx));
        Outbox { tx }
    }

    /// Queues `op`; `receipt` is dropped once it is committed.
    pub fn queue(&self, op: SmOp, receipt: Option<Receipt>) {
        // The writer lives as long as any `Outbox`: this one keeps it alive.
        let _ = self.tx.send(Job::Op(op, receipt));
    }

    /// Queues the row for stanza `seq` of `session`'s outgoing stream.
    pub fn append(&self, session: &str, seq: u64, st: &Stanza, origin: Option<Origin>) {
        let (origin, receipt) = match origin {
            Some(o) => (Some(o.key.to_string()), Some(o.receipt)),
            None => (None, None),
        };
        let row = OutboxRow {
            seq,
            stanza_id: stanza_id(st),
            xml: st.element().to_xml(),
            attempts: 1,
            origin,
        };
        self.queue(
            SmOp::Append {
                session: session.to_owned(),
                row,
            },
            receipt,
        );
    }

    /// The client of `session` acknowledged up to sequence number `upto`.
    pub fn ack(&self, session: &str, upto: u64) {
        self.queue(
            SmOp::Ack {
                session: session.to_owned(),
                upto,
            },
            None,
        );
    }

    /// `session` reports `handled` to its client now.
    pub fn handled(&self, session: &str, handled: u32) {
        self.queue(
            SmOp::Handled {
                session: session.to_owned(),
                handled,
            },
            None,
        );
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The id a row is known by: the stable id the server stamped (XEP-0359), else the stanza's
/// own `id`.
fn stanza_id(st: &Stanza) -> String {
    st.element()
        .get_child("stanza-id", rookery_proto::ns::SID)
        .and_then(|e| e.attr("id"))
        .or_else(|| st.id())
        .unwrap_or_default()
        .to_owned()
}

/// Takes what queued up, commits it in one transaction, then releases its receipts and
/// flushes. A failing store is retried (with a growing pause) until it takes the batch:
/// nothing queued is dropped, and no sender hears "durable" before it is.
async fn writer(store: Arc<dyn SmStore>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut ops = Vec::with_capacity(BATCH);
    let mut receipts = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut lingered = false;
        loop {
            while let Some(job) = next.take() {
                match job {
                    Job::Op(op, receipt) => {
                        ops.push(op);
                        receipts.extend(receipt);
                    }
                    Job::Flush(done) => flushes.push(done),
                }
                if ops.len() < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            // A small batch while others are busy: wait a moment for their ops, so one
            // commit (and one write of each touched page) serves more of them. Idle, the
            // wait finds nothing and costs one LINGER of latency.
            if lingered || ops.len() >= LINGER_BELOW {
                break;
            }
            lingered = true;
            tokio::time::sleep(LINGER).await;
            next = rx.try_recv().ok();
            if next.is_none() {
                break;
            }
        }
        // Handed over whole (the ops move, their strings are not copied); the share kept
        // here is for a retry.
        let batch: Arc<[SmOp]> = std::mem::replace(&mut ops, Vec::with_capacity(BATCH)).into();
        let mut pause = Duration::from_millis(50);
        while !batch.is_empty() {
            match store.apply_shared(Arc::clone(&batch)).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, ops = batch.len(), what = "sm-outbox-write", "store error; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
        drop(batch);
        receipts.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn durable_resolves_when_the_last_share_drops() {
        let (r, mut d) = receipt();
        let r2 = r.clone();
        drop(r);
        assert!(!d.is_done(), "a share is still held");
        drop(r2);
        assert!(d.is_done());
        d.await;
    }

    #[tokio::test]
    async fn tracked_routing_sees_its_origin_and_nothing_else_does() {
        assert!(current_origin().is_none());
        let (r, _d) = receipt();
        let key = tracked(Origin::new("n/abc", 7, r), async {
            current_origin().map(|o| o.key.to_string())
        })
        .await;
        assert_eq!(key.as_deref(), Some("n/abc#7"));
        assert!(current_origin().is_none());
    }
}
