//! One connection manager's state as either end keeps it: its links (live, or dead and waiting
//! to be resumed) and its client sessions, each pinned to one link. Pinning is what keeps a
//! client's stanzas in order (the original CM spread one client over all links); the pin
//! only moves when a link dies, and then atomically with that link's unacknowledged tail
//! (`resume`), so nothing the client sent or was sent overtakes anything older.
//!
//! Generic over what a session is reached by (`T`): the server keeps the session actor's
//! inbox, the CM process its client actor's.

use super::link::Link;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

struct Session<T> {
    to: T,
    link: Arc<Link>,
    /// The peer asked to close it; it stays until its actor is done writing.
    closing: bool,
    /// The session keeps what it writes until its client acknowledges it (XEP-0198 stream
    /// management): a dropped link's tail holds nothing of it that the session does not.
    stream_managed: bool,
}

struct State<T> {
    links: Vec<Arc<Link>>,
    sessions: HashMap<String, Session<T>>,
    next: usize,
    /// Links already resumed, with how many elements we had received on each: if the link
    /// that carried the `<resumed/>` dies before the peer read it, the peer asks again.
    resumed: VecDeque<(String, u64)>,
}

/// Resumed link ids remembered for a repeated `<resume/>`.
const RESUMED_KEEP: usize = 256;

/// A dropped link's sessions and the bytes still queued on it.
pub type Dropped<T> = (Vec<(String, T)>, Vec<Bytes>);

pub struct Hub<T> {
    /// The CM's name (the domain part of its link addresses).
    pub name: String,
    state: Mutex<State<T>>,
}

/// What `resume` did.
pub struct Resumed {
    /// Reliable elements we had received on the dead link (tell the peer).
    pub our_h: u64,
    /// Sessions that moved to the new link.
    pub moved: usize,
}

impl<T: Clone> Hub<T> {
    pub fn new(name: String) -> Hub<T> {
        Hub {
            name,
            state: Mutex::new(State {
                links: Vec::new(),
                sessions: HashMap::new(),
                next: 0,
                resumed: VecDeque::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        // Plain maps; a panic elsewhere cannot leave an entry half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_link(&self, link: Arc<Link>) {
        self.state().links.push(link);
    }

    /// A link with this address is live (duplicate link addresses are refused).
    pub fn has_live_address(&self, address: &str) -> bool {
        self.state()
            .links
            .iter()
            .any(|l| l.is_alive() && l.address == address)
    }

    pub fn link(&self, id: &str) -> Option<Arc<Link>> {
        self.state().links.iter().find(|l| l.id == id).cloned()
    }

    pub fn live_links(&self) -> Vec<Arc<Link>> {
        self.state()
            .links
            .iter()
            .filter(|l| l.is_alive())
            .cloned()
            .collect()
    }

    /// Links whose socket is gone and whose traffic has not been resumed or dropped.
    pub fn dead_links(&self) -> Vec<Arc<Link>> {
        self.state()
            .links
            .iter()
            .filter(|l| !l.is_alive())
            .cloned()
            .collect()
    }

    pub fn link_count(&self) -> usize {
        self.state().links.len()
    }

    /// A live link for a new session: round robin over the live links.
    pub fn pick_link(&self) -> Option<Arc<Link>> {
        let mut st = self.state();
        let live: Vec<Arc<Link>> = st.links.iter().filter(|l| l.is_alive()).cloned().collect();
        if live.is_empty() {
            return None;
        }
        st.next = st.next.wrapping_add(1);
        Some(live[st.next % live.len()].clone())
    }

    /// Registers a session pinned to `link`. False if the id is taken.
    pub fn insert_session(&self, id: &str, to: T, link: Arc<Link>) -> bool {
        let mut st = self.state();
        if st.sessions.contains_key(id) {
            return false;
        }
        st.sessions.insert(
            id.to_owned(),
            Session {
                to,
                link,
                closing: false,
                stream_managed: false,
            },
        );
        true
    }

    /// The session to close at the peer's request, once: None when there is no such session
    /// or a close was already asked for (the session stays until its actor ends, so a second
    /// `<close/>` would otherwise still find it; Openfire answers that one `item-not-found`).
    pub fn start_close(&self, id: &str) -> Option<T> {
        let mut st = self.state();
        let s = st.sessions.get_mut(id).filter(|s| !s.closing)?;
        s.closing = true;
        Some(s.to.clone())
    }

    /// The session turned on stream management (XEP-0198): what is written to it stays its
    /// own to resend until acknowledged, so a dropped link's copy must not be delivered too.
    pub fn set_stream_managed(&self, id: &str) {
        if let Some(s) = self.state().sessions.get_mut(id) {
            s.stream_managed = true;
        }
    }

    /// Whether `set_stream_managed` was called for the session (false when there is none).
    pub fn is_stream_managed(&self, id: &str) -> bool {
        self.state()
            .sessions
            .get(id)
            .is_some_and(|s| s.stream_managed)
    }

    pub fn remove_session(&self, id: &str) -> Option<T> {
        self.state().sessions.remove(id).map(|s| s.to)
    }

    pub fn session(&self, id: &str) -> Option<T> {
        self.state().sessions.get(id).map(|s| s.to.clone())
    }

    pub fn session_count(&self) -> usize {
        self.state().sessions.len()
    }

    pub fn all_sessions(&self) -> Vec<(String, T)> {
        self.state()
            .sessions
            .iter()
            .map(|(k, s)| (k.clone(), s.to.clone()))
            .collect()
    }

    /// The link a session is pinned to.
    pub fn link_of(&self, id: &str) -> Option<Arc<Link>> {
        self.state().sessions.get(id).map(|s| s.link.clone())
    }

    /// Queues a session's reliable element on its pinned link (dead or alive: a dead link
    /// keeps it in order for the resume). False: no such session.
    pub fn send(&self, id: &str, bytes: Bytes) -> bool {
        self.send_all(id, std::iter::once(bytes))
    }

    /// Waits while the session's link has too much unwritten data, at most `patience`
    /// (backpressure from a peer that does not read). False: still full after that.
    pub async fn wait_room(&self, id: &str, patience: std::time::Duration) -> bool {
        match self.link_of(id) {
            Some(link) => link.wait_room(patience).await,
            None => true,
        }
    }

    /// `send` for several elements, in order (one lock: nothing gets in between).
    pub fn send_all(&self, id: &str, items: impl Iterator<Item = Bytes>) -> bool {
        let st = self.state();
        match st.sessions.get(id) {
            Some(s) => {
                for b in items {
                    s.link.push(b);
                }
                true
            }
            None => false,
        }
    }

    /// Moves the dead link `dead_id`'s traffic onto `onto`: the elements the peer had not
    /// received (`peer_h` of them it had) are queued on `onto` first, then its sessions are
    /// pinned to `onto` — under one lock, so no session's newer element can get in between.
    /// `before` is queued on `onto` ahead of the tail (the `<resumed/>` answer).
    pub fn resume(
        &self,
        dead_id: &str,
        onto: &Arc<Link>,
        peer_h: u64,
        before: Option<&[u8]>,
    ) -> Option<Resumed> {
        let mut st = self.state();
        let pos = st.links.iter().position(|l| l.id == dead_id)?;
        let dead = st.links.remove(pos);
        dead.kill();
        if let Some(b) = before {
            onto.push_control(b);
        }
        let tail = dead.take_tail(peer_h);
        tracing::debug!(dead = %dead.id, onto = %onto.id, peer_h, our_h = dead.received(), tail = tail.len(), what = "cm-resume", "moving a dead link's tail");
        for b in tail {
            onto.push(b);
        }
        let mut moved = 0;
        for s in st.sessions.values_mut() {
            if s.link.id == dead.id {
                s.link = onto.clone();
                moved += 1;
            }
        }
        if st.resumed.len() >= RESUMED_KEEP {
            st.resumed.pop_front();
        }
        st.resumed.push_back((dead.id.clone(), dead.received()));
        Some(Resumed {
            our_h: dead.received(),
            moved,
        })
    }

    /// For a link resumed earlier: how many elements we had received on it. Its traffic and
    /// sessions already live on the link it was resumed onto (and move on with that one).
    pub fn already_resumed(&self, id: &str) -> Option<u64> {
        self.state()
            .resumed
            .iter()
            .find(|(l, _)| l == id)
            .map(|(_, h)| *h)
    }

    /// Forgets a dead link that will not be resumed; returns its sessions and what was still
    /// queued on it (for offline storage / bounces).
    pub fn drop_link(&self, id: &str) -> Option<Dropped<T>> {
        let mut st = self.state();
        let pos = st.links.iter().position(|l| l.id == id)?;
        let dead = st.links.remove(pos);
        dead.kill();
        let tail = dead.take_tail(0);
        let sessions = st
            .sessions
            .iter()
            .filter(|(_, s)| s.link.id == dead.id)
            .map(|(k, s)| (k.clone(), s.to.clone()))
            .collect();
        Some((sessions, tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_moves_tail_then_sessions_atomically() {
        let hub: Hub<u32> = Hub::new("cm1".into());
        let l1 = Link::new("l1".into(), "cm1/1".into());
        let l2 = Link::new("l2".into(), "cm1/2".into());
        hub.add_link(l1.clone());
        hub.add_link(l2.clone());
        assert!(hub.insert_session("s1", 1, l1.clone()));
        assert!(hub.insert_session("s2", 2, l2.clone()));
        assert!(!hub.insert_session("s1", 9, l2.clone()));
        assert!(hub.send("s1", Bytes::from_static(b"a")));
        assert!(hub.send("s1", Bytes::from_static(b"b")));
        l1.kill();
        // Sent while the link is dead: queued behind the tail.
        assert!(hub.send("s1", Bytes::from_static(b"c")));
        let r = hub.resume("l1", &l2, 1, Some(b"<resumed/>")).unwrap();
        assert_eq!(r.moved, 1);
        assert!(Arc::ptr_eq(&hub.link_of("s1").unwrap(), &l2));
        assert!(hub.send("s1", Bytes::from_static(b"d")));
        l2.kill();
        assert_eq!(
            l2.take_tail(0),
            vec![
                Bytes::from_static(b"b"),
                Bytes::from_static(b"c"),
                Bytes::from_static(b"d")
            ]
        );
        assert!(hub.link("l1").is_none());
        assert!(hub.resume("l1", &l2, 0, None).is_none());
    }

    /// Regression: a second `<close/>` that arrived while the first one's session was still
    /// ending was answered `result` instead of `item-not-found`.
    #[test]
    fn a_session_is_closed_once() {
        let hub: Hub<u32> = Hub::new("cm1".into());
        let l1 = Link::new("l1".into(), "cm1/1".into());
        assert!(hub.insert_session("s1", 1, l1.clone()));
        assert_eq!(hub.start_close("s1"), Some(1));
        assert_eq!(hub.start_close("s1"), None);
        // Still there (its actor writes its last words) until it is removed.
        assert_eq!(hub.session("s1"), Some(1));
        assert!(hub.send("s1", Bytes::from_static(b"bye")));
        hub.remove_session("s1");
        assert_eq!(hub.start_close("s1"), None);
        assert_eq!(hub.start_close("nobody"), None);
    }

    #[test]
    fn pick_link_skips_dead_links() {
        let hub: Hub<u32> = Hub::new("cm1".into());
        assert!(hub.pick_link().is_none());
        let l1 = Link::new("l1".into(), "cm1/1".into());
        let l2 = Link::new("l2".into(), "cm1/2".into());
        hub.add_link(l1.clone());
        hub.add_link(l2.clone());
        l1.kill();
        for _ in 0..4 {
            assert_eq!(hub.pick_link().unwrap().id, "l2");
        }
        assert!(hub.has_live_address("cm1/2"));
        assert!(!hub.has_live_address("cm1/1"));
    }
}
