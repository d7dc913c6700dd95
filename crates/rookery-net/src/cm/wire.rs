//! The connection-manager link protocol on the wire (Openfire's `jabber:connectionmanager`,
//! SEED-PROTOCOLS §3), shared by the server's link listener and the `rookery cm` process: the
//! handshake digest, the `<route>` wrapper, the session-control IQs and Rookery's link
//! extension (`urn:rookery:cm:0`: acknowledgements `<a h/>`, `<resume previd h/>` /
//! `<resumed previd h/>` / `<failed previd/>`). Pure functions, no I/O.

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

/// Appends `<route from to streamid>payload</route>` as written inside a link stream (whose
/// default namespace is `jabber:connectionmanager`; the payload declares its own).
pub fn write_route(out: &mut Vec<u8>, from: &str, to: &str, streamid: &str, payload: &Element) {
    rookery_xml::open_tag(
        out,
        "route",
        &[("from", from), ("to", to), ("streamid", streamid)],
    );
    payload.write_to(out, ns::CM_LINK);
    out.extend_from_slice(b"</route>");
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
        // SEED-PROTOCOLS §3.2 and XEP-0114's example.
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
    fn route_escapes_and_declares_the_payload_namespace() {
        let mut out = Vec::new();
        let msg = Element::new("message", ns::CLIENT).with_attr("to", "a@b");
        write_route(&mut out, "example.com", "cm'1", "s<1", &msg);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<route from='example.com' to='cm&apos;1' streamid='s&lt;1'>\
             <message xmlns='jabber:client' to='a@b'/></route>"
        );
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
