//! Framer behaviour tests: normal streams, stream state (in_stanza,
//! buffered_len), restarts, and Element::parse.
//!
//! Flow under test: bytes from a socket → Framer → StreamEvent → (protocol
//! machines in rookery-proto, not exercised here).

mod common;

use common::{HEADER, run, stream_with};
use rookery_xml::{Element, Framer, Limits, StreamEvent};

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn parses_a_client_stream() {
    let mut f = Framer::new(Limits::default());
    let input = stream_with(
        " <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n\
         <message to='a@b' type='chat' xml:lang='en'><body>h&amp;i &lt;3 ü</body>\
         <x xmlns='urn:x' xmlns:p='urn:p' p:k='v'/></message> \t\r\n\
         </stream:stream>",
    );
    let (events, err) = run(&mut f, &input);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(events.len(), 4);
    let StreamEvent::Open(h) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(h.ns, "http://etherx.jabber.org/streams");
    assert_eq!(h.name, "stream");
    assert_eq!(h.default_ns.as_deref(), Some("jabber:client"));
    assert_eq!(h.attr("to"), Some("localhost"));
    assert_eq!(h.attr("version"), Some("1.0"));
    assert_eq!(
        h.ns_decls,
        vec![(
            "stream".to_string(),
            "http://etherx.jabber.org/streams".to_string()
        )]
    );
    let StreamEvent::Stanza(tls) = &events[1] else {
        panic!()
    };
    assert!(tls.is("starttls", "urn:ietf:params:xml:ns:xmpp-tls"));
    let StreamEvent::Stanza(msg) = &events[2] else {
        panic!()
    };
    assert!(msg.is("message", "jabber:client"));
    assert_eq!(msg.attr("xml:lang"), Some("en"));
    assert_eq!(
        msg.get_child("body", "jabber:client").map(|b| b.text()),
        Some("h&i <3 ü".to_string())
    );
    let x = msg.get_child("x", "urn:x").expect("x");
    assert_eq!(x.attr("{urn:p}k"), Some("v"));
    assert_eq!(events[3], StreamEvent::Close);
    assert_eq!(f.next_event().ok(), Some(None));
}

#[test]
fn server_header_exposes_namespaces() {
    let mut f = Framer::new(Limits::default());
    let (events, err) = run(
        &mut f,
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns='jabber:server' xmlns:db='jabber:server:dialback' from='a.example' \
          to='b.example' version='1.0' xml:lang='en'><db:result from='a' to='b'>k</db:result>",
    );
    assert!(err.is_none(), "{err:?}");
    let StreamEvent::Open(h) = &events[0] else {
        panic!()
    };
    assert_eq!(h.default_ns.as_deref(), Some("jabber:server"));
    assert_eq!(h.ns_decl("db"), Some("jabber:server:dialback"));
    assert_eq!(h.attr("xml:lang"), Some("en"));
    let StreamEvent::Stanza(r) = &events[1] else {
        panic!()
    };
    assert!(r.is("result", "jabber:server:dialback"));
}

#[test]
fn header_without_default_namespace() {
    let mut f = Framer::new(Limits::default());
    let (events, err) = run(
        &mut f,
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a/>",
    );
    assert!(err.is_none());
    let StreamEvent::Open(h) = &events[0] else {
        panic!()
    };
    assert_eq!(h.default_ns, None);
    let StreamEvent::Stanza(a) = &events[1] else {
        panic!()
    };
    assert_eq!(a.ns(), "");
}

// ---- state, restarts ------------------------------------------------------

#[test]
fn errors_are_sticky() {
    let mut f = Framer::new(limits());
    let (_, err) = run(&mut f, &stream_with("<a><!-- x --></a>"));
    let err = err.expect("error");
    f.feed(b"<b/>");
    assert_eq!(f.next_event().err(), Some(err));
}

#[test]
fn in_stanza_tracks_partial_elements() {
    let mut f = Framer::new(limits());
    f.feed(HEADER.as_bytes());
    assert!(matches!(f.next_event(), Ok(Some(StreamEvent::Open(_)))));
    assert!(!f.in_stanza());
    f.feed(b"  <mess");
    assert_eq!(f.next_event().ok(), Some(None));
    assert!(f.in_stanza());
    assert_eq!(f.buffered_len(), 5);
    f.feed(b"age/>  ");
    assert!(matches!(f.next_event(), Ok(Some(StreamEvent::Stanza(_)))));
    assert!(!f.in_stanza());
    assert_eq!(f.buffered_len(), 0);
}

#[test]
fn buffered_len_reports_bytes_after_starttls() {
    let mut f = Framer::new(limits());
    f.feed(&stream_with(
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n<iq type='get'/>",
    ));
    assert!(matches!(f.next_event(), Ok(Some(StreamEvent::Open(_)))));
    let Ok(Some(StreamEvent::Stanza(tls))) = f.next_event() else {
        panic!()
    };
    assert_eq!(tls.name(), "starttls");
    assert_eq!(f.buffered_len(), "<iq type='get'/>".len());

    // Only whitespace behind it: nothing that could be injected.
    let mut f = Framer::new(limits());
    f.feed(&stream_with(
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\r\n",
    ));
    assert!(matches!(f.next_event(), Ok(Some(StreamEvent::Open(_)))));
    assert!(matches!(f.next_event(), Ok(Some(StreamEvent::Stanza(_)))));
    assert_eq!(f.buffered_len(), 0);
}

#[test]
fn reset_parses_pipelined_header() {
    let mut f = Framer::new(limits());
    let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>";
    let second = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
    f.feed(&stream_with(&format!(
        "{auth}\n{second}<iq type='get' id='1'/>"
    )));
    assert!(matches!(f.next_event(), Ok(Some(StreamEvent::Open(_)))));
    let Ok(Some(StreamEvent::Stanza(a))) = f.next_event() else {
        panic!()
    };
    assert!(a.is("auth", "urn:ietf:params:xml:ns:xmpp-sasl"));
    assert_eq!(a.text(), "AGEAYg==");
    // Everything behind </auth> except the newline is still buffered.
    assert_eq!(
        f.buffered_len(),
        second.len() + "<iq type='get' id='1'/>".len()
    );
    f.reset();
    let Ok(Some(StreamEvent::Open(h))) = f.next_event() else {
        panic!()
    };
    assert_eq!(h.attr("to"), Some("localhost"));
    let Ok(Some(StreamEvent::Stanza(iq))) = f.next_event() else {
        panic!()
    };
    assert!(iq.is("iq", "jabber:client"));
    assert_eq!(f.buffered_len(), 0);
}

#[test]
fn reset_forgets_namespaces_and_accepts_header_without_declaration() {
    let mut f = Framer::new(limits());
    let (ev, err) = run(
        &mut f,
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:x='urn:x' xmlns='jabber:client'><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    assert!(err.is_none() && ev.len() == 2);
    f.reset();
    // The old `x` binding must be gone after the restart.
    let (ev, err) = run(&mut f, &stream_with("<x:a/>"));
    assert_eq!(ev.len(), 1);
    assert_eq!(err.map(|e| e.condition()), Some("not-well-formed"));
}

#[test]
fn reset_after_close_and_after_error() {
    let mut f = Framer::new(limits());
    let (ev, _) = run(&mut f, &stream_with("</stream:stream>"));
    assert_eq!(ev.last(), Some(&StreamEvent::Close));
    f.reset();
    let (ev, err) = run(&mut f, HEADER.as_bytes());
    assert!(err.is_none() && ev.len() == 1);

    // An error is cleared by a restart (the error here ends exactly at the
    // last byte fed, so nothing of the bad stream is left to re-parse).
    let mut f = Framer::new(limits());
    assert!(
        run(&mut f, b"<stream:stream xmlns:stream='urn:wrong'>")
            .1
            .is_some()
    );
    f.reset();
    let (ev, err) = run(&mut f, HEADER.as_bytes());
    assert!(err.is_none() && ev.len() == 1);
}

// ---- Element::parse -------------------------------------------------------

#[test]
fn element_parse() {
    let e = Element::parse("<?xml version='1.0'?>\n <a xmlns='urn:a' b='c'><d>e</d></a>\n")
        .expect("parse");
    assert!(e.is("a", "urn:a"));
    assert_eq!(e.attr("b"), Some("c"));
    assert_eq!(
        e.get_child("d", "urn:a").map(Element::text),
        Some("e".into())
    );
    assert_eq!(
        Element::parse("<a/>").map(|e| e.ns().to_string()),
        Ok(String::new())
    );
    for (bad, cond) in [
        ("<a>", "not-well-formed"),
        ("<a/><b/>", "not-well-formed"),
        ("<a/>x", "not-well-formed"),
        ("", "not-well-formed"),
        ("<p:a/>", "not-well-formed"),
        ("<!DOCTYPE a><a/>", "restricted-xml"),
        ("<a><!--c--></a>", "restricted-xml"),
    ] {
        let err = Element::parse(bad).expect_err(bad);
        assert_eq!(err.condition(), cond, "{bad}: {err}");
    }
    let deep = format!("{}{}", "<a>".repeat(65), "</a>".repeat(65));
    assert_eq!(
        Element::parse(&deep).map_err(|e| e.condition()),
        Err("policy-violation")
    );
}
