//! Helpers shared by the integration tests.
//!
//! Flow under test: bytes from a socket → Framer → StreamEvent → (protocol
//! machines in rookery-proto, not exercised here).

// Each test crate includes this module and uses a different subset of it.
#![allow(dead_code)]

use rookery_xml::{Framer, FramerError, Limits, StreamEvent};

pub const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// Feed everything at once and collect events until the framer needs more
/// input or fails.
pub fn run(framer: &mut Framer, input: &[u8]) -> (Vec<StreamEvent>, Option<FramerError>) {
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

pub fn error_of(input: &[u8]) -> FramerError {
    let mut f = Framer::new(Limits::default());
    match run(&mut f, input).1 {
        Some(e) => e,
        None => panic!("no error for {:?}", String::from_utf8_lossy(input)),
    }
}

pub fn stream_with(body: &str) -> Vec<u8> {
    format!("{HEADER}{body}").into_bytes()
}

pub fn assert_condition(input: &[u8], condition: &str) {
    let e = error_of(input);
    assert_eq!(e.condition(), condition, "{e}");
}
