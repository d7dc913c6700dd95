//! Sender multiplexing (XEP-0220 §3): a second local domain rides an
//! existing dialback stream to the same remote domain; a SASL EXTERNAL stream, whose pair set
//! is fixed to its header, is never reused for another domain.
#![allow(clippy::unwrap_used)]

use rookery_testkit::Client;
use rookery_testkit::net::dns::dns;
use rookery_testkit::net::federation::{Ca, Certs, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialback_stream_carries_a_second_local_domain() {
    let dns = dns().await;
    let a = node(&["a.test", "a2.test"], &dns, Certs::SelfSigned, "").await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mercutio = Client::available(a.server(), "mercutio@a2.test/m").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;

    romeo.send("<message xmlns='jabber:client' to='juliet@b.test/j' id='r1'><body>from a</body></message>",
    )
    .await;
    let got = juliet.next_non_presence(10).await;
    assert_eq!(
        (got.id(), got.from().unwrap().as_str()),
        (Some("r1"), "romeo@a.test/r")
    );
    mercutio.send("<message xmlns='jabber:client' to='juliet@b.test/j' id='m1'><body>from a2</body></message>").await;
    let got = juliet.next_non_presence(10).await;
    assert_eq!(
        (got.id(), got.from().unwrap().as_str()),
        (Some("m1"), "mercutio@a2.test/m")
    );

    let first = a.stream_of("a.test", "b.test").unwrap();
    let second = a.stream_of("a2.test", "b.test").unwrap();
    assert!(first.1 && second.1, "both pairs use dialback");
    assert_eq!(first.0, second.0, "a2.test piggybacks on the a.test stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_external_stream_is_never_piggybacked() {
    let dns = dns().await;
    let ca = Ca::new();
    let a = node(&["a.test", "a2.test"], &dns, Certs::Ca(&ca), "").await;
    let b = node(&["b.test"], &dns, Certs::Ca(&ca), "").await;
    let romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mercutio = Client::available(a.server(), "mercutio@a2.test/m").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;

    romeo.send("<message xmlns='jabber:client' to='juliet@b.test/j' id='r1'><body>from a</body></message>",
    )
    .await;
    assert_eq!(juliet.next_non_presence(10).await.id(), Some("r1"));
    mercutio.send("<message xmlns='jabber:client' to='juliet@b.test/j' id='m1'><body>from a2</body></message>").await;
    let got = juliet.next_non_presence(10).await;
    assert_eq!(
        (got.id(), got.from().unwrap().as_str()),
        (Some("m1"), "mercutio@a2.test/m")
    );

    let first = a.stream_of("a.test", "b.test").unwrap();
    let second = a.stream_of("a2.test", "b.test").unwrap();
    assert!(!first.1 && !second.1, "both pairs use SASL EXTERNAL");
    assert_ne!(first.0, second.0, "a2.test gets its own stream");
}
