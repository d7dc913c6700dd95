//! Brute-force protection for authentication (SECURITY.md §3.5, XEP-0205): failures are counted
//! per IP and per account; past a threshold each attempt waits exponentially longer, and an IP
//! with many failures is banned for a while. Accounts are never locked (that would let anyone
//! lock out a victim), only slowed.

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

    pub fn record_failure(&self, ip: IpAddr, account: Option<&str>, now: Instant) {
        Self::bump(&self.by_ip, ip, now);
        if let Some(a) = account {
            Self::bump(&self.by_account, a.to_owned(), now);
        }
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

    fn bump<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Record>>, key: K, now: Instant) {
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
        }
        let r = map.entry(key).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.duration_since(r.last) >= FORGET_AFTER {
            r.failures = 0;
        }
        r.failures += 1;
        r.last = now;
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
