//! The incremental stanza framer: the entry point of inbound XML.
//!
//! Flow: bytes from a socket → [`Framer::feed`] → [`Framer::next_event`]
//! → [`StreamEvent`] (stream header, one complete top-level element, or the
//! stream's end) → protocol machines in rookery-proto. It is sans-IO: the
//! net layer owns the socket and the timers and asks this type what the
//! bytes mean.
//!
//! Parsing is done by rxml's `RawParser` (restricted XML: no DTDs, no
//! entities, no PIs, comments rejected) with `tree.rs` building elements.
//! The byte limits are enforced here by never handing rxml more input than
//! the current stanza (or header) may still consume plus one byte: a stanza
//! that never closes trips `policy-violation` once its limit is passed, and
//! rxml's buffers never hold more than one token of it.

use rxml::error::EndOrError;
use rxml::{Options, Parse, RawParser, WithOptions};

use crate::error::{FramerError, policy};
use crate::sniff;
use crate::tree::{Assembler, Output, is_xml_whitespace};
use crate::{Element, Limits};

/// Longest single token (name, attribute value, text chunk) rxml will
/// buffer. rxml preallocates this much per parser, so it stays small;
/// longer text is simply delivered in several chunks and merged, longer
/// names or attribute values are a `policy-violation`.
const MAX_TOKEN_BYTES: usize = 8192;

/// Input buffer capacity above which an emptied buffer is shrunk.
const SHRINK_ABOVE: usize = 1 << 20;

/// The attributes of an opening `<stream:stream>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// Namespace of the root element; always `http://etherx.jabber.org/streams`
    /// (anything else is rejected with `invalid-namespace`).
    pub ns: String,
    /// Local name of the root element; always `stream`.
    pub name: String,
    /// The content namespace: the `xmlns='…'` declared on the header, e.g.
    /// `jabber:client`, `jabber:server`, `jabber:component:accept`.
    pub default_ns: Option<String>,
    /// Attributes (`to`, `from`, `id`, `version`, `xml:lang`, …), keyed like
    /// [`Element`] attributes.
    pub attrs: Vec<(String, String)>,
    /// Prefixed namespace declarations as `(prefix, uri)`, in document order,
    /// e.g. `("stream", "http://etherx.jabber.org/streams")`,
    /// `("db", "jabber:server:dialback")`.
    pub ns_decls: Vec<(String, String)>,
}

impl StreamHeader {
    /// Value of attribute `k`, if present.
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// URI declared for `prefix` on the header, if any.
    pub fn ns_decl(&self, prefix: &str) -> Option<&str> {
        self.ns_decls
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, u)| u.as_str())
    }
}

/// One step of an inbound stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream header was received.
    Open(StreamHeader),
    /// A complete top-level element (stanza or negotiation element). Its
    /// namespace is resolved: a `<message/>` on a client stream has
    /// `ns() == "jabber:client"`.
    Stanza(Element),
    /// `</stream:stream>` was received. No further events follow until
    /// [`Framer::reset`].
    Close,
}

/// Incremental parser from bytes to [`StreamEvent`]s. See the module docs.
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    parser: RawParser,
    asm: Assembler,
    /// Bytes fed but not yet handed to rxml live in `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    header_done: bool,
    closed: bool,
    /// Bytes handed to rxml since the last event boundary: the size of the
    /// header or top-level element being received. Zero means rxml holds no
    /// partial construct.
    counted: usize,
    /// Errors are final, like rxml's: the stream is dead after one.
    failed: Option<FramerError>,
}

fn new_parser() -> RawParser {
    // Comments stay at rxml's default (rejected); the token cap is explicit
    // because rxml calls its default implementation-defined.
    RawParser::with_options(Options {
        max_token_length: MAX_TOKEN_BYTES,
        ..Options::default()
    })
}

impl Framer {
    /// A framer expecting a stream header.
    pub fn new(limits: Limits) -> Self {
        Framer {
            asm: Assembler::new(limits.clone(), true),
            limits,
            parser: new_parser(),
            buf: Vec::new(),
            pos: 0,
            header_done: false,
            closed: false,
            counted: 0,
            failed: None,
        }
    }

    /// Replace the limits, e.g. with larger ones after authentication. Takes
    /// effect for the element being received too.
    pub fn set_limits(&mut self, limits: Limits) {
        self.asm.set_limits(limits.clone());
        self.limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Append received bytes. Cheap: parsing happens in
    /// [`Self::next_event`].
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            // One burst must not pin a large allocation for the rest of a
            // long-lived connection.
            if self.buf.capacity() > SHRINK_ABOVE {
                self.buf.shrink_to(SHRINK_ABOVE / 16);
            }
        } else if self.pos >= 4096 && self.pos * 2 >= self.buf.len() {
            // Amortized compaction: move the tail only once the consumed
            // prefix is at least as large as it.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.skip_idle_whitespace();
    }

    /// Parse as far as the buffered bytes allow. `Ok(None)` means more bytes
    /// are needed (or the stream was closed). Returns right after each event
    /// without touching the bytes behind it, so a caller that must restart
    /// the stream (after STARTTLS or SASL success) can call
    /// [`Self::reset`] before the next call and lose nothing. After an
    /// error, every further call returns the same error.
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, FramerError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.step();
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// Stream restart: drop the parser and all namespace context and expect
    /// a fresh stream header (optionally preceded by an XML declaration).
    /// Bytes fed but not yet consumed stay buffered and are parsed by the new
    /// parser; bytes of a partially received construct (see
    /// [`Self::buffered_len`]) are discarded with the old parser.
    pub fn reset(&mut self) {
        self.parser = new_parser();
        self.asm.reset();
        self.header_done = false;
        self.closed = false;
        self.counted = 0;
        self.failed = None;
        self.skip_idle_whitespace();
    }

    /// Bytes received but not yet delivered as an event: unparsed bytes plus
    /// the bytes of a partially received element. Whitespace after the last
    /// event is not counted (it is discarded as soon as it is seen). The net
    /// layer refuses STARTTLS unless this is zero, so no plaintext can be
    /// smuggled into the encrypted stream.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.pos + self.counted
    }

    /// Frees the buffers that only matter while bytes are being parsed: the
    /// emptied input buffer and rxml's token scratch (8 KiB reserved on the
    /// first token; twice that once a reference was seen). Call it when the
    /// transport has nothing more to read: most connections sit idle for
    /// hours and should not pin parse buffers meanwhile, and the next read
    /// reallocates them in one step. A partial token or unparsed input is
    /// kept (shrunk to what it holds), so nothing is lost.
    pub fn release_idle_memory(&mut self) {
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
            self.pos = 0;
        }
        self.parser.release_temporaries();
        self.asm.release_idle_memory();
    }

    /// Whether a top-level element has been partially received (drives the
    /// "unfinished stanza" idle timeout).
    pub fn in_stanza(&self) -> bool {
        self.header_done && !self.closed && self.counted > 0
    }

    /// Whether the stream header has been received (since the last reset).
    pub fn header_received(&self) -> bool {
        self.header_done
    }

    /// Between constructs rxml holds nothing, so whitespace there
    /// (keepalives, newlines after stanzas, before the header) can be
    /// dropped before rxml sees it: it never counts toward a stanza and never
    /// shows up in `buffered_len`.
    fn skip_idle_whitespace(&mut self) {
        if self.counted != 0 || self.closed {
            return;
        }
        let rest = &self.buf[self.pos..];
        let n = rest
            .iter()
            .position(|b| !is_xml_whitespace(std::slice::from_ref(b)))
            .unwrap_or(rest.len());
        self.pos += n;
    }

    fn step(&mut self) -> Result<Option<StreamEvent>, FramerError> {
        if self.closed {
            return Ok(None);
        }
        loop {
            if self.counted == 0 {
                // Between constructs: decide on the first byte whether what
                // follows can be XML at all (sniff.rs says why).
                self.skip_idle_whitespace();
                let rest = &self.buf[self.pos..];
                if !self.header_done {
                    if !sniff::stream_start(rest)? {
                        return Ok(None);
                    }
                } else {
                    sniff::between_elements(rest)?;
                }
            }
            let cap = if self.header_done {
                self.limits.max_stanza_bytes
            } else {
                self.limits.max_header_bytes
            };
            // One byte over the remaining budget, so that exceeding the
            // limit is observable while rxml never buffers more than that.
            let budget = cap.saturating_sub(self.counted).saturating_add(1);
            let avail = &self.buf[self.pos..];
            let take = avail.len().min(budget);
            let mut input = &avail[..take];
            let result = self.parser.parse(&mut input, false);
            let consumed = take - input.len();
            self.pos += consumed;
            self.counted += consumed;
            if self.counted > cap {
                return Err(if self.header_done {
                    policy("stanza size in bytes", cap)
                } else {
                    policy("stream header size in bytes", cap)
                });
            }
            let event = match result {
                Ok(Some(ev)) => ev,
                Err(EndOrError::NeedMoreData) => return Ok(None),
                // rxml only reports the end of the document when told the
                // input is complete, which the framer never does.
                Ok(None) => return Err(FramerError::NotWellFormed("unexpected end".into())),
                Err(EndOrError::Error(e)) => {
                    let offending = self.buf[..self.pos].last().copied();
                    return Err(FramerError::from_rxml(e, offending));
                }
            };
            match self.asm.process(event)? {
                Output::Nothing => {}
                Output::Header(h) => {
                    self.header_done = true;
                    self.counted = 0;
                    self.skip_idle_whitespace();
                    return Ok(Some(StreamEvent::Open(h)));
                }
                Output::Complete(e) => {
                    self.counted = 0;
                    self.skip_idle_whitespace();
                    return Ok(Some(StreamEvent::Stanza(e)));
                }
                Output::RootClosed => {
                    self.closed = true;
                    self.counted = 0;
                    return Ok(Some(StreamEvent::Close));
                }
            }
        }
    }
}

/// [`Element::parse`]: one element from a complete document in memory.
pub(crate) fn parse_standalone(input: &[u8], limits: &Limits) -> Result<Element, FramerError> {
    let start = input
        .iter()
        .position(|b| !is_xml_whitespace(std::slice::from_ref(b)))
        .unwrap_or(input.len());
    let mut rest = &input[start..];
    if rest.len() > limits.max_stanza_bytes {
        return Err(policy("element size in bytes", limits.max_stanza_bytes));
    }
    let total = rest.len();
    let mut parser = new_parser();
    let mut asm = Assembler::new(limits.clone(), false);
    let mut element = None;
    loop {
        match parser.parse(&mut rest, true) {
            Ok(Some(ev)) => {
                if let Output::Complete(e) = asm.process(ev)? {
                    element = Some(e);
                }
            }
            Ok(None) => break,
            Err(EndOrError::NeedMoreData) => {
                return Err(FramerError::NotWellFormed("truncated input".into()));
            }
            Err(EndOrError::Error(e)) => {
                let used = total - rest.len();
                let offending = input[..start + used].last().copied();
                return Err(FramerError::from_rxml(e, offending));
            }
        }
    }
    element.ok_or_else(|| FramerError::NotWellFormed("no element".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framer_can_move_between_threads() {
        // Connections are tokio tasks on a multi-threaded runtime.
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Framer>();
        assert_send_sync::<StreamEvent>();
    }

    #[test]
    fn idle_release_keeps_partial_input() {
        let mut f = Framer::new(Limits::default());
        f.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
        assert!(matches!(f.next_event(), Ok(Some(StreamEvent::Open(_)))));
        // Idle between stanzas: everything goes.
        assert!(matches!(f.next_event(), Ok(None)));
        f.release_idle_memory();
        assert_eq!(f.buf.capacity(), 0);
        // Idle in the middle of a name, of an attribute value and of text.
        f.feed(b"<mess");
        assert!(matches!(f.next_event(), Ok(None)));
        f.release_idle_memory();
        f.feed(b"age to='a@b' id='x&amp;");
        assert!(matches!(f.next_event(), Ok(None)));
        f.release_idle_memory();
        f.feed(b"y'><body>hel");
        assert!(matches!(f.next_event(), Ok(None)));
        f.release_idle_memory();
        f.feed(b"lo &lt;3</body></message>");
        let Ok(Some(StreamEvent::Stanza(el))) = f.next_event() else {
            panic!("expected the message");
        };
        assert_eq!(el.attr("id"), Some("x&y"));
        assert_eq!(
            el.get_child("body", "jabber:client").map(|b| b.text()),
            Some("hello <3".into())
        );
    }

    #[test]
    fn emptied_buffer_releases_bursts() {
        let mut f = Framer::new(Limits::default());
        f.feed(&vec![b' '; 4 << 20]);
        assert_eq!(f.buffered_len(), 0);
        f.feed(b"<");
        assert!(f.buf.capacity() <= SHRINK_ABOVE);
    }
}
