//! Regression tests for bugs the federation suite found in the s2s code, one per fix, each
//! named for the bug.
#![allow(clippy::unwrap_used)]

use rookery_testkit::net::dns::{dns, publish_at};
use rookery_testkit::net::federation::{Certs, node};
use rookery_testkit::{Client, wait_until};

/// Regression: incoming s2s streams kept the pre-authentication stanza limit
/// (`preauth_stanza_bytes`, 10 kB) after the peer authenticated, so any larger stanza from a
/// federated user closed the whole stream with `policy-violation` and was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_stream_accepts_large_stanzas_after_authentication() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    let body = "x".repeat(50_000);
    romeo.send(&format!("<message xmlns='jabber:client' to='juliet@b.test/j' id='big'><body>{body}</body></message>")).await;
    romeo.send("<message xmlns='jabber:client' to='juliet@b.test/j' id='small'><body>after</body></message>").await;
    let got = juliet.next_non_presence(10).await;
    assert_eq!(got.id(), Some("big"));
    assert_eq!(
        got.element()
            .get_child("body", rookery_proto::ns::CLIENT)
            .unwrap()
            .text()
            .len(),
        body.len()
    );
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("small"));
}

/// Regression: when the live outgoing stream's mailbox was full (a peer not keeping up), the
/// router dropped the pair's route and set up another stream, so the stanza that did not fit,
/// and every one after it, overtook the stanzas still waiting in the old stream's mailbox
/// (Openfire's OF-2321 interleaving; RFC 6120 §10.1 wants them in order). A full mailbox
/// must bounce the stanza with `resource-constraint` and keep the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stream_mailbox_does_not_open_a_second_stream() {
    use rookery_proto::ns;
    use rookery_proto::stanza::{Jid, Stanza};
    use rookery_testkit::error_of;
    use rookery_testkit::net::dns::publish_at;
    use rookery_testkit::net::federation::{Opts, node_with};
    use rookery_testkit::net::s2s::FakeServer;
    use rookery_xml::Element;

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
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let msg = |id: String, body: String| {
        let el = Element::new("message", ns::CLIENT)
            .with_attr("to", "juliet@b.test")
            .with_attr("id", id)
            .child(Element::new("body", ns::CLIENT).with_text(body));
        let mut st = Stanza::new(el).unwrap();
        st.set_from(Some(Jid::from(romeo.jid().clone())));
        st
    };
    romeo
        .send(
            "<message xmlns='jabber:client' to='juliet@b.test' id='first'><body>1</body></message>",
        )
        .await;
    wait_until(10, "the stream to b.test", || {
        a.stream_of("a.test", "b.test").is_some()
    })
    .await;
    let (stream, _) = a.stream_of("a.test", "b.test").unwrap();
    // Far more than the socket buffers hold: the stream's writer blocks on the stalled peer...
    let big = "x".repeat(512 * 1024);
    for i in 0..48 {
        a.server()
            .handle_from_client(&romeo.handle, msg(format!("big{i}"), big.clone()))
            .await;
    }
    // ...and its mailbox fills up.
    for i in 0..3000 {
        a.server()
            .handle_from_client(&romeo.handle, msg(format!("s{i}"), i.to_string()))
            .await;
    }
    assert_eq!(
        a.stream_of("a.test", "b.test").map(|s| s.0),
        Some(stream),
        "the route stays on the stream (no second stream to overtake it)"
    );
    let mut bounced = 0;
    while let Some(st) = romeo.try_recv() {
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
    use rookery_testkit::net::federation::{Opts, node_with};

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
    publish_at(&dns_b, "a.test", a.s2s_port(), false);

    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut mercutio = Client::available(a.server(), "mercutio@a2.test/m").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    romeo
        .send(
            "<message xmlns='jabber:client' to='juliet@b.test/j' id='r1'><body>1</body></message>",
        )
        .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("r1"));
    let (stream, _) = a.stream_of("a.test", "b.test").unwrap();

    mercutio
        .send(
            "<message xmlns='jabber:client' to='juliet@b.test/j' id='m1'><body>x</body></message>",
        )
        .await;
    mercutio
        .expect_error(10, "internal-server-error", "cancel")
        .await;

    // a.test's stream survived: the next message goes out on it and arrives.
    romeo
        .send(
            "<message xmlns='jabber:client' to='juliet@b.test/j' id='r2'><body>2</body></message>",
        )
        .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("r2"));
    assert_eq!(a.stream_of("a.test", "b.test").map(|s| s.0), Some(stream));
    drop(c);
}

/// Regression: when an outgoing stream ended, its actor first forgot the stream's routes,
/// then closed the socket and only then re-routed the stanzas still in its mailbox, one by
/// one. A stanza routed meanwhile started a new queue and went out before those older
/// ones (the OF-2321 interleaving again, against RFC 6120 §10.1). Here the peer stops
/// reading until the stream's mailbox holds a backlog, then drops the connection while the
/// sender keeps sending; the second stream must carry the sender's stanzas in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stanzas_left_on_a_closed_stream_are_not_overtaken() {
    use rookery_proto::ns;
    use rookery_proto::stanza::{Jid, Stanza};
    use rookery_testkit::net::dns::publish_at;
    use rookery_testkit::net::federation::{Opts, node_with};
    use rookery_testkit::net::s2s::FakeServer;
    use rookery_xml::Element;

    let dns = dns().await;
    let a = node_with(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            s2s: "queue_max = 100000\n".into(),
            ..Opts::default()
        },
    )
    .await;
    let mut fake = FakeServer::start_stalling(
        "b.test",
        "<db:result from='b.test' to='a.test' type='valid'/>",
    )
    .await;
    publish_at(&dns, "b.test", fake.port, false);
    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let msg = move |jid: &rookery_proto::stanza::FullJid, id: String, body: String| {
        let el = Element::new("message", ns::CLIENT)
            .with_attr("to", "juliet@b.test")
            .with_attr("id", id)
            .child(Element::new("body", ns::CLIENT).with_text(body));
        let mut st = Stanza::new(el).unwrap();
        st.set_from(Some(Jid::from(jid.clone())));
        st
    };
    romeo.send("<message xmlns='jabber:client' to='juliet@b.test' id='first'><body>first</body></message>",
    )
    .await;
    wait_until(10, "the stream to b.test", || {
        a.stream_of("a.test", "b.test").is_some()
    })
    .await;
    // Block the stream's writer on the stalled peer, then leave a backlog in its mailbox.
    let big = "x".repeat(512 * 1024);
    for i in 0..48 {
        a.server()
            .handle_from_client(
                &romeo.handle,
                msg(romeo.jid(), format!("big{i}"), big.clone()),
            )
            .await;
    }
    const BACKLOG: usize = 2000;
    for i in 0..BACKLOG {
        a.server()
            .handle_from_client(
                &romeo.handle,
                msg(romeo.jid(), format!("s{i}"), i.to_string()),
            )
            .await;
    }
    let (first, _) = a.stream_of("a.test", "b.test").unwrap();
    // The peer drops the connection; the sender keeps going until the first stream is gone,
    // and then some.
    fake.kill_first.notify_one();
    let mut i = BACKLOG;
    let mut after = None;
    while after.is_none_or(|n| i < n) {
        a.server()
            .handle_from_client(
                &romeo.handle,
                msg(romeo.jid(), format!("s{i}"), i.to_string()),
            )
            .await;
        i += 1;
        if after.is_none() && a.stream_of("a.test", "b.test").map(|s| s.0) != Some(first) {
            after = Some(i + 3000);
        }
        if i.is_multiple_of(16) {
            tokio::task::yield_now().await;
        }
        assert!(i < 1_000_000, "the first stream never ended");
    }
    let total = i;
    // The second stream: sequence numbers only ever go up (the first stream lost what it had
    // written, so there may be a gap at the start, never a step back).
    let mut last: Option<usize> = None;
    loop {
        let el = tokio::time::timeout(std::time::Duration::from_secs(10), fake.later.recv())
            .await
            .expect("the second stream carries the rest")
            .unwrap();
        if el.name() != "message" {
            continue;
        }
        let n: usize = el
            .children()
            .find(|c| c.name() == "body")
            .unwrap()
            .text()
            .parse()
            .unwrap();
        if let Some(prev) = last {
            assert!(n > prev, "s{n} arrived after s{prev}");
        }
        last = Some(n);
        if n == total - 1 {
            break;
        }
    }
}

/// Regression: an incoming s2s connection that never authenticated anything stayed open
/// until the idle timeout (30 minutes by default), and s2s listeners have no per-IP cap on
/// unauthenticated connections: anyone could hold any number of them. The stream must
/// authenticate within `auth_timeout_secs` of connect, else it is closed with
/// `connection-timeout`, as client streams are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_incoming_stream_times_out() {
    use rookery_testkit::net::RawPeer;
    use rookery_testkit::net::federation::{Opts, node_with};

    let dns = dns().await;
    let b = node_with(
        &["b.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            limits: "auth_timeout_secs = 1\n".into(),
            ..Opts::default()
        },
    )
    .await;
    let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, b.s2s_port()));
    let started = std::time::Instant::now();
    let mut peer = RawPeer::connect(addr, Some("a.test"), "b.test").await;
    assert_eq!(peer.expect_stream_error(5).await, "connection-timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Regression: when the peer said `invalid` to a piggybacked domain's key, the initiating side
/// went on to open a whole new stream for that domain and run dialback again, although the
/// verdict was already final (the peer judged that very key; a new stream would hear it again).
/// The fake peer here accepts a.test and refuses a2.test: mercutio's message bounces at once
/// and no second connection is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_piggyback_verdict_does_not_open_another_stream() {
    use rookery_testkit::net::dns::publish_at;
    use rookery_testkit::net::s2s::{FakeOpts, FakeServer};
    use std::sync::Arc;

    let dns = dns().await;
    let a = node(&["a.test", "a2.test"], &dns, Certs::SelfSigned, "").await;
    let mut fake = FakeServer::start_with(
        "b.test",
        FakeOpts {
            reply: Arc::new(|req: &rookery_xml::Element| {
                let from = req.attr("from").unwrap_or_default().to_owned();
                let ty = if from == "a.test" { "valid" } else { "invalid" };
                format!("<db:result from='b.test' to='{from}' type='{ty}'/>")
            }),
            ..FakeOpts::replying("")
        },
    )
    .await;
    publish_at(&dns, "b.test", fake.port, false);
    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut mercutio = Client::available(a.server(), "mercutio@a2.test/m").await;
    romeo
        .send("<message xmlns='jabber:client' to='juliet@b.test' id='r1'><body>1</body></message>")
        .await;
    loop {
        let el = fake.received.recv().await.unwrap();
        if el.name() == "message" {
            break;
        }
    }
    mercutio
        .send("<message xmlns='jabber:client' to='juliet@b.test' id='m1'><body>x</body></message>")
        .await;
    mercutio
        .expect_error(10, "internal-server-error", "cancel")
        .await;
    assert!(
        fake.later.try_recv().is_err(),
        "no second connection for a domain the peer refused"
    );
    assert!(a.stream_of("a.test", "b.test").is_some());
    assert!(a.stream_of("a2.test", "b.test").is_none());
}

/// The `<error/>` child of a bounced stanza, serialized, and its `<text/>`.
fn bounce_error(st: &rookery_proto::stanza::Stanza) -> (String, String) {
    let err = st
        .element()
        .get_child("error", rookery_proto::ns::CLIENT)
        .unwrap_or_else(|| panic!("no <error/>: {}", st.element().to_xml()));
    let text = err
        .get_child("text", rookery_proto::ns::STANZAS)
        .map(|t| t.text())
        .unwrap_or_default();
    (err.to_xml(), text)
}

/// Asserts that a bounce names nothing of how the server tried to reach the domain.
fn assert_reveals_nothing(xml: &str, port: u16) {
    for internal in [
        "127.0.0.1",
        &port.to_string(),
        "refused",
        "os error",
        "connect:",
        "timed out:",
    ] {
        assert!(
            !xml.to_lowercase().contains(internal),
            "{internal:?} in {xml}"
        );
    }
}

/// Regression: a stanza to a domain whose server could not be reached bounced with the
/// internal connect error as its text ("127.0.0.1:40123: connect: Connection refused (os error
/// 111)"), showing the client addresses, ports and OS errors; and a refused connection was
/// `remote-server-timeout`. Now: refused (static route or DNS) → `remote-server-not-found`,
/// timeout → `remote-server-timeout`, each with a text naming only the domain; the details
/// go to the server's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_domain_bounce_reveals_no_internals() {
    use rookery_testkit::net::dns::publish_at;
    use rookery_testkit::net::federation::{Opts, node_with};
    use rookery_testkit::net::s2s::Silent;

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let silent = Silent::start().await;
    let dns = dns().await;
    publish_at(&dns, "closed-dns.test", closed, false);
    publish_at(&dns, "silent.test", silent.port, false);
    let a = node_with(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            connect_timeout: 1,
            tail: format!(
                "[[s2s.route]]\ndomain = \"closed-route.test\"\naddress = \"127.0.0.1\"\nport = {closed}\n"
            ),
            ..Opts::default()
        },
    )
    .await;
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    for (domain, port, cond, ty, text) in [
        (
            "closed-route.test",
            closed,
            "remote-server-not-found",
            "cancel",
            "could not connect to closed-route.test",
        ),
        (
            "closed-dns.test",
            closed,
            "remote-server-not-found",
            "cancel",
            "could not connect to closed-dns.test",
        ),
        (
            "silent.test",
            silent.port,
            "remote-server-timeout",
            "wait",
            "timed out connecting to silent.test",
        ),
    ] {
        romeo.send(&format!("<message xmlns='jabber:client' to='juliet@{domain}' id='m'><body>hi</body></message>"),
        )
        .await;
        let e = romeo.expect_error(10, cond, ty).await;
        assert_eq!(e.from().unwrap().as_str(), format!("juliet@{domain}"));
        let (xml, got) = bounce_error(&e);
        assert_eq!(got, text, "{xml}");
        assert_reveals_nothing(&xml, port);
    }
}
