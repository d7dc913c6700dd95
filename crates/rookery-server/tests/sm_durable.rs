//! XEP-0198 on the durable outbox (`rookery_core::outbox`): a resumable session survives a
//! server stop and start (its client resumes it and gets what it had not acknowledged, once,
//! in order, with its presence kept), and a sender's `<a h/>` covers a stanza only once the
//! stanza sits in the recipient's outbox in the store. The SIGKILL case is in
//! `bins/rookery/tests/sm_kill.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rookery_config::ListenerKind;
use rookery_proto::ns;
use rookery_proto::stanza::BareJid;
use rookery_testkit::PASSWORD;
use rookery_testkit::net::{LocalOpts, RawPeer, TestServer, c2s};
use rookery_xml::Element;

async fn server() -> TestServer {
    TestServer::local_with(LocalOpts::default()).await
}

/// A new connection authenticated as `user`, stream restarted, not bound.
async fn authenticated(s: &TestServer, user: &str) -> RawPeer {
    c2s::authenticate_plain(s.addr(ListenerKind::C2s), "localhost", user, PASSWORD).await
}

async fn enable(p: &mut RawPeer) -> String {
    p.raw(&format!("<enable xmlns='{}' resume='true'/>", ns::SM))
        .await;
    let e = p.element(5).await;
    assert!(e.is("enabled", ns::SM), "{}", e.to_xml());
    e.attr("id").unwrap().to_owned()
}

/// The next stanza (not an SM element): `<r/>` requests are skipped, unanswered.
async fn next_stanza(p: &mut RawPeer) -> Element {
    loop {
        let e = p.element(10).await;
        if !e.is("r", ns::SM) {
            return e;
        }
    }
}

fn message(to: &str, id: &str) -> String {
    format!("<message to='{to}' id='{id}' type='chat'><body>{id}</body></message>")
}

#[tokio::test]
async fn a_resumable_session_survives_a_server_restart() {
    let s = server().await;
    let mut romeo = s.client("romeo", "r").await;
    let mut juliet = s.client("juliet", "balcony").await;
    let id = enable(&mut juliet).await;
    juliet
        .raw("<presence><priority>5</priority></presence>")
        .await;
    // Stanza 1 to her: her own presence.
    assert_eq!(next_stanza(&mut juliet).await.name(), "presence");
    for i in 1..=3 {
        romeo
            .raw(&message("juliet@localhost/balcony", &format!("m{i}")))
            .await;
    }
    for i in 1..=3 {
        assert_eq!(
            next_stanza(&mut juliet).await.attr("id"),
            Some(format!("m{i}").as_str())
        );
    }
    // She acknowledges her presence and m1 (stanzas 1 and 2) and sent one stanza herself.
    juliet.raw(&format!("<a xmlns='{}' h='2'/>", ns::SM)).await;
    juliet.raw(&format!("<r xmlns='{}'/>", ns::SM)).await;
    let a = juliet.element(5).await;
    assert_eq!(a.attr("h"), Some("1"), "{}", a.to_xml());

    let s = s.restart().await;
    assert_eq!(juliet.expect_stream_error(5).await, "system-shutdown");
    let jid = BareJid::new("juliet@localhost").unwrap();
    assert_eq!(s.server().sessions().parked_count(), 1);
    assert!(
        s.server().sessions().is_available(&jid),
        "her presence came back with the session"
    );

    let mut again = authenticated(&s, "juliet").await;
    again
        .raw(&format!("<resume xmlns='{}' previd='{id}' h='2'/>", ns::SM))
        .await;
    let r = again.element(5).await;
    assert!(r.is("resumed", ns::SM), "{}", r.to_xml());
    assert_eq!(r.attr("h"), Some("1"));
    for want in ["m2", "m3"] {
        assert_eq!(next_stanza(&mut again).await.attr("id"), Some(want));
    }
    // Once, and the session is live again: a new message follows directly.
    let mut romeo = s.client("romeo", "r").await;
    romeo.raw(&message("juliet@localhost/balcony", "m4")).await;
    assert_eq!(next_stanza(&mut again).await.attr("id"), Some("m4"));
    assert_eq!(s.server().sessions().parked_count(), 0);
    let res = s
        .server()
        .sessions()
        .resource(&rookery_proto::stanza::FullJid::new("juliet@localhost/balcony").unwrap());
    assert_eq!(res.map(|r| r.priority), Some(5), "priority kept");
}

#[tokio::test]
async fn a_senders_ack_covers_a_stanza_once_it_is_in_the_recipients_outbox() {
    let s = server().await;
    let mut juliet = s.client("juliet", "balcony").await;
    let juliet_id = enable(&mut juliet).await;
    let mut romeo = s.client("romeo", "r").await;
    let romeo_id = enable(&mut romeo).await;
    for i in 1..=20 {
        romeo
            .raw(&message("juliet@localhost/balcony", &format!("m{i}")))
            .await;
    }
    romeo.raw(&format!("<r xmlns='{}'/>", ns::SM)).await;
    let a = next_stanza(&mut romeo).await;
    assert!(a.is("a", ns::SM), "{}", a.to_xml());
    assert_eq!(a.attr("h"), Some("20"));
    // The ack was sent: all twenty are rows of her outbox already (she acknowledged none).
    let sessions = s.server().stores().sm.load("local").await.unwrap();
    let (_, rows) = sessions
        .iter()
        .find(|(rec, _)| rec.id == juliet_id)
        .expect("her session record");
    let ids: Vec<&str> = rows.iter().map(|r| r.stanza_id.as_str()).collect();
    let want: Vec<String> = (1..=20).map(|i| format!("m{i}")).collect();
    assert_eq!(ids, want);
    assert!(
        rows.iter().all(|r| r.origin.is_some()),
        "each row names the stanza it came from"
    );
    // His record counts them handled (what a resumption after a crash would say).
    s.server().outbox().flush().await;
    let sessions = s.server().stores().sm.load("local").await.unwrap();
    let (rec, _) = sessions.iter().find(|(rec, _)| rec.id == romeo_id).unwrap();
    assert_eq!(rec.handled, 20);
    // Her acknowledgement deletes them.
    for _ in 0..20 {
        next_stanza(&mut juliet).await;
    }
    juliet.raw(&format!("<a xmlns='{}' h='20'/>", ns::SM)).await;
    // Her session handled the ack once it answers a request sent after it; then whatever it
    // queued for the store is committed by the flush.
    juliet.raw(&format!("<r xmlns='{}'/>", ns::SM)).await;
    assert!(next_stanza(&mut juliet).await.is("a", ns::SM));
    s.server().outbox().flush().await;
    let sessions = s.server().stores().sm.load("local").await.unwrap();
    let (rec, rows) = sessions
        .iter()
        .find(|(rec, _)| rec.id == juliet_id)
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(rec.acked, 20);
}

#[tokio::test]
async fn deleting_an_account_deletes_its_session_records() {
    let s = server().await;
    let mut juliet = s.client("juliet", "balcony").await;
    enable(&mut juliet).await;
    s.server().outbox().flush().await;
    assert_eq!(s.server().stores().sm.load("local").await.unwrap().len(), 1);
    let jid = BareJid::new("juliet@localhost").unwrap();
    rookery_core::accounts::delete(s.server().stores(), &jid)
        .await
        .unwrap();
    assert!(
        s.server()
            .stores()
            .sm
            .load("local")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_stanza_never_acknowledged_becomes_a_dead_letter_and_is_never_sent_again() {
    let s = TestServer::local_with(LocalOpts {
        c2s: "require_encryption = false\nallow_plain_unencrypted = true\nsm_max_attempts = 2\n"
            .to_owned(),
        ..LocalOpts::default()
    })
    .await;
    let mut romeo = s.client("romeo", "r").await;
    let mut juliet = s.client("juliet", "balcony").await;
    let id = enable(&mut juliet).await;
    romeo
        .raw(&message("juliet@localhost/balcony", "poison"))
        .await;
    assert_eq!(next_stanza(&mut juliet).await.attr("id"), Some("poison"));
    // Written to a second connection, never acknowledged either.
    drop(juliet);
    let mut again = authenticated(&s, "juliet").await;
    again
        .raw(&format!("<resume xmlns='{}' previd='{id}' h='0'/>", ns::SM))
        .await;
    assert!(again.element(5).await.is("resumed", ns::SM));
    assert_eq!(next_stanza(&mut again).await.attr("id"), Some("poison"));
    drop(again);
    // A third would exceed sm_max_attempts: the resumption fails, the stanza is a dead letter.
    let mut third = authenticated(&s, "juliet").await;
    third
        .raw(&format!("<resume xmlns='{}' previd='{id}' h='0'/>", ns::SM))
        .await;
    let f = third.element(5).await;
    assert!(f.is("failed", ns::SM), "{}", f.to_xml());
    s.server().outbox().flush().await;
    let dead = s
        .server()
        .stores()
        .sm
        .dead_letters("juliet", "localhost")
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].xml.contains("poison"), "{dead:?}");
    assert_eq!(dead[0].attempts, 2);
    // The client starts afresh: nothing comes back, neither live nor from offline storage.
    third
        .raw(&format!(
            "<iq type='set' id='b'><bind xmlns='{}'><resource>balcony</resource></bind></iq>",
            ns::BIND
        ))
        .await;
    assert_eq!(third.element(5).await.attr("type"), Some("result"));
    third.raw("<presence/>").await;
    third
        .raw("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let e = next_stanza(&mut third).await;
        assert_ne!(e.name(), "message", "{}", e.to_xml());
        if e.attr("id") == Some("p") {
            break;
        }
    }
    assert_eq!(
        s.server()
            .stores()
            .offline
            .count("juliet", "localhost")
            .await
            .unwrap(),
        0
    );
}
