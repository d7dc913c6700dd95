//! Delivery confirmation for clients without stream management: messages the session actor
//! wrote (`session.rs`) stay in a tail until the client answers an XEP-0199 ping sent after
//! them (`[c2s] delivery_confirm_secs` after the first unconfirmed one). An answer means the
//! client read everything written before the ping; if the connection ends first, or the ping
//! goes unanswered for `ping_timeout_secs`, the tail is routed again (another resource or
//! offline storage, `session_end.rs`) rather than lost with the connection. A client may then
//! see a message twice; without XEP-0198 that is the only alternative to losing it.

use rookery_proto::ns;
use rookery_proto::stanza::{FullJid, Kind, Stanza};
use rookery_xml::Element;
use std::time::Duration;
use tokio::time::Instant;

/// What the timer asks of the actor.
pub(crate) enum Due {
    Nothing,
    /// Send this ping.
    Ping(Element),
    /// The ping went unanswered: the connection is dead.
    TimedOut,
}

#[derive(Debug, Default)]
pub(crate) struct Confirm {
    /// Messages written and not confirmed, oldest first.
    tail: Vec<Stanza>,
    /// The outstanding ping: its id, how much of the tail it covers, its answer deadline.
    pending: Option<(String, usize, Instant)>,
    /// When to send the next ping.
    due: Option<Instant>,
    seq: u64,
}

impl Confirm {
    /// `batch` was written and flushed: its messages wait for a confirmation.
    pub(crate) fn written(&mut self, batch: &mut Vec<Stanza>, delay: Duration, now: Instant) {
        let before = self.tail.len();
        self.tail.extend(
            batch
                .drain(..)
                .filter(|st| st.kind() == Kind::Message && st.type_attr() != "error"),
        );
        if self.tail.len() > before && self.due.is_none() {
            self.due = Some(now + delay);
        }
    }

    /// When the actor must look again.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match &self.pending {
            Some((_, _, deadline)) => Some(*deadline),
            None => self.due,
        }
    }

    pub(crate) fn on_tick(&mut self, jid: &FullJid, timeout: Duration, now: Instant) -> Due {
        if let Some((_, _, deadline)) = &self.pending {
            return if now >= *deadline {
                Due::TimedOut
            } else {
                Due::Nothing
            };
        }
        match self.due {
            Some(at) if now >= at => {}
            _ => return Due::Nothing,
        }
        self.due = None;
        self.seq += 1;
        let id = format!("rookery-delivered-{}", self.seq);
        self.pending = Some((id.clone(), self.tail.len(), now + timeout));
        Due::Ping(
            Element::new("iq", ns::CLIENT)
                .with_attr("type", "get")
                .with_attr("id", id)
                .with_attr("to", jid.as_str())
                .with_attr("from", jid.domain().as_str())
                .child(Element::new("ping", ns::PING)),
        )
    }

    /// An IQ result or error with `id` from the client: whether it answered our ping (the
    /// messages it covers are confirmed).
    pub(crate) fn on_answer(&mut self, id: &str, now: Instant, delay: Duration) -> bool {
        match &self.pending {
            Some((pid, covered, _)) if pid == id => {
                let covered = *covered;
                self.tail.drain(..covered);
                self.pending = None;
                // Messages written after the ping wait for the next one.
                if !self.tail.is_empty() {
                    self.due = Some(now + delay);
                }
                true
            }
            _ => false,
        }
    }

    /// The unconfirmed messages (the connection ended).
    pub(crate) fn take(&mut self) -> Vec<Stanza> {
        self.pending = None;
        self.due = None;
        std::mem::take(&mut self.tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> Stanza {
        Stanza::new(
            Element::parse(&format!(
                "<message xmlns='jabber:client' id='{id}'><body/></message>"
            ))
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn an_answer_confirms_what_the_ping_followed_and_no_more() {
        let jid = FullJid::new("a@b/r").unwrap();
        let d = Duration::from_secs(2);
        let t = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut c = Confirm::default();
        c.written(&mut vec![msg("1"), msg("2")], d, t0);
        assert!(
            matches!(c.on_tick(&jid, t, t0), Due::Nothing),
            "not yet due"
        );
        let Due::Ping(ping) = c.on_tick(&jid, t, t0 + d) else {
            panic!("due")
        };
        let id = ping.attr("id").unwrap().to_owned();
        c.written(&mut vec![msg("3")], d, t0 + d);
        assert!(!c.on_answer("other", t0 + d, d));
        assert!(c.on_answer(&id, t0 + d, d));
        let left: Vec<_> = c
            .take()
            .iter()
            .map(|s| s.id().unwrap().to_owned())
            .collect();
        assert_eq!(left, ["3"]);
    }

    #[test]
    fn an_unanswered_ping_times_out_and_other_stanzas_are_not_kept() {
        let jid = FullJid::new("a@b/r").unwrap();
        let d = Duration::from_secs(2);
        let t = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut c = Confirm::default();
        let presence =
            Stanza::new(Element::parse("<presence xmlns='jabber:client'/>").unwrap()).unwrap();
        c.written(&mut vec![presence], d, t0);
        assert_eq!(c.next_deadline(), None, "nothing to confirm");
        c.written(&mut vec![msg("1")], d, t0);
        assert!(matches!(c.on_tick(&jid, t, t0 + d), Due::Ping(_)));
        assert!(matches!(c.on_tick(&jid, t, t0 + d + t), Due::TimedOut));
        assert_eq!(c.take().len(), 1);
    }
}
