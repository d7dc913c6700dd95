//! The per-pair outgoing queue: stanzas sent while the stream is set up wait in order and none
//! overtakes another when the stream goes live (RFC 6120 §10.1); past `queue_max` they bounce at
//! once with `resource-constraint`, and the queued ones bounce when set-up fails.
#![allow(clippy::unwrap_used)]

use rookery_proto::ns;
use rookery_testkit::Client;
use rookery_testkit::error_of;
use rookery_testkit::net::dns::{dns, publish_at};
use rookery_testkit::net::federation::{Certs, Opts, node, node_with};
use rookery_testkit::net::s2s::Silent;
use std::collections::HashMap;
use std::sync::Arc;

const SENDERS: usize = 10;
const PER_SENDER: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_during_setup_arrive_once_and_in_order() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    assert!(a.stream_of("a.test", "b.test").is_none(), "no stream yet");
    let barrier = Arc::new(tokio::sync::Barrier::new(SENDERS));
    let mut tasks = Vec::new();
    for u in 0..SENDERS {
        let server = a.server().clone();
        let h = Client::available(&server, &format!("user{u}@a.test/r")).await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for i in 0..PER_SENDER {
                h.send(&format!(
                        "<message xmlns='jabber:client' to='juliet@b.test/j' id='{u}-{i}'><body>{i}</body></message>"
                    ),
                )
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut next: HashMap<String, usize> = HashMap::new();
    for _ in 0..SENDERS * PER_SENDER {
        let st = juliet.next_non_presence(20).await;
        let from = st.from().unwrap().as_str().to_owned();
        let seq: usize = st
            .element()
            .get_child("body", ns::CLIENT)
            .unwrap()
            .text()
            .parse()
            .unwrap();
        let expected = next.entry(from.clone()).or_insert(0);
        assert_eq!(seq, *expected, "{from}: got {seq}, expected {expected}");
        *expected += 1;
    }
    assert_eq!(next.len(), SENDERS);
    assert!(next.values().all(|n| *n == PER_SENDER));
    juliet.assert_silent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_overflow_bounces_resource_constraint_then_timeout() {
    let dns = dns().await;
    let a = node_with(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            connect_timeout: 1,
            s2s: "queue_max = 5\n".into(),
            ..Opts::default()
        },
    )
    .await;
    let silent = Silent::start().await;
    publish_at(&dns, "hang.test", silent.port, false);
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    const N: usize = 12;
    for i in 0..N {
        romeo.send(&format!(
                "<message xmlns='jabber:client' to='juliet@hang.test' id='m{i}'><body>{i}</body></message>"
            ),
        )
        .await;
    }
    // The 6th..Nth bounced before `send` returned, while the first five wait for the stream.
    for i in 5..N {
        let e = romeo.recv();
        assert_eq!(error_of(&e), ("resource-constraint".into(), "wait".into()));
        assert_eq!(e.id(), Some(format!("m{i}").as_str()));
    }
    romeo.assert_silent();
    assert!(
        a.s2s()
            .pool()
            .stream_of(&("a.test".into(), "hang.test".into()))
            .is_none()
    );
    for i in 0..5 {
        let e = romeo
            .expect_error(10, "remote-server-timeout", "wait")
            .await;
        assert_eq!(e.id(), Some(format!("m{i}").as_str()));
    }
    romeo.assert_silent();
}
