//! The origins (`outbox::Origin` keys) a session received lately: how a session recognises a
//! stanza its sender resent after that sender's own resumption (XEP-0198 §5: the sender's `h`
//! lagged, so it sends again what this session already had). Used by `Unacked` for what a
//! stream-managed client acknowledged, and by the c2s actor (rookery-net) for a client without
//! stream management, whose written stanzas it cannot tell apart otherwise.
//!
//! A bounded ring with a set beside it: the lookup runs for every stanza that carries an
//! origin, where a scan of the ring showed in profiles.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

#[derive(Debug)]
pub struct RecentOrigins {
    /// Boxed and made on the first insert: every c2s session holds one, most never use it,
    /// and an empty one is two words.
    inner: Option<Box<Inner>>,
    cap: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// Oldest first.
    ring: VecDeque<Arc<str>>,
    set: HashSet<Arc<str>>,
}

impl RecentOrigins {
    /// Remembers at most `cap` origins (the newest).
    pub fn new(cap: usize) -> RecentOrigins {
        RecentOrigins { inner: None, cap }
    }

    /// Remembers `origin`, forgetting the oldest when full.
    pub fn insert(&mut self, origin: Arc<str>) {
        if self.cap == 0 {
            return;
        }
        let inner = self.inner.get_or_insert_default();
        if !inner.set.insert(origin.clone()) {
            return;
        }
        if inner.ring.len() == self.cap
            && let Some(old) = inner.ring.pop_front()
        {
            inner.set.remove(&old);
        }
        inner.ring.push_back(origin);
    }

    pub fn contains(&self, origin: &str) -> bool {
        self.inner.as_ref().is_some_and(|i| i.set.contains(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_cap_origins() {
        let mut r = RecentOrigins::new(2);
        for o in ["a#1", "a#2", "a#2", "a#3"] {
            r.insert(o.into());
        }
        assert!(!r.contains("a#1"), "the oldest went when a third came");
        assert!(r.contains("a#2") && r.contains("a#3"));
        // A repeat did not take a second slot: a#2 is still there after one more.
        r.insert("a#4".into());
        assert!(!r.contains("a#2") && r.contains("a#3") && r.contains("a#4"));
    }
}
