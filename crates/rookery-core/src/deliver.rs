//! Delivery to a local host (RFC 6121 §8): what happens to a stanza once the router found its
//! `to` domain is ours. Modules get the first look (`Module::inbound`, `Module::handle_iq`); the
//! defaults here implement the per-kind and per-type rules for full JIDs, bare JIDs, accounts that
//! don't exist, and the server itself. Every lookup is by key: O(resources of one account).

use crate::hooks::{Flow, IqTarget};
use crate::registry::SessionEntry;
use crate::server::Server;
use crate::session::{SessionHandle, Undelivered};
use rookery_proto::error::{Condition, StanzaError};
use rookery_proto::stanza::{BareJid, Kind, Stanza};
use std::sync::Arc;

/// Delivers a stanza whose `to` is on a local host.
pub async fn deliver(server: &Server, mut st: Stanza) {
    let Some(to) = st.to().cloned() else {
        return;
    };
    if to.node().is_none() {
        deliver_to_host(server, st).await;
        return;
    }
    let bare = to.to_bare();
    // Modules see every kind first, iqs included: a user's blocklist must stop iqs from remote
    // senders too (XEP-0191 §3.3); local senders were already checked on their way out.
    for m in server.modules() {
        if m.inbound(server, &mut st).await == Flow::Done {
            return;
        }
    }
    if st.kind() == Kind::Iq {
        match to.try_as_full() {
            Ok(full) => match server.registry().get(full) {
                Some(entry) => {
                    if let Err(back) = hand_to(server, &entry.handle, st).await {
                        // The session did not make room in time (or is going): the requester
                        // hears so instead of waiting for its timeout.
                        let err = StanzaError::new(Condition::ResourceConstraint);
                        server.bounce(&back.stanza, err).await;
                    }
                }
                // RFC 6121 §8.5.3.2.1 and §8.5.1 agree: service-unavailable (never for results
                // or errors: bounce checks that).
                None => server.bounce(&st, StanzaError::service_unavailable()).await,
            },
            Err(_) => deliver_iq_to_account(server, st, bare, false).await,
        }
        return;
    }
    match st.kind() {
        Kind::Message => deliver_message(server, st, bare).await,
        Kind::Presence => deliver_presence(server, st).await,
        Kind::Iq => {}
    }
}

/// Queues `st` for a session on behalf of whoever sent it: waits (up to `delivery_wait_secs`)
/// while the session's mailbox is full, which pauses the sender's own reads — backpressure to a
/// flood instead of closing the recipient (`mailbox.rs`).
#[allow(clippy::result_large_err)] // the stanza itself is handed back, not an error value
async fn hand_to(server: &Server, to: &SessionHandle, st: Stanza) -> Result<(), Undelivered> {
    to.send_wait(st, server.config().limits.delivery_wait())
        .await
}

fn is_get_or_set(st: &Stanza) -> bool {
    matches!(st.type_attr(), "get" | "set")
}

/// An iq to a local bare JID (or without `to`, from the account itself: `own` is true).
pub async fn deliver_iq_to_account(server: &Server, st: Stanza, bare: BareJid, own: bool) {
    if !is_get_or_set(&st) {
        // Results and errors addressed to a bare JID have no pending request here: drop.
        return;
    }
    if !own && !server.account_exists(&bare).await {
        // RFC 6121 §8.5.1: no such account.
        server.bounce(&st, StanzaError::service_unavailable()).await;
        return;
    }
    server.dispatch_iq(IqTarget::Account(bare), st).await;
}

/// A stanza to the server's own domain (or `domain/resource`).
async fn deliver_to_host(server: &Server, st: Stanza) {
    match st.kind() {
        Kind::Iq if is_get_or_set(&st) => server.dispatch_iq(IqTarget::Server, st).await,
        // Results/errors for the server's own requests are consumed by whoever sent them (the
        // session actor for its pings); anything else is dropped. Messages and presence to the
        // server have no recipient: RFC 6120 §10.3.1 lets the server handle them; we drop them.
        _ => {}
    }
}

/// RFC 6121 §8.5.2 / §8.5.3 message rules.
async fn deliver_message(server: &Server, st: Stanza, bare: BareJid) {
    // A 'static name, so `st` can move into a session (and come back) while `ty` is in use.
    // `Stanza` accepts no other message types.
    let ty = match st.type_attr() {
        "chat" => "chat",
        "headline" => "headline",
        "groupchat" => "groupchat",
        "error" => "error",
        _ => "normal",
    };
    if ty == "error" {
        // Errors go to the addressed resource if it exists, otherwise they are dropped.
        if let Some(e) = st
            .to()
            .and_then(|t| t.try_as_full().ok())
            .and_then(|full| server.registry().get(full))
        {
            let _ = hand_to(server, &e.handle, st).await;
        }
        return;
    }
    let mut st = st;
    if let Some(full) = st.to().and_then(|t| t.try_as_full().ok()).cloned() {
        if let Some(entry) = server.registry().get(&full) {
            match hand_to(server, &entry.handle, st).await {
                Ok(()) => return,
                // The session is gone or did not make room in time: deliver as if the resource
                // were not there, so the message reaches another resource or offline storage.
                Err(back) => st = back.stanza,
            }
        }
        // §8.5.3.2.1: no such resource.
        match ty {
            "groupchat" => {
                server.bounce(&st, StanzaError::service_unavailable()).await;
                return;
            }
            "headline" => return,
            _ => {} // chat and normal: treated as addressed to the bare JID
        }
    }
    if !server.account_exists(&bare).await {
        // §8.5.1: the account does not exist.
        if ty != "headline" && ty != "groupchat" {
            server.bounce(&st, StanzaError::service_unavailable()).await;
        }
        return;
    }
    match ty {
        "groupchat" => {
            // §8.5.2.1.2: groupchat to a bare JID is an error.
            server.bounce(&st, StanzaError::service_unavailable()).await;
        }
        "headline" => {
            // §8.5.2.1.3: every available resource with non-negative priority, else drop.
            for e in server.registry().available(&bare) {
                if e.with_state(|s| s.priority >= 0) {
                    let _ = hand_to(server, &e.handle, st.clone()).await;
                }
            }
        }
        _ => {
            // chat / normal: the highest-priority non-negative resources, else offline.
            let best = server.registry().best_resources(&bare);
            let Some(st) = send_all(server, &best, st).await else {
                return;
            };
            for m in server.modules() {
                if m.undeliverable_message(server, &st).await == Flow::Done {
                    return;
                }
            }
            server.bounce(&st, StanzaError::service_unavailable()).await;
        }
    }
}

/// A message that could not reach the session it was written to (its connection manager
/// reported it undeliverable, or the link carrying it was lost): offline storage, as for a
/// resource that is not there, else a `service-unavailable` bounce. Never dropped.
pub async fn store_undeliverable(server: &Server, st: Stanza) {
    if st.kind() != Kind::Message {
        return;
    }
    for m in server.modules() {
        if m.undeliverable_message(server, &st).await == Flow::Done {
            return;
        }
    }
    server.bounce(&st, StanzaError::service_unavailable()).await;
}

/// Gives `st` to every session in `entries`; returns it if none took it (no sessions, or all
/// of them closing or full), so the caller can store or bounce it instead of losing it.
async fn send_all(server: &Server, entries: &[Arc<SessionEntry>], st: Stanza) -> Option<Stanza> {
    let Some((last, rest)) = entries.split_last() else {
        return Some(st);
    };
    let mut delivered = false;
    for e in rest {
        delivered |= hand_to(server, &e.handle, st.clone()).await.is_ok();
    }
    match hand_to(server, &last.handle, st).await {
        Ok(()) => None,
        Err(_) if delivered => None,
        Err(back) => Some(back.stanza),
    }
}

/// Presence the presence module did not consume: to a full JID → that session; to a bare JID →
/// every available resource (RFC 6121 §4.3, §4.5); otherwise dropped (§8.5.2.2.2).
async fn deliver_presence(server: &Server, st: Stanza) {
    let Some(to) = st.to() else {
        return;
    };
    match to.try_as_full() {
        Ok(full) => {
            if let Some(e) = server.registry().get(full) {
                let _ = hand_to(server, &e.handle, st).await;
            }
        }
        Err(bare) => {
            for e in server.registry().available(bare) {
                let _ = hand_to(server, &e.handle, st.clone()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::Module;
    use crate::registry::BindOutcome;
    use crate::session::SessionHandle;
    use rookery_proto::stanza::{FullJid, Jid};
    use rookery_xml::Element;
    use std::sync::Mutex;

    /// Records what reached `undeliverable_message` and takes it (like offline storage).
    #[derive(Default)]
    struct Sink(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl Module for Sink {
        fn name(&self) -> &'static str {
            "sink"
        }
        async fn undeliverable_message(&self, _server: &Server, st: &Stanza) -> Flow {
            self.0
                .lock()
                .unwrap()
                .push(st.id().unwrap_or_default().to_owned());
            Flow::Done
        }
    }

    fn message(id: &str, to: &str) -> Stanza {
        let mut st = Stanza::new(
            Element::parse(&format!(
                "<message xmlns='jabber:client' type='chat' id='{id}' to='{to}'><body>x</body></message>"
            ))
            .unwrap(),
        )
        .unwrap();
        st.set_from(Some(Jid::new("sender@localhost/s").unwrap()));
        st
    }

    /// Regression: a message for a session whose mailbox was full was dropped; it must take the
    /// undeliverable path (offline storage) like a message for an absent resource — after the
    /// sender waited `delivery_wait_secs` for room — and the session stays connected.
    #[tokio::test(start_paused = true)]
    async fn message_for_a_full_mailbox_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let stores = rookery_store::open_sqlite(&dir.path().join("db"))
            .await
            .unwrap();
        let sink = Arc::new(Sink::default());
        let server = Server::new(
            Arc::new(rookery_config::Config::zero_config(dir.path())),
            stores,
            vec![sink.clone()],
        )
        .unwrap();
        let (h, rx) = SessionHandle::new(FullJid::new("juliet@localhost/j").unwrap(), 1);
        match server.registry().bind(h, false, 10) {
            BindOutcome::Bound(e) => e.with_state(|s| s.available = true),
            other => panic!("{other:?}"),
        }
        // Fills the mailbox of one.
        server.route(message("m1", "juliet@localhost/j")).await;
        // Full JID and bare JID, both to the full mailbox: neither may vanish.
        server.route(message("m2", "juliet@localhost/j")).await;
        let t0 = tokio::time::Instant::now();
        server.route(message("m3", "juliet@localhost")).await;
        assert_eq!(*sink.0.lock().unwrap(), vec!["m2", "m3"]);
        assert_eq!(
            t0.elapsed(),
            std::time::Duration::ZERO,
            "after one sender waited in vain, the next fails over at once"
        );
        assert!(!rx.close_now.is_raised(), "the recipient is not closed");
    }
}
