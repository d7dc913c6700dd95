//! One element a bound client sent, before routing (`session.rs`): parsed as a stanza, `from`
//! checked and stamped (RFC 6120 §8.1.2.1), and answered here when it is the answer to our
//! keepalive ping or the legacy session iq.

use super::confirm::Confirm;
use super::io::ClientIo;
use rookery_core::Session;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::{Jid, Stanza, StanzaParseError};
use rookery_xml::Element;
use tokio::time::Instant;

/// One element from the client: answered here, or returned to be routed. Err = close the
/// stream with this error.
pub(crate) async fn on_element<S: ClientIo>(
    stream: &mut S,
    handle: &Session,
    el: Element,
    ping_pending: &mut Option<(String, Instant)>,
    confirm: &mut Confirm,
    confirm_delay: Option<std::time::Duration>,
) -> Result<Option<Stanza>, StreamError> {
    let mut st = match Stanza::from_element(el, ns::CLIENT) {
        Ok(st) => st,
        Err((StanzaParseError::NotAStanza, original)) => {
            return Err(
                StreamError::new(StreamCondition::UnsupportedStanzaType).with_text(format!(
                    "unsupported element {{{}}}{}",
                    original.ns(),
                    original.name()
                )),
            );
        }
        Err((StanzaParseError::Bad(err), original)) => {
            // Reply straight to the client: the header was unusable for routing.
            if original.attr("type") != Some("error") {
                let mut reply =
                    Element::new(original.name(), ns::CLIENT).with_attr("type", "error");
                if let Some(id) = original.attr("id") {
                    reply.set_attr("id", id);
                }
                reply.append_child(err.to_element(ns::CLIENT));
                stream
                    .send(&reply)
                    .await
                    .map_err(|_| StreamError::new(StreamCondition::UndefinedCondition))?;
            }
            return Ok(None);
        }
    };
    // RFC 6120 §8.1.2.1: the server stamps `from`; a client may only use its own JIDs.
    if let Some(from) = st.from() {
        let own_full = from.as_str() == handle.jid().as_str();
        let own_bare = from.is_bare() && from.to_bare() == handle.jid().to_bare();
        if !own_full && !own_bare {
            return Err(StreamError::new(StreamCondition::InvalidFrom));
        }
    }
    st.set_from(Some(Jid::from(handle.jid().clone())));

    if st.kind() == rookery_proto::stanza::Kind::Iq {
        let to_server = st
            .to()
            .is_none_or(|t| t.node().is_none() && t.domain() == handle.jid().domain());
        // The answer to our keepalive ping.
        let answers_ping = ping_pending
            .as_ref()
            .is_some_and(|(id, _)| st.id() == Some(id.as_str()));
        if answers_ping && to_server && matches!(st.type_attr(), "result" | "error") {
            *ping_pending = None;
            return Ok(None);
        }
        // The answer to a delivery-confirmation ping (`confirm.rs`).
        if to_server
            && matches!(st.type_attr(), "result" | "error")
            && let (Some(id), Some(delay)) = (st.id(), confirm_delay)
            && confirm.on_answer(id, Instant::now(), delay)
        {
            return Ok(None);
        }
        // Legacy session establishment: a no-op since RFC 6121, answered for old clients.
        if st.type_attr() == "set"
            && st
                .iq_payload()
                .is_some_and(|p| p.is("session", ns::SESSION))
        {
            let mut reply = st.iq_result(None);
            reply.set_from(Some(Jid::from(handle.jid().domain().to_owned())));
            stream
                .send(reply.element())
                .await
                .map_err(|_| StreamError::new(StreamCondition::UndefinedCondition))?;
            return Ok(None);
        }
    }
    Ok(Some(st))
}
