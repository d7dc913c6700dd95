//! Helpers shared by the IQ modules: who is asking (the requester's bare JID), the store-key
//! split of an account, store-error mapping, the RFC 6121 "may see presence" check, and XEP-0082
//! timestamps. Everything here runs inside `Module::handle_iq` / hooks, after core has routed the
//! stanza to a local account or the server.

use rookery_core::Server;
use rookery_proto::error::{Condition, ErrorType, StanzaError};
use rookery_proto::stanza::{BareJid, Jid, Stanza};
use rookery_store::{StoreError, Subscription};

pub use rookery_proto::datetime::{civil_from_days, format_utc, unix_now};

/// `(user, domain)` as the stores key an account (rookery-store's conventions: already normalised).
pub fn parts(bare: &BareJid) -> (&str, &str) {
    (
        bare.node().map(|n| n.as_str()).unwrap_or_default(),
        bare.domain().as_str(),
    )
}

/// The bare JID of whoever sent `st` (core stamps `from` on everything from a client).
pub fn requester(st: &Stanza) -> Option<BareJid> {
    st.from().map(Jid::to_bare)
}

/// Whether `st` was sent by the account `owner` itself (any of its resources).
pub fn is_own(st: &Stanza, owner: &BareJid) -> bool {
    requester(st).is_some_and(|r| &r == owner)
}

/// Logs a storage failure with context and turns it into the stanza error the requester sees
/// (the details stay in the log; the requester gets `internal-server-error`, RFC 6120 §8.3.3.6).
pub fn store_error(what: &'static str, account: &BareJid, e: &StoreError) -> StanzaError {
    tracing::error!(jid = %account, error = %e, what, "store error");
    StanzaError::internal()
}

/// A get-only namespace received a set (or the reverse): RFC 6120 §8.4 lets the entity answer
/// `service-unavailable` for a request it does not support.
pub fn unsupported() -> StanzaError {
    StanzaError::service_unavailable()
}

/// An error with an explicit type and a human-readable text.
pub fn error(condition: Condition, kind: ErrorType, text: &str) -> StanzaError {
    StanzaError::new(condition).with_type(kind).with_text(text)
}

/// RFC 6121 §3 / XEP-0012 §3: whether `contact` may see `owner`'s presence, i.e. the owner's
/// roster holds the contact with subscription `from` or `both`. Store errors deny (never leak
/// presence because storage hiccupped).
pub async fn may_see_presence(server: &Server, owner: &BareJid, contact: &BareJid) -> bool {
    let (user, domain) = parts(owner);
    match server
        .stores()
        .roster
        .get(user, domain, contact.as_str())
        .await
    {
        Ok(Some(item)) => matches!(item.subscription, Subscription::From | Subscription::Both),
        Ok(None) => false,
        Err(e) => {
            tracing::error!(jid = %owner, error = %e, what = "roster-get", "store error");
            false
        }
    }
}

/// Test harness: a real `Server` on a temporary SQLite database with fake sessions whose
/// mailboxes the tests read directly.
#[cfg(test)]
pub(crate) mod testkit {
    use rookery_core::session::SessionReceiver;
    use rookery_core::{Module, PresenceUpdate, Server, Session, SessionMsg};
    use rookery_proto::ns;
    use rookery_proto::sasl::MIN_ITERATIONS;
    use rookery_proto::stanza::{BareJid, FullJid, Jid, Stanza};
    use rookery_store::{RosterItem, Subscription};
    use rookery_xml::Element;
    use std::sync::Arc;

    pub(crate) struct Harness {
        pub server: Server,
        _dir: tempfile::TempDir,
    }

    pub(crate) struct Client {
        pub handle: Session,
        pub rx: SessionReceiver,
    }

    /// Parses a test stanza written without `xmlns='jabber:client'` on the top element.
    pub(crate) fn stanza(xml: &str) -> Stanza {
        let head = &xml[..xml.find('>').expect("a start tag")];
        let xml = if head.contains("xmlns=") {
            xml.to_owned()
        } else {
            let end = xml[1..]
                .find([' ', '>', '/'])
                .map(|i| i + 1)
                .expect("tag name");
            format!("{} xmlns='jabber:client'{}", &xml[..end], &xml[end..])
        };
        Stanza::new(Element::parse(&xml).expect("well-formed")).expect("valid stanza")
    }

    impl Harness {
        pub async fn new() -> Self {
            Self::with_modules(crate::iq_modules()).await
        }

        pub async fn with_modules(modules: Vec<Arc<dyn Module>>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let config = rookery_config::Config::zero_config(dir.path());
            let stores = rookery_store::open_sqlite(&dir.path().join("db.sqlite"))
                .await
                .unwrap();
            let server = Server::new(Arc::new(config), stores);
            server.start_modules(modules).unwrap();
            Harness { server, _dir: dir }
        }

        pub fn bare(&self, user: &str) -> BareJid {
            BareJid::new(&format!("{user}@localhost")).unwrap()
        }

        /// Creates the account (password "password") unless it exists.
        pub async fn account(&self, user: &str) -> BareJid {
            let bare = self.bare(user);
            let stores = self.server.stores();
            if !stores.accounts.exists(user, "localhost").await.unwrap() {
                rookery_core::accounts::create(stores, &bare, "password", MIN_ITERATIONS)
                    .await
                    .unwrap();
            }
            bare
        }

        /// A bound session `user@localhost/resource` (the account is created if needed).
        pub async fn login(&self, user: &str, resource: &str) -> Client {
            self.account(user).await;
            let full = FullJid::new(&format!("{user}@localhost/{resource}")).unwrap();
            let (handle, rx) = self.server.sessions().bind(full, false).await.unwrap();
            self.server.fire_session_bound(&handle).await;
            Client { handle, rx }
        }

        /// What the c2s actor does when a session ends.
        pub async fn logout(&self, c: Client) {
            if let Some(mut ended) = self.server.sessions().unbind(&c.handle) {
                ended.clean = true;
                self.server.fire_session_closed(&c.handle, &ended).await;
            }
        }

        /// A stanza from the client, `from` stamped as the c2s actor does.
        pub async fn send(&self, c: &Client, xml: &str) {
            let mut st = stanza(xml);
            st.set_from(Some(Jid::from(c.handle.jid().clone())));
            self.server.handle_from_client(&c.handle, st).await;
        }

        /// Puts `contact` in `owner`'s roster with `sub`.
        pub async fn roster(&self, owner: &BareJid, contact: &BareJid, sub: Subscription) {
            let item = RosterItem {
                jid: contact.as_str().to_owned(),
                subscription: sub,
                ..RosterItem::default()
            };
            let (user, domain) = super::parts(owner);
            self.server
                .stores()
                .roster
                .put(user, domain, &item)
                .await
                .unwrap();
        }

        /// Marks the session available with a last presence, as the presence module would.
        pub fn make_available(&self, c: &Client) {
            let mut p = stanza("<presence><status>here</status></presence>");
            p.set_from(Some(Jid::from(c.handle.jid().clone())));
            let update = PresenceUpdate::Available {
                priority: 0,
                last: p,
            };
            self.server
                .sessions()
                .set_presence(&c.handle, update)
                .expect("bound");
        }
    }

    impl Client {
        pub fn jid(&self) -> &FullJid {
            self.handle.jid()
        }

        pub fn try_recv(&mut self) -> Option<Stanza> {
            match self.rx.rx.try_recv() {
                Ok(SessionMsg::Stanza(s)) => Some(*s),
                Ok(SessionMsg::Close(e)) => panic!("{}: unexpected close {e}", self.jid()),
                Err(_) => None,
            }
        }

        pub fn recv(&mut self) -> Stanza {
            let jid = self.jid().clone();
            self.try_recv()
                .unwrap_or_else(|| panic!("{jid}: expected a stanza, got nothing"))
        }

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

        pub fn recv_error(&mut self, id: &str, condition: &str) -> Stanza {
            let st = self.recv();
            assert_eq!(st.type_attr(), "error", "{}", st.element().to_xml());
            assert_eq!(st.id(), Some(id), "{}", st.element().to_xml());
            assert_eq!(error_condition(&st).as_deref(), Some(condition));
            st
        }

        pub fn assert_silent(&mut self) {
            if let Some(st) = self.try_recv() {
                panic!("{}: unexpected {}", self.jid(), st.element().to_xml());
            }
        }
    }

    /// The defined condition of an error stanza.
    pub(crate) fn error_condition(st: &Stanza) -> Option<String> {
        st.element()
            .get_child("error", ns::CLIENT)?
            .children()
            .find(|c| c.ns() == ns::STANZAS && c.name() != "text")
            .map(|c| c.name().to_owned())
    }

    /// The `var`s of a disco#info result, in order.
    pub(crate) fn features_of(q: &Element) -> Vec<String> {
        q.children()
            .filter(|c| c.is("feature", ns::DISCO_INFO))
            .filter_map(|c| c.attr("var").map(str::to_owned))
            .collect()
    }
}
