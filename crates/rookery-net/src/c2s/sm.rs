//! XEP-0198 stream management on a bound c2s session: the counters and the queue of stanzas
//! sent but not yet acknowledged. The session actor (`session.rs`) feeds it what it writes and
//! the SM elements the client sends, and asks it when to request an acknowledgement; parking
//! and resuming a session across connections is core's (`rookery_core::resume`).
//!
//! Counters are 32-bit and wrap (XEP-0198 §4: "h" is an unsigned 32-bit integer that wraps
//! to 0 after 2^32 − 1), so all arithmetic here is wrapping.

use rookery_core::Parked;
use rookery_core::outbox::{Durable, Origin, Outbox, receipt};
use rookery_core::session::SessionReceiver;
use rookery_core::unacked::{TooHigh, Unacked};
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_xml::Element;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::time::Instant;

/// Stream management state of one session.
#[derive(Debug, Default)]
pub(crate) struct Sm {
    /// The client asked for (and got) resumption: the session has a durable record, and
    /// what is written to the client is appended to its outbox (`rookery_core::outbox`).
    pub resumable: bool,
    /// Stanzas from the client handled so far (durable or not yet).
    handled: u32,
    /// Stanzas routed for the client whose effect is not durable yet, by stanza number,
    /// oldest first: `h` counts only up to the oldest of them.
    pending: VecDeque<(u32, Durable)>,
    /// The client asked `<r/>` when `handled` was this: answer once `h` reaches it.
    owed: Option<u32>,
    /// Sent and not acknowledged.
    unacked: Unacked,
    /// Stanzas sent since our last `<r/>`.
    since_request: u32,
    /// Our `<r/>` is waiting for an answer since then.
    pub requested_at: Option<Instant>,
    /// When the oldest stanza of `unacked` that no request covers yet was sent.
    pub oldest_unrequested: Option<Instant>,
}

/// `<a h/>` acknowledged more stanzas than were sent (XEP-0198 §4).
fn handled_count_too_high(e: TooHigh) -> StreamError {
    StreamError::new(StreamCondition::UndefinedCondition)
        .with_text(format!(
            "h={} acknowledges more stanzas than were sent ({})",
            e.h, e.sent
        ))
        .with_extra(
            Element::new("handled-count-too-high", ns::SM)
                .with_attr("h", e.h.to_string())
                .with_attr("send-count", e.sent.to_string()),
        )
}

impl Sm {
    /// State taken over from a parked session (XEP-0198 §5).
    pub(crate) fn resumed(parked: Parked) -> (Sm, SessionReceiver) {
        let sm = Sm {
            resumable: true,
            handled: parked.handled,
            unacked: parked.unacked,
            ..Sm::default()
        };
        (sm, parked.rx)
    }

    /// What a lost connection leaves behind (its `h` counts only what is durable).
    pub(crate) fn park(self, rx: SessionReceiver) -> Parked {
        Parked {
            rx,
            handled: self.durable_handled(),
            unacked: self.unacked,
        }
    }

    /// Everything sent and not acknowledged (the session ends: it is routed again).
    pub(crate) fn take_unacked(&mut self) -> Vec<Stanza> {
        self.unacked.take()
    }

    /// The `h` we report: stanzas handled whose effect is durable — up to the oldest one
    /// that is not yet.
    pub(crate) fn durable_handled(&self) -> u32 {
        match self.pending.front() {
            Some((n, _)) => n.wrapping_sub(1),
            None => self.handled,
        }
    }

    /// The acknowledged sequence number (the counters an `<enabled/>` record starts from).
    pub(crate) fn acked_seq(&self) -> u64 {
        self.unacked.acked()
    }

    pub(crate) fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// The stanza about to be handled will be routed: the origin its copies carry (`key`
    /// names this session), with a receipt whose resolution lets `h` count it.
    pub(crate) fn track(&mut self, session: &str) -> Origin {
        let n = self.handled.wrapping_add(1);
        let (r, durable) = receipt();
        self.pending.push_back((n, durable));
        Origin::new(session, n, r)
    }

    /// A stanza from the client was handled (routed, or answered on the spot).
    pub(crate) fn on_handled(&mut self) {
        self.handled = self.handled.wrapping_add(1);
    }

    /// Drops receipts that resolved; whether `h` moved.
    pub(crate) fn settle(&mut self) -> bool {
        let mut moved = false;
        while self.pending.front_mut().is_some_and(|(_, d)| d.is_done()) {
            self.pending.pop_front();
            moved = true;
        }
        moved
    }

    /// Waits for the oldest pending receipt (pending when nothing is pending).
    pub(crate) async fn next_settled(&mut self) {
        match self.pending.front_mut() {
            Some((_, d)) => d.await,
            None => std::future::pending().await,
        }
    }

    /// Whether receipts are outstanding.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether an `<r/>` waits for outstanding receipts.
    pub(crate) fn awaits_answer(&self) -> bool {
        self.owed.is_some() && !self.pending.is_empty()
    }

    /// `<r/>`: `Some(h)` to answer now, or `None` when the answer waits for receipts.
    pub(crate) fn on_request(&mut self) -> Option<u32> {
        self.settle();
        if self.pending.is_empty() {
            return Some(self.handled);
        }
        self.owed = Some(self.handled);
        None
    }

    /// An owed answer that is due now.
    pub(crate) fn owed_answer(&mut self) -> Option<u32> {
        let target = self.owed?;
        let h = self.durable_handled();
        // Reached: h is at or past the target (32-bit wrap, so compare by distance).
        if (h.wrapping_sub(target) as i32) >= 0 {
            self.owed = None;
            return Some(h);
        }
        None
    }

    /// A stanza the client must not get twice: one a sender resent after its own resumption
    /// while the first copy is queued here or was acknowledged lately.
    pub(crate) fn is_duplicate(&self, origin: &str) -> bool {
        self.unacked.is_duplicate(origin)
    }

    /// A stanza was written to the client (no durable record).
    pub(crate) fn on_sent(&mut self, st: Stanza, origin: Option<Arc<str>>, now: Instant) {
        self.unacked.push(st, origin);
        self.counted(now);
    }

    /// A stanza was written to a resumable session's client: queued and appended to its
    /// outbox (`Unacked::push_durable`).
    pub(crate) fn on_sent_durable(
        &mut self,
        outbox: &Outbox,
        session: &str,
        st: Stanza,
        origin: Option<Origin>,
        now: Instant,
    ) {
        if self
            .unacked
            .push_durable(outbox, session, st, origin)
            .is_some()
        {
            self.counted(now);
        }
    }

    fn counted(&mut self, now: Instant) {
        self.since_request = self.since_request.wrapping_add(1);
        self.oldest_unrequested.get_or_insert(now);
    }

    /// `<a h/>`: the client has everything up to `h`. The newly acknowledged sequence
    /// number, if any.
    pub(crate) fn on_ack(&mut self, h: u32) -> Result<Option<u64>, StreamError> {
        let before = self.unacked.acked();
        let acked = self.unacked.ack_h(h).map_err(handled_count_too_high)?;
        self.requested_at = None;
        Ok((acked > before).then_some(acked))
    }

    /// The client's `h` at resumption: what it got of the unacknowledged stanzas.
    pub(crate) fn on_resumed(&mut self, h: u32) -> Result<Option<u64>, StreamError> {
        self.on_ack(h)
    }

    /// The stanzas to send again after a resumption (all still unacknowledged).
    pub(crate) fn unacked(&self) -> impl Iterator<Item = &Stanza> {
        self.unacked.iter().map(|s| &s.stanza)
    }

    /// Whether to send `<r/>` now: `after` stanzas since the last request, or the oldest
    /// unrequested one waited `after_secs` — and no request is outstanding.
    pub(crate) fn request_due(&self, after: u32, wait: std::time::Duration, now: Instant) -> bool {
        self.requested_at.is_none()
            && (self.since_request >= after
                || self.oldest_unrequested.is_some_and(|t| now >= t + wait))
    }

    /// We sent `<r/>`.
    pub(crate) fn requested(&mut self, now: Instant) {
        self.requested_at = Some(now);
        self.since_request = 0;
        self.oldest_unrequested = None;
    }

    /// When the actor must look at SM again (an unrequested stanza's wait, or a request's
    /// answer deadline).
    pub(crate) fn next_deadline(
        &self,
        wait: std::time::Duration,
        ack_timeout: std::time::Duration,
    ) -> Option<Instant> {
        match self.requested_at {
            Some(t) => Some(t + ack_timeout),
            None => self.oldest_unrequested.map(|t| t + wait),
        }
    }
}

/// `<a h/>` carrying our count.
pub(crate) fn ack(h: u32) -> Element {
    Element::new("a", ns::SM).with_attr("h", h.to_string())
}

/// `<r/>`.
pub(crate) fn request() -> Element {
    Element::new("r", ns::SM)
}

/// `<failed/>` with a stanza error condition (XEP-0198 §3, §5), and `h` when known.
pub(crate) fn failed(condition: &str, h: Option<u32>) -> Element {
    let mut f = Element::new("failed", ns::SM).child(Element::new(condition, ns::STANZAS));
    if let Some(h) = h {
        f.set_attr("h", h.to_string());
    }
    f
}

/// The `h` attribute of `<a/>` or `<resume/>`.
pub(crate) fn h_of(el: &Element) -> Option<u32> {
    el.attr("h")?.parse().ok()
}

/// Whether `<enable resume/>` asks for resumption (`true` or `1`, XML Schema boolean).
pub(crate) fn wants_resume(el: &Element) -> bool {
    matches!(el.attr("resume"), Some("true" | "1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_xml::Element;

    fn st(i: u32) -> Stanza {
        Stanza::new(
            Element::parse(&format!(
                "<message xmlns='jabber:client' id='{i}' to='a@b'/>"
            ))
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn acks_drop_what_they_cover_and_refuse_too_high() {
        let now = Instant::now();
        let mut sm = Sm::default();
        for i in 0..5 {
            sm.on_sent(st(i), None, now);
        }
        assert_eq!(sm.on_ack(2).unwrap(), Some(2));
        assert_eq!(sm.unacked_len(), 3);
        assert_eq!(sm.unacked().next().and_then(|s| s.id()), Some("2"));
        // Repeating an ack changes nothing.
        assert_eq!(sm.on_ack(2).unwrap(), None);
        assert_eq!(sm.unacked_len(), 3);
        let err = sm.on_ack(6).unwrap_err();
        assert_eq!(err.condition, StreamCondition::UndefinedCondition);
        sm.on_ack(5).unwrap();
        assert_eq!(sm.unacked_len(), 0);
    }

    #[test]
    fn h_counts_only_what_is_durable_and_an_owed_answer_waits_for_it() {
        let mut sm = Sm {
            handled: u32::MAX - 1,
            ..Sm::default()
        };
        let o1 = sm.track("n/s");
        sm.on_handled();
        // Answered on the spot (no receipt) after a routed one.
        sm.on_handled();
        assert_eq!(&*o1.key, &*format!("n/s#{}", u32::MAX));
        assert_eq!(
            sm.durable_handled(),
            u32::MAX - 1,
            "the routed one is not durable yet"
        );
        assert_eq!(sm.on_request(), None, "the answer waits");
        assert_eq!(sm.owed_answer(), None);
        drop(o1);
        assert!(sm.settle());
        // 32-bit wrap: MAX - 1 + 2 = 0.
        assert_eq!(sm.owed_answer(), Some(0));
        assert_eq!(sm.owed_answer(), None, "answered once");
        assert_eq!(sm.on_request(), Some(0), "nothing pending: at once");
    }

    #[test]
    fn requests_after_count_or_time_and_one_at_a_time() {
        let t0 = Instant::now();
        let wait = std::time::Duration::from_secs(5);
        let mut sm = Sm::default();
        assert!(!sm.request_due(3, wait, t0));
        sm.on_sent(st(0), None, t0);
        assert!(!sm.request_due(3, wait, t0));
        assert!(sm.request_due(3, wait, t0 + wait), "after the wait");
        sm.on_sent(st(1), None, t0);
        sm.on_sent(st(2), None, t0);
        assert!(sm.request_due(3, wait, t0), "after the count");
        sm.requested(t0);
        sm.on_sent(st(3), None, t0);
        assert!(
            !sm.request_due(1, wait, t0 + wait * 2),
            "one outstanding at a time"
        );
        sm.on_ack(4).unwrap();
        assert!(sm.requested_at.is_none());
    }
}
