//! Stanzas to remote domains that cannot be reached come back to the local sender exactly once
//! with the condition that says why (RFC 6120 §10.4.3, XEP-0220 §2.4): no DNS, or no server
//! accepting connections → `remote-server-not-found`; connected but no stream in time →
//! `remote-server-timeout`; dialback refused → `internal-server-error`. IQ results, errors and
//! untyped presence never bounce; a `subscribe` bounces once.
#![allow(clippy::unwrap_used)]

use rookery_testkit::Client;
use rookery_testkit::create_account;
use rookery_testkit::net::dns::{dns, publish_at};
use rookery_testkit::net::federation::{Certs, Opts, node, node_with};
use rookery_testkit::net::s2s::Silent;

/// The sender gets exactly this bounce: the next stanza is it, and a later probe's bounce
/// comes right after it with nothing in between.
async fn bounced_once(romeo: &mut Client, to: &str, cond: &str, ty: &str) {
    let e = romeo.expect_error(10, cond, ty).await;
    assert_eq!(e.id(), Some("m1"));
    assert_eq!(e.from().unwrap().as_str(), to);
    assert_eq!(e.to().unwrap().as_str(), "romeo@a.test/r");
    romeo
        .send(&format!(
            "<message xmlns='jabber:client' to='{to}' id='probe'><body>2</body></message>"
        ))
        .await;
    let p = romeo.expect_error(10, cond, ty).await;
    assert_eq!(p.id(), Some("probe"), "{}", p.element().to_xml());
    romeo.assert_silent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_domain_bounces_remote_server_not_found() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    romeo.send("<message xmlns='jabber:client' to='juliet@nowhere.test' id='m1' type='chat'><body>hi</body></message>").await;
    bounced_once(
        &mut romeo,
        "juliet@nowhere.test",
        "remote-server-not-found",
        "cancel",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_bounces_remote_server_not_found() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    publish_at(&dns, "closed.test", closed, false);
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    romeo.send("<message xmlns='jabber:client' to='juliet@closed.test' id='m1'><body>hi</body></message>",
    )
    .await;
    bounced_once(
        &mut romeo,
        "juliet@closed.test",
        "remote-server-not-found",
        "cancel",
    )
    .await;
}

/// B resolves a.test through its own DNS, where a.test is node C: same domain, another
/// dialback secret. C, as B's authoritative server for a.test, says A's key is invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialback_refused_bounces_internal_server_error() {
    let dns_a = dns().await;
    let dns_b = dns().await;
    let a = node_with(
        &["a.test"],
        &dns_a,
        Certs::SelfSigned,
        Opts {
            s2s: "dialback_secret = \"secret-of-the-real-a-test\"\n".into(),
            ..Opts::default()
        },
    )
    .await;
    // B resolves through dns_b but is found (by A) through dns_a.
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
        &["a.test"],
        &dns_b,
        Certs::SelfSigned,
        Opts {
            s2s: "dialback_secret = \"secret-of-the-impostor-c\"\n".into(),
            ..Opts::default()
        },
    )
    .await;
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;
    romeo
        .send(
            "<message xmlns='jabber:client' to='juliet@b.test/j' id='m1'><body>hi</body></message>",
        )
        .await;
    bounced_once(
        &mut romeo,
        "juliet@b.test/j",
        "internal-server-error",
        "cancel",
    )
    .await;
    juliet.assert_silent();
    assert!(a.stream_of("a.test", "b.test").is_none());
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iq_get_to_unresolvable_domain_gets_an_iq_error() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    romeo.send("<iq xmlns='jabber:client' to='nowhere.test' id='q1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    let e = romeo
        .expect_error(10, "remote-server-not-found", "cancel")
        .await;
    assert_eq!(e.kind(), rookery_proto::stanza::Kind::Iq);
    assert_eq!(e.id(), Some("q1"));
    assert_eq!(e.from().unwrap().as_str(), "nowhere.test");
}

/// Everything goes into one queue (the remote accepts TCP and never answers, so set-up takes
/// the whole connect timeout) and bounces in order when it fails: of the iq result, the error
/// message, the available presence, the `subscribe` and the final message, only the
/// `subscribe` and the message come back, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_bounceable_stanzas_bounce_and_once() {
    let dns = dns().await;
    let a = node_with(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            connect_timeout: 1,
            ..Opts::default()
        },
    )
    .await;
    let silent = Silent::start().await;
    publish_at(&dns, "dead.test", silent.port, false);
    create_account(a.server(), "romeo@a.test").await;
    let mut romeo = Client::available(a.server(), "romeo@a.test/r").await;
    for xml in [
        "<iq xmlns='jabber:client' to='juliet@dead.test/x' id='res' type='result'/>",
        "<iq xmlns='jabber:client' to='juliet@dead.test/x' id='err' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        "<message xmlns='jabber:client' to='juliet@dead.test' id='merr' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        "<presence xmlns='jabber:client' to='juliet@dead.test'/>",
        "<presence xmlns='jabber:client' to='juliet@dead.test' type='subscribe' id='sub'/>",
        "<message xmlns='jabber:client' to='juliet@dead.test' id='last'><body>x</body></message>",
    ] {
        romeo.send(xml).await;
    }
    // (The session did not ask for the roster, so no roster push arrives.)
    let sub = romeo
        .expect_error(10, "remote-server-timeout", "wait")
        .await;
    assert_eq!(
        (sub.kind(), sub.id()),
        (rookery_proto::stanza::Kind::Presence, Some("sub"))
    );
    assert_eq!(sub.to().unwrap().as_str(), "romeo@a.test");
    let last = romeo
        .expect_error(10, "remote-server-timeout", "wait")
        .await;
    assert_eq!(last.id(), Some("last"), "{}", last.element().to_xml());
    romeo.assert_silent();
    assert_eq!(
        silent.accepted(),
        1,
        "one connection attempt for the whole queue"
    );
}
