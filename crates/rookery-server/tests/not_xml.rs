//! Bytes that cannot start an XML stream, sent over real TCP to every listener that reads a
//! stream header (c2s, s2s, component, cm, router): the stream is closed at once with
//! `not-well-formed` (the framer's first-byte check, crates/rookery-xml/src/sniff.rs), not after
//! the header timeout. The timeouts here are an hour, so a test that passes within its few
//! seconds can only have seen the framer's verdict.
#![allow(clippy::unwrap_used)]

use rookery_config::ListenerKind;
use rookery_testkit::net::{TestServer, listen};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KINDS: [ListenerKind; 5] = [
    ListenerKind::C2s,
    ListenerKind::S2s,
    ListenerKind::Component,
    ListenerKind::Cm,
    ListenerKind::Router,
];

async fn server() -> TestServer {
    let mut toml = String::from(
        "[server]\ndata_dir = \"data\"\n[[host]]\ndomain = \"localhost\"\n\
         [limits]\nheader_timeout_secs = 3600\nauth_timeout_secs = 3600\n\
         [cm]\nsecret = \"cm-secret\"\n\
         [[router.user]]\nname = \"jabberd\"\nsecret = \"router-secret\"\n",
    );
    for kind in KINDS {
        toml.push_str(&listen(kind.as_str()));
    }
    TestServer::start(&toml).await
}

/// Sends `bytes` to the `kind` listener and returns everything the server wrote until it
/// closed the connection (the test fails if that takes longer than 5 s).
async fn answer(running: &rookery_server::Running, kind: ListenerKind, bytes: &[u8]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(running.addr(kind).unwrap())
        .await
        .unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got))
        .await
        .unwrap_or_else(|_| panic!("{}: not closed within 5 s", kind.as_str()))
        .unwrap();
    String::from_utf8(got).unwrap()
}

fn assert_not_well_formed(kind: ListenerKind, got: &str) {
    assert!(
        got.contains(
            "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        ),
        "{}: {got}",
        kind.as_str()
    );
    assert!(
        got.ends_with("</stream:stream>"),
        "{}: {got}",
        kind.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_is_not_well_formed_at_once_on_every_listener() {
    let s = server().await;
    for kind in KINDS {
        let got = answer(
            &s.running,
            kind,
            b"GET / HTTP/1.1\r\nHost: localhost:5222\r\nUser-Agent: curl/8.5.0\r\n\r\n",
        )
        .await;
        assert_not_well_formed(kind, &got);
        assert!(got.contains("not HTTP"), "{}: {got}", kind.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_garbage_byte_is_not_well_formed_at_once_on_every_listener() {
    let s = server().await;
    for kind in KINDS {
        // One byte, then silence: nothing more is needed to know it is not XML.
        let got = answer(&s.running, kind, b"?").await;
        assert_not_well_formed(kind, &got);
    }
}
