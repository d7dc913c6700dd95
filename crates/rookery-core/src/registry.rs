//! The session registry, private to core: bare JID → bound resources of local sessions (each
//! carrying the presence state routing needs). Read on every delivery, so lookups are by key
//! only (O(1) + O(resources)); no scans over all sessions. Sessions on other nodes are the
//! `Cluster`'s business (`cluster.rs`); `sessions.rs` joins both behind its verbs.

use crate::session::Session;
use rookery_proto::stanza::{BareJid, FullJid};
use std::collections::HashMap;
use std::sync::RwLock;

/// What binding a resource did.
#[derive(Debug)]
pub(crate) enum BindOutcome {
    Bound,
    /// The resource was taken and policy said to replace: the old session is returned so the
    /// caller can close it with `<conflict/>`.
    Replaced(Session),
    Conflict,
    TooManyResources,
}

/// Keyed by the bare JID's string so lookups can borrow a slice of a full JID instead of
/// allocating a `BareJid` per delivery.
type Map = HashMap<String, Vec<Session>>;

#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: RwLock<Map>,
}

/// The bare part of a normalised full JID (`node@domain/resource`: the first `/` separates the
/// resource; neither node nor domain may contain one).
fn bare_of(full: &FullJid) -> &str {
    let s = full.as_str();
    s.split_once('/').map_or(s, |(bare, _)| bare)
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        // Poisoning only follows a panic while holding the lock; the map itself stays consistent
        // because every mutation is a single insert/remove.
        self.sessions.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.sessions.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds a session. `replace` decides the conflict policy (RFC 6120 §7.7.2.2). The
    /// `bound` flags change under the map's lock, so no reader sees a session in the map
    /// that says it is not bound (or the reverse) for longer than a lookup.
    pub fn bind(&self, session: &Session, replace: bool, max_resources: usize) -> BindOutcome {
        let bare = bare_of(session.jid()).to_owned();
        let mut map = self.write();
        let list = map.entry(bare).or_default();
        if let Some(pos) = list.iter().position(|e| e.resource() == session.resource()) {
            if !replace {
                return BindOutcome::Conflict;
            }
            let old = list.remove(pos);
            old.set_bound(false);
            session.set_bound(true);
            list.push(session.clone());
            return BindOutcome::Replaced(old);
        }
        if list.len() >= max_resources {
            return BindOutcome::TooManyResources;
        }
        session.set_bound(true);
        list.push(session.clone());
        BindOutcome::Bound
    }

    /// Removes a session if it is still the one registered (a replaced session must not remove
    /// its successor). Returns whether it did.
    pub fn unbind(&self, session: &Session) -> bool {
        let bare = bare_of(session.jid());
        let mut map = self.write();
        let Some(list) = map.get_mut(bare) else {
            return false;
        };
        let Some(pos) = list.iter().position(|e| e == session) else {
            return false;
        };
        list.remove(pos).set_bound(false);
        if list.is_empty() {
            map.remove(bare);
        }
        true
    }

    pub fn get(&self, jid: &FullJid) -> Option<Session> {
        let map = self.read();
        map.get(bare_of(jid))?
            .iter()
            .find(|e| e.resource() == jid.resource().as_str())
            .cloned()
    }

    /// All bound sessions of an account.
    pub fn sessions(&self, bare: &BareJid) -> Vec<Session> {
        self.read().get(bare.as_str()).cloned().unwrap_or_default()
    }

    /// Available sessions (sent initial presence).
    pub fn available(&self, bare: &BareJid) -> Vec<Session> {
        self.sessions(bare)
            .into_iter()
            .filter(|e| e.with_state(|s| s.available))
            .collect()
    }

    /// Number of bound sessions (for metrics and shutdown).
    pub fn count(&self) -> usize {
        self.read().values().map(Vec::len).sum()
    }

    /// Every session (shutdown only: the one place a full scan is acceptable).
    pub fn all(&self) -> Vec<Session> {
        self.read().values().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(jid: &str) -> Session {
        Session::new(
            &crate::session_id::NodeName::new("t"),
            FullJid::new(jid).unwrap(),
            4,
        )
        .0
    }

    #[test]
    fn conflict_policies() {
        let r = Registry::new();
        let first = handle("a@b/r");
        assert!(matches!(r.bind(&first, false, 10), BindOutcome::Bound));
        assert!(matches!(
            r.bind(&handle("a@b/r"), false, 10),
            BindOutcome::Conflict
        ));
        let newer = handle("a@b/r");
        match r.bind(&newer, true, 10) {
            BindOutcome::Replaced(old) => {
                assert_eq!(old, first);
                assert!(!old.is_bound());
                assert!(newer.is_bound());
            }
            other => panic!("expected Replaced, got {other:?}"),
        }
        assert_eq!(r.count(), 1);
    }

    #[test]
    fn resources_containing_slashes_stay_under_their_account() {
        let r = Registry::new();
        let h = handle("a@b/desk/2");
        assert!(matches!(r.bind(&h, false, 10), BindOutcome::Bound));
        assert_eq!(bare_of(h.jid()), "a@b");
        assert!(r.get(&FullJid::new("a@b/desk/2").unwrap()).is_some());
        assert_eq!(r.sessions(&BareJid::new("a@b").unwrap()).len(), 1);
    }

    #[test]
    fn resource_cap() {
        let r = Registry::new();
        assert!(matches!(
            r.bind(&handle("a@b/1"), false, 2),
            BindOutcome::Bound
        ));
        assert!(matches!(
            r.bind(&handle("a@b/2"), false, 2),
            BindOutcome::Bound
        ));
        assert!(matches!(
            r.bind(&handle("a@b/3"), false, 2),
            BindOutcome::TooManyResources
        ));
    }

    #[test]
    fn unbind_of_a_replaced_session_keeps_its_successor() {
        let r = Registry::new();
        let old = handle("a@b/r");
        r.bind(&old, false, 10);
        let new = handle("a@b/r");
        r.bind(&new, true, 10);
        assert!(!r.unbind(&old));
        assert_eq!(r.get(new.jid()), Some(new.clone()));
        assert!(r.unbind(&new));
        assert!(!new.is_bound());
        assert_eq!(r.count(), 0);
    }
}
