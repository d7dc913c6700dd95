//! Framer behaviour tests: normal streams, every error class, limits and
//! restarts.
//!
//! Flow under test: bytes from a socket → Framer → StreamEvent → (protocol
//! machines in rookery-proto, not exercised here).

use std::time::{Duration, Instant};

use rookery_xml::{Element, Framer, FramerError, Limits, StreamEvent};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// Feed everything at once and collect events until the framer needs more
/// input or fails.
fn run(framer: &mut Framer, input: &[u8]) -> (Vec<StreamEvent>, Option<FramerError>) {
    framer.feed(input);
    let mut events = Vec::new();
    loop {
        match framer.next_event() {
            Ok(Some(ev)) => events.push(ev),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
}

fn error_of(input: &[u8]) -> FramerError {
    let mut f = Framer::new(Limits::default());
    match run(&mut f, input).1 {
        Some(e) => e,
        None => panic!("no error for {:?}", String::from_utf8_lossy(input)),
    }
}

fn stream_with(body: &str) -> Vec<u8> {
    format!("{HEADER}{body}").into_bytes()
}

fn assert_condition(input: &[u8], condition: &str) {
    let e = error_of(input);
    assert_eq!(e.condition(), condition, "{e}");
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

// ---- restricted XML -------------------------------------------------------

#[test]
fn doctype_is_restricted() {
    assert_condition(b"<!DOCTYPE stream:stream>", "restricted-xml");
    assert_condition(
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><stream:stream/>",
        "restricted-xml",
    );
    // A DTD fragment inside the stream is just as restricted.
    assert_condition(&stream_with("<!ENTITY a 'b'>"), "restricted-xml");
}

#[test]
fn billion_laughs_is_restricted() {
    let bomb = b"<?xml version='1.0'?>\n<!DOCTYPE lolz [\n\
        <!ENTITY lol 'lol'>\n\
        <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n\
        <!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>\n\
        ]>\n<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>&lol2;";
    assert_condition(bomb, "restricted-xml");
}

#[test]
fn entity_reference_without_dtd_is_not_well_formed() {
    assert_condition(&stream_with("<message>&lol;</message>"), "not-well-formed");
}

#[test]
fn processing_instructions_are_restricted() {
    assert_condition(&stream_with("<?foo bar?>"), "restricted-xml");
    assert_condition(&stream_with("<iq><?foo bar?></iq>"), "restricted-xml");
    assert_condition(b"<?foo bar?><stream:stream/>", "restricted-xml");
    // A second XML declaration inside the stream is a PI, too.
    assert_condition(&stream_with("<?xml version='1.0'?>"), "restricted-xml");
}

#[test]
fn comments_are_restricted() {
    assert_condition(&stream_with("<!-- hi -->"), "restricted-xml");
    assert_condition(&stream_with("<iq><!-- hi --></iq>"), "restricted-xml");
    assert_condition(b"<!-- hi --><stream:stream/>", "restricted-xml");
}

// ---- not well-formed ------------------------------------------------------

#[test]
fn invalid_utf8_is_not_well_formed() {
    let mut input = stream_with("<message><body>");
    input.extend_from_slice(b"\xff\xfe\xc3(");
    input.extend_from_slice(b"</body></message>");
    assert_condition(&input, "not-well-formed");
    // In a name, in an attribute value.
    assert_condition(&stream_with("<m\u{0}/>"), "not-well-formed");
    let mut input = stream_with("<message to='");
    input.extend_from_slice(b"\xc0\xaf'/>");
    assert_condition(&input, "not-well-formed");
}

#[test]
fn unbound_prefix_is_not_well_formed() {
    assert_condition(&stream_with("<foo:bar/>"), "not-well-formed");
    assert_condition(&stream_with("<bar foo:x='1'/>"), "not-well-formed");
    assert_condition(b"<stream:stream>", "not-well-formed");
}

#[test]
fn duplicate_attributes_are_not_well_formed() {
    assert_condition(&stream_with("<a x='1' x='2'/>"), "not-well-formed");
    // Same expanded name through two prefixes.
    assert_condition(
        &stream_with("<a xmlns:p='urn:p' xmlns:q='urn:p' p:x='1' q:x='2'/>"),
        "not-well-formed",
    );
    assert_condition(&stream_with("<a xmlns='x' xmlns='y'/>"), "not-well-formed");
    assert_condition(
        &stream_with("<a xmlns:p='x' xmlns:p='y'/>"),
        "not-well-formed",
    );
}

#[test]
fn mismatched_tags_are_not_well_formed() {
    assert_condition(&stream_with("<a><b></a></b>"), "not-well-formed");
    assert_condition(&stream_with("</stream>"), "not-well-formed");
}

#[test]
fn reserved_prefixes_are_not_well_formed() {
    assert_condition(&stream_with("<a xmlns:xml='urn:evil'/>"), "not-well-formed");
    assert_condition(
        &stream_with("<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>"),
        "not-well-formed",
    );
    assert_condition(&stream_with("<a xmlns:xmlns='urn:x'/>"), "not-well-formed");
    assert_condition(
        &stream_with("<a xmlns='http://www.w3.org/2000/xmlns/'/>"),
        "not-well-formed",
    );
    assert_condition(&stream_with("<xmlns:a/>"), "not-well-formed");
    // Declaring xml to its own URI is allowed.
    let mut f = Framer::new(Limits::default());
    let (ev, err) = run(
        &mut f,
        &stream_with("<a xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>"),
    );
    assert!(err.is_none(), "{err:?}");
    let StreamEvent::Stanza(a) = &ev[1] else {
        panic!()
    };
    assert_eq!(a.attr("xml:lang"), Some("en"));
}

#[test]
fn text_between_stanzas_is_bad_format() {
    assert_condition(&stream_with("hello<a/>"), "bad-format");
}

// ---- stream root and encoding ---------------------------------------------

#[test]
fn wrong_root_is_invalid_namespace() {
    assert_condition(
        b"<stream:stream xmlns:stream='urn:wrong'>",
        "invalid-namespace",
    );
    assert_condition(b"<stream xmlns='jabber:client'>", "invalid-namespace");
    assert_condition(
        b"<stream:other xmlns:stream='http://etherx.jabber.org/streams'>",
        "invalid-namespace",
    );
}

#[test]
fn non_utf8_encoding_is_unsupported() {
    assert_condition(
        b"<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream/>",
        "unsupported-encoding",
    );
    assert_condition(
        b"<?xml version='1.0' encoding='UTF-16'?>",
        "unsupported-encoding",
    );
    // UTF-16 with and without a byte-order mark.
    assert_condition(b"\xfe\xff\x00<\x00?", "unsupported-encoding");
    assert_condition(b"<\x00?\x00x\x00", "unsupported-encoding");
    // Declaring UTF-8 in any case is fine.
    let mut f = Framer::new(Limits::default());
    let input = b"<?xml version='1.0' encoding='utf-8'?><stream:stream \
        xmlns:stream='http://etherx.jabber.org/streams'>";
    let (ev, err) = run(&mut f, input);
    assert!(err.is_none() && ev.len() == 1, "{err:?}");
}

// ---- limits -------------------------------------------------------------

fn limits() -> Limits {
    Limits::default()
}

/// Feed `chunk` repeatedly (up to `max_total` bytes) after `prefix` until the
/// framer fails; return the error and how many bytes had been fed.
fn feed_until_error(
    limits: Limits,
    prefix: &[u8],
    chunk: &[u8],
    max_total: usize,
) -> (FramerError, usize) {
    let mut f = Framer::new(limits);
    f.feed(prefix);
    let mut fed = prefix.len();
    loop {
        match f.next_event() {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => return (e, fed),
        }
        assert!(fed < max_total, "no error after {fed} bytes");
        f.feed(chunk);
        fed += chunk.len();
    }
}

#[test]
fn oversize_stanza_trips_early() {
    // A 64 MiB never-closed stanza, fed in 64 KiB chunks, must be refused
    // right after the limit, long before the end.
    let l = limits();
    let prefix = stream_with("<message><body>");
    let chunk = vec![b'a'; 65536];
    let (e, fed) = feed_until_error(l.clone(), &prefix, &chunk, 64 << 20);
    assert_eq!(e.condition(), "policy-violation", "{e}");
    assert!(
        fed <= prefix.len() + l.max_stanza_bytes + chunk.len(),
        "{fed}"
    );

    // The same in one single feed: still refused, and quickly.
    let mut big = stream_with("<message><body>");
    big.resize(big.len() + (64 << 20), b'a');
    let t = Instant::now();
    assert_condition(&big, "policy-violation");
    assert!(t.elapsed() < Duration::from_secs(5));

    // A huge attribute value.
    let (e, _) = feed_until_error(l.clone(), &stream_with("<message to='"), &chunk, 64 << 20);
    assert_eq!(e.condition(), "policy-violation", "{e}");
}

#[test]
fn stanza_of_exactly_the_limit_passes() {
    let mut l = limits();
    let stanza = "<a>0123456789</a>";
    l.max_stanza_bytes = stanza.len();
    let mut f = Framer::new(l.clone());
    let (ev, err) = run(&mut f, &stream_with(&format!("{stanza} {stanza}")));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(ev.len(), 3);
    l.max_stanza_bytes = stanza.len() - 1;
    let mut f = Framer::new(l);
    let (ev, err) = run(&mut f, &stream_with(stanza));
    assert_eq!(ev.len(), 1);
    assert_eq!(err.map(|e| e.condition()), Some("policy-violation"));
}

#[test]
fn whitespace_keepalives_never_count() {
    let mut l = limits();
    l.max_stanza_bytes = 16;
    let mut f = Framer::new(l);
    let (ev, err) = run(&mut f, &stream_with(" "));
    assert!(err.is_none() && ev.len() == 1);
    for _ in 0..10_000 {
        f.feed(b" \n\t\r");
        assert_eq!(f.next_event().ok(), Some(None));
        assert!(!f.in_stanza());
        assert_eq!(f.buffered_len(), 0);
    }
    f.feed(b"<presence/>");
    assert!(matches!(f.next_event(), Ok(Some(StreamEvent::Stanza(_)))));
}

#[test]
fn oversize_header_trips() {
    let mut input = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'".to_vec();
    for i in 0..2000 {
        input.extend_from_slice(format!(" a{i}='x'").as_bytes());
    }
    let e = error_of(&input);
    assert_eq!(e.condition(), "policy-violation");
}

#[test]
fn deep_nesting_trips_fast() {
    let mut input = stream_with("");
    for _ in 0..100_000 {
        input.extend_from_slice(b"<a>");
    }
    let t = Instant::now();
    let e = error_of(&input);
    assert_eq!(e.condition(), "policy-violation", "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    // Exactly max_depth is fine.
    let depth = limits().max_depth;
    let body = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    let mut f = Framer::new(limits());
    let (ev, err) = run(&mut f, &stream_with(&body));
    assert!(err.is_none() && ev.len() == 2, "{err:?}");
    let body = format!("{}{}", "<a>".repeat(depth + 1), "</a>".repeat(depth + 1));
    assert_condition(&stream_with(&body), "policy-violation");
}

#[test]
fn too_many_elements_trip() {
    let n = limits().max_elements;
    let body = format!("<a>{}</a>", "<b/>".repeat(n - 1));
    let mut f = Framer::new(limits());
    let (ev, err) = run(&mut f, &stream_with(&body));
    assert!(err.is_none() && ev.len() == 2, "{err:?}");
    let body = format!("<a>{}</a>", "<b/>".repeat(n));
    assert_condition(&stream_with(&body), "policy-violation");
}

#[test]
fn many_attributes_trip() {
    let mut input = stream_with("<a");
    for i in 0..200_000 {
        input.extend_from_slice(format!(" a{i}='x'").as_bytes());
    }
    input.extend_from_slice(b"/>");
    let t = Instant::now();
    assert_condition(&input, "policy-violation");
    assert!(t.elapsed() < Duration::from_secs(1));

    // The attribute cap trips before the byte cap would.
    let mut l = limits();
    l.max_attrs = 3;
    let mut f = Framer::new(l);
    let (_, err) = run(
        &mut f,
        &stream_with("<a w='' x='' y=''/><a w='' x='' y='' z=''/>"),
    );
    let err = err.expect("error");
    assert!(err.to_string().contains("attributes"), "{err}");
}

#[test]
fn many_namespace_declarations_trip() {
    let decls: String = (0..101).map(|i| format!(" xmlns:p{i}='urn:{i}'")).collect();
    let e = error_of(&stream_with(&format!("<a{decls}/>")));
    assert_eq!(e.condition(), "policy-violation");
    assert!(e.to_string().contains("namespace"), "{e}");
    let decls: String = (0..100).map(|i| format!(" xmlns:p{i}='urn:{i}'")).collect();
    let mut f = Framer::new(limits());
    let (ev, err) = run(&mut f, &stream_with(&format!("<a{decls}/>")));
    assert!(err.is_none() && ev.len() == 2, "{err:?}");
}

#[test]
fn long_attribute_value_under_stanza_limit_is_policy() {
    // Values longer than rxml's token buffer are refused as a policy matter.
    let value = "v".repeat(20_000);
    assert_condition(
        &stream_with(&format!("<a x='{value}'/>")),
        "policy-violation",
    );
    // Long text is fine: it is delivered in chunks and merged.
    let text = "t".repeat(100_000);
    let mut f = Framer::new(limits());
    let (ev, err) = run(&mut f, &stream_with(&format!("<a>{text}</a>")));
    assert!(err.is_none(), "{err:?}");
    let StreamEvent::Stanza(a) = &ev[1] else {
        panic!()
    };
    assert_eq!(a.nodes().len(), 1);
    assert_eq!(a.text(), text);
}

#[test]
fn set_limits_applies() {
    let mut small = limits();
    small.max_stanza_bytes = 10;
    let mut f = Framer::new(small);
    let (ev, err) = run(&mut f, &stream_with(""));
    assert!(err.is_none() && ev.len() == 1);
    f.set_limits(limits());
    let (ev, err) = run(&mut f, b"<message><body>longer than ten</body></message>");
    assert!(err.is_none() && ev.len() == 1, "{err:?}");
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
