//! Delivery to a local host (RFC 6121 §8): what happens to a stanza once the router found its
//! `to` domain is ours. Modules get the first look (`Point::ToAccount`, `Point::ToFullJid`,
//! IQ handlers); the defaults here implement the per-kind and per-type rules for full JIDs,
//! bare JIDs, accounts that don't exist, and the server itself; `Point::Delivered` and
//! `Point::Undeliverable` follow. Every lookup is by key: O(resources of one account), local
//! sessions from the registry, others through the `Cluster`.

use crate::hooks::{Flow, IqTarget, Point};
use crate::modules::Table;
use crate::server::Server;
use crate::session::{SendError, Undelivered};
use crate::sessions::{Resource, SessionRef};
use rookery_proto::error::{Condition, StanzaError};
use rookery_proto::stanza::{BareJid, FullJid, Kind, Stanza};

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
    // One look at the module tables for the whole delivery.
    let table = server.inner().modules.table();
    {
        let host = to.domain().as_str();
        for m in table.hooks(Point::ToAccount, st.kind(), host) {
            if m.to_account(server, &mut st).await == Flow::Done {
                return;
            }
        }
        if to.try_as_full().is_ok() {
            for m in table.hooks(Point::ToFullJid, st.kind(), host) {
                if m.to_full_jid(server, &mut st).await == Flow::Done {
                    return;
                }
            }
        }
    }
    if st.kind() == Kind::Iq {
        match to.try_as_full() {
            Ok(full) => match server.sessions().session_ref(full) {
                Some(target) => {
                    if let Err(back) = hand_to(server, &target, st).await {
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
        Kind::Message => deliver_message(server, &table, st, bare).await,
        Kind::Presence => deliver_presence(server, st).await,
        Kind::Iq => {}
    }
}

/// Queues `st` for a session on behalf of whoever sent it: waits (up to `delivery_wait_secs`)
/// while a local session's mailbox is full, which pauses the sender's own reads —
/// backpressure to a flood instead of closing the recipient (`mailbox.rs`). A session on
/// another node gets it through the cluster, which never waits.
#[allow(clippy::result_large_err)] // the stanza itself is handed back, not an error value
async fn hand_to(server: &Server, to: &SessionRef, st: Stanza) -> Result<(), Undelivered> {
    match to {
        SessionRef::Local(s) => {
            s.send_wait(st, server.config().limits.delivery_wait())
                .await
        }
        SessionRef::Remote(r) => server.cluster().send(r, st).map_err(|stanza| Undelivered {
            reason: SendError::Closed,
            stanza,
        }),
    }
}

/// RFC 6121 §8.5.2.1: the available resources with the highest non-negative priority.
fn best_resources(server: &Server, bare: &BareJid) -> Vec<Resource> {
    let avail: Vec<Resource> = server
        .sessions()
        .available(bare)
        .into_iter()
        .filter(|r| r.priority >= 0)
        .collect();
    let Some(max) = avail.iter().map(|r| r.priority).max() else {
        return Vec::new();
    };
    avail.into_iter().filter(|r| r.priority == max).collect()
}

/// `Point::Undeliverable`: `Done` if a module took the message.
async fn undeliverable(server: &Server, table: &Table, st: &Stanza) -> bool {
    let host = st.to().map(|t| t.domain().as_str()).unwrap_or_default();
    for m in table.hooks(Point::Undeliverable, st.kind(), host) {
        if m.undeliverable(server, st).await == Flow::Done {
            return true;
        }
    }
    false
}

/// `Point::Delivered`, when anyone registered for it.
async fn delivered(server: &Server, table: &Table, st: &Stanza, to: &[FullJid]) {
    let host = st.to().map(|t| t.domain().as_str()).unwrap_or_default();
    for m in table.hooks(Point::Delivered, st.kind(), host) {
        m.delivered(server, st, to).await;
    }
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
async fn deliver_message(server: &Server, table: &Table, st: Stanza, bare: BareJid) {
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
        if let Some(target) = st
            .to()
            .and_then(|t| t.try_as_full().ok())
            .and_then(|full| server.sessions().session_ref(full))
        {
            let _ = hand_to(server, &target, st).await;
        }
        return;
    }
    let mut st = st;
    if let Some(full) = st.to().and_then(|t| t.try_as_full().ok()).cloned() {
        if let Some(target) = server.sessions().session_ref(&full) {
            let copy = has_delivered_hooks(table, &st).then(|| st.clone());
            match hand_to(server, &target, st).await {
                Ok(()) => {
                    if let Some(copy) = copy {
                        delivered(server, table, &copy, std::slice::from_ref(&full)).await;
                    }
                    return;
                }
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
            for r in server.sessions().available(&bare) {
                if r.priority >= 0 {
                    let _ = hand_to(server, &r.session, st.clone()).await;
                }
            }
        }
        _ => {
            // chat / normal: the highest-priority non-negative resources, else offline.
            let best = best_resources(server, &bare);
            let copy = has_delivered_hooks(table, &st).then(|| st.clone());
            let (left, took) = send_all(server, &best, st).await;
            let Some(st) = left else {
                if let Some(copy) = copy {
                    delivered(server, table, &copy, &took).await;
                }
                return;
            };
            if undeliverable(server, table, &st).await {
                return;
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
    if undeliverable(server, &server.inner().modules.table(), &st).await {
        return;
    }
    server.bounce(&st, StanzaError::service_unavailable()).await;
}

fn has_delivered_hooks(table: &Table, st: &Stanza) -> bool {
    table.hooked(Point::Delivered, st.kind())
}

/// Gives `st` to every resource in `to`; returns it if none took it (no sessions, or all of
/// them closing or full), so the caller can store or bounce it instead of losing it, and the
/// resources that took it.
async fn send_all(server: &Server, to: &[Resource], st: Stanza) -> (Option<Stanza>, Vec<FullJid>) {
    let mut took = Vec::new();
    let Some((last, rest)) = to.split_last() else {
        return (Some(st), took);
    };
    for r in rest {
        if hand_to(server, &r.session, st.clone()).await.is_ok() {
            took.push(r.jid().clone());
        }
    }
    match hand_to(server, &last.session, st).await {
        Ok(()) => {
            took.push(last.jid().clone());
            (None, took)
        }
        Err(_) if !took.is_empty() => (None, took),
        Err(back) => (Some(back.stanza), took),
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
            if let Some(target) = server.sessions().session_ref(full) {
                let _ = hand_to(server, &target, st).await;
            }
        }
        Err(bare) => {
            for r in server.sessions().available(bare) {
                let _ = hand_to(server, &r.session, st.clone()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{Module, Priority, StartResult};
    use crate::modules::ModuleCx;
    use crate::sessions::PresenceUpdate;
    use rookery_proto::stanza::{FullJid, Jid};
    use rookery_xml::Element;
    use std::sync::{Arc, Mutex};

    /// Records what reached `undeliverable_message` and takes it (like offline storage).
    #[derive(Default)]
    struct Sink(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl Module for Sink {
        fn name(&self) -> &'static str {
            "sink"
        }
        fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
            cx.hook(Point::Undeliverable, &[Kind::Message], Priority::STORE);
            Ok(())
        }
        async fn undeliverable(&self, _server: &Server, st: &Stanza) -> Flow {
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
        let mut config = rookery_config::Config::zero_config(dir.path());
        config.limits.session_mailbox = 1;
        let server = Server::new(Arc::new(config), stores);
        server.start_modules(vec![sink.clone()]).unwrap();
        let (h, rx) = server
            .sessions()
            .bind(FullJid::new("juliet@localhost/j").unwrap(), false)
            .await
            .unwrap();
        let presence =
            Stanza::new(Element::parse("<presence xmlns='jabber:client'/>").unwrap()).unwrap();
        server.sessions().set_presence(
            &h,
            PresenceUpdate::Available {
                priority: 0,
                last: presence,
            },
        );
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
