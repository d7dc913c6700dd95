//! A hand-written peer on any stream (c2s, s2s, component, connection manager): raw XML out,
//! framed events in, each read bounded by a timeout so a silent server fails the test instead
//! of hanging it.

use super::XmppStream;
use rookery_proto::ns;
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Any transport a peer runs on (TCP, or TLS after STARTTLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What a raw peer read next.
#[derive(Debug)]
pub enum Ev {
    Header(rookery_xml::StreamHeader),
    El(Element),
    /// `</stream:stream>`, EOF or a broken connection.
    End,
}

/// A raw stream peer (either side of a stream).
pub struct RawPeer {
    pub stream: XmppStream<Box<dyn Io>>,
    /// The id of the current stream (the one the other side gave us, or the one we gave).
    pub stream_id: String,
    pub features: Option<Element>,
}

/// `io` framed as a stream whose content namespace is `content_ns`.
pub(crate) fn framed(io: Box<dyn Io>, content_ns: &'static str) -> XmppStream<Box<dyn Io>> {
    XmppStream::new(io, rookery_xml::Limits::default(), content_ns)
}

/// A TCP connection to `addr` framed as an XMPP stream whose content namespace is
/// `content_ns`; nothing is sent yet.
pub async fn raw_connect(addr: SocketAddr, content_ns: &'static str) -> RawPeer {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    RawPeer::new(Box::new(tcp), content_ns)
}

impl RawPeer {
    /// A peer on `io`; nothing is sent or read yet.
    pub fn new(io: Box<dyn Io>, content_ns: &'static str) -> RawPeer {
        RawPeer {
            stream: framed(io, content_ns),
            stream_id: String::new(),
            features: None,
        }
    }

    /// Sends our header (`to`, `from` if given, version 1.0, the dialback namespace
    /// declared) and reads theirs (its id) and the features.
    pub async fn open(&mut self, from: Option<&str>, to: &str) {
        self.stream.restart();
        let mut attrs = vec![("to", to), ("version", "1.0")];
        if let Some(f) = from {
            attrs.push(("from", f));
        }
        self.stream
            .send_header_ns(&attrs, &[("db", ns::DIALBACK)])
            .await
            .unwrap();
        match self.next(5).await {
            Ev::Header(h) => self.stream_id = h.attr("id").unwrap().to_owned(),
            other => panic!("expected a stream header, got {other:?}"),
        }
        match self.next(5).await {
            Ev::El(f) if f.name() == "features" => self.features = Some(f),
            other => panic!("expected features, got {other:?}"),
        }
    }

    /// Writes `xml` as it is and flushes.
    pub async fn raw(&mut self, xml: &str) {
        self.stream.queue_raw(xml.as_bytes());
        self.stream.flush().await.unwrap();
    }

    /// The next event; fails the test after `secs`.
    pub async fn next(&mut self, secs: u64) -> Ev {
        match tokio::time::timeout(Duration::from_secs(secs), self.stream.next_event()).await {
            Err(_) => panic!("raw peer: nothing within {secs} s"),
            Ok(Ok(StreamEvent::Open(h))) => Ev::Header(h),
            Ok(Ok(StreamEvent::Stanza(e))) => Ev::El(e),
            Ok(Ok(StreamEvent::Close)) | Ok(Err(_)) => Ev::End,
        }
    }

    /// The next event if one arrives within `d` (None: nothing did).
    pub async fn next_within(&mut self, d: Duration) -> Option<Ev> {
        match tokio::time::timeout(d, self.stream.next_event()).await {
            Err(_) => None,
            Ok(Ok(StreamEvent::Open(h))) => Some(Ev::Header(h)),
            Ok(Ok(StreamEvent::Stanza(e))) => Some(Ev::El(e)),
            Ok(Ok(StreamEvent::Close)) | Ok(Err(_)) => Some(Ev::End),
        }
    }

    /// Sends a client's XEP-0199 ping (id `id`) to `localhost` and checks that its answer is
    /// the next stanza, stream management's `<r/>` requests aside: nothing else was queued
    /// for this client before it.
    pub async fn ping_answered_next(&mut self, id: &str) {
        self.raw(&format!(
            "<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
        loop {
            let e = self.element(5).await;
            if e.is("r", ns::SM) {
                continue;
            }
            assert_eq!(e.attr("id"), Some(id), "{}", e.to_xml());
            break;
        }
    }

    /// The next element (skipping nothing); panics at the end of the stream.
    pub async fn element(&mut self, secs: u64) -> Element {
        match self.next(secs).await {
            Ev::El(e) => e,
            other => panic!("expected an element, got {other:?}"),
        }
    }

    /// The next element that is not a presence (clients get their own presence echoed).
    pub async fn next_non_presence(&mut self, secs: u64) -> Element {
        loop {
            let e = self.element(secs).await;
            if e.name() != "presence" {
                return e;
            }
        }
    }

    /// Reads until a stream error; returns its condition. The stream must then end.
    pub async fn expect_stream_error(&mut self, secs: u64) -> String {
        loop {
            match self.next(secs).await {
                Ev::El(e) if e.name() == "error" && e.ns() == ns::STREAM => {
                    let cond = e
                        .children()
                        .find(|c| c.ns() == ns::STREAMS)
                        .map(|c| c.name().to_owned())
                        .unwrap_or_default();
                    assert!(
                        matches!(self.next(secs).await, Ev::End),
                        "stream must end after the error"
                    );
                    return cond;
                }
                Ev::El(_) | Ev::Header(_) => {}
                Ev::End => panic!("stream ended without a stream error"),
            }
        }
    }
}
