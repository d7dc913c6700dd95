//! Core's door to sessions: the only way the rest of the server reads or changes them.
//!
//! Modules name sessions by JID or by a `SessionRef` (local, or on another node through the
//! `Cluster`), read an account's resources as read-only `Resource` views, and change presence
//! state through the verbs here (`set_presence`, `record_directed`, `set_interested`), so
//! that state is written in one place and a cluster can own the seam. The transports
//! (rookery-net) bind and end sessions through `bind` / `end`.

use crate::cluster::{RemoteResource, RemoteSession};
use crate::registry::{BindOutcome, Registry};
use crate::server::Server;
use crate::session::{PresenceState, SendError, Session, SessionReceiver, Undelivered};
use crate::session_id::SessionId;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::stanza::{BareJid, FullJid, Jid, Stanza};
use std::collections::HashSet;
use std::sync::Arc;

/// A session wherever it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRef {
    Local(Session),
    Remote(RemoteSession),
}

impl SessionRef {
    pub fn jid(&self) -> &FullJid {
        match self {
            SessionRef::Local(s) => s.jid(),
            SessionRef::Remote(r) => &r.jid,
        }
    }
    pub fn id(&self) -> &SessionId {
        match self {
            SessionRef::Local(s) => s.id(),
            SessionRef::Remote(r) => &r.id,
        }
    }
}

/// A read-only view of one bound resource of an account.
#[derive(Debug, Clone)]
pub struct Resource {
    pub session: SessionRef,
    /// Sent initial presence and not yet unavailable (RFC 6121 §4.2).
    pub available: bool,
    pub priority: i8,
    /// Requested the roster: gets roster pushes (RFC 6121 §2.1.6).
    pub interested: bool,
    /// The last broadcast presence.
    pub presence: Option<Arc<Stanza>>,
}

impl Resource {
    pub fn jid(&self) -> &FullJid {
        self.session.jid()
    }

    fn local(s: Session) -> Resource {
        let (available, priority, interested, presence) =
            s.with_state(|st| (st.available, st.priority, st.interested, st.last.clone()));
        Resource {
            session: SessionRef::Local(s),
            available,
            priority,
            interested,
            presence,
        }
    }

    fn remote(r: RemoteResource) -> Resource {
        Resource {
            session: SessionRef::Remote(r.session),
            available: r.available,
            priority: r.priority,
            interested: r.interested,
            presence: r.presence,
        }
    }
}

/// A presence change a session made (RFC 6121 §4.2, §4.4, §4.5).
#[derive(Debug, Clone)]
pub enum PresenceUpdate {
    /// Available, with its priority and the presence kept for probes and new subscribers.
    Available {
        priority: i8,
        last: Stanza,
    },
    Unavailable,
}

/// What `set_presence` changed.
#[derive(Debug, Clone, Default)]
pub struct PresenceChange {
    /// The session was available before.
    pub was_available: bool,
    /// For `Unavailable`: who got directed presence (they must hear the session left).
    pub directed: HashSet<Jid>,
}

/// How a session ended, as the `session_closed` hook sees it.
#[derive(Debug, Clone, Default)]
pub struct Ended {
    /// The stream was closed properly (false for a dropped connection or a replaced session).
    pub clean: bool,
    /// It was available when it ended: its contacts must hear it is gone.
    pub was_available: bool,
    /// Who got directed presence from it (RFC 6121 §4.6.3).
    pub directed: HashSet<Jid>,
}

/// Why a bind was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindRefused {
    /// The resource is in use and the policy does not replace.
    Conflict,
    /// The account has `max_resources` sessions already.
    TooManyResources,
}

/// The sessions door (`Server::sessions`).
pub struct Sessions<'a> {
    server: &'a Server,
    registry: &'a Registry,
}

impl<'a> Sessions<'a> {
    pub(crate) fn new(server: &'a Server, registry: &'a Registry) -> Sessions<'a> {
        Sessions { server, registry }
    }

    pub(crate) fn server(&self) -> &'a Server {
        self.server
    }

    // --- views -------------------------------------------------------------------------

    /// Every bound resource of an account, local ones first.
    pub fn resources(&self, bare: &BareJid) -> Vec<Resource> {
        let mut v: Vec<Resource> = self
            .registry
            .sessions(bare)
            .into_iter()
            .map(Resource::local)
            .collect();
        v.extend(
            self.server
                .cluster()
                .remote_resources(bare)
                .into_iter()
                .map(Resource::remote),
        );
        v
    }

    /// The account's available resources (sent initial presence).
    pub fn available(&self, bare: &BareJid) -> Vec<Resource> {
        let mut v = self.resources(bare);
        v.retain(|r| r.available);
        v
    }

    /// The session bound to `full`, here or on another node, without building a view.
    pub fn session_ref(&self, full: &FullJid) -> Option<SessionRef> {
        if let Some(s) = self.registry.get(full) {
            return Some(SessionRef::Local(s));
        }
        self.server
            .cluster()
            .remote_resources(&full.to_bare())
            .into_iter()
            .find(|r| r.session.jid == *full)
            .map(|r| SessionRef::Remote(r.session))
    }

    /// One resource by full JID.
    pub fn resource(&self, full: &FullJid) -> Option<Resource> {
        if let Some(s) = self.registry.get(full) {
            return Some(Resource::local(s));
        }
        self.server
            .cluster()
            .remote_resources(&full.to_bare())
            .into_iter()
            .find(|r| r.session.jid == *full)
            .map(Resource::remote)
    }

    /// The local session bound to `full` (a client's own requests are handled on the node
    /// that holds its connection, so that is where its session is).
    pub fn local(&self, full: &FullJid) -> Option<Session> {
        self.registry.get(full)
    }

    /// Whether the account has any bound session.
    pub fn is_online(&self, bare: &BareJid) -> bool {
        !self.registry.sessions(bare).is_empty()
            || !self.server.cluster().remote_resources(bare).is_empty()
    }

    /// Whether the account has an available session.
    pub fn is_available(&self, bare: &BareJid) -> bool {
        !self.registry.available(bare).is_empty()
            || self
                .server
                .cluster()
                .remote_resources(bare)
                .iter()
                .any(|r| r.available)
    }

    /// Everyone the account's local sessions sent directed presence to.
    pub fn directed_presence(&self, bare: &BareJid) -> Vec<Jid> {
        let mut v: Vec<Jid> = Vec::new();
        for s in self.registry.sessions(bare) {
            s.with_state(|st| v.extend(st.directed.iter().cloned()));
        }
        v
    }

    /// Bound local sessions (metrics, shutdown).
    pub fn count(&self) -> usize {
        self.registry.count()
    }

    // --- sending -----------------------------------------------------------------------

    /// Queues a stanza the server makes (presence broadcast, roster push) for one session;
    /// never waits. A refused stanza comes back for another route.
    #[allow(clippy::result_large_err)] // the stanza itself is handed back, not an error value
    pub fn send(&self, to: &SessionRef, st: Stanza) -> Result<(), Undelivered> {
        match to {
            SessionRef::Local(s) => s.send(st),
            SessionRef::Remote(r) => {
                self.server
                    .cluster()
                    .send(r, st)
                    .map_err(|stanza| Undelivered {
                        reason: SendError::Closed,
                        stanza,
                    })
            }
        }
    }

    /// Queues a stanza, waiting up to `patience` for room in a local session's mailbox: for
    /// bulk pushes the server starts (offline messages at login). Never call it from the
    /// session's own task (it is what makes room). A session on another node is not waited
    /// for.
    pub async fn send_wait(
        &self,
        to: &SessionRef,
        st: Stanza,
        patience: std::time::Duration,
    ) -> Result<(), Undelivered> {
        match to {
            SessionRef::Local(s) => s.send_wait(st, patience).await,
            SessionRef::Remote(_) => self.send(to, st),
        }
    }

    /// `send` to a local session (a reply to the session's own stanza).
    #[allow(clippy::result_large_err)] // the stanza itself is handed back, not an error value
    pub fn send_local(&self, to: &Session, st: Stanza) -> Result<(), Undelivered> {
        to.send(st)
    }

    /// `send` to a full JID (local or on another node).
    #[allow(clippy::result_large_err)] // the stanza itself is handed back, not an error value
    pub fn send_to(&self, to: &FullJid, st: Stanza) -> Result<(), Undelivered> {
        match self.session_ref(to) {
            Some(r) => self.send(&r, st),
            None => Err(Undelivered {
                reason: SendError::Closed,
                stanza: st,
            }),
        }
    }

    /// Gives a copy of `st` to each available resource of the account (presence to a bare
    /// JID, RFC 6121 §8.5.2.1.1). With `readdress`, each copy's `to` is that resource.
    /// Returns how many took it.
    pub fn send_to_available(&self, bare: &BareJid, st: &Stanza, readdress: bool) -> usize {
        let mut n = 0;
        for r in self.available(bare) {
            let mut copy = st.clone();
            if readdress {
                copy.set_to(Some(Jid::from(r.jid().clone())));
            }
            n += usize::from(self.send(&r.session, copy).is_ok());
        }
        n
    }

    /// Closes every session of an account (account deleted, password changed elsewhere).
    pub fn close_account(&self, bare: &BareJid, err: StreamError) {
        for s in self.registry.sessions(bare) {
            s.close(err.clone());
        }
    }

    // --- the state a session's own presence sets -----------------------------------------

    /// Records a session's own availability. `None` if the session is not bound (ended or
    /// replaced): nothing is broadcast for it then.
    pub fn set_presence(
        &self,
        session: &Session,
        update: PresenceUpdate,
    ) -> Option<PresenceChange> {
        if !session.is_bound() {
            return None;
        }
        let change = session.with_state(|s| {
            let was_available = s.available;
            match update {
                PresenceUpdate::Available { priority, last } => {
                    s.available = true;
                    s.priority = priority;
                    s.last = Some(Arc::new(last));
                    PresenceChange {
                        was_available,
                        directed: HashSet::new(),
                    }
                }
                PresenceUpdate::Unavailable => take_availability(s),
            }
        });
        crate::sm_record::persist_state(self.server, session);
        Some(change)
    }

    /// Records that `session` sent directed presence to `to` (`available` = an available
    /// presence, so `to` must hear `unavailable` when the session goes; `false` = it already
    /// sent `unavailable` there). RFC 6121 §4.6.
    pub fn record_directed(&self, session: &Session, to: &Jid, available: bool) {
        session.with_state(|s| {
            if available {
                s.directed.insert(to.clone());
            } else {
                s.directed.remove(to);
            }
        });
        crate::sm_record::persist_state(self.server, session);
    }

    /// The session requested the roster: it gets roster pushes from now on.
    pub fn set_interested(&self, session: &Session) {
        let was = session.with_state(|s| std::mem::replace(&mut s.interested, true));
        if !was {
            crate::sm_record::persist_state(self.server, session);
        }
    }

    // --- transports: binding and ending ---------------------------------------------------

    /// Binds `full` for a transport. With `replace`, a session holding the resource is closed
    /// with `<conflict/>` and reported ended to the modules (RFC 6120 §7.7.2.2). The caller
    /// fires `Server::session_started` once the client was told.
    pub async fn bind(
        &self,
        full: FullJid,
        replace: bool,
    ) -> Result<(Session, SessionReceiver), BindRefused> {
        let mailbox = self.server.config().limits.session_mailbox;
        self.bind_with_mailbox(full, replace, mailbox).await
    }

    /// `bind` with a mailbox of `capacity` stanzas instead of `[limits] session_mailbox`.
    pub async fn bind_with_mailbox(
        &self,
        full: FullJid,
        replace: bool,
        capacity: usize,
    ) -> Result<(Session, SessionReceiver), BindRefused> {
        let cfg = self.server.config();
        let (session, rx) = Session::new(self.server.cluster().node(), full, capacity);
        match self.registry.bind(&session, replace, cfg.c2s.max_resources) {
            BindOutcome::Bound => {}
            BindOutcome::Replaced(old) => {
                old.close(
                    StreamError::new(StreamCondition::Conflict)
                        .with_text("replaced by a new session"),
                );
                // The old session's own end finds itself unbound and reports nothing; the
                // modules hear of it now.
                let ended = old.with_state(take_availability);
                let ended = Ended {
                    clean: false,
                    was_available: ended.was_available,
                    directed: ended.directed,
                };
                self.server.fire_session_closed(&old, &ended).await;
            }
            BindOutcome::Conflict => return Err(BindRefused::Conflict),
            BindOutcome::TooManyResources => return Err(BindRefused::TooManyResources),
        }
        Ok((session, rx))
    }

    /// Puts a restored session back in the registry (`restore.rs`); false if its resource is
    /// taken.
    pub(crate) fn rebind(&self, session: &Session) -> bool {
        matches!(
            self.registry.bind(session, false, usize::MAX),
            BindOutcome::Bound
        )
    }

    /// Takes a session out of the registry (its connection is ending). `None` if it was
    /// not there any more (replaced: its end was reported then). The presence state is
    /// taken, so nothing routes to it as available from now on.
    pub fn unbind(&self, session: &Session) -> Option<Ended> {
        if !self.registry.unbind(session) {
            return None;
        }
        let change = session.with_state(take_availability);
        Some(Ended {
            clean: false,
            was_available: change.was_available,
            directed: change.directed,
        })
    }

    /// Every local session (shutdown only).
    pub fn all_local(&self) -> Vec<Session> {
        self.registry.all()
    }
}

/// Marks the state unavailable; returns what it was.
fn take_availability(s: &mut PresenceState) -> PresenceChange {
    let was_available = s.available;
    s.available = false;
    s.last = None;
    PresenceChange {
        was_available,
        directed: std::mem::take(&mut s.directed),
    }
}
