//! Brute-force protection for authentication (XEP-0205): failures are counted
//! per IP and per account; past a threshold each attempt waits exponentially longer, and an IP
//! with many failures is banned for a while. Accounts are never locked (that would let anyone
//! lock out a victim), only slowed.
//!
//! Callers (c2s SASL, the router's SASL, the component handshake) record only failed
//! credential checks: a wrong password, secret or proof, or an unknown account. A refused
//! negotiation step (a channel-binding type or flag the connection cannot honour, a malformed
//! message, an abort, an unknown mechanism) is not recorded: it says nothing about a password,
//! and honest clients walk through several such refusals on their way to a mechanism that works
//! (docs/decisions/0008). Each escalation (delays start for an IP or an account, an IP is
//! banned) is logged once, when it starts.

use rookery_config::Limits;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// What one recorded failure started (each is logged once, when it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Escalation {
    /// Answers to this IP are delayed from now on.
    pub ip_delayed: bool,
    /// Answers for this account are delayed from now on (from any IP).
    pub account_delayed: bool,
    /// This IP is banned from now on.
    pub ip_banned: bool,
}

#[derive(Debug)]
pub struct AuthThrottle {
    free_failures: u32,
    ban_threshold: u32,
    ban: Duration,
    by_ip: Mutex<HashMap<IpAddr, Record>>,
    by_account: Mutex<HashMap<String, Record>>,
}

/// Records older than this are forgotten (and the map is pruned when it grows).
const FORGET_AFTER: Duration = Duration::from_secs(3600);
const MAX_DELAY: Duration = Duration::from_secs(30);
const PRUNE_AT: usize = 10_000;

impl AuthThrottle {
    pub fn new(limits: &Limits) -> Self {
        AuthThrottle {
            free_failures: limits.auth_failures_per_ip,
            ban_threshold: limits.auth_ban_threshold,
            ban: limits.auth_ban(),
            by_ip: Mutex::new(HashMap::new()),
            by_account: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this IP is banned right now.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        let map = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip).is_some_and(|r| {
            r.failures >= self.ban_threshold && now.duration_since(r.last) < self.ban
        })
    }

    /// How long to wait before answering an authentication attempt from `ip` for `account`.
    pub fn delay(&self, ip: IpAddr, account: Option<&str>, now: Instant) -> Duration {
        let ip_f = Self::current(&self.by_ip, &ip, now);
        let acct_f = account.map_or(0, |a| Self::current(&self.by_account, &a.to_owned(), now));
        let f = ip_f.max(acct_f);
        if f <= self.free_failures {
            return Duration::ZERO;
        }
        let exp = (f - self.free_failures).min(16);
        Duration::from_millis(250u64 << exp).min(MAX_DELAY)
    }

    /// Records one failed credential check (never a negotiation failure) and logs what it
    /// escalated, once: the first delayed answer for the IP or the account, the start of a ban.
    pub fn record_failure(&self, ip: IpAddr, account: Option<&str>, now: Instant) -> Escalation {
        let (ip_before, ip_after) = Self::bump(&self.by_ip, ip, now);
        let was_banned = ip_before.is_some_and(|r| self.bans(&r, now));
        let mut esc = Escalation {
            ip_delayed: self.starts_delay(ip_before, ip_after.failures),
            account_delayed: false,
            ip_banned: !was_banned && self.bans(&ip_after, now),
        };
        let mut account_failures = 0;
        if let Some(a) = account {
            let (before, after) = Self::bump(&self.by_account, a.to_owned(), now);
            esc.account_delayed = self.starts_delay(before, after.failures);
            account_failures = after.failures;
        }
        let acct = account.unwrap_or("-");
        if esc.ip_banned {
            tracing::warn!(
                %ip,
                account = acct,
                failures = ip_after.failures,
                ban_secs = self.ban.as_secs(),
                reason = "failed credential checks from this address",
                what = "auth-ban",
                "address banned from authenticating"
            );
        } else if esc.ip_delayed || esc.account_delayed {
            let delayed = match (esc.ip_delayed, esc.account_delayed) {
                (true, true) => "address and account",
                (true, false) => "address",
                _ => "account",
            };
            tracing::warn!(
                %ip,
                account = acct,
                ip_failures = ip_after.failures,
                account_failures,
                delayed,
                reason = "failed credential checks",
                what = "auth-throttle",
                "authentication answers are now delayed"
            );
        }
        esc
    }

    /// Whether a record (still within [`FORGET_AFTER`]) means a ban at `now`.
    fn bans(&self, r: &Record, now: Instant) -> bool {
        r.failures >= self.ban_threshold && now.duration_since(r.last) < self.ban
    }

    /// Whether going from `before` to `after` failures crosses into delayed answers.
    fn starts_delay(&self, before: Option<Record>, after: u32) -> bool {
        before.map_or(0, |r| r.failures) <= self.free_failures && after > self.free_failures
    }

    /// A success clears the account's counter (the IP's stays: one IP guessing many accounts).
    pub fn record_success(&self, account: &str) {
        self.by_account
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(account);
    }

    fn current<K: std::hash::Hash + Eq>(
        map: &Mutex<HashMap<K, Record>>,
        key: &K,
        now: Instant,
    ) -> u32 {
        let map = map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|r| now.duration_since(r.last) < FORGET_AFTER)
            .map_or(0, |r| r.failures)
    }

    /// Counts one failure; returns the record before (`None` if absent or forgotten) and after,
    /// read under the same lock so concurrent failures each see their own step.
    fn bump<K: std::hash::Hash + Eq>(
        map: &Mutex<HashMap<K, Record>>,
        key: K,
        now: Instant,
    ) -> (Option<Record>, Record) {
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
        }
        let r = map.entry(key).or_insert(Record {
            failures: 0,
            last: now,
        });
        let before = (r.failures > 0 && now.duration_since(r.last) < FORGET_AFTER).then_some(*r);
        if before.is_none() {
            r.failures = 0;
        }
        r.failures += 1;
        r.last = now;
        (before, *r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> AuthThrottle {
        AuthThrottle {
            free_failures: 2,
            ban_threshold: 5,
            ban: Duration::from_secs(60),
            by_ip: Mutex::new(HashMap::new()),
            by_account: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn delay_grows_then_ban() {
        let t = throttle();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let now = Instant::now();
        assert_eq!(t.delay(ip, Some("a@b"), now), Duration::ZERO);
        for _ in 0..3 {
            t.record_failure(ip, Some("a@b"), now);
        }
        let d3 = t.delay(ip, None, now);
        t.record_failure(ip, Some("a@b"), now);
        assert!(t.delay(ip, None, now) > d3);
        assert!(!t.is_banned(ip, now));
        t.record_failure(ip, None, now);
        assert!(t.is_banned(ip, now));
        assert!(!t.is_banned(ip, now + Duration::from_secs(61)));
    }

    /// Delays and the ban are reported by the one failure that starts them, not by the ones
    /// after; a ban that ran out and starts again is reported again.
    #[test]
    fn escalations_are_reported_once_when_they_start() {
        let t = throttle();
        let ip: IpAddr = "127.0.0.7".parse().unwrap();
        let now = Instant::now();
        let events: Vec<Escalation> = (0..7)
            .map(|_| t.record_failure(ip, Some("a@b"), now))
            .collect();
        let none = Escalation::default();
        assert_eq!(events[..2], [none, none]);
        assert_eq!(
            events[2],
            Escalation {
                ip_delayed: true,
                account_delayed: true,
                ip_banned: false
            }
        );
        assert_eq!(events[3], none);
        assert_eq!(
            events[4],
            Escalation {
                ip_banned: true,
                ..none
            }
        );
        assert_eq!(events[5..], [none, none]);
        let later = now + Duration::from_secs(61);
        assert!(!t.is_banned(ip, later));
        assert!(t.record_failure(ip, None, later).ip_banned);
    }

    #[test]
    fn account_counter_slows_other_ips_but_success_clears_it() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..4u8 {
            t.record_failure(IpAddr::from([10, 0, 0, i]), Some("victim@x"), now);
        }
        let fresh = IpAddr::from([10, 0, 1, 1]);
        assert!(t.delay(fresh, Some("victim@x"), now) > Duration::ZERO);
        t.record_success("victim@x");
        assert_eq!(t.delay(fresh, Some("victim@x"), now), Duration::ZERO);
    }
}
