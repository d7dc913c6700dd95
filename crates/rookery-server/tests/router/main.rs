//! The jabberd2 router listener over real TCP: components written here log in with DIGEST-MD5
//! or SCRAM, bind names, exchange routes with each other and with Rookery's own users (bound
//! fake sessions whose mailboxes the tests read).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod federation;

use rookery_config::ListenerKind;
use rookery_proto::ns::SASL;
use rookery_server::Running;
use rookery_testkit::Client;
use rookery_testkit::net::router::{NS, RouterComponent, route};
use rookery_testkit::net::{Ev, TestServer, XmppStream, listen};
use rookery_xml::Element;
use std::net::SocketAddr;

const SECRET: &str = "router-secret";

struct Router {
    running: Running,
    _dir: tempfile::TempDir,
    addr: SocketAddr,
}

/// Starts Rookery serving `localhost` with a router listener and three users: `jabberd`
/// (binds anything), `s2s` (may also take the default route), `narrow` (own name only).
async fn start() -> Router {
    start_with("").await
}

/// Like `start`, with more configuration (whole sections, e.g. `[router]` or `[limits]`).
async fn start_with(extra: &str) -> Router {
    let TestServer { running, dir } = TestServer::start(&format!(
        "[server]\ndata_dir = \"data\"\n[s2s]\nenabled = false\n{extra}\n\
         [[host]]\ndomain = \"localhost\"\n{}\
         [[router.user]]\nname = \"jabberd\"\nsecret = \"{SECRET}\"\n\
         [[router.user]]\nname = \"s2s\"\nsecret = \"{SECRET}\"\ndefault_route = true\n\
         [[router.user]]\nname = \"narrow\"\nsecret = \"{SECRET}\"\nbind_any = false\n",
        listen("router")
    ))
    .await;
    let addr = running.addr(ListenerKind::Router).unwrap();
    Router {
        running,
        _dir: dir,
        addr,
    }
}

fn msg(from: &str, to: &str, id: &str) -> String {
    format!(
        "<message xmlns='jabber:client' from='{from}' to='{to}' id='{id}'><body>{id}</body></message>"
    )
}

fn inner_id(route: &Element) -> String {
    route
        .children()
        .next()
        .and_then(|m| m.attr("id"))
        .unwrap_or_default()
        .to_owned()
}

// 1. SASL success and failure; packets before auth are ignored.
#[tokio::test]
async fn digest_md5_and_scram_log_in_wrong_secrets_fail_and_preauth_packets_are_ignored() {
    let r = start().await;
    let mut c = RouterComponent::connect(r.addr).await;
    let mechs = c.mechanisms();
    assert!(mechs.contains(&"DIGEST-MD5".to_owned()), "{mechs:?}");
    assert!(mechs.contains(&"SCRAM-SHA-1".to_owned()), "{mechs:?}");
    assert!(
        c.features
            .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
            .is_some(),
        "STARTTLS offered on plaintext"
    );
    // A bind before authentication is dropped without a reply.
    c.raw(&format!("<bind xmlns='{NS}' name='early.test'/>"))
        .await;
    assert!(!c.digest_md5("jabberd", "wrong-secret").await);
    assert!(!c.digest_md5("nobody", SECRET).await, "unknown user");
    assert!(c.digest_md5("jabberd", SECRET).await);
    // The first element after the open stream is the reply to this bind, not the early one.
    let b = c.bind("name='late.test'/>").await;
    assert_eq!(b.attr("error"), None, "{}", b.to_xml());

    let mut s = RouterComponent::connect(r.addr).await;
    assert!(!s.scram_sha1("jabberd", "wrong-secret").await);
    assert!(s.scram_sha1("jabberd", SECRET).await);
    assert_eq!(s.bind("name='scram.test'/>").await.attr("error"), None);
}

#[tokio::test]
async fn starttls_then_digest_md5_opens_an_encrypted_link() {
    let r = start().await;
    let mut c = RouterComponent::connect(r.addr).await;
    c.starttls().await;
    assert!(
        c.features
            .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
            .is_none(),
        "no second STARTTLS: {}",
        c.features.to_xml()
    );
    assert!(c.mechanisms().contains(&"DIGEST-MD5".to_owned()));
    assert!(c.digest_md5("jabberd", SECRET).await);
    assert_eq!(c.bind("name='tls.test'/>").await.attr("error"), None);
}

#[tokio::test]
async fn require_tls_offers_sasl_only_after_starttls() {
    let r = start_with("[router]\nrequire_tls = true").await;
    let mut c = RouterComponent::connect(r.addr).await;
    assert!(c.mechanisms().is_empty(), "{}", c.features.to_xml());
    c.raw(&format!("<auth xmlns='{SASL}' mechanism='DIGEST-MD5'/>"))
        .await;
    let f = c.next_named("failure", 5).await;
    assert!(
        f.get_child("encryption-required", SASL).is_some(),
        "{}",
        f.to_xml()
    );
    c.starttls().await;
    assert!(c.mechanisms().contains(&"DIGEST-MD5".to_owned()));
    assert!(c.digest_md5("jabberd", SECRET).await);
}

#[tokio::test]
async fn unauthenticated_links_are_capped_per_address_until_they_log_in() {
    let r = start_with("[limits]\nunauth_per_ip = 2").await;
    let mut first = RouterComponent::connect(r.addr).await;
    let _second = RouterComponent::connect(r.addr).await;
    // The third is closed before any byte is read.
    let mut third = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut third, &mut buf),
    )
    .await
    .expect("closed within 5 s")
    .unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    // Logging in frees the slot.
    assert!(first.digest_md5("jabberd", SECRET).await);
    let mut fourth = RouterComponent::connect(r.addr).await;
    assert!(fourth.digest_md5("jabberd", SECRET).await);
}

#[tokio::test]
async fn legacy_xep0114_headers_are_sent_to_a_component_listener() {
    let r = start().await;
    let tcp = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    let mut s = XmppStream::new(tcp, rookery_xml::Limits::default(), NS);
    s.queue_raw(
        b"<stream:stream xmlns='jabber:component:accept' \
          xmlns:stream='http://etherx.jabber.org/streams' to='legacy.test'>",
    );
    s.flush().await.unwrap();
    let mut cond = None;
    loop {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(5), s.next_event())
            .await
            .expect("an answer within 5 s");
        match ev {
            Ok(rookery_xml::StreamEvent::Stanza(e)) if e.name() == "error" => {
                cond = e.children().next().map(|c| c.name().to_owned());
            }
            Ok(rookery_xml::StreamEvent::Open(_)) | Ok(rookery_xml::StreamEvent::Stanza(_)) => {}
            Ok(rookery_xml::StreamEvent::Close) | Err(_) => break,
        }
    }
    assert_eq!(cond.as_deref(), Some("invalid-namespace"));
}

#[tokio::test]
async fn three_failed_logins_close_the_connection() {
    let r = start().await;
    let mut c = RouterComponent::connect(r.addr).await;
    for _ in 0..2 {
        assert!(!c.digest_md5("jabberd", "wrong-secret").await);
    }
    // The third failure, of whatever kind, ends the stream.
    c.raw(&format!("<auth xmlns='{SASL}' mechanism='DIGEST-MD5'/>"))
        .await;
    let _challenge = c.next_named("challenge", 5).await;
    c.raw(&format!("<response xmlns='{SASL}'>AAAA</response>"))
        .await;
    let _failure = c.next_named("failure", 5).await;
    let e = c.element(5).await;
    let cond = e.children().next().map(|c| c.name().to_owned());
    assert_eq!(
        (e.name(), cond.as_deref()),
        ("error", Some("policy-violation"))
    );
    assert!(matches!(c.next(5).await, Ev::End));
}

/// Only secrets checked and found wrong count in the brute-force throttle: unknown mechanisms,
/// aborts and unusable responses do not, however many (docs/decisions/0008).
#[tokio::test]
async fn only_wrong_secrets_count_against_the_throttle() {
    let r = start_with("[limits]\nauth_failures_per_ip = 1\nauth_ban_threshold = 2\n").await;
    let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    for _ in 0..3 {
        let mut c = RouterComponent::connect(r.addr).await;
        c.raw(&format!("<auth xmlns='{SASL}' mechanism='CRAM-MD5'/>"))
            .await;
        let f = c.next_named("failure", 5).await;
        assert!(
            f.get_child("invalid-mechanism", SASL).is_some(),
            "{}",
            f.to_xml()
        );
        c.raw(&format!("<auth xmlns='{SASL}' mechanism='DIGEST-MD5'/>"))
            .await;
        let _challenge = c.next_named("challenge", 5).await;
        c.raw(&format!("<abort xmlns='{SASL}'/>")).await;
        let f = c.next_named("failure", 5).await;
        assert!(f.get_child("aborted", SASL).is_some(), "{}", f.to_xml());
        c.raw(&format!("<auth xmlns='{SASL}' mechanism='DIGEST-MD5'/>"))
            .await;
        let _challenge = c.next_named("challenge", 5).await;
        c.raw(&format!("<response xmlns='{SASL}'>AAAA</response>"))
            .await;
        let f = c.next_named("failure", 5).await;
        assert!(
            f.get_child("not-authorized", SASL).is_none(),
            "{}",
            f.to_xml()
        );
    }
    let throttle = r.running.server.throttle();
    assert!(!throttle.is_banned(ip, std::time::Instant::now()));
    let _ok = RouterComponent::login(r.addr, "jabberd", SECRET).await;
    // Wrong secrets do count: the second bans the address.
    let mut c = RouterComponent::connect(r.addr).await;
    assert!(!c.digest_md5("jabberd", "wrong-secret").await);
    assert!(!c.digest_md5("jabberd", "wrong-secret").await);
    assert!(throttle.is_banned(ip, std::time::Instant::now()));
}

// 2. Announcements: once per connection; a newcomer learns every existing name.
#[tokio::test]
async fn bind_is_announced_once_per_connection_and_newcomers_learn_every_name() {
    let r = start().await;
    let mut b = RouterComponent::bound(r.addr, "jabberd", SECRET, "b1.test").await;
    let got = b.drain().await;
    assert_eq!(
        RouterComponent::announcements(&got),
        vec!["localhost"],
        "Rookery's own host"
    );
    assert_eq!(b.bind("name='b2.test'/>").await.attr("error"), None);
    assert!(
        b.drain().await.is_empty(),
        "the full list comes once per connection"
    );

    let mut a = RouterComponent::bound(r.addr, "jabberd", SECRET, "a1.test").await;
    let mut learnt = RouterComponent::announcements(&a.drain().await);
    learnt.sort();
    assert_eq!(learnt, vec!["b1.test", "b2.test", "localhost"]);
    assert_eq!(
        RouterComponent::announcements(&b.drain().await),
        vec!["a1.test"]
    );
    assert_eq!(a.bind("name='a2.test'/>").await.attr("error"), None);
    assert_eq!(
        RouterComponent::announcements(&b.drain().await),
        vec!["a2.test"]
    );
    assert!(a.drain().await.is_empty(), "no echo of its own names");
}

// 3. Bind refusals.
#[tokio::test]
async fn bind_refusals_use_jabberd2_codes() {
    let r = start().await;
    let mut a = RouterComponent::bound(r.addr, "jabberd", SECRET, "taken.test").await;
    let mut b = RouterComponent::login(r.addr, "jabberd", SECRET).await;
    let e = b.bind("name='taken.test'/>").await;
    assert_eq!((e.attr("error"), e.attr("name")), (Some("409"), None));
    assert_eq!(
        b.bind("name='localhost'/>").await.attr("error"),
        Some("409")
    );
    let e = b.bind("/>").await;
    assert_eq!(e.attr("error"), Some("400"));
    let e = b.bind("name='not a name'/>").await;
    assert_eq!(
        (e.attr("error"), e.attr("name")),
        (Some("400"), Some("not a name"))
    );
    assert_eq!(
        b.bind("name='dflt.test'><default/></bind>")
            .await
            .attr("error"),
        Some("403"),
        "jabberd may not take the default route"
    );
    assert_eq!(
        b.bind("name='log.test'><log/></bind>").await.attr("error"),
        Some("403")
    );
    assert_eq!(
        a.bind("name='taken.test'/>").await.attr("error"),
        Some("409"),
        "twice"
    );

    let mut n = RouterComponent::login(r.addr, "narrow", SECRET).await;
    assert_eq!(
        n.bind("name='other.test'/>").await.attr("error"),
        Some("403")
    );
    assert_eq!(
        n.bind("name='narrow'/>").await.attr("error"),
        None,
        "its own name"
    );

    let mut s1 = RouterComponent::login(r.addr, "s2s", SECRET).await;
    assert_eq!(
        s1.bind("name='s2s'><default/></bind>").await.attr("error"),
        None
    );
    let mut s2 = RouterComponent::login(r.addr, "s2s", SECRET).await;
    assert_eq!(
        s2.bind("name='s2s-two'><default/></bind>")
            .await
            .attr("error"),
        Some("409"),
        "default route twice"
    );
}

// 4. Unbind.
#[tokio::test]
async fn unbind_unknown_is_404_and_the_last_holder_leaving_is_announced() {
    let r = start().await;
    let mut a = RouterComponent::bound(r.addr, "jabberd", SECRET, "a.test").await;
    let mut b = RouterComponent::bound(r.addr, "jabberd", SECRET, "b.test").await;
    let _ = a.drain().await;
    let _ = b.drain().await;
    a.raw(&format!("<unbind xmlns='{NS}' name='b.test'/>"))
        .await;
    let e = a.next_named("unbind", 5).await;
    assert_eq!(e.attr("error"), Some("404"), "not a's name");
    a.raw(&format!("<unbind xmlns='{NS}'/>")).await;
    assert_eq!(a.next_named("unbind", 5).await.attr("error"), Some("400"));
    a.raw(&format!("<unbind xmlns='{NS}' name='a.test'/>"))
        .await;
    let ok = a.next_named("unbind", 5).await;
    assert_eq!((ok.attr("error"), ok.attr("name")), (None, None));
    assert_eq!(
        RouterComponent::announcements(&b.drain().await),
        vec!["a.test/unavailable"]
    );
    // And a disconnect releases everything it held.
    drop(b);
    let mut gone = Vec::new();
    while gone.is_empty() {
        gone = RouterComponent::announcements(&a.drain().await);
    }
    assert_eq!(gone, vec!["b.test/unavailable"]);
    // The name is free again.
    assert_eq!(a.bind("name='b.test'/>").await.attr("error"), None);
}

// 5. Unicast: bound name, unknown name with and without default route, default-route loop.
#[tokio::test]
async fn unicast_to_bound_unknown_and_default_routes() {
    let r = start().await;
    let mut a = RouterComponent::bound(r.addr, "jabberd", SECRET, "a.test").await;
    let mut b = RouterComponent::bound(r.addr, "jabberd", SECRET, "b.test").await;
    let _ = (a.drain().await, b.drain().await);
    let m = msg("x@a.test", "y@b.test", "m1");
    a.raw(&route("a.test", "b.test", &m)).await;
    let got = b.next_named("route", 5).await;
    assert_eq!(
        (got.attr("from"), got.attr("to")),
        (Some("a.test"), Some("b.test"))
    );
    assert_eq!(inner_id(&got), "m1", "forwarded as is");

    // No default route: Rookery is it. A stanza goes to its core, which would federate it;
    // federation is off here, so the stanza error comes back to the sender's name…
    a.raw(&route(
        "a.test",
        "nowhere.test",
        &msg("x@a.test", "y@nowhere.test", "n1"),
    ))
    .await;
    let e = a.next_named("route", 5).await;
    assert_eq!(
        (e.attr("from"), e.attr("to")),
        (Some("nowhere.test"), Some("a.test"))
    );
    let bounced = e.children().next().unwrap();
    assert_eq!(
        (bounced.attr("type"), bounced.attr("id")),
        (Some("error"), Some("n1"))
    );
    assert!(
        bounced.to_xml().contains("remote-server-not-found"),
        "{}",
        bounced.to_xml()
    );
    // …and a payload that is not a stanza is 404.
    let sess = "<session xmlns='http://jabberd.jabberstudio.org/ns/session/1.0' action='start'/>";
    a.raw(&route("a.test", "nowhere.test", sess)).await;
    assert_eq!(a.next_named("route", 5).await.attr("error"), Some("404"));

    // With a default route, the unbound name goes to its holder…
    let mut d = RouterComponent::login(r.addr, "s2s", SECRET).await;
    assert_eq!(
        d.bind("name='s2s'><default/></bind>").await.attr("error"),
        None
    );
    let _ = d.drain().await;
    a.raw(&route(
        "a.test",
        "remote.example",
        &msg("x@a.test", "z@remote.example", "m2"),
    ))
    .await;
    let got = d.next_named("route", 5).await;
    assert_eq!(
        (got.attr("to"), inner_id(&got).as_str()),
        (Some("remote.example"), "m2")
    );
    // …but the default route's own route to an unbound name is 404 (no s2s→s2s loop).
    d.raw(&route(
        "s2s",
        "elsewhere.example",
        &msg("p@elsewhere2.example", "q@elsewhere.example", "m3"),
    ))
    .await;
    assert_eq!(d.next_named("route", 5).await.attr("error"), Some("404"));
    // A route with missing to/from is 400.
    a.raw(&format!("<route xmlns='{NS}' from='a.test'>{m}</route>"))
        .await;
    assert_eq!(a.next_named("route", 5).await.attr("error"), Some("400"));
}

// 6. Forged from → 401; a route carrying an error is dropped.
#[tokio::test]
async fn forged_from_is_401_and_error_routes_are_dropped() {
    let r = start().await;
    let mut a = RouterComponent::bound(r.addr, "jabberd", SECRET, "a.test").await;
    let mut b = RouterComponent::bound(r.addr, "jabberd", SECRET, "b.test").await;
    let _ = (a.drain().await, b.drain().await);
    a.raw(&route(
        "b.test",
        "b.test",
        &msg("x@b.test", "y@b.test", "f1"),
    ))
    .await;
    let e = a.next_named("route", 5).await;
    assert_eq!(
        (e.attr("error"), inner_id(&e).as_str()),
        (Some("401"), "f1")
    );
    a.raw(&format!(
        "<route xmlns='{NS}' from='a.test' to='b.test' error='404'>{}</route>",
        msg("x@a.test", "y@b.test", "e1")
    ))
    .await;
    assert!(a.drain().await.is_empty(), "no bounce of a bounce");
    assert!(b.drain().await.is_empty(), "not forwarded either");
    // Unwrapping for Rookery: the stanza's own from must be a name the sender holds.
    let mut h = Client::available(&r.running.server, "alice@localhost/r").await;
    a.raw(&route(
        "a.test",
        "localhost",
        &msg("mallory@evil.test", "alice@localhost", "s1"),
    ))
    .await;
    let e = a.next_named("route", 5).await;
    assert_eq!(
        (e.attr("error"), inner_id(&e).as_str()),
        (Some("401"), "s1"),
        "the sender's own route comes back, payload included"
    );
    h.assert_silent();
}

// 7. Multi-bound names.
#[tokio::test]
async fn multi_bound_name_hashes_bare_jids_and_spreads_node_less_ones() {
    let r = start().await;
    let mut m1 = RouterComponent::bound(r.addr, "jabberd", SECRET, "m1.test").await;
    assert_eq!(
        m1.bind("name='multi.test' multi='to'/>")
            .await
            .attr("error"),
        None
    );
    let mut m2 = RouterComponent::bound(r.addr, "jabberd", SECRET, "m2.test").await;
    assert_eq!(
        m2.bind("name='multi.test' multi='to'/>")
            .await
            .attr("error"),
        None
    );
    let mut m3 = RouterComponent::login(r.addr, "jabberd", SECRET).await;
    assert_eq!(
        m3.bind("name='multi.test'/>").await.attr("error"),
        Some("409"),
        "single bind on a multi name"
    );
    let mut src = RouterComponent::bound(r.addr, "jabberd", SECRET, "src.test").await;
    let _ = (m1.drain().await, m2.drain().await, src.drain().await);
    for (i, res) in ["a", "b", "c", "a", "b"].iter().enumerate() {
        src.raw(&route(
            "src.test",
            "multi.test",
            &msg(
                "s@src.test",
                &format!("user7@multi.test/{res}"),
                &format!("h{i}"),
            ),
        ))
        .await;
    }
    for i in 0..20 {
        src.raw(&route(
            "src.test",
            "multi.test",
            &msg("s@src.test", "multi.test", &format!("n{i}")),
        ))
        .await;
    }
    let _ = src.drain().await;
    let ids = |els: Vec<Element>| -> Vec<String> { els.iter().map(inner_id).collect() };
    let (g1, g2) = (ids(m1.drain().await), ids(m2.drain().await));
    let hashed: Vec<&String> = g1
        .iter()
        .chain(&g2)
        .filter(|i| i.starts_with('h'))
        .collect();
    assert_eq!(hashed.len(), 5, "{g1:?} {g2:?}");
    let h_in_1 = g1.iter().filter(|i| i.starts_with('h')).count();
    assert!(
        h_in_1 == 0 || h_in_1 == 5,
        "one bare JID, one instance: {g1:?} {g2:?}"
    );
    let expect_first =
        rookery_net::router::multi_index(&"user7@multi.test".parse().unwrap(), 2).unwrap();
    assert_eq!(
        h_in_1 == 5,
        expect_first == 0,
        "the jabberd2 hash picks the instance"
    );
    let n1 = g1.iter().filter(|i| i.starts_with('n')).count();
    let n2 = g2.iter().filter(|i| i.starts_with('n')).count();
    assert_eq!(n1 + n2, 20);
    assert!(n1 > 0 && n2 > 0, "node-less JIDs spread: {n1} / {n2}");
}

// 8. Broadcast.
#[tokio::test]
async fn broadcast_reaches_every_other_connection_exactly_once() {
    let r = start().await;
    let mut a = RouterComponent::bound(r.addr, "jabberd", SECRET, "a.test").await;
    assert_eq!(a.bind("name='a2.test'/>").await.attr("error"), None);
    let mut b = RouterComponent::bound(r.addr, "jabberd", SECRET, "b.test").await;
    assert_eq!(b.bind("name='b2.test'/>").await.attr("error"), None);
    let mut c = RouterComponent::login(r.addr, "jabberd", SECRET).await;
    let _ = (a.drain().await, b.drain().await, c.drain().await);
    let bc = format!(
        "<route xmlns='{NS}' type='broadcast' from='a.test'>{}</route>",
        msg("x@a.test", "a.test", "bc1")
    );
    a.raw(&bc).await;
    let (ga, gb, gc) = (a.drain().await, b.drain().await, c.drain().await);
    assert!(ga.is_empty(), "not to the sender");
    assert_eq!(
        gb.iter().map(inner_id).collect::<Vec<_>>(),
        vec!["bc1"],
        "once, though b holds two names"
    );
    assert_eq!(
        gc.iter().map(inner_id).collect::<Vec<_>>(),
        vec!["bc1"],
        "even to a connection without names"
    );
    a.raw(&format!(
        "<route xmlns='{NS}' type='broadcast' from='b.test'/>"
    ))
    .await;
    assert_eq!(a.next_named("route", 5).await.attr("error"), Some("401"));
}

// 9. Throttle.
#[tokio::test]
async fn throttle_holds_routes_in_order_and_disconnect_bounces_them() {
    let r = start().await;
    let mut a = RouterComponent::bound(r.addr, "jabberd", SECRET, "a.test").await;
    let mut b = RouterComponent::bound(r.addr, "jabberd", SECRET, "b.test").await;
    let _ = (a.drain().await, b.drain().await);
    b.raw(&format!("<throttle xmlns='{NS}'/>")).await;
    b.next_named("throttle", 5).await;
    for i in 0..5 {
        a.raw(&route(
            "a.test",
            "b.test",
            &msg("x@a.test", "y@b.test", &format!("t{i}")),
        ))
        .await;
    }
    let _ = a.drain().await;
    assert!(b.drain().await.is_empty(), "held while throttled");
    b.raw(&format!("<throttle xmlns='{NS}'/>")).await;
    b.next_named("throttle", 5).await;
    let got: Vec<String> = b.drain().await.iter().map(inner_id).collect();
    assert_eq!(got, vec!["t0", "t1", "t2", "t3", "t4"]);

    // Throttled again, then gone: a's routes come back to a with error='503', and a Rookery
    // user's message is bounced in the core.
    b.raw(&format!("<throttle xmlns='{NS}'/>")).await;
    b.next_named("throttle", 5).await;
    a.raw(&route(
        "a.test",
        "b.test",
        &msg("x@a.test", "y@b.test", "q1"),
    ))
    .await;
    let mut h = Client::available(&r.running.server, "alice@localhost/r").await;
    h.send("<message xmlns='jabber:client' to='y@b.test' id='q2'><body>hi</body></message>")
        .await;
    let _ = a.drain().await;
    drop(b);
    let mut back = Vec::new();
    while back.is_empty() {
        back = a
            .drain()
            .await
            .into_iter()
            .filter(|e| e.name() == "route")
            .collect();
    }
    assert_eq!(
        (back[0].attr("error"), inner_id(&back[0]).as_str()),
        (Some("503"), "q1")
    );
    let err = h.expect_error(5, "service-unavailable", "cancel").await;
    assert_eq!(err.id(), Some("q2"));
}

#[tokio::test]
async fn a_throttled_connection_holds_at_most_a_mailbox_of_routes() {
    let r = start().await;
    let mut a = RouterComponent::bound(r.addr, "jabberd", SECRET, "a.test").await;
    let mut b = RouterComponent::bound(r.addr, "jabberd", SECRET, "b.test").await;
    let _ = (a.drain().await, b.drain().await);
    b.raw(&format!("<throttle xmlns='{NS}'/>")).await;
    b.next_named("throttle", 5).await;
    let cap = rookery_net::router::MAILBOX;
    let one = route("a.test", "b.test", &msg("x@a.test", "y@b.test", "o"));
    let mut burst = String::new();
    for _ in 0..cap + 3 {
        burst.push_str(&one);
    }
    a.raw(&burst).await;
    // b's actor drains its mailbox into the throttle queue; what doesn't fit comes back to a
    // (from the throttle queue, or from a full mailbox if b's actor fell behind).
    let count = |els: Vec<rookery_xml::Element>| -> usize {
        for e in &els {
            assert_eq!(e.attr("error"), Some("503"), "{}", e.to_xml());
        }
        els.len()
    };
    let mut bounced = 0;
    while bounced < 3 {
        bounced += count(a.drain().await);
    }
    b.raw(&format!("<throttle xmlns='{NS}'/>")).await;
    b.next_named("throttle", 5).await;
    // After b's barrier its actor has handled everything that was in its mailbox, so every
    // bounce is in a's mailbox before a's next barrier.
    let held = b.drain().await.len();
    bounced += count(a.drain().await);
    assert!(held <= cap, "at most a mailbox's worth is held: {held}");
    assert_eq!(
        held + bounced,
        cap + 3,
        "nothing lost: {held} held, {bounced} bounced"
    );
}

#[tokio::test]
async fn router_names_are_exact_and_subdomains_are_separate_names() {
    let r = start().await;
    let server = &r.running.server;
    let mut sm = RouterComponent::bound(r.addr, "jabberd", SECRET, "jd2.test").await;
    let _ = sm.drain().await;
    let mut h = Client::available(server, "alice@localhost/r").await;
    // Nobody holds muc.jd2.test: jabberd2's router would not give it to jd2.test's holder.
    h.send(
        "<message xmlns='jabber:client' to='room@muc.jd2.test' id='m1'><body>x</body></message>",
    )
    .await;
    let err = h.expect_error(5, "service-unavailable", "cancel").await;
    assert_eq!(err.id(), Some("m1"));
    assert!(
        sm.drain().await.is_empty(),
        "not delivered to jd2.test's holder"
    );
    // Another connection may bind the subdomain as a name of its own.
    let mut muc = RouterComponent::bound(r.addr, "jabberd", SECRET, "muc.jd2.test").await;
    let _ = muc.drain().await;
    h.send(
        "<message xmlns='jabber:client' to='room@muc.jd2.test' id='m2'><body>x</body></message>",
    )
    .await;
    let got = muc.next_named("route", 5).await;
    assert_eq!(
        (got.attr("to"), inner_id(&got).as_str()),
        (Some("muc.jd2.test"), "m2")
    );
}

// Rookery's users and router components, both ways.
#[tokio::test]
async fn rookery_users_and_router_domains_exchange_messages() {
    let r = start().await;
    let server = &r.running.server;
    let mut sm = RouterComponent::bound(r.addr, "jabberd", SECRET, "jd2.test").await;
    let _ = sm.drain().await;
    let mut h = Client::available(server, "alice@localhost/r").await;
    h.send("<message xmlns='jabber:client' to='bob@jd2.test' id='out1' type='chat'><body>hello bob</body></message>").await;
    let got = sm.next_named("route", 5).await;
    assert_eq!(
        (got.attr("from"), got.attr("to")),
        (Some("localhost"), Some("jd2.test"))
    );
    let m = got.children().next().unwrap();
    assert_eq!((m.name(), m.ns()), ("message", "jabber:client"));
    assert_eq!(m.attr("from"), Some("alice@localhost/r"));
    assert_eq!(m.attr("to"), Some("bob@jd2.test"));

    sm.raw(&route(
        "jd2.test",
        "localhost",
        &msg("bob@jd2.test/x", "alice@localhost/r", "in1"),
    ))
    .await;
    let st = h.next_non_presence(5).await;
    assert_eq!(st.id(), Some("in1"));
    assert_eq!(
        st.from().map(|f| f.to_string()).as_deref(),
        Some("bob@jd2.test/x")
    );
}

#[tokio::test]
async fn an_idle_link_gets_a_whitespace_keepalive() {
    let r = start_with("[router]\nkeepalive_secs = 1").await;
    let mut a = RouterComponent::bound(r.addr, "jabberd", SECRET, "a.test").await;
    let _ = a.drain().await;
    assert_eq!(a.stream.framer().buffered_len(), 0);
    // Below the framer (which skips whitespace between elements): the raw bytes.
    let mut io = a.stream.into_inner();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut io, &mut buf),
    )
    .await
    .expect("a keepalive within 5 s")
    .unwrap();
    assert_eq!(&buf[..n], b" ");
}

#[tokio::test]
async fn shutdown_sends_system_shutdown_to_router_links() {
    let r = start().await;
    let mut a = RouterComponent::bound(r.addr, "jabberd", SECRET, "a.test").await;
    let _ = a.drain().await;
    assert!(r.running.shutdown(std::time::Duration::from_secs(5)).await);
    let e = a.element(5).await;
    let cond = e.children().next().map(|c| c.name().to_owned());
    assert_eq!(
        (e.name(), cond.as_deref()),
        ("error", Some("system-shutdown"))
    );
}
