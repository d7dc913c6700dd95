//! XEP-0030 Service Discovery for the server and for local accounts. Core's `dispatch_iq` hands
//! us every `disco#info` / `disco#items` get addressed to a local domain (`IqTarget::Server`) or
//! to an account's bare JID (`IqTarget::Account`, answered by the server on the account's
//! behalf, RFC 6121 §8.5.1). The feature lists are what the running modules registered
//! (`ModuleCx::feature`) for the addressed host, so a module advertises itself by starting.
//! The server's items are the domains served under the addressed host — external components
//! (XEP-0114) connected now and modules' service domains — as Prosody lists its components.

use async_trait::async_trait;
use rookery_core::{
    IqReply, IqTarget, IqType, Module, ModuleCx, Scope, Server, StartResult, Targets,
};
use rookery_proto::error::StanzaError;
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_xml::Element;

/// The server's identity (XEP-0030 §3.1; category/type from the Service Discovery
/// Identities registry: `server/im` is an IM server).
const SERVER_CATEGORY: &str = "server";
const SERVER_TYPE: &str = "im";
/// An account's identity as its server reports it (registry: `account/registered`).
const ACCOUNT_CATEGORY: &str = "account";
const ACCOUNT_TYPE: &str = "registered";
/// Human-readable name on the server identity.
const SERVER_NAME: &str = "Rookery";

#[derive(Debug, Default)]
pub struct Disco;

impl Disco {
    pub fn new() -> Self {
        Disco
    }
}

fn identity(category: &str, kind: &str, name: Option<&str>) -> Element {
    let mut el = Element::new("identity", ns::DISCO_INFO)
        .with_attr("category", category)
        .with_attr("type", kind);
    if let Some(n) = name {
        el.set_attr("name", n);
    }
    el
}

fn info(identity: Element, features: &[&'static str]) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO).child(identity);
    for f in features {
        q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", *f));
    }
    q
}

#[async_trait]
impl Module for Disco {
    fn name(&self) -> &'static str {
        "disco"
    }
    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        // XEP-0030 defines only queries (type get).
        for ns in [ns::DISCO_INFO, ns::DISCO_ITEMS] {
            cx.iq(IqType::Get, ns, Targets::SERVER_AND_ACCOUNT)
                .feature(Scope::Server, ns)
                .feature(Scope::Account, ns);
        }
        Ok(())
    }

    async fn handle_iq(
        &self,
        server: &Server,
        target: &IqTarget,
        iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        let Some(query) = iq.iq_payload() else {
            return Err(StanzaError::bad_request("missing query"));
        };
        if query.name() != "query" {
            return Err(StanzaError::bad_request("expected <query/>"));
        }
        // We publish no nodes yet (XEP-0030 §3.2 / §4.2: an unknown node is item-not-found).
        if query.attr("node").is_some() {
            return Err(StanzaError::item_not_found());
        }
        let reply = match (query.ns(), target) {
            (ns::DISCO_INFO, IqTarget::Server) => {
                let host = iq.to().map(|t| t.domain().as_str()).unwrap_or_default();
                info(
                    identity(SERVER_CATEGORY, SERVER_TYPE, Some(SERVER_NAME)),
                    &server.features(Scope::Server, host),
                )
            }
            (ns::DISCO_INFO, IqTarget::Account(account)) => info(
                identity(ACCOUNT_CATEGORY, ACCOUNT_TYPE, None),
                &server.features(Scope::Account, account.domain().as_str()),
            ),
            (ns::DISCO_ITEMS, IqTarget::Server) => {
                let host = iq.to().map(|t| t.domain().as_str()).unwrap_or_default();
                component_items(server, host)
            }
            // No items for accounts yet: PEP nodes will be listed here once they exist.
            (ns::DISCO_ITEMS, IqTarget::Account(_)) => Element::new("query", ns::DISCO_ITEMS),
            _ => return Err(StanzaError::service_unavailable()),
        };
        Ok(IqReply::Payload(reply))
    }
}

/// The connected components whose domain is a subdomain of `host` (`echo.example.org` under
/// `example.org`): what a client browsing the server can use. Components elsewhere, or
/// configured but not connected, are not listed.
fn component_items(server: &Server, host: &str) -> Element {
    let mut q = Element::new("query", ns::DISCO_ITEMS);
    for domain in server.components().bound_domains() {
        let under_host = domain
            .strip_suffix(host)
            .is_some_and(|label| label.len() > 1 && label.ends_with('.'));
        if under_host && !host.is_empty() {
            q.append_child(Element::new("item", ns::DISCO_ITEMS).with_attr("jid", domain));
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use rookery_proto::ns;
    use rookery_testkit::{Harness, features_of};

    #[tokio::test]
    async fn server_info_lists_identity_and_every_module_feature() {
        let h = Harness::new(crate::iq_modules()).await;
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
        let r = c.recv_result("d1");
        let q = r.iq_payload().expect("query");
        let id = q.get_child("identity", ns::DISCO_INFO).expect("identity");
        assert_eq!(id.attr("category"), Some("server"));
        assert_eq!(id.attr("type"), Some("im"));
        let feats = features_of(q);
        for f in [
            ns::DISCO_INFO,
            ns::DISCO_ITEMS,
            ns::PING,
            ns::VERSION,
            ns::TIME,
            ns::LAST,
            ns::VCARD,
            ns::PRIVATE,
            ns::BLOCKING,
            ns::REGISTER,
        ] {
            assert!(feats.contains(&f.to_owned()), "missing {f}: {feats:?}");
        }
        assert_eq!(
            feats,
            h.server.features(rookery_core::Scope::Server, "localhost")
        );
    }

    #[tokio::test]
    async fn account_info_for_self_and_others() {
        let h = Harness::new(crate::iq_modules()).await;
        h.account("juliet").await;
        let mut c = h.login("romeo", "a").await;
        // disco_self.scs: no `to` = the account itself.
        c.send("<iq type='get' id='s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
            .await;
        let r = c.recv_result("s");
        assert_eq!(r.from().map(|j| j.as_str()), Some("romeo@localhost"));
        let q = r.iq_payload().expect("query");
        let id = q.get_child("identity", ns::DISCO_INFO).expect("identity");
        assert_eq!(id.attr("category"), Some("account"));
        assert_eq!(id.attr("type"), Some("registered"));
        let feats = features_of(q);
        assert!(feats.contains(&ns::DISCO_INFO.to_owned()));
        assert!(feats.contains(&ns::DISCO_ITEMS.to_owned()));
        assert_eq!(
            feats,
            h.server.features(rookery_core::Scope::Account, "localhost")
        );

        c.send("<iq type='get' id='o' to='juliet@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
        let r = c.recv_result("o");
        assert_eq!(r.from().map(|j| j.as_str()), Some("juliet@localhost"));
        // A missing account: RFC 6121 §8.5.1, answered by core.
        c.send("<iq type='get' id='x' to='nobody@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
        c.recv_error("x", "service-unavailable");
    }

    struct NoLink(u64);
    impl rookery_core::components::ComponentLink for NoLink {
        fn link_id(&self) -> u64 {
            self.0
        }
        fn send(
            &self,
            st: rookery_proto::stanza::Stanza,
        ) -> Result<(), rookery_proto::stanza::Stanza> {
            Err(st)
        }
    }

    #[tokio::test]
    async fn server_items_are_the_connected_components_under_the_host() {
        let h = Harness::new(crate::iq_modules()).await;
        let comps = h.server.components();
        for d in [
            "echo.localhost",
            "xlocalhost",
            "other.example",
            "down.localhost",
        ] {
            comps.reserve(d);
        }
        for d in ["echo.localhost", "xlocalhost", "other.example"] {
            let link = std::sync::Arc::new(NoLink(rookery_core::components::next_link_id()));
            comps.bind(d, link).unwrap();
        }
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
        )
        .await;
        let r = c.recv_result("i");
        let jids: Vec<&str> = r
            .iq_payload()
            .expect("query")
            .children()
            .filter_map(|i| i.attr("jid"))
            .collect();
        // Not a label boundary, another host's, or not connected: not listed.
        assert_eq!(jids, ["echo.localhost"]);
    }

    #[tokio::test]
    async fn items_are_empty_and_nodes_unknown() {
        let h = Harness::new(crate::iq_modules()).await;
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
        )
        .await;
        let r = c.recv_result("i");
        let q = r.iq_payload().expect("query");
        assert!(q.is("query", ns::DISCO_ITEMS));
        assert_eq!(q.children().count(), 0);
        c.send("<iq type='get' id='n' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>",
        )
        .await;
        c.recv_error("n", "item-not-found");
        c.send("<iq type='set' id='st' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
        c.recv_error("st", "service-unavailable");
    }
}
