//! Roster module tests against a real server (rookery-testkit's `Harness`): RFC 6121 §2 get/set/
//! remove with pushes, the §2.3.3 error cases, and XEP-0237 versioning.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic reports a failed expectation

use rookery_proto::ns;
use rookery_proto::stanza::{Kind, Stanza};
use rookery_testkit::{Harness, pushes};

fn error_condition(st: &Stanza) -> String {
    let err = st
        .element()
        .get_child("error", ns::CLIENT)
        .expect("error child");
    err.children().next().unwrap().name().to_owned()
}

#[tokio::test]
async fn empty_roster_has_a_version() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("romeo").await;
    let mut romeo = h.connect("romeo@localhost/a").await;
    let res = romeo.roster().await;
    assert_eq!(res.type_attr(), "result");
    let q = res.iq_payload().unwrap();
    assert!(q.is("query", ns::ROSTER));
    assert_eq!(q.attr("ver"), Some("0"));
    assert_eq!(q.children().count(), 0);
}

#[tokio::test]
async fn set_replies_first_then_pushes_to_interested_resources_only() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("romeo").await;
    let mut a = h.connect("romeo@localhost/a").await;
    let mut b = h.connect("romeo@localhost/b").await;
    let mut c = h.connect("romeo@localhost/c").await;
    a.roster().await;
    b.roster().await;
    a.send(
        "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='nurse@localhost' \
         name='Nurse' subscription='both' ask='subscribe'><group>Servants</group></item></query></iq>",
    )
    .await;
    let got = a.drain();
    // scansion basic_roster.scs: the result, then the push.
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id(), Some("s1"));
    assert_eq!(got[0].type_attr(), "result");
    assert_eq!(got[1].type_attr(), "set");
    assert_eq!(got[1].to().unwrap().as_str(), "romeo@localhost/a");
    let q = got[1].iq_payload().unwrap();
    assert_eq!(q.attr("ver"), Some("1"));
    let item = q.get_child("item", ns::ROSTER).unwrap();
    assert_eq!(item.attr("jid"), Some("nurse@localhost"));
    assert_eq!(item.attr("name"), Some("Nurse"));
    // §2.1.5: the client cannot set subscription or ask.
    assert_eq!(item.attr("subscription"), Some("none"));
    assert_eq!(item.attr("ask"), None);
    assert_eq!(
        item.get_child("group", ns::ROSTER).unwrap().text(),
        "Servants"
    );
    assert_eq!(pushes(&b.drain()).len(), 1);
    assert!(c.drain().is_empty(), "c never asked for the roster");

    let res = c.roster().await;
    let q = res.iq_payload().unwrap();
    assert_eq!(q.attr("ver"), Some("1"));
    let items: Vec<_> = q.children().collect();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].attr("name"), Some("Nurse"));

    // Removal: result, then a push with subscription='remove'.
    a.send(
        "<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='nurse@localhost' \
         subscription='remove'/></query></iq>",
    )
    .await;
    let got = a.drain();
    assert_eq!(got[0].id(), Some("s2"));
    let p = pushes(&got);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].attr("subscription"), Some("remove"));
    assert_eq!(c.roster().await.iq_payload().unwrap().children().count(), 0);
}

#[tokio::test]
async fn roster_versioning_xep_0237() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("romeo").await;
    let mut a = h.connect("romeo@localhost/a").await;
    for (i, jid) in ["x@localhost", "y@localhost", "z@localhost"]
        .iter()
        .enumerate()
    {
        a.send(&format!(
            "<iq type='set' id='s{i}'><query xmlns='jabber:iq:roster'><item jid='{jid}'/></query></iq>"
        ))
        .await;
    }
    a.drain();
    // Up to date: an empty result, no query, no pushes.
    a.send("<iq type='get' id='g1'><query xmlns='jabber:iq:roster' ver='3'/></iq>")
        .await;
    let got = a.drain();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].type_attr(), "result");
    assert!(got[0].iq_payload().is_none());
    // A known older version: empty result, then one push per change, oldest first.
    a.send("<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='1'/></iq>")
        .await;
    let got = a.drain();
    assert_eq!(got[0].id(), Some("g2"));
    assert!(got[0].iq_payload().is_none());
    let vers: Vec<_> = got[1..]
        .iter()
        .map(|s| s.iq_payload().unwrap().attr("ver").unwrap().to_owned())
        .collect();
    assert_eq!(vers, vec!["2".to_owned(), "3".to_owned()]);
    let p = pushes(&got);
    assert_eq!(p[0].attr("jid"), Some("y@localhost"));
    assert_eq!(p[1].attr("jid"), Some("z@localhost"));
    // Unknown versions (newer than ours, or not ours at all): the full roster.
    for ver in ["99", "abc", ""] {
        a.send(&format!(
            "<iq type='get' id='g3'><query xmlns='jabber:iq:roster' ver='{ver}'/></iq>"
        ))
        .await;
        let got = a.drain();
        assert_eq!(got.len(), 1);
        let q = got[0].iq_payload().unwrap();
        assert_eq!(q.attr("ver"), Some("3"));
        assert_eq!(q.children().count(), 3);
    }
}

#[tokio::test]
async fn error_cases() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("romeo").await;
    h.account("juliet").await;
    let mut a = h.connect("romeo@localhost/a").await;
    let cases = [
        // Somebody else's roster (§2.1.3): forbidden.
        (
            "<iq type='get' id='e' to='juliet@localhost'><query xmlns='jabber:iq:roster'/></iq>",
            "forbidden",
        ),
        (
            "<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='a@b'/>\
             <item jid='c@d'/></query></iq>",
            "bad-request",
        ),
        (
            "<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='a@b'>\
             <group>g</group><group>g</group></item></query></iq>",
            "bad-request",
        ),
        (
            "<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='a@b'>\
             <group></group></item></query></iq>",
            "not-acceptable",
        ),
        (
            "<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='@b'/></query></iq>",
            "jid-malformed",
        ),
        (
            "<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item \
             jid='romeo@localhost'/></query></iq>",
            "not-allowed",
        ),
        // §2.5.3: removing what is not there.
        (
            "<iq type='set' id='e'><query xmlns='jabber:iq:roster'><item jid='a@b' \
             subscription='remove'/></query></iq>",
            "item-not-found",
        ),
    ];
    for (xml, cond) in cases {
        a.send(xml).await;
        let got = a.drain();
        assert_eq!(got.len(), 1, "{xml}");
        assert_eq!(got[0].kind(), Kind::Iq);
        assert_eq!(got[0].type_attr(), "error", "{xml}");
        assert_eq!(error_condition(&got[0]), cond, "{xml}");
    }
}
