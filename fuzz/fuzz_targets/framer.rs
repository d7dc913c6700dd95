//! Fuzz target for the inbound XML path.
//!
//! Flow under test: bytes from a socket → Framer → StreamEvent (→ protocol
//! machines in rookery-proto, not involved). Arbitrary bytes are fed in
//! arbitrary chunks; beyond "no panic, no hang" the target checks two
//! properties that must hold for every input:
//! - chunking invariance: the events and the final error condition are the
//!   same as when the whole input is fed at once;
//! - every delivered stanza serializes to XML that parses back to an equal
//!   element (or, at worst, trips a limit because the writer's output is
//!   larger than the input was).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rookery_xml::{Element, Framer, FramerError, Limits, StreamEvent};

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// Input layout: byte 0 = flags, byte 1 = number of chunk lengths n (mod
/// 16), then n chunk lengths (one byte each), then the stream bytes.
struct Plan<'a> {
    with_header: bool,
    small_limits: bool,
    chunk_lens: &'a [u8],
    body: Vec<u8>,
}

fn plan(data: &[u8]) -> Option<Plan<'_>> {
    let (&flags, rest) = data.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let n = usize::from(n % 16).min(rest.len());
    let (chunk_lens, stream) = rest.split_at(n);
    // Most inputs get a valid header in front, so the fuzzer spends its time
    // inside the stream rather than on the root element.
    let with_header = flags & 1 == 0;
    let mut body = Vec::new();
    if with_header {
        body.extend_from_slice(HEADER);
    }
    body.extend_from_slice(stream);
    Some(Plan {
        with_header,
        small_limits: flags & 2 != 0,
        chunk_lens,
        body,
    })
}

fn limits(small: bool) -> Limits {
    if small {
        Limits {
            max_stanza_bytes: 300,
            max_depth: 6,
            max_elements: 20,
            max_attrs: 4,
            max_ns_decls: 3,
            max_header_bytes: 400,
        }
    } else {
        Limits::default()
    }
}

/// Feed `body` in the given chunk sizes (the rest in one piece), restarting
/// the stream after the elements that restart it in XMPP.
fn run(body: &[u8], chunk_lens: &[u8], limits: &Limits) -> (Vec<StreamEvent>, Option<&'static str>) {
    let mut framer = Framer::new(limits.clone());
    let mut events = Vec::new();
    let mut rest = body;
    let mut lens = chunk_lens.iter();
    while !rest.is_empty() || lens.len() > 0 {
        let take = lens.next().map_or(rest.len(), |&l| usize::from(l).min(rest.len()));
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        framer.feed(chunk);
        loop {
            match framer.next_event() {
                Ok(Some(ev)) => {
                    let restart = matches!(&ev, StreamEvent::Stanza(e) if e.name() == "proceed" || e.name() == "success");
                    events.push(ev);
                    if restart {
                        framer.reset();
                    }
                }
                Ok(None) => break,
                Err(e) => return (events, Some(e.condition())),
            }
            // Cheap accessors must never panic mid-stream either.
            let _ = (framer.buffered_len(), framer.in_stanza());
        }
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    let Some(plan) = plan(data) else { return };
    let limits = limits(plan.small_limits);
    let whole = run(&plan.body, &[], &limits);
    let chunked = run(&plan.body, plan.chunk_lens, &limits);
    assert_eq!(whole, chunked, "chunking changed the result (header: {})", plan.with_header);

    for ev in &whole.0 {
        if let StreamEvent::Stanza(e) = ev {
            let xml = e.to_xml();
            match Element::parse(&xml) {
                Ok(back) => assert_eq!(&back, e, "round trip of {xml}"),
                Err(FramerError::PolicyViolation(_)) => {}
                Err(err) => panic!("writer output {xml} does not parse: {err}"),
            }
        }
    }
});
