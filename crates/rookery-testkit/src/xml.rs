//! Small XML helpers for tests: stanzas written without `xmlns='jabber:client'` (the stream's
//! content namespace, RFC 6120 §4.8.3), and the parts of received stanzas tests look at.

use rookery_proto::ns;
use rookery_proto::stanza::{Kind, Stanza};
use rookery_xml::Element;

/// Parses a test stanza; `jabber:client` is added to the top element unless it declares a
/// namespace itself.
pub fn stanza(xml: &str) -> Stanza {
    let head = &xml[..xml.find('>').expect("a start tag")];
    let xml = if head.contains("xmlns=") {
        xml.to_owned()
    } else {
        let end = xml[1..]
            .find([' ', '>', '/'])
            .map(|i| i + 1)
            .expect("a tag name");
        format!("{} xmlns='jabber:client'{}", &xml[..end], &xml[end..])
    };
    let el = Element::parse(&xml).unwrap_or_else(|e| panic!("not well-formed ({e}): {xml}"));
    Stanza::new(el).unwrap_or_else(|e| panic!("not a stanza ({e:?}): {xml}"))
}

/// The defined condition of an error stanza (RFC 6120 §8.3.3).
pub fn error_condition(st: &Stanza) -> Option<String> {
    st.element()
        .get_child("error", ns::CLIENT)?
        .children()
        .find(|c| c.ns() == ns::STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// The (condition, type) of an error stanza; fails unless `st` is one.
pub fn error_of(st: &Stanza) -> (String, String) {
    assert_eq!(
        st.type_attr(),
        "error",
        "not an error: {}",
        st.element().to_xml()
    );
    let err = st
        .element()
        .get_child("error", ns::CLIENT)
        .unwrap_or_else(|| panic!("no <error/>: {}", st.element().to_xml()));
    let cond = err
        .children()
        .find(|c| c.ns() == ns::STANZAS)
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    (cond, err.attr("type").unwrap_or_default().to_owned())
}

/// The `var`s of a disco#info result, in order (XEP-0030).
pub fn features_of(q: &Element) -> Vec<String> {
    q.children()
        .filter(|c| c.is("feature", ns::DISCO_INFO))
        .filter_map(|c| c.attr("var").map(str::to_owned))
        .collect()
}

/// The presence stanzas among `got`.
pub fn presences(got: &[Stanza]) -> Vec<&Stanza> {
    got.iter().filter(|s| s.kind() == Kind::Presence).collect()
}

/// The `<item/>`s of the roster pushes among `got` (RFC 6121 §2.1.6).
pub fn pushes(got: &[Stanza]) -> Vec<&Element> {
    got.iter()
        .filter(|s| s.kind() == Kind::Iq && s.type_attr() == "set")
        .filter_map(|s| s.iq_payload())
        .filter_map(|q| q.get_child("item", ns::ROSTER))
        .collect()
}
