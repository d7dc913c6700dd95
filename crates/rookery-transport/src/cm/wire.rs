//! The connection-manager link protocol on the wire (Openfire's `jabber:connectionmanager`, which
//! no XEP defines: Openfire's server and CM are the reference, decision 0009), shared by the
//! server's link listener and the `rookery cm` process: the handshake digest, the `<route>`
//! wrapper, the session-control IQs and Rookery's link extension (`urn:rookery:cm:0`:
//! acknowledgements `<a h/>`, `<resume previd h/>` / `<resumed previd h/>` / `<failed previd/>`).
//! Pure functions, no I/O.

use rookery_proto::ns;
use rookery_xml::Element;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// `<handshake>` content: lowercase hex SHA-1 of stream id ‖ secret (as XEP-0114).
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Whether a received digest matches, hex compared case-insensitively in constant time.
pub fn digest_matches(given: &str, stream_id: &str, secret: &str) -> bool {
    let expected = handshake_digest(stream_id, secret);
    let given = given.trim().to_ascii_lowercase();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Appends `<route from to streamid>payload</route>` as Openfire writes it inside a link
/// stream: a `jabber:client` stanza goes without `xmlns`, so on the wire it inherits the
/// link's `jabber:connectionmanager`; other payloads (SASL) declare their own namespace.
/// The reader takes either form back with [`client_payload`]. Decision 0009.
pub fn write_route(out: &mut Vec<u8>, from: &str, to: &str, streamid: &str, payload: &Element) {
    rookery_xml::open_tag(
        out,
        "route",
        &[("from", from), ("to", to), ("streamid", streamid)],
    );
    payload.write_to(out, ns::CLIENT);
    out.extend_from_slice(b"</route>");
}

/// A payload taken out of a `<route>` (or a `<failed>`), as a client element: what arrived
/// without a namespace of its own inherited the link's `jabber:connectionmanager` and is a
/// `jabber:client` stanza (Openfire's CM wraps the client's bytes as they came, and
/// Openfire's server writes stanzas that way too); a payload that declares `jabber:client`
/// or another namespace (SASL) is taken as it is. Decision 0009.
pub fn client_payload(mut el: Element) -> Element {
    el.rename_ns(ns::CM_LINK, ns::CLIENT);
    el
}

/// The stanza inside `<session><failed>`: Openfire's CM writes it there as it got it,
/// without a namespace, so it inherits the session element's
/// `http://jabber.org/protocol/connectionmanager`; a client stanza all the same.
pub fn failed_payload(mut el: Element) -> Element {
    el.rename_ns(ns::CM, ns::CLIENT);
    client_payload(el)
}

/// A route carrying raw, already serialized content (a stream error for the client).
pub fn write_route_raw(out: &mut Vec<u8>, from: &str, to: &str, streamid: &str, raw: &[u8]) {
    rookery_xml::open_tag(
        out,
        "route",
        &[("from", from), ("to", to), ("streamid", streamid)],
    );
    out.extend_from_slice(raw);
    out.extend_from_slice(b"</route>");
}

/// Serializes a control element (iq, ack) as it is written on the link.
pub fn to_link_bytes(el: &Element) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    el.write_to(&mut out, ns::CM_LINK);
    out
}

/// `<iq type id><session xmlns=CM id=streamid>{child}</session></iq>`.
pub fn session_iq(iq_type: &str, id: &str, streamid: &str, child: Option<Element>) -> Element {
    let mut session = Element::new("session", ns::CM).with_attr("id", streamid);
    if let Some(c) = child {
        session.append_child(c);
    }
    Element::new("iq", ns::CM_LINK)
        .with_attr("type", iq_type)
        .with_attr("id", id)
        .child(session)
}

/// The `<session/>` child of a session-control IQ and its one action child.
pub fn session_action(iq: &Element) -> Option<(&Element, Option<&Element>)> {
    let session = iq.get_child("session", ns::CM)?;
    Some((session, session.children().next()))
}

/// An IQ error reply in the link namespace, optionally with a CM application condition.
pub fn iq_error(
    req: &Element,
    err_type: &str,
    condition: &str,
    app: Option<&str>,
    from: Option<&str>,
) -> Element {
    let mut error = Element::new("error", ns::CM_LINK)
        .with_attr("type", err_type)
        .child(Element::new(condition, ns::STANZAS));
    if let Some(a) = app {
        error.append_child(Element::new(a, ns::CM_ERRORS));
    }
    let mut reply = Element::new("iq", ns::CM_LINK).with_attr("type", "error");
    if let Some(id) = req.attr("id") {
        reply.set_attr("id", id);
    }
    if let Some(f) = from {
        reply.set_attr("from", f);
    }
    // Error replies carry a copy of the request's child (the session element).
    for c in req.children() {
        reply.append_child(c.clone());
    }
    reply.append_child(error);
    reply
}

/// `<a xmlns='urn:rookery:cm:0' h='N'/>`: N reliable elements received on this link so far.
pub fn ack_bytes(h: u64) -> Vec<u8> {
    format!("<a xmlns='{}' h='{h}'/>", ns::ROOKERY_CM).into_bytes()
}

/// A link-extension element naming another link: `<resume previd h/>` (CM → server),
/// `<resumed previd h/>` and `<failed previd/>` (server → CM).
pub fn link_ext(name: &str, previd: &str, h: Option<u64>) -> Vec<u8> {
    let mut el = Element::new(name, ns::ROOKERY_CM).with_attr("previd", previd);
    if let Some(h) = h {
        el.set_attr("h", h.to_string());
    }
    to_link_bytes(&el)
}

/// A counter attribute (`h`) of an extension element.
pub fn h_attr(el: &Element) -> Option<u64> {
    el.attr("h")?.parse().ok()
}

/// Whether an element received on a link counts for acknowledgement: everything but the
/// link extension's own elements.
pub fn is_reliable(el: &Element) -> bool {
    el.ns() != ns::ROOKERY_CM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_vectors() {
        // A CM-style stream id (the CM's name, then random hex) and XEP-0114 §3's Example 3:
        // the link handshake is XEP-0114's digest.
        assert_eq!(
            handshake_digest("cm01a7f3c9e2", "s3cret"),
            "b758c0998cedd4cc79edbac19749e12810359ec2"
        );
        assert_eq!(
            handshake_digest("3BF96D32", "secret"),
            "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"
        );
        assert!(digest_matches(
            "B09EA9B3B7F586BE8A08D0A3DD7466F110AEB136",
            "3BF96D32",
            "secret"
        ));
        assert!(!digest_matches(
            "b09ea9b3b7f586be8a08d0a3dd7466f110aeb137",
            "3BF96D32",
            "secret"
        ));
        assert!(!digest_matches("", "3BF96D32", "secret"));
    }

    #[test]
    fn route_escapes_and_writes_stanzas_in_the_link_namespace() {
        let mut out = Vec::new();
        let msg = Element::new("message", ns::CLIENT)
            .with_attr("to", "a@b")
            .child(Element::new("body", ns::CLIENT).with_text("x"));
        write_route(&mut out, "example.com", "cm'1", "s<1", &msg);
        let mut sasl = Vec::new();
        write_route(&mut sasl, "a", "b", "c", &Element::new("success", ns::SASL));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<route from='example.com' to='cm&apos;1' streamid='s&lt;1'>\
             <message to='a@b'><body>x</body></message></route>"
        );
        assert_eq!(
            String::from_utf8(sasl).unwrap(),
            "<route from='a' to='b' streamid='c'>\
             <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></route>"
        );
    }

    /// Both forms of a routed stanza read back as the same client element: inheriting the
    /// link namespace (Openfire's) and declaring `jabber:client` (Rookery's before 0009).
    #[test]
    fn routed_payloads_in_either_form_are_client_elements() {
        let wrap = |payload: &str| {
            format!(
                "<stream:stream xmlns:stream='{}' xmlns='{}'>\
                 <route streamid='s'>{payload}</route>",
                ns::STREAM,
                ns::CM_LINK
            )
        };
        let first_payload = |xml: String| {
            let mut f = rookery_xml::Framer::new(rookery_xml::Limits::default());
            f.feed(xml.as_bytes());
            let _header = f.next_event().unwrap().unwrap();
            let Some(rookery_xml::StreamEvent::Stanza(route)) = f.next_event().unwrap() else {
                panic!("no route");
            };
            client_payload(route.children().next().unwrap().clone())
        };
        let inherited = first_payload(wrap(
            "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        ));
        let declared = first_payload(wrap(
            "<iq xmlns='jabber:client' type='set' id='b'>\
             <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        ));
        assert!(inherited.is("iq", ns::CLIENT), "{}", inherited.to_xml());
        assert_eq!(inherited, declared);
        assert!(inherited.get_child("bind", ns::BIND).is_some());
        let sasl = first_payload(wrap(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>",
        ));
        assert!(sasl.is("auth", ns::SASL));
    }

    #[test]
    fn link_extension_elements_are_escaped_and_namespaced() {
        let b = String::from_utf8(link_ext("resumed", "a'b", Some(7))).unwrap();
        assert_eq!(
            b,
            "<resumed xmlns='urn:rookery:cm:0' previd='a&apos;b' h='7'/>"
        );
        let b = String::from_utf8(link_ext("failed", "x", None)).unwrap();
        assert_eq!(b, "<failed xmlns='urn:rookery:cm:0' previd='x'/>");
    }

    #[test]
    fn error_reply_copies_the_request_child() {
        let req = session_iq("set", "x1", "", Some(Element::new("close", ns::CM)));
        let err = iq_error(&req, "modify", "bad-request", Some("id-required"), None);
        assert_eq!(err.attr("type"), Some("error"));
        assert!(err.get_child("session", ns::CM).is_some());
        let e = err.get_child("error", ns::CM_LINK).unwrap();
        assert!(e.get_child("bad-request", ns::STANZAS).is_some());
        assert!(e.get_child("id-required", ns::CM_ERRORS).is_some());
    }
}
