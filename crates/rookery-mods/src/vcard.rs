//! XEP-0054 vcard-temp. Core's `dispatch_iq` hands us `vcard-temp` iqs addressed to an
//! account's bare JID (or without `to`, the sender's own account). Anyone may read a vCard
//! (XEP-0054 §3.2; vcard_temp.scs: it is public), only the account itself may write it (§3.3).
//! Missing accounts never reach us: core answers them per RFC 6121 §8.5.1. Stored in KvStore
//! (store `vcard`, key `""`) as the serialized `<vCard/>` element.

use crate::util::{self, parts};
use async_trait::async_trait;
use rookery_core::{
    IqReply, IqTarget, IqType, Module, ModuleCx, Scope, Server, StartResult, Targets,
};
use rookery_proto::error::{Condition, ErrorType, StanzaError};
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_xml::Element;

const STORE: &str = "vcard";
const KEY: &str = "";
/// Largest serialized vCard we keep (an avatar belongs in XEP-0084, not in 64 KiB of base64).
pub const MAX_VCARD_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct VCard;

impl VCard {
    pub fn new() -> Self {
        VCard
    }
}

/// Serializes a document for storage, refusing what is too large or what could not be read back
/// (the standalone parser's element-count limits may be tighter than the stream's).
pub fn serialize_checked(el: &Element, max: usize) -> Result<String, StanzaError> {
    let xml = el.to_xml();
    if xml.len() > max {
        return Err(util::error(
            Condition::NotAcceptable,
            ErrorType::Modify,
            &format!("document larger than {max} bytes"),
        ));
    }
    if Element::parse(&xml).is_err() {
        return Err(util::error(
            Condition::NotAcceptable,
            ErrorType::Modify,
            "document too complex to store",
        ));
    }
    Ok(xml)
}

#[async_trait]
impl Module for VCard {
    fn name(&self) -> &'static str {
        "vcard"
    }
    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        // The server keeps accounts' cards; the server itself has none (service-unavailable).
        for ty in [IqType::Get, IqType::Set] {
            cx.iq(ty, ns::VCARD, Targets::ACCOUNT);
        }
        cx.feature(Scope::Server, ns::VCARD)
            .feature(Scope::Account, ns::VCARD);
        Ok(())
    }

    async fn handle_iq(
        &self,
        server: &Server,
        target: &IqTarget,
        iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        // The server itself has no vCard.
        let IqTarget::Account(account) = target else {
            return Err(StanzaError::service_unavailable());
        };
        let Some(payload) = iq.iq_payload().filter(|p| p.name() == "vCard") else {
            return Err(StanzaError::bad_request(
                "expected <vCard xmlns='vcard-temp'/>",
            ));
        };
        let (user, domain) = parts(account);
        let kv = &server.stores().kv;
        match iq.type_attr() {
            "get" => {
                let stored = kv
                    .get(user, domain, STORE, KEY)
                    .await
                    .map_err(|e| util::store_error("vcard-get", account, &e))?;
                let card = match stored {
                    Some(xml) => Element::parse(&xml).map_err(|e| {
                        tracing::error!(jid = %account, error = %e, what = "vcard-parse", "stored vCard unreadable");
                        StanzaError::internal()
                    })?,
                    // §3.1: no vCard yet is an empty one.
                    None => Element::new("vCard", ns::VCARD),
                };
                Ok(IqReply::Payload(card))
            }
            "set" => {
                // §3.3: a user may publish only their own vCard.
                if !util::is_own(iq, account) {
                    return Err(StanzaError::forbidden());
                }
                let xml = serialize_checked(payload, MAX_VCARD_BYTES)?;
                kv.put(user, domain, STORE, KEY, &xml)
                    .await
                    .map_err(|e| util::store_error("vcard-put", account, &e))?;
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

    const CARD: &str = "<iq id='s' type='set'><vCard xmlns='vcard-temp'><FN>Romeo Montague</FN>\
        <N><FAMILY>Montague</FAMILY><GIVEN>Romeo</GIVEN><MIDDLE/></N></vCard></iq>";

    #[tokio::test]
    async fn set_own_then_read_by_self_and_others() {
        // vcard_temp.scs
        let h = Harness::new(crate::iq_modules()).await;
        let mut r = h.login("romeo", "a").await;
        r.send("<iq id='e' type='get'><vCard xmlns='vcard-temp'/></iq>")
            .await;
        let res = r.recv_result("e");
        let empty = res.iq_payload().expect("vCard");
        assert!(empty.is("vCard", ns::VCARD));
        assert_eq!(empty.children().count(), 0);

        r.send(CARD).await;
        r.recv_result("s");
        r.send("<iq id='g' type='get'><vCard xmlns='vcard-temp'/></iq>")
            .await;
        let res = r.recv_result("g");
        let card = res.iq_payload().expect("vCard");
        assert_eq!(
            card.get_child("FN", ns::VCARD).map(|e| e.text()).as_deref(),
            Some("Romeo Montague")
        );

        let mut j = h.login("juliet", "a").await;
        j.send("<iq id='o' type='get' to='romeo@localhost'><vCard xmlns='vcard-temp'/></iq>")
            .await;
        let res = j.recv_result("o");
        assert_eq!(res.from().map(|f| f.as_str()), Some("romeo@localhost"));
        let n = res
            .iq_payload()
            .and_then(|c| c.get_child("N", ns::VCARD))
            .expect("N");
        assert_eq!(
            n.get_child("GIVEN", ns::VCARD).map(|e| e.text()).as_deref(),
            Some("Romeo")
        );
    }

    #[tokio::test]
    async fn others_cannot_write_and_missing_accounts_are_unavailable() {
        let h = Harness::new(crate::iq_modules()).await;
        h.account("romeo").await;
        let mut j = h.login("juliet", "a").await;
        j.send("<iq id='w' type='set' to='romeo@localhost'><vCard xmlns='vcard-temp'><FN>x</FN></vCard></iq>")
            .await;
        j.recv_error("w", "forbidden");
        j.send("<iq id='m' type='get' to='ghost@localhost'><vCard xmlns='vcard-temp'/></iq>")
            .await;
        j.recv_error("m", "service-unavailable");
    }

    #[tokio::test]
    async fn oversized_vcard_is_refused() {
        let h = Harness::new(crate::iq_modules()).await;
        let mut r = h.login("romeo", "a").await;
        let big = "x".repeat(super::MAX_VCARD_BYTES);
        r.send(&format!("<iq id='b' type='set'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>{big}</BINVAL></PHOTO></vCard></iq>"))
            .await;
        r.recv_error("b", "not-acceptable");
    }
}
