//! rookery-cm: the client streams the server runs XEP-0198 stream management on. The link
//! reader (`pool.rs`) marks a stream when it routes the server's `<enabled/>` or `<resumed/>`
//! to it, and asks here before handing a message for a client that is gone back to the server
//! (`<failed/>`, which the server stores offline). On a stream-managed session it must not:
//! the server still holds that message as unacknowledged (XEP-0198 §4) and sends it again when
//! the client resumes (§5), or routes it on when the session ends, so an offline copy would
//! reach the client a second time.
//!
//! A stream is remembered while its client is connected, and for the next `GONE_KEEP`
//! departures after it left (`client.rs`): `<failed/>` only concerns what the server wrote
//! before it heard that the client left, which is on the link by then. Should so many clients
//! leave within that time, the oldest stream is forgotten and its messages go back as
//! `<failed/>` again: a possible duplicate, never a loss.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

/// Departed stream-managed streams remembered.
pub const GONE_KEEP: usize = 4096;

#[derive(Default)]
pub struct SmStreams {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    connected: HashSet<String>,
    gone: HashSet<String>,
    /// `gone` in order of departure, oldest first.
    gone_order: VecDeque<String>,
}

impl Inner {
    fn remember_gone(&mut self, id: &str) {
        if self.gone.insert(id.to_owned()) {
            self.gone_order.push_back(id.to_owned());
        }
        while self.gone_order.len() > GONE_KEEP {
            if let Some(old) = self.gone_order.pop_front() {
                self.gone.remove(&old);
            }
        }
    }
}

impl SmStreams {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Set edits only, never across an await.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server enabled or resumed stream management on stream `id`. `connected` says
    /// whether its client is still there; it is asked under this lock, so that a client
    /// leaving meanwhile (it leaves the hub before `client_gone`) is seen either way.
    pub fn managed(&self, id: &str, connected: impl FnOnce() -> bool) {
        let mut inner = self.inner();
        if connected() {
            inner.connected.insert(id.to_owned());
        } else {
            inner.remember_gone(id);
        }
    }

    /// The client of stream `id` left (called for every stream, managed or not).
    pub fn client_gone(&self, id: &str) {
        let mut inner = self.inner();
        if inner.connected.remove(id) {
            inner.remember_gone(id);
        }
    }

    /// Whether the server holds what it sent on stream `id` until the client acknowledges it.
    pub fn is_managed(&self, id: &str) -> bool {
        let inner = self.inner();
        inner.connected.contains(id) || inner.gone.contains(id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic reports a failed expectation
mod tests {
    use super::*;

    #[test]
    fn a_managed_stream_is_remembered_after_its_client_left() {
        let s = SmStreams::default();
        s.managed("a", || true);
        assert!(s.is_managed("a"));
        assert!(!s.is_managed("b"));
        s.client_gone("a");
        s.client_gone("b");
        assert!(s.is_managed("a"));
        assert!(
            !s.is_managed("b"),
            "a stream never managed is not remembered"
        );
    }

    #[test]
    fn enabled_after_the_client_left_counts_too() {
        let s = SmStreams::default();
        s.managed("a", || false);
        assert!(s.is_managed("a"));
        assert!(
            s.inner().connected.is_empty(),
            "a departed stream must not stay connected"
        );
    }

    #[test]
    fn departed_streams_are_forgotten_oldest_first_connected_ones_never() {
        let s = SmStreams::default();
        s.managed("live", || true);
        for i in 0..=GONE_KEEP {
            let id = format!("gone-{i}");
            s.managed(&id, || true);
            s.client_gone(&id);
        }
        assert!(!s.is_managed("gone-0"), "the oldest departure is forgotten");
        assert!(s.is_managed("gone-1"));
        assert!(s.is_managed(&format!("gone-{GONE_KEEP}")));
        assert!(s.is_managed("live"));
        assert_eq!(s.inner().gone.len(), GONE_KEEP);
    }
}
