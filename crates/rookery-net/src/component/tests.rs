//! The component actor's timing over a real loopback connection (the integration tests in
//! rookery-server cover the protocol; a whitespace keepalive needs a short interval only this
//! crate can set), and the domain-boundary check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{serve_with, within_domain};
use rookery_config::ComponentConfig;
use rookery_proto::ns;
use rookery_testkit::Harness;
use rookery_transport::limits::UnauthLimiter;
use rookery_transport::stream::XmppStream;
use rookery_xml::StreamEvent;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

#[test]
fn within_domain_respects_label_boundaries() {
    assert!(within_domain("echo.example", "echo.example"));
    assert!(within_domain("room.echo.example", "echo.example"));
    assert!(within_domain("a.b.echo.example", "echo.example"));
    assert!(!within_domain("xecho.example", "echo.example"));
    assert!(!within_domain(".echo.example", "echo.example"));
    assert!(!within_domain("example", "echo.example"));
    assert!(!within_domain("echo.example.org", "echo.example"));
}

/// A server without modules that knows the component `echo.localhost` (secret `s`).
async fn harness() -> Harness {
    Harness::with_config(Vec::new(), |c| {
        c.components.push(ComponentConfig {
            domain: "echo.localhost".into(),
            secret: "s".into(),
        })
    })
    .await
}

#[tokio::test]
async fn idle_stream_gets_whitespace_keepalives() {
    let h = harness().await;
    let server = h.server.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let srv = server.clone();
    let task = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.unwrap();
        let guard = UnauthLimiter::default().try_acquire(peer.ip(), 1).unwrap();
        serve_with(srv, tcp, peer, guard, Duration::from_millis(100)).await;
    });

    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut c = XmppStream::new(tcp, rookery_xml::Limits::default(), ns::COMPONENT);
    c.send_header(&[("to", "echo.localhost")]).await.unwrap();
    let Ok(StreamEvent::Open(h)) = c.next_event().await else {
        panic!("no header")
    };
    let digest = rookery_proto::component::handshake_digest(h.attr("id").unwrap(), "s");
    c.queue_raw(format!("<handshake>{digest}</handshake>").as_bytes());
    c.flush().await.unwrap();
    match c.next_event().await {
        Ok(StreamEvent::Stanza(e)) if e.name() == "handshake" => {}
        other => panic!("expected <handshake/>, got {other:?}"),
    }
    // From here on only keepalives arrive: single spaces, one per idle interval.
    let mut raw = c.into_inner();
    for _ in 0..2 {
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(5), raw.read_exact(&mut b))
            .await
            .expect("a keepalive within 5 s")
            .unwrap();
        assert_eq!(&b, b" ");
    }
    server.shutdown_token().cancel();
    task.await.unwrap();
}
