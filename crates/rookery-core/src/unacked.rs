//! The queue of a stream-managed session's stanzas written (or, while parked, meant) for the
//! client and not acknowledged yet (XEP-0198 §4), with their sequence numbers, and the
//! duplicate check on origins. The c2s actor (rookery-net `c2s/sm.rs`) holds it while a
//! connection lives; `resume.rs` holds it while the session is parked or restored after a
//! restart; the durable copy is the session's outbox rows (`outbox.rs`), same numbers.
//!
//! Sequence numbers start at 1 and never wrap (`u64`); the wire's 32-bit `h` is their low
//! half (`ack_h`). Origins (`outbox::Origin`) let a stanza a sender resent after its own
//! resumption be recognised: one already queued, or acknowledged recently, is not written
//! twice.

use crate::outbox::{Origin, Outbox};
use crate::recent::RecentOrigins;
use rookery_proto::stanza::Stanza;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// Acknowledged origins remembered for the duplicate check.
const RECENT: usize = 256;

/// One stanza sent and not acknowledged.
#[derive(Debug, Clone)]
pub struct Sent {
    pub seq: u64,
    pub stanza: Stanza,
    pub origin: Option<Arc<str>>,
    /// Connections it was queued for (1 when first queued).
    pub attempts: u32,
}

/// `<a h/>` acknowledged more than was sent (XEP-0198 §4 `handled-count-too-high`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooHigh {
    pub h: u32,
    pub sent: u32,
}

#[derive(Debug)]
pub struct Unacked {
    q: VecDeque<Sent>,
    /// Sequence number acknowledged (the next stanza gets `acked + len + 1`).
    acked: u64,
    /// Origins of the queued stanzas.
    queued: HashSet<Arc<str>>,
    /// Origins acknowledged lately.
    recent: RecentOrigins,
    /// Origins acknowledged before a restart that their senders may still resend (the
    /// store's memory of them, `SmSession::seen`).
    earlier: HashSet<Arc<str>>,
}

impl Default for Unacked {
    fn default() -> Unacked {
        Unacked {
            q: VecDeque::new(),
            acked: 0,
            queued: HashSet::new(),
            recent: RecentOrigins::new(RECENT),
            earlier: HashSet::new(),
        }
    }
}

impl Unacked {
    /// A queue whose client acknowledged up to `acked`, holding `rows` (oldest first, numbered
    /// from `acked + 1`): a restored session.
    pub fn restore(acked: u64, rows: impl IntoIterator<Item = Sent>) -> Unacked {
        let mut u = Unacked {
            acked,
            ..Unacked::default()
        };
        for s in rows {
            if let Some(o) = &s.origin {
                u.queued.insert(o.clone());
            }
            u.q.push_back(s);
        }
        u
    }

    /// Remembers origins delivered before a restart (`restore.rs`).
    pub fn remember(&mut self, origins: impl IntoIterator<Item = Arc<str>>) {
        self.earlier.extend(origins);
    }

    /// Whether a stanza with this origin was queued or acknowledged lately.
    pub fn is_duplicate(&self, origin: &str) -> bool {
        self.queued.contains(origin)
            || self.earlier.contains(origin)
            || self.recent.contains(origin)
    }

    /// Queues `stanza`; its sequence number, or `None` for a duplicate (not queued).
    pub fn push(&mut self, stanza: Stanza, origin: Option<Arc<str>>) -> Option<u64> {
        if let Some(o) = &origin {
            if self.is_duplicate(o) {
                return None;
            }
            self.queued.insert(o.clone());
        }
        let seq = self.sent() + 1;
        self.q.push_back(Sent {
            seq,
            stanza,
            origin,
            attempts: 1,
        });
        Some(seq)
    }

    /// Queues `stanza` for a resumable session and appends its outbox row, which takes the
    /// origin's receipt (released once committed, `outbox.rs`); `None` for a duplicate (not
    /// queued, not appended: its receipt is released at once).
    pub fn push_durable(
        &mut self,
        outbox: &Outbox,
        session: &str,
        stanza: Stanza,
        origin: Option<Origin>,
    ) -> Option<u64> {
        if origin.as_ref().is_some_and(|o| self.is_duplicate(&o.key)) {
            return None;
        }
        let key = origin.as_ref().map(|o| o.key.clone());
        outbox.append(session, self.sent() + 1, &stanza, origin);
        self.push(stanza, key)
    }

    /// Sequence number of the last stanza queued.
    pub fn sent(&self) -> u64 {
        self.acked + self.q.len() as u64
    }
    pub fn acked(&self) -> u64 {
        self.acked
    }
    pub fn len(&self) -> usize {
        self.q.len()
    }
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Sent> {
        self.q.iter()
    }

    /// `<a h/>`: drops what `h` covers; the new acknowledged sequence number.
    pub fn ack_h(&mut self, h: u32) -> Result<u64, TooHigh> {
        // The queue never holds 2^32 stanzas (`sm_max_unacked` bounds it far below), so the
        // distance from the last acknowledged number fits in the low half.
        let newly = h.wrapping_sub(self.acked as u32) as usize;
        if newly > self.q.len() {
            return Err(TooHigh {
                h,
                sent: self.sent() as u32,
            });
        }
        for s in self.q.drain(..newly) {
            if let Some(o) = s.origin {
                self.queued.remove(&o);
                self.recent.insert(o);
            }
        }
        self.acked += newly as u64;
        Ok(self.acked)
    }

    /// Everything queued is about to be written to a new connection: a stanza already written
    /// to `max` connections is given up on (a dead letter, as `SmOp::Attempt` does to the
    /// rows), every other one's attempts grow by one. A stanza queued later was never written
    /// more often than an older one, so the dead are the oldest: they leave from the front.
    /// Returns how many.
    pub fn attempt(&mut self, max: u32) -> usize {
        let dead = self.q.iter().take_while(|s| s.attempts >= max).count();
        for s in self.q.drain(..dead) {
            if let Some(o) = s.origin {
                self.queued.remove(&o);
            }
        }
        for s in &mut self.q {
            s.attempts += 1;
        }
        self.acked += dead as u64;
        dead
    }

    /// Takes every queued stanza (the session ends), oldest first.
    pub fn take(&mut self) -> Vec<Stanza> {
        self.queued.clear();
        self.acked = self.sent();
        self.q.drain(..).map(|s| s.stanza).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_xml::Element;

    fn st(i: u32) -> Stanza {
        Stanza::new(Element::parse(&format!("<message xmlns='jabber:client' id='{i}'/>")).unwrap())
            .unwrap()
    }

    #[test]
    fn numbers_acks_and_the_32_bit_wrap() {
        let mut u = Unacked::restore(u32::MAX as u64 - 1, []);
        for i in 0..4 {
            assert_eq!(u.push(st(i), None), Some(u32::MAX as u64 + i as u64));
        }
        // h wrapped past zero: 2^32 + 1 is h = 1.
        assert_eq!(u.ack_h(1), Ok(u32::MAX as u64 + 2));
        assert_eq!(u.len(), 1);
        assert_eq!(u.ack_h(5).unwrap_err().h, 5);
        assert_eq!(
            u.ack_h(1),
            Ok(u32::MAX as u64 + 2),
            "a repeated ack changes nothing"
        );
    }

    #[test]
    fn attempts_give_up_on_the_oldest_first() {
        let mut u = Unacked::default();
        u.push(st(1), None);
        assert_eq!(u.attempt(3), 0);
        u.push(st(2), None);
        assert_eq!(u.attempt(3), 0, "written to 2 and 1 connections so far");
        assert_eq!(
            u.attempt(3),
            1,
            "the first was written to 3 connections already"
        );
        assert_eq!(u.iter().next().map(|s| (s.seq, s.attempts)), Some((2, 3)));
        assert_eq!(u.sent(), 2);
    }

    #[test]
    fn a_resent_origin_is_refused_while_queued_and_after_its_ack() {
        let mut u = Unacked::default();
        let o: Arc<str> = "n/s#1".into();
        assert_eq!(u.push(st(1), Some(o.clone())), Some(1));
        assert_eq!(u.push(st(1), Some(o.clone())), None);
        u.ack_h(1).unwrap();
        assert_eq!(u.push(st(1), Some(o)), None, "acknowledged lately");
        assert_eq!(u.push(st(2), Some("n/s#2".into())), Some(2));
        assert_eq!(u.push(st(3), None), Some(3));
        assert_eq!(u.push(st(3), None), Some(4), "no origin, no check");
    }
}
