//! The transport under a TLS handshake on a c2s listener: hands rustls whole TLS records, so
//! that when the handshake ends we know rustls holds no partial record and the connection can
//! leave rustls' buffers for the compact record layer (`tls::compact`).
//!
//! rustls reads into a 4 KiB window; a record longer than the window it asks for is handed
//! over in pieces (that only happens during the handshake for a large ClientHello, or after
//! it when the client sends a big record right behind its Finished). [`Aligned::at_boundary`]
//! tells whether everything handed over so far ended on a record boundary; if not, the
//! connection simply stays with rustls.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::records::{HEADER_LEN, MAX_CIPHERTEXT};

/// Largest record during a handshake (TLS 1.2's limit; TLS 1.3's is smaller).
const MAX_RECORD: usize = HEADER_LEN + MAX_CIPHERTEXT + 1792;
/// Bytes read from the socket at a time.
const READ_SIZE: usize = 4096;

pub struct Aligned<IO> {
    io: IO,
    /// Bytes read from the socket and not yet handed to rustls: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// Bytes of a record partly handed over that are still to come.
    record_left: usize,
    /// Once something that is not a TLS record shows up (rustls will reject it), or after the
    /// handshake when the connection stays with rustls: bytes pass through as they come.
    passthrough: bool,
}

impl<IO> Aligned<IO> {
    pub fn new(io: IO) -> Self {
        Aligned {
            io,
            buf: Vec::new(),
            pos: 0,
            record_left: 0,
            passthrough: false,
        }
    }

    /// Whether all bytes handed to rustls so far form whole records.
    pub fn at_boundary(&self) -> bool {
        self.record_left == 0 && !self.passthrough
    }

    /// The connection stays with rustls: stop looking at records.
    pub fn pass_through(&mut self) {
        self.passthrough = true;
    }

    /// The socket and the bytes read from it that rustls has not seen.
    pub fn into_parts(mut self) -> (IO, Vec<u8>) {
        let rest = if self.pos == 0 {
            std::mem::take(&mut self.buf)
        } else {
            self.buf[self.pos..].to_vec()
        };
        (self.io, rest)
    }

    /// How many of the buffered bytes can be handed over into a window of `space` bytes.
    fn releasable(&mut self, space: usize) -> usize {
        let avail = &self.buf[self.pos..];
        if self.passthrough {
            return avail.len().min(space);
        }
        if self.record_left > 0 {
            let n = self.record_left.min(avail.len()).min(space);
            self.record_left -= n;
            return n;
        }
        // Whole records that fit.
        let mut n = 0;
        while avail.len() - n >= HEADER_LEN {
            let len = HEADER_LEN + usize::from(u16::from_be_bytes([avail[n + 3], avail[n + 4]]));
            if len > MAX_RECORD {
                // Not a record we would accept: let rustls see it and fail.
                self.passthrough = true;
                return avail.len().min(space);
            }
            if n + len > avail.len() || n + len > space {
                if n == 0 && len <= avail.len() {
                    // A whole record larger than the window: hand it over in pieces.
                    self.record_left = len - space;
                    return space;
                }
                break;
            }
            n += len;
        }
        n
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Aligned<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.passthrough && this.pos == this.buf.len() {
            return Pin::new(&mut this.io).poll_read(cx, out);
        }
        loop {
            let n = this.releasable(out.remaining());
            if n > 0 {
                out.put_slice(&this.buf[this.pos..this.pos + n]);
                this.pos += n;
                if this.pos == this.buf.len() {
                    this.buf = Vec::new();
                    this.pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            // Not a whole record yet: read more (bounded by one record).
            if this.buf.len() - this.pos >= MAX_RECORD {
                this.passthrough = true;
                continue;
            }
            let mut chunk = [0u8; READ_SIZE];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                // End of stream: hand over what there is, then the end.
                this.passthrough = true;
                if this.pos == this.buf.len() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if this.pos > 0 {
                this.buf.drain(..this.pos);
                this.pos = 0;
            }
            this.buf.extend_from_slice(rb.filled());
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Aligned<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn record(len: usize) -> Vec<u8> {
        let mut r = vec![22, 3, 3];
        r.extend_from_slice(&(len as u16).to_be_bytes());
        r.extend(std::iter::repeat_n(7u8, len));
        r
    }

    /// Reads with a window of `window` bytes until `total` bytes came, checking after each
    /// read whether it ended on a record boundary.
    async fn read_all(a: &mut Aligned<&[u8]>, window: usize, total: usize) -> Vec<(usize, bool)> {
        let mut got = 0;
        let mut reads = Vec::new();
        while got < total {
            let mut w = vec![0u8; window];
            let n = a.read(&mut w).await.unwrap();
            assert!(n > 0);
            got += n;
            reads.push((n, a.at_boundary()));
        }
        reads
    }

    #[tokio::test]
    async fn whole_records_are_handed_over_together() {
        let mut input = record(100);
        input.extend(record(200));
        input.extend(record(50)); // does not fit a 320-byte window with the others
        let mut a = Aligned::new(&input[..]);
        let reads = read_all(&mut a, 320, input.len()).await;
        assert_eq!(reads, vec![(310, true), (55, true)]);
    }

    #[tokio::test]
    async fn a_record_larger_than_the_window_comes_in_pieces() {
        let input = record(10_000);
        let mut a = Aligned::new(&input[..]);
        let reads = read_all(&mut a, 4096, input.len()).await;
        assert_eq!(reads, vec![(4096, false), (4096, false), (1813, true)]);
    }

    #[tokio::test]
    async fn garbage_passes_through_and_is_never_a_boundary() {
        let input = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let mut a = Aligned::new(&input[..]);
        let mut w = [0u8; 64];
        let n = a.read(&mut w).await.unwrap();
        assert_eq!(&w[..n], &input[..n]);
        assert!(!a.at_boundary());
    }

    #[tokio::test]
    async fn unread_bytes_are_returned_with_the_socket() {
        let mut input = record(10);
        input.extend(record(5000)); // larger than the 4 KiB socket read: stays buffered
        let mut a = Aligned::new(&input[..]);
        let mut w = [0u8; 15];
        assert_eq!(a.read(&mut w).await.unwrap(), 15);
        let (_, rest) = a.into_parts();
        assert_eq!(rest, input[15..4096]);
    }
}
