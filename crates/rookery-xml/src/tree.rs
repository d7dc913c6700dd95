//! Turns rxml's raw events into stream headers and element trees, enforcing
//! the count limits as each event arrives.
//!
//! Flow: bytes from a socket → [`crate::Framer`] (rxml `RawParser` → this
//! assembler) → [`crate::StreamEvent`] → protocol machines in rookery-proto.
//! [`crate::Element::parse`] uses the same assembler without a stream root.
//!
//! rxml's raw events arrive one token at a time (`<name`, each attribute,
//! `>`, text chunk, end tag), so depth, element count, attribute count and
//! namespace-declaration count are checked before the event is stored: a
//! hostile stanza is refused at the first event over a limit, never after it
//! has been buffered. Namespace well-formedness that the raw parser leaves to
//! its caller (unbound prefixes, duplicate expanded attribute names) is
//! checked here with the scopes from `ns.rs`.

use rxml::RawEvent;

use crate::error::{not_wf, policy};
use crate::framer::StreamHeader;
use crate::ns::NsScopes;
use crate::{Element, FramerError, Limits, NS_STREAMS, NS_XMLNS};

/// What one raw event amounted to.
#[derive(Debug)]
pub(crate) enum Output {
    /// Nothing to report yet.
    Nothing,
    /// The stream root's start tag is complete.
    Header(StreamHeader),
    /// A top-level element is complete.
    Complete(Element),
    /// The stream root was closed.
    RootClosed,
}

/// A start tag whose attributes are still arriving. Names resolve only at
/// `>`: a declaration may follow the attribute that uses its prefix.
#[derive(Debug)]
struct Head {
    prefix: Option<String>,
    local: String,
    attrs: Vec<(Option<String>, String, String)>,
    default_decl: Option<String>,
    decls: Vec<(String, String)>,
}

#[derive(Debug)]
pub(crate) struct Assembler {
    limits: Limits,
    ns: NsScopes,
    head: Option<Head>,
    /// Open elements of the current top-level element, outermost first.
    /// Children are attached to their parent only when they close, so no
    /// partially built tree is ever deep (dropping it cannot recurse far).
    stack: Vec<Element>,
    /// Open elements, the stream root included.
    depth: usize,
    /// How many enclosing elements are not part of a stanza: 1 for a stream
    /// (the root), 0 for a standalone element.
    base: usize,
    /// Elements started in the current top-level element.
    elements: usize,
}

impl Assembler {
    pub(crate) fn new(limits: Limits, stream: bool) -> Self {
        Assembler {
            limits,
            ns: NsScopes::new(),
            head: None,
            stack: Vec::new(),
            depth: 0,
            base: usize::from(stream),
            elements: 0,
        }
    }

    pub(crate) fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Between top-level elements the open-element stack is empty: give back
    /// the room the last deep stanza left in it.
    pub(crate) fn release_idle_memory(&mut self) {
        if self.stack.is_empty() {
            self.stack = Vec::new();
        }
    }

    /// Forget everything (stream restart); limits stay.
    pub(crate) fn reset(&mut self) {
        self.ns.clear();
        self.head = None;
        self.stack.clear();
        self.depth = 0;
        self.elements = 0;
    }

    pub(crate) fn process(&mut self, ev: RawEvent) -> Result<Output, FramerError> {
        match ev {
            RawEvent::XmlDeclaration(..) => Ok(Output::Nothing),
            RawEvent::ElementHeadOpen(_, (prefix, local)) => {
                self.depth += 1;
                if self.depth > self.base {
                    // The depth check is what stops rxml early on deeply
                    // nested input: its cost grows with depth.
                    let depth = self.depth - self.base;
                    if depth > self.limits.max_depth {
                        return Err(policy("element depth", self.limits.max_depth));
                    }
                    self.elements += 1;
                    if self.elements > self.limits.max_elements {
                        return Err(policy("element count", self.limits.max_elements));
                    }
                }
                self.head = Some(Head {
                    prefix: prefix.map(String::from),
                    local: String::from(local),
                    attrs: Vec::new(),
                    default_decl: None,
                    decls: Vec::new(),
                });
                Ok(Output::Nothing)
            }
            RawEvent::Attribute(_, (prefix, local), value) => {
                self.attribute(prefix.map(String::from), String::from(local), value)?;
                Ok(Output::Nothing)
            }
            RawEvent::ElementHeadClose(_) => self.head_close(),
            RawEvent::Text(_, text) => {
                match self.stack.last_mut() {
                    Some(top) => top.append_text(text),
                    // Between top-level elements: whitespace keepalives are
                    // fine (the framer normally skips them before rxml sees
                    // them), anything else is not an XMPP stream.
                    None if is_xml_whitespace(text.as_bytes()) => {}
                    None => {
                        return Err(FramerError::BadFormat(
                            "character data between top-level elements".into(),
                        ));
                    }
                }
                Ok(Output::Nothing)
            }
            RawEvent::ElementFoot(_) => {
                self.ns.pop();
                self.depth = self.depth.saturating_sub(1);
                match self.stack.pop() {
                    Some(done) => match self.stack.last_mut() {
                        Some(parent) => {
                            parent.children.push(done.into());
                            Ok(Output::Nothing)
                        }
                        None => {
                            self.elements = 0;
                            Ok(Output::Complete(done))
                        }
                    },
                    None => Ok(Output::RootClosed),
                }
            }
        }
    }

    fn attribute(
        &mut self,
        prefix: Option<String>,
        local: String,
        value: String,
    ) -> Result<(), FramerError> {
        let Some(head) = self.head.as_mut() else {
            // rxml only emits attributes between head open and close.
            return Err(not_wf("attribute outside a start tag"));
        };
        let is_decl = match prefix.as_deref() {
            None => local == "xmlns",
            Some(p) => p == "xmlns",
        };
        if is_decl {
            if head.decls.len() + usize::from(head.default_decl.is_some())
                >= self.limits.max_ns_decls
            {
                return Err(policy(
                    "namespace declarations on one element",
                    self.limits.max_ns_decls,
                ));
            }
            // rxml rejects binding the XML namespace to anything but `xml`
            // and touching `xmlns:xmlns`; the xmlns namespace itself may not
            // be declared either (Namespaces in XML 1.0, §3).
            if value == NS_XMLNS {
                return Err(not_wf("the xmlns namespace cannot be declared"));
            }
            if prefix.is_none() {
                if head.default_decl.is_some() {
                    return Err(not_wf("duplicate attribute xmlns"));
                }
                head.default_decl = Some(value);
            } else {
                if head.decls.iter().any(|(p, _)| *p == local) {
                    return Err(not_wf(format!("duplicate attribute xmlns:{local}")));
                }
                head.decls.push((local, value));
            }
        } else {
            if head.attrs.len() >= self.limits.max_attrs {
                return Err(policy("attributes on one element", self.limits.max_attrs));
            }
            head.attrs.push((prefix, local, value));
        }
        Ok(())
    }

    fn head_close(&mut self) -> Result<Output, FramerError> {
        let Some(head) = self.head.take() else {
            return Err(not_wf("start tag end without a start tag"));
        };
        self.ns.push(head.default_decl.as_deref(), &head.decls);
        let ns = match head.prefix.as_deref() {
            None => self.ns.default_ns().to_string(),
            Some("xmlns") => return Err(not_wf("element names cannot use the xmlns prefix")),
            Some(p) => self
                .ns
                .lookup(p)
                .ok_or_else(|| not_wf(format!("unbound prefix {p}")))?
                .to_owned(),
        };
        let mut attrs: Vec<(String, String)> = Vec::with_capacity(head.attrs.len());
        for (prefix, local, value) in head.attrs {
            let key = match prefix.as_deref() {
                None => local,
                Some("xml") => format!("xml:{local}"),
                Some(p) => {
                    let uri = self
                        .ns
                        .lookup(p)
                        .ok_or_else(|| not_wf(format!("unbound prefix {p}")))?;
                    format!("{{{uri}}}{local}")
                }
            };
            // Quadratic, but bounded by max_attrs on an element that itself
            // costs that many attributes' worth of input bytes.
            if attrs.iter().any(|(k, _)| *k == key) {
                return Err(not_wf(format!("duplicate attribute {key}")));
            }
            attrs.push((key, value));
        }

        if self.depth <= self.base {
            if ns != NS_STREAMS || head.local != "stream" {
                return Err(FramerError::InvalidNamespace(format!(
                    "stream root is {{{ns}}}{}, expected {{{NS_STREAMS}}}stream",
                    head.local
                )));
            }
            return Ok(Output::Header(StreamHeader {
                ns,
                name: head.local,
                default_ns: head.default_decl,
                attrs,
                ns_decls: head.decls,
            }));
        }
        self.stack.push(Element {
            name: head.local,
            ns,
            attrs,
            children: Vec::new(),
        });
        Ok(Output::Nothing)
    }
}

pub(crate) fn is_xml_whitespace(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}
