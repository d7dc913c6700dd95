//! A framed XMPP stream over any byte transport (TCP, TLS; later a WebSocket adapter): bytes
//! in → `Framer` → `StreamEvent`s; elements out → serialized into one write buffer. Used by the
//! server's stream actors (rookery-net: c2s, s2s, components, connection-manager and router
//! links) and by the connection manager (rookery-cm); knows no protocol rules. Also the fresh
//! stream ids every one of them hands out.

use rookery_proto::error::StreamError;
use rookery_proto::ns;
use rookery_xml::{Element, Framer, FramerError, Limits, StreamEvent};
use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection (EOF) or it broke.
    Closed,
    /// The bytes were not acceptable XML (carries the stream error condition).
    Xml(FramerError),
}

/// Bytes read per call, into a buffer shared by all streams on a thread (one TLS record's
/// worth of plaintext). Streams own no read buffer: most connections sit idle, and memory per
/// idle connection is what limits how many one server holds (bench/results/).
const READ_BUF: usize = 16 * 1024;

thread_local! {
    /// The per-thread read buffer. Borrowed only inside one synchronous `poll_read`, never
    /// across an `.await`, so tasks on the same worker thread cannot contend for it.
    static READ_SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_BUF].into_boxed_slice());
}
/// Write buffer capacity kept between flushes; it grows on demand.
const KEEP_WRITE_BUF: usize = 16 * 1024;

/// How long one write may take before the peer is considered not to be reading (unless the
/// stream was given its own bound: `set_write_timeout`).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(WRITE_TIMEOUT_SECS as u64);
pub const WRITE_TIMEOUT_SECS: u32 = 30;

pub struct XmppStream<IO> {
    io: IO,
    framer: Framer,
    /// Serialized output not yet written; emptied (and freed) while the stream is idle.
    out: Vec<u8>,
    /// The content namespace written as the default (`jabber:client` for c2s).
    content_ns: &'static str,
    /// `flush`'s bound, in seconds (a `u32` rather than a `Duration`: every connection holds
    /// one of these).
    write_timeout_secs: u32,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> XmppStream<IO> {
    pub fn new(io: IO, limits: Limits, content_ns: &'static str) -> Self {
        XmppStream {
            io,
            framer: Framer::new(limits),
            out: Vec::new(),
            content_ns,
            write_timeout_secs: WRITE_TIMEOUT_SECS,
        }
    }

    /// Reads until the framer yields the next event. Cancel-safe: bytes are only handed to the
    /// framer after a read completed, and the framer keeps partial input across calls.
    pub async fn next_event(&mut self) -> Result<StreamEvent, ReadError> {
        loop {
            if let Some(ev) = self.framer.next_event().map_err(ReadError::Xml)? {
                return Ok(ev);
            }
            self.read_more().await?;
        }
    }

    /// Parses the next buffered event without reading (None: more bytes needed).
    pub fn poll_event(&mut self) -> Result<Option<StreamEvent>, FramerError> {
        self.framer.next_event()
    }

    /// One read from the transport into the framer. Cancel-safe (see `next_event`).
    pub async fn read_more(&mut self) -> Result<(), ReadError> {
        std::future::poll_fn(|cx| self.poll_read_more(cx)).await
    }

    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ReadError>> {
        READ_SCRATCH.with_borrow_mut(|scratch| {
            let mut rb = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Pending => {
                    // Nothing to read: the stream is idle until the transport wakes us, so the
                    // parse and write buffers go back to the allocator meanwhile. A busy
                    // stream rarely gets here, so it keeps its buffers warm.
                    self.framer.release_idle_memory();
                    if self.out.is_empty() {
                        self.out = Vec::new();
                    }
                    Poll::Pending
                }
                Poll::Ready(Err(_)) => Poll::Ready(Err(ReadError::Closed)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    Poll::Ready(Err(ReadError::Closed))
                }
                Poll::Ready(Ok(())) => {
                    self.framer.feed(rb.filled());
                    Poll::Ready(Ok(()))
                }
            }
        })
    }

    /// The transport (e.g. to ask a TLS stream about its session).
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    pub fn framer(&self) -> &Framer {
        &self.framer
    }
    pub fn set_limits(&mut self, limits: Limits) {
        self.framer.set_limits(limits);
    }
    /// Stream restart (after SASL success): a fresh parser; pipelined bytes stay buffered.
    pub fn restart(&mut self) {
        self.framer.reset();
    }

    /// Queues an element for writing (call `flush`).
    pub fn queue(&mut self, el: &Element) {
        if el.ns() == ns::STREAM && el.attrs().next().is_none() {
            // `<stream:features>` and friends use the prefix bound on our stream header; some
            // clients match the prefixed name literally rather than by namespace.
            self.out.extend_from_slice(b"<stream:");
            self.out.extend_from_slice(el.name().as_bytes());
            self.out.push(b'>');
            for child in el.children() {
                child.write_to(&mut self.out, ns::CLIENT);
            }
            self.out.extend_from_slice(b"</stream:");
            self.out.extend_from_slice(el.name().as_bytes());
            self.out.push(b'>');
            return;
        }
        if el.ns() == ns::DIALBACK {
            // `db:result` / `db:verify` with the prefix our s2s headers bind: ejabberd (p1_xmpp)
            // matches dialback by its prefixed name and ignores the unprefixed form.
            el.write_prefixed(&mut self.out, "db", ns::CLIENT);
            return;
        }
        // Inside the server every stanza is in `jabber:client`; writing with that as the parent
        // namespace makes stanzas inherit whatever content namespace this stream declared
        // (`jabber:server` on s2s) without copying the tree to rename it.
        el.write_to(&mut self.out, ns::CLIENT);
    }
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// How long one `flush` may take (c2s: `[limits] write_timeout_secs`).
    pub fn set_write_timeout(&mut self, d: Duration) {
        self.write_timeout_secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    }

    /// Writes what is queued, bounded by the write timeout (a peer that doesn't read is
    /// dropped).
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let bound = Duration::from_secs(u64::from(self.write_timeout_secs));
        let res = tokio::time::timeout(bound, async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await
        })
        .await;
        self.out.clear();
        if self.out.capacity() > KEEP_WRITE_BUF {
            // A burst (offline backlog, a large stanza) is over: don't hold its buffer for the
            // rest of a possibly idle session.
            self.out.shrink_to(KEEP_WRITE_BUF);
        }
        match res {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "peer is not reading",
            )),
        }
    }

    pub async fn send(&mut self, el: &Element) -> std::io::Result<()> {
        self.queue(el);
        self.flush().await
    }

    /// Writes our stream header.
    pub async fn send_header(&mut self, attrs: &[(&str, &str)]) -> std::io::Result<()> {
        self.send_header_ns(attrs, &[]).await
    }

    /// Queues our stream header (written by the next flush).
    pub fn queue_header(&mut self, attrs: &[(&str, &str)]) {
        rookery_xml::stream_open(&mut self.out, self.content_ns, attrs, &[]);
    }

    /// Our stream header with extra prefix declarations (s2s declares `xmlns:db`).
    pub async fn send_header_ns(
        &mut self,
        attrs: &[(&str, &str)],
        extra_ns: &[(&str, &str)],
    ) -> std::io::Result<()> {
        rookery_xml::stream_open(&mut self.out, self.content_ns, attrs, extra_ns);
        self.flush().await
    }

    /// Sends a stream error and the closing tag, then shuts the transport down. Errors on the
    /// way are ignored: the stream is being torn down anyway.
    pub async fn fail(&mut self, err: &StreamError) {
        self.queue_raw(stream_error_xml(err).as_bytes());
        self.close().await;
    }

    /// Sends `</stream:stream>` and shuts down the write side.
    pub async fn close(&mut self) {
        self.queue_raw(rookery_xml::STREAM_CLOSE.as_bytes());
        let _ = self.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.io.shutdown()).await;
    }

    /// The transport, for STARTTLS to wrap (the caller has checked no bytes are buffered).
    pub fn into_inner(self) -> IO {
        self.io
    }

    /// The framer (with any bytes already read) and the transport, for a link that reads and
    /// writes from separate tasks once negotiated.
    pub fn into_parts(self) -> (Framer, IO) {
        (self.framer, self.io)
    }
}

/// `<stream:error>` with the conventional prefix (some clients match it literally).
pub fn stream_error_xml(err: &StreamError) -> String {
    let mut s = String::from("<stream:error>");
    let mut cond = Element::new(err.condition.as_str(), ns::STREAMS);
    let mut out = Vec::new();
    cond.write_to(&mut out, "");
    if let Some(text) = &err.text {
        cond = Element::new("text", ns::STREAMS).with_text(text.as_str());
        cond.write_to(&mut out, "");
    }
    s.push_str(&String::from_utf8_lossy(&out));
    s.push_str("</stream:error>");
    s
}

/// Maps a framer error to the stream error we send.
pub fn framer_stream_error(e: &FramerError) -> StreamError {
    StreamError::new(rookery_proto::error::StreamCondition::from_name(
        e.condition(),
    ))
    .with_text(e.to_string())
}

/// A fresh stream id: 128 bits from the OS RNG (RFC 6120 §4.7.3 wants it unpredictable).
pub fn new_stream_id() -> String {
    let mut b = [0u8; 16];
    // No RNG means no safe ids: abort the connection task rather than use a guessable one.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut b).expect("OS random number generator unavailable");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
