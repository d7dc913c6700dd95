//! The outgoing side of federation as the router sees it: `route_remote` puts a stanza on the live
//! stream for its (local, remote) domain pair, or in that pair's queue while one establishment task
//! sets the stream up. The queue drains in order into the new stream's mailbox under the same lock
//! that routes new stanzas, so a new stanza can never overtake a queued one (RFC 6120 §10.1:
//! in-order processing); on failure every queued stanza bounces once with the error that matches
//! the cause.

use super::outbound::{self, OutHandle};
use super::{Failure, S2s};
use rookery_core::Server;
use rookery_proto::error::{Condition, StanzaError};
use rookery_proto::stanza::{Kind, Stanza};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// (local domain, remote domain).
pub type Pair = (String, String);

enum PairState {
    /// An establishment task is running; stanzas wait here in arrival order.
    Connecting(VecDeque<Stanza>),
    /// Authenticated on this outgoing stream.
    Live(OutHandle),
}

#[derive(Default)]
pub struct Pool {
    pairs: Mutex<HashMap<Pair, PairState>>,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Pair, PairState>> {
        // Every mutation is a single map operation; a poisoned map is still consistent.
        self.pairs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The outgoing stream carrying `pair`: its id and whether it authenticated with dialback
    /// (false: SASL EXTERNAL). For diagnostics and tests.
    pub fn stream_of(&self, pair: &Pair) -> Option<(u64, bool)> {
        match self.lock().get(pair) {
            Some(PairState::Live(h)) => Some((h.id(), h.is_dialback())),
            _ => None,
        }
    }

    /// Live outgoing streams to `remote` (candidates for piggybacking another local domain).
    pub(crate) fn live_to(&self, remote: &str) -> Vec<OutHandle> {
        let mut out: Vec<OutHandle> = Vec::new();
        for ((_, r), st) in self.lock().iter() {
            if let PairState::Live(h) = st
                && r == remote
                && !out.iter().any(|o| o.id() == h.id())
            {
                out.push(h.clone());
            }
        }
        out
    }
}

/// A stream ended. Under the routing lock: close its mailbox, forget every pair it carried,
/// and queue what was still in the mailbox for new attempts - ahead of anything routed
/// later, so nothing overtakes it (RFC 6120 §10.1).
pub(crate) async fn retire(
    s2s: &S2s,
    server: &Server,
    stream_id: u64,
    rx: &mut mpsc::Receiver<Stanza>,
) {
    let mut start = Vec::new();
    let mut refused = Vec::new();
    {
        let mut pairs = s2s.pool().lock();
        rx.close();
        pairs.retain(|_, st| !matches!(st, PairState::Live(h) if h.id() == stream_id));
        while let Ok(st) = rx.try_recv() {
            let (Some(from), Some(to)) = (st.from(), st.to()) else {
                continue;
            };
            let pair: Pair = (
                from.domain().as_str().to_owned(),
                to.domain().as_str().to_owned(),
            );
            match pairs.get_mut(&pair) {
                // Already accepted once: requeued whatever queue_max says.
                Some(PairState::Connecting(q)) => q.push_back(st),
                Some(PairState::Live(h)) => {
                    if let Err(e) = h.send(st) {
                        refused.push(e.into_inner());
                    }
                }
                None => {
                    pairs.insert(pair.clone(), PairState::Connecting(VecDeque::from([st])));
                    start.push(pair);
                }
            }
        }
    }
    for pair in start {
        spawn_establish(s2s, server, pair);
    }
    for st in refused {
        bounce(server, &st, overflow_error()).await;
    }
}

fn spawn_establish(s2s: &S2s, server: &Server, pair: Pair) {
    let (s2s, server2) = (s2s.clone(), server.clone());
    server
        .tasks()
        .spawn(async move { establish(s2s, server2, pair).await });
}

/// Entry point from the router for a stanza whose `to` domain is not ours.
pub async fn route_remote(s2s: &S2s, server: &Server, st: Stanza) {
    let (Some(from), Some(to)) = (st.from(), st.to()) else {
        return;
    };
    let local = from.domain().as_str().to_owned();
    let remote = to.domain().as_str().to_owned();
    if !server.serves_domain(&local) {
        // Only our own users', hosts' and components' stanzas leave through us: no relaying.
        tracing::debug!(%local, %remote, what = "s2s-relay-refused", "dropping");
        return;
    }
    let policy = server.config().s2s.policy(&remote);
    if !policy.allowed {
        bounce(
            server,
            &st,
            StanzaError::new(Condition::RemoteServerNotFound)
                .with_text("federation with this domain is not allowed"),
        )
        .await;
        return;
    }
    let pair: Pair = (local, remote);
    let cap = server.config().s2s.queue_max;
    let action = {
        let mut pairs = s2s.pool().lock();
        let mut st = Some(st);
        let mut action = Action::None;
        if let Some(PairState::Live(h)) = pairs.get(&pair)
            && let Some(s) = st.take()
        {
            match h.send(s) {
                Ok(()) => {}
                // The peer is not keeping up. Another stream would let this stanza and the
                // next ones overtake those still in the mailbox: bounce it, keep the route.
                Err(TrySendError::Full(s)) => action = Action::Overflow(s),
                // The stream is gone: start over with a new attempt below.
                Err(TrySendError::Closed(s)) => {
                    st = Some(s);
                    pairs.remove(&pair);
                }
            }
        }
        if let Some(s) = st.take() {
            match pairs.get_mut(&pair) {
                Some(PairState::Connecting(q)) => {
                    if q.len() >= cap {
                        action = Action::Overflow(s);
                    } else {
                        q.push_back(s);
                    }
                }
                _ => {
                    pairs.insert(pair.clone(), PairState::Connecting(VecDeque::from([s])));
                    action = Action::Start;
                }
            }
        }
        action
    };
    match action {
        Action::None => {}
        Action::Overflow(s) => {
            bounce(server, &s, overflow_error()).await;
        }
        Action::Start => spawn_establish(s2s, server, pair),
    }
}

enum Action {
    None,
    Start,
    Overflow(Stanza),
}

/// The one task per pair that sets up the route, then drains the queue or bounces it.
async fn establish(s2s: S2s, server: Server, pair: Pair) {
    let timeout = server.config().s2s.connect_timeout();
    let result =
        match tokio::time::timeout(timeout, outbound::authenticate(&s2s, &server, &pair)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout(format!(
                "no authenticated stream within {} s",
                timeout.as_secs()
            ))),
        };
    let mut overflow = Vec::new();
    let queued = {
        let mut pairs = s2s.pool().lock();
        match (&result, pairs.remove(&pair)) {
            (Ok(handle), Some(PairState::Connecting(q))) => {
                // Move the whole queue into the stream's mailbox before anyone else can route to
                // the pair: this is what keeps order across "connecting" → "live".
                let mut left = VecDeque::new();
                for st in q {
                    if !left.is_empty() {
                        // The stream closed: nothing after it may be sent either.
                        left.push_back(st);
                        continue;
                    }
                    match handle.send(st) {
                        Ok(()) => {}
                        // A shared (piggybacked) stream whose peer is not keeping up.
                        Err(TrySendError::Full(st)) => overflow.push(st),
                        Err(TrySendError::Closed(st)) => left.push_back(st),
                    }
                }
                if left.is_empty() {
                    pairs.insert(pair.clone(), PairState::Live(handle.clone()));
                }
                left
            }
            (_, Some(PairState::Connecting(q))) => q,
            (_, other) => {
                if let Some(o) = other {
                    pairs.insert(pair.clone(), o);
                }
                VecDeque::new()
            }
        }
    };
    let err = match &result {
        Ok(_) => StanzaError::new(Condition::RemoteServerTimeout).with_text("the stream closed"),
        Err(f) => {
            tracing::info!(local = %pair.0, remote = %pair.1, reason = %f, what = "s2s-failed", "cannot reach remote server");
            f.stanza_error(&pair.1)
        }
    };
    for st in queued {
        bounce(&server, &st, err.clone()).await;
    }
    for st in overflow {
        bounce(&server, &st, overflow_error()).await;
    }
}

fn overflow_error() -> StanzaError {
    StanzaError::new(Condition::ResourceConstraint)
        .with_text("too many stanzas queued for this domain")
}

/// Returns an undeliverable stanza to its local sender (RFC 6120 §10.4.3): never errors or iq
/// results (RFC 6120 §8.3.1, §8.2.3); of presences only `subscribe` is bounced (broadcast presence
/// to a dead domain is not the user's error), exactly once.
pub(crate) async fn bounce(server: &Server, st: &Stanza, err: StanzaError) {
    if st.kind() == Kind::Presence && st.type_attr() != "subscribe" {
        return;
    }
    server.bounce(st, err).await;
}
