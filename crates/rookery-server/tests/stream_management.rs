//! XEP-0198 stream management on real c2s connections: enabling, acknowledgements, resumption
//! after a cut connection (the missed stanzas come exactly once), resumption refused for
//! another account, takeover of a connection that is still open, the window expiring (what
//! was not acknowledged goes to another resource or offline storage, once), and a client
//! that never acknowledges being closed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rookery_config::ListenerKind;
use rookery_proto::ns;
use rookery_testkit::net::{Ev, LocalOpts, RawPeer, TestServer, c2s};
use rookery_testkit::{PASSWORD, wait_until};
use rookery_xml::Element;
use std::time::Duration;

async fn server(c2s: &str) -> TestServer {
    TestServer::local_with(LocalOpts {
        c2s: format!("require_encryption = false\nallow_plain_unencrypted = true\n{c2s}"),
        ..LocalOpts::default()
    })
    .await
}

/// Authenticates as `user` on a new connection and restarts the stream; not bound yet.
async fn authenticated(s: &TestServer, user: &str) -> RawPeer {
    s.account(user).await;
    let p = c2s::authenticate_plain(s.addr(ListenerKind::C2s), "localhost", user, PASSWORD).await;
    let features = p.features.as_ref().unwrap();
    assert!(
        features.get_child("sm", ns::SM).is_some(),
        "{}",
        features.to_xml()
    );
    p
}

/// Enables stream management with resumption; returns the resumption id.
async fn enable(p: &mut RawPeer) -> String {
    p.raw(&format!("<enable xmlns='{}' resume='true'/>", ns::SM))
        .await;
    let e = p.element(5).await;
    assert!(e.is("enabled", ns::SM), "{}", e.to_xml());
    assert_eq!(e.attr("resume"), Some("true"));
    assert!(e.attr("max").is_some(), "{}", e.to_xml());
    e.attr("id").unwrap().to_owned()
}

/// The next message's id, answering nothing (`<r/>` requests and presence are skipped).
async fn next_message_id(p: &mut RawPeer) -> String {
    loop {
        let e = p.element(10).await;
        if e.is("r", ns::SM) || e.name() == "presence" {
            continue;
        }
        assert_eq!(e.name(), "message", "{}", e.to_xml());
        return e.attr("id").unwrap().to_owned();
    }
}

fn message(to: &str, id: &str) -> String {
    format!("<message to='{to}' id='{id}' type='chat'><body>{id}</body></message>")
}

async fn resume(p: &mut RawPeer, id: &str, h: u32) -> Element {
    p.raw(&format!(
        "<resume xmlns='{}' previd='{id}' h='{h}'/>",
        ns::SM
    ))
    .await;
    p.element(10).await
}

#[tokio::test]
async fn a_cut_connection_resumes_and_gets_what_it_missed_exactly_once() {
    let s = server("").await;
    let mut romeo = s.client("romeo", "r").await;
    let mut juliet = s.client("juliet", "balcony").await;
    let id = enable(&mut juliet).await;
    // Juliet's own stanzas count towards the h we get back.
    juliet
        .raw("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(juliet.element(5).await.attr("id"), Some("p1"));
    juliet.raw(&format!("<r xmlns='{}'/>", ns::SM)).await;
    let a = juliet.element(5).await;
    assert!(
        a.is("a", ns::SM) && a.attr("h") == Some("1"),
        "{}",
        a.to_xml()
    );

    for i in 1..=3 {
        romeo
            .raw(&message("juliet@localhost/balcony", &format!("m{i}")))
            .await;
    }
    for i in 1..=3 {
        assert_eq!(next_message_id(&mut juliet).await, format!("m{i}"));
    }
    // She acknowledges the ping's answer and m1 only; then her connection is cut.
    juliet.raw(&format!("<a xmlns='{}' h='2'/>", ns::SM)).await;
    drop(juliet);
    wait_until(5, "the session to be parked", || {
        s.server().sessions().parked_count() == 1
    })
    .await;
    romeo.raw(&message("juliet@localhost/balcony", "m4")).await;

    let mut again = authenticated(&s, "juliet").await;
    let r = resume(&mut again, &id, 2).await;
    assert!(r.is("resumed", ns::SM), "{}", r.to_xml());
    assert_eq!(r.attr("previd"), Some(id.as_str()));
    assert_eq!(r.attr("h"), Some("1"), "the server handled her one ping");
    for want in ["m2", "m3", "m4"] {
        assert_eq!(next_message_id(&mut again).await, want);
    }
    // Nothing twice: the next thing is the answer to a new request.
    again.ping_answered_next("p2").await;
    assert_eq!(s.server().sessions().parked_count(), 0);
    // The resumed session is the same resource, reachable as before.
    romeo.raw(&message("juliet@localhost/balcony", "m5")).await;
    assert_eq!(next_message_id(&mut again).await, "m5");
}

#[tokio::test]
async fn another_accounts_session_cannot_be_resumed() {
    let s = server("").await;
    let mut juliet = s.client("juliet", "balcony").await;
    let id = enable(&mut juliet).await;
    drop(juliet);
    wait_until(5, "the session to be parked", || {
        s.server().sessions().parked_count() == 1
    })
    .await;
    let mut romeo = authenticated(&s, "romeo").await;
    let f = resume(&mut romeo, &id, 0).await;
    assert!(f.is("failed", ns::SM), "{}", f.to_xml());
    assert!(
        f.get_child("item-not-found", ns::STANZAS).is_some(),
        "{}",
        f.to_xml()
    );
    // An unknown id fails the same way.
    let f = resume(&mut romeo, "local/AAAAAAAAAAAAAAAAAAAAAA", 0).await;
    assert!(
        f.get_child("item-not-found", ns::STANZAS).is_some(),
        "{}",
        f.to_xml()
    );
    // Juliet's session is still waiting for her.
    assert_eq!(s.server().sessions().parked_count(), 1);
    let mut juliet = authenticated(&s, "juliet").await;
    assert!(resume(&mut juliet, &id, 0).await.is("resumed", ns::SM));
}

#[tokio::test]
async fn resuming_from_a_new_connection_takes_over_the_open_one() {
    let s = server("").await;
    let mut romeo = s.client("romeo", "r").await;
    let mut old = s.client("juliet", "balcony").await;
    let id = enable(&mut old).await;
    romeo.raw(&message("juliet@localhost/balcony", "m1")).await;
    assert_eq!(next_message_id(&mut old).await, "m1");
    let mut new = authenticated(&s, "juliet").await;
    let r = resume(&mut new, &id, 0).await;
    assert!(r.is("resumed", ns::SM), "{}", r.to_xml());
    assert_eq!(old.expect_stream_error(5).await, "conflict");
    assert_eq!(
        next_message_id(&mut new).await,
        "m1",
        "sent again: never acknowledged"
    );
    romeo.raw(&message("juliet@localhost/balcony", "m2")).await;
    assert_eq!(next_message_id(&mut new).await, "m2");
}

#[tokio::test]
async fn an_expired_session_hands_what_it_did_not_acknowledge_to_another_resource_once() {
    let s = server("sm_resume_window_secs = 1").await;
    let mut romeo = s.client("romeo", "r").await;
    let mut garden = s.client("juliet", "garden").await;
    garden.raw("<presence/>").await;
    let mut balcony = s.client("juliet", "balcony").await;
    balcony
        .raw(&format!("<enable xmlns='{}' resume='true'/>", ns::SM))
        .await;
    let e = balcony.element(5).await;
    assert_eq!(e.attr("max"), Some("1"), "{}", e.to_xml());
    romeo.raw(&message("juliet@localhost/balcony", "m1")).await;
    assert_eq!(next_message_id(&mut balcony).await, "m1");
    drop(balcony);
    // The window runs out: m1 was never acknowledged and goes to the other resource.
    let got = loop {
        let e = garden.element(10).await;
        if e.name() == "message" {
            break e;
        }
    };
    assert_eq!(got.attr("id"), Some("m1"), "{}", got.to_xml());
    assert!(
        got.get_child("delay", ns::DELAY).is_some(),
        "{}",
        got.to_xml()
    );
    assert_eq!(s.server().sessions().parked_count(), 0);
    // Once: nothing else follows.
    garden
        .raw("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(garden.next_non_presence(5).await.attr("id"), Some("p"));
}

#[tokio::test]
async fn an_expired_session_without_other_resources_stores_offline() {
    let s = server("sm_resume_window_secs = 1").await;
    let mut romeo = s.client("romeo", "r").await;
    let mut juliet = s.client("juliet", "balcony").await;
    let _id = enable(&mut juliet).await;
    juliet.raw("<presence/>").await;
    romeo.raw(&message("juliet@localhost", "m1")).await;
    assert_eq!(next_message_id(&mut juliet).await, "m1");
    drop(juliet);
    wait_until(10, "the window to expire", || {
        s.server().sessions().parked_count() == 0
            && !s
                .server()
                .sessions()
                .is_online(&rookery_proto::stanza::BareJid::new("juliet@localhost").unwrap())
    })
    .await;
    let mut back = s.client("juliet", "laptop").await;
    back.raw("<presence/>").await;
    let got = loop {
        let e = back.element(10).await;
        if e.name() == "message" {
            break e;
        }
    };
    assert_eq!(got.attr("id"), Some("m1"));
    assert!(
        got.get_child("delay", ns::DELAY).is_some(),
        "{}",
        got.to_xml()
    );
}

#[tokio::test]
async fn a_client_that_never_acknowledges_is_closed_and_loses_nothing() {
    let s = server("sm_max_unacked = 5\nsm_request_after = 100").await;
    let mut romeo = s.client("romeo", "r").await;
    let mut juliet = s.client("juliet", "balcony").await;
    juliet.raw(&format!("<enable xmlns='{}'/>", ns::SM)).await;
    let e = juliet.element(5).await;
    assert!(
        e.is("enabled", ns::SM) && e.attr("resume").is_none(),
        "{}",
        e.to_xml()
    );
    for i in 1..=10 {
        romeo
            .raw(&message("juliet@localhost/balcony", &format!("m{i}")))
            .await;
    }
    assert_eq!(juliet.expect_stream_error(10).await, "policy-violation");
    // What she was sent and never acknowledged was stored for her.
    let mut back = s.client("juliet", "laptop").await;
    back.raw("<presence/>").await;
    let mut ids = Vec::new();
    while ids.len() < 10 {
        match back.next_within(Duration::from_secs(5)).await {
            Some(Ev::El(e)) if e.name() == "message" => ids.push(e.attr("id").unwrap().to_owned()),
            Some(Ev::El(_)) => {}
            other => panic!("after {ids:?}: {other:?}"),
        }
    }
    // All of them, once. Not necessarily in order: messages routed while the session was
    // ending went to offline storage before the ones it gave back.
    ids.sort_by_key(|id| id[1..].parse::<u32>().unwrap());
    let want: Vec<String> = (1..=10).map(|i| format!("m{i}")).collect();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn enable_before_bind_and_requests_before_enable_are_refused() {
    let s = server("").await;
    let mut p = authenticated(&s, "juliet").await;
    p.raw(&format!("<enable xmlns='{}'/>", ns::SM)).await;
    let f = p.element(5).await;
    assert!(f.is("failed", ns::SM), "{}", f.to_xml());
    assert!(f.get_child("unexpected-request", ns::STANZAS).is_some());
    let mut bound = s.client("romeo", "r").await;
    bound.raw(&format!("<r xmlns='{}'/>", ns::SM)).await;
    let f = bound.element(5).await;
    assert!(
        f.get_child("unexpected-request", ns::STANZAS).is_some(),
        "{}",
        f.to_xml()
    );
    bound.raw(&format!("<enable xmlns='{}'/>", ns::SM)).await;
    assert!(bound.element(5).await.is("enabled", ns::SM));
    // An acknowledgement of more than was sent is a stream error.
    bound.raw(&format!("<a xmlns='{}' h='5'/>", ns::SM)).await;
    assert_eq!(bound.expect_stream_error(5).await, "undefined-condition");
}
