//! Every hook point of the server, in one file (ARCHITECTURE §5, convention 4). A feature is a
//! `Module`: it overrides the hooks it needs; each call says when it fires and what `Flow::Done`
//! means. Modules receive the `Server` on every call instead of holding it, so they never form
//! reference cycles and can be built before the server exists.
//!
//! Flow of a client stanza: c2s actor (rookery-net) → `Server::handle_from_client` →
//! `Module::outbound` (in order) → `Server::route` → local host: `deliver` → `Module::inbound` /
//! `Module::handle_iq` / default RFC 6121 rules → `SessionHandle::send` → the recipient's actor.

use crate::server::Server;
use crate::session::SessionHandle;
use async_trait::async_trait;
use rookery_proto::error::StanzaError;
use rookery_proto::stanza::{BareJid, Stanza};
use rookery_xml::Element;

/// Whether the stanza goes on to the next handler / the default behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Consumed: nothing after this handler sees the stanza.
    Done,
}

/// Who an iq get/set is addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IqTarget {
    /// The server itself (`to` is a local domain).
    Server,
    /// An existing local account, answered by the server on its behalf (`to` is the bare JID, or
    /// absent on a client's own stream: RFC 6120 §10.3.3).
    Account(BareJid),
}

/// A handler's answer to an iq get/set; core turns it into the `result` reply.
#[derive(Debug)]
pub enum IqReply {
    Empty,
    Payload(Element),
    /// The handler already routed its own reply (or deliberately sends none).
    Handled,
}

#[async_trait]
pub trait Module: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// XEP-0030 features this module adds to the server's disco#info.
    fn server_features(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// XEP-0030 features this module adds to an account's disco#info.
    fn account_features(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Payload namespaces of iq get/set this module answers. One module per namespace.
    fn iq_namespaces(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// An iq get/set whose payload namespace this module registered. Fired by `deliver` for iqs
    /// to the server or to a local account. An error becomes the error reply.
    async fn handle_iq(
        &self,
        _server: &Server,
        _target: &IqTarget,
        _iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        Err(StanzaError::service_unavailable())
    }

    /// A stanza from a local client session, `from` stamped, before routing. `Done` = handled
    /// here (e.g. presence broadcast, a blocked recipient). Fired in module order.
    async fn outbound(&self, _server: &Server, _session: &SessionHandle, _st: &mut Stanza) -> Flow {
        Flow::Continue
    }

    /// A stanza of any kind addressed to a local account (bare or full JID), before the
    /// default delivery rules and before iq dispatch. `Done` = handled (delivered, stored,
    /// bounced or dropped).
    async fn inbound(&self, _server: &Server, _st: &mut Stanza) -> Flow {
        Flow::Continue
    }

    /// A stanza about to leave for another server (after `outbound` for client stanzas; also
    /// for stanzas the server or a module originates, e.g. presence broadcasts). `Done` = not
    /// sent (dropped silently).
    async fn remote_outbound(&self, _server: &Server, _st: &Stanza) -> Flow {
        Flow::Continue
    }

    /// A message the default rules could not give to any resource (RFC 6121 §8.5.2.2.1).
    /// `Done` = stored (offline); if no module takes it the sender gets `service-unavailable`.
    async fn undeliverable_message(&self, _server: &Server, _st: &Stanza) -> Flow {
        Flow::Continue
    }

    /// A session was bound (resource bound, registered in the registry).
    async fn session_bound(&self, _server: &Server, _session: &SessionHandle) {}

    /// A session sent its initial presence (first available presence without `to`).
    async fn initial_presence(&self, _server: &Server, _session: &SessionHandle) {}

    /// A session ended (after it left the registry). `clean` is false for a dropped connection.
    async fn session_closed(&self, _server: &Server, _session: &SessionHandle, _clean: bool) {}

    /// An account is about to be deleted (modules drop caches; the store deletes the data).
    async fn account_deleted(&self, _server: &Server, _account: &BareJid) {}
}
