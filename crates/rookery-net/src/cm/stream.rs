//! The server's view of one client behind a connection manager: a `ClientIo` whose input is
//! the payloads of `<route streamid=…>` elements the link reader hands over, and whose output
//! is wrapped in `<route>` and queued on the link the client is pinned to. The c2s negotiation
//! and session actor run on it unchanged — SASL, bind, roster, presence, offline, blocking all
//! behave as for a direct client.
//!
//! The CM owns the client's socket, TLS and stream headers: our headers and features are not
//! sent (the CM writes its own from the configuration IQ), and a stream restart after SASL is
//! a header we synthesize, since the client's new header stays at the CM.

use crate::c2s::io::ClientIo;
use bytes::Bytes;
use rookery_proto::error::StreamError;
use rookery_proto::ns;
use rookery_transport::cm::hub::Hub;
use rookery_transport::stream::{ReadError, stream_error_xml};
use rookery_xml::{Element, FramerError, Limits, StreamEvent, StreamHeader};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the link reader hands a CM session.
#[derive(Debug)]
pub enum CmIn {
    /// A routed element from the client. Boxed: the inbox's slots are allocated up front, and
    /// an idle session should hold pointers, not element-sized slots.
    Element(Box<Element>),
    /// The CM closed the client (it disconnected, or the CM is gone).
    Close,
    /// The client's connection to the CM was lost without a stream close (Rookery's CM says
    /// so with `<close><lost xmlns='urn:rookery:cm:0'/></close>`): to the session it is a
    /// broken connection, which a stream-managed session survives (XEP-0198 §5).
    Lost,
}

pub type CmTx = mpsc::Sender<CmIn>;

/// Elements a session may have waiting from its link before the link reader waits for it.
pub const INBOX: usize = 64;

pub struct CmStream {
    rx: mpsc::Receiver<CmIn>,
    pending: VecDeque<StreamEvent>,
    /// Serialized elements waiting for `flush`, one per entry: each becomes one acknowledged
    /// element on the link, so the peer's count and our sequence numbers agree.
    out: Vec<Bytes>,
    hub: Arc<Hub<CmTx>>,
    streamid: String,
    domain: String,
    peer_closed: bool,
    /// The client's connection was lost (`CmIn::Lost`): every read fails from now on.
    lost: bool,
    closed: bool,
    /// How long `flush` waits for room on the link, in seconds (`set_write_timeout`).
    write_timeout_secs: u32,
}

impl CmStream {
    pub fn new(
        rx: mpsc::Receiver<CmIn>,
        hub: Arc<Hub<CmTx>>,
        streamid: String,
        domain: String,
    ) -> CmStream {
        let mut s = CmStream {
            rx,
            pending: VecDeque::new(),
            out: Vec::new(),
            hub,
            streamid,
            domain,
            peer_closed: false,
            lost: false,
            closed: false,
            write_timeout_secs: rookery_transport::stream::WRITE_TIMEOUT_SECS,
        };
        s.push_header();
        s
    }

    /// The client's (re)started stream as the CM saw it: to our host, `jabber:client`, 1.0.
    fn push_header(&mut self) {
        self.pending.push_back(StreamEvent::Open(StreamHeader {
            ns: ns::STREAM.to_owned(),
            name: "stream".to_owned(),
            default_ns: Some(ns::CLIENT.to_owned()),
            attrs: vec![
                ("to".to_owned(), self.domain.clone()),
                ("version".to_owned(), "1.0".to_owned()),
            ],
            ns_decls: Vec::new(),
        }));
    }

    /// The event a message is; `None` once the connection is lost (reads then fail).
    fn take(&mut self, m: CmIn) -> Option<StreamEvent> {
        match m {
            CmIn::Element(el) => Some(StreamEvent::Stanza(*el)),
            CmIn::Close => {
                self.peer_closed = true;
                Some(StreamEvent::Close)
            }
            CmIn::Lost => {
                self.peer_closed = true;
                self.lost = true;
                None
            }
        }
    }

    async fn write_out(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        if !self
            .hub
            .wait_room(
                &self.streamid,
                Duration::from_secs(u64::from(self.write_timeout_secs)),
            )
            .await
        {
            self.out.clear();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection manager is not reading",
            ));
        }
        if self.hub.send_all(&self.streamid, self.out.drain(..)) {
            Ok(())
        } else {
            Err(std::io::ErrorKind::NotConnected.into())
        }
    }

    /// Queues one serialized element.
    fn push_el(&mut self, bytes: Vec<u8>) {
        self.out.push(Bytes::from(bytes));
    }
}

impl Drop for CmStream {
    fn drop(&mut self) {
        self.hub.remove_session(&self.streamid);
    }
}

impl ClientIo for CmStream {
    fn confirms_delivery(&self) -> bool {
        // The link returns what it could not write to the manager (`<failed/>` from the
        // manager for a client that left, or the link's own queue after its grace).
        false
    }
    fn set_stream_managed(&mut self) {
        self.hub.set_stream_managed(&self.streamid);
    }
    async fn next_event(&mut self) -> Result<StreamEvent, ReadError> {
        if let Some(ev) = self.pending.pop_front() {
            return Ok(ev);
        }
        if self.lost {
            return Err(ReadError::Closed);
        }
        match self.rx.recv().await.and_then(|m| self.take(m)) {
            Some(ev) => Ok(ev),
            None => Err(ReadError::Closed),
        }
    }
    fn poll_event(&mut self) -> Result<Option<StreamEvent>, FramerError> {
        if let Some(ev) = self.pending.pop_front() {
            return Ok(Some(ev));
        }
        if self.lost {
            return Ok(None);
        }
        Ok(self.rx.try_recv().ok().and_then(|m| self.take(m)))
    }
    async fn read_more(&mut self) -> Result<(), ReadError> {
        if self.lost {
            return Err(ReadError::Closed);
        }
        match self.rx.recv().await.and_then(|m| self.take(m)) {
            Some(ev) => {
                self.pending.push_back(ev);
                Ok(())
            }
            None => Err(ReadError::Closed),
        }
    }
    fn in_stanza(&self) -> bool {
        // Only complete elements cross the link.
        false
    }
    fn buffered_len(&self) -> usize {
        self.pending.len()
    }
    fn set_write_timeout(&mut self, d: Duration) {
        self.write_timeout_secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    }
    fn set_limits(&mut self, _limits: Limits) {
        // The CM's framer enforces the client's limits (sent in the configuration IQ); the
        // link's framer caps what crosses the link.
    }
    fn restart(&mut self) {
        self.push_header();
    }
    fn queue(&mut self, el: &Element) {
        if el.is("features", ns::STREAM) {
            // The CM advertises features itself (configuration IQ).
            return;
        }
        let mut b = Vec::with_capacity(256);
        rookery_transport::cm::wire::write_route(
            &mut b,
            &self.domain,
            &self.hub.name,
            &self.streamid,
            el,
        );
        self.push_el(b);
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        self.write_out().await
    }
    fn queue_header(&mut self, _attrs: &[(&str, &str)]) {}
    async fn fail(&mut self, err: &StreamError) {
        if !self.peer_closed {
            let raw = stream_error_xml(err);
            let mut b = Vec::new();
            rookery_transport::cm::wire::write_route_raw(
                &mut b,
                &self.domain,
                &self.hub.name,
                &self.streamid,
                raw.as_bytes(),
            );
            self.push_el(b);
        }
        self.close().await;
    }
    async fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        if !self.peer_closed {
            // Server-initiated close (kick, conflict, shutdown): the CM closes the client.
            let iq = rookery_transport::cm::wire::session_iq(
                "set",
                &format!("close-{}", self.streamid),
                &self.streamid,
                Some(Element::new("close", ns::CM)),
            );
            self.push_el(rookery_transport::cm::wire::to_link_bytes(&iq));
        }
        let _ = self.write_out().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_transport::cm::link::Link;

    /// Regression: a flush of several stanzas was queued as one link item while the CM counts
    /// elements, so its acknowledgements ran ahead of our sequence numbers and a dropped link
    /// lost what was in flight. Every element must be its own item.
    #[tokio::test]
    async fn each_flushed_element_is_one_link_item() {
        let hub = Arc::new(Hub::new("cm1".to_owned()));
        let link = Link::new("l1".into(), "cm1/1".into());
        hub.add_link(link.clone());
        let (tx, rx) = mpsc::channel(4);
        assert!(hub.insert_session("s1", tx, link.clone()));
        let mut s = CmStream::new(rx, hub.clone(), "s1".into(), "localhost".into());
        for i in 0..3 {
            let el = Element::new("message", ns::CLIENT).with_attr("id", i.to_string());
            s.queue(&el);
        }
        s.flush().await.unwrap();
        link.kill();
        let tail = link.take_tail(1);
        assert_eq!(tail.len(), 2, "3 elements, the peer has 1: 2 must remain");
        assert!(String::from_utf8_lossy(&tail[0]).contains("id='1'"));
    }
}
