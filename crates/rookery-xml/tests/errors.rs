//! One test per stream error class the framer reports: restricted XML,
//! not-well-formed input, wrong stream root, non-UTF-8 encodings.
//!
//! Flow under test: bytes from a socket → Framer → StreamEvent / FramerError
//! → (stream errors sent by the protocol layer, not exercised here).

mod common;

use common::{assert_condition, error_of, run, stream_with};
use rookery_xml::{Framer, Limits, StreamEvent};

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
    // Decided on the first byte: no '<' needs to follow.
    assert_condition(&stream_with("<a/> \nhello"), "bad-format");
}

#[test]
fn bytes_that_cannot_start_a_stream_fail_at_once() {
    // Before the fix the framer waited for a '<' (or the header timeout)
    // before rxml would judge text in front of the root element.
    for input in [
        &b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"[..],
        b"x",
        b"  \n\x7f",
        b"\xef\xbb\xbf<stream:stream>",
    ] {
        let e = error_of(input);
        assert_eq!(e.condition(), "not-well-formed", "{e}");
    }
    let http = error_of(b"GET / HTTP/1.1\r\n").to_string();
    assert!(http.contains("not HTTP"), "{http}");
    // A TLS ClientHello on a plain-text port: already an error before (U+16
    // is no XML character), now with a hint.
    let tls = error_of(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").to_string();
    assert!(tls.contains("TLS handshake"), "{tls}");
    // After a restart too, and text after an XML declaration (rxml's own check).
    let mut f = Framer::new(Limits::default());
    let (ev, err) = run(
        &mut f,
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    assert!(ev.len() == 1 && err.is_none(), "{err:?}");
    f.reset();
    let (_, err) = run(&mut f, b"hello");
    assert_eq!(err.map(|e| e.condition()), Some("not-well-formed"));
    assert_condition(b"<?xml version='1.0'?>GET", "not-well-formed");
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
