//! sm: the client side of XEP-0198 stream management, for the `messages_sm` scenario
//! (messages.rs). `enable` turns it on for a bound session (login_available calls it before the
//! initial presence); `SmState` is the session's counters, shared by its sender (which counts
//! the stanzas it writes and asks for acknowledgements) and its reader (which counts the
//! stanzas it receives, answers the server's `<r/>` and takes the server's `<a/>`).
//!
//! Counters are XEP-0198 §4's: unsigned 32-bit, wrapping to 0 past 2^32 - 1, so they are
//! compared with modular arithmetic.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::xmpp::{Error, Result, Session, attr, find, next_element, send, tag_name};

pub const NS: &str = "urn:xmpp:sm:3";
/// The client's request for an acknowledgement (XEP-0198 §4).
pub const R: &str = "<r xmlns='urn:xmpp:sm:3'/>";

/// One stream-managed session's state.
pub struct SmState {
    /// The server granted resumption (`<enabled resume='true'/>`, XEP-0198 §5).
    pub resume: bool,
    /// `max` on `<enabled/>`: the longest the server keeps the session for resumption, seconds.
    pub max: Option<String>,
    /// Stanzas received since `<enabled/>`: the `h` we answer with.
    inbound: AtomicU32,
    /// Stanzas sent since `<enable/>`.
    outbound: AtomicU32,
    /// The highest `h` the server acknowledged.
    acked: AtomicU32,
    /// Our `<r/>`s not yet covered by an `<a/>`: the `h` each needs (the stanzas sent before
    /// it) and when it was sent.
    pending: Mutex<VecDeque<(u32, Instant)>>,
}

/// `a` is at or past `b` in modular 32-bit order (XEP-0198 §4: counters wrap).
fn reached(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// The counters summed over a scenario's sessions.
#[derive(Default)]
pub struct SmTotals {
    /// `<r/>` we sent.
    pub r_sent: AtomicU64,
    /// `<a/>` the server sent us.
    pub acks: AtomicU64,
    /// `<r/>` the server sent us (each answered with an `<a/>`).
    pub r_answered: AtomicU64,
    /// `<a/>` whose `h` went backwards or counted more stanzas than we had sent.
    pub bad_acks: AtomicU64,
}

/// A bound session becomes available: stream management with resumption first if `sm`
/// (XEP-0198 §3: after binding, before the initial presence, as a client does), then the
/// initial presence, counted as the first stanza sent under it.
pub async fn available(s: &mut Session, sm: bool) -> Result<()> {
    if sm {
        enable(s).await?;
    }
    if let Some(st) = &s.sm {
        st.sent();
    }
    send(&mut s.stream, b"<presence/>").await?;
    Ok(())
}

/// Ask for stream management with resumption on a bound session (XEP-0198 §3) and wait for
/// `<enabled/>`; anything the server sends before it is not counted (§4: counting starts
/// there). `<failed/>`, or a server that does not offer it, is an error.
pub async fn enable(s: &mut Session) -> Result<()> {
    if !s.sm_offered {
        return Err(Error(format!(
            "server does not offer stream management ({NS})"
        )));
    }
    send(
        &mut s.stream,
        b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>",
    )
    .await?;
    loop {
        let el = next_element(&mut s.framer, &mut s.stream).await?;
        match tag_name(&el) {
            b"enabled" => {
                let resume = matches!(attr(&el, "resume"), Some(b"true" | b"1"));
                let max = attr(&el, "max").map(|m| String::from_utf8_lossy(m).into_owned());
                s.sm = Some(std::sync::Arc::new(SmState::new(resume, max)));
                return Ok(());
            }
            b"failed" => {
                return Err(Error(format!(
                    "<enable/> refused: {}",
                    String::from_utf8_lossy(&el)
                )));
            }
            _ => {}
        }
    }
}

impl SmState {
    fn new(resume: bool, max: Option<String>) -> SmState {
        SmState {
            resume,
            max,
            inbound: AtomicU32::new(0),
            outbound: AtomicU32::new(0),
            acked: AtomicU32::new(0),
            pending: Mutex::new(VecDeque::new()),
        }
    }

    /// Count a stanza we are about to write; returns the count including it. Callers hold the
    /// session's write lock (or are its only writer), so the count follows the wire's order.
    pub fn sent(&self) -> u32 {
        self.outbound
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }

    /// Note an `<r/>` about to be written after `h_needed` stanzas: the `<a/>` that covers it
    /// gives the acknowledgement's latency. Called before the write, so that the reader
    /// cannot see the answer first.
    pub fn requested(&self, h_needed: u32, totals: &SmTotals) {
        totals.r_sent.fetch_add(1, Ordering::Relaxed);
        self.pending
            .lock()
            .expect("sm pending")
            .push_back((h_needed, Instant::now()));
    }

    /// Ask for an acknowledgement of everything sent so far (the end of a run); returns the
    /// `<r/>` to write.
    pub fn request_all(&self, totals: &SmTotals) -> &'static str {
        self.requested(self.outbound.load(Ordering::Relaxed), totals);
        R
    }

    /// The reader saw element `el` (named `name`); returns the `<a/>` to write if it was the
    /// server's `<r/>`. Stanzas are counted; an `<a/>` settles our requests it covers, and the
    /// latency of each of those that was sent at or before `measure_until` goes to `lat`
    /// (nanoseconds).
    pub fn on_element(
        &self,
        name: &[u8],
        el: &[u8],
        totals: &SmTotals,
        lat: &mut Vec<u64>,
        measure_until: Instant,
    ) -> Option<String> {
        match name {
            // XEP-0198 §4: the stanzas of RFC 6120 §8 count, nonzas do not.
            b"message" | b"presence" | b"iq" => {
                self.inbound.fetch_add(1, Ordering::Relaxed);
                None
            }
            b"r" if find(el, NS.as_bytes()).is_some() => {
                totals.r_answered.fetch_add(1, Ordering::Relaxed);
                Some(self.answer())
            }
            b"a" if find(el, NS.as_bytes()).is_some() => {
                totals.acks.fetch_add(1, Ordering::Relaxed);
                let Some(h) = attr(el, "h")
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| h.parse::<u32>().ok())
                else {
                    totals.bad_acks.fetch_add(1, Ordering::Relaxed);
                    return None;
                };
                let prev = self.acked.load(Ordering::Relaxed);
                let out = self.outbound.load(Ordering::Relaxed);
                if !reached(h, prev) || !reached(out, h) {
                    totals.bad_acks.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                self.acked.store(h, Ordering::Relaxed);
                let now = Instant::now();
                let mut pending = self.pending.lock().expect("sm pending");
                while let Some(&(need, at)) = pending.front() {
                    if !reached(h, need) {
                        break;
                    }
                    pending.pop_front();
                    if at <= measure_until {
                        lat.push(now.duration_since(at).as_nanos() as u64);
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// Our `<a/>` for what we have received so far.
    pub fn answer(&self) -> String {
        format!(
            "<a xmlns='urn:xmpp:sm:3' h='{}'/>",
            self.inbound.load(Ordering::Relaxed)
        )
    }

    /// Stanzas we sent that the server has not acknowledged.
    pub fn unacked(&self) -> u32 {
        self.outbound
            .load(Ordering::Relaxed)
            .wrapping_sub(self.acked.load(Ordering::Relaxed))
    }

    /// Our `<r/>`s no `<a/>` has covered yet.
    pub fn unanswered(&self) -> usize {
        self.pending.lock().expect("sm pending").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_compare_across_the_wrap() {
        assert!(reached(5, 5));
        assert!(reached(6, 5));
        assert!(!reached(4, 5));
        // 2^32 - 1 stanzas, then 2 more: h wrapped to 1, which is past u32::MAX.
        assert!(reached(1, u32::MAX));
        assert!(!reached(u32::MAX, 1));
    }

    #[test]
    fn acks_settle_requests_and_answers_count_stanzas() {
        let st = SmState::new(true, None);
        let totals = SmTotals::default();
        let mut lat = Vec::new();
        let later = Instant::now() + std::time::Duration::from_secs(60);
        for _ in 0..3 {
            st.sent();
        }
        st.requested(2, &totals);
        st.requested(3, &totals);
        let a = b"<a xmlns='urn:xmpp:sm:3' h='2'/>";
        assert_eq!(st.on_element(b"a", a, &totals, &mut lat, later), None);
        assert_eq!((lat.len(), st.unanswered(), st.unacked()), (1, 1, 1));
        // More than was sent is a bad ack and changes nothing.
        let a = b"<a xmlns='urn:xmpp:sm:3' h='4'/>";
        st.on_element(b"a", a, &totals, &mut lat, later);
        assert_eq!(totals.bad_acks.load(Ordering::Relaxed), 1);
        assert_eq!(st.unacked(), 1);
        // Two stanzas received, then the server's request.
        let m = b"<message><body>x</body></message>";
        st.on_element(b"message", m, &totals, &mut lat, later);
        st.on_element(b"iq", b"<iq type='get'/>", &totals, &mut lat, later);
        let r = b"<r xmlns='urn:xmpp:sm:3'/>";
        assert_eq!(
            st.on_element(b"r", r, &totals, &mut lat, later).as_deref(),
            Some("<a xmlns='urn:xmpp:sm:3' h='2'/>")
        );
        assert_eq!(totals.r_answered.load(Ordering::Relaxed), 1);
    }
}
