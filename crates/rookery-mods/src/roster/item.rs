//! The `jabber:iq:roster` wire format (RFC 6121 §2.1): stored items → `<item/>` elements for
//! roster results and pushes, and a client's roster-set `<item/>` → a validated request. Sits
//! between the roster module's iq handler and the store; no I/O here.

use rookery_proto::error::{Condition, StanzaError};
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, Jid};
use rookery_store::{RosterChange, RosterItem};
use rookery_xml::Element;

/// Longest `name` and group name we store, in bytes. RFC 6121 §2.3.3 lets the server pick the
/// limit; 1023 bytes matches the largest JID part (RFC 7622), ample for any display name.
pub(crate) const MAX_TEXT_BYTES: usize = 1023;
/// Most groups one item may carry: a client never needs hundreds, and each costs storage.
pub(crate) const MAX_GROUPS: usize = 64;

/// The `<item/>` for a stored item (RFC 6121 §2.1.2). `ask` only while the user's request is
/// pending (§2.1.2.2); `approved` only when true (§2.1.2.1: it signals a pre-approval, and a
/// value of false is the default that need not be sent).
pub(crate) fn item_element(item: &RosterItem) -> Element {
    let mut el = Element::new("item", ns::ROSTER)
        .with_attr("jid", item.jid.as_str())
        .with_attr("subscription", item.subscription.as_str());
    if let Some(name) = &item.name {
        el.set_attr("name", name.as_str());
    }
    if item.ask_out {
        el.set_attr("ask", "subscribe");
    }
    if item.approved {
        el.set_attr("approved", "true");
    }
    for g in &item.groups {
        el.append_child(Element::new("group", ns::ROSTER).with_text(g.as_str()));
    }
    el
}

/// The `<item/>` a push carries for one change; removals use `subscription='remove'` (§2.5.2).
pub(crate) fn change_element(change: &RosterChange) -> Element {
    match change {
        RosterChange::Updated { item, .. } => item_element(item),
        RosterChange::Removed { jid, .. } => Element::new("item", ns::ROSTER)
            .with_attr("jid", jid.as_str())
            .with_attr("subscription", "remove"),
    }
}

/// A client's roster set, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetRequest {
    /// Add or update: only `name` and groups come from the client; `subscription`, `ask` and
    /// `approved` are the server's (§2.1.2.1, §2.1.2.2, §2.1.5: the server ignores them).
    Update {
        jid: BareJid,
        name: Option<String>,
        groups: Vec<String>,
    },
    /// `subscription='remove'` (§2.5).
    Remove { jid: BareJid },
}

fn not_acceptable(text: &str) -> StanzaError {
    StanzaError::new(Condition::NotAcceptable).with_text(text)
}

/// Parses the `<query/>` of a roster set. Error conditions follow RFC 6121 §2.3.3: more than
/// one item or duplicate groups → `bad-request`; an empty or over-long group name or an
/// over-long `name` → `not-acceptable`. An unparseable `jid` → `jid-malformed`, and a JID with
/// a resource → `bad-request`: roster items are accounts, i.e. bare JIDs.
// The error is the reply itself (built once per rejected request), the same type
// `Module::handle_iq` returns; boxing it would only add an allocation on that path.
#[allow(clippy::result_large_err)]
pub(crate) fn parse_set(query: &Element) -> Result<SetRequest, StanzaError> {
    let mut items = query.children().filter(|c| c.is("item", ns::ROSTER));
    let (Some(item), None) = (items.next(), items.next()) else {
        return Err(StanzaError::bad_request(
            "a roster set carries exactly one item",
        ));
    };
    let raw = item
        .attr("jid")
        .ok_or_else(|| StanzaError::bad_request("item without jid"))?;
    let jid = Jid::new(raw).map_err(|e| {
        StanzaError::new(Condition::JidMalformed).with_text(format!("item jid: {e}"))
    })?;
    let jid = match jid.try_into_full() {
        Ok(_) => {
            return Err(StanzaError::bad_request(
                "roster items are bare JIDs (no resource)",
            ));
        }
        Err(bare) => bare,
    };
    if item.attr("subscription") == Some("remove") {
        return Ok(SetRequest::Remove { jid });
    }
    let name = match item.attr("name") {
        Some(n) if n.len() > MAX_TEXT_BYTES => return Err(not_acceptable("name too long")),
        // An empty name means "no name": clients send name='' to clear it.
        Some("") | None => None,
        Some(n) => Some(n.to_owned()),
    };
    let mut groups: Vec<String> = Vec::new();
    for g in item.children().filter(|c| c.is("group", ns::ROSTER)) {
        let text = g.text();
        if text.is_empty() {
            return Err(not_acceptable("empty group name"));
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(not_acceptable("group name too long"));
        }
        if groups.contains(&text) {
            return Err(StanzaError::bad_request("duplicate group"));
        }
        if groups.len() == MAX_GROUPS {
            return Err(not_acceptable("too many groups"));
        }
        groups.push(text);
    }
    Ok(SetRequest::Update { jid, name, groups })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic reports a failed expectation
mod tests {
    use super::*;

    fn query(xml: &str) -> Element {
        Element::parse(xml).unwrap()
    }

    fn err(xml: &str) -> Condition {
        parse_set(&query(xml)).unwrap_err().condition
    }

    #[test]
    fn parses_update_and_remove() {
        let q = query(
            "<query xmlns='jabber:iq:roster'><item jid='Nurse@Example.com' name='N' \
             subscription='both' ask='subscribe'><group>A</group><group>B</group></item></query>",
        );
        match parse_set(&q).unwrap() {
            SetRequest::Update { jid, name, groups } => {
                assert_eq!(jid.as_str(), "nurse@example.com");
                assert_eq!(name.as_deref(), Some("N"));
                assert_eq!(groups, vec!["A".to_owned(), "B".to_owned()]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let q = query(
            "<query xmlns='jabber:iq:roster'><item jid='a@b' subscription='remove'/></query>",
        );
        assert!(matches!(parse_set(&q).unwrap(), SetRequest::Remove { .. }));
    }

    #[test]
    fn rfc_6121_error_cases() {
        assert_eq!(
            err("<query xmlns='jabber:iq:roster'/>"),
            Condition::BadRequest
        );
        assert_eq!(
            err("<query xmlns='jabber:iq:roster'><item jid='a@b'/><item jid='c@d'/></query>"),
            Condition::BadRequest
        );
        assert_eq!(
            err("<query xmlns='jabber:iq:roster'><item jid='a@@b'/></query>"),
            Condition::JidMalformed
        );
        assert_eq!(
            err("<query xmlns='jabber:iq:roster'><item jid='a@b/r'/></query>"),
            Condition::BadRequest
        );
        assert_eq!(
            err(
                "<query xmlns='jabber:iq:roster'><item jid='a@b'><group>x</group>\
                 <group>x</group></item></query>"
            ),
            Condition::BadRequest
        );
        assert_eq!(
            err("<query xmlns='jabber:iq:roster'><item jid='a@b'><group/></item></query>"),
            Condition::NotAcceptable
        );
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        assert_eq!(
            err(&format!(
                "<query xmlns='jabber:iq:roster'><item jid='a@b' name='{long}'/></query>"
            )),
            Condition::NotAcceptable
        );
    }

    #[test]
    fn element_shows_ask_and_approved_only_when_set() {
        let mut item = RosterItem {
            jid: "a@b".into(),
            ..RosterItem::default()
        };
        let el = item_element(&item);
        assert_eq!(el.attr("subscription"), Some("none"));
        assert_eq!(el.attr("ask"), None);
        assert_eq!(el.attr("approved"), None);
        item.ask_out = true;
        item.approved = true;
        let el = item_element(&item);
        assert_eq!(el.attr("ask"), Some("subscribe"));
        assert_eq!(el.attr("approved"), Some("true"));
    }
}
