//! XEP-0012 Last Activity. Two places in the stanza flow:
//! - `from_client` watches a session's broadcast presence (no `to`) before the presence module
//!   (a lower priority) consumes it: when a resource goes from available to unavailable, the
//!   logout time and the `<status/>` text are stored (KvStore store `last`, key `""`), as are
//!   disconnects of sessions still available (`session_closed`).
//! - `handle_iq` answers `jabber:iq:last` gets: to the server, its uptime (§5); to an account's
//!   bare JID, the seconds since that account last logged out and its status (§3), or 0 while a
//!   resource is available, and only to the account itself or to contacts allowed to see its
//!   presence (§3, §8: anyone else gets `forbidden`).

use crate::util::{self, parts, unix_now};
use async_trait::async_trait;
use rookery_core::{
    Ended, Event, Flow, IqReply, IqTarget, IqType, Module, ModuleCx, Point, Priority, Scope,
    Server, Session, StartResult, Targets,
};
use rookery_proto::error::StanzaError;
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, Kind, Stanza};
use rookery_xml::Element;

/// KvStore location of the last logout record.
const STORE: &str = "last";
const KEY: &str = "";

/// Keeps no state of its own: whether a session was available comes from core's session
/// state, read before the presence module (lower priority) changes it.
#[derive(Debug, Default)]
pub struct LastActivity;

impl LastActivity {
    pub fn new() -> Self {
        LastActivity
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    at: i64,
    status: String,
}

impl Record {
    fn encode(&self) -> String {
        format!("{}\n{}", self.at, self.status)
    }
    fn decode(s: &str) -> Option<Record> {
        let (at, status) = s.split_once('\n').unwrap_or((s, ""));
        Some(Record {
            at: at.parse().ok()?,
            status: status.to_owned(),
        })
    }
}

async fn record(server: &Server, account: &BareJid, status: &str) {
    let rec = Record {
        at: unix_now(),
        status: status.to_owned(),
    };
    let (user, domain) = parts(account);
    if let Err(e) = server
        .stores()
        .kv
        .put(user, domain, STORE, KEY, &rec.encode())
        .await
    {
        // Also the path of an account deleted while its sessions close: nothing to keep then.
        tracing::debug!(jid = %account, error = %e, what = "last-record", "not stored");
    }
}

fn query(seconds: u64, status: &str) -> Element {
    Element::new("query", ns::LAST)
        .with_attr("seconds", seconds.to_string())
        .with_text(status)
}

#[async_trait]
impl Module for LastActivity {
    fn name(&self) -> &'static str {
        "last"
    }
    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        cx.hook(Point::FromClient, &[Kind::Presence], Priority::OBSERVE)
            .on(Event::SessionClosed)
            .iq(IqType::Get, ns::LAST, Targets::SERVER_AND_ACCOUNT)
            .feature(Scope::Server, ns::LAST)
            .feature(Scope::Account, ns::LAST);
        Ok(())
    }

    async fn from_client(&self, server: &Server, session: &Session, st: &mut Stanza) -> Flow {
        // Only broadcast presence (RFC 6121 §4.2/§4.6: no `to`) changes the account's state.
        if st.to().is_some() || st.type_attr() != "unavailable" {
            return Flow::Continue;
        }
        // Only a resource that was available logs out (an unavailable presence from one that
        // never was changes nothing). The presence module runs after us and records the change.
        let was_available = server
            .sessions()
            .resource(session.jid())
            .is_some_and(|r| r.available && r.session.id() == session.id());
        if was_available {
            let status = st
                .element()
                .get_child("status", ns::CLIENT)
                .map(|s| s.text())
                .unwrap_or_default();
            record(server, &session.jid().to_bare(), &status).await;
        }
        Flow::Continue
    }

    async fn session_closed(&self, server: &Server, session: &Session, ended: &Ended) {
        // Closed while still available: the logout is now, without a status text.
        if ended.was_available {
            record(server, &session.jid().to_bare(), "").await;
        }
    }

    async fn handle_iq(
        &self,
        server: &Server,
        target: &IqTarget,
        iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        let account = match target {
            // §5: a server's last activity is its uptime; no character data.
            IqTarget::Server => return Ok(IqReply::Payload(query(server.uptime().as_secs(), ""))),
            IqTarget::Account(b) => b,
            IqTarget::Domain(_) => return Err(util::unsupported()),
        };
        // §3 and §8: only entities allowed to see the account's presence may learn this.
        let allowed = match util::requester(iq) {
            Some(r) => r == *account || util::may_see_presence(server, account, &r).await,
            None => false,
        };
        if !allowed {
            return Err(StanzaError::forbidden());
        }
        // §3: while a resource is available the answer is 0.
        if server.sessions().is_available(account) {
            return Ok(IqReply::Payload(query(0, "")));
        }
        let (user, domain) = parts(account);
        let stored = server
            .stores()
            .kv
            .get(user, domain, STORE, KEY)
            .await
            .map_err(|e| util::store_error("last-get", account, &e))?;
        match stored.as_deref().and_then(Record::decode) {
            Some(rec) => {
                let secs = u64::try_from(unix_now().saturating_sub(rec.at)).unwrap_or(0);
                Ok(IqReply::Payload(query(secs, &rec.status)))
            }
            // Never logged out since we started keeping records: nothing to tell.
            None => Err(StanzaError::item_not_found()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Record;
    use rookery_store::Subscription;
    use rookery_testkit::Harness;

    #[test]
    fn record_round_trip() {
        let r = Record {
            at: 1234,
            status: "Gone\nfishing".into(),
        };
        assert_eq!(Record::decode(&r.encode()), Some(r));
        assert_eq!(Record::decode("bogus"), None);
    }

    #[tokio::test]
    async fn server_reports_uptime() {
        let h = Harness::new(crate::iq_modules()).await;
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='get' id='a' to='localhost'><query xmlns='jabber:iq:last'/></iq>")
            .await;
        let r = c.recv_result("a");
        let q = r.iq_payload().expect("query");
        assert!(q.attr("seconds").is_some_and(|s| s.parse::<u64>().is_ok()));
        assert_eq!(q.text(), "");
    }

    /// Last activity reads availability from core's session state, which the presence
    /// module sets: these tests need both.
    async fn with_presence() -> Harness {
        Harness::new(vec![
            std::sync::Arc::new(super::LastActivity::new()),
            std::sync::Arc::new(crate::presence::Presence::new()),
        ])
        .await
    }

    #[tokio::test]
    async fn own_last_activity_after_unavailable_has_status() {
        // lastactivity.scs
        let h = with_presence().await;
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='get' id='0'><query xmlns='jabber:iq:last'/></iq>")
            .await;
        c.recv_error("0", "item-not-found");
        c.send("<presence><status>Hello</status></presence>").await;
        c.send("<presence type='unavailable'><status>Goodbye</status></presence>")
            .await;
        while c.try_recv().is_some() {}
        c.send("<iq type='get' id='a'><query xmlns='jabber:iq:last'/></iq>")
            .await;
        let r = c.recv_result("a");
        let q = r.iq_payload().expect("query");
        assert_eq!(q.text(), "Goodbye");
        assert!(
            q.attr("seconds")
                .is_some_and(|s| s.parse::<u64>().unwrap() < 5)
        );
    }

    #[tokio::test]
    async fn disconnect_while_available_records_logout() {
        let h = with_presence().await;
        let c = h.login("juliet", "a").await;
        c.send("<presence/>").await;
        c.logout().await;
        let mut me = h.login("juliet", "b").await;
        me.send("<iq type='get' id='l'><query xmlns='jabber:iq:last'/></iq>")
            .await;
        let r = me.recv_result("l");
        assert_eq!(r.iq_payload().expect("query").text(), "");
    }

    #[tokio::test]
    async fn only_self_and_subscribers_may_ask() {
        let h = with_presence().await;
        let j = h.login("juliet", "a").await;
        j.send("<presence/>").await;
        j.send("<presence type='unavailable'><status>bye</status></presence>")
            .await;
        let mut r = h.login("romeo", "a").await;
        let ask =
            "<iq type='get' id='q' to='juliet@localhost'><query xmlns='jabber:iq:last'/></iq>";
        r.send(ask).await;
        r.recv_error("q", "forbidden");
        // Juliet's roster gives Romeo a `to` subscription only: still not allowed.
        h.roster_put(&h.bare("juliet"), &h.bare("romeo"), Subscription::To)
            .await;
        r.send(ask).await;
        r.recv_error("q", "forbidden");
        h.roster_put(&h.bare("juliet"), &h.bare("romeo"), Subscription::From)
            .await;
        r.send(ask).await;
        let res = r.recv_result("q");
        assert_eq!(res.iq_payload().expect("query").text(), "bye");
        // Online contact (RFC 6121 / §3): seconds='0', no status.
        j.make_available();
        r.send(ask).await;
        let res = r.recv_result("q");
        let q = res.iq_payload().expect("query");
        assert_eq!(q.attr("seconds"), Some("0"));
        assert_eq!(q.text(), "");
    }
}
