//! Limits: every cap trips while parsing, early and fast, and nothing under
//! the caps is refused.
//!
//! Flow under test: bytes from a socket → Framer (limits enforced here) →
//! StreamEvent → (protocol machines in rookery-proto, not exercised here).

mod common;

use std::time::{Duration, Instant};

use common::{assert_condition, error_of, run, stream_with};
use rookery_xml::{Framer, FramerError, Limits, StreamEvent};

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
