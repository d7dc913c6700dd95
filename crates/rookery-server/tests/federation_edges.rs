//! Federation edge cases against fake peers and raw streams: what the receiving side does with
//! dialback it cannot accept (the stream stays up for other pairs), missing addresses, idle
//! incoming streams; what the initiating side does with a header without id, a peer without TLS, a
//! dialback error verdict, and policy refusals.
#![allow(clippy::unwrap_used)]

use rookery_proto::ns;
use rookery_testkit::net::RawPeer;
use rookery_testkit::net::dns::{TestDns, dns, publish_at};
use rookery_testkit::net::federation::{Certs, Node, Opts, node, node_a, node_with};
use rookery_testkit::net::s2s::{FakeOpts, FakeServer};
use rookery_testkit::{Client, error_of, stanza};
use std::net::{Ipv4Addr, SocketAddr};

const A_SECRET: &str = "the-dialback-secret-of-a-test";

fn addr(n: &Node) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, n.s2s_port()))
}

fn verdict(el: &rookery_xml::Element) -> (&str, Option<&str>, Option<&str>, Option<&str>) {
    (el.name(), el.attr("type"), el.attr("from"), el.attr("to"))
}

fn dialback_error_condition(el: &rookery_xml::Element) -> String {
    let err = el
        .children()
        .find(|c| c.name() == "error")
        .unwrap_or_else(|| panic!("no error: {}", el.to_xml()));
    err.children()
        .find(|c| c.ns() == ns::STANZAS)
        .map(|c| c.name().to_owned())
        .unwrap_or_default()
}

async fn a_and_b(b_extra: &str) -> (TestDns, Node, Node) {
    let dns = dns().await;
    let a = node_a(&dns).await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, b_extra).await;
    (dns, a, b)
}

/// A `db:result` for a domain B does not host, and one for a sender whose server cannot be
/// found, each get a dialback error; the stream stays open and a good request then works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_dialback_requests_leave_the_stream_open() {
    let (_dns, _a, b) = a_and_b("").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    let mut peer = RawPeer::connect(addr(&b), Some("a.test"), "b.test").await;

    peer.raw("<db:result from='a.test' to='elsewhere.test'>00</db:result>")
        .await;
    let v = peer.element(10).await;
    assert_eq!(
        verdict(&v),
        (
            "result",
            Some("error"),
            Some("elsewhere.test"),
            Some("a.test")
        ),
        "{}",
        v.to_xml()
    );
    assert_eq!(dialback_error_condition(&v), "item-not-found");

    peer.raw("<db:result from='ghost.test' to='b.test'>00</db:result>")
        .await;
    let v = peer.element(10).await;
    assert_eq!(
        verdict(&v),
        ("result", Some("error"), Some("b.test"), Some("ghost.test")),
        "{}",
        v.to_xml()
    );
    assert_eq!(dialback_error_condition(&v), "remote-server-not-found");

    let key =
        rookery_proto::dialback::key(A_SECRET.as_bytes(), "b.test", "a.test", &peer.stream_id);
    peer.raw(&format!(
        "<db:result from='a.test' to='b.test'>{key}</db:result>"
    ))
    .await;
    let v = peer.element(10).await;
    assert_eq!(
        verdict(&v),
        ("result", Some("valid"), Some("b.test"), Some("a.test"))
    );
    // Stanzas right after the verdict are accepted (the pair was added before it was sent).
    peer.raw(
        "<message from='mallory@a.test' to='juliet@b.test/j' id='ok'><body>x</body></message>",
    )
    .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("ok"));
    // But not for the domains that were refused.
    peer.raw("<message from='x@ghost.test' to='juliet@b.test/j' id='no'><body>x</body></message>")
        .await;
    assert_eq!(peer.expect_stream_error(10).await, "invalid-from");
    juliet.assert_silent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stanza_without_from_is_improper_addressing() {
    let (_dns, _a, b) = a_and_b("").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    let mut peer = RawPeer::connect(addr(&b), Some("a.test"), "b.test").await;
    let key =
        rookery_proto::dialback::key(A_SECRET.as_bytes(), "b.test", "a.test", &peer.stream_id);
    peer.raw(&format!(
        "<db:result from='a.test' to='b.test'>{key}</db:result>"
    ))
    .await;
    assert_eq!(peer.element(10).await.attr("type"), Some("valid"));
    peer.raw("<message to='juliet@b.test/j' id='nf'><body>who?</body></message>")
        .await;
    assert_eq!(peer.expect_stream_error(10).await, "improper-addressing");
    juliet.assert_silent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_incoming_stream_gets_connection_timeout() {
    let (_dns, _a, b) = a_and_b("idle_timeout_secs = 1\n").await;
    let mut peer = RawPeer::connect(addr(&b), Some("a.test"), "b.test").await;
    assert_eq!(peer.expect_stream_error(5).await, "connection-timeout");
}

/// A queued stanza bounces with remote-server-timeout when the peer's stream header has no id
/// (we close with invalid-xml, OF-2692).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_header_without_id_is_refused() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let mut fake = FakeServer::start_with(
        "b.test",
        FakeOpts {
            with_id: false,
            ..FakeOpts::replying("")
        },
    )
    .await;
    publish_at(&dns, "b.test", fake.port, false);
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    romeo
        .send("<message xmlns='jabber:client' to='juliet@b.test' id='m1'><body>x</body></message>")
        .await;
    let e = romeo
        .expect_error(10, "remote-server-timeout", "wait")
        .await;
    assert_eq!(e.id(), Some("m1"));
    let err = fake.received.recv().await.unwrap();
    assert_eq!(
        (err.name(), err.ns()),
        ("error", ns::STREAM),
        "{}",
        err.to_xml()
    );
    assert!(err.children().any(|c| c.name() == "invalid-xml"));
}

/// Our TLS policy (the default require_tls) and a peer that offers no STARTTLS: we close with
/// policy-violation and bounce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_without_tls_is_refused_when_tls_is_required() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let mut fake = FakeServer::start_with(
        "b.test",
        FakeOpts {
            starttls: false,
            ..FakeOpts::replying("<db:result from='b.test' to='a.test' type='valid'/>")
        },
    )
    .await;
    publish_at(&dns, "b.test", fake.port, false);
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    romeo
        .send("<message xmlns='jabber:client' to='juliet@b.test' id='m1'><body>x</body></message>")
        .await;
    romeo
        .expect_error(10, "remote-server-timeout", "wait")
        .await;
    let err = fake.received.recv().await.unwrap();
    assert_eq!(
        (err.name(), err.ns()),
        ("error", ns::STREAM),
        "{}",
        err.to_xml()
    );
    assert!(err.children().any(|c| c.name() == "policy-violation"));
    assert!(
        fake.received.recv().await.is_none(),
        "nothing else was sent"
    );
}

/// XEP-0220: a dialback error verdict bounces the queue with remote-server-timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialback_error_verdict_bounces_remote_server_timeout() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let fake = FakeServer::start(
        "b.test",
        "<db:result from='b.test' to='a.test' type='error'><error type='cancel'>\
         <remote-connection-failed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>",
    )
    .await;
    publish_at(&dns, "b.test", fake.port, false);
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    romeo
        .send("<message xmlns='jabber:client' to='juliet@b.test' id='m1'><body>x</body></message>")
        .await;
    let e = romeo
        .expect_error(10, "remote-server-timeout", "wait")
        .await;
    assert_eq!(e.id(), Some("m1"));
    romeo.assert_silent();
}

/// A fake peer that says `invalid` to our key: internal-server-error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialback_invalid_verdict_bounces_internal_server_error() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let fake = FakeServer::start(
        "b.test",
        "<db:result from='b.test' to='a.test' type='invalid'/>",
    )
    .await;
    publish_at(&dns, "b.test", fake.port, false);
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    romeo
        .send("<message xmlns='jabber:client' to='juliet@b.test' id='m1'><body>x</body></message>")
        .await;
    let e = romeo
        .expect_error(10, "internal-server-error", "cancel")
        .await;
    assert_eq!(e.id(), Some("m1"));
}

/// Policy: a denied domain bounces at once (remote-server-not-found) without any connection;
/// a domain for which dialback is not allowed, with a self-signed peer, cannot authenticate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refusals_bounce() {
    let dns = dns().await;
    let a = node_with(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            s2s: "deny = [\"denied.test\"]\n".into(),
            tail: "[[s2s.domain]]\ndomain = \"b.test\"\nallow_dialback = false\n".into(),
            ..Opts::default()
        },
    )
    .await;
    let _b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    romeo
        .send("<message xmlns='jabber:client' to='x@denied.test' id='d1'><body>x</body></message>")
        .await;
    let e = romeo.recv();
    assert_eq!(
        error_of(&e),
        ("remote-server-not-found".into(), "cancel".into())
    );
    assert_eq!(dns.query_count("_xmpp-server._tcp.denied.test"), 0);
    romeo
        .send("<message xmlns='jabber:client' to='juliet@b.test' id='b1'><body>x</body></message>")
        .await;
    let e = romeo
        .expect_error(10, "remote-server-timeout", "wait")
        .await;
    assert_eq!(e.id(), Some("b1"));
}

/// Stanzas from a host we do not serve are not relayed to other servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_relaying_for_foreign_senders() {
    let (dns, a, b) = a_and_b("").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    let st = stanza(
        "<message xmlns='jabber:client' from='eve@c.test' to='juliet@b.test/j' id='r'><body>x</body></message>",
    );
    a.server().route(st).await;
    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    romeo
        .send(
            "<message xmlns='jabber:client' to='juliet@b.test/j' id='ok'><body>x</body></message>",
        )
        .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("ok"));
    juliet.assert_silent();
    assert!(a.stream_of("c.test", "b.test").is_none());
    drop(dns);
}
