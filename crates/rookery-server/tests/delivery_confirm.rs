//! Delivery confirmation for clients without stream management (`rookery-net` `c2s/confirm.rs`):
//! a message written to a connection that then dies before the client answered the ping sent
//! after it is routed again (here: offline storage) instead of being lost; one the client
//! confirmed is not; a client that never answers is closed and loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rookery_proto::ns;
use rookery_testkit::net::{LocalOpts, RawPeer, TestServer};

async fn server() -> TestServer {
    TestServer::local_with(LocalOpts {
        c2s: "require_encryption = false\nallow_plain_unencrypted = true\n\
              delivery_confirm_secs = 1\nping_timeout_secs = 2\n"
            .to_owned(),
        ..LocalOpts::default()
    })
    .await
}

/// The next message, skipping presence.
async fn message(p: &mut RawPeer) -> rookery_xml::Element {
    loop {
        let e = p.element(10).await;
        if e.name() == "message" {
            return e;
        }
    }
}

/// The confirmation ping.
async fn ping(p: &mut RawPeer) -> rookery_xml::Element {
    let e = p.element(10).await;
    assert!(
        e.name() == "iq" && e.get_child("ping", ns::PING).is_some(),
        "{}",
        e.to_xml()
    );
    assert_eq!(e.attr("type"), Some("get"));
    e
}

/// The offline messages of `user` once there are `n` (the session's end routes them after it
/// left the registry, so they come a moment after it is gone).
async fn offline(s: &TestServer, user: &str, n: usize) -> Vec<String> {
    let store = s.server().stores().offline.clone();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.count(user, "localhost").await.unwrap() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {n} offline messages"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    store
        .take_all(user, "localhost")
        .await
        .unwrap()
        .into_iter()
        .map(|(xml, _)| xml)
        .collect()
}

/// Waits until `user` has no session left.
async fn gone(s: &TestServer, user: &str) {
    let bare = rookery_proto::stanza::BareJid::new(&format!("{user}@localhost")).unwrap();
    rookery_testkit::wait_until(10, "the session to end", || {
        !s.server().sessions().is_online(&bare)
    })
    .await;
}

#[tokio::test]
async fn a_message_not_confirmed_before_the_connection_died_goes_offline() {
    let s = server().await;
    let mut romeo = s.client("romeo", "r").await;
    let mut juliet = s.client("juliet", "balcony").await;
    romeo
        .raw("<message to='juliet@localhost/balcony' id='m1' type='chat'><body>1</body></message>")
        .await;
    assert_eq!(message(&mut juliet).await.attr("id"), Some("m1"));
    // The confirmation is asked for, and the connection dies before it is given.
    ping(&mut juliet).await;
    drop(juliet);
    gone(&s, "juliet").await;
    let stored = offline(&s, "juliet", 1).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].contains("id='m1'"), "{stored:?}");
}

#[tokio::test]
async fn a_confirmed_message_is_not_routed_again() {
    let s = server().await;
    let mut romeo = s.client("romeo", "r").await;
    let mut juliet = s.client("juliet", "balcony").await;
    romeo
        .raw("<message to='juliet@localhost/balcony' id='m1' type='chat'><body>1</body></message>")
        .await;
    assert_eq!(message(&mut juliet).await.attr("id"), Some("m1"));
    let p = ping(&mut juliet).await;
    juliet
        .raw(&format!(
            "<iq type='result' id='{}' to='localhost'/>",
            p.attr("id").unwrap()
        ))
        .await;
    // The answer was handled once a request sent after it is answered.
    juliet
        .raw("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(juliet.element(5).await.attr("id"), Some("p"));
    drop(juliet);
    gone(&s, "juliet").await;
    // Whatever the end routes, it routes before it reports the session closed to the modules;
    // a new login's presence broadcast comes after that, so an empty store then is final.
    let mut back = s.client("juliet", "laptop").await;
    back.raw("<presence/>").await;
    back.raw("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let e = back.element(5).await;
        assert_ne!(e.name(), "message", "{}", e.to_xml());
        if e.attr("id") == Some("p") {
            break;
        }
    }
}

#[tokio::test]
async fn a_client_that_never_confirms_is_closed_and_loses_nothing() {
    let s = server().await;
    let mut romeo = s.client("romeo", "r").await;
    let mut juliet = s.client("juliet", "balcony").await;
    for i in 1..=3 {
        romeo
            .raw(&format!(
                "<message to='juliet@localhost/balcony' id='m{i}' type='chat'><body>{i}</body></message>"
            ))
            .await;
    }
    for i in 1..=3 {
        assert_eq!(
            message(&mut juliet).await.attr("id"),
            Some(format!("m{i}").as_str())
        );
    }
    ping(&mut juliet).await;
    assert_eq!(juliet.expect_stream_error(10).await, "connection-timeout");
    gone(&s, "juliet").await;
    let stored = offline(&s, "juliet", 3).await;
    assert_eq!(stored.len(), 3, "{stored:?}");
}
