//! Sender shaping: per-stream byte and stanza rate limits on what a client, server or component
//! sends us (`[limits]` `c2s_rate_*`, `s2s_rate_*`, `component_rate_*`). Enforced the way
//! ejabberd's shapers and Prosody's mod_limits do it: when a stream has used up its budget, the
//! actor stops reading from it until the budget refills, so the kernel's receive buffer fills and
//! TCP pushes back on the sender. Nothing is dropped and nobody is disconnected.
//!
//! Each budget is a token bucket: `burst` tokens, refilled at `rate` per second. What was read
//! is charged after the fact and may take the bucket below zero (one read is up to 16 KiB); the
//! stream then pauses until the debt is paid back. The actor asks `resume_at` before each read
//! and before each buffered stanza it handles.

use rookery_config::Shaping;
use std::time::Duration;
use tokio::time::Instant;

/// One token bucket. Tokens are kept in millionths so that refills at low rates don't round
/// away; `i64` millionths hold far more than any `u32` burst.
#[derive(Debug)]
struct Bucket {
    rate: u32,
    burst_micro: i64,
    tokens_micro: i64,
    last: Instant,
}

const MICRO: i64 = 1_000_000;

impl Bucket {
    fn new(rate: u32, burst: u32, now: Instant) -> Option<Bucket> {
        (rate > 0).then(|| Bucket {
            rate,
            burst_micro: i64::from(burst) * MICRO,
            tokens_micro: i64::from(burst) * MICRO,
            last: now,
        })
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        let earned = i64::try_from(elapsed.as_micros())
            .unwrap_or(i64::MAX)
            .saturating_mul(i64::from(self.rate));
        self.tokens_micro = self
            .tokens_micro
            .saturating_add(earned)
            .min(self.burst_micro);
    }

    fn charge(&mut self, n: u64, now: Instant) {
        self.refill(now);
        let cost = i64::try_from(n).unwrap_or(i64::MAX).saturating_mul(MICRO);
        self.tokens_micro = self.tokens_micro.saturating_sub(cost);
    }

    /// When the bucket is out of debt, if it is in debt now.
    fn resume_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        if self.tokens_micro >= 0 {
            return None;
        }
        let debt = u64::try_from(-self.tokens_micro).unwrap_or(u64::MAX);
        let micros = debt.div_ceil(u64::from(self.rate));
        Some(now + Duration::from_micros(micros))
    }
}

/// The shaping state of one incoming stream.
#[derive(Debug)]
pub struct Shaper {
    bytes: Option<Bucket>,
    stanzas: Option<Bucket>,
    /// Whether the stream has been paused yet (logged once per stream).
    engaged: bool,
}

/// Which budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Bytes,
    Stanzas,
}

impl Shaper {
    pub fn new(s: Shaping) -> Shaper {
        let now = Instant::now();
        Shaper {
            bytes: Bucket::new(s.rate_bytes, s.burst_bytes, now),
            stanzas: Bucket::new(s.rate_stanzas, s.burst_stanzas, now),
            engaged: false,
        }
    }

    /// Bytes just read from the peer.
    pub fn charge_bytes(&mut self, n: usize) {
        if let Some(b) = &mut self.bytes {
            b.charge(n as u64, Instant::now());
        }
    }

    /// A stanza about to be handled.
    pub fn charge_stanza(&mut self) {
        if let Some(b) = &mut self.stanzas {
            b.charge(1, Instant::now());
        }
    }

    /// If the stream has overspent: until when reading must pause, and which budget is out.
    pub fn resume_at(&mut self) -> Option<(Instant, Limit)> {
        let now = Instant::now();
        let bytes = self.bytes.as_mut().and_then(|b| b.resume_at(now));
        let stanzas = self.stanzas.as_mut().and_then(|b| b.resume_at(now));
        match (bytes, stanzas) {
            (None, None) => None,
            (Some(b), None) => Some((b, Limit::Bytes)),
            (None, Some(s)) => Some((s, Limit::Stanzas)),
            (Some(b), Some(s)) if b >= s => Some((b, Limit::Bytes)),
            (Some(_), Some(s)) => Some((s, Limit::Stanzas)),
        }
    }

    /// True the first time it is called on this stream: log the shaping once, not per pause.
    pub fn first_pause(&mut self) -> bool {
        !std::mem::replace(&mut self.engaged, true)
    }

    /// If the peer has overspent: until when its reads pause. The first pause of a stream is
    /// logged, naming the peer (`who`: a JID, a server pair, a component domain).
    pub fn pause(&mut self, who: &dyn std::fmt::Display) -> Option<Instant> {
        let (at, which) = self.resume_at()?;
        if self.first_pause() {
            tracing::info!(peer = %who, limit = which.as_str(), what = "shaped", "peer over its rate limit: reading from it paused");
        }
        Some(at)
    }
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Bytes => "bytes",
            Limit::Stanzas => "stanzas",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaping(
        rate_bytes: u32,
        burst_bytes: u32,
        rate_stanzas: u32,
        burst_stanzas: u32,
    ) -> Shaping {
        Shaping {
            rate_bytes,
            burst_bytes,
            rate_stanzas,
            burst_stanzas,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_burst_is_free_then_debt_pauses_for_its_refill_time() {
        let mut s = Shaper::new(shaping(1000, 2000, 0, 1));
        s.charge_bytes(2000);
        assert_eq!(s.resume_at(), None, "the burst itself does not pause");
        s.charge_bytes(500);
        let (at, which) = s.resume_at().unwrap();
        assert_eq!(which, Limit::Bytes);
        assert_eq!(at - Instant::now(), Duration::from_millis(500));
        tokio::time::sleep_until(at).await;
        assert_eq!(s.resume_at(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_refills_up_to_the_burst_only() {
        let mut s = Shaper::new(shaping(0, 1, 10, 5));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        for _ in 0..5 {
            s.charge_stanza();
        }
        assert_eq!(s.resume_at(), None);
        s.charge_stanza();
        let (at, which) = s.resume_at().unwrap();
        assert_eq!(which, Limit::Stanzas);
        assert_eq!(at - Instant::now(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_zero_is_unlimited() {
        let mut s = Shaper::new(shaping(0, 1, 0, 1));
        s.charge_bytes(usize::MAX);
        for _ in 0..100_000 {
            s.charge_stanza();
        }
        assert_eq!(s.resume_at(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_later_of_two_debts_decides() {
        let mut s = Shaper::new(shaping(100, 1, 1, 1));
        s.charge_bytes(101); // 1 s of byte debt
        s.charge_stanza();
        s.charge_stanza(); // 1 s of stanza debt... and a bit: refill is exact at 1/s
        s.charge_stanza();
        let (at, which) = s.resume_at().unwrap();
        assert_eq!(which, Limit::Stanzas);
        assert_eq!(at - Instant::now(), Duration::from_secs(2));
    }

    #[test]
    fn logged_once() {
        let mut s = Shaper::new(shaping(1, 1, 1, 1));
        assert!(s.first_pause());
        assert!(!s.first_pause());
    }
}
