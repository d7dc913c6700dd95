//! Limits on server-to-server streams: the larger s2s stanza cap after authentication, the
//! unfinished-stanza timeout, and the cap on dialback checks one incoming stream may start.
#![allow(clippy::unwrap_used)]

use rookery_testkit::Client;
use rookery_testkit::net::RawPeer;
use rookery_testkit::net::dns::{dns, publish_at};
use rookery_testkit::net::federation::{Certs, Opts, node, node_a, node_with, peer_as_a};
use rookery_testkit::net::s2s::Silent;
use std::net::{Ipv4Addr, SocketAddr};

/// Regression: authenticated s2s streams were held to the c2s limit (256 KiB); a 300 KB
/// stanza must pass under the s2s limit (512 KiB by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stanza_between_c2s_and_s2s_limits_is_federated() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut j = Client::available(b.server(), "juliet@b.test/j").await;
    // Built directly: the test's own XML parser has the default 256 KiB cap.
    let el = rookery_xml::Element::new("message", "jabber:client")
        .with_attr("to", "juliet@b.test/j")
        .with_attr("id", "big")
        .child(rookery_xml::Element::new("body", "jabber:client").with_text("y".repeat(300_000)));
    let mut st = rookery_proto::stanza::Stanza::new(el).unwrap();
    st.set_from(Some(romeo.jid().clone().into()));
    a.server().handle_from_client(&romeo.handle, st).await;
    let got = j.next_non_presence(10).await;
    assert_eq!(got.id(), Some("big"));
    assert_eq!(
        got.element()
            .get_child("body", "jabber:client")
            .unwrap()
            .text()
            .len(),
        300_000
    );
}

/// Regression: an authenticated peer could trickle one stanza forever (only the 30 min idle
/// timer applied); an unfinished stanza now times out like on c2s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_stanza_times_out() {
    let dns = dns().await;
    let _a = node_a(&dns).await;
    let b = node_with(
        &["b.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            limits: "stanza_idle_timeout_secs = 1\n".into(),
            ..Opts::default()
        },
    )
    .await;
    let mut peer = peer_as_a(&b).await;
    peer.raw("<message from='m@a.test' to='juliet@b.test'><body>never fin")
        .await;
    assert_eq!(peer.expect_stream_error(10).await, "connection-timeout");
}

/// Regression: one incoming stream could make us open any number of verify connections.
/// With a.test's authoritative server silent, the 9th pending request is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_dialback_checks_are_capped() {
    let dns = dns().await;
    let silent = Silent::start().await;
    publish_at(&dns, "a.test", silent.port, false);
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let mut peer = RawPeer::connect(
        SocketAddr::from((Ipv4Addr::LOCALHOST, b.s2s_port())),
        Some("a.test"),
        "b.test",
    )
    .await;
    for i in 0..9 {
        peer.raw(&format!(
            "<db:result from='a.test' to='b.test'>{i:02}</db:result>"
        ))
        .await;
    }
    let v = peer.element(10).await;
    assert_eq!(
        (v.attr("type"), v.attr("from"), v.attr("to")),
        (Some("error"), Some("b.test"), Some("a.test")),
        "{}",
        v.to_xml()
    );
    assert!(v.to_xml().contains("resource-constraint"), "{}", v.to_xml());
}

/// Regression (a burst closed the recipient as a slow reader): a peer server flooding one
/// local user with 10,000 messages. The user's mailbox is small and fills at once; the peer's
/// stream is paused (backpressure and the s2s rate limit, at its defaults) instead of the user
/// being dropped, and every message arrives live and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_one_user_is_slowed_and_the_user_gets_everything() {
    const N: usize = 10_000;
    let dns = dns().await;
    let _a = node_a(&dns).await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let mut juliet = Client::available_with_mailbox(b.server(), "juliet@b.test/j", 64).await;
    let mut peer = peer_as_a(&b).await;
    let flood = tokio::spawn(async move {
        for start in (0..N).step_by(500) {
            let chunk: String = (start..(start + 500).min(N))
                .map(|i| {
                    format!(
                        "<message from='romeo@a.test/r' to='juliet@b.test/j' type='chat' id='f{i}'><body>flood {i}</body></message>"
                    )
                })
                .collect();
            peer.raw(&chunk).await;
        }
        peer
    });
    for i in 0..N {
        let st = juliet.next_non_presence(60).await;
        assert_eq!(st.id(), Some(format!("f{i}").as_str()));
    }
    let mut peer = flood.await.unwrap();
    assert!(
        !juliet.rx.close_now.is_raised(),
        "the recipient was not closed"
    );
    // The peer's stream is still open and served.
    peer.raw("<message from='romeo@a.test/r' to='juliet@b.test/j' type='chat' id='after'/>")
        .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("after"));
    assert!(
        peer.next_within(std::time::Duration::from_millis(1))
            .await
            .is_none(),
        "no stream error for the peer"
    );
}
