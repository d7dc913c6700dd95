//! A routed stanza: the element plus its parsed header (kind, to, from, type, id). Built once when
//! a stanza enters the server (c2s actor, later s2s/component links); routing and delivery read
//! only this header, and modules parse only the payload they own.

use crate::error::{Condition, StanzaError};
use crate::ns;
pub use jid::{BareJid, FullJid, Jid};
use rookery_xml::Element;

/// The three stanza kinds of RFC 6120 §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Message,
    Presence,
    Iq,
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Kind> {
        match name {
            "message" => Some(Kind::Message),
            "presence" => Some(Kind::Presence),
            "iq" => Some(Kind::Iq),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Presence => "presence",
            Kind::Iq => "iq",
        }
    }
}

/// A stanza in the server's canonical form: namespace `jabber:client` (the content namespace a
/// session writes out as its default), `to`/`from` parsed and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    kind: Kind,
    to: Option<Jid>,
    from: Option<Jid>,
    el: Element,
}

/// Why an element could not become a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StanzaParseError {
    /// Not message/presence/iq in a content namespace: a stream-level problem
    /// (`unsupported-stanza-type` or `invalid-namespace`).
    NotAStanza,
    /// A stanza with a bad header: answer with this stanza error (`jid-malformed`, `bad-request`).
    Bad(Box<StanzaError>),
}

impl Stanza {
    /// Parses the header of an element received on a stream whose content namespace is
    /// `content_ns` (`jabber:client`, `jabber:server`, `jabber:component:accept`). The element is
    /// renamed into `jabber:client` so that everything inside the server sees one namespace;
    /// children that inherited the stream namespace move with it. A refused element comes back
    /// with the error, so callers can answer it without copying every element up front.
    #[allow(clippy::result_large_err)] // the element itself is handed back, not an error value
    pub fn from_element(
        mut el: Element,
        content_ns: &str,
    ) -> Result<Stanza, (StanzaParseError, Element)> {
        if el.ns() != content_ns {
            return Err((StanzaParseError::NotAStanza, el));
        }
        let Some(kind) = Kind::from_name(el.name()) else {
            return Err((StanzaParseError::NotAStanza, el));
        };
        if content_ns != ns::CLIENT {
            el = rename_ns(el, content_ns, ns::CLIENT);
        }
        let (to, from) = match (parse_jid_attr(&el, "to"), parse_jid_attr(&el, "from")) {
            (Ok(to), Ok(from)) => (to, from),
            (Err(e), _) | (_, Err(e)) => return Err((e, el)),
        };
        if let Some(t) = &to {
            el.set_attr("to", t.as_str());
        }
        if let Some(f) = &from {
            el.set_attr("from", f.as_str());
        }
        let st = Stanza { kind, to, from, el };
        match st.check_type() {
            Ok(()) => Ok(st),
            Err(e) => Err((e, st.el)),
        }
    }

    /// Builds a stanza the server itself originates.
    pub fn new(el: Element) -> Result<Stanza, StanzaParseError> {
        Stanza::from_element(el, ns::CLIENT).map_err(|(e, _)| e)
    }

    fn check_type(&self) -> Result<(), StanzaParseError> {
        let ty = self.el.attr("type");
        let ok = match self.kind {
            Kind::Iq => {
                let ok = matches!(ty, Some("get" | "set" | "result" | "error"));
                // RFC 6120 §8.1.3: an iq must carry an id.
                ok && self.el.attr("id").is_some()
            }
            Kind::Message => matches!(
                ty,
                None | Some("chat" | "normal" | "headline" | "groupchat" | "error")
            ),
            Kind::Presence => matches!(
                ty,
                None | Some(
                    "unavailable"
                        | "subscribe"
                        | "subscribed"
                        | "unsubscribe"
                        | "unsubscribed"
                        | "probe"
                        | "error"
                )
            ),
        };
        if ok {
            Ok(())
        } else {
            Err(StanzaParseError::Bad(Box::new(
                StanzaError::new(Condition::BadRequest).with_text("invalid stanza type or id"),
            )))
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn to(&self) -> Option<&Jid> {
        self.to.as_ref()
    }
    pub fn from(&self) -> Option<&Jid> {
        self.from.as_ref()
    }
    pub fn id(&self) -> Option<&str> {
        self.el.attr("id")
    }
    /// The `type` attribute, or "" when absent (the default meaning differs per kind).
    pub fn type_attr(&self) -> &str {
        self.el.attr("type").unwrap_or("")
    }
    pub fn is_error(&self) -> bool {
        self.type_attr() == "error"
    }
    pub fn element(&self) -> &Element {
        &self.el
    }
    pub fn element_mut(&mut self) -> &mut Element {
        &mut self.el
    }
    pub fn into_element(self) -> Element {
        self.el
    }

    pub fn set_to(&mut self, to: Option<Jid>) {
        match &to {
            Some(j) => self.el.set_attr("to", j.as_str()),
            None => {
                self.el.remove_attr("to");
            }
        }
        self.to = to;
    }
    pub fn set_from(&mut self, from: Option<Jid>) {
        match &from {
            Some(j) => self.el.set_attr("from", j.as_str()),
            None => {
                self.el.remove_attr("from");
            }
        }
        self.from = from;
    }

    /// The error reply to this stanza, or `None` when RFC 6120 forbids one: never answer an
    /// error with an error (§8.3.1), nor an iq result (§8.2.3).
    pub fn error_reply(&self, err: StanzaError) -> Option<Stanza> {
        if self.is_error() || (self.kind == Kind::Iq && self.type_attr() == "result") {
            return None;
        }
        // RFC 6120 §8.3.1: the error stanza includes the original payload (we keep the children
        // except for iq, whose payload the requester already has; keeps bounces small).
        let mut el = Element::new(self.kind.as_str(), ns::CLIENT);
        for (k, v) in self.el.attrs() {
            if k != "to" && k != "from" && k != "type" {
                el.set_attr(k, v);
            }
        }
        el.set_attr("type", "error");
        if self.kind != Kind::Iq {
            for child in self.el.children() {
                if child.name() != "error" {
                    el.append_child(child.clone());
                }
            }
        }
        el.append_child(err.to_element(ns::CLIENT));
        let mut reply = Stanza {
            kind: self.kind,
            to: None,
            from: None,
            el,
        };
        reply.set_to(self.from.clone());
        reply.set_from(self.to.clone());
        Some(reply)
    }

    /// An empty `type='result'` reply to an iq get/set (addresses swapped).
    pub fn iq_result(&self, payload: Option<Element>) -> Stanza {
        let mut el = Element::new("iq", ns::CLIENT).with_attr("type", "result");
        if let Some(id) = self.id() {
            el.set_attr("id", id);
        }
        if let Some(p) = payload {
            el.append_child(p);
        }
        let mut reply = Stanza {
            kind: Kind::Iq,
            to: None,
            from: None,
            el,
        };
        reply.set_to(self.from.clone());
        reply.set_from(self.to.clone());
        reply
    }

    /// The payload child of an iq get/set (its single element child).
    pub fn iq_payload(&self) -> Option<&Element> {
        self.el.children().next()
    }
}

fn parse_jid_attr(el: &Element, attr: &str) -> Result<Option<Jid>, StanzaParseError> {
    match el.attr(attr) {
        None => Ok(None),
        Some(s) => Jid::new(s).map(Some).map_err(|e| {
            StanzaParseError::Bad(Box::new(
                StanzaError::new(Condition::JidMalformed).with_text(format!("{attr}: {e}")),
            ))
        }),
    }
}

/// Moves an element and the descendants that share its namespace into another namespace (the
/// stanza namespace differs per stream type; RFC 6120 §4.8.3).
fn rename_ns(el: Element, from: &str, to: &str) -> Element {
    let mut out = Element::new(el.name(), if el.ns() == from { to } else { el.ns() });
    for (k, v) in el.attrs() {
        out.set_attr(k, v);
    }
    for node in el.nodes() {
        match node {
            rookery_xml::Node::Element(child) => {
                out.append_child(rename_ns(child.clone(), from, to));
            }
            rookery_xml::Node::Text(t) => out.nodes_mut().push(rookery_xml::Node::Text(t.clone())),
        }
    }
    out
}

/// A stream header's domain (`to`/`from`) in the form JIDs take inside the server (nameprep,
/// lowercase), or None when it is not a bare domain.
pub fn normalize_domain(d: &str) -> Option<String> {
    BareJid::new(d)
        .ok()
        .filter(|j| j.node().is_none())
        .map(|j| j.domain().as_str().to_owned())
}

/// Whether `domain` is `parent` or a subdomain of it, respecting label boundaries:
/// `badexample.com` is not under `example.com`, which a plain suffix test would accept.
pub fn is_subdomain_of(domain: &str, parent: &str) -> bool {
    domain == parent
        || (domain.len() > parent.len()
            && domain.ends_with(parent)
            && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_domains_are_normalised_like_jids() {
        assert_eq!(
            normalize_domain("Example.ORG").as_deref(),
            Some("example.org")
        );
        assert_eq!(normalize_domain("user@example.org"), None);
        assert_eq!(normalize_domain("a@@b"), None);
    }

    #[test]
    fn subdomain_respects_labels() {
        assert!(is_subdomain_of("a.example.com", "example.com"));
        assert!(is_subdomain_of("example.com", "example.com"));
        assert!(!is_subdomain_of("badexample.com", "example.com"));
    }

    #[test]
    fn error_reply_swaps_and_never_bounces_errors() {
        let el = Element::parse(
            "<message xmlns='jabber:client' to='a@b' from='c@d/r' id='1' type='chat'><body>x</body></message>",
        )
        .unwrap();
        let st = Stanza::new(el).unwrap();
        let err = st.error_reply(StanzaError::service_unavailable()).unwrap();
        assert_eq!(err.to().unwrap().as_str(), "c@d/r");
        assert_eq!(err.from().unwrap().as_str(), "a@b");
        assert!(err.is_error());
        assert!(err.element().get_child("body", ns::CLIENT).is_some());
        assert!(
            err.error_reply(StanzaError::service_unavailable())
                .is_none()
        );
    }

    #[test]
    fn bad_jid_is_jid_malformed() {
        let el = Element::parse("<message xmlns='jabber:client' to='a@@b'/>").unwrap();
        match Stanza::new(el) {
            Err(StanzaParseError::Bad(e)) => assert_eq!(e.condition, Condition::JidMalformed),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn iq_needs_id_and_valid_type() {
        let el = Element::parse("<iq xmlns='jabber:client' type='get'/>").unwrap();
        assert!(matches!(Stanza::new(el), Err(StanzaParseError::Bad(_))));
        let el = Element::parse("<iq xmlns='jabber:client' type='bogus' id='1'/>").unwrap();
        assert!(matches!(Stanza::new(el), Err(StanzaParseError::Bad(_))));
    }

    #[test]
    fn server_namespace_is_renamed_to_client() {
        let el = Element::parse(
            "<message xmlns='jabber:server' to='a@b' from='c@d'><body>x</body></message>",
        )
        .unwrap();
        let st = Stanza::from_element(el, ns::SERVER).unwrap();
        assert_eq!(st.element().ns(), ns::CLIENT);
        assert!(st.element().get_child("body", ns::CLIENT).is_some());
    }
}
