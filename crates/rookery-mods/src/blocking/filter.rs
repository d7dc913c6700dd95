//! XEP-0191 §3.3 enforcement on the stanza path. `filter_outbound` runs on every stanza a
//! client sends (first module in `Module::outbound` order), `filter_inbound` on every message
//! and presence core delivers to a local account (first in `Module::inbound` order). Iqs to
//! accounts never pass `inbound` (core dispatches them directly), so a local sender's iq to a
//! user who blocked it is caught on the way out instead.

use super::Blocking;
use rookery_core::{Flow, Server, Session};
use rookery_proto::error::{Condition, ErrorType, StanzaError};
use rookery_proto::ns;
use rookery_proto::stanza::{Jid, Kind, Stanza};
use rookery_xml::Element;

/// §3.3: what the user gets for a stanza to a JID they blocked.
fn blocked_error() -> StanzaError {
    StanzaError::new(Condition::NotAcceptable)
        .with_type(ErrorType::Cancel)
        .with_text("You have blocked this JID")
        .with_extra(Element::new("blocked", ns::BLOCKING_ERRORS))
}

fn is_get_or_set(st: &Stanza) -> bool {
    matches!(st.type_attr(), "get" | "set")
}

/// Whether `jid` is an account on one of our hosts (so its blocklist is ours to apply).
fn is_local_account(server: &Server, jid: &Jid) -> bool {
    jid.node().is_some() && server.is_local_host(jid.domain().as_str())
}

impl Blocking {
    pub(super) async fn filter_outbound(
        &self,
        server: &Server,
        session: &Session,
        st: &mut Stanza,
    ) -> Flow {
        // No `to` = the user's own account; stanzas between one's own resources pass.
        let Some(to) = st.to().cloned() else {
            return Flow::Continue;
        };
        let me = session.jid().to_bare();
        if to.node().is_some() && to.to_bare() == me {
            return Flow::Continue;
        }
        if self.blocks(server, &me, &to).await {
            // Presence to a blocked JID is silently dropped; anything else is refused. Sent
            // straight to the session: routed, our own inbound filter would eat the error.
            if st.kind() != Kind::Presence
                && let Some(reply) = st.error_reply(blocked_error())
            {
                let _ = server.sessions().send_local(session, reply);
            }
            return Flow::Done;
        }
        if st.kind() == Kind::Iq && is_local_account(server, &to) {
            let sender = Jid::from(session.jid().clone());
            if self.blocks(server, &to.to_bare(), &sender).await {
                // §3.3 inbound rule for iqs: get/set → service-unavailable, others dropped.
                if is_get_or_set(st)
                    && let Some(reply) = st.error_reply(StanzaError::service_unavailable())
                {
                    let _ = server.sessions().send_local(session, reply);
                }
                return Flow::Done;
            }
        }
        Flow::Continue
    }

    pub(super) async fn filter_inbound(&self, server: &Server, st: &mut Stanza) -> Flow {
        let (Some(from), Some(to)) = (st.from().cloned(), st.to().cloned()) else {
            return Flow::Continue;
        };
        let recipient = to.to_bare();
        if from.node().is_some() && from.to_bare() == recipient {
            return Flow::Continue;
        }
        if self.blocks(server, &recipient, &from).await {
            // §3.3: presence is dropped without a word; a message gets service-unavailable
            // (never for an error: `bounce` does not answer errors), so the user looks offline.
            // An iq get/set gets the same answer; `bounce` never answers results or errors.
            if st.kind() != Kind::Presence {
                server.bounce(st, StanzaError::service_unavailable()).await;
            }
            return Flow::Done;
        }
        if self.presence_to_blocked(server, st).await {
            return Flow::Done;
        }
        Flow::Continue
    }

    /// The presence module broadcasts without passing `outbound`: a user's presence must not
    /// reach a JID that user blocked, locally (checked on delivery) or on another server
    /// (checked before it leaves). Unavailable passes (it is what the contact should see, and
    /// it is what the block itself sends).
    pub(super) async fn presence_to_blocked(&self, server: &Server, st: &Stanza) -> bool {
        let (Some(from), Some(to)) = (st.from(), st.to()) else {
            return false;
        };
        st.kind() == Kind::Presence
            && st.type_attr() != "unavailable"
            && is_local_account(server, from)
            && self.blocks(server, &from.to_bare(), to).await
    }
}
