//! Serialising elements for a router link the way jabberd2 can read them back.
//!
//! Rookery's element tree keeps namespaces, not prefixes, and its writer puts an element in the
//! default namespace and a namespaced attribute under a generated prefix. That is correct XML,
//! but jabberd2's NAD loses one case: an attribute in the *same* namespace as its element
//! (`<sc:session xmlns:sc='…/session/1.0' sc:c2s='10'/>`, the c2s↔sm session protocol) written
//! as `<session xmlns='…/session/1.0' ns0:c2s='10'/>` comes back from jabberd2's sm as
//! `c2s='10'` without a namespace, and c2s then never finds its session. So this writer puts
//! such an element under the same prefix as its attributes, as jabberd2 itself writes them.
//!
//! Where it sits: `router/mod.rs` writes every element for a component through [`write`].

use rookery_xml::{Element, Node};

/// The prefix jabberd2 uses for the session namespace (kept so its logs read as usual).
const SESSION_NS: &str = "http://jabberd.jabberstudio.org/ns/session/1.0";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Appends `el` to `out`; `parent_default` is the default namespace in scope (the stream's).
pub(crate) fn write(el: &Element, out: &mut Vec<u8>, parent_default: &str) {
    let mut scope: Vec<(String, String)> = Vec::new();
    write_el(el, out, parent_default, &mut scope);
}

fn split(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix('{')?;
    let close = rest.find('}')?;
    Some((&rest[..close], &rest[close + 1..]))
}

/// `scope`: prefixes declared by ancestors, (prefix, uri).
fn write_el(el: &Element, out: &mut Vec<u8>, default_ns: &str, scope: &mut Vec<(String, String)>) {
    let depth = scope.len();
    let own_ns_attr = el
        .attrs()
        .any(|(k, _)| split(k).is_some_and(|(ns, _)| ns == el.ns()));
    let mut decls: Vec<(String, String)> = Vec::new();
    out.push(b'<');
    let mut child_default = default_ns.to_owned();
    let el_prefix = if own_ns_attr {
        Some(prefix_for(el.ns(), scope, &mut decls))
    } else {
        None
    };
    if let Some(p) = &el_prefix {
        out.extend_from_slice(p.as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(el.name().as_bytes());
    if el_prefix.is_none() && el.ns() != default_ns {
        attr(out, "xmlns", el.ns());
        child_default = el.ns().to_owned();
    }
    let mut attrs: Vec<(String, &str)> = Vec::new();
    for (k, v) in el.attrs() {
        if k == "xmlns" || k.starts_with("xmlns:") {
            continue;
        }
        match split(k) {
            Some((ns, local)) if ns == XML_NS => attrs.push((format!("xml:{local}"), v)),
            Some((ns, local)) => {
                let p = prefix_for(ns, scope, &mut decls);
                attrs.push((format!("{p}:{local}"), v));
            }
            None => attrs.push((k.to_owned(), v)),
        }
    }
    for (p, uri) in &decls {
        attr(out, &format!("xmlns:{p}"), uri);
    }
    for (k, v) in &attrs {
        attr(out, k, v);
    }
    if el.nodes().is_empty() {
        out.extend_from_slice(b"/>");
    } else {
        out.push(b'>');
        for n in el.nodes() {
            match n {
                Node::Element(c) => write_el(c, out, &child_default, scope),
                Node::Text(t) => escape(out, t),
            }
        }
        out.extend_from_slice(b"</");
        if let Some(p) = &el_prefix {
            out.extend_from_slice(p.as_bytes());
            out.push(b':');
        }
        out.extend_from_slice(el.name().as_bytes());
        out.push(b'>');
    }
    scope.truncate(depth);
}

/// The prefix bound to `uri` in scope, or a new one (declared on this element).
fn prefix_for(
    uri: &str,
    scope: &mut Vec<(String, String)>,
    decls: &mut Vec<(String, String)>,
) -> String {
    if let Some((p, _)) = scope.iter().rev().find(|(_, u)| u == uri) {
        return p.clone();
    }
    let p = if uri == SESSION_NS && !scope.iter().any(|(p, _)| p == "sc") {
        "sc".to_owned()
    } else {
        format!("ns{}", scope.len())
    };
    scope.push((p.clone(), uri.to_owned()));
    decls.push((p.clone(), uri.to_owned()));
    p
}

fn attr(out: &mut Vec<u8>, k: &str, v: &str) {
    out.push(b' ');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"='");
    escape(out, v);
    out.push(b'\'');
}

fn escape(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'\'' => out.extend_from_slice(b"&apos;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(xml: &str) -> (String, Element) {
        let el = Element::parse(xml).unwrap();
        let mut out = Vec::new();
        write(&el, &mut out, "");
        let text = String::from_utf8(out).unwrap();
        let back = Element::parse(&text).unwrap();
        assert_eq!(back, el, "{text}");
        (text, el)
    }

    #[test]
    fn session_element_shares_its_attributes_prefix() {
        let (text, _) = round_trip(
            "<sc:session xmlns:sc='http://jabberd.jabberstudio.org/ns/session/1.0' \
             sc:c2s='10' action='create' target='bob@jd2.test'/>",
        );
        assert_eq!(
            text,
            "<sc:session xmlns:sc='http://jabberd.jabberstudio.org/ns/session/1.0' sc:c2s='10' \
             action='create' target='bob@jd2.test'/>"
        );
    }

    #[test]
    fn stanzas_keep_default_namespace_and_prefixed_session_attributes() {
        let (text, _) = round_trip(
            "<route xmlns='http://jabberd.jabberstudio.org/ns/component/1.0' from='c2s' to='d'>\
             <message xmlns='jabber:client' xmlns:sm='http://jabberd.jabberstudio.org/ns/session/1.0' \
             sm:c2s='8' sm:sm='x' to='a@d' xml:lang='en'><body>a &amp; &lt;b&gt; 'q'</body></message></route>",
        );
        assert!(
            text.contains("<message xmlns='jabber:client' xmlns:sc="),
            "{text}"
        );
        assert!(text.contains("sc:c2s='8'"), "{text}");
        assert!(text.contains("xml:lang='en'"), "{text}");
    }

    #[test]
    fn nested_elements_reuse_declared_prefixes() {
        round_trip(
            "<a:x xmlns:a='urn:a' a:k='1'><a:y a:k='2'><z xmlns='urn:z' a:k='3'/></a:y></a:x>",
        );
    }
}
