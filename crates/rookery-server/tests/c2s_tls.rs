//! A client over a real c2s listener, STARTTLS with rustls' client (TLS 1.3, so the server
//! hands the connection to its compact record layer, decision 0007): SCRAM-SHA-1-PLUS with the
//! `tls-exporter` binding the client computes itself, then bind and an IQ round trip. Shows that
//! the channel binding taken before the hand-over is the connection's, that a wrong binding is
//! refused, and that the session runs on the compact stream. Also which SASL failures the
//! brute-force throttle counts (only wrong credentials, docs/decisions/0008).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rookery_config::ListenerKind;
use rookery_proto::ns::SASL;
use rookery_testkit::net::c2s::{self, Tls, bind_and_ping, element, exporter};
use rookery_testkit::net::{LocalOpts, TestServer};
use rookery_xml::Element;
use std::net::SocketAddr;
use std::time::Duration;

async fn start() -> (TestServer, SocketAddr) {
    start_with("").await
}

/// A server for `localhost` with a c2s listener (defaults: TLS required) and the account
/// juliet; `extra` is more config (e.g. a `[limits]` table).
async fn start_with(extra: &str) -> (TestServer, SocketAddr) {
    let s = TestServer::local_with(LocalOpts {
        c2s: String::new(),
        listeners: vec!["c2s"],
        extra: extra.to_owned(),
        ..LocalOpts::default()
    })
    .await;
    s.account("juliet").await;
    let addr = s.addr(ListenerKind::C2s);
    (s, addr)
}

/// STARTTLS with a client that accepts the self-signed certificate; TLS 1.3, so the server
/// hands the connection to its compact record layer.
async fn tls_stream(addr: SocketAddr) -> (Tls, Element) {
    let cfg = std::sync::Arc::new(rookery_tls::client_config_insecure_for_tests());
    let (s, features) = c2s::tls_stream(addr, cfg).await;
    assert_eq!(
        c2s::conn(&s).protocol_version(),
        Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_3)
    );
    (s, features)
}

/// SCRAM-SHA-1-PLUS with `tls-exporter` and the given binding data.
async fn scram_plus(s: &mut Tls, cb_data: &[u8]) -> bool {
    c2s::scram_plus(s, "tls-exporter", cb_data).await
}

#[tokio::test]
async fn scram_plus_with_tls_exporter_then_a_session_over_the_compact_stream() {
    let (_s, addr) = start().await;
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
    bind_and_ping(&mut s, "balcony").await;
}

#[tokio::test]
async fn a_binding_from_another_connection_is_refused() {
    let (_s, addr) = start().await;
    let (other, _) = tls_stream(addr).await;
    let (mut s, _) = tls_stream(addr).await;
    let foreign = exporter(&other);
    assert_ne!(foreign, exporter(&s));
    assert!(!scram_plus(&mut s, &foreign).await);
}

/// Sends `<auth/>` (or any SASL element) and returns the server's answer.
async fn sasl_answer(s: &mut Tls, xml: &str) -> Element {
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
    let (s, addr) =
        start_with("[limits]\nauth_failures_per_ip = 1\nauth_ban_threshold = 2\n").await;
    let throttle = s.server().throttle();
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
