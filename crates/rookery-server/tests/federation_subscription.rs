//! A presence subscription across two servers (RFC 6121 §3.1): romeo@a.test subscribes to
//! juliet@b.test, juliet approves; both sides' rosters end right, romeo sees the roster push
//! and juliet's presence.
#![allow(clippy::unwrap_used)]

use rookery_proto::ns;
use rookery_proto::stanza::{Kind, Stanza};
use rookery_store::Subscription;
use rookery_testkit::Client;
use rookery_testkit::create_account;
use rookery_testkit::net::dns::dns;
use rookery_testkit::net::federation::{Certs, node};

fn push_item(st: &Stanza) -> Option<(String, String, Option<String>)> {
    if st.kind() != Kind::Iq || st.type_attr() != "set" {
        return None;
    }
    let item = st
        .element()
        .get_child("query", ns::ROSTER)?
        .get_child("item", ns::ROSTER)?;
    Some((
        item.attr("jid")?.to_owned(),
        item.attr("subscription").unwrap_or("none").to_owned(),
        item.attr("ask").map(str::to_owned),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_round_trip() {
    let dns = dns().await;
    let a = node(&["a.test"], &dns, Certs::SelfSigned, "").await;
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    create_account(a.server(), "romeo@a.test").await;
    create_account(b.server(), "juliet@b.test").await;
    let mut romeo = Client::interested(a.server(), "romeo@a.test/r").await;
    let mut juliet = Client::interested(b.server(), "juliet@b.test/j").await;
    // Juliet is online with a presence the server can send to a new subscriber.
    juliet
        .send("<presence xmlns='jabber:client'><status>here</status></presence>")
        .await;

    romeo
        .send("<presence xmlns='jabber:client' to='juliet@b.test' type='subscribe'/>")
        .await;
    // Romeo's own push: juliet, subscription none, ask subscribe.
    let push = romeo.next(10).await;
    assert_eq!(
        push_item(&push),
        Some((
            "juliet@b.test".into(),
            "none".into(),
            Some("subscribe".into())
        )),
        "{}",
        push.element().to_xml()
    );

    // Juliet's session gets the request (after the echo of her own presence).
    let req = loop {
        let st = juliet.next(10).await;
        if st.kind() == Kind::Presence && st.type_attr() != "" {
            break st;
        }
    };
    assert_eq!(req.type_attr(), "subscribe", "{}", req.element().to_xml());
    assert_eq!(req.from().unwrap().as_str(), "romeo@a.test");

    juliet
        .send("<presence xmlns='jabber:client' to='romeo@a.test' type='subscribed'/>")
        .await;

    // Romeo: the roster push with subscription 'to', the `subscribed`, and juliet's presence.
    let (mut pushed_to, mut subscribed, mut presence) = (false, false, false);
    while !(pushed_to && subscribed && presence) {
        let st = romeo.next(10).await;
        if let Some((jid, sub, ask)) = push_item(&st) {
            assert_eq!(jid, "juliet@b.test");
            if sub == "to" {
                assert_eq!(ask, None, "the ask flag is cleared");
                pushed_to = true;
            }
            continue;
        }
        if st.kind() != Kind::Presence {
            continue;
        }
        match st.type_attr() {
            "subscribed" => {
                assert_eq!(st.from().unwrap().as_str(), "juliet@b.test");
                subscribed = true;
            }
            "" => {
                assert_eq!(st.from().unwrap().as_str(), "juliet@b.test/j");
                assert_eq!(
                    st.element().get_child("status", ns::CLIENT).unwrap().text(),
                    "here"
                );
                presence = true;
            }
            _ => {}
        }
    }

    let r = a
        .server()
        .stores()
        .roster
        .get("romeo", "a.test", "juliet@b.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.subscription, r.ask_out), (Subscription::To, false));
    let j = b
        .server()
        .stores()
        .roster
        .get("juliet", "b.test", "romeo@a.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((j.subscription, j.ask_out), (Subscription::From, false));
    assert!(
        !b.server()
            .stores()
            .roster
            .has_pending_in("juliet", "b.test", "romeo@a.test")
            .await
            .unwrap(),
        "the request is no longer pending"
    );
}
