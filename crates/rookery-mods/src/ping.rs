//! XEP-0199 XMPP Ping, answered by the server. Core's `dispatch_iq` hands us the `urn:xmpp:ping`
//! gets registered in `start`: addressed to a local domain (client-to-server ping, XEP-0199 §4.2) or to an account's
//! bare JID (the server answers on the account's behalf, RFC 6121 §8.5.1, as it does for every
//! bare-JID iq). Pings to a full JID never reach us: core forwards those to the resource.

use async_trait::async_trait;
use rookery_core::{
    IqReply, IqTarget, IqType, Module, ModuleCx, Scope, Server, StartResult, Targets,
};
use rookery_proto::error::StanzaError;
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;

#[derive(Debug, Default)]
pub struct Ping;

impl Ping {
    pub fn new() -> Self {
        Ping
    }
}

#[async_trait]
impl Module for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }
    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        // XEP-0199 §3: a ping is an iq get; a set is not answered here (service-unavailable).
        cx.iq(IqType::Get, ns::PING, Targets::SERVER_AND_ACCOUNT)
            .feature(Scope::Server, ns::PING)
            .feature(Scope::Account, ns::PING);
        Ok(())
    }

    async fn handle_iq(
        &self,
        _server: &Server,
        _target: &IqTarget,
        _iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        // The pong is an empty result.
        Ok(IqReply::Empty)
    }
}

#[cfg(test)]
mod tests {
    use rookery_testkit::Harness;

    #[tokio::test]
    async fn server_and_account_answer_pings() {
        let h = Harness::new(crate::iq_modules()).await;
        h.account("juliet").await;
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await;
        let r = c.recv_result("p1");
        assert!(r.iq_payload().is_none());
        assert_eq!(r.from().map(|j| j.as_str()), Some("localhost"));
        c.send("<iq type='get' id='p2' to='juliet@localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await;
        let r = c.recv_result("p2");
        assert_eq!(r.from().map(|j| j.as_str()), Some("juliet@localhost"));
        c.send("<iq type='get' id='p3'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await;
        c.recv_result("p3");
        c.send("<iq type='set' id='p4' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await;
        c.recv_error("p4", "service-unavailable");
    }
}
