//! An established TLS 1.3 server connection without rustls' per-connection buffers: the
//! socket, the record layer (`tls::records`: two AEAD keys, sequence numbers, traffic
//! secrets) and three buffers that exist only while they hold bytes. An idle client costs
//! about 1.3 KiB here instead of rustls' ~8 KiB (bench/results/2026-12-06-memory.md).
//!
//! Built by `tls::ServerTls::establish` from a finished rustls handshake. Reading opens whole
//! records in place; writing seals into records and the bytes are written on flush. The
//! session above (`XmppStream`) writes then flushes, so nothing stays buffered here for
//! long.

use super::records::{HEADER_LEN, MAX_CIPHERTEXT, Opened, RecordLayer, alert_for};
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at a time (records may span reads).
const READ_SIZE: usize = 16 * 1024;

thread_local! {
    /// The per-thread ciphertext buffer: one maximal record plus a read's worth. Borrowed only
    /// inside one synchronous `poll_read`, never across an `.await`.
    static CIPHERTEXT: RefCell<Box<[u8]>> =
        RefCell::new(vec![0u8; HEADER_LEN + MAX_CIPHERTEXT + READ_SIZE].into_boxed_slice());
}
/// Sealed bytes held before a writer is told to wait for the socket.
const WRITE_HIGH_WATER: usize = 64 * 1024;

pub struct CompactTls<IO> {
    io: IO,
    records: RecordLayer,
    /// Ciphertext read but not yet opened: `inbuf[in_pos..]`.
    inbuf: Vec<u8>,
    in_pos: usize,
    /// Plaintext opened but not yet read: `plain[plain_pos..]`.
    plain: Vec<u8>,
    plain_pos: usize,
    /// Sealed records not yet written: `outbuf[out_pos..]`.
    outbuf: Vec<u8>,
    out_pos: usize,
    /// The peer's close_notify came, or the socket ended.
    read_closed: bool,
    /// Our close_notify is sealed.
    close_sealed: bool,
}

/// What an opened record gives the reader: data into `out` (the rest into `plain`), or the
/// end of the peer's data.
fn deliver(opened: Opened<'_>, out: &mut ReadBuf<'_>, plain: &mut Vec<u8>, read_closed: &mut bool) {
    match opened {
        Opened::Data(data) => {
            let n = out.remaining().min(data.len());
            out.put_slice(&data[..n]);
            plain.extend_from_slice(&data[n..]);
        }
        Opened::CloseNotify => *read_closed = true,
        Opened::Nothing => {}
    }
}

impl<IO> CompactTls<IO> {
    /// `unread`: ciphertext read during the handshake that rustls did not see; `plain`:
    /// plaintext rustls opened but nobody read yet.
    pub(crate) fn new(io: IO, records: RecordLayer, unread: Vec<u8>, plain: Vec<u8>) -> Self {
        CompactTls {
            io,
            records,
            inbuf: unread,
            in_pos: 0,
            plain,
            plain_pos: 0,
            outbuf: Vec::new(),
            out_pos: 0,
            read_closed: false,
            close_sealed: false,
        }
    }

    /// TLS bytes to send before anything sealed here (what rustls still had queued).
    pub(crate) fn queue_raw(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.outbuf = bytes;
            self.out_pos = 0;
        }
    }

    /// Copies buffered plaintext into `out`; frees the buffer once it is read.
    fn take_plain(&mut self, out: &mut ReadBuf<'_>) -> bool {
        if self.plain_pos >= self.plain.len() {
            return false;
        }
        let n = out.remaining().min(self.plain.len() - self.plain_pos);
        out.put_slice(&self.plain[self.plain_pos..self.plain_pos + n]);
        self.plain_pos += n;
        if self.plain_pos == self.plain.len() {
            self.plain = Vec::new();
            self.plain_pos = 0;
        }
        true
    }

    /// Opens the next whole record in `inbuf`, if there is one. Data goes to `out`, what does
    /// not fit into `plain`. Returns whether a record was consumed.
    fn open_one(&mut self, out: &mut ReadBuf<'_>) -> io::Result<bool> {
        let avail = &self.inbuf[self.in_pos..];
        let Some(len) = RecordLayer::record_len(avail)? else {
            return Ok(false);
        };
        if avail.len() < len {
            return Ok(false);
        }
        let start = self.in_pos;
        self.in_pos += len;
        let opened = self.records.open(&mut self.inbuf[start..start + len])?;
        deliver(opened, out, &mut self.plain, &mut self.read_closed);
        if self.in_pos == self.inbuf.len() {
            self.inbuf = Vec::new();
            self.in_pos = 0;
        }
        Ok(true)
    }
}

#[cfg(test)]
impl<IO> CompactTls<IO> {
    pub(crate) fn set_key_limit_for_tests(&mut self, limit: u64) {
        self.records.set_limit_for_tests(limit);
    }

    pub(crate) fn tx_seq_for_tests(&self) -> u64 {
        self.records.tx_seq_for_tests()
    }

    pub(crate) fn into_parts_for_tests(self) -> (IO, RecordLayer) {
        (self.io, self.records)
    }

    pub(crate) fn buffer_capacity_for_tests(&self) -> usize {
        self.inbuf.capacity() + self.plain.capacity() + self.outbuf.capacity()
    }
}

impl<IO: AsyncWrite + Unpin> CompactTls<IO> {
    /// Writes sealed bytes until none are left; then frees the buffer.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.records.wants_write() {
            // A KeyUpdate the peer asked for goes out even when we have no data to send.
            self.records.seal_pending(&mut self.outbuf)?;
        }
        while self.out_pos < self.outbuf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outbuf[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.outbuf = Vec::new();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for CompactTls<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = this.poll_read_records(cx, out);
        if let Poll::Ready(Err(e)) = &r {
            // Tell the peer why before the connection is dropped (RFC 8446 §6.2), as far as
            // the socket takes it now; nothing is written after a fatal alert.
            if let (Some(desc), false) = (alert_for(e), this.close_sealed) {
                if this
                    .records
                    .seal_fatal_alert(desc, &mut this.outbuf)
                    .is_ok()
                {
                    let _ = this.poll_write_out(cx);
                }
                this.close_sealed = true;
            }
        }
        r
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> CompactTls<IO> {
    fn poll_read_records(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self;
        if out.remaining() == 0 || this.take_plain(out) {
            return Poll::Ready(Ok(()));
        }
        loop {
            let before = out.filled().len();
            while !this.read_closed && this.open_one(out)? {
                if out.filled().len() > before {
                    break;
                }
            }
            if this.records.wants_write() {
                // Answer a KeyUpdate now: the peer may be waiting for it before it sends more.
                // A socket that cannot take it right now gets it with the next write.
                let _ = this.poll_write_out(cx)?;
            }
            if out.filled().len() > before || this.read_closed {
                return Poll::Ready(Ok(()));
            }
            // Need more ciphertext.
            if this.in_pos < this.inbuf.len() {
                // A record is partly here: read the rest into its own buffer.
                if this.in_pos > 0 {
                    this.inbuf.drain(..this.in_pos);
                    this.in_pos = 0;
                }
                if this.inbuf.capacity() - this.inbuf.len() < READ_SIZE / 2 {
                    this.inbuf.reserve(READ_SIZE);
                }
                let n = ready!(tokio_util::io::poll_read_buf(
                    Pin::new(&mut this.io),
                    cx,
                    &mut this.inbuf
                ))?;
                if n == 0 {
                    this.read_closed = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "tls: connection ended inside a record",
                    )));
                }
                continue;
            }
            // The common case: nothing pending. Read into the thread's buffer and open the
            // records there, so a connection allocates nothing per read.
            this.inbuf = Vec::new();
            this.in_pos = 0;
            let n = ready!(this.read_via_scratch(cx, out))?;
            if n == 0 {
                this.read_closed = true;
                return Poll::Ready(Ok(()));
            }
            if this.records.wants_write() {
                let _ = this.poll_write_out(cx)?;
            }
            if out.filled().len() > before || this.read_closed {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> CompactTls<IO> {
    /// One socket read into the thread's ciphertext buffer; opens every whole record in it
    /// (data to `out`, the rest to `plain`) and keeps a trailing partial record in `inbuf`.
    /// Returns the bytes read (0: end of stream).
    fn read_via_scratch(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        CIPHERTEXT.with_borrow_mut(|scratch| {
            let mut rb = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            let mut pos = 0;
            while pos < n && !self.read_closed {
                let Some(len) = RecordLayer::record_len(&scratch[pos..n])? else {
                    break;
                };
                if pos + len > n {
                    break;
                }
                let opened = self.records.open(&mut scratch[pos..pos + len])?;
                deliver(opened, out, &mut self.plain, &mut self.read_closed);
                pos += len;
            }
            if pos < n && !self.read_closed {
                self.inbuf.extend_from_slice(&scratch[pos..n]);
            }
            Poll::Ready(Ok(n))
        })
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for CompactTls<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.close_sealed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if this.outbuf.len() - this.out_pos >= WRITE_HIGH_WATER {
            ready!(this.poll_write_out(cx))?;
        }
        let n = data.len().min(WRITE_HIGH_WATER);
        this.records.seal(&data[..n], &mut this.outbuf)?;
        // Start writing now; what the socket doesn't take goes out on flush.
        if let Poll::Ready(Err(e)) = this.poll_write_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sealed {
            this.records.seal_close_notify(&mut this.outbuf)?;
            this.close_sealed = true;
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
