//! XEP-0049 Private XML Storage (`jabber:iq:private`). Core's `dispatch_iq` hands us the iqs a
//! client sends without `to` (its own account) or to an account's bare JID. Only the account
//! itself may read or write its data (§3 and Security Considerations: anyone else gets
//! `forbidden`). Each stored fragment is one child of `<query/>`, kept in KvStore (store
//! `private`) under the key `{namespace}name` of that child; a get names the fragment by an
//! empty element of the same name and namespace.

use crate::util::{self, parts};
use crate::vcard::serialize_checked;
use async_trait::async_trait;
use rookery_core::{
    IqReply, IqTarget, IqType, Module, ModuleCx, Scope, Server, StartResult, Targets,
};
use rookery_proto::error::{Condition, ErrorType, StanzaError};
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_xml::Element;

const STORE: &str = "private";
/// Largest serialized fragment per key.
pub const MAX_FRAGMENT_BYTES: usize = 64 * 1024;
/// Namespaces that cannot be stored: the stanza namespaces and this protocol's own (§3: a
/// child that merely inherited `jabber:iq:private` names no storage namespace at all).
const RESERVED: [&str; 3] = [ns::CLIENT, ns::SERVER, ns::PRIVATE];

#[derive(Debug, Default)]
pub struct Private;

impl Private {
    pub fn new() -> Self {
        Private
    }
}

fn key(el: &Element) -> String {
    format!("{{{}}}{}", el.ns(), el.name())
}

fn not_acceptable(text: &str) -> StanzaError {
    util::error(Condition::NotAcceptable, ErrorType::Modify, text)
}

/// §3: every fragment must be in a namespace of its own.
fn check_namespace(el: &Element) -> Result<(), StanzaError> {
    if el.ns().is_empty() || RESERVED.contains(&el.ns()) {
        return Err(not_acceptable("reserved or missing namespace"));
    }
    Ok(())
}

#[async_trait]
impl Module for Private {
    fn name(&self) -> &'static str {
        "private"
    }
    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        for ty in [IqType::Get, IqType::Set] {
            cx.iq(ty, ns::PRIVATE, Targets::ACCOUNT);
        }
        cx.feature(Scope::Server, ns::PRIVATE);
        Ok(())
    }

    async fn handle_iq(
        &self,
        server: &Server,
        target: &IqTarget,
        iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        let account = match target {
            IqTarget::Account(b) if util::is_own(iq, b) => b,
            // §3: another user's private data.
            IqTarget::Account(_) => return Err(StanzaError::forbidden()),
            IqTarget::Server | IqTarget::Domain(_) => {
                return Err(StanzaError::service_unavailable());
            }
        };
        let Some(query) = iq.iq_payload().filter(|q| q.name() == "query") else {
            return Err(StanzaError::bad_request(
                "expected <query xmlns='jabber:iq:private'/>",
            ));
        };
        let (user, domain) = parts(account);
        let kv = &server.stores().kv;
        match iq.type_attr() {
            "get" => {
                // §3: a get names exactly one namespace.
                let mut children = query.children();
                let (Some(wanted), None) = (children.next(), children.next()) else {
                    return Err(not_acceptable("a get names exactly one fragment"));
                };
                check_namespace(wanted)?;
                let stored = kv
                    .get(user, domain, STORE, &key(wanted))
                    .await
                    .map_err(|e| util::store_error("private-get", account, &e))?;
                let fragment = match stored {
                    Some(xml) => Element::parse(&xml).map_err(|e| {
                        tracing::error!(jid = %account, error = %e, what = "private-parse", "stored fragment unreadable");
                        StanzaError::internal()
                    })?,
                    // Nothing stored: the empty element, as asked.
                    None => Element::new(wanted.name(), wanted.ns()),
                };
                Ok(IqReply::Payload(
                    Element::new("query", ns::PRIVATE).child(fragment),
                ))
            }
            "set" => {
                // Validate everything before writing anything, so a refused set changes nothing.
                let mut writes = Vec::new();
                for child in query.children() {
                    check_namespace(child)?;
                    writes.push((key(child), serialize_checked(child, MAX_FRAGMENT_BYTES)?));
                }
                if writes.is_empty() {
                    return Err(not_acceptable("nothing to store"));
                }
                for (k, xml) in writes {
                    kv.put(user, domain, STORE, &k, &xml)
                        .await
                        .map_err(|e| util::store_error("private-put", account, &e))?;
                }
                Ok(IqReply::Empty)
            }
            _ => Err(util::unsupported()),
        }
    }
}

#[cfg(test)]
mod tests {
    use rookery_proto::ns;
    use rookery_testkit::Harness;

    #[tokio::test]
    async fn store_and_retrieve_by_namespace() {
        let h = Harness::new(crate::iq_modules()).await;
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='get' id='g0'><query xmlns='jabber:iq:private'><prefs xmlns='ex:prefs'/></query></iq>")
            .await;
        let r = c.recv_result("g0");
        let frag = r
            .iq_payload()
            .and_then(|q| q.get_child("prefs", "ex:prefs"))
            .expect("echo");
        assert_eq!(frag.children().count(), 0);

        c.send("<iq type='set' id='s'><query xmlns='jabber:iq:private'>\
            <prefs xmlns='ex:prefs'><nick>Hamlet</nick></prefs><other xmlns='ex:other'/></query></iq>")
            .await;
        c.recv_result("s");
        c.send("<iq type='get' id='g1' to='romeo@localhost'><query xmlns='jabber:iq:private'><prefs xmlns='ex:prefs'/></query></iq>")
            .await;
        let r = c.recv_result("g1");
        let q = r.iq_payload().expect("query");
        assert!(q.is("query", ns::PRIVATE));
        let frag = q.get_child("prefs", "ex:prefs").expect("stored");
        assert_eq!(
            frag.get_child("nick", "ex:prefs")
                .map(|n| n.text())
                .as_deref(),
            Some("Hamlet")
        );
        // Same namespace, other element name: another key.
        c.send("<iq type='get' id='g2'><query xmlns='jabber:iq:private'><other2 xmlns='ex:prefs'/></query></iq>")
            .await;
        let r = c.recv_result("g2");
        assert!(
            r.iq_payload()
                .and_then(|q| q.get_child("other2", "ex:prefs"))
                .is_some()
        );
    }

    #[tokio::test]
    async fn reserved_namespaces_and_empty_queries_are_not_acceptable() {
        let h = Harness::new(crate::iq_modules()).await;
        let mut c = h.login("romeo", "a").await;
        for (id, inner) in [
            ("r1", "<x/>"),
            ("r2", "<x xmlns='jabber:client'/>"),
            ("r3", "<x xmlns='jabber:server'/>"),
        ] {
            c.send(&format!(
                "<iq type='set' id='{id}'><query xmlns='jabber:iq:private'>{inner}</query></iq>"
            ))
            .await;
            c.recv_error(id, "not-acceptable");
            c.send(&format!(
                "<iq type='get' id='{id}g'><query xmlns='jabber:iq:private'>{inner}</query></iq>"
            ))
            .await;
            c.recv_error(&format!("{id}g"), "not-acceptable");
        }
        c.send("<iq type='get' id='e'><query xmlns='jabber:iq:private'/></iq>")
            .await;
        c.recv_error("e", "not-acceptable");
        // A refused multi-fragment set stores nothing.
        c.send("<iq type='set' id='m'><query xmlns='jabber:iq:private'><a xmlns='ex:a'/><b/></query></iq>")
            .await;
        c.recv_error("m", "not-acceptable");
        let big = "y".repeat(super::MAX_FRAGMENT_BYTES);
        c.send(&format!("<iq type='set' id='big'><query xmlns='jabber:iq:private'><a xmlns='ex:a'>{big}</a></query></iq>"))
            .await;
        c.recv_error("big", "not-acceptable");
    }

    #[tokio::test]
    async fn other_accounts_are_forbidden() {
        let h = Harness::new(crate::iq_modules()).await;
        h.account("hamlet").await;
        let mut c = h.login("macbeth", "a").await;
        c.send("<iq type='set' id='f1' to='hamlet@localhost'><query xmlns='jabber:iq:private'><p xmlns='ex:p'/></query></iq>")
            .await;
        c.recv_error("f1", "forbidden");
        c.send("<iq type='get' id='f2' to='hamlet@localhost'><query xmlns='jabber:iq:private'><p xmlns='ex:p'/></query></iq>")
            .await;
        c.recv_error("f2", "forbidden");
    }
}
