//! Every hook point of the server, in one file. A feature is a `Module`: its `start` declares
//! what it serves through a `ModuleCx` (`modules.rs`) — stanza hooks keyed by point and kind
//! with a priority, IQ handlers by type and namespace, disco features, stream features,
//! service domains, background tasks — and core then calls the matching methods below, only
//! for what was registered. Stopping a module undoes all of it. Modules receive the `Server`
//! on every call instead of holding it, so they never form reference cycles.
//!
//! The path of a client stanza: c2s actor (rookery-net) → `Server::handle_from_client` →
//! `Point::FromClient` hooks → `Server::route` → for a local account `deliver` →
//! `Point::ToAccount` (then `Point::ToFullJid` when addressed to a resource) → IQ handler or
//! RFC 6121 default rules → the session's mailbox → `Point::Delivered` → the recipient's actor
//! → `Module::to_client` just before the write. For another server: `Point::ToRemote` →
//! federation. Messages no resource took: `Point::Undeliverable` (offline storage).

use crate::server::Server;
use crate::session::Session;
use crate::sessions::Ended;
use async_trait::async_trait;
use rookery_proto::error::StanzaError;
use rookery_proto::stanza::{BareJid, FullJid, Kind, Stanza};
use rookery_xml::Element;

/// Whether the stanza goes on to the next handler / the default behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Consumed: nothing after this handler sees the stanza.
    Done,
}

/// The stanza hook points. Each names the `Module` method core calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    /// `from_client`: from a local client session, `from` stamped, before routing. `Done` =
    /// handled here (a presence broadcast, a blocked recipient).
    FromClient,
    /// `to_account`: addressed to a local account (bare or full JID), before the default
    /// delivery rules and IQ dispatch. `Done` = handled (delivered, stored, bounced, dropped).
    ToAccount,
    /// `to_full_jid`: addressed to a local account's full JID, after `ToAccount`, before the
    /// stanza is handed to that session.
    ToFullJid,
    /// `to_remote`: about to leave for another server or a component (client stanzas after
    /// `FromClient`; stanzas the server makes too). `Done` = not sent.
    ToRemote,
    /// `delivered`: a message was handed to one or more local resources (carbons, archives).
    Delivered,
    /// `undeliverable`: a message the rules could not give to any resource (RFC 6121
    /// §8.5.2.2.1). `Done` = stored; if nobody takes it the sender gets an error.
    Undeliverable,
    /// `to_client`: just before a stanza is written to a client (CSI holds, SM counts). Not
    /// async: it runs in the session's write loop.
    ToClient,
}

impl Point {
    pub(crate) const ALL: [Point; 7] = [
        Point::FromClient,
        Point::ToAccount,
        Point::ToFullJid,
        Point::ToRemote,
        Point::Delivered,
        Point::Undeliverable,
        Point::ToClient,
    ];
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Session and account events (no stanza, no priority beyond registration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// `session_bound`: a resource was bound.
    SessionBound,
    /// `initial_presence`: a session sent its first available presence.
    InitialPresence,
    /// `session_closed`: a session ended (after it left the registry).
    SessionClosed,
    /// `account_deleted`: an account is about to be deleted.
    AccountDeleted,
}

impl Event {
    pub(crate) const ALL: [Event; 4] = [
        Event::SessionBound,
        Event::InitialPresence,
        Event::SessionClosed,
        Event::AccountDeleted,
    ];
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Hook order: higher runs first; equal priorities run in module load order. The named
/// levels are the ones the shipped modules use, so new modules can place themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub i32);

impl Priority {
    /// Policy that may refuse a stanza before anyone acts on it (blocking, XEP-0191).
    pub const FILTER: Priority = Priority(1000);
    /// Watches stanzas before they are consumed (last activity).
    pub const OBSERVE: Priority = Priority(800);
    /// Roster and subscription handling.
    pub const ROSTER: Priority = Priority(600);
    /// Presence broadcast (consumes presence).
    pub const PRESENCE: Priority = Priority(500);
    /// Anything else.
    pub const DEFAULT: Priority = Priority(0);
    /// Stores what nobody took (offline storage).
    pub const STORE: Priority = Priority(-500);
}

/// The type of an iq request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqType {
    Get,
    Set,
}

impl IqType {
    pub fn of(st: &Stanza) -> Option<IqType> {
        match st.type_attr() {
            "get" => Some(IqType::Get),
            "set" => Some(IqType::Set),
            _ => None,
        }
    }
}

/// Who an iq get/set is addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IqTarget {
    /// The server itself (`to` is a local domain).
    Server,
    /// An existing local account, answered by the server on its behalf (`to` is the bare JID, or
    /// absent on a client's own stream: RFC 6120 §10.3.3).
    Account(BareJid),
    /// A domain a module serves (`ModuleCx::serve_domain`).
    Domain(String),
}

/// Which of the `IqTarget`s an IQ handler answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub server: bool,
    pub account: bool,
    pub domain: bool,
}

impl Targets {
    pub const SERVER: Targets = Targets {
        server: true,
        account: false,
        domain: false,
    };
    pub const ACCOUNT: Targets = Targets {
        server: false,
        account: true,
        domain: false,
    };
    pub const SERVER_AND_ACCOUNT: Targets = Targets {
        server: true,
        account: true,
        domain: false,
    };
    pub const DOMAIN: Targets = Targets {
        server: false,
        account: false,
        domain: true,
    };

    pub(crate) fn matches(self, t: &IqTarget) -> bool {
        match t {
            IqTarget::Server => self.server,
            IqTarget::Account(_) => self.account,
            IqTarget::Domain(_) => self.domain,
        }
    }
    pub(crate) fn overlaps(self, o: Targets) -> bool {
        (self.server && o.server) || (self.account && o.account) || (self.domain && o.domain)
    }
}

/// Where a disco feature is announced (XEP-0030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The server's disco#info.
    Server,
    /// Every account's disco#info.
    Account,
}

/// When a stream feature is offered (RFC 6120 §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Before authentication (beside STARTTLS and SASL).
    BeforeAuth,
    /// After authentication (beside resource binding).
    AfterAuth,
}

/// A handler's answer to an iq get/set; core turns it into the `result` reply.
#[derive(Debug)]
pub enum IqReply {
    Empty,
    Payload(Element),
    /// The handler already routed its own reply (or deliberately sends none).
    Handled,
}

/// Wraps the module's `start` errors (a config problem, a registration clash).
pub type StartResult = Result<(), crate::modules::ModuleError>;

#[async_trait]
pub trait Module: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Declares what the module serves. Called once per start; everything registered here
    /// is removed again when the module stops.
    fn start(&self, cx: &mut crate::modules::ModuleCx<'_>) -> StartResult;

    /// Called after the module's registrations were removed and its tasks cancelled.
    async fn stopped(&self, _server: &Server) {}

    /// `Point::FromClient`.
    // Named after its hook point, not a conversion.
    #[allow(clippy::wrong_self_convention)]
    async fn from_client(&self, _server: &Server, _session: &Session, _st: &mut Stanza) -> Flow {
        Flow::Continue
    }
    /// `Point::ToAccount`.
    async fn to_account(&self, _server: &Server, _st: &mut Stanza) -> Flow {
        Flow::Continue
    }
    /// `Point::ToFullJid`.
    async fn to_full_jid(&self, _server: &Server, _st: &mut Stanza) -> Flow {
        Flow::Continue
    }
    /// `Point::ToRemote`.
    async fn to_remote(&self, _server: &Server, _st: &Stanza) -> Flow {
        Flow::Continue
    }
    /// `Point::Delivered`: `to` are the resources that took the message.
    async fn delivered(&self, _server: &Server, _st: &Stanza, _to: &[FullJid]) {}
    /// `Point::Undeliverable`.
    async fn undeliverable(&self, _server: &Server, _st: &Stanza) -> Flow {
        Flow::Continue
    }
    /// `Point::ToClient`. `Done` = not written (held or dropped by the module).
    fn to_client(&self, _session: &Session, _st: &mut Stanza) -> Flow {
        Flow::Continue
    }

    /// An iq get/set of a type and namespace this module registered, for a target it
    /// registered. An error becomes the error reply.
    async fn handle_iq(
        &self,
        _server: &Server,
        _target: &IqTarget,
        _iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        Err(StanzaError::service_unavailable())
    }

    /// A stanza for a domain this module serves (other than iq get/set it registered a
    /// handler for, which go to `handle_iq` with `IqTarget::Domain`). In order, one at a time.
    async fn domain_stanza(&self, _server: &Server, _st: Stanza) {}

    /// The stream features this module offers at `stage` on a stream for `host`.
    fn stream_features(&self, _stage: Stage, _host: &str) -> Vec<Element> {
        Vec::new()
    }

    /// `Event::SessionBound`.
    async fn session_bound(&self, _server: &Server, _session: &Session) {}
    /// `Event::InitialPresence`.
    async fn initial_presence(&self, _server: &Server, _session: &Session) {}
    /// `Event::SessionClosed`: the session already left the registry; `ended` says how, and
    /// what presence state it had.
    async fn session_closed(&self, _server: &Server, _session: &Session, _ended: &Ended) {}
    /// `Event::AccountDeleted`: modules drop caches; the store deletes the data.
    async fn account_deleted(&self, _server: &Server, _account: &BareJid) {}
}

/// The kinds a stanza hook can be keyed by.
pub(crate) fn kind_index(k: Kind) -> usize {
    match k {
        Kind::Message => 0,
        Kind::Presence => 1,
        Kind::Iq => 2,
    }
}
