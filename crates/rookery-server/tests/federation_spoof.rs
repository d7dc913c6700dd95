//! Peers that lie (RFC 6120 §13, XEP-0220 §5): a hand-written s2s peer over loopback tries to
//! get stanzas accepted without having authenticated the sending domain, and a fake receiving
//! server tries to make our outgoing stream accept a verdict for a pair it never asked about.
//! Nothing gets through.
#![allow(clippy::unwrap_used)]

use rookery_testkit::Client;
use rookery_testkit::net::RawPeer;
use rookery_testkit::net::dns::{TestDns, dns, publish_at};
use rookery_testkit::net::federation::{
    A_SECRET, Certs, Node, Opts, node, node_a, node_with, peer_as_a,
};
use rookery_testkit::net::s2s::FakeServer;
use std::net::{Ipv4Addr, SocketAddr};

fn addr(n: &Node) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, n.s2s_port()))
}

async fn a_and_b() -> (TestDns, Node, Node) {
    let dns = dns().await;
    let a = node_a(&dns).await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    (dns, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unearned_valid_verdict_authenticates_nothing() {
    let (_dns, _a, b) = a_and_b().await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    let mut peer = RawPeer::connect(addr(&b), Some("a.test"), "b.test").await;
    // Verdicts nobody asked for, in both directions.
    peer.raw("<db:result from='a.test' to='b.test' type='valid'/>")
        .await;
    peer.raw("<db:result from='b.test' to='a.test' type='valid'/>")
        .await;
    peer.raw(
        "<message from='mallory@a.test' to='juliet@b.test/j' id='x'><body>spoof</body></message>",
    )
    .await;
    let cond = peer.expect_stream_error(10).await;
    assert!(
        cond == "not-authorized" || cond == "invalid-from",
        "stream error {cond}"
    );
    juliet.assert_silent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stanza_from_another_domain_after_dialback_is_invalid_from() {
    let (_dns, _a, b) = a_and_b().await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    let mut peer = peer_as_a(&b).await;
    // The authenticated pair works...
    peer.raw(
        "<message from='mallory@a.test' to='juliet@b.test/j' id='ok'><body>legit</body></message>",
    )
    .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("ok"));
    // ...another sender domain does not.
    peer.raw(
        "<message from='x@other.test' to='juliet@b.test/j' id='bad'><body>spoof</body></message>",
    )
    .await;
    assert_eq!(peer.expect_stream_error(10).await, "invalid-from");
    juliet.assert_silent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stanza_without_to_is_improper_addressing() {
    let (_dns, _a, b) = a_and_b().await;
    let mut peer = peer_as_a(&b).await;
    peer.raw("<message from='mallory@a.test' id='nt'><body>to whom?</body></message>")
        .await;
    assert_eq!(peer.expect_stream_error(10).await, "improper-addressing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_for_a_key_we_never_issued_is_invalid() {
    let (_dns, a, _b) = a_and_b().await;
    let mut peer = RawPeer::connect(addr(&a), Some("b.test"), "a.test").await;
    let forged = rookery_proto::dialback::key(b"not-the-secret", "b.test", "a.test", "s1");
    peer.raw(&format!(
        "<db:verify from='b.test' to='a.test' id='s1'>{forged}</db:verify>"
    ))
    .await;
    let v = peer.element(10).await;
    assert_eq!(
        (
            v.name(),
            v.attr("type"),
            v.attr("from"),
            v.attr("to"),
            v.attr("id")
        ),
        (
            "verify",
            Some("invalid"),
            Some("a.test"),
            Some("b.test"),
            Some("s1")
        ),
        "{}",
        v.to_xml()
    );
    // The right key for that id is valid: the check is the key, not the stream.
    let real = rookery_proto::dialback::key(A_SECRET.as_bytes(), "b.test", "a.test", "s1");
    peer.raw(&format!(
        "<db:verify from='b.test' to='a.test' id='s1'>{real}</db:verify>"
    ))
    .await;
    assert_eq!(peer.element(10).await.attr("type"), Some("valid"));
}

/// The fake b.test answers our `db:result` with a valid verdict for another pair: nothing is
/// authenticated, the queued message never goes out and bounces after the connect timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_for_another_pair_is_ignored_on_our_stream() {
    let dns = dns().await;
    let a = node_with(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            connect_timeout: 1,
            ..Opts::default()
        },
    )
    .await;
    let mut fake = FakeServer::start(
        "b.test",
        "<db:result xmlns:db='jabber:server:dialback' from='b.test' to='evil.test' type='valid'/>",
    )
    .await;
    publish_at(&dns, "b.test", fake.port, false);
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    romeo.send("<message xmlns='jabber:client' to='juliet@b.test' id='m1'><body>secret</body></message>",
    )
    .await;
    let e = romeo
        .expect_error(10, "remote-server-timeout", "wait")
        .await;
    assert_eq!(e.id(), Some("m1"));
    assert!(a.stream_of("a.test", "b.test").is_none());
    // The fake saw STARTTLS, our request and nothing after it.
    let mut seen = Vec::new();
    while let Some(el) = fake.received.recv().await {
        seen.push(el);
    }
    let names: Vec<&str> = seen.iter().map(|e| e.name()).collect();
    assert_eq!(names, ["starttls", "result"], "{seen:?}");
    assert_eq!(
        (seen[1].attr("from"), seen[1].attr("to")),
        (Some("a.test"), Some("b.test"))
    );
}
