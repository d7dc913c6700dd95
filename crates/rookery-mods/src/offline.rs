//! XEP-0160 offline messages with XEP-0203 delay. Where it sits: core's delivery rules (RFC 6121
//! §8.5.2.1.1) call [`Offline::undeliverable`] for a `normal`/`chat` message to an
//! existing account with no available resource of non-negative priority; we store it and
//! return `Done`, or return `Continue` so the sender gets `service-unavailable`. The presence
//! module fires `initial_presence` when a session sends its first available presence; we then
//! hand that session every stored message, each with a `<delay/>` saying when it was stored.
//!
//! What is stored: messages with a `<body/>` or any other payload a client may want later
//! (receipts, OMEMO, invitations, ...). Not stored, and silently dropped: messages whose only
//! children are transient ones — XEP-0085 chat states, `<thread/>`, XEP-0334 hints — because
//! a "typing" notification is worthless later (XEP-0160 §3 / XEP-0085 §5.4: the server should
//! not store chat-state-only messages). Refused (bounced): messages carrying XEP-0334
//! `<no-store/>` or `<no-permanent-store/>`, and everything once the account holds
//! `limits.offline_max` messages (0 disables storage).

use crate::util::{format_utc, parts};
use async_trait::async_trait;
use rookery_core::{
    Event, Flow, Module, ModuleCx, Point, Priority, Scope, Server, Session, SessionRef, StartResult,
};
use rookery_proto::ns;
use rookery_proto::stanza::{Jid, Kind, Stanza};
use rookery_store::StoreError;
use rookery_xml::Element;
use std::time::{SystemTime, UNIX_EPOCH};

const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";
const HINTS: &str = "urn:xmpp:hints";

/// The offline-message module.
#[derive(Debug, Default)]
pub struct Offline;

impl Offline {
    pub fn new() -> Self {
        Offline
    }
}

/// What to do with a message nobody could take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Store,
    /// Transient content only: drop silently.
    Discard,
    /// The sender asked us not to store it: let core bounce it.
    Refuse,
}

fn verdict(st: &Stanza) -> Verdict {
    let el = st.element();
    let hint = |name: &str| el.get_child(name, HINTS).is_some();
    if hint("no-store") || hint("no-permanent-store") {
        return Verdict::Refuse;
    }
    let lasting = el.children().any(|c| {
        let transient = c.ns() == CHAT_STATES
            || c.ns() == HINTS
            || c.is("thread", ns::CLIENT)
            || c.is("error", ns::CLIENT);
        !transient
    });
    if lasting {
        Verdict::Store
    } else {
        Verdict::Discard
    }
}

fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // A clock before 1970 is broken; the stamp is informational only.
        Err(_) => 0,
    }
}

/// The stored message made ready for delivery: XEP-0203 `<delay/>` from our domain with the
/// time it was stored.
fn with_delay(xml: &str, stamp_ms: i64, domain: &str) -> Option<Stanza> {
    let mut el = Element::parse(xml).ok()?;
    // A message stored again after a failed delivery keeps its first stamp (XEP-0203: one
    // delay per delaying entity, the original time).
    if el
        .children()
        .any(|c| c.is("delay", ns::DELAY) && c.attr("from") == Some(domain))
    {
        return Stanza::new(el).ok();
    }
    el.append_child(
        Element::new("delay", ns::DELAY)
            .with_attr("from", domain)
            .with_attr("stamp", format_utc(stamp_ms.div_euclid(1000))),
    );
    Stanza::new(el).ok()
}

#[async_trait]
impl Module for Offline {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        cx.hook(Point::Undeliverable, &[Kind::Message], Priority::STORE)
            .on(Event::InitialPresence)
            // XEP-0160 §5: servers that store messages advertise "msgoffline".
            .feature(Scope::Server, ns::OFFLINE);
        Ok(())
    }

    async fn undeliverable(&self, server: &Server, st: &Stanza) -> Flow {
        // Core only asks for normal/chat messages (§8.5.2.1.1); check anyway, since storing a
        // groupchat or error message would be wrong whoever asked.
        if !matches!(st.type_attr(), "" | "normal" | "chat") {
            return Flow::Continue;
        }
        let Some(to) = st.to().map(Jid::to_bare) else {
            return Flow::Continue;
        };
        match verdict(st) {
            Verdict::Discard => return Flow::Done,
            Verdict::Refuse => return Flow::Continue,
            Verdict::Store => {}
        }
        let limit = server.config().limits.offline_max as usize;
        let (user, domain) = parts(&to);
        let xml = st.element().to_xml();
        match server
            .stores()
            .offline
            .push(user, domain, &xml, now_ms(), limit)
            .await
        {
            Ok(()) => Flow::Done,
            Err(StoreError::Limit) => {
                tracing::info!(jid = %to, what = "offline-full", "offline storage full");
                Flow::Continue
            }
            Err(e) => {
                tracing::error!(jid = %to, error = %e, what = "offline-push", "store error");
                Flow::Continue
            }
        }
    }

    async fn initial_presence(&self, server: &Server, session: &Session) {
        // RFC 6121 §8.5.2.1.1: a resource with negative priority never receives messages
        // addressed to the bare JID, so it does not empty the queue either.
        let prio = server
            .sessions()
            .resource(session.jid())
            .map_or(0, |r| r.priority);
        if prio < 0 {
            return;
        }
        let bare = session.jid().to_bare();
        let (user, domain) = parts(&bare);
        let stored = match server.stores().offline.take_all(user, domain).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(jid = %bare, error = %e, what = "offline-take", "store error");
                return;
            }
        };
        let mut messages = Vec::with_capacity(stored.len());
        for (xml, stamp) in stored {
            match with_delay(&xml, stamp, domain) {
                Some(st) => messages.push(st),
                None => {
                    tracing::warn!(jid = %bare, what = "offline-parse", "unreadable stored message")
                }
            }
        }
        if messages.is_empty() {
            return;
        }
        // This hook runs on the session's own task, which is what drains its mailbox: feed the
        // messages from another task, waiting for room, so a long backlog never overruns the
        // mailbox. Whatever the session can't take goes back through the router (another
        // resource, or offline storage again): taken from the store means not lost.
        let (server, session) = (server.clone(), SessionRef::Local(session.clone()));
        server.clone().tasks().spawn(async move {
            let mut rest = messages.into_iter();
            for st in rest.by_ref() {
                if let Err(back) = server
                    .sessions()
                    .send_wait(&session, st, FEED_PATIENCE)
                    .await
                {
                    server.route(back.stanza).await;
                    break;
                }
            }
            for st in rest {
                server.route(st).await;
            }
        });
    }
}

/// How long a client may take to make room for the next offline message before the rest goes
/// back through the router.
const FEED_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic reports a failed expectation
mod tests {
    use super::*;
    use rookery_testkit::Harness;

    fn msg(xml: &str) -> Stanza {
        Stanza::new(Element::parse(xml).unwrap()).unwrap()
    }

    #[test]
    fn storage_rule() {
        let body = msg("<message xmlns='jabber:client' to='a@b'><body>hi</body></message>");
        assert_eq!(verdict(&body), Verdict::Store);
        let typing = msg("<message xmlns='jabber:client' to='a@b'><composing \
             xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread></message>");
        assert_eq!(verdict(&typing), Verdict::Discard);
        let receipt = msg(
            "<message xmlns='jabber:client' to='a@b'><received xmlns='urn:xmpp:receipts' \
             id='x'/></message>",
        );
        assert_eq!(verdict(&receipt), Verdict::Store);
        let nostore = msg(
            "<message xmlns='jabber:client' to='a@b'><body>x</body><no-store \
             xmlns='urn:xmpp:hints'/></message>",
        );
        assert_eq!(verdict(&nostore), Verdict::Refuse);
    }

    #[tokio::test]
    async fn stored_then_delivered_with_delay_at_initial_presence() {
        let h = Harness::new(crate::presence::test_modules()).await;
        h.account("romeo").await;
        h.account("juliet").await;
        let mut romeo = h.connect("romeo@localhost/a").await;
        let mut juliet = h.connect("juliet@localhost/phone").await;
        romeo.send("<presence/>").await;
        romeo.drain();
        romeo
            .send(
                "<message to='juliet@localhost' type='chat'><body>are you there?</body></message>",
            )
            .await;
        // Stored, not bounced.
        assert!(romeo.drain().is_empty());
        assert!(juliet.drain().is_empty());
        juliet.send("<presence/>").await;
        let got = juliet.drain();
        assert_eq!(got[0].kind(), rookery_proto::stanza::Kind::Presence);
        let m = juliet.next_message().await;
        assert_eq!(m.from().unwrap().as_str(), "romeo@localhost/a");
        let delay = m.element().get_child("delay", ns::DELAY).unwrap();
        assert_eq!(delay.attr("from"), Some("localhost"));
        assert!(delay.attr("stamp").unwrap().ends_with('Z'));
        // Handed out once: taken from the store.
        assert_eq!(
            h.server
                .stores()
                .offline
                .count("juliet", "localhost")
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn over_the_limit_bounces_and_negative_priority_waits() {
        let h = Harness::with_config(crate::presence::test_modules(), |c| {
            c.limits.offline_max = 1
        })
        .await;
        h.account("romeo").await;
        h.account("juliet").await;
        let mut romeo = h.connect("romeo@localhost/a").await;
        romeo
            .send("<message to='juliet@localhost'><body>1</body></message>")
            .await;
        assert!(romeo.drain().is_empty());
        romeo
            .send("<message to='juliet@localhost'><body>2</body></message>")
            .await;
        let bounce = romeo.drain();
        assert_eq!(bounce.len(), 1);
        assert!(bounce[0].is_error());
        let mut juliet = h.connect("juliet@localhost/laptop").await;
        juliet
            .send("<presence><priority>-1</priority></presence>")
            .await;
        assert!(
            juliet
                .drain()
                .iter()
                .all(|s| s.kind() != rookery_proto::stanza::Kind::Message)
        );
        let mut phone = h.connect("juliet@localhost/phone").await;
        phone.send("<presence/>").await;
        let m = phone.next_message().await;
        assert_eq!(
            m.element().get_child("body", ns::CLIENT).unwrap().text(),
            "1"
        );
    }
}
