//! What c2s negotiation and the bound session actor need of a client's stream. Two kinds of
//! stream implement it: `XmppStream<IO>` for a client on its own socket (TCP or TLS), here; and
//! a client behind a connection manager, whose elements arrive wrapped in `<route>` on a link
//! shared with other clients (implemented in `cm/stream.rs`, which hands it to
//! `c2s::serve_routed`; c2s never names it). Everything above this trait — header checks,
//! SASL, bind, the session actor — is the same code for both, which is what makes a CM-routed
//! client an ordinary session.

use rookery_proto::error::StreamError;
use rookery_transport::stream::{ReadError, XmppStream};
use rookery_xml::{Element, FramerError, Limits, StreamEvent};
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) trait ClientIo: Send {
    /// The next event, waiting for input. Cancel-safe.
    fn next_event(&mut self) -> impl Future<Output = Result<StreamEvent, ReadError>> + Send;
    /// The next event already received, without waiting (None: more input needed).
    fn poll_event(&mut self) -> Result<Option<StreamEvent>, FramerError>;
    /// Waits for more input (then `poll_event`). Cancel-safe.
    fn read_more(&mut self) -> impl Future<Output = Result<(), ReadError>> + Send;
    /// Whether a stanza has started but not finished (the unfinished-stanza timeout).
    fn in_stanza(&self) -> bool;
    /// Input received but not yet parsed into events (data pipelined after `<starttls/>`).
    fn buffered_len(&self) -> usize;
    fn set_limits(&mut self, limits: Limits);
    /// How long one `flush` may take before the client counts as not reading.
    fn set_write_timeout(&mut self, d: std::time::Duration);
    /// Stream restart after SASL success.
    fn restart(&mut self);
    /// Queues an element for the client (call `flush`).
    fn queue(&mut self, el: &Element);
    /// Writes what is queued.
    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Queues our stream header: it goes out with the features (or the stream error) that
    /// always follow it, in one write.
    fn queue_header(&mut self, attrs: &[(&str, &str)]);
    /// A stream error, then close.
    fn fail(&mut self, err: &StreamError) -> impl Future<Output = ()> + Send;
    /// Closes the stream.
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    fn send(&mut self, el: &Element) -> impl Future<Output = std::io::Result<()>> + Send {
        self.queue(el);
        self.flush()
    }

    /// Whether the server itself must confirm that messages reached a client without stream
    /// management (`confirm.rs`): yes on a socket of its own; behind a connection manager the
    /// link hands back what it could not deliver, and the client's hop is the manager's.
    fn confirms_delivery(&self) -> bool {
        true
    }

    /// The session turned on stream management (XEP-0198) or resumed a session that has it:
    /// from now on the session itself keeps what it writes until the client acknowledges it,
    /// and a transport that also keeps written stanzas for redelivery (a CM link's queue)
    /// must leave those to the session.
    fn set_stream_managed(&mut self) {}
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send> ClientIo for XmppStream<IO> {
    async fn next_event(&mut self) -> Result<StreamEvent, ReadError> {
        XmppStream::next_event(self).await
    }
    fn poll_event(&mut self) -> Result<Option<StreamEvent>, FramerError> {
        XmppStream::poll_event(self)
    }
    async fn read_more(&mut self) -> Result<(), ReadError> {
        XmppStream::read_more(self).await
    }
    fn in_stanza(&self) -> bool {
        self.framer().in_stanza()
    }
    fn buffered_len(&self) -> usize {
        self.framer().buffered_len()
    }
    fn set_write_timeout(&mut self, d: std::time::Duration) {
        XmppStream::set_write_timeout(self, d);
    }
    fn set_limits(&mut self, limits: Limits) {
        XmppStream::set_limits(self, limits)
    }
    fn restart(&mut self) {
        XmppStream::restart(self)
    }
    fn queue(&mut self, el: &Element) {
        XmppStream::queue(self, el)
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        XmppStream::flush(self).await
    }
    fn queue_header(&mut self, attrs: &[(&str, &str)]) {
        XmppStream::queue_header(self, attrs)
    }
    async fn fail(&mut self, err: &StreamError) {
        XmppStream::fail(self, err).await
    }
    async fn close(&mut self) {
        XmppStream::close(self).await
    }
}
