//! Delivery to a local host (RFC 6121 §8): what happens to a stanza once the router found its
//! `to` domain is ours. Modules get the first look (`Module::inbound`, `Module::handle_iq`); the
//! defaults here implement the per-kind and per-type rules for full JIDs, bare JIDs, accounts that
//! don't exist, and the server itself. Every lookup is by key: O(resources of one account).

use crate::hooks::{Flow, IqTarget};
use crate::server::Server;
use rookery_proto::error::StanzaError;
use rookery_proto::stanza::{BareJid, Kind, Stanza};

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
                    let _ = entry.handle.send(st);
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
    let ty = match st.type_attr() {
        "" => "normal",
        t => t,
    };
    if ty == "error" {
        // Errors go to the addressed resource if it exists, otherwise they are dropped.
        if let Some(e) = st
            .to()
            .and_then(|t| t.try_as_full().ok())
            .and_then(|full| server.registry().get(full))
        {
            let _ = e.handle.send(st);
        }
        return;
    }
    if let Some(full) = st.to().and_then(|t| t.try_as_full().ok()).cloned() {
        if let Some(entry) = server.registry().get(&full) {
            let _ = entry.handle.send(st);
            return;
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
                    let _ = e.handle.send(st.clone());
                }
            }
        }
        _ => {
            // chat / normal: the highest-priority non-negative resources, else offline.
            let best = server.registry().best_resources(&bare);
            if best.is_empty() {
                for m in server.modules() {
                    if m.undeliverable_message(server, &st).await == Flow::Done {
                        return;
                    }
                }
                server.bounce(&st, StanzaError::service_unavailable()).await;
                return;
            }
            for e in best {
                let _ = e.handle.send(st.clone());
            }
        }
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
                let _ = e.handle.send(st);
            }
        }
        Err(bare) => {
            for e in server.registry().available(bare) {
                let _ = e.handle.send(st.clone());
            }
        }
    }
}
