//! Regression tests for bugs the federation suite found in the s2s code, one per fix, each
//! named for the bug.
#![allow(clippy::unwrap_used)]

mod support;

use support::{Certs, dns, node, recv_non_presence, send, session};

/// Regression: incoming s2s streams kept the pre-authentication stanza limit
/// (`preauth_stanza_bytes`, 10 kB) after the peer authenticated, so any larger stanza from a
/// federated user closed the whole stream with `policy-violation` and was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_stream_accepts_large_stanzas_after_authentication() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let (romeo, _r) = session(a.server(), "romeo@a.test/r");
    let (_juliet, mut juliet_rx) = session(b.server(), "juliet@b.test/j");
    let body = "x".repeat(50_000);
    send(a.server(), &romeo, &format!("<message xmlns='jabber:client' to='juliet@b.test/j' id='big'><body>{body}</body></message>")).await;
    send(a.server(), &romeo, "<message xmlns='jabber:client' to='juliet@b.test/j' id='small'><body>after</body></message>").await;
    let got = recv_non_presence(&mut juliet_rx, 10).await;
    assert_eq!(got.id(), Some("big"));
    assert_eq!(
        got.element()
            .get_child("body", rookery_proto::ns::CLIENT)
            .unwrap()
            .text()
            .len(),
        body.len()
    );
    assert_eq!(
        recv_non_presence(&mut juliet_rx, 10).await.id(),
        Some("small")
    );
}

/// Regression: when the live outgoing stream's mailbox was full (a peer not keeping up), the
/// router dropped the pair's route and set up another stream, so the stanza that did not fit,
/// and every one after it, overtook the stanzas still waiting in the old stream's mailbox
/// (the OF-2321 interleaving, SEED-PROTOCOLS §1.10). A full mailbox must bounce the stanza
/// with `resource-constraint` and keep the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stream_mailbox_does_not_open_a_second_stream() {
    use rookery_proto::ns;
    use rookery_proto::stanza::{Jid, Stanza};
    use rookery_xml::Element;
    use support::{FakeServer, Opts, error_of, node_with, publish_at};

    let dns = dns().await;
    let a = node_with(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            connect_timeout: 1,
            // The stream's mailbox holds queue_max + 1024 stanzas.
            s2s: "queue_max = 1\n".into(),
            ..Opts::default()
        },
    )
    .await;
    let fake = FakeServer::start_stalling(
        "b.test",
        "<db:result from='b.test' to='a.test' type='valid'/>",
    )
    .await;
    publish_at(&dns, "b.test", fake.port, false);
    let (romeo, mut rx) = session(a.server(), "romeo@a.test/r");
    let msg = |id: String, body: String| {
        let el = Element::new("message", ns::CLIENT)
            .with_attr("to", "juliet@b.test")
            .with_attr("id", id)
            .child(Element::new("body", ns::CLIENT).with_text(body));
        let mut st = Stanza::new(el).unwrap();
        st.set_from(Some(Jid::from(romeo.jid().clone())));
        st
    };
    send(
        a.server(),
        &romeo,
        "<message xmlns='jabber:client' to='juliet@b.test' id='first'><body>1</body></message>",
    )
    .await;
    support::wait_until(10, "the stream to b.test", || {
        a.stream_of("a.test", "b.test").is_some()
    })
    .await;
    let (stream, _) = a.stream_of("a.test", "b.test").unwrap();
    // Far more than the socket buffers hold: the stream's writer blocks on the stalled peer...
    let big = "x".repeat(512 * 1024);
    for i in 0..48 {
        a.server()
            .handle_from_client(&romeo, msg(format!("big{i}"), big.clone()))
            .await;
    }
    // ...and its mailbox fills up.
    for i in 0..3000 {
        a.server()
            .handle_from_client(&romeo, msg(format!("s{i}"), i.to_string()))
            .await;
    }
    assert_eq!(
        a.stream_of("a.test", "b.test").map(|s| s.0),
        Some(stream),
        "the route stays on the stream (no second stream to overtake it)"
    );
    let mut bounced = 0;
    while let Ok(rookery_core::session::SessionMsg::Stanza(st)) = rx.rx.try_recv() {
        assert_eq!(
            error_of(&st),
            ("resource-constraint".into(), "wait".into()),
            "{}",
            st.element().to_xml()
        );
        bounced += 1;
    }
    assert!(
        bounced > 0,
        "the stanzas that did not fit were bounced at once"
    );
}

/// Regression: a receiving server closed the whole incoming stream when the key of a
/// piggybacked domain was invalid, even though the stream carried other, authenticated
/// domains: their stanzas in flight were lost and their route torn down. B here resolves
/// a2.test to an impostor (node C, another dialback secret), so A's key for a2.test is
/// invalid while a.test on the same stream is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_piggybacked_domain_keeps_the_stream_of_the_others() {
    use support::{Opts, expect_error, node_with};

    let dns_a = dns().await;
    let dns_b = dns().await;
    let a = node_with(
        &["a.test", "a2.test"],
        &dns_a,
        Certs::SelfSigned,
        Opts {
            s2s: "dialback_secret = \"secret-of-the-real-a\"\n".into(),
            ..Opts::default()
        },
    )
    .await;
    // B finds a.test at A, but a2.test at C.
    let b = node_with(
        &["b.test"],
        &dns_b,
        Certs::SelfSigned,
        Opts {
            publish: false,
            ..Opts::default()
        },
    )
    .await;
    b.publish(&dns_a);
    let c = node_with(
        &["a2.test"],
        &dns_b,
        Certs::SelfSigned,
        Opts {
            s2s: "dialback_secret = \"secret-of-the-impostor\"\n".into(),
            ..Opts::default()
        },
    )
    .await;
    support::publish_at(&dns_b, "a.test", a.s2s_port(), false);

    let (romeo, _r) = session(a.server(), "romeo@a.test/r");
    let (mercutio, mut mercutio_rx) = session(a.server(), "mercutio@a2.test/m");
    let (_juliet, mut juliet_rx) = session(b.server(), "juliet@b.test/j");
    send(
        a.server(),
        &romeo,
        "<message xmlns='jabber:client' to='juliet@b.test/j' id='r1'><body>1</body></message>",
    )
    .await;
    assert_eq!(recv_non_presence(&mut juliet_rx, 10).await.id(), Some("r1"));
    let (stream, _) = a.stream_of("a.test", "b.test").unwrap();

    send(
        a.server(),
        &mercutio,
        "<message xmlns='jabber:client' to='juliet@b.test/j' id='m1'><body>x</body></message>",
    )
    .await;
    expect_error(&mut mercutio_rx, 10, "internal-server-error", "cancel").await;

    // a.test's stream survived: the next message goes out on it and arrives.
    send(
        a.server(),
        &romeo,
        "<message xmlns='jabber:client' to='juliet@b.test/j' id='r2'><body>2</body></message>",
    )
    .await;
    assert_eq!(recv_non_presence(&mut juliet_rx, 10).await.id(), Some("r2"));
    assert_eq!(a.stream_of("a.test", "b.test").map(|s| s.0), Some(stream));
    drop(c);
}
