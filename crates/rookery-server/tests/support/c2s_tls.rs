//! A hand-written client over STARTTLS on a real c2s listener (rustls' client): a server for
//! `localhost` with the account juliet/pw, stream opening, STARTTLS, SCRAM-SHA-1-PLUS with the
//! binding the client computes itself, bind and an IQ round trip. Used by the c2s TLS tests
//! (`c2s_tls.rs`, `c2s_tls_certs_resume.rs`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rookery_config::{Config, ListenerKind};
use rookery_transport::stream::XmppStream;
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

pub type Tls = XmppStream<TlsStream<TcpStream>>;

/// A server for `localhost` with `host_extra` in its `[[host]]` and `extra` before it (further
/// sections), and the account juliet/pw; the directory holds its data.
pub async fn start(
    host_extra: &str,
    extra: &str,
) -> (rookery_server::Running, tempfile::TempDir, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\ndata_dir = \"data\"\n[s2s]\nenabled = false\n{extra}\n\
         [[host]]\ndomain = \"localhost\"\n{host_extra}\n\
         [[listen]]\naddress = \"127.0.0.1\"\nport = 0\nkind = \"c2s\"\n"
    );
    let path = dir.path().join("rookery.toml");
    std::fs::write(&path, toml).unwrap();
    let running = rookery_server::start(Config::load(&path).unwrap())
        .await
        .unwrap();
    let bare = rookery_proto::stanza::BareJid::new("juliet@localhost").unwrap();
    rookery_core::accounts::create(running.server.stores(), &bare, "pw", 4096)
        .await
        .unwrap();
    let addr = running.addr(ListenerKind::C2s).unwrap();
    (running, dir, addr)
}

pub async fn element<IO: AsyncRead + AsyncWrite + Unpin>(s: &mut XmppStream<IO>) -> Element {
    match tokio::time::timeout(Duration::from_secs(5), s.next_event()).await {
        Ok(Ok(StreamEvent::Stanza(el))) => el,
        other => panic!("expected an element, got {:?}", other.map(|r| r.is_ok())),
    }
}

/// Sends our header, reads the server's and its features.
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
    let mut s = XmppStream::new(tcp, rookery_xml::Limits::default(), "jabber:client");
    open(&mut s).await;
    s.queue_raw(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    s.flush().await.unwrap();
    assert_eq!(element(&mut s).await.name(), "proceed");
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, s.into_inner())
        .await
        .unwrap();
    let mut s = XmppStream::new(tls, rookery_xml::Limits::default(), "jabber:client");
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

/// SCRAM-SHA-1-PLUS as juliet with channel binding `cb_type` and data `cb_data`; true on
/// success (the server's signature is checked).
pub async fn scram_plus(s: &mut Tls, cb_type: &str, cb_data: &[u8]) -> bool {
    let gs2 = format!("p={cb_type},,");
    let bare = "n=juliet,r=clientnonce0123456789";
    s.queue_raw(
        format!(
            "<auth xmlns='{SASL}' mechanism='SCRAM-SHA-1-PLUS'>{}</auth>",
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
    let (final_msg, server_sig) = super::scram_sha1_final("pw", bare, &first, &cbind);
    s.queue_raw(
        format!(
            "<response xmlns='{SASL}'>{}</response>",
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
            "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
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
