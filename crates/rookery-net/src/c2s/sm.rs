//! XEP-0198 stream management on a bound c2s session: the counters and the queue of stanzas
//! sent but not yet acknowledged. The session actor (`session.rs`) feeds it what it writes and
//! the SM elements the client sends, and asks it when to request an acknowledgement; parking
//! and resuming a session across connections is core's (`rookery_core::resume`).
//!
//! Counters are 32-bit and wrap (XEP-0198 §4: "h" is an unsigned 32-bit integer that wraps
//! to 0 after 2^32 − 1), so all arithmetic here is wrapping.

use rookery_core::Parked;
use rookery_core::session::SessionReceiver;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_xml::Element;
use std::collections::VecDeque;
use tokio::time::Instant;

/// Stream management state of one session.
#[derive(Debug, Default)]
pub(crate) struct Sm {
    /// The client asked for (and got) resumption.
    pub resumable: bool,
    /// Stanzas from the client handled so far: the `h` we report.
    handled: u32,
    /// Stanzas the client acknowledged.
    acked: u32,
    /// Sent and not acknowledged, oldest first.
    unacked: VecDeque<Stanza>,
    /// Stanzas sent since our last `<r/>`.
    since_request: u32,
    /// Our `<r/>` is waiting for an answer since then.
    pub requested_at: Option<Instant>,
    /// When the oldest stanza of `unacked` that no request covers yet was sent.
    pub oldest_unrequested: Option<Instant>,
}

/// `<a h/>` acknowledged more stanzas than were sent (XEP-0198 §4).
fn handled_count_too_high(h: u32, sent: u32) -> StreamError {
    StreamError::new(StreamCondition::UndefinedCondition)
        .with_text(format!(
            "h={h} acknowledges more stanzas than were sent ({sent})"
        ))
        .with_extra(
            Element::new("handled-count-too-high", ns::SM)
                .with_attr("h", h.to_string())
                .with_attr("send-count", sent.to_string()),
        )
}

impl Sm {
    /// State taken over from a parked session (XEP-0198 §5).
    pub(crate) fn resumed(parked: Parked) -> (Sm, SessionReceiver) {
        let sm = Sm {
            resumable: true,
            handled: parked.handled,
            acked: parked.acked,
            unacked: parked.unacked,
            ..Sm::default()
        };
        (sm, parked.rx)
    }

    /// What a lost connection leaves behind.
    pub(crate) fn park(self, rx: SessionReceiver) -> Parked {
        Parked {
            rx,
            unacked: self.unacked,
            handled: self.handled,
            acked: self.acked,
        }
    }

    /// Everything sent and not acknowledged (the session ends: it is routed again).
    pub(crate) fn take_unacked(&mut self) -> Vec<Stanza> {
        std::mem::take(&mut self.unacked).into()
    }

    pub(crate) fn handled(&self) -> u32 {
        self.handled
    }

    fn sent(&self) -> u32 {
        // The queue never holds 2^32 stanzas (`sm_max_unacked` bounds it far below).
        self.acked.wrapping_add(self.unacked.len() as u32)
    }

    pub(crate) fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// A stanza from the client was handled.
    pub(crate) fn on_handled(&mut self) {
        self.handled = self.handled.wrapping_add(1);
    }

    /// A stanza was written to the client.
    pub(crate) fn on_sent(&mut self, st: Stanza, now: Instant) {
        self.unacked.push_back(st);
        self.since_request = self.since_request.wrapping_add(1);
        self.oldest_unrequested.get_or_insert(now);
    }

    /// `<a h/>`: the client has everything up to `h`.
    pub(crate) fn on_ack(&mut self, h: u32) -> Result<(), StreamError> {
        let newly = h.wrapping_sub(self.acked) as usize;
        if newly > self.unacked.len() {
            return Err(handled_count_too_high(h, self.sent()));
        }
        self.unacked.drain(..newly);
        self.acked = h;
        self.requested_at = None;
        Ok(())
    }

    /// The client's `h` at resumption: what it got of the unacknowledged stanzas.
    pub(crate) fn on_resumed(&mut self, h: u32) -> Result<(), StreamError> {
        self.on_ack(h)
    }

    /// The stanzas to send again after a resumption (all still unacknowledged).
    pub(crate) fn unacked(&self) -> impl Iterator<Item = &Stanza> {
        self.unacked.iter()
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
            sm.on_sent(st(i), now);
        }
        sm.on_ack(2).unwrap();
        assert_eq!(sm.unacked_len(), 3);
        assert_eq!(sm.unacked().next().and_then(|s| s.id()), Some("2"));
        // Repeating an ack changes nothing.
        sm.on_ack(2).unwrap();
        assert_eq!(sm.unacked_len(), 3);
        let err = sm.on_ack(6).unwrap_err();
        assert_eq!(err.condition, StreamCondition::UndefinedCondition);
        sm.on_ack(5).unwrap();
        assert_eq!(sm.unacked_len(), 0);
    }

    #[test]
    fn counters_wrap_at_32_bits() {
        let now = Instant::now();
        let mut sm = Sm {
            acked: u32::MAX - 1,
            handled: u32::MAX,
            ..Sm::default()
        };
        for i in 0..4 {
            sm.on_sent(st(i), now);
        }
        // Sent: MAX-1 + 4 wraps to 2.
        assert_eq!(sm.sent(), 2);
        sm.on_ack(0).unwrap();
        assert_eq!(sm.unacked_len(), 2);
        sm.on_ack(2).unwrap();
        assert_eq!(sm.unacked_len(), 0);
        sm.on_handled();
        assert_eq!(sm.handled(), 0);
    }

    #[test]
    fn requests_after_count_or_time_and_one_at_a_time() {
        let t0 = Instant::now();
        let wait = std::time::Duration::from_secs(5);
        let mut sm = Sm::default();
        assert!(!sm.request_due(3, wait, t0));
        sm.on_sent(st(0), t0);
        assert!(!sm.request_due(3, wait, t0));
        assert!(sm.request_due(3, wait, t0 + wait), "after the wait");
        sm.on_sent(st(1), t0);
        sm.on_sent(st(2), t0);
        assert!(sm.request_due(3, wait, t0), "after the count");
        sm.requested(t0);
        sm.on_sent(st(3), t0);
        assert!(
            !sm.request_due(1, wait, t0 + wait * 2),
            "one outstanding at a time"
        );
        sm.on_ack(4).unwrap();
        assert!(sm.requested_at.is_none());
    }
}
