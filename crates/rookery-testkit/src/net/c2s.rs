//! A hand-written c2s client on a real listener: over plain TCP with SASL PLAIN (servers
//! configured with `allow_plain_unencrypted`), or over STARTTLS with rustls' client and
//! SCRAM-SHA-1-PLUS, computing the channel binding itself (RFC 5802, RFC 9266); then resource
//! binding (RFC 6120 §7).

use super::{RawPeer, XmppStream, raw_connect};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rookery_proto::ns;
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

/// A new c2s connection authenticated as `user` with SASL PLAIN over plain TCP, its stream
/// restarted (features read), not bound: for tests of what comes before binding (XEP-0198
/// `<resume/>`, bind errors).
pub async fn authenticate_plain(
    addr: SocketAddr,
    domain: &str,
    user: &str,
    password: &str,
) -> RawPeer {
    let mut p = raw_connect(addr, ns::CLIENT).await;
    p.open(None, domain).await;
    let creds = STANDARD.encode(format!("\0{user}\0{password}"));
    p.raw(&format!(
        "<auth xmlns='{}' mechanism='PLAIN'>{creds}</auth>",
        ns::SASL
    ))
    .await;
    let r = p.element(10).await;
    assert_eq!(r.name(), "success", "{}", r.to_xml());
    p.open(None, domain).await;
    p
}
/// Logs in over plaintext c2s with SASL PLAIN and binds `resource`; returns after the bind
/// result. The stream id is kept in `stream_id`, the bound JID is `user@domain/resource`.
pub async fn login_plain(
    addr: SocketAddr,
    domain: &str,
    user: &str,
    password: &str,
    resource: &str,
) -> RawPeer {
    let mut p = authenticate_plain(addr, domain, user, password).await;
    p.raw(&format!(
        "<iq type='set' id='bind'><bind xmlns='{}'>\
         <resource>{resource}</resource></bind></iq>",
        ns::BIND
    ))
    .await;
    let r = p.element(10).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    p
}

// --- STARTTLS, typed so tests can look at the TLS connection -------------------------------

/// A c2s stream over the client's TLS connection.
pub type Tls = XmppStream<TlsStream<TcpStream>>;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// The next element; fails the test after 5 s or on anything else.
pub async fn element<IO: AsyncRead + AsyncWrite + Unpin>(s: &mut XmppStream<IO>) -> Element {
    match tokio::time::timeout(Duration::from_secs(5), s.next_event()).await {
        Ok(Ok(StreamEvent::Stanza(el))) => el,
        other => panic!("expected an element, got {:?}", other.map(|r| r.is_ok())),
    }
}

/// Sends our header (to `localhost`), reads the server's and its features.
pub async fn open<IO: AsyncRead + AsyncWrite + Unpin>(s: &mut XmppStream<IO>) -> Element {
    s.restart();
    s.queue_raw(HEADER.as_bytes());
    s.flush().await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), s.next_event()).await {
        Ok(Ok(StreamEvent::Open(_))) => {}
        _ => panic!("expected the server's stream header"),
    }
    element(s).await
}

/// Connects, STARTTLS with `config`, and reopens on TLS: the stream and the features there.
pub async fn tls_stream(addr: SocketAddr, config: Arc<ClientConfig>) -> (Tls, Element) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = XmppStream::new(tcp, rookery_xml::Limits::default(), ns::CLIENT);
    open(&mut s).await;
    s.queue_raw(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    s.flush().await.unwrap();
    assert_eq!(element(&mut s).await.name(), "proceed");
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, s.into_inner())
        .await
        .unwrap();
    let mut s = XmppStream::new(tls, rookery_xml::Limits::default(), ns::CLIENT);
    let features = open(&mut s).await;
    (s, features)
}

/// The client's side of the TLS connection (XmppStream keeps the transport inside).
pub fn conn(s: &Tls) -> &tokio_rustls::rustls::ClientConnection {
    s.get_ref().get_ref().1
}

/// The client's own `tls-exporter` binding (RFC 9266).
pub fn exporter(s: &Tls) -> Vec<u8> {
    conn(s)
        .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
        .unwrap()
}

/// SCRAM-SHA-1-PLUS as `juliet` (password `PASSWORD`) with channel binding `cb_type` and data
/// `cb_data`; true on success (the server's signature is checked).
pub async fn scram_plus(s: &mut Tls, cb_type: &str, cb_data: &[u8]) -> bool {
    let gs2 = format!("p={cb_type},,");
    let bare = "n=juliet,r=clientnonce0123456789";
    s.queue_raw(
        format!(
            "<auth xmlns='{}' mechanism='SCRAM-SHA-1-PLUS'>{}</auth>",
            ns::SASL,
            STANDARD.encode(format!("{gs2}{bare}"))
        )
        .as_bytes(),
    );
    s.flush().await.unwrap();
    let ch = element(s).await;
    assert_eq!(ch.name(), "challenge", "{}", ch.to_xml());
    let first = String::from_utf8(STANDARD.decode(ch.text().trim()).unwrap()).unwrap();
    let mut cbind = gs2.as_bytes().to_vec();
    cbind.extend_from_slice(cb_data);
    let (final_msg, server_sig) = super::scram_sha1_final(crate::PASSWORD, bare, &first, &cbind);
    s.queue_raw(
        format!(
            "<response xmlns='{}'>{}</response>",
            ns::SASL,
            STANDARD.encode(final_msg)
        )
        .as_bytes(),
    );
    s.flush().await.unwrap();
    let r = element(s).await;
    if r.name() != "success" {
        return false;
    }
    let v = String::from_utf8(STANDARD.decode(r.text().trim()).unwrap()).unwrap();
    assert_eq!(v, format!("v={}", STANDARD.encode(server_sig)));
    true
}

/// After SASL: restarts the stream, binds `resource` and makes an IQ round trip.
pub async fn bind_and_ping(s: &mut Tls, resource: &str) {
    open(s).await;
    s.queue_raw(
        format!(
            "<iq type='set' id='b1'><bind xmlns='{}'>\
             <resource>{resource}</resource></bind></iq>",
            ns::BIND
        )
        .as_bytes(),
    );
    s.flush().await.unwrap();
    let bound = element(s).await;
    assert_eq!(bound.attr("type"), Some("result"), "{}", bound.to_xml());
    s.queue_raw(b"<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    s.flush().await.unwrap();
    let pong = element(s).await;
    assert_eq!(pong.attr("id"), Some("p1"));
    assert_eq!(pong.attr("type"), Some("result"), "{}", pong.to_xml());
}
