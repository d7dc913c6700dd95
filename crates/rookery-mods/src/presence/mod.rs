//! RFC 6121 presence: broadcast, probes, directed presence, subscriptions, and `unavailable`
//! when a session ends. Where it sits: every presence a local client sends reaches
//! [`Presence::from_client`] (after the filters and observers of higher priority) and is
//! consumed here; every presence addressed to a local account reaches
//! [`Presence::to_account`] before core's default delivery. `broadcast.rs` handles
//! availability, `subscription.rs` the four subscription types, `send.rs` the presence the
//! server sends on a user's behalf.

pub(crate) mod broadcast;
pub(crate) mod send;
pub(crate) mod subscription;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sub;

use async_trait::async_trait;
use rookery_core::{
    Ended, Event, Flow, Module, ModuleCx, Point, Priority, Server, Session, StartResult,
};
use rookery_proto::stanza::{Jid, Kind, Stanza};
use rookery_proto::subscription::SubKind;

/// What the roster, presence and offline tests run: the modules that share subscription
/// state and availability.
#[cfg(test)]
pub(crate) fn test_modules() -> Vec<std::sync::Arc<dyn Module>> {
    vec![
        std::sync::Arc::new(crate::roster::Roster::new()),
        std::sync::Arc::new(Presence::new()),
        std::sync::Arc::new(crate::offline::Offline::new()),
    ]
}

/// The presence module. It keeps no state of its own: availability, priority, the last
/// presence and directed-presence recipients are core's session state, changed through the
/// sessions door (`set_presence`, `record_directed`); core hands the final state to
/// `session_closed`.
#[derive(Debug, Default)]
pub struct Presence;

impl Presence {
    pub fn new() -> Self {
        Presence
    }
}

#[async_trait]
impl Module for Presence {
    fn name(&self) -> &'static str {
        "presence"
    }

    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        cx.hook(Point::FromClient, &[Kind::Presence], Priority::PRESENCE)
            .hook(Point::ToAccount, &[Kind::Presence], Priority::PRESENCE)
            .on(Event::SessionClosed);
        Ok(())
    }

    async fn from_client(&self, server: &Server, session: &Session, st: &mut Stanza) -> Flow {
        let ty = st.type_attr().to_owned();
        let has_to = st.to().is_some();
        if ty == "error" {
            // Presence errors (e.g. refusing a request with an error) are routed as they are.
            return if has_to { Flow::Continue } else { Flow::Done };
        }
        if !session.is_bound() {
            // Not (or no longer) bound: nothing to broadcast for.
            return Flow::Done;
        }
        let st = st.clone();
        match (ty.as_str(), has_to) {
            ("", false) => broadcast::available(server, session, st).await,
            ("unavailable", false) => broadcast::unavailable(server, session, st).await,
            ("" | "unavailable", true) => broadcast::directed(server, session, st).await,
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

    async fn to_account(&self, server: &Server, st: &mut Stanza) -> Flow {
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

    async fn session_closed(&self, server: &Server, session: &Session, ended: &Ended) {
        if !ended.was_available && ended.directed.is_empty() {
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
            ended.was_available,
            ended.directed.clone(),
        )
        .await;
    }
}
