//! The server's connection-manager link listener over real TCP, with the CM's side of the link
//! spoken by hand: link header and handshake failures, the configuration IQ, session create /
//! close / failed IQs, routes, a full client login carried in routes, delivery after a link was
//! lost, heartbeats and the idle timeout, shutdown, and Rookery's link extension
//! (`urn:rookery:cm:0`: acks and resume).
#![allow(clippy::unwrap_used)]

use base64::Engine;
use rookery_config::ListenerKind;
use rookery_proto::ns;
use rookery_testkit::net::{Ev, LocalOpts, RawPeer, TestServer, c2s, raw_connect};
use rookery_testkit::{PASSWORD, wait_until};
use rookery_xml::Element;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const SECRET: &str = "cm-link-secret";

/// A server with a c2s and a cm listener; `cm` adds keys to `[cm]`, `extra` more sections.
async fn start(cm: &str, extra: &str) -> TestServer {
    TestServer::local_with(LocalOpts {
        listeners: vec!["c2s", "cm"],
        extra: format!("[cm]\nsecret = \"{SECRET}\"\n{cm}\n{extra}"),
        ..LocalOpts::default()
    })
    .await
}

fn cm_addr(s: &TestServer) -> SocketAddr {
    s.addr(ListenerKind::Cm)
}

/// The CM's end of one link, written by hand.
struct CmLink {
    p: RawPeer,
    /// The link's address (`name/resource`, the header's `to`).
    address: String,
    /// The server's stream id for this link (what `<resume previd>` names).
    id: String,
    /// Reliable elements received (everything but `urn:rookery:cm:0` elements): our `h`.
    got: u64,
    /// Reliable elements sent after the handshake: what the server's acks count.
    sent: u64,
    /// The latest `<a h/>` from the server.
    acked: u64,
}

impl CmLink {
    /// Sends the link header to `address` and reads the server's header and features.
    async fn open(addr: SocketAddr, address: &str) -> CmLink {
        let mut p = raw_connect(addr, ns::CM_LINK).await;
        p.stream
            .send_header(&[("to", address), ("version", "1.0")])
            .await
            .unwrap();
        let id = match p.next(5).await {
            Ev::Header(h) => {
                assert_eq!(h.attr("from"), Some(address), "header from");
                assert_eq!(h.default_ns.as_deref(), Some(ns::CM_LINK));
                h.attr("id").unwrap().to_owned()
            }
            other => panic!("expected a stream header, got {other:?}"),
        };
        match p.next(5).await {
            Ev::El(f) if f.is("features", ns::STREAM) => {}
            other => panic!("expected features, got {other:?}"),
        }
        CmLink {
            p,
            address: address.to_owned(),
            id,
            got: 0,
            sent: 0,
            acked: 0,
        }
    }

    /// Sends `<handshake>` with `digest` (not counted: the server counts from after it).
    async fn send_handshake(&mut self, digest: &str) {
        self.p
            .raw(&format!("<handshake>{digest}</handshake>"))
            .await;
    }

    fn digest(&self) -> String {
        // XEP-0114's digest, computed independently of the server's CM code.
        rookery_proto::component::handshake_digest(&self.id, SECRET)
    }

    /// A link that completed the handshake and received the configuration IQ (unanswered).
    async fn connect(addr: SocketAddr, address: &str) -> (CmLink, Element) {
        let mut l = CmLink::open(addr, address).await;
        let d = l.digest();
        l.send_handshake(&d).await;
        match l.p.next(5).await {
            Ev::El(e) if e.is("handshake", ns::CM_LINK) => {
                assert!(e.text().is_empty(), "{}", e.to_xml());
            }
            other => panic!("expected an empty <handshake/>, got {other:?}"),
        }
        let cfg = l.next(5).await;
        assert!(
            cfg.is("iq", ns::CM_LINK) && cfg.attr("type") == Some("set"),
            "{}",
            cfg.to_xml()
        );
        (l, cfg)
    }

    /// Sends one element counted by the server's acks.
    async fn send(&mut self, xml: &str) {
        self.sent += 1;
        self.p.raw(xml).await;
    }

    /// The next element that is not an ack; counts reliable ones.
    async fn next(&mut self, secs: u64) -> Element {
        loop {
            let e = self.p.element(secs).await;
            if e.is("a", ns::ROOKERY_CM) {
                self.acked = e.attr("h").unwrap().parse().unwrap();
                continue;
            }
            if e.ns() != ns::ROOKERY_CM {
                self.got += 1;
            }
            return e;
        }
    }

    /// Reads until the server acknowledged everything we sent; nothing else may arrive.
    async fn until_acked(&mut self) {
        while self.acked < self.sent {
            let e = self.p.element(5).await;
            assert!(e.is("a", ns::ROOKERY_CM), "expected an ack: {}", e.to_xml());
            self.acked = e.attr("h").unwrap().parse().unwrap();
        }
        assert_eq!(self.acked, self.sent, "acked more than was sent");
    }

    /// A session-control IQ `<iq type='set' id><session id>{child}</session></iq>`; returns
    /// the answer (the next element, which must be an IQ with that id).
    async fn session_iq(&mut self, iq_id: &str, session_attrs: &str, child: &str) -> Element {
        self.send(&format!(
            "<iq type='set' id='{iq_id}'><session xmlns='{}'{session_attrs}>{child}</session></iq>",
            ns::CM
        ))
        .await;
        let r = self.next(5).await;
        assert!(r.is("iq", ns::CM_LINK), "{}", r.to_xml());
        assert_eq!(r.attr("id"), Some(iq_id), "{}", r.to_xml());
        r
    }

    /// Creates the client session `sid` and checks the result echoes it.
    async fn create(&mut self, sid: &str) {
        let r = self
            .session_iq(
                &format!("c-{sid}"),
                &format!(" id='{sid}'"),
                "<create><host name='localhost' address='127.0.0.1'/></create>",
            )
            .await;
        assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
        let session = r.get_child("session", ns::CM).unwrap();
        assert_eq!(session.attr("id"), Some(sid));
    }

    /// Routes `payload` (raw XML declaring its namespace) for the client session `sid`.
    async fn route(&mut self, sid: &str, payload: &str) {
        let from = self.address.clone();
        self.send(&format!(
            "<route to='localhost' from='{from}' streamid='{sid}'>{payload}</route>"
        ))
        .await;
    }

    /// The next element, which must be a route for `sid` from the server; returns its payload.
    async fn routed(&mut self, sid: &str) -> Element {
        let r = self.next(10).await;
        assert!(
            r.is("route", ns::CM_LINK),
            "expected a route: {}",
            r.to_xml()
        );
        assert_eq!(r.attr("streamid"), Some(sid), "{}", r.to_xml());
        assert_eq!(r.attr("from"), Some("localhost"), "{}", r.to_xml());
        let name = self.address.split('/').next().unwrap();
        assert_eq!(r.attr("to"), Some(name), "routes go to the CM's name");
        let mut children = r.children();
        let payload = children.next().unwrap().clone();
        assert!(children.next().is_none(), "one payload: {}", r.to_xml());
        // Stanzas come as Openfire's server writes them, without a namespace of their own
        // (decision 0009); the CM reads them as client stanzas.
        assert_ne!(payload.ns(), ns::CLIENT, "{}", r.to_xml());
        rookery_transport::cm::wire::client_payload(payload)
    }

    /// Logs `user@localhost` (password "pw") in as the client session `sid` through routes:
    /// create, SASL PLAIN, bind `resource`. Returns the bound JID.
    async fn login(&mut self, sid: &str, user: &str, resource: &str) -> String {
        self.create(sid).await;
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0pw"));
        self.route(
            sid,
            &format!(
                "<auth xmlns='{}' mechanism='PLAIN'>{creds}</auth>",
                ns::SASL
            ),
        )
        .await;
        let r = self.routed(sid).await;
        assert!(r.is("success", ns::SASL), "{}", r.to_xml());
        // The client's stream restart stays at the CM; the server synthesizes it.
        self.route(
            sid,
            &format!(
                "<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='{}'>\
                 <resource>{resource}</resource></bind></iq>",
                ns::BIND
            ),
        )
        .await;
        let r = self.routed(sid).await;
        assert!(r.is("iq", ns::CLIENT), "{}", r.to_xml());
        assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
        r.get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("jid", ns::BIND))
            .map(|j| j.text().to_string())
            .unwrap_or_else(|| panic!("no jid: {}", r.to_xml()))
    }
}

/// The stanza error condition and type inside an `<error/>` (link namespace) of `el`.
fn link_error(el: &Element) -> (String, String, Option<String>) {
    assert_eq!(el.attr("type"), Some("error"), "{}", el.to_xml());
    let e = el
        .get_child("error", ns::CM_LINK)
        .unwrap_or_else(|| panic!("no <error/>: {}", el.to_xml()));
    let cond = e
        .children()
        .find(|c| c.ns() == ns::STANZAS)
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    let app = e
        .children()
        .find(|c| c.ns() == ns::CM_ERRORS)
        .map(|c| c.name().to_owned());
    (cond, e.attr("type").unwrap_or_default().to_owned(), app)
}

/// The live links and sessions of the CM called `name` (0, 0 when it is not known).
fn cm_state(s: &TestServer, name: &str) -> (usize, usize) {
    s.running
        .cms
        .summary()
        .into_iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, links, sessions)| (links, sessions))
        .unwrap_or((0, 0))
}

/// The messages stored offline for `user@localhost`, polled until there are `n` (bounded):
/// storage happens in the background and no event announces it.
async fn offline_messages(s: &TestServer, user: &str, n: usize) -> Vec<String> {
    let offline = s.server().stores().offline.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = offline.count(user, "localhost").await.unwrap();
        if count >= n {
            return offline
                .take_all(user, "localhost")
                .await
                .unwrap()
                .into_iter()
                .map(|(xml, _)| xml)
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "{count} offline messages for {user}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Handshake digest ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_handshake_digest_is_not_authorized_and_uppercase_is_accepted() {
    let s = start("", "").await;
    let mut l = CmLink::open(cm_addr(&s), "cm1/w1").await;
    let wrong = rookery_proto::component::handshake_digest(&l.id, "not-the-secret");
    l.send_handshake(&wrong).await;
    assert_eq!(l.p.expect_stream_error(5).await, "not-authorized");
    assert_eq!(cm_state(&s, "cm1"), (0, 0));

    let mut l = CmLink::open(cm_addr(&s), "cm1/w1").await;
    let upper = l.digest().to_uppercase();
    assert_ne!(upper, l.digest(), "the digest has hex letters to case");
    l.send_handshake(&upper).await;
    let e = l.p.element(5).await;
    assert!(e.is("handshake", ns::CM_LINK), "{}", e.to_xml());
    wait_until(5, "the link to be registered", || {
        cm_state(&s, "cm1").0 == 1
    })
    .await;
}

// Link header -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_header_failures_and_link_addresses() {
    let s = start("", "").await;

    // No `to`: our header first, then bad-format.
    let mut p = raw_connect(cm_addr(&s), ns::CM_LINK).await;
    p.stream.send_header(&[("version", "1.0")]).await.unwrap();
    assert!(matches!(p.next(5).await, Ev::Header(_)), "header first");
    assert_eq!(p.expect_stream_error(5).await, "bad-format");

    // Wrong content namespace.
    let mut p = raw_connect(cm_addr(&s), ns::CLIENT).await;
    p.stream
        .send_header(&[("to", "cm1/w1"), ("version", "1.0")])
        .await
        .unwrap();
    assert!(matches!(p.next(5).await, Ev::Header(_)), "header first");
    assert_eq!(p.expect_stream_error(5).await, "invalid-namespace");

    // Two resources of one name: both links live (that is the pool).
    let (mut w1, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    let (mut w2, _) = CmLink::connect(cm_addr(&s), "cm1/w2").await;
    wait_until(5, "two live links", || cm_state(&s, "cm1").0 == 2).await;

    // A second live link with the same full address: conflict, and the first one stays.
    let mut dup = CmLink::open(cm_addr(&s), "cm1/w1").await;
    let d = dup.digest();
    dup.send_handshake(&d).await;
    assert_eq!(dup.p.expect_stream_error(5).await, "conflict");
    assert_eq!(cm_state(&s, "cm1").0, 2);
    w1.create("s1").await;
    w2.create("s2").await;
}

// Configuration IQ ------------------------------------------------------------------------

/// The mechanism names in a configuration IQ.
fn mechanisms(cfg: &Element) -> Vec<String> {
    cfg.get_child("configuration", ns::CM)
        .and_then(|c| c.get_child("mechanisms", ns::SASL))
        .unwrap_or_else(|| panic!("no mechanisms: {}", cfg.to_xml()))
        .children()
        .map(|m| m.text().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_iq_reflects_the_config() {
    // Encryption required, registration off.
    let s = TestServer::local_with(LocalOpts {
        c2s: "require_encryption = true\n".to_owned(),
        listeners: vec!["cm"],
        extra: format!("[cm]\nsecret = \"{SECRET}\"\n"),
        ..LocalOpts::default()
    })
    .await;
    let (mut l, cfg) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    let c = cfg.get_child("configuration", ns::CM).unwrap();
    let tls = c.get_child("starttls", ns::TLS).unwrap();
    assert!(
        tls.get_child("required", ns::TLS).is_some(),
        "{}",
        cfg.to_xml()
    );
    let mechs = mechanisms(&cfg);
    assert!(mechs.iter().any(|m| m == "SCRAM-SHA-256"), "{mechs:?}");
    assert!(mechs.iter().any(|m| m == "SCRAM-SHA-1"), "{mechs:?}");
    assert!(
        !mechs.iter().any(|m| m.ends_with("-PLUS")),
        "the CM terminates TLS: no channel binding: {mechs:?}"
    );
    assert!(c.get_child("register", ns::REGISTER_FEATURE).is_none());
    assert!(c.get_child("acks", ns::ROOKERY_CM).is_some());

    // An answer without <acks/> (Openfire's CM) is taken silently: the next thing the link
    // carries is the answer to our next request.
    let id = cfg.attr("id").unwrap().to_owned();
    l.send(&format!("<iq type='result' id='{id}'/>")).await;
    l.create("s1").await;

    // Encryption optional, registration on.
    let s = TestServer::local_with(LocalOpts {
        c2s: "require_encryption = false\n".to_owned(),
        listeners: vec!["cm"],
        extra: format!("[cm]\nsecret = \"{SECRET}\"\n[registration]\nallow = true\n"),
        ..LocalOpts::default()
    })
    .await;
    let (_l, cfg) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    let c = cfg.get_child("configuration", ns::CM).unwrap();
    let tls = c.get_child("starttls", ns::TLS).unwrap();
    assert!(
        tls.get_child("required", ns::TLS).is_none(),
        "{}",
        cfg.to_xml()
    );
    assert!(
        c.get_child("register", ns::REGISTER_FEATURE).is_some(),
        "{}",
        cfg.to_xml()
    );
}

// Session create and close ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_create_and_close() {
    let s = start("", "").await;
    let (mut l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    l.create("cm1-s1").await;
    assert_eq!(cm_state(&s, "cm1"), (1, 1));

    // The same id again: refused, the first session stays.
    let r = l
        .session_iq(
            "c2",
            " id='cm1-s1'",
            "<create><host name='localhost'/></create>",
        )
        .await;
    assert_eq!(link_error(&r).0, "conflict", "{}", r.to_xml());
    assert_eq!(cm_state(&s, "cm1"), (1, 1));

    let r = l.session_iq("x1", " id='cm1-s1'", "<close/>").await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    assert_eq!(
        r.get_child("session", ns::CM).and_then(|s| s.attr("id")),
        Some("cm1-s1")
    );
    wait_until(5, "the session to be gone", || cm_state(&s, "cm1").1 == 0).await;
    let r = l.session_iq("x2", " id='cm1-s1'", "<close/>").await;
    assert_eq!(
        link_error(&r),
        ("item-not-found".into(), "cancel".into(), None)
    );

    let r = l.session_iq("x3", " id='never'", "<close/>").await;
    assert_eq!(link_error(&r).0, "item-not-found", "{}", r.to_xml());

    // Session control is `set` only.
    l.send(&format!(
        "<iq type='get' id='g1'><session xmlns='{}' id='cm1-s1'><close/></session></iq>",
        ns::CM
    ))
    .await;
    let r = l.next(5).await;
    assert_eq!(r.attr("id"), Some("g1"));
    assert_eq!(link_error(&r).0, "bad-request", "{}", r.to_xml());

    // An unknown action.
    let r = l.session_iq("x5", " id='cm1-s1'", "<frob/>").await;
    assert_eq!(link_error(&r).0, "bad-request", "{}", r.to_xml());

    let r = l.session_iq("x4", "", "<close/>").await;
    assert_eq!(
        link_error(&r),
        (
            "bad-request".into(),
            "modify".into(),
            Some("id-required".into())
        )
    );
    assert!(
        r.get_child("session", ns::CM).is_some(),
        "the error copies the request's child: {}",
        r.to_xml()
    );
}

// Failed IQ -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_stores_one_message_offline() {
    let s = start("", "").await;
    s.account("juliet").await;
    let (mut l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    l.create("s1").await;

    let msg = "<message xmlns='jabber:client' to='juliet@localhost' from='romeo@localhost/r' \
               id='lost1' type='chat'><body>undeliverable at the CM</body></message>";
    let r = l
        .session_iq("f1", " id='s1'", &format!("<failed>{msg}</failed>"))
        .await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    let stored = offline_messages(&s, "juliet", 1).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].contains("undeliverable at the CM"), "{stored:?}");

    let r = l
        .session_iq("f2", " id='s1'", &format!("<failed>{msg}{msg}</failed>"))
        .await;
    assert_eq!(
        link_error(&r),
        (
            "bad-request".into(),
            "modify".into(),
            Some("invalid-payload".into())
        )
    );
    let r = l
        .session_iq(
            "f3",
            " id='s1'",
            "<failed><iq xmlns='jabber:client' type='get' id='q' to='juliet@localhost'>\
             <ping xmlns='urn:xmpp:ping'/></iq></failed>",
        )
        .await;
    assert_eq!(
        link_error(&r),
        (
            "bad-request".into(),
            "modify".into(),
            Some("unknown-stanza".into())
        )
    );
    // Neither error stored anything.
    let count = s
        .server()
        .stores()
        .offline
        .count("juliet", "localhost")
        .await
        .unwrap();
    assert_eq!(count, 0);
}

// Routes ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_for_unknown_sessions_and_before_the_handshake() {
    let s = start("", "").await;

    // Before the handshake: IQs and routes are not authorized, the link stays open.
    let mut l = CmLink::open(cm_addr(&s), "cm1/w1").await;
    l.p.raw(&format!(
        "<iq type='set' id='early'><session xmlns='{}' id='s1'><create/></session></iq>",
        ns::CM
    ))
    .await;
    let r = l.p.element(5).await;
    assert!(r.is("iq", ns::CM_LINK), "{}", r.to_xml());
    assert_eq!(r.attr("id"), Some("early"));
    assert_eq!(link_error(&r).0, "not-authorized", "{}", r.to_xml());
    l.p.raw(
        "<route to='localhost' from='cm1/w1' streamid='s1'>\
         <message xmlns='jabber:client' to='juliet@localhost'/></route>",
    )
    .await;
    let r = l.p.element(5).await;
    assert!(r.is("route", ns::CM_LINK), "{}", r.to_xml());
    assert_eq!(r.attr("streamid"), Some("s1"));
    assert_eq!(link_error(&r).0, "not-authorized", "{}", r.to_xml());
    assert_eq!(cm_state(&s, "cm1"), (0, 0), "no session was created");
    // A top-level stanza before the handshake ends the link.
    let mut early = CmLink::open(cm_addr(&s), "cm1/w9").await;
    early
        .p
        .raw("<message xmlns='jabber:client' to='juliet@localhost'/>")
        .await;
    assert_eq!(early.p.expect_stream_error(5).await, "not-authorized");
    let d = l.digest();
    l.send_handshake(&d).await;
    let e = l.p.element(5).await;
    assert!(e.is("handshake", ns::CM_LINK), "{}", e.to_xml());
    let cfg = l.next(5).await;
    assert!(cfg.get_child("configuration", ns::CM).is_some());

    // A stream error from the CM ends the link.
    let (mut other, _) = CmLink::connect(cm_addr(&s), "cm1/w2").await;
    other
        .p
        .raw(&format!(
            "<stream:error><internal-server-error xmlns='{}'/></stream:error>",
            ns::STREAMS
        ))
        .await;
    assert!(matches!(other.p.next(5).await, Ev::End));

    // An unknown stream id: a route error without the payload.
    l.route(
        "nope",
        "<message xmlns='jabber:client' to='juliet@localhost'><body>x</body></message>",
    )
    .await;
    let r = l.next(5).await;
    assert!(r.is("route", ns::CM_LINK), "{}", r.to_xml());
    assert_eq!(r.attr("streamid"), Some("nope"));
    assert_eq!(
        link_error(&r),
        ("item-not-found".into(), "cancel".into(), None)
    );
    assert_eq!(r.children().count(), 1, "no payload: {}", r.to_xml());

    // Two payloads in one route: refused, nothing reaches the session.
    l.create("s1").await;
    l.route(
        "s1",
        "<message xmlns='jabber:client'/><message xmlns='jabber:client'/>",
    )
    .await;
    let r = l.next(5).await;
    assert!(r.is("route", ns::CM_LINK), "{}", r.to_xml());
    assert_eq!(
        link_error(&r),
        (
            "bad-request".into(),
            "modify".into(),
            Some("invalid-payload".into())
        )
    );

    // No stream id at all.
    l.send("<route to='localhost' from='cm1/w1'><message xmlns='jabber:client'/></route>")
        .await;
    let r = l.next(5).await;
    assert_eq!(
        link_error(&r),
        (
            "bad-request".into(),
            "modify".into(),
            Some("id-required".into())
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_level_stanza_on_a_link_is_a_stream_error() {
    let s = start("", "").await;
    let (mut l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    l.send("<message xmlns='jabber:client' to='juliet@localhost'><body>x</body></message>")
        .await;
    assert_eq!(l.p.expect_stream_error(5).await, "unsupported-stanza-type");

    // Malformed XML on a link: the framer's stream error reaches the CM too.
    let (mut l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    l.send("<route streamid='s1'><message></route>").await;
    assert_eq!(l.p.expect_stream_error(5).await, "not-well-formed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_kick_sends_a_close_iq_to_the_cm() {
    let s = start("", "").await;
    let (mut l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    // romeo@localhost/r through the CM, then the same full JID directly: the default
    // `kick_old` policy ends the routed session.
    s.account("romeo").await;
    l.login("cm1-r", "romeo", "r").await;
    let c2s = s.addr(ListenerKind::C2s);
    let _direct = c2s::login_plain(c2s, "localhost", "romeo", "pw", "r").await;
    let err = l.next(10).await;
    assert!(err.is("route", ns::CM_LINK), "{}", err.to_xml());
    assert_eq!(err.attr("streamid"), Some("cm1-r"));
    assert!(
        err.get_child("error", ns::STREAM)
            .is_some_and(|e| e.get_child("conflict", ns::STREAMS).is_some()),
        "the client's stream error, routed: {}",
        err.to_xml()
    );
    let close = l.next(10).await;
    assert!(close.is("iq", ns::CM_LINK), "{}", close.to_xml());
    assert_eq!(close.attr("type"), Some("set"));
    let session = close.get_child("session", ns::CM).unwrap();
    assert_eq!(session.attr("id"), Some("cm1-r"));
    assert!(
        session.get_child("close", ns::CM).is_some(),
        "{}",
        close.to_xml()
    );
    wait_until(5, "the session to be gone", || cm_state(&s, "cm1").1 == 0).await;
    // The CM's echoed close: harmless, answered item-not-found.
    let r = l.session_iq("echo", " id='cm1-r'", "<close/>").await;
    assert_eq!(link_error(&r).0, "item-not-found", "{}", r.to_xml());
}

// A client carried in routes --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_logs_in_and_chats_through_routes() {
    let s = start("", "").await;
    s.account("juliet").await;
    let mut romeo = s.client("romeo", "r").await;
    let (mut l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;

    let jid = l.login("cm1-j", "juliet", "balcony").await;
    assert_eq!(jid, "juliet@localhost/balcony");

    l.route(
        "cm1-j",
        "<message xmlns='jabber:client' to='romeo@localhost/r' id='j1' type='chat'>\
         <body>wherefore</body></message>",
    )
    .await;
    let got = romeo.next_non_presence(10).await;
    assert_eq!(got.attr("id"), Some("j1"), "{}", got.to_xml());
    assert_eq!(got.attr("from"), Some("juliet@localhost/balcony"));

    romeo
        .raw(
            "<message to='juliet@localhost/balcony' id='r1' type='chat'>\
             <body>here</body></message>",
        )
        .await;
    let got = l.routed("cm1-j").await;
    assert!(got.is("message", ns::CLIENT), "{}", got.to_xml());
    assert_eq!(got.attr("id"), Some("r1"));
    assert_eq!(got.attr("from"), Some("romeo@localhost/r"));
    assert_eq!(
        got.get_child("body", ns::CLIENT)
            .map(|b| b.text().to_string()),
        Some("here".to_owned())
    );

    // An IQ to the server, answered through the link (roster get).
    l.route(
        "cm1-j",
        "<iq xmlns='jabber:client' type='get' id='ro'><query xmlns='jabber:iq:roster'/></iq>",
    )
    .await;
    let got = l.routed("cm1-j").await;
    assert_eq!(
        (got.attr("id"), got.attr("type")),
        (Some("ro"), Some("result")),
        "{}",
        got.to_xml()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_cm_log_in_when_the_server_requires_encryption() {
    // The CM terminates the clients' TLS: the server's `require_encryption` (the default)
    // must not refuse what arrives over a link, and PLAIN is fine there.
    let s = TestServer::local_with(LocalOpts {
        c2s: "require_encryption = true\n".to_owned(),
        listeners: vec!["cm"],
        extra: format!("[cm]\nsecret = \"{SECRET}\"\n"),
        ..LocalOpts::default()
    })
    .await;
    s.account("juliet").await;
    s.account("romeo").await;
    let (mut w1, cfg) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    assert!(
        mechanisms(&cfg).iter().any(|m| m == "PLAIN"),
        "{}",
        cfg.to_xml()
    );
    let (mut w2, _) = CmLink::connect(cm_addr(&s), "cm1/w2").await;
    w1.login("cm1-j", "juliet", "balcony").await;
    w2.login("cm1-r", "romeo", "r").await;
    w2.route(
        "cm1-r",
        "<message xmlns='jabber:client' to='juliet@localhost/balcony' id='r1'>\
         <body>over two links</body></message>",
    )
    .await;
    let got = w1.routed("cm1-j").await;
    assert_eq!(got.attr("id"), Some("r1"), "{}", got.to_xml());
    assert_eq!(got.attr("from"), Some("romeo@localhost/r"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_follow_the_link_the_session_is_pinned_to() {
    let s = start("", "").await;
    s.account("juliet").await;
    let (mut w1, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    let (mut w2, _) = CmLink::connect(cm_addr(&s), "cm1/w2").await;
    w1.create("cm1-j").await;
    // The CM may send a session's elements on any of its links (Openfire's worker pool)...
    let creds = base64::engine::general_purpose::STANDARD.encode("\0juliet\0pw");
    w2.route(
        "cm1-j",
        &format!(
            "<auth xmlns='{}' mechanism='PLAIN'>{creds}</auth>",
            ns::SASL
        ),
    )
    .await;
    // ...the server answers on the link the session was created on.
    let r = w1.routed("cm1-j").await;
    assert!(r.is("success", ns::SASL), "{}", r.to_xml());
    w2.route(
        "cm1-j",
        &format!(
            "<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='{}'/></iq>",
            ns::BIND
        ),
    )
    .await;
    let r = w1.routed("cm1-j").await;
    assert_eq!(
        (r.attr("id"), r.attr("type")),
        (Some("bind"), Some("result")),
        "{}",
        r.to_xml()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_acks_a_lost_links_sessions_move_to_a_live_link_at_once() {
    // Openfire's CM answers the configuration without <acks/> and never resumes: when one of
    // its links drops, the sessions on it carry on over another link.
    let s = start("", "").await;
    s.account("juliet").await;
    let mut romeo = s.client("romeo", "r").await;
    let (mut w1, cfg1) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    let (mut w2, cfg2) = CmLink::connect(cm_addr(&s), "cm1/w2").await;
    for (l, cfg) in [(&mut w1, &cfg1), (&mut w2, &cfg2)] {
        let id = cfg.attr("id").unwrap();
        l.send(&format!("<iq type='result' id='{id}'/>")).await;
    }
    w1.login("cm1-j", "juliet", "balcony").await;
    drop(w1);
    wait_until(5, "w1 to be seen dead", || cm_state(&s, "cm1") == (1, 1)).await;
    romeo
        .raw("<message to='juliet@localhost/balcony' id='moved'><body>still here?</body></message>")
        .await;
    let m = w2.routed("cm1-j").await;
    assert_eq!(m.attr("id"), Some("moved"), "{}", m.to_xml());
    w2.route(
        "cm1-j",
        "<message xmlns='jabber:client' to='romeo@localhost/r' id='yes'><body>yes</body></message>",
    )
    .await;
    let got = romeo.next_non_presence(10).await;
    assert_eq!(got.attr("id"), Some("yes"), "{}", got.to_xml());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_link_the_server_still_holds_takes_it_over() {
    // The CM gave up on a link the server still thinks alive (half-open TCP, the CM's own
    // idle timeout): the resume moves its traffic and the server drops the old link.
    let s = start("", "").await;
    s.account("juliet").await;
    let mut romeo = s.client("romeo", "r").await;
    let (mut w1, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    w1.login("cm1-j", "juliet", "balcony").await;
    romeo
        .raw("<message to='juliet@localhost/balcony' id='m1'><body>1</body></message>")
        .await;
    assert_eq!(w1.routed("cm1-j").await.attr("id"), Some("m1"));
    w1.until_acked().await;

    let (mut w2, _) = CmLink::connect(cm_addr(&s), "cm1/w2").await;
    w2.p.raw(&format!(
        "<resume xmlns='{}' previd='{}' h='{}'/>",
        ns::ROOKERY_CM,
        w1.id,
        w1.got
    ))
    .await;
    let r = w2.next(5).await;
    assert!(r.is("resumed", ns::ROOKERY_CM), "{}", r.to_xml());
    assert_eq!(r.attr("h"), Some(w1.sent.to_string().as_str()));
    assert!(
        matches!(w1.p.next(5).await, Ev::End),
        "the old link is closed"
    );
    romeo
        .raw("<message to='juliet@localhost/balcony' id='m2'><body>2</body></message>")
        .await;
    assert_eq!(w2.routed("cm1-j").await.attr("id"), Some("m2"));
    assert_eq!(cm_state(&s, "cm1"), (1, 1));
}

// Delivery after a lost link --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_for_a_lost_link_goes_offline_after_the_grace() {
    // A real second of grace: the link is real TCP, and paused time would also expire the
    // test's own read timeouts while the server works.
    let s = start("resume_grace_secs = 1", "").await;
    s.account("juliet").await;
    let mut romeo = s.client("romeo", "r").await;
    let (mut l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    l.login("cm1-j", "juliet", "balcony").await;
    drop(l);
    wait_until(5, "the link to be seen dead", || {
        cm_state(&s, "cm1") == (0, 1)
    })
    .await;

    // The session still exists (waiting to be resumed): the message queues on the dead link.
    romeo
        .raw(
            "<message to='juliet@localhost/balcony' id='late' type='chat'>\
             <body>are you there</body></message>",
        )
        .await;
    let stored = offline_messages(&s, "juliet", 1).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].contains("are you there"), "{stored:?}");
    wait_until(5, "the session to be closed", || {
        cm_state(&s, "cm1") == (0, 0)
    })
    .await;
    // Nothing bounced back to the sender.
    assert!(
        romeo
            .next_within(Duration::from_millis(200))
            .await
            .is_none(),
        "no bounce"
    );
}

/// A lost link's stream-managed session is not ended when the grace runs out: it waits to be
/// resumed (XEP-0198 §5), and what its link still held stays its own, resent on resumption
/// and not stored offline as well. The session without stream management on the same link
/// ends, and its message goes offline as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_managed_session_outlives_its_lost_link_and_keeps_its_messages() {
    let s = TestServer::local_with(LocalOpts {
        listeners: vec!["c2s", "cm"],
        c2s: "require_encryption = false\nallow_plain_unencrypted = true".into(),
        extra: format!("[cm]\nsecret = \"{SECRET}\"\nresume_grace_secs = 1\n"),
        ..LocalOpts::default()
    })
    .await;
    s.account("juliet").await;
    s.account("nurse").await;
    let mut romeo = s.client("romeo", "r").await;
    let (mut l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    l.login("cm1-j", "juliet", "balcony").await;
    l.login("cm1-n", "nurse", "kitchen").await;
    l.route(
        "cm1-j",
        &format!("<enable xmlns='{}' resume='true'/>", ns::SM),
    )
    .await;
    let enabled = l.routed("cm1-j").await;
    assert!(enabled.is("enabled", ns::SM), "{}", enabled.to_xml());
    let id = enabled.attr("id").unwrap().to_owned();

    // m1 reaches the link and is never acknowledged by the client.
    romeo
        .raw("<message to='juliet@localhost/balcony' id='m1' type='chat'><body>m1</body></message>")
        .await;
    let got = l.routed("cm1-j").await;
    assert_eq!(got.attr("id"), Some("m1"), "{}", got.to_xml());
    drop(l);
    wait_until(5, "the link to be seen dead", || {
        cm_state(&s, "cm1") == (0, 2)
    })
    .await;
    // m2 queues on the dead link, then the nurse's message after it.
    romeo
        .raw("<message to='juliet@localhost/balcony' id='m2' type='chat'><body>m2</body></message>")
        .await;
    romeo
        .raw("<message to='nurse@localhost/kitchen' id='n1' type='chat'><body>n1</body></message>")
        .await;

    // The link's queue is stored in order: once the nurse's message is offline, juliet's
    // would be too, if it were going to be.
    let nurse = offline_messages(&s, "nurse", 1).await;
    assert!(nurse[0].contains("n1"), "{nurse:?}");
    let offline = s.server().stores().offline.clone();
    assert_eq!(offline.count("juliet", "localhost").await.unwrap(), 0);
    wait_until(5, "juliet's session to wait for resumption", || {
        s.server().sessions().parked_count() == 1
    })
    .await;

    let mut again =
        c2s::authenticate_plain(s.addr(ListenerKind::C2s), "localhost", "juliet", PASSWORD).await;
    again
        .raw(&format!("<resume xmlns='{}' previd='{id}' h='0'/>", ns::SM))
        .await;
    let r = again.element(10).await;
    assert!(r.is("resumed", ns::SM), "{}", r.to_xml());
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let e = again.element(10).await;
        if e.name() == "message" {
            ids.push(e.attr("id").unwrap().to_owned());
        }
    }
    assert_eq!(ids, ["m1", "m2"]);
    // Nothing more: a ping's answer is the next stanza.
    again.ping_answered_next("p").await;
    assert_eq!(offline.count("juliet", "localhost").await.unwrap(), 0);
}

// Heartbeats and the idle timeout ---------------------------------------------------------

// Timers run on paused time: over loopback, bytes one task wrote are readable before the
// runtime is idle, so auto-advancing the clock to the next timer keeps every event's order.

#[tokio::test(start_paused = true)]
async fn idle_link_gets_heartbeats() {
    let s = start("heartbeat_secs = 1", "").await;
    let (l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    assert_eq!(
        l.p.stream.framer().buffered_len(),
        0,
        "nothing after the configuration IQ"
    );
    // Whitespace is invisible to the framer: read the socket itself.
    let mut io = l.p.stream.into_inner();
    let mut last = tokio::time::Instant::now();
    for _ in 0..3 {
        let mut b = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(2), io.read(&mut b))
            .await
            .expect("a heartbeat within 2 s")
            .unwrap();
        assert_eq!(&b[..n], b" ", "a single space");
        let gap = last.elapsed();
        assert!(
            gap >= Duration::from_millis(900) && gap <= Duration::from_millis(1100),
            "one heartbeat per second of silence: {gap:?}"
        );
        last = tokio::time::Instant::now();
    }
}

#[tokio::test(start_paused = true)]
async fn silent_link_is_closed_after_the_idle_timeout() {
    // The resume grace (default 60 s) is far longer than the idle timeout: the CM must see
    // the link end when it times out, not when the grace does.
    let s = start("idle_timeout_secs = 1", "").await;
    let (mut l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    let started = tokio::time::Instant::now();
    let end = l.p.next(5).await;
    assert!(matches!(end, Ev::End), "{end:?}");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after <= Duration::from_millis(1100),
        "closed after the idle timeout: {after:?}"
    );
}

// Real time here: on paused time the link reader saw the first whitespace but not the later
// ones before the clock auto-advanced past the idle timeout (tokio 1.x, current-thread), so
// the test would fail on the runtime, not on the server. Two seconds, bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whitespace_heartbeats_keep_a_link_open() {
    let s = start("idle_timeout_secs = 1", "").await;
    let (mut l, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    // Only whitespace, as an idle CM sends (Openfire's and ours), for twice the timeout.
    for _ in 0..8 {
        let ev = l.p.next_within(Duration::from_millis(250)).await;
        assert!(
            ev.is_none(),
            "the link ended or the server sent something: {ev:?}"
        );
        l.p.raw(" ").await;
    }
    assert_eq!(cm_state(&s, "cm1").0, 1);
    l.create("s1").await;
    // And when the whitespace stops, the link times out.
    assert!(matches!(l.p.next(5).await, Ev::End));
}

// Shutdown --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_system_shutdown_on_every_link() {
    let s = start("", "").await;
    s.account("juliet").await;
    let (mut l1, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    let (mut l2, _) = CmLink::connect(cm_addr(&s), "cm2/w1").await;
    l1.login("cm1-j", "juliet", "balcony").await;
    let (done, c1, c2) = tokio::join!(
        s.running.shutdown(Duration::from_secs(10)),
        l1.p.expect_stream_error(10),
        l2.p.expect_stream_error(10),
    );
    assert_eq!(c1, "system-shutdown");
    assert_eq!(c2, "system-shutdown");
    assert!(done, "every task ended");
}

// Resume (urn:rookery:cm:0) -------------------------------------------------------------------

/// Regression (the interop test `test_a_cut_link_loses_and_reorders_nothing` saw one message
/// twice about one run in ten): the CM resumed a link while the server still had unread bytes
/// of it; the server's old reader went on taking them after it had reported its count in
/// `<resumed h/>`, and the CM resent them. Here the old link stays open with a burst in
/// flight when the resume arrives: whatever count the server reports, each message must
/// reach the recipient exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_link_with_unread_bytes_delivers_each_element_once() {
    let s = start("", "").await;
    s.account("romeo").await;
    let mut juliet = s.client("juliet", "j").await;
    let (mut l1, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    l1.login("cm1-r", "romeo", "r").await;
    let before = l1.sent;
    const N: u64 = 400;
    let msg = |i: u64| {
        format!(
            "<message xmlns='jabber:client' to='juliet@localhost/j' id='m{i}'><body>{i}</body></message>"
        )
    };
    for i in 1..=N {
        l1.route("cm1-r", &msg(i)).await;
    }
    // At once, with l1 still open and its burst not yet all read by the server.
    let (mut l2, _) = CmLink::connect(cm_addr(&s), "cm1/w2").await;
    l2.p.raw(&format!(
        "<resume xmlns='{}' previd='{}' h='{}'/>",
        ns::ROOKERY_CM,
        l1.id,
        l1.got
    ))
    .await;
    let r = l2.next(10).await;
    assert!(r.is("resumed", ns::ROOKERY_CM), "{}", r.to_xml());
    let taken: u64 = r.attr("h").unwrap().parse().unwrap();
    assert!(taken >= before && taken <= before + N, "h={taken}");
    // As a CM does: resend everything after what the server says it took.
    for i in (taken - before + 1)..=N {
        l2.route("cm1-r", &msg(i)).await;
    }
    for i in 1..=N {
        let got = juliet.next_non_presence(10).await;
        assert_eq!(
            got.attr("id"),
            Some(format!("m{i}").as_str()),
            "{}",
            got.to_xml()
        );
    }
    juliet
        .raw("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let got = juliet.next_non_presence(10).await;
    assert_eq!(
        got.attr("id"),
        Some("p"),
        "nothing after m{N}: {}",
        got.to_xml()
    );
    drop(l1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_resends_exactly_the_unacknowledged_tail_in_order() {
    let s = start("", "").await;
    s.account("juliet").await;
    let mut romeo = s.client("romeo", "r").await;
    let (mut l1, _) = CmLink::connect(cm_addr(&s), "cm1/w1").await;
    l1.login("cm1-j", "juliet", "balcony").await;

    let send = |i: u32| {
        format!("<message to='juliet@localhost/balcony' id='m{i}'><body>{i}</body></message>")
    };
    for i in 1..=3 {
        romeo.raw(&send(i)).await;
    }
    let mut h_after_m1 = 0;
    for i in 1..=3 {
        let m = l1.routed("cm1-j").await;
        assert_eq!(m.attr("id"), Some(format!("m{i}").as_str()));
        if i == 1 {
            h_after_m1 = l1.got;
        }
    }
    // Make the server's count of what it received on the link exact before cutting it.
    l1.until_acked().await;
    let (old_id, our_sent) = (l1.id.clone(), l1.sent);
    drop(l1);
    wait_until(5, "the link to be seen dead", || {
        cm_state(&s, "cm1") == (0, 1)
    })
    .await;
    for i in 4..=5 {
        romeo.raw(&send(i)).await;
    }

    // The CM claims it had only m1: m2.. come again, in order, after `<resumed/>`.
    let (mut l2, _) = CmLink::connect(cm_addr(&s), "cm1/w2").await;
    l2.p.raw(&format!(
        "<resume xmlns='{}' previd='{old_id}' h='{h_after_m1}'/>",
        ns::ROOKERY_CM
    ))
    .await;
    let r = l2.next(5).await;
    assert!(r.is("resumed", ns::ROOKERY_CM), "{}", r.to_xml());
    assert_eq!(r.attr("previd"), Some(old_id.as_str()));
    assert_eq!(
        r.attr("h"),
        Some(our_sent.to_string().as_str()),
        "the server had every element we sent"
    );
    for i in 2..=5 {
        let m = l2.routed("cm1-j").await;
        assert_eq!(
            m.attr("id"),
            Some(format!("m{i}").as_str()),
            "{}",
            m.to_xml()
        );
    }
    // Nothing repeated after the tail: the next element is new traffic.
    romeo.raw(&send(6)).await;
    let m = l2.routed("cm1-j").await;
    assert_eq!(m.attr("id"), Some("m6"), "{}", m.to_xml());
    assert_eq!(cm_state(&s, "cm1"), (1, 1));

    // The session moved: it can still send.
    l2.route(
        "cm1-j",
        "<message xmlns='jabber:client' to='romeo@localhost/r' id='back'><body>b</body></message>",
    )
    .await;
    let got = romeo.next_non_presence(10).await;
    assert_eq!(got.attr("id"), Some("back"), "{}", got.to_xml());

    // The `<resumed/>` got lost with another link: asking again is answered again, and
    // nothing is resent twice.
    l2.p.raw(&format!(
        "<resume xmlns='{}' previd='{old_id}' h='{h_after_m1}'/>",
        ns::ROOKERY_CM
    ))
    .await;
    let r = l2.next(5).await;
    assert!(r.is("resumed", ns::ROOKERY_CM), "{}", r.to_xml());
    assert_eq!(r.attr("previd"), Some(old_id.as_str()));
    romeo.raw(&send(7)).await;
    let m = l2.routed("cm1-j").await;
    assert_eq!(m.attr("id"), Some("m7"), "{}", m.to_xml());

    // Another CM cannot take this CM's link over, even knowing its id.
    let (mut other, _) = CmLink::connect(cm_addr(&s), "cm2/w1").await;
    other
        .p
        .raw(&format!(
            "<resume xmlns='{}' previd='{}' h='0'/>",
            ns::ROOKERY_CM,
            l2.id
        ))
        .await;
    let r = other.next(5).await;
    assert!(r.is("failed", ns::ROOKERY_CM), "{}", r.to_xml());
    assert_eq!(cm_state(&s, "cm1"), (1, 1));

    // An unknown previd.
    l2.p.raw(&format!(
        "<resume xmlns='{}' previd='no-such-link' h='0'/>",
        ns::ROOKERY_CM
    ))
    .await;
    let r = l2.next(5).await;
    assert!(r.is("failed", ns::ROOKERY_CM), "{}", r.to_xml());
    assert_eq!(r.attr("previd"), Some("no-such-link"));
}
