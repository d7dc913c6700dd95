//! Serializer: [`Element`] and stream headers → bytes.
//!
//! Flow: protocol machines in rookery-proto build an [`Element`] → this
//! module writes it → bytes for the socket (the inbound direction is bytes →
//! [`crate::Framer`] → [`crate::StreamEvent`]). Output is always
//! well-formed and re-parses to an equal element: elements are written
//! unprefixed with a default-namespace declaration whenever the namespace
//! changes, namespaced attributes get generated `nsN` prefixes, and all
//! character data is escaped so that XML's end-of-line and attribute-value
//! normalization cannot alter it on the way back in.

use crate::element::{Element, Node};
use crate::{NS_STREAMS, NS_XML, NS_XMLNS};

/// The closing tag of a stream opened with [`stream_open`].
pub const STREAM_CLOSE: &str = "</stream:stream>";

/// U+FFFD: stands in for characters XML 1.0 cannot carry at all (C0 controls
/// other than tab/LF/CR, U+FFFE, U+FFFF). Dropping them silently would hide
/// that something was lost; escaping them is impossible in XML 1.0.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Bytes that may need attention: bit 0 in character data, bit 1 in
/// attribute values. Lets the common case (nothing to escape) run as a
/// table-driven scan plus one bulk copy; every stanza goes through here.
const SPECIAL: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = 3; // C0 controls (tab/LF are only special in attributes)
        b += 1;
    }
    t[b'\t' as usize] = 2;
    t[b'\n' as usize] = 2;
    t[b'&' as usize] = 3;
    t[b'<' as usize] = 3;
    t[b'>' as usize] = 3;
    t[b'\'' as usize] = 2;
    t[b'"' as usize] = 2;
    t[0xef] = 3; // lead byte of U+FFFE / U+FFFF
    t
};

/// Append `s` escaped for use as character data (`attr == false`) or inside
/// an attribute value delimited by `'` (`attr == true`).
fn escape_into(out: &mut Vec<u8>, s: &str, attr: bool) {
    let bytes = s.as_bytes();
    let mask = if attr { 2 } else { 1 };
    let mut done = 0; // bytes[..done] have been copied or replaced
    let mut i = 0;
    while i < bytes.len() {
        let Some(off) = bytes[i..]
            .iter()
            .position(|&b| SPECIAL[b as usize] & mask != 0)
        else {
            break;
        };
        i += off;
        let b = bytes[i];
        let (rep, len): (&[u8], usize) = match b {
            b'&' => (b"&amp;", 1),
            b'<' => (b"&lt;", 1),
            // `>` only has to be escaped in `]]>`, but always escaping it is
            // simpler and costs nothing measurable.
            b'>' => (b"&gt;", 1),
            // A literal CR would be folded into LF by end-of-line handling.
            b'\r' => (b"&#xD;", 1),
            b'\'' if attr => (b"&apos;", 1),
            b'"' if attr => (b"&quot;", 1),
            // Attribute-value normalization turns literal tab/LF into spaces.
            b'\n' if attr => (b"&#xA;", 1),
            b'\t' if attr => (b"&#x9;", 1),
            b'\t' | b'\n' => {
                i += 1;
                continue;
            }
            0x00..=0x1f => (REPLACEMENT, 1),
            // U+FFFE / U+FFFF are EF BF BE / EF BF BF in UTF-8.
            0xef if bytes.get(i + 1) == Some(&0xbf)
                && matches!(bytes.get(i + 2), Some(0xbe | 0xbf)) =>
            {
                (REPLACEMENT, 3)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[done..i]);
        out.extend_from_slice(rep);
        i += len;
        done = i;
    }
    out.extend_from_slice(&bytes[done..]);
}

/// Append ` name='value'` with the value escaped.
fn write_attr(out: &mut Vec<u8>, prefix: Option<&str>, name: &str, value: &str) {
    out.push(b' ');
    if let Some(p) = prefix {
        out.extend_from_slice(p.as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"='");
    escape_into(out, value, true);
    out.push(b'\'');
}

/// Split a `{uri}local` key. `None` for plain and `xml:` keys.
pub(crate) fn split_clark(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix('{')?;
    let close = rest.find('}')?;
    Some((&rest[..close], &rest[close + 1..]))
}

/// Append the digits of `n` (prefix numbers; avoids `format!` allocations).
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[..len].iter().rev());
}

impl Element {
    /// Serialize into `out`. `parent_ns` is the default namespace in scope
    /// where the element is written (for a stanza: the stream's content
    /// namespace, e.g. `jabber:client`); `xmlns='…'` is emitted only when the
    /// element's namespace differs from it.
    pub fn write_to(&self, out: &mut Vec<u8>, parent_ns: &str) {
        self.write_inner(out, Some(parent_ns), None);
    }

    /// Serialize as `prefix:name`, where `prefix` is already bound to this element's namespace
    /// by an enclosing element (e.g. `db` on an s2s stream header: some peers match dialback
    /// elements by their prefixed name). The default namespace in scope stays `parent_ns`.
    pub fn write_prefixed(&self, out: &mut Vec<u8>, prefix: &str, parent_ns: &str) {
        self.write_inner(out, Some(parent_ns), Some(prefix));
    }

    /// Serialize standalone, always declaring the element's namespace.
    pub fn to_xml(&self) -> String {
        let mut out = Vec::with_capacity(128);
        self.write_inner(&mut out, None, None);
        // Every byte written is either copied from a &str at a char boundary
        // or ASCII/U+FFFD produced here, so this never takes the lossy path.
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }

    /// `default_ns` is the default namespace in scope, `None` when nothing
    /// may be assumed (standalone output).
    fn write_inner(&self, out: &mut Vec<u8>, default_ns: Option<&str>, prefix: Option<&str>) {
        debug_assert!(
            rxml::strings::validate_ncname(&self.name).is_ok(),
            "invalid element name {:?}",
            self.name
        );
        // The XML namespace can never be the default namespace; elements in
        // it (which the parser accepts as `<xml:foo/>`) take the predeclared
        // `xml:` prefix, and the default namespace stays what it was.
        let in_xml_ns = self.ns == NS_XML;
        // A prefixed element (the XML namespace's, or one bound by the caller) leaves the
        // default namespace as it was.
        let prefix = if in_xml_ns { Some("xml") } else { prefix };
        let child_default = if prefix.is_some() {
            default_ns
        } else {
            Some(self.ns.as_str())
        };
        out.push(b'<');
        if let Some(p) = prefix {
            out.extend_from_slice(p.as_bytes());
            out.push(b':');
        }
        out.extend_from_slice(self.name.as_bytes());
        if prefix.is_none() && default_ns != Some(self.ns.as_str()) {
            write_attr(out, None, "xmlns", &self.ns);
        }
        // Namespace URIs of `{uri}local` attributes; prefix `nsN` is bound to
        // `prefixes[N]`. Declarations are written right before first use;
        // attribute order within a start tag carries no meaning.
        let mut prefixes: Vec<&str> = Vec::new();
        for (k, v) in &self.attrs {
            match split_clark(k) {
                // Not declarable (Namespaces in XML §3); the parser never
                // produces such a key.
                Some((NS_XMLNS, _)) => {}
                Some((uri, local)) => {
                    let n = match prefixes.iter().position(|p| *p == uri) {
                        Some(n) => n,
                        None => {
                            prefixes.push(uri);
                            out.extend_from_slice(b" xmlns:ns");
                            push_decimal(out, prefixes.len() - 1);
                            out.extend_from_slice(b"='");
                            escape_into(out, uri, true);
                            out.push(b'\'');
                            prefixes.len() - 1
                        }
                    };
                    out.extend_from_slice(b" ns");
                    push_decimal(out, n);
                    out.push(b':');
                    out.extend_from_slice(local.as_bytes());
                    out.extend_from_slice(b"='");
                    escape_into(out, v, true);
                    out.push(b'\'');
                }
                // Namespace declarations are the writer's business; a stray
                // `xmlns` key would silently re-namespace the element, so it
                // is not written (set_attr documents this).
                None if k == "xmlns" || k.starts_with("xmlns:") => {}
                None => write_attr(out, None, k, v),
            }
        }
        if self.children.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        for node in &self.children {
            match node {
                Node::Element(e) => e.write_inner(out, child_default, None),
                Node::Text(t) => escape_into(out, t, false),
            }
        }
        out.extend_from_slice(b"</");
        if let Some(p) = prefix {
            out.extend_from_slice(p.as_bytes());
            out.push(b':');
        }
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'>');
    }
}

/// Canonicalize an attribute key so equal attributes have equal keys:
/// `{}local` → `local`, `{XML namespace}local` → `xml:local`.
pub(crate) fn canonical_key(k: String) -> String {
    match split_clark(&k) {
        Some(("", local)) => local.to_owned(),
        Some((NS_XML, local)) => format!("xml:{local}"),
        _ => k,
    }
}

/// Append a stream header:
/// `<?xml version='1.0'?><stream:stream xmlns='DEFAULT_NS'
/// xmlns:stream='http://etherx.jabber.org/streams' xmlns:P='URI'… K='V'…>`.
/// `extra_ns` are `(prefix, uri)` pairs such as `("db",
/// "jabber:server:dialback")`; attribute keys are written verbatim (use
/// `xml:lang` for the language) and values are escaped.
/// Appends a start tag `<name a='v' …>` with escaped attribute values: for wrappers written
/// around an already serialized payload (a connection-manager `<route>`), where building an
/// `Element` just to write its start tag would copy the payload.
pub fn open_tag(out: &mut Vec<u8>, name: &str, attrs: &[(&str, &str)]) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    for (k, v) in attrs {
        write_attr(out, None, k, v);
    }
    out.push(b'>');
}

pub fn stream_open(
    out: &mut Vec<u8>,
    default_ns: &str,
    attrs: &[(&str, &str)],
    extra_ns: &[(&str, &str)],
) {
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream");
    write_attr(out, None, "xmlns", default_ns);
    write_attr(out, Some("xmlns"), "stream", NS_STREAMS);
    for (prefix, uri) in extra_ns {
        write_attr(out, Some("xmlns"), prefix, uri);
    }
    for (k, v) in attrs {
        write_attr(out, None, k, v);
    }
    out.push(b'>');
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixed_element_keeps_the_default_namespace_for_its_children() {
        let el = crate::Element::new("result", "jabber:server:dialback")
            .with_attr("from", "a&b")
            .child(crate::Element::new("error", "jabber:client").with_attr("type", "cancel"));
        let mut out = Vec::new();
        el.write_prefixed(&mut out, "db", "jabber:client");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<db:result from='a&amp;b'><error type='cancel'/></db:result>"
        );
        // Wrapped in a scope that binds db, it parses back to the same tree.
        let mut doc = b"<s xmlns='jabber:client' xmlns:db='jabber:server:dialback'>".to_vec();
        el.write_prefixed(&mut doc, "db", "jabber:client");
        doc.extend_from_slice(b"</s>");
        let parsed = crate::Element::parse(std::str::from_utf8(&doc).unwrap()).unwrap();
        assert_eq!(parsed.children().next(), Some(&el));
    }

    use super::*;

    fn esc(s: &str, attr: bool) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, s, attr);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn escapes_text() {
        assert_eq!(esc("a<b>&c]]>", false), "a&lt;b&gt;&amp;c]]&gt;");
        assert_eq!(esc("x\r\ny\t'\"", false), "x&#xD;\ny\t'\"");
        assert_eq!(esc("plain ünïcödé", false), "plain ünïcödé");
    }

    #[test]
    fn escapes_attributes() {
        assert_eq!(
            esc("'\"&<>\r\n\t", true),
            "&apos;&quot;&amp;&lt;&gt;&#xD;&#xA;&#x9;"
        );
    }

    #[test]
    fn replaces_chars_xml_cannot_carry() {
        assert_eq!(
            esc("a\u{0}b\u{1f}c\u{fffe}d\u{ffff}e", false),
            "a\u{fffd}b\u{fffd}c\u{fffd}d\u{fffd}e"
        );
        // U+FFFD and U+EFBF-ish neighbours stay untouched.
        assert_eq!(esc("\u{fffd}\u{fffc}", false), "\u{fffd}\u{fffc}");
    }

    #[test]
    fn writes_namespaces_minimally() {
        let e = Element::new("message", "jabber:client")
            .with_attr("to", "a@b")
            .child(Element::new("body", "jabber:client").with_text("hi"))
            .child(Element::new("x", "urn:x").child(Element::new("y", "")));
        let mut out = Vec::new();
        e.write_to(&mut out, "jabber:client");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "<message to='a@b'><body>hi</body><x xmlns='urn:x'><y xmlns=''/></x></message>"
        );
        assert_eq!(
            Element::new("a", "").to_xml(),
            "<a xmlns=''/>",
            "to_xml always declares"
        );
    }

    #[test]
    fn generates_prefixes_for_namespaced_attributes() {
        let e = Element::new("a", "urn:a")
            .with_attr("{urn:p}x", "1")
            .with_attr("xml:lang", "en")
            .with_attr("{urn:q}y", "2")
            .with_attr("{urn:p}z", "3");
        assert_eq!(
            e.to_xml(),
            "<a xmlns='urn:a' xmlns:ns0='urn:p' ns0:x='1' xml:lang='en' xmlns:ns1='urn:q' ns1:y='2' ns0:z='3'/>"
        );
    }

    #[test]
    fn elements_in_the_xml_namespace_use_the_xml_prefix() {
        let e = Element::new("a", "urn:a").child(
            Element::new("x", NS_XML)
                .child(Element::new("b", "urn:a"))
                .child(Element::new("c", "urn:c")),
        );
        assert_eq!(
            e.to_xml(),
            "<a xmlns='urn:a'><xml:x><b/><c xmlns='urn:c'/></xml:x></a>"
        );
        assert_eq!(Element::parse(&e.to_xml()), Ok(e));
        assert_eq!(Element::new("x", NS_XML).to_xml(), "<xml:x/>", "standalone");
    }

    #[test]
    fn canonicalizes_keys() {
        let e = Element::new("a", "")
            .with_attr("{}x", "1")
            .with_attr("{http://www.w3.org/XML/1998/namespace}lang", "en");
        assert_eq!(e.attr("x"), Some("1"));
        assert_eq!(e.attr("xml:lang"), Some("en"));
    }

    #[test]
    fn stream_header() {
        let mut out = Vec::new();
        stream_open(
            &mut out,
            "jabber:server",
            &[("from", "a'b"), ("version", "1.0")],
            &[("db", "jabber:server:dialback")],
        );
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns:db='jabber:server:dialback' from='a&apos;b' version='1.0'>"
        );
    }
}
