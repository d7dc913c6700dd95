//! A hand-written jabberd2-style component for the router listener: the header jabberd2
//! sends (no `to`, no default namespace), DIGEST-MD5 computed here from RFC 2831 the way
//! jabberd2's client (gsasl) does it, or SCRAM-SHA-1 (RFC 5802), the stream restart, then raw
//! component-protocol XML out and framed elements in.

use super::peer::framed;
use super::{Ev, Io, XmppStream};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};
use rookery_proto::ns;
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// The jabberd2 component protocol namespace.
pub const NS: &str = "http://jabberd.jabberstudio.org/ns/component/1.0";

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
     version='1.0' xmlns:ack='http://www.xmpp.org/extensions/xep-0198.html#ns'>";

/// A route element with a message payload.
pub fn route(from: &str, to: &str, inner: &str) -> String {
    format!("<route xmlns='{NS}' from='{from}' to='{to}'>{inner}</route>")
}

pub struct RouterComponent {
    pub stream: XmppStream<Box<dyn Io>>,
    pub features: Element,
}

impl RouterComponent {
    /// Connects and reads the header and features; not authenticated yet.
    pub async fn connect(addr: SocketAddr) -> RouterComponent {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = RouterComponent {
            stream: framed(Box::new(tcp), NS),
            features: Element::new("features", ""),
        };
        c.open().await;
        c
    }

    /// Connects as `user` with DIGEST-MD5 and returns the open link.
    pub async fn login(addr: SocketAddr, user: &str, secret: &str) -> RouterComponent {
        let mut c = RouterComponent::connect(addr).await;
        assert!(c.digest_md5(user, secret).await, "login as {user} failed");
        c
    }

    /// Logs in as `user` and binds `name`; panics unless the bind succeeds.
    pub async fn bound(addr: SocketAddr, user: &str, secret: &str, name: &str) -> RouterComponent {
        let mut c = RouterComponent::login(addr, user, secret).await;
        c.raw(&format!("<bind xmlns='{NS}' name='{name}'/>")).await;
        let r = c.next_named("bind", 5).await;
        assert_eq!(r.attr("error"), None, "bind {name}: {}", r.to_xml());
        c
    }

    /// STARTTLS (any certificate accepted), then the header again on the TLS stream.
    pub async fn starttls(&mut self) {
        self.raw("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        let p = self.element(5).await;
        assert_eq!(p.name(), "proceed", "{}", p.to_xml());
        let io = std::mem::replace(&mut self.stream, framed(Box::new(tokio::io::empty()), NS))
            .into_inner();
        let cfg = std::sync::Arc::new(rookery_tls::client_config_insecure_for_tests());
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, io)
            .await
            .unwrap();
        self.stream = framed(Box::new(tls), NS);
        self.open().await;
    }

    async fn open(&mut self) {
        self.stream.restart();
        self.raw(HEADER).await;
        match tokio::time::timeout(Duration::from_secs(5), self.stream.next_event()).await {
            Ok(Ok(StreamEvent::Open(h))) => {
                let id = h.attr("id").unwrap();
                assert_eq!(id.len(), 32, "128-bit hex stream id, got {id}");
            }
            _ => panic!("expected a stream header"),
        }
        let f = self.element(5).await;
        assert_eq!(f.name(), "features", "{}", f.to_xml());
        self.features = f;
    }

    /// The SASL mechanisms offered in the current features.
    pub fn mechanisms(&self) -> Vec<String> {
        self.features
            .get_child("mechanisms", ns::SASL)
            .map(|m| m.children().map(|c| c.text()).collect())
            .unwrap_or_default()
    }

    /// DIGEST-MD5 the way jabberd2's client (gsasl) does it; true on `<success/>`, whose
    /// `rspauth` must then prove the server knows the secret. Restarts the stream on success.
    pub async fn digest_md5(&mut self, user: &str, pass: &str) -> bool {
        self.raw(&format!(
            "<auth xmlns='{}' mechanism='DIGEST-MD5'/>",
            ns::SASL
        ))
        .await;
        let ch = self.element(5).await;
        assert_eq!(ch.name(), "challenge", "{}", ch.to_xml());
        let ch = String::from_utf8(STANDARD.decode(ch.text().trim()).unwrap()).unwrap();
        let nonce = directive(&ch, "nonce");
        let realm = directive(&ch, "realm");
        assert_eq!(realm, "jabberd-router");
        let cnonce = "Y2xpZW50LW5vbmNl";
        let uri = "jabberd-router/test-host";
        // RFC 2831 §2.1.2.1: A1 = H(user:realm:pass):nonce:cnonce, A2 = method:digest-uri.
        let resp = |a2: &str| {
            let mut a1 = Md5::digest(format!("{user}:{realm}:{pass}").as_bytes()).to_vec();
            a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
            let ha1 = hex::encode(Md5::digest(&a1));
            let ha2 = hex::encode(Md5::digest(format!("{a2}:{uri}").as_bytes()));
            hex::encode(Md5::digest(
                format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}").as_bytes(),
            ))
        };
        let msg = format!(
            "username=\"{user}\",realm=\"{realm}\",nonce=\"{nonce}\",cnonce=\"{cnonce}\",nc=00000001,\
             qop=auth,digest-uri=\"{uri}\",response={},charset=utf-8",
            resp("AUTHENTICATE")
        );
        self.raw(&format!(
            "<response xmlns='{}'>{}</response>",
            ns::SASL,
            STANDARD.encode(msg)
        ))
        .await;
        let r = self.element(5).await;
        match r.name() {
            "success" => {
                let data = String::from_utf8(STANDARD.decode(r.text().trim()).unwrap()).unwrap();
                assert_eq!(data, format!("rspauth={}", resp("")), "server proof");
                self.open().await;
                true
            }
            "failure" => false,
            other => panic!("unexpected {other}: {}", r.to_xml()),
        }
    }

    /// SCRAM-SHA-1 (RFC 5802 client side); true on success (server signature checked).
    pub async fn scram_sha1(&mut self, user: &str, pass: &str) -> bool {
        let cnonce = "fyko+d2lbbFgONRv9qkxdawL";
        let bare = format!("n={user},r={cnonce}");
        self.raw(&format!(
            "<auth xmlns='{}' mechanism='SCRAM-SHA-1'>{}</auth>",
            ns::SASL,
            STANDARD.encode(format!("n,,{bare}"))
        ))
        .await;
        let ch = self.element(5).await;
        if ch.name() == "failure" {
            return false;
        }
        let first = String::from_utf8(STANDARD.decode(ch.text().trim()).unwrap()).unwrap();
        let (final_msg, server_sig) = super::scram_sha1_final(pass, &bare, &first, b"n,,");
        self.raw(&format!(
            "<response xmlns='{}'>{}</response>",
            ns::SASL,
            STANDARD.encode(final_msg)
        ))
        .await;
        let r = self.element(5).await;
        if r.name() != "success" {
            return false;
        }
        let v = String::from_utf8(STANDARD.decode(r.text().trim()).unwrap()).unwrap();
        assert_eq!(v, format!("v={}", STANDARD.encode(server_sig)));
        self.open().await;
        true
    }

    /// Writes `xml` as it is and flushes.
    pub async fn raw(&mut self, xml: &str) {
        self.stream.queue_raw(xml.as_bytes());
        self.stream.flush().await.unwrap();
    }

    /// The next element or the end of the stream; fails the test after `secs` or on a
    /// stream header.
    pub async fn next(&mut self, secs: u64) -> Ev {
        match tokio::time::timeout(Duration::from_secs(secs), self.stream.next_event()).await {
            Err(_) => panic!("component: nothing within {secs} s"),
            Ok(Ok(StreamEvent::Stanza(e))) => Ev::El(e),
            Ok(Ok(StreamEvent::Open(_))) => panic!("unexpected stream header"),
            Ok(Ok(StreamEvent::Close)) | Ok(Err(_)) => Ev::End,
        }
    }

    pub async fn element(&mut self, secs: u64) -> Element {
        match self.next(secs).await {
            Ev::El(e) => e,
            _ => panic!("stream ended"),
        }
    }

    /// The next element named `name`, skipping domain announcements (`presence`), which
    /// arrive whenever another connection binds; `drain` is how tests look at those.
    pub async fn next_named(&mut self, name: &str, secs: u64) -> Element {
        loop {
            let e = self.element(secs).await;
            if e.name() == "presence" && name != "presence" {
                continue;
            }
            assert_eq!(e.name(), name, "{}", e.to_xml());
            return e;
        }
    }

    /// Sends a bind and returns the reply.
    pub async fn bind(&mut self, attrs_and_children: &str) -> Element {
        self.raw(&format!("<bind xmlns='{NS}' {attrs_and_children}"))
            .await;
        self.next_named("bind", 5).await
    }

    /// A barrier: sends an unbind of a name nobody holds and reads up to its `404` reply,
    /// returning everything that arrived before it. Replies and mailbox items are written by
    /// one actor in order, so anything queued for us before the barrier is in the result.
    pub async fn drain(&mut self) -> Vec<Element> {
        self.raw(&format!("<unbind xmlns='{NS}' name='barrier.invalid'/>"))
            .await;
        let mut got = Vec::new();
        loop {
            let e = self.element(5).await;
            if e.name() == "unbind" && e.attr("error") == Some("404") {
                return got;
            }
            got.push(e);
        }
    }

    /// The `from` of every announcement in `els` (with `/unavailable` appended when so).
    pub fn announcements(els: &[Element]) -> Vec<String> {
        els.iter()
            .filter(|e| e.name() == "presence")
            .map(|e| {
                let from = e.attr("from").unwrap_or_default().to_owned();
                match e.attr("type") {
                    Some("unavailable") => format!("{from}/unavailable"),
                    _ => from,
                }
            })
            .collect()
    }
}

/// A directive's value from a DIGEST-MD5 challenge.
fn directive(s: &str, k: &str) -> String {
    s.split(',')
        .find_map(|p| p.trim().strip_prefix(&format!("{k}=")))
        .unwrap()
        .trim_matches('"')
        .to_owned()
}
