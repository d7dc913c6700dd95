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
