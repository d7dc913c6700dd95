//! Test harness for the roster, presence and offline modules: a real `Server` (zero-config
//! `localhost`, SQLite in a temp dir, the three modules) and fake client sessions bound in its
//! registry. Every hook runs inline within the awaited call, so once `Client::send` returns,
//! everything it caused sits in the recipients' mailboxes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic reports a failed expectation

use crate::offline::Offline;
use crate::presence::Presence;
use crate::roster::Roster;
use rookery_config::Config;
use rookery_core::session::SessionReceiver;
use rookery_core::{Module, Server, Session, SessionMsg};
use rookery_proto::stanza::{BareJid, FullJid, Jid, Stanza};
use rookery_xml::Element;
use std::sync::Arc;

pub(crate) struct Harness {
    pub server: Server,
    dir: tempfile::TempDir,
    offline_max: u32,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_offline_max(1000).await
    }

    pub async fn with_offline_max(offline_max: u32) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let server = open(dir.path(), offline_max).await;
        Harness {
            server,
            dir,
            offline_max,
        }
    }

    /// A new `Server` on the same database: what a restart looks like to the modules.
    pub async fn restart(&mut self) {
        self.server = open(self.dir.path(), self.offline_max).await;
    }

    pub async fn account(&self, user: &str) -> BareJid {
        let bare = BareJid::new(&format!("{user}@localhost")).unwrap();
        rookery_core::accounts::create(self.server.stores(), &bare, "password", 4096)
            .await
            .unwrap();
        bare
    }

    /// Binds a session as the c2s actor would and fires `session_bound`.
    pub async fn connect(&self, full: &str) -> Client {
        let jid = FullJid::new(full).unwrap();
        let (handle, rx) = self.server.sessions().bind(jid, false).await.unwrap();
        self.server.fire_session_bound(&handle).await;
        Client {
            server: self.server.clone(),
            handle,
            rx,
        }
    }
}

async fn open(dir: &std::path::Path, offline_max: u32) -> Server {
    let mut config = Config::zero_config(dir);
    config.limits.offline_max = offline_max;
    let stores = rookery_store::open_sqlite(&dir.join("rookery.sqlite"))
        .await
        .unwrap();
    let modules: Vec<Arc<dyn Module>> = vec![
        Arc::new(Roster::new()),
        Arc::new(Presence::new()),
        Arc::new(Offline::new()),
    ];
    let server = Server::new(Arc::new(config), stores);
    server.start_modules(modules).unwrap();
    server
}

pub(crate) struct Client {
    server: Server,
    pub handle: Session,
    rx: SessionReceiver,
}

impl Client {
    pub fn jid(&self) -> &FullJid {
        self.handle.jid()
    }

    /// Sends a stanza as the client (the c2s actor stamps `from` first).
    pub async fn send(&self, xml: &str) {
        let el = Element::parse(&with_client_ns(xml)).unwrap();
        let mut st = Stanza::new(el).unwrap();
        st.set_from(Some(Jid::from(self.handle.jid().clone())));
        self.server.handle_from_client(&self.handle, st).await;
    }

    /// Everything delivered so far.
    pub fn drain(&mut self) -> Vec<Stanza> {
        let mut out = Vec::new();
        while let Ok(msg) = self.rx.rx.try_recv() {
            match msg {
                SessionMsg::Stanza(st) => out.push(*st),
                SessionMsg::Close(e) => panic!("session closed: {e:?}"),
            }
        }
        out
    }

    /// Waits for the next message (skipping other stanzas); for deliveries the server makes from
    /// a background task, such as offline messages.
    pub async fn next_message(&mut self) -> Stanza {
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), self.rx.rx.recv()).await {
                Ok(Some(SessionMsg::Stanza(st)))
                    if st.kind() == rookery_proto::stanza::Kind::Message =>
                {
                    return *st;
                }
                Ok(Some(SessionMsg::Stanza(_))) => {}
                Ok(Some(SessionMsg::Close(e))) => panic!("session closed: {e:?}"),
                Ok(None) => panic!("mailbox closed"),
                Err(_) => panic!("no message within 5 s"),
            }
        }
    }

    /// Asks for the roster and returns the result (discarding anything queued before).
    pub async fn roster(&mut self) -> Stanza {
        self.drain();
        self.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
        let got = self.drain();
        got.into_iter()
            .find(|s| s.id() == Some("r"))
            .expect("roster result")
    }

    /// Ends the session as the c2s actor does: leave the registry, then `session_closed`.
    pub async fn disconnect(self) {
        if let Some(ended) = self.server.sessions().unbind(&self.handle) {
            self.server.fire_session_closed(&self.handle, &ended).await;
        }
    }
}

/// Test stanzas are written without `xmlns`; the stream's content namespace is jabber:client.
fn with_client_ns(xml: &str) -> String {
    if xml.contains("xmlns='jabber:client'") {
        return xml.to_owned();
    }
    let end = xml.find([' ', '>', '/']).unwrap();
    format!("{} xmlns='jabber:client'{}", &xml[..end], &xml[end..])
}

/// Shorthand checks on received stanzas.
pub(crate) fn presences(got: &[Stanza]) -> Vec<&Stanza> {
    got.iter()
        .filter(|s| s.kind() == rookery_proto::stanza::Kind::Presence)
        .collect()
}

pub(crate) fn pushes(got: &[Stanza]) -> Vec<&Element> {
    got.iter()
        .filter(|s| s.kind() == rookery_proto::stanza::Kind::Iq && s.type_attr() == "set")
        .filter_map(|s| s.iq_payload())
        .filter_map(|q| q.get_child("item", rookery_proto::ns::ROSTER))
        .collect()
}
