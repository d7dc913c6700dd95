//! XEP-0092 Software Version of the server. Core's `dispatch_iq` hands us `jabber:iq:version`
//! gets addressed to a local domain. Asked of an account's bare JID there is no software to
//! describe (the account's clients answer at their full JIDs, which core forwards), so that is
//! `service-unavailable`.

use async_trait::async_trait;
use rookery_core::{IqReply, IqTarget, Module, Server};
use rookery_proto::error::StanzaError;
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_xml::Element;

/// The `<name/>` we report.
pub const SOFTWARE_NAME: &str = "Rookery";

#[derive(Debug, Default)]
pub struct Version;

impl Version {
    pub fn new() -> Self {
        Version
    }
}

#[async_trait]
impl Module for Version {
    fn name(&self) -> &'static str {
        "version"
    }
    fn server_features(&self) -> Vec<&'static str> {
        vec![ns::VERSION]
    }
    fn iq_namespaces(&self) -> Vec<&'static str> {
        vec![ns::VERSION]
    }

    async fn handle_iq(
        &self,
        _server: &Server,
        target: &IqTarget,
        iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        if iq.type_attr() != "get" || *target != IqTarget::Server {
            return Err(crate::util::unsupported());
        }
        // XEP-0092 §2: <name/> and <version/> are required; <os/> is optional and left out on
        // purpose (SECURITY: it tells attackers which exploits to try).
        let q = Element::new("query", ns::VERSION)
            .child(Element::new("name", ns::VERSION).with_text(SOFTWARE_NAME))
            .child(Element::new("version", ns::VERSION).with_text(env!("CARGO_PKG_VERSION")));
        Ok(IqReply::Payload(q))
    }
}

#[cfg(test)]
mod tests {
    use crate::util::testkit::Harness;
    use rookery_proto::ns;

    #[tokio::test]
    async fn server_reports_name_and_version_without_os() {
        let h = Harness::new().await;
        h.account("juliet").await;
        let mut c = h.login("romeo", "a").await;
        h.send(
            &c,
            "<iq type='get' id='v' to='localhost'><query xmlns='jabber:iq:version'/></iq>",
        )
        .await;
        let r = c.recv_result("v");
        let q = r.iq_payload().expect("query");
        assert_eq!(
            q.get_child("name", ns::VERSION)
                .map(|e| e.text())
                .as_deref(),
            Some("Rookery")
        );
        assert_eq!(
            q.get_child("version", ns::VERSION)
                .map(|e| e.text())
                .as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert!(q.get_child("os", ns::VERSION).is_none());
        h.send(
            &c,
            "<iq type='get' id='u' to='juliet@localhost'><query xmlns='jabber:iq:version'/></iq>",
        )
        .await;
        c.recv_error("u", "service-unavailable");
    }
}
