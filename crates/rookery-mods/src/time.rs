//! XEP-0202 Entity Time of the server. Core's `dispatch_iq` hands us `urn:xmpp:time` gets
//! addressed to a local domain. The server reports UTC (offset `+00:00`): it has no business
//! revealing the host's local zone. An account's bare JID has no clock of its own, so that is
//! `service-unavailable`; clients answer at their full JIDs.

use crate::util::{format_utc, unix_now};
use async_trait::async_trait;
use rookery_core::{
    IqReply, IqTarget, IqType, Module, ModuleCx, Scope, Server, StartResult, Targets,
};
use rookery_proto::error::StanzaError;
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_xml::Element;

#[derive(Debug, Default)]
pub struct Time;

impl Time {
    pub fn new() -> Self {
        Time
    }
}

/// The `<time/>` payload for `unix_secs` (XEP-0202 §4: `tzo` and `utc` are both required; `utc`
/// is an XEP-0082 DateTime ending in `Z`).
pub fn payload(unix_secs: i64) -> Element {
    Element::new("time", ns::TIME)
        .child(Element::new("tzo", ns::TIME).with_text("+00:00"))
        .child(Element::new("utc", ns::TIME).with_text(format_utc(unix_secs)))
}

#[async_trait]
impl Module for Time {
    fn name(&self) -> &'static str {
        "time"
    }
    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        cx.iq(IqType::Get, ns::TIME, Targets::SERVER)
            .feature(Scope::Server, ns::TIME);
        Ok(())
    }

    async fn handle_iq(
        &self,
        _server: &Server,
        _target: &IqTarget,
        _iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        Ok(IqReply::Payload(payload(unix_now())))
    }
}

#[cfg(test)]
mod tests {
    use rookery_proto::ns;
    use rookery_testkit::Harness;

    #[test]
    fn payload_shape() {
        let p = super::payload(1_166_551_115);
        assert_eq!(
            p.get_child("tzo", ns::TIME).map(|e| e.text()).as_deref(),
            Some("+00:00")
        );
        assert_eq!(
            p.get_child("utc", ns::TIME).map(|e| e.text()).as_deref(),
            Some("2006-12-19T17:58:35Z")
        );
    }

    #[tokio::test]
    async fn server_answers_utc_time() {
        let h = Harness::new(crate::iq_modules()).await;
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='get' id='t' to='localhost'><time xmlns='urn:xmpp:time'/></iq>")
            .await;
        let r = c.recv_result("t");
        let t = r.iq_payload().expect("time");
        let utc = t.get_child("utc", ns::TIME).expect("utc").text();
        assert_eq!(utc.len(), "2006-12-19T17:58:35Z".len());
        assert!(utc.ends_with('Z') && utc.as_bytes()[10] == b'T', "{utc}");
        c.send("<iq type='get' id='a'><time xmlns='urn:xmpp:time'/></iq>")
            .await;
        c.recv_error("a", "service-unavailable");
    }
}
