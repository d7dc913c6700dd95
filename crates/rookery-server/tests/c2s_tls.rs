//! A client over a real c2s listener, STARTTLS with rustls' client (TLS 1.3, so the server
//! hands the connection to its compact record layer, decision 0007): SCRAM-SHA-1-PLUS with the
//! `tls-exporter` binding the client computes itself, then bind and an IQ round trip. Shows that
//! the channel binding taken before the hand-over is the connection's, that a wrong binding is
//! refused, and that the session runs on the compact stream. Also which SASL failures the
//! brute-force throttle counts (only wrong credentials, docs/decisions/0008).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rookery_config::{Config, ListenerKind};
use rookery_net::stream::XmppStream;
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

#[path = "support/mod.rs"]
mod support;

const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

async fn start() -> (rookery_server::Running, tempfile::TempDir, SocketAddr) {
    start_with("").await
}

/// Like [`start`], with extra config appended (e.g. a `[limits]` table).
async fn start_with(extra: &str) -> (rookery_server::Running, tempfile::TempDir, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\ndata_dir = \"data\"\n[s2s]\nenabled = false\n\
         [[host]]\ndomain = \"localhost\"\n\
         [[listen]]\naddress = \"127.0.0.1\"\nport = 0\nkind = \"c2s\"\n{extra}"
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

async fn element<IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut XmppStream<IO>,
) -> Element {
    match tokio::time::timeout(Duration::from_secs(5), s.next_event()).await {
        Ok(Ok(StreamEvent::Stanza(el))) => el,
        other => panic!("expected an element, got {:?}", other.map(|r| r.is_ok())),
    }
}

/// Sends our header, reads the server's and its features.
async fn open<IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut XmppStream<IO>,
) -> Element {
    s.restart();
    s.queue_raw(HEADER.as_bytes());
    s.flush().await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), s.next_event()).await {
        Ok(Ok(StreamEvent::Open(_))) => {}
        _ => panic!("expected the server's stream header"),
    }
    element(s).await
}

/// Connects, STARTTLS, and reopens on TLS: the stream and the features offered there.
async fn tls_stream(addr: SocketAddr) -> (XmppStream<TlsStream<TcpStream>>, Element) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = XmppStream::new(tcp, rookery_xml::Limits::default(), "jabber:client");
    open(&mut s).await;
    s.queue_raw(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    s.flush().await.unwrap();
    assert_eq!(element(&mut s).await.name(), "proceed");
    let cfg = std::sync::Arc::new(rookery_tls::client_config_insecure_for_tests());
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, s.into_inner())
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_3)
    );
    let mut s = XmppStream::new(tls, rookery_xml::Limits::default(), "jabber:client");
    let features = open(&mut s).await;
    (s, features)
}

/// SCRAM-SHA-1-PLUS with `tls-exporter` and the given binding data; true on success (the
/// server's signature is checked).
async fn scram_plus(s: &mut XmppStream<TlsStream<TcpStream>>, cb_data: &[u8]) -> bool {
    let gs2 = "p=tls-exporter,,";
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
    let (final_msg, server_sig) = support::scram_sha1_final("pw", bare, &first, &cbind);
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

fn exporter(s: &XmppStream<TlsStream<TcpStream>>) -> Vec<u8> {
    // The client's own view of the connection (XmppStream keeps the transport inside).
    let tls: &TlsStream<TcpStream> = s.get_ref();
    tls.get_ref()
        .1
        .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
        .unwrap()
}

#[tokio::test]
async fn scram_plus_with_tls_exporter_then_a_session_over_the_compact_stream() {
    let (_running, _dir, addr) = start().await;
    let (mut s, features) = tls_stream(addr).await;
    let mechs: Vec<String> = features
        .children()
        .filter(|c| c.name() == "mechanisms")
        .flat_map(|m| {
            m.children()
                .map(|c| c.text().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(mechs.iter().any(|m| m == "SCRAM-SHA-1-PLUS"), "{mechs:?}");
    let cb = exporter(&s);
    assert!(
        scram_plus(&mut s, &cb).await,
        "the right binding is accepted"
    );
    open(&mut s).await;
    s.queue_raw(
        b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
          <resource>balcony</resource></bind></iq>",
    );
    s.flush().await.unwrap();
    let bound = element(&mut s).await;
    assert_eq!(bound.attr("type"), Some("result"), "{}", bound.to_xml());
    // A round trip on the bound session.
    s.queue_raw(b"<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    s.flush().await.unwrap();
    let pong = element(&mut s).await;
    assert_eq!(pong.attr("id"), Some("p1"));
    assert_eq!(pong.attr("type"), Some("result"), "{}", pong.to_xml());
}

#[tokio::test]
async fn a_binding_from_another_connection_is_refused() {
    let (_running, _dir, addr) = start().await;
    let (other, _) = tls_stream(addr).await;
    let (mut s, _) = tls_stream(addr).await;
    let foreign = exporter(&other);
    assert_ne!(foreign, exporter(&s));
    assert!(!scram_plus(&mut s, &foreign).await);
}

/// Sends `<auth/>` (or any SASL element) and returns the server's answer.
async fn sasl_answer(s: &mut XmppStream<TlsStream<TcpStream>>, xml: &str) -> Element {
    s.queue_raw(xml.as_bytes());
    s.flush().await.unwrap();
    element(s).await
}

fn auth(mech: &str, payload: &str) -> String {
    format!(
        "<auth xmlns='{SASL}' mechanism='{mech}'>{}</auth>",
        STANDARD.encode(payload)
    )
}

/// The `<failure/>` condition and text.
fn failure_of(el: &Element) -> (String, String) {
    assert_eq!(el.name(), "failure", "{}", el.to_xml());
    let cond = el
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    let text = el
        .children()
        .find(|c| c.name() == "text")
        .map(|c| c.text().to_string())
        .unwrap_or_default();
    (cond, text)
}

/// With the tightest limits (one free failure, ban at the second), a client that walks
/// through everything an old client tries (-PLUS with `tls-unique`, SCRAM with the `y` flag)
/// plus other negotiation mistakes, many times over, is neither delayed nor banned and then
/// logs in; wrong passwords are still counted and lead to the ban.
#[tokio::test]
async fn only_wrong_credentials_count_against_the_throttle() {
    let (running, _dir, addr) =
        start_with("[limits]\nauth_failures_per_ip = 1\nauth_ban_threshold = 2\n").await;
    let throttle = running.server.throttle();
    let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let (mut s, features) = tls_stream(addr).await;
    // XEP-0440: the types -PLUS may use here.
    let cb = features
        .children()
        .find(|c| c.name() == "sasl-channel-binding")
        .expect("XEP-0440 channel-binding types advertised");
    let types: Vec<&str> = cb.children().filter_map(|c| c.attr("type")).collect();
    assert_eq!(types, ["tls-exporter", "tls-server-end-point"]);
    for _ in 0..5 {
        for mech in ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"] {
            let el = sasl_answer(&mut s, &auth(mech, "p=tls-unique,,n=juliet,r=abc")).await;
            let (cond, text) = failure_of(&el);
            assert_eq!(cond, "malformed-request");
            assert!(
                text.contains("tls-exporter, tls-server-end-point"),
                "{text}"
            );
        }
        for mech in ["SCRAM-SHA-256", "SCRAM-SHA-1"] {
            let el = sasl_answer(&mut s, &auth(mech, "y,,n=juliet,r=abc")).await;
            let (cond, text) = failure_of(&el);
            assert_eq!(cond, "malformed-request");
            assert!(text.contains("downgrade"), "{text}");
        }
        let el = sasl_answer(&mut s, &auth("DIGEST-MD5", "")).await;
        assert_eq!(failure_of(&el).0, "invalid-mechanism");
        let el = sasl_answer(&mut s, &format!("<response xmlns='{SASL}'/>")).await;
        assert_eq!(failure_of(&el).0, "malformed-request");
        let el = sasl_answer(&mut s, &format!("<auth xmlns='{SASL}' mechanism='PLAIN'/>")).await;
        assert_eq!(el.name(), "challenge", "{}", el.to_xml());
        let el = sasl_answer(&mut s, &format!("<abort xmlns='{SASL}'/>")).await;
        assert_eq!(failure_of(&el).0, "aborted");
    }
    let now = std::time::Instant::now();
    assert!(!throttle.is_banned(ip, now));
    assert_eq!(
        throttle.delay(ip, Some("juliet@localhost"), now),
        Duration::ZERO
    );
    let el = sasl_answer(&mut s, &auth("PLAIN", "\0juliet\0pw")).await;
    assert_eq!(el.name(), "success", "{}", el.to_xml());

    // Wrong passwords count: the second one bans the address.
    let (mut s, _) = tls_stream(addr).await;
    for _ in 0..2 {
        let el = sasl_answer(&mut s, &auth("PLAIN", "\0juliet\0guess")).await;
        assert_eq!(
            failure_of(&el),
            ("not-authorized".to_owned(), String::new())
        );
    }
    assert!(throttle.is_banned(ip, std::time::Instant::now()));
    let el = sasl_answer(&mut s, &auth("PLAIN", "\0juliet\0pw")).await;
    assert_eq!(failure_of(&el).0, "temporary-auth-failure");
}
