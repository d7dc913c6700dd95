//! Property tests: chunking invariance of the framer and writer → parser
//! round trips.
//!
//! Flow under test: bytes from a socket (split arbitrarily) → Framer →
//! StreamEvent, and Element → writer → bytes → Framer/Element::parse →
//! Element.

use proptest::prelude::*;
use rookery_xml::{Element, Framer, FramerError, Limits, StreamEvent, stream_open};

/// A realistic client stream: header, negotiation elements, stanzas with
/// nesting, escapes, character references, CDATA, CRLF, non-ASCII text
/// (multi-byte UTF-8 for every split to land inside), prefixed
/// namespaces, keepalives and the close tag.
fn realistic_stream() -> Vec<u8> {
    let mut s = Vec::new();
    stream_open(
        &mut s,
        "jabber:client",
        &[("to", "localhost"), ("version", "1.0"), ("xml:lang", "en")],
        &[],
    );
    s.extend_from_slice(
        "\n<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/> \
         <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>\
         biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlx</auth>\r\n\
         <iq type='set' id='b&amp;1&apos;&quot;'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>Gärten 🦜 café</resource></bind></iq>  \t \
         <message to='jülia@example.org/ω' type=\"chat\" xml:lang='de'>\
         <body>Grüße &lt;b&gt; &#x1F426; &#233; ]]&gt; <![CDATA[<not a tag> & ]]> line1\r\nline2\rline3</body>\
         <x xmlns='jabber:x:data' xmlns:p='urn:prefixed' p:attr='v a\tl\nu e' type='submit'>\
         <field var='é'><value>１２３</value><value/></field></x>\
         <thread>स्वागत</thread></message>\n \n\
         <presence><show>away</show><status>日本語のステータス ✓</status>\
         <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>\
         </presence>      <r xmlns='urn:xmpp:sm:3'/>\
         </stream:stream>"
            .as_bytes(),
    );
    s
}

/// Events (and the error condition, if any) from feeding `chunks` one at a
/// time, draining events after each.
fn run_chunked(chunks: &[&[u8]]) -> (Vec<StreamEvent>, Option<&'static str>) {
    let mut f = Framer::new(Limits::default());
    let mut events = Vec::new();
    for chunk in chunks {
        f.feed(chunk);
        loop {
            match f.next_event() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e.condition())),
            }
        }
    }
    (events, None)
}

fn split_at_points<'a>(input: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = points.iter().map(|p| p % (input.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(&input[last..p]);
        last = p;
    }
    chunks.push(&input[last..]);
    chunks
}

#[test]
fn realistic_stream_parses_fully() {
    let input = realistic_stream();
    let (events, err) = run_chunked(&[&input]);
    assert_eq!(err, None);
    assert_eq!(events.len(), 8, "{events:?}");
    assert_eq!(events.last(), Some(&StreamEvent::Close));
    let StreamEvent::Stanza(msg) = &events[4] else {
        panic!("{events:?}")
    };
    let body = msg.get_child("body", "jabber:client").expect("body");
    assert_eq!(
        body.text(),
        "Grüße <b> 🐦 é ]]> <not a tag> &  line1\nline2\nline3"
    );
    let x = msg.get_child("x", "jabber:x:data").expect("x");
    // Attribute-value normalization: literal tab and newline become spaces.
    assert_eq!(x.attr("{urn:prefixed}attr"), Some("v a l u e"));
}

proptest! {
    #[test]
    fn framer_is_chunking_invariant(points in prop::collection::vec(any::<usize>(), 0..40)) {
        let input = realistic_stream();
        let whole = run_chunked(&[&input]);
        let chunks = split_at_points(&input, &points);
        prop_assert_eq!(run_chunked(&chunks), whole);
    }

    #[test]
    fn byte_at_a_time_window(start in 0usize..2000, len in 1usize..64) {
        // Every split inside a window: catches state lost at any boundary.
        let input = realistic_stream();
        let start = start % input.len();
        let end = (start + len).min(input.len());
        let mut chunks: Vec<&[u8]> = vec![&input[..start]];
        chunks.extend(input[start..end].chunks(1));
        chunks.push(&input[end..]);
        prop_assert_eq!(run_chunked(&chunks), run_chunked(&[&input]));
    }

    #[test]
    fn errors_are_chunking_invariant(
        points in prop::collection::vec(any::<usize>(), 0..20),
        which in 0usize..5,
    ) {
        let bad: &[u8] = [
            &b"<message><body>a<!-- c --></body></message>"[..],
            b"<iq><a><b></a></b></iq>",
            b"<m x='1' x='2'/>",
            b"<p:m/>",
            b"<m>\xc3\x28</m>",
        ][which];
        let mut input = realistic_stream();
        let cut = input.len() - b"</stream:stream>".len();
        input.splice(cut..cut, bad.iter().copied());
        let whole = run_chunked(&[&input]);
        prop_assert!(whole.1.is_some());
        let chunks = split_at_points(&input, &points);
        prop_assert_eq!(run_chunked(&chunks), whole);
    }
}

// ---- round trip ----------------------------------------------------------

fn xml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        // Characters that need escaping or normalization care.
        prop::sample::select(vec!['&', '<', '>', '\'', '"', '\r', '\n', '\t', ' ', ']']),
        any::<char>(),
        prop::char::range('a', 'z'),
    ]
    .prop_filter("valid XML 1.0 char", |c| {
        matches!(*c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
    })
}

fn xml_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(xml_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

fn ncname() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_.-]{0,10}",
        prop::sample::select(vec!["é", "ßtraße", "日本", "x-1.2", "_"]).prop_map(String::from),
    ]
}

fn namespace() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        "jabber:client",
        "urn:x",
        "urn:y:&<>'\"",
        "http://jabber.org/protocol/disco#info",
        "urn:ü",
        // Only reachable as `xml:` prefixed names; the writer must not try
        // to make it a default namespace.
        "http://www.w3.org/XML/1998/namespace",
    ])
    .prop_map(String::from)
}

fn attr_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ncname(),
        1 => Just("xml:lang".to_string()),
        1 => (namespace(), ncname()).prop_map(|(ns, n)| format!("{{{ns}}}{n}")),
    ]
}

fn leaf() -> impl Strategy<Value = Element> {
    (
        ncname(),
        namespace(),
        prop::collection::vec((attr_key(), xml_string(12)), 0..4),
        prop::option::of(xml_string(16)),
    )
        .prop_map(|(name, ns, attrs, text)| {
            let mut e = Element::new(name, ns);
            for (k, v) in attrs {
                e.set_attr(k, v);
            }
            if let Some(t) = text {
                e.append_text(t);
            }
            e
        })
}

fn element() -> impl Strategy<Value = Element> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        (
            leaf(),
            prop::collection::vec(
                prop_oneof![
                    inner.prop_map(rookery_xml::Node::Element),
                    xml_string(10).prop_map(rookery_xml::Node::Text),
                ],
                0..6,
            ),
        )
            .prop_map(|(mut e, nodes)| {
                for n in nodes {
                    match n {
                        rookery_xml::Node::Element(c) => e.append_child(c),
                        rookery_xml::Node::Text(t) => e.append_text(t),
                    }
                }
                e
            })
    })
}

proptest! {
    #[test]
    fn element_round_trips(e in element()) {
        let xml = e.to_xml();
        let back = Element::parse(&xml);
        prop_assert_eq!(back.as_ref(), Ok(&e), "xml: {}", xml);
    }

    #[test]
    fn stanza_round_trips_through_framer(
        elems in prop::collection::vec(element(), 1..4),
        points in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut input = Vec::new();
        stream_open(&mut input, "jabber:client", &[("to", "example.org")], &[]);
        for e in &elems {
            e.write_to(&mut input, "jabber:client");
            input.push(b' ');
        }
        let chunks = split_at_points(&input, &points);
        let (events, err) = run_chunked(&chunks);
        prop_assert_eq!(err, None);
        let got: Vec<&Element> = events
            .iter()
            .filter_map(|ev| match ev {
                StreamEvent::Stanza(e) => Some(e),
                _ => None,
            })
            .collect();
        prop_assert_eq!(got, elems.iter().collect::<Vec<_>>());
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..512),
        points in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        // A cheap in-tree stand-in for the fuzz target.
        let mut input = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>".to_vec();
        input.extend_from_slice(&data);
        let _ = run_chunked(&split_at_points(&input, &points));
        let _ = run_chunked(&split_at_points(&data, &points));
        let _: Result<Element, FramerError> = Element::parse(&String::from_utf8_lossy(&data));
    }
}
