//! Connection-level limits per IP, taken before a connection is authenticated: the cap on
//! concurrent unauthenticated connections and the connection-attempt budget (XEP-0205 §3).
//! Used by the server's listeners and by the connection manager's client listener; the caps
//! come from `[limits]` as plain numbers from the caller. (The framer limits derived from
//! `[limits]` are the server's: rookery-net `limits.rs`.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts unauthenticated connections per IP, and connection attempts per IP per minute.
#[derive(Clone, Default)]
pub struct UnauthLimiter {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    attempts: Arc<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

/// The window connection attempts are counted in.
const ATTEMPT_WINDOW: Duration = Duration::from_secs(60);
/// Forget idle addresses once the attempt map holds this many.
const ATTEMPTS_PRUNE_AT: usize = 10_000;

/// Held while a connection is unauthenticated; dropping it frees the slot.
pub struct UnauthGuard {
    limiter: UnauthLimiter,
    ip: IpAddr,
}

impl UnauthLimiter {
    /// Counts one connection attempt from `ip` at `now`; false when it made more than `per_minute`
    /// in the current minute (XEP-0205 §3: limit connection attempts per IP).
    pub fn attempt(&self, ip: IpAddr, per_minute: u32, now: Instant) -> bool {
        let mut map = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= ATTEMPTS_PRUNE_AT {
            map.retain(|_, (start, _)| now.duration_since(*start) < ATTEMPT_WINDOW);
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= ATTEMPT_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= per_minute
    }

    /// Takes a slot for `ip`, or None when it already has `max` unauthenticated connections.
    pub fn try_acquire(&self, ip: IpAddr, max: usize) -> Option<UnauthGuard> {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(UnauthGuard {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for UnauthGuard {
    fn drop(&mut self) {
        let mut map = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_limited_per_minute_and_per_address() {
        let l = UnauthLimiter::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.attempt(a, 3, t0)));
        assert!(!l.attempt(a, 3, t0));
        assert!(l.attempt(b, 3, t0), "another address has its own budget");
        assert!(
            l.attempt(a, 3, t0 + Duration::from_secs(61)),
            "a new minute starts afresh"
        );
    }

    #[test]
    fn slots_are_freed_on_drop() {
        let l = UnauthLimiter::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = l.try_acquire(ip, 2).unwrap();
        let _b = l.try_acquire(ip, 2).unwrap();
        assert!(l.try_acquire(ip, 2).is_none());
        drop(a);
        assert!(l.try_acquire(ip, 2).is_some());
    }
}
