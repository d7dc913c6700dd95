//! XEP-0191 tests against a real server: commands, pushes, presence, and both filters.

use super::{list_matches, match_forms};
use rookery_proto::ns;
use rookery_proto::stanza::Jid;
use rookery_store::Subscription;
use rookery_testkit::{Client, Harness, error_condition, stanza};
use std::collections::HashSet;

fn items(st: &rookery_proto::stanza::Stanza, name: &str) -> Vec<String> {
    let el = st
        .iq_payload()
        .filter(|p| p.is(name, ns::BLOCKING))
        .unwrap_or_else(|| panic!("no <{name}/> in {}", st.element().to_xml()));
    el.children()
        .filter_map(|c| c.attr("jid").map(str::to_owned))
        .collect()
}

async fn block(c: &mut Client, jid: &str) {
    c.send(&format!(
        "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='{jid}'/></block></iq>"
    ))
    .await;
    c.recv_result("b");
}

#[test]
fn matching_covers_full_bare_and_domain_forms() {
    let list: HashSet<String> = ["a@x.example/r", "b@x.example", "y.example", "z.example/r"]
        .into_iter()
        .map(String::from)
        .collect();
    let m = |s: &str| list_matches(&list, &Jid::new(s).unwrap());
    assert!(m("a@x.example/r"));
    assert!(!m("a@x.example/other"));
    assert!(!m("a@x.example"));
    assert!(m("b@x.example"));
    assert!(m("b@x.example/any"));
    assert!(m("y.example"));
    assert!(m("anyone@y.example/r"));
    assert!(m("z.example/r"));
    assert!(m("user@z.example/r"));
    assert!(!m("user@z.example/s"));
    assert!(!m("x.example"));
    assert!(!m("sub.y.example"));
    assert_eq!(
        match_forms(&Jid::new("x.example").unwrap()),
        vec!["x.example"]
    );
}

#[tokio::test]
async fn blocklist_get_block_unblock_with_pushes() {
    let h = Harness::new(crate::iq_modules()).await;
    let mut a = h.login("romeo", "a").await;
    let mut b = h.login("romeo", "b").await;
    a.send("<iq type='get' id='l'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    assert!(items(&a.recv_result("l"), "blocklist").is_empty());

    // Resource b never asked for the list: it gets no pushes (§3.3).
    b.send(
        "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'>\
        <item jid='Juliet@Localhost'/><item jid='evil.example'/></block></iq>",
    )
    .await;
    b.recv_result("b1");
    b.assert_silent();
    let push = a.recv();
    assert_eq!(push.type_attr(), "set");
    assert_eq!(push.from().map(|f| f.as_str()), Some("romeo@localhost"));
    assert_eq!(
        items(&push, "block"),
        vec!["juliet@localhost", "evil.example"]
    );

    a.send("<iq type='get' id='l2'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    assert_eq!(
        items(&a.recv_result("l2"), "blocklist"),
        vec!["evil.example", "juliet@localhost"]
    );

    b.send("<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'><item jid='evil.example'/></unblock></iq>")
        .await;
    b.recv_result("u1");
    assert_eq!(items(&a.recv(), "unblock"), vec!["evil.example"]);

    a.send("<iq type='set' id='u2'><unblock xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    // The push to a itself comes before the result (pushes are sent while handling).
    let push = a.recv();
    assert!(items(&push, "unblock").is_empty());
    a.recv_result("u2");
    a.send("<iq type='get' id='l3'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    assert!(items(&a.recv_result("l3"), "blocklist").is_empty());
}

#[tokio::test]
async fn bad_commands_are_refused() {
    let h = Harness::new(crate::iq_modules()).await;
    h.account("juliet").await;
    let mut a = h.login("romeo", "a").await;
    a.send("<iq type='set' id='e'><block xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    a.recv_error("e", "bad-request");
    a.send(
        "<iq type='set' id='m'><block xmlns='urn:xmpp:blocking'><item jid='a@@b'/></block></iq>",
    )
    .await;
    a.recv_error("m", "jid-malformed");
    a.send(
        "<iq type='get' id='o' to='juliet@localhost'><blocklist xmlns='urn:xmpp:blocking'/></iq>",
    )
    .await;
    a.recv_error("o", "forbidden");
    let many: String = (0..=super::MAX_ITEMS)
        .map(|i| format!("<item jid='u{i}@spam.example'/>"))
        .collect();
    a.send(&format!(
        "<iq type='set' id='x'><block xmlns='urn:xmpp:blocking'>{many}</block></iq>"
    ))
    .await;
    a.recv_error("x", "policy-violation");
}

#[tokio::test]
async fn outbound_to_blocked_jid_is_refused() {
    // blocking.scs: "Can't talk anymore".
    let h = Harness::new(crate::iq_modules()).await;
    let mut r = h.login("romeo", "a").await;
    let mut j = h.login("juliet", "a").await;
    j.make_available();
    block(&mut r, "juliet@localhost").await;

    r.send("<message type='chat' to='juliet@localhost' id='m1'><body>hello?</body></message>")
        .await;
    let err = r.recv();
    assert_eq!(err.type_attr(), "error");
    assert_eq!(err.from().map(|f| f.as_str()), Some("juliet@localhost"));
    assert_eq!(error_condition(&err).as_deref(), Some("not-acceptable"));
    let e = err.element().get_child("error", ns::CLIENT).unwrap();
    assert_eq!(e.attr("type"), Some("cancel"));
    assert!(e.get_child("blocked", ns::BLOCKING_ERRORS).is_some());

    // A full JID of a blocked bare JID is covered too; iqs are refused the same way.
    r.send("<iq type='get' id='i1' to='juliet@localhost/a'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    r.recv_error("i1", "not-acceptable");
    r.send("<presence type='subscribe' to='juliet@localhost'/>")
        .await;
    r.assert_silent();
    j.assert_silent();
}

#[tokio::test]
async fn inbound_from_blocked_jid_is_dropped_or_bounced() {
    let h = Harness::new(crate::iq_modules()).await;
    let mut r = h.login("romeo", "a").await;
    r.make_available();
    let mut j = h.login("juliet", "a").await;
    block(&mut r, "juliet@localhost").await;

    // blocking.scs: Juliet's message bounces with service-unavailable from Romeo's bare JID.
    j.send("<message type='chat' to='romeo@localhost' id='m'/>")
        .await;
    let err = j.recv();
    assert_eq!(err.type_attr(), "error");
    assert_eq!(err.from().map(|f| f.as_str()), Some("romeo@localhost"));
    assert_eq!(
        error_condition(&err).as_deref(),
        Some("service-unavailable")
    );
    // Iq get/set: service-unavailable, to the bare or a full JID.
    j.send("<iq type='get' id='p1' to='romeo@localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    j.recv_error("p1", "service-unavailable");
    j.send("<iq type='get' id='p2' to='romeo@localhost/a'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    j.recv_error("p2", "service-unavailable");
    // Presence and iq results: dropped without a word.
    j.send("<presence to='romeo@localhost'/>").await;
    j.send("<presence type='subscribe' to='romeo@localhost'/>")
        .await;
    j.send("<iq type='result' id='r' to='romeo@localhost/a'/>")
        .await;
    j.assert_silent();
    r.assert_silent();

    // A domain block covers every user of it.
    let mut o = h.login("other", "x").await;
    block(&mut o, "localhost").await;
    j.send("<message type='chat' to='other@localhost/x' id='d'/>")
        .await;
    assert_eq!(
        error_condition(&j.recv()).as_deref(),
        Some("service-unavailable")
    );
    o.assert_silent();
}

#[tokio::test]
async fn blocking_sends_unavailable_and_unblocking_current_presence() {
    // blocking.scs: Juliet sees Romeo go offline, then come back.
    let h = Harness::new(crate::iq_modules()).await;
    let mut r = h.login("romeo", "a").await;
    r.make_available();
    let mut j = h.login("juliet", "a").await;
    j.make_available();
    let mut n = h.login("nosy", "a").await;
    n.make_available();
    h.roster_put(&h.bare("romeo"), &h.bare("juliet"), Subscription::Both)
        .await;
    // Nosy is not subscribed to Romeo: blocking it sends nothing.
    r.send(
        "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'>\
        <item jid='juliet@localhost'/><item jid='nosy@localhost'/></block></iq>",
    )
    .await;
    r.recv_result("b");
    let p = j.recv();
    assert_eq!(p.type_attr(), "unavailable");
    assert_eq!(p.from().map(|f| f.as_str()), Some("romeo@localhost/a"));
    assert_eq!(p.to().map(|t| t.as_str()), Some("juliet@localhost"));
    n.assert_silent();

    // The presence module's broadcasts (routed, not sent through `outbound`) are held back.
    let mut bcast = stanza("<presence from='romeo@localhost/a' to='juliet@localhost'/>");
    h.server.route(bcast.clone()).await;
    j.assert_silent();
    bcast.set_to(Some(Jid::new("nosy@localhost").unwrap()));
    h.server.route(bcast).await;
    n.assert_silent();

    r.send("<iq type='set' id='u'><unblock xmlns='urn:xmpp:blocking'><item jid='juliet@localhost'/></unblock></iq>")
        .await;
    r.recv_result("u");
    let p = j.recv();
    assert_eq!(p.type_attr(), "");
    assert_eq!(p.from().map(|f| f.as_str()), Some("romeo@localhost/a"));
    assert_eq!(
        p.element()
            .get_child("status", ns::CLIENT)
            .map(|s| s.text())
            .as_deref(),
        Some("here")
    );
    // Talking works again.
    r.send("<message type='chat' to='juliet@localhost' id='ok'><body>hello!</body></message>")
        .await;
    assert_eq!(j.recv().type_attr(), "chat");
    n.assert_silent();
}

#[tokio::test]
async fn blocklist_survives_logout_and_cache_is_dropped() {
    let h = Harness::new(crate::iq_modules()).await;
    let mut r = h.login("romeo", "a").await;
    block(&mut r, "juliet@localhost").await;
    r.logout().await;
    // Romeo offline: the check reads the store.
    let mut j = h.login("juliet", "a").await;
    j.send("<message type='chat' to='romeo@localhost' id='m'/>")
        .await;
    assert_eq!(
        error_condition(&j.recv()).as_deref(),
        Some("service-unavailable")
    );
    let mut r = h.login("romeo", "b").await;
    r.send("<iq type='get' id='l'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    assert_eq!(
        items(&r.recv_result("l"), "blocklist"),
        vec!["juliet@localhost"]
    );
}

/// Regression: iqs were dispatched without passing the inbound hooks, so a remote sender the
/// user blocked could still reach the user's resources with iqs (only local senders were
/// caught, on their way out).
#[tokio::test]
async fn iq_from_a_blocked_remote_sender_is_stopped() {
    let h = Harness::new(crate::iq_modules()).await;
    let mut r = h.login("romeo", "a").await;
    r.make_available();
    block(&mut r, "evil.example").await;
    // As the s2s inbound stream would hand it over: routed, `from` a remote domain.
    let mut iq =
        stanza("<iq type='get' id='x' to='romeo@localhost/a'><ping xmlns='urn:xmpp:ping'/></iq>");
    iq.set_from(Some(Jid::new("mallory@evil.example/x").unwrap()));
    h.server.route(iq).await;
    let mut ok = stanza("<message type='chat' to='romeo@localhost/a' id='ok'/>");
    ok.set_from(Some(Jid::new("friend@good.example/x").unwrap()));
    h.server.route(ok).await;
    // Delivery is in order: the first thing Romeo gets is the unblocked message.
    let first = r.recv();
    assert_eq!(first.id(), Some("ok"), "got {}", first.element().to_xml());
}
