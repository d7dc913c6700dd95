//! One connection-manager link as both ends see it: an ordered, acknowledged outgoing queue
//! and the writer task that drains it onto the socket. Used by the server's link listener and
//! by the `rookery cm` process alike.
//!
//! Why a queue and not a channel: every reliable element gets a sequence number when it is
//! queued, and stays queued after it is written until the peer acknowledges it (`<a h/>`). When
//! the socket dies, what the peer never acknowledged is still here, in order, and moves to
//! another link of the same CM (`take_tail`) — so a dropped link loses and reorders nothing.
//! A peer that does not speak the acknowledgement extension (Openfire's own CM) switches
//! retention off and the queue forgets elements once written.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Queued-but-unwritten bytes above which senders wait (a CM that stops reading pushes back on
/// the sessions writing to it instead of growing memory without bound).
const MAX_UNWRITTEN: usize = 4 * 1024 * 1024;
/// Write buffer capacity a link keeps between batches.
const KEEP_OUT: usize = 64 * 1024;
/// Received elements after which an acknowledgement is sent without waiting for the timer.
const ACK_EVERY: u64 = 16;
/// How long a received element may stay unacknowledged.
const ACK_DELAY: Duration = Duration::from_millis(20);

#[derive(Default)]
struct OutQueue {
    /// Sequence number the next reliable element gets (the first is 1).
    next_seq: u64,
    /// Reliable elements not yet acknowledged; the first `written` of them are on the wire.
    items: VecDeque<(u64, Bytes)>,
    written: usize,
    unwritten_bytes: usize,
    /// Link-extension bytes (acks, resume answers): written first, never retained.
    control: Vec<u8>,
    /// Keep written elements until acknowledged (the peer acknowledges).
    retain: bool,
}

pub struct Link {
    /// The server-assigned link id (the link stream's id); `<resume previd>` names it.
    pub id: String,
    /// The CM's address for this link (`name/Connection Worker - n`).
    pub address: String,
    q: Mutex<OutQueue>,
    wake: Notify,
    drained: Notify,
    alive: AtomicBool,
    /// The link's traffic moved to another link (`seal`): its reader takes no more elements.
    sealed: AtomicBool,
    /// Held by the reader while it takes one element in (counts and handles it), so `seal`
    /// can wait for the element in hand.
    reading: tokio::sync::Mutex<()>,
    /// Reliable elements received on this link (what `<a h/>` and `<resume h/>` report).
    received: AtomicU64,
    acked_sent: AtomicU64,
    /// Cancelled when the link's socket is finished; its tasks stop.
    pub closed: CancellationToken,
}

impl Link {
    pub fn new(id: String, address: String) -> Arc<Link> {
        Arc::new(Link {
            id,
            address,
            q: Mutex::new(OutQueue {
                next_seq: 1,
                retain: true,
                ..OutQueue::default()
            }),
            wake: Notify::new(),
            drained: Notify::new(),
            alive: AtomicBool::new(true),
            sealed: AtomicBool::new(false),
            reading: tokio::sync::Mutex::new(()),
            received: AtomicU64::new(0),
            acked_sent: AtomicU64::new(0),
            closed: CancellationToken::new(),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, OutQueue> {
        // Plain data; a panic elsewhere cannot leave it half-updated in a harmful way.
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Queues a reliable element: `bytes` must be exactly one top-level element, since the
    /// peer counts elements and we count pushes. On a dead link it still queues: the bytes wait in order for
    /// the link's traffic to be resumed elsewhere (or are recovered when it never is).
    pub fn push(&self, bytes: Bytes) {
        let mut q = self.queue();
        let seq = q.next_seq;
        q.next_seq += 1;
        q.unwritten_bytes += bytes.len();
        q.items.push_back((seq, bytes));
        drop(q);
        self.wake.notify_one();
    }

    /// Queues link-extension bytes (not counted, not retained).
    pub fn push_control(&self, bytes: &[u8]) {
        self.queue().control.extend_from_slice(bytes);
        self.wake.notify_one();
    }

    /// Waits while the link has too much unwritten data (backpressure), at most `patience`.
    /// False: still full after that (the peer is not reading).
    pub async fn wait_room(&self, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.queue().unwritten_bytes < MAX_UNWRITTEN {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return false;
            }
        }
    }

    /// Waits until everything queued was written (or the link died).
    pub async fn wait_written(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let q = self.queue();
                if !self.is_alive() || (q.control.is_empty() && q.written == q.items.len()) {
                    return;
                }
            }
            drained.await;
        }
    }

    /// Ends the link stream cleanly after everything already queued: waits (up to `patience`)
    /// for the queue to be written, then writes `</stream:stream>`. Not `push_control` at once:
    /// control bytes jump the queue, so the close would overtake what was queued last (a CM's
    /// final session `<close/>`s) and the peer would never read it.
    pub async fn close_after_queued(&self, patience: Duration) {
        let _ = tokio::time::timeout(patience, self.wait_written()).await;
        self.push_control(rookery_xml::STREAM_CLOSE.as_bytes());
        let _ = tokio::time::timeout(patience, self.wait_written()).await;
    }

    /// The peer acknowledged `h` reliable elements.
    pub fn ack(&self, h: u64) {
        let mut q = self.queue();
        while q.items.front().is_some_and(|(seq, _)| *seq <= h) && q.written > 0 {
            q.items.pop_front();
            q.written -= 1;
        }
    }

    /// The peer does not acknowledge: forget elements once written.
    pub fn stop_retaining(&self) {
        let mut q = self.queue();
        q.retain = false;
        let w = q.written;
        q.items.drain(..w);
        q.written = 0;
    }

    pub fn retaining(&self) -> bool {
        self.queue().retain
    }

    /// Received elements not yet acknowledged, when an acknowledgement may be sent: never to
    /// a peer that said it does not speak the extension (Openfire's CM logs every unknown
    /// element it gets as a warning).
    fn ack_due(&self) -> Option<u64> {
        let received = self.received();
        (received > self.acked_sent.load(Ordering::Acquire) && self.retaining()).then_some(received)
    }

    /// Counts one reliable element received; wakes the writer when an ack is due.
    pub fn note_received(&self) {
        let n = self.received.fetch_add(1, Ordering::AcqRel) + 1;
        if n - self.acked_sent.load(Ordering::Acquire) >= ACK_EVERY {
            self.wake.notify_one();
        }
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Acquire)
    }

    /// The reader's turn for one element: count it and handle it while holding the guard.
    /// `None` once the link is sealed: the element must be dropped (the peer sends it again
    /// on the link that took over, counting from what `seal` reported).
    pub async fn read_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let turn = self.reading.lock().await;
        (!self.sealed.load(Ordering::Acquire)).then_some(turn)
    }

    /// Stops this link's reader from taking further elements and waits until it is done with
    /// the one in hand; returns how many reliable elements it took, which stays final. The
    /// peer resumes the link elsewhere and resends everything after that count: without the
    /// seal, bytes still buffered on the old connection could be read and handled after the
    /// count was reported, and reach their recipient twice.
    pub async fn seal(&self) -> u64 {
        self.sealed.store(true, Ordering::Release);
        drop(self.reading.lock().await);
        self.received()
    }

    /// Marks the socket gone: the writer stops, queued elements stay for `take_tail`.
    pub fn kill(&self) {
        self.alive.store(false, Ordering::Release);
        self.closed.cancel();
        self.drained.notify_waiters();
    }

    /// After the link died: every element the peer had not received (`peer_h` = how many it
    /// did), in order, and everything queued since. The queue is left empty.
    pub fn take_tail(&self, peer_h: u64) -> Vec<Bytes> {
        let mut q = self.queue();
        q.written = 0;
        q.unwritten_bytes = 0;
        q.items
            .drain(..)
            .filter(|(seq, _)| *seq > peer_h)
            .map(|(_, b)| b)
            .collect()
    }

    /// Unwritten elements (and pending control bytes) to write now; marks them written.
    fn take_unwritten(&self, batch: &mut Vec<Bytes>) {
        let mut q = self.queue();
        if !q.control.is_empty() {
            let c = std::mem::take(&mut q.control);
            batch.push(Bytes::from(c));
        }
        let start = q.written;
        batch.extend(q.items.iter().skip(start).map(|(_, b)| b.clone()));
        q.written = q.items.len();
        q.unwritten_bytes = 0;
        if !q.retain {
            q.items.clear();
            q.written = 0;
        }
    }
}

/// The read half of a link: the framer carried over from negotiation, then plain reads.
pub struct LinkReader<R> {
    framer: rookery_xml::Framer,
    io: R,
    buf: Box<[u8]>,
    /// When bytes last arrived: whitespace keepalives yield no event but show the peer alive.
    last_read: tokio::time::Instant,
}

impl<R: tokio::io::AsyncRead + Unpin> LinkReader<R> {
    pub fn new(framer: rookery_xml::Framer, io: R) -> Self {
        LinkReader {
            framer,
            io,
            buf: vec![0u8; 16 * 1024].into_boxed_slice(),
            last_read: tokio::time::Instant::now(),
        }
    }

    /// When bytes (elements or whitespace) last arrived.
    pub fn last_read(&self) -> tokio::time::Instant {
        self.last_read
    }

    /// The next event. Cancel-safe: bytes reach the framer only after a read completed.
    pub async fn next_event(
        &mut self,
    ) -> Result<rookery_xml::StreamEvent, crate::stream::ReadError> {
        use crate::stream::ReadError;
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(ev) = self.framer.next_event().map_err(ReadError::Xml)? {
                return Ok(ev);
            }
            let n = self
                .io
                .read(&mut self.buf)
                .await
                .map_err(|_| ReadError::Closed)?;
            if n == 0 {
                return Err(ReadError::Closed);
            }
            self.last_read = tokio::time::Instant::now();
            self.framer.feed(&self.buf[..n]);
        }
    }
}

/// Writes the link's queue to the socket until the link is closed or a write fails; a
/// whitespace keepalive after `heartbeat` of silence; acknowledgements of what was received.
/// Returns when done (the caller kills the link).
pub async fn run_writer<W: AsyncWrite + Unpin>(link: Arc<Link>, mut w: W, heartbeat: Duration) {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut last_write = tokio::time::Instant::now();
    loop {
        let wait = if link.ack_due().is_some() {
            ACK_DELAY
        } else {
            heartbeat.saturating_sub(last_write.elapsed())
        };
        tokio::select! {
            _ = link.closed.cancelled() => return,
            _ = link.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        if let Some(received) = link.ack_due() {
            link.acked_sent.store(received, Ordering::Release);
            batch.push(Bytes::from(super::wire::ack_bytes(received)));
        }
        link.take_unwritten(&mut batch);
        if batch.is_empty() && last_write.elapsed() >= heartbeat {
            batch.push(Bytes::from_static(b" "));
        }
        if batch.is_empty() {
            continue;
        }
        // One write for the whole batch: a busy link carries many small elements, and a
        // syscall each would cost more than copying them together.
        out.clear();
        for b in batch.drain(..) {
            out.extend_from_slice(&b);
        }
        let res = tokio::time::timeout(crate::stream::WRITE_TIMEOUT, async {
            w.write_all(&out).await?;
            w.flush().await
        })
        .await;
        if out.capacity() > KEEP_OUT {
            out = Vec::new();
        }
        link.drained.notify_waiters();
        if !matches!(res, Ok(Ok(()))) {
            return;
        }
        last_write = tokio::time::Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Regression: a stopping CM pushed `</stream:stream>` as a control element, which is
    /// written ahead of queued elements, so its last session `<close/>`s could follow the
    /// stream close and the server kept those sessions for the resume grace.
    #[tokio::test]
    async fn a_clean_close_goes_after_what_was_queued() {
        use tokio::io::AsyncReadExt;
        let link = Link::new("l1".into(), "cm/1".into());
        link.push(b("<iq id='close-1'/>"));
        let closing = tokio::spawn({
            let link = link.clone();
            async move { link.close_after_queued(Duration::from_secs(5)).await }
        });
        // The writer starts only after the close was asked for: the order must still hold.
        tokio::task::yield_now().await;
        let (w, mut r) = tokio::io::duplex(4096);
        let writer = tokio::spawn(run_writer(link.clone(), w, Duration::from_secs(3600)));
        closing.await.unwrap();
        link.kill();
        writer.await.unwrap();
        let mut got = String::new();
        r.read_to_string(&mut got).await.unwrap();
        let iq = got.find("close-1").expect("the queued element was written");
        let end = got.find("</stream:stream>").expect("the stream was closed");
        assert!(iq < end, "{got}");
    }

    #[test]
    fn unacknowledged_elements_survive_the_link_in_order() {
        let link = Link::new("l1".into(), "cm/1".into());
        for s in ["1", "2", "3", "4"] {
            link.push(b(s));
        }
        let mut batch = Vec::new();
        link.take_unwritten(&mut batch);
        assert_eq!(batch.len(), 4);
        link.ack(2);
        link.push(b("5"));
        link.kill();
        // The peer got 3 of them before the link died: 4 and the unwritten 5 remain.
        assert_eq!(link.take_tail(3), vec![b("4"), b("5")]);
        assert!(link.take_tail(0).is_empty());
    }

    #[test]
    fn ack_never_drops_unwritten_elements() {
        let link = Link::new("l1".into(), "cm/1".into());
        link.push(b("1"));
        link.push(b("2"));
        let mut batch = Vec::new();
        link.take_unwritten(&mut batch);
        link.push(b("3"));
        link.ack(5);
        assert_eq!(link.take_tail(0), vec![b("3")]);
    }

    #[test]
    fn without_retention_written_elements_are_forgotten() {
        let link = Link::new("l1".into(), "cm/1".into());
        link.push(b("1"));
        link.stop_retaining();
        let mut batch = Vec::new();
        link.take_unwritten(&mut batch);
        assert_eq!(batch, vec![b("1")]);
        link.push(b("2"));
        assert_eq!(link.take_tail(0), vec![b("2")]);
    }

    #[tokio::test]
    async fn a_sealed_link_takes_nothing_more_and_seal_waits_for_the_element_in_hand() {
        let link = Link::new("l1".into(), "cm/1".into());
        let turn = link.read_turn().await.expect("open link");
        link.note_received();
        // The reader holds its turn (handling an element): seal waits for it.
        let sealing = tokio::spawn({
            let link = link.clone();
            async move { link.seal().await }
        });
        tokio::task::yield_now().await;
        assert!(
            !sealing.is_finished(),
            "seal returned while an element was in hand"
        );
        drop(turn);
        assert_eq!(
            sealing.await.unwrap(),
            1,
            "the count includes the element in hand"
        );
        assert!(
            link.read_turn().await.is_none(),
            "no element after the seal"
        );
        assert_eq!(link.received(), 1);
    }

    #[tokio::test]
    async fn writer_writes_in_order_and_acknowledges() {
        let link = Link::new("l1".into(), "cm/1".into());
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(run_writer(link.clone(), client, Duration::from_secs(30)));
        link.note_received();
        link.push(b("<x/>"));
        link.push(b("<y/>"));
        let mut got = Vec::new();
        let want = format!(
            "{}<x/><y/>",
            String::from_utf8(super::super::wire::ack_bytes(1)).unwrap()
        );
        while got.len() < want.len() {
            let mut buf = [0u8; 256];
            let n = tokio::io::AsyncReadExt::read(&mut server, &mut buf)
                .await
                .unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8(got).unwrap(), want);
        link.kill();
        task.await.unwrap();
    }

    /// Regression: acknowledgements went to every peer, also to Openfire's CM, which answered
    /// the configuration without `<acks/>` and logs each `<a/>` as an unknown stanza.
    #[tokio::test]
    async fn no_acknowledgements_to_a_peer_without_the_extension() {
        let link = Link::new("l1".into(), "cm/1".into());
        link.stop_retaining();
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(run_writer(link.clone(), client, Duration::from_secs(30)));
        for _ in 0..2 * ACK_EVERY {
            link.note_received();
        }
        link.push(b("<x/>"));
        let mut buf = [0u8; 256];
        let n = tokio::io::AsyncReadExt::read(&mut server, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"<x/>");
        link.kill();
        task.await.unwrap();
    }
}
