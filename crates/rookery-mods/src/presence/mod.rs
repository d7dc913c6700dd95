//! RFC 6121 presence: broadcast, probes, directed presence, subscriptions, and `unavailable`
//! when a session ends. Where it sits: every presence a local client sends reaches
//! [`Presence::outbound`] (first hook after `from` is stamped) and is consumed here; every
//! presence addressed to a local account reaches [`Presence::inbound`] before core's default
//! delivery. `broadcast.rs` handles availability, `subscription.rs` the four subscription types,
//! `send.rs` the presence the server sends on a user's behalf.

pub(crate) mod broadcast;
pub(crate) mod send;
pub(crate) mod subscription;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sub;

use async_trait::async_trait;
use rookery_core::registry::SessionEntry;
use rookery_core::session::SessionHandle;
use rookery_core::{Flow, Module, Server};
use rookery_proto::stanza::{Jid, Kind, Stanza};
use rookery_proto::subscription::SubKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The presence module.
///
/// Core calls `session_closed` after the session left the registry, so the module keeps each
/// bound session's registry entry (an `Arc`, not a copy of its state) until then, to read
/// whether it was available and whom it sent directed presence. Removing the entry on the first
/// `session_closed` also makes the hook idempotent (core may report a replaced session twice).
#[derive(Debug, Default)]
pub struct Presence {
    sessions: Mutex<HashMap<u64, Arc<SessionEntry>>>,
}

impl Presence {
    pub fn new() -> Self {
        Presence::default()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<SessionEntry>>> {
        // Held only for single map operations, never across an await; a poisoned lock still
        // holds a consistent map.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The registry entry of a bound session (remembered for `session_closed`).
    fn entry(&self, server: &Server, session: &SessionHandle) -> Option<Arc<SessionEntry>> {
        let entry = server
            .registry()
            .get(session.jid())
            .filter(|e| e.handle == *session)?;
        self.sessions()
            .entry(session.id())
            .or_insert_with(|| entry.clone());
        Some(entry)
    }
}

#[async_trait]
impl Module for Presence {
    fn name(&self) -> &'static str {
        "presence"
    }

    async fn session_bound(&self, server: &Server, session: &SessionHandle) {
        self.entry(server, session);
    }

    async fn outbound(&self, server: &Server, session: &SessionHandle, st: &mut Stanza) -> Flow {
        if st.kind() != Kind::Presence {
            return Flow::Continue;
        }
        let ty = st.type_attr().to_owned();
        let has_to = st.to().is_some();
        if ty == "error" {
            // Presence errors (e.g. refusing a request with an error) are routed as they are.
            return if has_to { Flow::Continue } else { Flow::Done };
        }
        let Some(entry) = self.entry(server, session) else {
            // Not (or no longer) bound: nothing to broadcast for.
            return Flow::Done;
        };
        let st = st.clone();
        match (ty.as_str(), has_to) {
            ("", false) => broadcast::available(server, &entry, st).await,
            ("unavailable", false) => broadcast::unavailable(server, &entry, st).await,
            ("" | "unavailable", true) => broadcast::directed(server, &entry, st).await,
            // RFC 6121 §4.3: probes are the server's business; a client's probe is dropped.
            ("probe", _) => {}
            (other, true) => {
                if let Ok(kind) = other.parse::<SubKind>() {
                    subscription::from_client(server, session, st, kind).await;
                }
            }
            // A subscription stanza needs a contact; without `to` there is none.
            (_, false) => {}
        }
        Flow::Done
    }

    async fn inbound(&self, server: &Server, st: &mut Stanza) -> Flow {
        if st.kind() != Kind::Presence {
            return Flow::Continue;
        }
        match st.type_attr() {
            // Errors take core's default path (to the addressed resource(s)).
            "error" => return Flow::Continue,
            "" | "unavailable" => broadcast::to_account(server, st.clone()),
            "probe" => broadcast::probe(server, st).await,
            other => {
                if let Ok(kind) = other.parse::<SubKind>() {
                    subscription::to_account(server, st.clone(), kind).await;
                }
            }
        }
        Flow::Done
    }

    async fn session_closed(&self, server: &Server, session: &SessionHandle, _clean: bool) {
        let Some(entry) = self.sessions().remove(&session.id()) else {
            return;
        };
        let (was_available, directed) = entry.with_state(|s| {
            let was = s.available;
            s.available = false;
            s.last = None;
            (was, std::mem::take(&mut s.directed))
        });
        if !was_available && directed.is_empty() {
            return;
        }
        // §4.5.2 / §4.6.3: a session that ends without saying goodbye gets `unavailable` sent
        // for it, from its full JID.
        let from = Jid::from(session.jid().clone());
        let Some(st) = send::unavailable_from(&from) else {
            return;
        };
        broadcast::signed_off(
            server,
            &session.jid().to_bare(),
            st,
            was_available,
            directed,
        )
        .await;
    }
}
