//! A connection manager that speaks exactly as Openfire's does (checked against Openfire's CM
//! and server sources; decision 0009), replayed over real TCP against
//! the server's `cm` listener: its byte formats for the link header, handshake, the copied
//! configuration answer, the `<create/>` / `<close/>` / `<failed>` IQs it builds by string
//! concatenation, and routes carrying the client's bytes as the client wrote them — stanzas
//! without a namespace of their own, so they inherit the link's `jabber:connectionmanager`.
//! A client logs in through it (SCRAM-SHA-1, bind, session, roster, vCard, presence) and
//! chats with a direct client; every answer of the server is checked, including that it
//! writes stanzas the way Openfire's server does.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rookery_config::ListenerKind;
use rookery_proto::ns;
use rookery_testkit::net::{
    Ev, LocalOpts, RawPeer, TestServer, c2s, raw_connect, scram_sha1_final,
};
use rookery_xml::Element;

const SECRET: &str = "s3cret";
/// A link address as Openfire's CM names its links: `<manager name>/<worker thread name>`.
const LINK: &str = "cm01/Connection Worker - 1";
/// The client's stream id, made by the CM: its name and a random part.
const SID: &str = "cm01a7f3c9e2";

async fn start() -> TestServer {
    TestServer::local_with(LocalOpts {
        listeners: vec!["c2s", "cm"],
        extra: format!("[cm]\nsecret = \"{SECRET}\"\n"),
        ..LocalOpts::default()
    })
    .await
}

/// Writes bytes as the CM would, unchanged.
async fn send(l: &mut RawPeer, xml: &str) {
    l.raw(xml).await;
}

/// The CM wraps a client's bytes, exactly as they came, in a route.
async fn route(l: &mut RawPeer, client_bytes: &str) {
    send(
        l,
        &format!("<route to='localhost' from='{LINK}' streamid='{SID}'>{client_bytes}</route>"),
    )
    .await;
}

/// The next element from the server, which must be a route to this CM for `SID`; returns
/// its one payload as parsed inside the link stream (namespaces as they are on the wire).
async fn routed(l: &mut RawPeer) -> Element {
    let r = l.element(10).await;
    assert!(
        r.is("route", ns::CM_LINK),
        "expected a route: {}",
        r.to_xml()
    );
    assert_eq!(r.attr("from"), Some("localhost"), "{}", r.to_xml());
    assert_eq!(r.attr("to"), Some("cm01"), "routes go to the CM's name");
    assert_eq!(r.attr("streamid"), Some(SID), "{}", r.to_xml());
    let mut payload = r.children();
    let p = payload.next().unwrap().clone();
    assert!(payload.next().is_none(), "one payload: {}", r.to_xml());
    p
}

/// A routed stanza as Openfire's server writes it: no namespace of its own. Its children
/// inherit the same way.
fn assert_unqualified(st: &Element, name: &str) {
    assert!(
        st.is(name, ns::CM_LINK),
        "expected <{name}/> inheriting the link namespace: {}",
        st.to_xml()
    );
}

/// An IQ answer from the server on the link, for the IQ `id`.
async fn link_iq(l: &mut RawPeer, id: &str) -> Element {
    let r = l.element(5).await;
    assert!(r.is("iq", ns::CM_LINK), "{}", r.to_xml());
    assert_eq!(r.attr("id"), Some(id), "{}", r.to_xml());
    r
}

/// A session-control IQ as Openfire's CM builds it (`to`, `from`, a `random-sequence` id).
fn session_iq(id: &str, action: &str) -> String {
    format!(
        "<iq type='set' to='localhost' from='{LINK}' id='{id}'>\
         <session xmlns='http://jabber.org/protocol/connectionmanager' id='{SID}'>{action}\
         </session></iq>"
    )
}

/// Connects, opens the link, authenticates and answers the configuration IQ, each step as
/// Openfire's CM does it and each answer checked. Returns the link.
async fn link_up(s: &TestServer) -> RawPeer {
    let mut l = raw_connect(s.addr(ListenerKind::Cm), ns::CM_LINK).await;
    send(
        &mut l,
        &format!(
            "<stream:stream xmlns:stream=\"http://etherx.jabber.org/streams\" \
             xmlns=\"jabber:connectionmanager\" to=\"{LINK}\" version=\"1.0\">"
        ),
    )
    .await;
    let id = match l.next(5).await {
        Ev::Header(h) => {
            assert_eq!(h.attr("from"), Some(LINK), "the CM's `to`, verbatim");
            assert_eq!(h.default_ns.as_deref(), Some(ns::CM_LINK));
            assert_eq!(h.attr("version"), Some("1.0"));
            h.attr("id").unwrap().to_owned()
        }
        other => panic!("expected the server's stream header, got {other:?}"),
    };
    let features = l.element(5).await;
    assert!(features.is("features", ns::STREAM), "{}", features.to_xml());

    // HEX(SHA1(stream id ‖ secret)), computed independently of the server's CM code.
    let digest = rookery_proto::component::handshake_digest(&id, SECRET);
    send(&mut l, &format!("<handshake>{digest}</handshake>")).await;
    let ok = l.element(5).await;
    assert!(ok.is("handshake", ns::CM_LINK), "{}", ok.to_xml());
    assert!(
        ok.text().is_empty(),
        "an empty <handshake/>: {}",
        ok.to_xml()
    );

    let cfg = l.element(5).await;
    assert!(cfg.is("iq", ns::CM_LINK), "{}", cfg.to_xml());
    assert_eq!(cfg.attr("type"), Some("set"));
    let c = cfg
        .get_child("configuration", ns::CM)
        .unwrap_or_else(|| panic!("no configuration: {}", cfg.to_xml()));
    let mechs: Vec<String> = c
        .get_child("mechanisms", ns::SASL)
        .unwrap()
        .children()
        .map(|m| m.text())
        .collect();
    assert!(mechs.iter().any(|m| m == "SCRAM-SHA-1"), "{mechs:?}");
    // Openfire's CM acknowledges with a copy of the IQ: type result, to the server, from
    // the link. That copy carries no `<acks/>` of Rookery's extension at the top.
    let mut answer = cfg.clone();
    answer.set_attr("type", "result");
    answer.set_attr("to", "localhost");
    answer.set_attr("from", LINK);
    let mut bytes = Vec::new();
    answer.write_to(&mut bytes, ns::CM_LINK);
    send(&mut l, std::str::from_utf8(&bytes).unwrap()).await;
    l
}

/// SCRAM-SHA-1 (RFC 5802) for juliet (password "pw"), the client's bytes carried in routes.
async fn sasl_scram(l: &mut RawPeer) {
    let first_bare = "n=juliet,r=fyko+d2lbbFgONRv9qkxdawL";
    route(
        l,
        &format!(
            "<auth xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\" mechanism=\"SCRAM-SHA-1\">{}</auth>",
            B64.encode(format!("n,,{first_bare}"))
        ),
    )
    .await;
    let ch = routed(l).await;
    assert!(ch.is("challenge", ns::SASL), "{}", ch.to_xml());
    let server_first = String::from_utf8(B64.decode(ch.text()).unwrap()).unwrap();
    let (client_final, server_sig) = scram_sha1_final("pw", first_bare, &server_first, b"n,,");
    route(
        l,
        &format!(
            "<response xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\">{}</response>",
            B64.encode(&client_final)
        ),
    )
    .await;
    let ok = routed(l).await;
    assert!(ok.is("success", ns::SASL), "{}", ok.to_xml());
    assert_eq!(
        B64.decode(ok.text()).unwrap(),
        format!("v={}", B64.encode(server_sig)).into_bytes(),
        "the server proved it knows the password"
    );
}

/// Routes an IQ the client wrote (no namespace on it) and returns the server's routed
/// result, checked to be unqualified too.
async fn iq(l: &mut RawPeer, id: &str, client_bytes: &str) -> Element {
    route(l, client_bytes).await;
    let r = routed(l).await;
    assert_unqualified(&r, "iq");
    assert_eq!(
        (r.attr("id"), r.attr("type")),
        (Some(id), Some("result")),
        "{}",
        r.to_xml()
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openfire_cm_transcript_logs_in_and_chats_with_a_direct_client() {
    let s = start().await;
    s.account("juliet").await;
    let mut romeo = s.client("romeo", "r").await;
    romeo.raw("<presence/>").await;
    let own = romeo.element(10).await;
    assert_eq!(
        own.attr("from"),
        Some("romeo@localhost/r"),
        "{}",
        own.to_xml()
    );
    let mut l = link_up(&s).await;

    // Session create, as Openfire's CM writes it (no host: the server's domain is meant).
    send(&mut l, &session_iq("417-0", "<create/>")).await;
    let r = link_iq(&mut l, "417-0").await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    assert_eq!(
        r.get_child("session", ns::CM).and_then(|s| s.attr("id")),
        Some(SID)
    );

    sasl_scram(&mut l).await;

    // The client's stream restart stays at the CM. Bind, session, roster, vCard: the
    // client's IQs carry no namespace, nor do the answers.
    let r = iq(
        &mut l,
        "bind_1",
        "<iq type=\"set\" id=\"bind_1\"><bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\">\
         <resource>balcony</resource></bind></iq>",
    )
    .await;
    let jid = r
        .get_child("bind", ns::BIND)
        .and_then(|b| b.get_child("jid", ns::BIND))
        .map(|j| j.text());
    assert_eq!(jid.as_deref(), Some("juliet@localhost/balcony"));
    iq(
        &mut l,
        "sess_1",
        "<iq type=\"set\" id=\"sess_1\">\
         <session xmlns=\"urn:ietf:params:xml:ns:xmpp-session\"/></iq>",
    )
    .await;
    let r = iq(
        &mut l,
        "roster_1",
        "<iq type=\"get\" id=\"roster_1\"><query xmlns=\"jabber:iq:roster\"/></iq>",
    )
    .await;
    assert!(r.get_child("query", ns::ROSTER).is_some(), "{}", r.to_xml());
    iq(
        &mut l,
        "vc_1",
        "<iq type=\"set\" id=\"vc_1\"><vCard xmlns=\"vcard-temp\">\
         <FN>Juliet Capulet</FN></vCard></iq>",
    )
    .await;
    let r = iq(
        &mut l,
        "vc_2",
        "<iq type=\"get\" id=\"vc_2\"><vCard xmlns=\"vcard-temp\"/></iq>",
    )
    .await;
    let fn_ = r
        .get_child("vCard", "vcard-temp")
        .and_then(|v| v.get_child("FN", "vcard-temp"))
        .map(|f| f.text());
    assert_eq!(fn_.as_deref(), Some("Juliet Capulet"), "{}", r.to_xml());

    // Initial presence comes back to the client itself, children unqualified as well.
    route(&mut l, "<presence><priority>5</priority></presence>").await;
    let p = routed(&mut l).await;
    assert_unqualified(&p, "presence");
    assert_eq!(p.attr("from"), Some("juliet@localhost/balcony"));
    assert_eq!(
        p.get_child("priority", ns::CM_LINK).map(|c| c.text()),
        Some("5".to_owned()),
        "{}",
        p.to_xml()
    );
    // Directed presence to the direct client.
    route(&mut l, "<presence to=\"romeo@localhost/r\"/>").await;
    let got = romeo.element(10).await;
    assert!(got.is("presence", ns::CLIENT), "{}", got.to_xml());
    assert_eq!(got.attr("from"), Some("juliet@localhost/balcony"));

    // Messages both ways.
    route(
        &mut l,
        "<message to=\"romeo@localhost/r\" type=\"chat\" id=\"m1\">\
         <body>Wherefore art thou, Romeo?</body></message>",
    )
    .await;
    let got = romeo.next_non_presence(10).await;
    assert!(got.is("message", ns::CLIENT), "{}", got.to_xml());
    assert_eq!(got.attr("id"), Some("m1"));
    assert_eq!(got.attr("from"), Some("juliet@localhost/balcony"));
    assert_eq!(
        got.get_child("body", ns::CLIENT).map(|b| b.text()),
        Some("Wherefore art thou, Romeo?".to_owned()),
        "{}",
        got.to_xml()
    );
    romeo
        .raw(
            "<message to='juliet@localhost/balcony' type='chat' id='r1'>\
             <body>By a name I know not how to tell thee who I am.</body></message>",
        )
        .await;
    let m = routed(&mut l).await;
    assert_unqualified(&m, "message");
    assert_eq!(
        (m.attr("id"), m.attr("from")),
        (Some("r1"), Some("romeo@localhost/r")),
        "{}",
        m.to_xml()
    );
    assert_eq!(
        m.get_child("body", ns::CM_LINK).map(|b| b.text()),
        Some("By a name I know not how to tell thee who I am.".to_owned())
    );

    // The client leaves. Openfire's CM may send `<close/>` for a session twice (its own
    // close and the echo of one the server asked for), back to back: the first closes it,
    // the second finds nothing to close (Openfire: item-not-found), even while the first
    // is still ending the session.
    send(
        &mut l,
        &format!(
            "{}{}",
            session_iq("417-1", "<close/>"),
            session_iq("417-2", "<close/>")
        ),
    )
    .await;
    let r = link_iq(&mut l, "417-1").await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    let r = link_iq(&mut l, "417-2").await;
    assert_eq!(r.attr("type"), Some("error"), "{}", r.to_xml());
    let e = r.get_child("error", ns::CM_LINK).unwrap();
    assert_eq!(e.attr("type"), Some("cancel"));
    assert!(
        e.get_child("item-not-found", ns::STANZAS).is_some(),
        "{}",
        r.to_xml()
    );
    // Romeo had her directed presence: he is told she left.
    let got = romeo.element(10).await;
    assert!(got.is("presence", ns::CLIENT), "{}", got.to_xml());
    assert_eq!(got.attr("type"), Some("unavailable"), "{}", got.to_xml());
    assert_eq!(got.attr("from"), Some("juliet@localhost/balcony"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_openfire_cm_could_not_deliver_is_stored_offline() {
    // Openfire's CM hands back a routed message for a client it no longer has by writing the
    // stanza, as it parsed it (no namespace), inside `<failed>`: there it inherits the
    // session element's namespace.
    let s = start().await;
    s.account("juliet").await;
    let mut l = link_up(&s).await;
    send(
        &mut l,
        &session_iq(
            "88-0",
            "<failed><message to=\"juliet@localhost/balcony\" from=\"romeo@localhost/r\" \
             type=\"chat\" id=\"lost\"><body>Parting is such sweet sorrow</body></message>\
             </failed>",
        ),
    )
    .await;
    let r = link_iq(&mut l, "88-0").await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());

    // Juliet logs in directly and gets it with her first presence.
    let mut juliet = c2s::login_plain(
        s.addr(ListenerKind::C2s),
        "localhost",
        "juliet",
        "pw",
        "home",
    )
    .await;
    juliet.raw("<presence/>").await;
    let got = juliet.next_non_presence(10).await;
    assert!(got.is("message", ns::CLIENT), "{}", got.to_xml());
    assert_eq!(got.attr("id"), Some("lost"), "{}", got.to_xml());
    assert_eq!(
        got.get_child("body", ns::CLIENT).map(|b| b.text()),
        Some("Parting is such sweet sorrow".to_owned())
    );
}
