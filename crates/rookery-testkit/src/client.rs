//! A fake client session: bound through `Server::sessions()` as the c2s actor binds one, with
//! the mailbox the actor would drain left to the test. Every hook runs inline in the awaited
//! call, so once `send` returns, whatever it caused locally sits in the recipients' mailboxes;
//! deliveries made by background tasks (offline messages, federation) are waited for with
//! `next`.

use crate::xml::{error_condition, error_of, stanza};
use rookery_core::session::SessionReceiver;
use rookery_core::{PresenceUpdate, Server, Session, SessionMsg};
use rookery_proto::stanza::{FullJid, Jid, Kind, Stanza};
use std::time::Duration;

pub struct Client {
    server: Server,
    pub handle: Session,
    pub rx: SessionReceiver,
}

impl Client {
    /// Binds `jid` (a full JID) on `server` as the c2s actor does: bind, then
    /// `session_bound`. The account is not checked.
    pub async fn bind(server: &Server, jid: &str) -> Client {
        let mailbox = server.config().limits.session_mailbox;
        Client::bind_with_mailbox(server, jid, mailbox).await
    }

    /// `bind` with a mailbox of `capacity` stanzas instead of `[limits] session_mailbox`.
    pub async fn bind_with_mailbox(server: &Server, jid: &str, capacity: usize) -> Client {
        let full = FullJid::new(jid).unwrap_or_else(|e| panic!("{jid}: {e}"));
        let (handle, rx) = server
            .sessions()
            .bind_with_mailbox(full, false, capacity)
            .await
            .unwrap_or_else(|e| panic!("bind {jid}: {e:?}"));
        server.fire_session_bound(&handle).await;
        Client {
            server: server.clone(),
            handle,
            rx,
        }
    }

    /// A bound session that is available (`make_available`): what a client looks like to
    /// the router once it sent initial presence, without the presence module's broadcast.
    pub async fn available(server: &Server, jid: &str) -> Client {
        let c = Client::bind(server, jid).await;
        c.make_available();
        c
    }

    /// `available` with a mailbox of `capacity` stanzas.
    pub async fn available_with_mailbox(server: &Server, jid: &str, capacity: usize) -> Client {
        let c = Client::bind_with_mailbox(server, jid, capacity).await;
        c.make_available();
        c
    }

    /// `available`, and the session requested the roster: it gets roster pushes.
    pub async fn interested(server: &Server, jid: &str) -> Client {
        let c = Client::available(server, jid).await;
        c.set_interested();
        c
    }

    pub fn jid(&self) -> &FullJid {
        self.handle.jid()
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    /// A stanza from the client (`jabber:client` added unless declared), `from` stamped as
    /// the c2s actor does (RFC 6120 §8.1.2.1).
    pub async fn send(&self, xml: &str) {
        let mut st = stanza(xml);
        st.set_from(Some(Jid::from(self.jid().clone())));
        self.server.handle_from_client(&self.handle, st).await;
    }

    /// Marks the session available at priority 0 with a last presence, as the presence
    /// module records initial presence (RFC 6121 §4.2).
    pub fn make_available(&self) {
        let mut p = stanza("<presence><status>here</status></presence>");
        p.set_from(Some(Jid::from(self.jid().clone())));
        let update = PresenceUpdate::Available {
            priority: 0,
            last: p,
        };
        self.server
            .sessions()
            .set_presence(&self.handle, update)
            .expect("bound");
    }

    /// Marks the session as having requested the roster: it gets roster pushes (RFC 6121
    /// §2.1.6).
    pub fn set_interested(&self) {
        self.server.sessions().set_interested(&self.handle);
    }

    /// Ends the session as the c2s actor does after a proper stream close: out of the
    /// registry, then `session_closed`.
    pub async fn logout(self) {
        self.end(true).await;
    }

    /// Ends the session as a dropped connection does (`Ended::clean` false).
    pub async fn drop_connection(self) {
        self.end(false).await;
    }

    async fn end(self, clean: bool) {
        if let Some(mut ended) = self.server.sessions().unbind(&self.handle) {
            ended.clean = clean;
            self.server.fire_session_closed(&self.handle, &ended).await;
        }
    }

    // --- reading the mailbox -------------------------------------------------------------

    /// The stanza waiting in the mailbox, if any. A close fails the test.
    pub fn try_recv(&mut self) -> Option<Stanza> {
        match self.rx.rx.try_recv() {
            Ok(SessionMsg::Stanza(s)) => Some(s.stanza),
            Ok(SessionMsg::Close(e)) => panic!("{}: unexpected close {e}", self.jid()),
            Err(_) => None,
        }
    }

    /// The stanza waiting in the mailbox; fails the test if there is none yet.
    pub fn recv(&mut self) -> Stanza {
        let jid = self.jid().clone();
        self.try_recv()
            .unwrap_or_else(|| panic!("{jid}: expected a stanza, got nothing"))
    }

    /// `recv`, which must be the `result` for the iq `id`.
    pub fn recv_result(&mut self, id: &str) -> Stanza {
        let st = self.recv();
        assert_eq!(
            (st.type_attr(), st.id()),
            ("result", Some(id)),
            "{}",
            st.element().to_xml()
        );
        st
    }

    /// `recv`, which must be the error for `id` with `condition`.
    pub fn recv_error(&mut self, id: &str, condition: &str) -> Stanza {
        let st = self.recv();
        assert_eq!(st.type_attr(), "error", "{}", st.element().to_xml());
        assert_eq!(st.id(), Some(id), "{}", st.element().to_xml());
        assert_eq!(error_condition(&st).as_deref(), Some(condition));
        st
    }

    /// Fails the test if anything is waiting in the mailbox.
    pub fn assert_silent(&mut self) {
        if let Some(st) = self.try_recv() {
            panic!("{}: unexpected {}", self.jid(), st.element().to_xml());
        }
    }

    /// Everything waiting in the mailbox.
    pub fn drain(&mut self) -> Vec<Stanza> {
        std::iter::from_fn(|| self.try_recv()).collect()
    }

    /// The next stanza, waiting up to `secs` for it.
    pub async fn next(&mut self, secs: u64) -> Stanza {
        match tokio::time::timeout(Duration::from_secs(secs), self.rx.rx.recv()).await {
            Ok(Some(SessionMsg::Stanza(st))) => st.stanza,
            Ok(Some(SessionMsg::Close(e))) => panic!("{}: session closed: {e}", self.jid()),
            Ok(None) => panic!("{}: mailbox closed", self.jid()),
            Err(_) => panic!("{}: no stanza within {secs} s", self.jid()),
        }
    }

    /// `next`, skipping presence stanzas.
    pub async fn next_non_presence(&mut self, secs: u64) -> Stanza {
        loop {
            let st = self.next(secs).await;
            if st.kind() != Kind::Presence {
                return st;
            }
        }
    }

    /// The next message, skipping other stanzas, waiting up to 5 s: for deliveries the
    /// server makes from a background task, such as offline messages.
    pub async fn next_message(&mut self) -> Stanza {
        loop {
            let st = self.next(5).await;
            if st.kind() == Kind::Message {
                return st;
            }
        }
    }

    /// `next`, which must be an error with condition `cond` and type `ty`.
    pub async fn expect_error(&mut self, secs: u64, cond: &str, ty: &str) -> Stanza {
        let st = self.next(secs).await;
        let got = error_of(&st);
        assert_eq!(
            (got.0.as_str(), got.1.as_str()),
            (cond, ty),
            "{}",
            st.element().to_xml()
        );
        st
    }

    /// Asks for the roster and returns the result, discarding anything queued before
    /// (RFC 6121 §2.1.3).
    pub async fn roster(&mut self) -> Stanza {
        self.drain();
        self.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
        self.drain()
            .into_iter()
            .find(|s| s.id() == Some("r"))
            .expect("roster result")
    }
}
