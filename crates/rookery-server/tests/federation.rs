//! Two Rookery servers federating over loopback, found through SRV records in a DNS server the
//! test starts: messages and IQs both ways, with TLS + SASL EXTERNAL and with dialback only.
#![allow(clippy::unwrap_used)]

use rookery_testkit::Client;
use rookery_testkit::net::dns::dns;
use rookery_testkit::net::federation::{Ca, Certs, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialback_only_messages_and_iq_both_ways() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;

    romeo.send("<message xmlns='jabber:client' to='juliet@b.test/j' id='m1' type='chat'><body>hi</body></message>").await;
    let got = juliet.next_non_presence(10).await;
    assert_eq!(got.from().unwrap().as_str(), "romeo@a.test/r");
    assert_eq!(got.id(), Some("m1"));
    assert_eq!(
        got.element()
            .get_child("body", "jabber:client")
            .unwrap()
            .text(),
        "hi"
    );

    juliet.send("<message xmlns='jabber:client' to='romeo@a.test/r' id='m2' type='chat'><body>hello</body></message>").await;
    let back = romeo.next_non_presence(10).await;
    assert_eq!(back.from().unwrap().as_str(), "juliet@b.test/j");

    // An iq to the remote server itself comes back as a result.
    romeo.send("<iq xmlns='jabber:client' to='b.test' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    let pong = romeo.next_non_presence(10).await;
    assert_eq!((pong.type_attr(), pong.id()), ("result", Some("p1")));
    assert_eq!(pong.from().unwrap().as_str(), "b.test");

    let pair = ("a.test".to_owned(), "b.test".to_owned());
    let (_, dialback) = a
        .running
        .s2s
        .as_ref()
        .unwrap()
        .pool()
        .stream_of(&pair)
        .unwrap();
    assert!(dialback, "self-signed peers authenticate with dialback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_sasl_external() {
    let dns = dns().await;
    let ca = Ca::new();
    let a = node(&["a.test"], &dns, Certs::Ca(&ca), "").await;
    let b = node(&["b.test"], &dns, Certs::Ca(&ca), "").await;
    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    romeo.send("<message xmlns='jabber:client' to='juliet@b.test/j' id='x1'><body>tls</body></message>",
    )
    .await;
    let got = juliet.next_non_presence(10).await;
    assert_eq!(got.id(), Some("x1"));
    let pair = ("a.test".to_owned(), "b.test".to_owned());
    let (_, dialback) = a
        .running
        .s2s
        .as_ref()
        .unwrap()
        .pool()
        .stream_of(&pair)
        .unwrap();
    assert!(
        !dialback,
        "valid certificates authenticate with SASL EXTERNAL"
    );
}

/// Static routes: b.test is not in DNS at all; a `[[s2s.route]]` on A points at its listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_route_reaches_a_domain_missing_from_dns() {
    use rookery_testkit::net::federation::{Opts, node_with};
    let dns = dns().await;
    let b = node_with(
        &["b.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            publish: false,
            ..Opts::default()
        },
    )
    .await;
    let a = node_with(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            tail: format!(
                "[[s2s.route]]\ndomain = \"b.test\"\naddress = \"127.0.0.1\"\nport = {}\n",
                b.s2s_port()
            ),
            ..Opts::default()
        },
    )
    .await;
    assert_eq!(dns.query_count("_xmpp-server._tcp.b.test"), 0);
    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut j = Client::available(b.server(), "juliet@b.test/j").await;
    romeo.send("<message xmlns='jabber:client' to='juliet@b.test/j' id='sr'><body>routed</body></message>",
    )
    .await;
    assert_eq!(j.next_non_presence(10).await.id(), Some("sr"));
    // The route replaced DNS for b.test entirely.
    assert_eq!(dns.query_count("_xmpp-server._tcp.b.test"), 0);
}
