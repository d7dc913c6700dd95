//! The session registry: bare JID → bound resources of local sessions, with the presence state
//! routing needs (available, priority, last presence, roster interest, directed presence). Read on
//! every delivery, so lookups are by key only (O(1) + O(resources)); no scans over all sessions.
//! Cluster work will add `Node(id)` entries for sessions homed on other nodes.

use crate::session::SessionHandle;
use rookery_proto::stanza::{BareJid, FullJid, Jid, Stanza};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

/// Per-session state that other sessions' routing reads.
#[derive(Debug, Default, Clone)]
pub struct PresenceState {
    /// Sent initial presence and not yet unavailable (RFC 6121 §4.2).
    pub available: bool,
    pub priority: i8,
    /// The last broadcast presence (for probes and for newly subscribed contacts).
    pub last: Option<Stanza>,
    /// Requested the roster: an "interested resource" for roster pushes (RFC 6121 §2.1.6).
    pub interested: bool,
    /// Entities that got directed presence while available (they get unavailable at logout).
    pub directed: HashSet<Jid>,
}

/// One bound session.
#[derive(Debug)]
pub struct SessionEntry {
    pub handle: SessionHandle,
    state: Mutex<PresenceState>,
}

impl SessionEntry {
    /// Runs `f` on the presence state. The lock is a plain mutex held only for `f` (never across
    /// an await), so callers must not do I/O inside.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut PresenceState) -> R) -> R {
        // A poisoned lock means a panic mid-update elsewhere; the data is plain values, still usable.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
    pub fn state(&self) -> PresenceState {
        self.with_state(|s| s.clone())
    }
    pub fn resource(&self) -> &str {
        self.handle.jid().resource().as_str()
    }
}

/// What binding a resource did.
#[derive(Debug)]
pub enum BindOutcome {
    Bound(Arc<SessionEntry>),
    /// The resource was taken and policy said to replace: the old session is returned so the
    /// caller can close it with `<conflict/>`.
    Replaced {
        entry: Arc<SessionEntry>,
        old: Arc<SessionEntry>,
    },
    Conflict,
    TooManyResources,
}

/// Keyed by the bare JID's string so lookups can borrow a slice of a full JID instead of
/// allocating a `BareJid` per delivery.
type Map = HashMap<String, Vec<Arc<SessionEntry>>>;

#[derive(Debug, Default)]
pub struct Registry {
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

    /// Binds a session. `replace` decides the conflict policy (RFC 6120 §7.7.2.2).
    pub fn bind(&self, handle: SessionHandle, replace: bool, max_resources: usize) -> BindOutcome {
        let bare = bare_of(handle.jid()).to_owned();
        let entry = Arc::new(SessionEntry {
            handle,
            state: Mutex::new(PresenceState::default()),
        });
        let mut map = self.write();
        let list = map.entry(bare).or_default();
        if let Some(pos) = list.iter().position(|e| e.resource() == entry.resource()) {
            if !replace {
                return BindOutcome::Conflict;
            }
            let old = list.remove(pos);
            list.push(entry.clone());
            return BindOutcome::Replaced { entry, old };
        }
        if list.len() >= max_resources {
            return BindOutcome::TooManyResources;
        }
        list.push(entry.clone());
        BindOutcome::Bound(entry)
    }

    /// Removes a session if it is still the one registered (a replaced session must not remove
    /// its successor).
    pub fn unbind(&self, handle: &SessionHandle) -> Option<Arc<SessionEntry>> {
        let bare = bare_of(handle.jid());
        let mut map = self.write();
        let list = map.get_mut(bare)?;
        let pos = list.iter().position(|e| e.handle == *handle)?;
        let entry = list.remove(pos);
        if list.is_empty() {
            map.remove(bare);
        }
        Some(entry)
    }

    pub fn get(&self, jid: &FullJid) -> Option<Arc<SessionEntry>> {
        let map = self.read();
        map.get(bare_of(jid))?
            .iter()
            .find(|e| e.resource() == jid.resource().as_str())
            .cloned()
    }

    /// All bound sessions of an account.
    pub fn sessions(&self, bare: &BareJid) -> Vec<Arc<SessionEntry>> {
        self.read().get(bare.as_str()).cloned().unwrap_or_default()
    }

    pub fn has_resource(&self, bare: &BareJid, resource: &str) -> bool {
        self.read()
            .get(bare.as_str())
            .is_some_and(|l| l.iter().any(|e| e.resource() == resource))
    }

    /// Available sessions (sent initial presence).
    pub fn available(&self, bare: &BareJid) -> Vec<Arc<SessionEntry>> {
        self.sessions(bare)
            .into_iter()
            .filter(|e| e.with_state(|s| s.available))
            .collect()
    }

    /// RFC 6121 §8.5.2.1: the available resources with the highest non-negative priority.
    pub fn best_resources(&self, bare: &BareJid) -> Vec<Arc<SessionEntry>> {
        let avail: Vec<(i8, Arc<SessionEntry>)> = self
            .available(bare)
            .into_iter()
            .map(|e| (e.with_state(|s| s.priority), e))
            .filter(|(p, _)| *p >= 0)
            .collect();
        let Some(max) = avail.iter().map(|(p, _)| *p).max() else {
            return Vec::new();
        };
        avail
            .into_iter()
            .filter(|(p, _)| *p == max)
            .map(|(_, e)| e)
            .collect()
    }

    /// Number of bound sessions (for metrics and shutdown).
    pub fn count(&self) -> usize {
        self.read().values().map(Vec::len).sum()
    }

    /// Every session (shutdown only: the one place a full scan is acceptable).
    pub fn all(&self) -> Vec<Arc<SessionEntry>> {
        self.read().values().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(jid: &str) -> SessionHandle {
        SessionHandle::new(FullJid::new(jid).unwrap(), 4).0
    }

    #[test]
    fn conflict_policies() {
        let r = Registry::new();
        assert!(matches!(
            r.bind(handle("a@b/r"), false, 10),
            BindOutcome::Bound(_)
        ));
        assert!(matches!(
            r.bind(handle("a@b/r"), false, 10),
            BindOutcome::Conflict
        ));
        let newer = handle("a@b/r");
        match r.bind(newer.clone(), true, 10) {
            BindOutcome::Replaced { entry, old } => {
                assert_eq!(entry.handle, newer);
                assert_ne!(old.handle, newer);
            }
            other => panic!("expected Replaced, got {other:?}"),
        }
        assert_eq!(r.count(), 1);
    }

    #[test]
    fn resources_containing_slashes_stay_under_their_account() {
        let r = Registry::new();
        let h = handle("a@b/desk/2");
        assert!(matches!(
            r.bind(h.clone(), false, 10),
            BindOutcome::Bound(_)
        ));
        assert_eq!(bare_of(h.jid()), "a@b");
        assert!(r.get(&FullJid::new("a@b/desk/2").unwrap()).is_some());
        assert_eq!(r.sessions(&BareJid::new("a@b").unwrap()).len(), 1);
        assert!(r.has_resource(&BareJid::new("a@b").unwrap(), "desk/2"));
    }

    #[test]
    fn resource_cap() {
        let r = Registry::new();
        assert!(matches!(
            r.bind(handle("a@b/1"), false, 2),
            BindOutcome::Bound(_)
        ));
        assert!(matches!(
            r.bind(handle("a@b/2"), false, 2),
            BindOutcome::Bound(_)
        ));
        assert!(matches!(
            r.bind(handle("a@b/3"), false, 2),
            BindOutcome::TooManyResources
        ));
    }

    #[test]
    fn unbind_of_a_replaced_session_keeps_its_successor() {
        let r = Registry::new();
        let old = handle("a@b/r");
        r.bind(old.clone(), false, 10);
        let new = handle("a@b/r");
        r.bind(new.clone(), true, 10);
        assert!(r.unbind(&old).is_none());
        assert_eq!(
            r.get(new.jid()).map(|e| e.handle.clone()),
            Some(new.clone())
        );
        assert!(r.unbind(&new).is_some());
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn best_resources_take_highest_non_negative_priority() {
        let r = Registry::new();
        let bare = BareJid::new("a@b").unwrap();
        for (res, prio, avail) in [
            ("x", 5, true),
            ("y", 5, true),
            ("z", 1, true),
            ("n", -1, true),
            ("u", 9, false),
        ] {
            if let BindOutcome::Bound(e) = r.bind(handle(&format!("a@b/{res}")), false, 10) {
                e.with_state(|s| {
                    s.available = avail;
                    s.priority = prio;
                });
            }
        }
        let mut best: Vec<String> = r
            .best_resources(&bare)
            .iter()
            .map(|e| e.resource().to_owned())
            .collect();
        best.sort();
        assert_eq!(best, vec!["x", "y"]);
        assert_eq!(r.available(&bare).len(), 4);

        let only_negative = Registry::new();
        if let BindOutcome::Bound(e) = only_negative.bind(handle("c@b/n"), false, 10) {
            e.with_state(|s| {
                s.available = true;
                s.priority = -5;
            });
        }
        assert!(
            only_negative
                .best_resources(&BareJid::new("c@b").unwrap())
                .is_empty()
        );
    }
}
