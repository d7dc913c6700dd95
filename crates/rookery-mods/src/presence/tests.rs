//! Availability presence against a real server: initial presence echo and broadcast, probes,
//! directed presence, and `unavailable` when a session ends (RFC 6121 §4).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic reports a failed expectation

use rookery_proto::stanza::Stanza;
use rookery_testkit::{Client, Harness, presences};

/// Makes `a` and `b` subscribed to each other (both ways) through the real subscription flow.
pub(crate) async fn befriend(a: &mut Client, b: &mut Client) {
    let (ja, jb) = (a.jid().to_bare(), b.jid().to_bare());
    a.send(&format!("<presence to='{jb}' type='subscribe'/>"))
        .await;
    b.send(&format!("<presence to='{ja}' type='subscribed'/>"))
        .await;
    b.send(&format!("<presence to='{ja}' type='subscribe'/>"))
        .await;
    a.send(&format!("<presence to='{jb}' type='subscribed'/>"))
        .await;
    a.drain();
    b.drain();
}

fn from_of(st: &Stanza) -> &str {
    st.from().map(|j| j.as_str()).unwrap_or("")
}

#[tokio::test]
async fn initial_presence_is_echoed_and_shared_with_own_resources() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("juliet").await;
    let mut laptop = h.connect("juliet@localhost/laptop").await;
    let mut phone = h.connect("juliet@localhost/phone").await;
    phone.send("<presence/>").await;
    // basic.scs: the sender gets its presence back.
    let got = phone.drain();
    assert_eq!(presences(&got).len(), 1);
    assert_eq!(from_of(&got[0]), "juliet@localhost/phone");
    // The laptop has not sent presence: it is not available and gets nothing.
    assert!(laptop.drain().is_empty());
    laptop
        .send("<presence><priority>-1</priority></presence>")
        .await;
    let got = phone.drain();
    assert_eq!(got.len(), 1);
    assert_eq!(from_of(&got[0]), "juliet@localhost/laptop");
    // The newly available laptop hears about the phone as well, after its own echo.
    let got = laptop.drain();
    let froms: Vec<_> = got.iter().map(from_of).collect();
    assert_eq!(
        froms,
        vec!["juliet@localhost/laptop", "juliet@localhost/phone"]
    );
    let entry = h.server.sessions().resource(laptop.jid()).unwrap();
    assert_eq!(entry.priority, -1);
    assert!(entry.available);
    // Out-of-range priorities clamp (RFC 6121 §4.7.2.3: −128..=127).
    laptop
        .send("<presence><priority>1000</priority></presence>")
        .await;
    let entry = h.server.sessions().resource(laptop.jid()).unwrap();
    assert_eq!(entry.priority, 127);
}

#[tokio::test]
async fn broadcast_reaches_subscribers_and_probes_bring_theirs() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("romeo").await;
    h.account("juliet").await;
    h.account("paris").await;
    let mut romeo = h.connect("romeo@localhost/r").await;
    let mut juliet = h.connect("juliet@localhost/j").await;
    let mut paris = h.connect("paris@localhost/p").await;
    befriend(&mut romeo, &mut juliet).await;
    juliet.send("<presence><show>away</show></presence>").await;
    juliet.drain();
    // Romeo comes online: his initial presence probes Juliet, whose server answers with her
    // last presence; Juliet gets Romeo's presence by broadcast.
    romeo.send("<presence/>").await;
    let got = romeo.drain();
    let from_juliet: Vec<_> = presences(&got)
        .into_iter()
        .filter(|s| from_of(s) == "juliet@localhost/j")
        .collect();
    assert_eq!(from_juliet.len(), 1);
    assert!(
        from_juliet[0]
            .element()
            .children()
            .any(|c| c.name() == "show")
    );
    // A stored presence says when it was sent (XEP-0203).
    let delay = from_juliet[0]
        .element()
        .get_child("delay", rookery_proto::ns::DELAY);
    assert_eq!(delay.and_then(|d| d.attr("from")), Some("localhost"));
    let got = juliet.drain();
    assert!(
        presences(&got)
            .iter()
            .any(|s| from_of(s) == "romeo@localhost/r")
    );
    // Paris is no contact: he gets nothing, and his probe is not answered.
    paris.send("<presence/>").await;
    paris.drain();
    assert!(
        romeo
            .drain()
            .iter()
            .all(|s| from_of(s) != "paris@localhost/p")
    );
    paris
        .send("<presence to='romeo@localhost' type='probe'/>")
        .await;
    assert!(paris.drain().is_empty(), "client probes are dropped");
    // A probe from Paris's server (as if forwarded) is not answered either.
    let el = rookery_xml::Element::parse(
        "<presence xmlns='jabber:client' type='probe' from='paris@localhost' to='romeo@localhost'/>",
    )
    .unwrap();
    h.server.route(Stanza::new(el).unwrap()).await;
    assert!(paris.drain().is_empty());
    // Juliet's server-side probe is answered with Romeo's presence.
    let el = rookery_xml::Element::parse(
        "<presence xmlns='jabber:client' type='probe' from='juliet@localhost' to='romeo@localhost'/>",
    )
    .unwrap();
    h.server.route(Stanza::new(el).unwrap()).await;
    let got = juliet.drain();
    assert_eq!(got.len(), 1);
    assert_eq!(from_of(&got[0]), "romeo@localhost/r");
}

#[tokio::test]
async fn unavailable_on_disconnect_reaches_subscribers_resources_and_directed() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("romeo").await;
    h.account("juliet").await;
    h.account("nurse").await;
    let mut romeo = h.connect("romeo@localhost/r").await;
    let mut romeo2 = h.connect("romeo@localhost/r2").await;
    let mut juliet = h.connect("juliet@localhost/j").await;
    let mut nurse = h.connect("nurse@localhost/n").await;
    befriend(&mut romeo, &mut juliet).await;
    juliet.send("<presence/>").await;
    romeo2.send("<presence/>").await;
    nurse.send("<presence/>").await;
    romeo.send("<presence/>").await;
    // Directed presence to a non-contact is remembered.
    romeo.send("<presence to='nurse@localhost/n'/>").await;
    let got = nurse.drain();
    assert!(
        presences(&got)
            .iter()
            .any(|s| from_of(s) == "romeo@localhost/r")
    );
    juliet.drain();
    romeo2.drain();
    romeo.drop_connection().await;
    for (client, who) in [
        (&mut juliet, "juliet"),
        (&mut romeo2, "romeo2"),
        (&mut nurse, "nurse"),
    ] {
        let got = client.drain();
        assert_eq!(got.len(), 1, "{who}: {got:?}");
        assert_eq!(got[0].type_attr(), "unavailable", "{who}");
        assert_eq!(from_of(&got[0]), "romeo@localhost/r", "{who}");
    }
}

#[tokio::test]
async fn explicit_unavailable_then_close_sends_once() {
    let h = Harness::new(crate::presence::test_modules()).await;
    h.account("romeo").await;
    h.account("juliet").await;
    let mut romeo = h.connect("romeo@localhost/r").await;
    let mut juliet = h.connect("juliet@localhost/j").await;
    befriend(&mut romeo, &mut juliet).await;
    juliet.send("<presence/>").await;
    romeo.send("<presence/>").await;
    juliet.drain();
    romeo.drain();
    romeo
        .send("<presence type='unavailable'><status>bye</status></presence>")
        .await;
    let got = juliet.drain();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].type_attr(), "unavailable");
    assert!(got[0].element().children().any(|c| c.name() == "status"));
    assert!(!h.server.sessions().resource(romeo.jid()).unwrap().available);
    // lastactivity.scs: the sender gets its unavailable presence echoed.
    let echo = romeo.drain();
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].type_attr(), "unavailable");
    assert_eq!(from_of(&echo[0]), "romeo@localhost/r");
    romeo.drop_connection().await;
    assert!(juliet.drain().is_empty());
}
