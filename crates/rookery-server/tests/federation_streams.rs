//! Outgoing stream life cycle: an idle stream closes and the next stanza opens a new one;
//! a server published only as `_xmpps-server._tcp` is reached with Direct TLS (XEP-0368).
#![allow(clippy::unwrap_used)]

use rookery_testkit::Client;
use rookery_testkit::net::dns::dns;
use rookery_testkit::net::federation::{Certs, Opts, node, node_with};
use rookery_testkit::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_stream_closes_and_a_new_one_opens() {
    let dns = dns().await;
    let a = node(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        "idle_timeout_secs = 1\n",
    )
    .await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;

    romeo
        .send(
            "<message xmlns='jabber:client' to='juliet@b.test/j' id='m1'><body>1</body></message>",
        )
        .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("m1"));
    let (first, _) = a.stream_of("a.test", "b.test").unwrap();

    wait_until(5, "the idle stream to close", || {
        a.stream_of("a.test", "b.test").is_none()
    })
    .await;

    romeo
        .send(
            "<message xmlns='jabber:client' to='juliet@b.test/j' id='m2'><body>2</body></message>",
        )
        .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("m2"));
    let (second, _) = a.stream_of("a.test", "b.test").unwrap();
    assert_ne!(first, second, "a new stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_only_server_is_reached() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let b = node_with(
        &["b.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            direct_tls: true,
            ..Opts::default()
        },
    )
    .await;
    assert!(b.direct_tls());
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    romeo.send("<message xmlns='jabber:client' to='juliet@b.test/j' id='d1'><body>direct</body></message>",
    )
    .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("d1"));
    assert!(
        a.stream_of("a.test", "b.test").unwrap().1,
        "dialback over Direct TLS"
    );
    // The way back: B's stream to A (STARTTLS), whose dialback A checks against B over Direct TLS.
    juliet.send("<message xmlns='jabber:client' to='romeo@a.test/r' id='d2'><body>back</body></message>",
    )
    .await;
    assert_eq!(romeo.next_non_presence(10).await.id(), Some("d2"));
}

/// The peer shuts down: our outgoing stream notices (system-shutdown), its route goes away,
/// and a later stanza bounces (nothing listens any more) instead of vanishing into a dead
/// stream. Our own shutdown finishes within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_shutdown_ends_the_route_and_later_stanzas_bounce() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    romeo
        .send(
            "<message xmlns='jabber:client' to='juliet@b.test/j' id='m1'><body>1</body></message>",
        )
        .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("m1"));

    assert!(b.running.shutdown(std::time::Duration::from_secs(5)).await);
    wait_until(5, "the route to b.test to go", || {
        a.stream_of("a.test", "b.test").is_none()
    })
    .await;
    romeo
        .send(
            "<message xmlns='jabber:client' to='juliet@b.test/j' id='m2'><body>2</body></message>",
        )
        .await;
    // B's listener is gone: the connection is refused.
    let e = romeo
        .expect_error(10, "remote-server-not-found", "cancel")
        .await;
    assert_eq!(e.id(), Some("m2"));
    assert!(a.running.shutdown(std::time::Duration::from_secs(5)).await);
}
