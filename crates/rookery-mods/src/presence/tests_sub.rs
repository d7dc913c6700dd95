//! Subscription flows against a real server, following Prosody's scansion scripts where they
//! exist (issue1121.scs, presence_preapproval.scs, keep_full_sub_req.scs) and RFC 6121 §3.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic reports a failed expectation

use rookery_proto::stanza::Stanza;
use rookery_testkit::{Harness, presences, pushes};

fn from_of(st: &Stanza) -> &str {
    st.from().map(|j| j.as_str()).unwrap_or("")
}

fn find<'a>(got: &'a [Stanza], from: &str, ty: &str) -> Option<&'a Stanza> {
    presences(got)
        .into_iter()
        .find(|s| from_of(s) == from && s.type_attr() == ty)
}

/// issue1121.scs end to end: mutual subscription, then Juliet removes Romeo from her roster.
#[tokio::test]
async fn subscribe_approve_round_trip_and_removal() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("romeo").await;
    h.account("juliet").await;
    let mut romeo = h.connect("romeo@localhost/r").await;
    let mut juliet = h.connect("juliet@localhost/j").await;
    romeo.send("<presence/>").await;
    juliet.send("<presence/>").await;
    romeo.drain();
    juliet.drain();
    // Romeo asks for the roster first, so he is interested in pushes.
    romeo.roster().await;

    romeo
        .send("<presence to='juliet@localhost/j' type='subscribe'/>")
        .await;
    let got = romeo.drain();
    // §3.1.2: push with ask='subscribe' (the `to` was normalised to the bare JID) ...
    let p = pushes(&got);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].attr("jid"), Some("juliet@localhost"));
    assert_eq!(p[0].attr("ask"), Some("subscribe"));
    assert_eq!(p[0].attr("subscription"), Some("none"));
    // ... and Juliet's server acknowledges with `unavailable` from her bare JID.
    let ack = find(&got, "juliet@localhost", "unavailable").expect("ack");
    assert_eq!(ack.to().unwrap().as_str(), "romeo@localhost");
    let got = juliet.drain();
    let req = find(&got, "romeo@localhost", "subscribe").expect("request delivered");
    assert_eq!(req.to().unwrap().as_str(), "juliet@localhost");

    juliet
        .send("<presence to='romeo@localhost' type='subscribed'/>")
        .await;
    let got = romeo.drain();
    // Interested resources get the approval and the push with subscription='to' ...
    assert!(find(&got, "juliet@localhost", "subscribed").is_some());
    let p = pushes(&got);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].attr("subscription"), Some("to"));
    assert_eq!(p[0].attr("ask"), None);
    // ... and §3.1.5 Juliet's current presence, from her full JID.
    let pres = find(&got, "juliet@localhost/j", "").expect("juliet's presence");
    assert_eq!(pres.to().unwrap().as_str(), "romeo@localhost");
    juliet.drain();

    juliet
        .send("<presence to='romeo@localhost' type='subscribe'/>")
        .await;
    assert!(find(&juliet.drain(), "romeo@localhost", "unavailable").is_some());
    assert!(find(&romeo.drain(), "juliet@localhost", "subscribe").is_some());
    romeo
        .send("<presence to='juliet@localhost' type='subscribed'/>")
        .await;
    assert!(find(&juliet.drain(), "romeo@localhost/r", "").is_some());
    let got = romeo.drain();
    assert_eq!(pushes(&got)[0].attr("subscription"), Some("both"));
    // The probe that follows a mutual approval brings Juliet's presence again.
    assert!(find(&got, "juliet@localhost/j", "").is_some());

    juliet.roster().await;
    juliet
        .send(
            "<iq type='set' id='iq1'><query xmlns='jabber:iq:roster'><item jid='romeo@localhost' \
             subscription='remove'/></query></iq>",
        )
        .await;
    let got = juliet.drain();
    assert_eq!(got[0].id(), Some("iq1"));
    assert_eq!(got[0].type_attr(), "result");
    let p = pushes(&got);
    assert_eq!(p.len(), 1, "one push for the removal: {got:?}");
    assert_eq!(p[0].attr("subscription"), Some("remove"));
    // §2.5.2: Romeo loses both directions and sees Juliet go unavailable.
    let got = romeo.drain();
    let unavail = find(&got, "juliet@localhost/j", "unavailable").expect("unavailable");
    assert_eq!(unavail.to().unwrap().as_str(), "romeo@localhost");
    assert!(find(&got, "juliet@localhost", "unsubscribe").is_some());
    assert!(find(&got, "juliet@localhost", "unsubscribed").is_some());
    let subs: Vec<_> = pushes(&got)
        .iter()
        .map(|p| p.attr("subscription").unwrap().to_owned())
        .collect();
    assert_eq!(subs, vec!["to".to_owned(), "none".to_owned()]);
    let res = romeo.roster().await;
    let item = res.iq_payload().unwrap().children().next().unwrap();
    assert_eq!(item.attr("subscription"), Some("none"));
}

/// presence_preapproval.scs and RFC 6121 §3.4.
#[tokio::test]
async fn pre_approval() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("alice").await;
    h.account("bob").await;
    let mut alice = h.connect("alice@localhost/a").await;
    alice.send("<presence/>").await;
    alice.roster().await;
    alice
        .send("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    // §3.4.2: not routed; the item appears with approved='true'.
    let p = pushes(&alice.drain())
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].attr("approved"), Some("true"));
    assert_eq!(p[0].attr("subscription"), Some("none"));

    let mut bob = h.connect("bob@localhost/b").await;
    let res = bob.roster().await;
    assert_eq!(res.iq_payload().unwrap().children().count(), 0);
    bob.send("<presence/>").await;
    bob.drain();
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    let got = bob.drain();
    let p = pushes(&got);
    assert_eq!(p[0].attr("ask"), Some("subscribe"));
    assert_eq!(got[0].iq_payload().unwrap().attr("ver"), Some("1"));
    // Alice's server approves on her behalf and sends her presence.
    assert!(find(&got, "alice@localhost", "subscribed").is_some());
    assert!(find(&got, "alice@localhost/a", "").is_some());
    assert_eq!(p.last().unwrap().attr("subscription"), Some("to"));
    // Alice never saw the request; her roster shows 'from' and no approval any more.
    let got = alice.drain();
    assert!(find(&got, "bob@localhost", "subscribe").is_none());
    let res = alice.roster().await;
    let item = res.iq_payload().unwrap().children().next().unwrap();
    assert_eq!(item.attr("subscription"), Some("from"));
    assert_eq!(item.attr("approved"), None);
}

/// keep_full_sub_req.scs: a request to an offline user is kept in full, redelivered at each
/// login until answered, and survives a restart.
#[tokio::test]
async fn pending_request_survives_restart_and_is_redelivered() {
    let mut h = Harness::new(crate::presence::test_modules()).await;
    h.account("alice").await;
    h.account("bob").await;
    let alice = h.connect("alice@localhost/a").await;
    alice
        .send(
            "<presence to='bob@localhost' type='subscribe'><preauth xmlns='urn:xmpp:pars:0' \
             token='1tMFqYDdKhfe2pwp'/></presence>",
        )
        .await;
    alice.drop_connection().await;
    h.restart(crate::presence::test_modules()).await;

    for resource in ["b", "phone"] {
        let mut bob = h.connect(&format!("bob@localhost/{resource}")).await;
        // Pending requests do not show in the roster (A.1: "None + Pending In" has no item).
        assert_eq!(
            bob.roster().await.iq_payload().unwrap().children().count(),
            0
        );
        bob.send("<presence/>").await;
        let got = bob.drain();
        let req = find(&got, "alice@localhost", "subscribe").expect("redelivered");
        let preauth = req
            .element()
            .children()
            .find(|c| c.name() == "preauth")
            .unwrap();
        assert_eq!(preauth.attr("token"), Some("1tMFqYDdKhfe2pwp"));
        bob.drop_connection().await;
    }

    // Denying it forgets it.
    let mut bob = h.connect("bob@localhost/b").await;
    bob.send("<presence to='alice@localhost' type='unsubscribed'/>")
        .await;
    bob.send("<presence/>").await;
    assert!(find(&bob.drain(), "alice@localhost", "subscribe").is_none());
}

/// A request to an account that does not exist is answered with `unsubscribed` (§8.5.1).
#[tokio::test]
async fn request_to_missing_account_is_refused() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("alice").await;
    let mut alice = h.connect("alice@localhost/a").await;
    alice.send("<presence/>").await;
    alice.roster().await;
    alice
        .send("<presence to='ghost@localhost' type='subscribe'/>")
        .await;
    let got = alice.drain();
    assert!(find(&got, "ghost@localhost", "unsubscribed").is_some());
    // The refusal reached the interested resource and cleared the pending request.
    let last = pushes(&got).last().cloned().cloned().unwrap();
    assert_eq!(last.attr("ask"), None);
}

/// Regression: pending requests had no cap, so requests from ever new JIDs grew one account's
/// storage without bound. At the cap a new request is dropped; the waiting ones stay.
#[tokio::test]
async fn pending_requests_are_capped_per_account() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("alice").await;
    h.account("bob").await;
    let roster = &h.server.stores().roster;
    for i in 0..super::subscription::MAX_PENDING_IN {
        let from = format!("fan{i}@elsewhere.example");
        roster
            .put_pending_in("bob", "localhost", &from, &format!("<presence xmlns='jabber:client' type='subscribe' from='{from}' to='bob@localhost'/>"))
            .await
            .unwrap();
    }
    let mut bob = h.connect("bob@localhost/b").await;
    let alice = h.connect("alice@localhost/a").await;
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    assert!(
        !roster
            .has_pending_in("bob", "localhost", "alice@localhost")
            .await
            .unwrap()
    );
    assert!(find(&bob.drain(), "alice@localhost", "subscribe").is_none());
    assert_eq!(
        roster.pending_in("bob", "localhost").await.unwrap().len(),
        super::subscription::MAX_PENDING_IN
    );
}

/// Two users asking each other at the same moment: each one's row for the other is written by
/// two tasks (the user's own outbound `subscribe` and the contact's inbound one). The presence
/// benchmark saw such rosters not completing; this checks the server side completes them (it
/// does: the benchmark's stall was not reproduced here, see the session notes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_mutual_requests_both_complete() {
    let h = Harness::new(crate::presence::test_modules()).await;
    let mut pairs = Vec::new();
    for i in 0..12 {
        h.account(&format!("a{i}")).await;
        h.account(&format!("b{i}")).await;
        let a = h.connect(&format!("a{i}@localhost/r")).await;
        let b = h.connect(&format!("b{i}@localhost/r")).await;
        a.send("<presence/>").await;
        b.send("<presence/>").await;
        pairs.push((i, a, b));
    }
    // Every pair asks each other at once, from two tasks.
    let mut tasks = Vec::new();
    for (i, a, b) in pairs.drain(..) {
        tasks.push(tokio::spawn(async move {
            let (ra, rb) = (format!("b{i}@localhost"), format!("a{i}@localhost"));
            let sa = format!("<presence to='{ra}' type='subscribe'/>");
            let sb = format!("<presence to='{rb}' type='subscribe'/>");
            tokio::join!(a.send(&sa), b.send(&sb));
            (i, a, b)
        }));
    }
    for t in tasks {
        pairs.push(t.await.unwrap());
    }
    // Both approve; both rosters must end in 'both'.
    for (i, a, b) in &pairs {
        a.send(&format!(
            "<presence to='b{i}@localhost' type='subscribed'/>"
        ))
        .await;
        b.send(&format!(
            "<presence to='a{i}@localhost' type='subscribed'/>"
        ))
        .await;
    }
    for (i, a, b) in &mut pairs {
        for (c, other) in [
            (&mut *a, format!("b{i}@localhost")),
            (&mut *b, format!("a{i}@localhost")),
        ] {
            let r = c.roster().await;
            let q = r.iq_payload().unwrap();
            let item = q
                .children()
                .find(|it| it.attr("jid") == Some(other.as_str()))
                .unwrap_or_else(|| panic!("{} has no item for {other}", c.jid()));
            assert_eq!(
                item.attr("subscription"),
                Some("both"),
                "{} -> {other}: {}",
                c.jid(),
                item.to_xml()
            );
        }
    }
}
