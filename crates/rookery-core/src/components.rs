//! Component routes: domains served by a process outside the core — XEP-0114 external
//! components and jabberd2-style router components. `Server::route` consults this table after
//! the local hosts and before federation (the router's "component" class). The connection
//! actors in rookery-net own the sockets; the table only holds a non-blocking sink per domain.
//!
//! A domain named in the configuration is *reserved*: while no connection holds it, stanzas to
//! it bounce with `service-unavailable` instead of leaking out to federation (a dropped
//! component must not turn its subdomain into a DNS lookup).

use rookery_proto::stanza::Stanza;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A connection that serves one or more component domains.
pub trait ComponentLink: Send + Sync + 'static {
    /// Identifies the connection (binds and unbinds are checked against it).
    fn link_id(&self) -> u64;
    /// Queues a stanza for the component without waiting. A refused stanza comes back so the
    /// router can bounce it.
    #[allow(clippy::result_large_err)] // the stanza itself is handed back, not an error value
    fn send(&self, st: Stanza) -> Result<(), Stanza>;
}

static NEXT_LINK_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh, process-unique id for a component connection.
pub fn next_link_id() -> u64 {
    NEXT_LINK_ID.fetch_add(1, Ordering::Relaxed)
}

/// Why a bind was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    /// Another connection holds the domain.
    Conflict,
    /// The domain is one of the server's own hosts.
    LocalHost,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Conflict => f.write_str("the domain is already bound by another connection"),
            BindError::LocalHost => f.write_str("the domain is one of the server's own hosts"),
        }
    }
}

/// What `Components::lookup` found for a domain.
pub enum ComponentRoute {
    /// A live connection serves it.
    Bound(Arc<dyn ComponentLink>),
    /// Configured for a component, but none is connected: `service-unavailable`.
    Down,
    /// Not a component domain.
    None,
}

/// The domain → connection table. Lookups are one hash probe under a read lock.
#[derive(Default)]
pub struct Components {
    bound: RwLock<HashMap<String, Arc<dyn ComponentLink>>>,
    reserved: RwLock<HashSet<String>>,
}

impl Components {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `domain` as a component domain even while nothing is bound to it.
    pub fn reserve(&self, domain: &str) {
        self.reserved
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_ascii_lowercase());
    }

    /// Binds `domain` to `link`. Only one connection may hold a domain.
    pub fn bind(&self, domain: &str, link: Arc<dyn ComponentLink>) -> Result<(), BindError> {
        let key = domain.to_ascii_lowercase();
        let mut map = self.bound.write().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(&key) {
            return Err(BindError::Conflict);
        }
        map.insert(key, link);
        Ok(())
    }

    /// Releases `domain` if `link_id` holds it; true when it did.
    pub fn unbind(&self, domain: &str, link_id: u64) -> bool {
        let key = domain.to_ascii_lowercase();
        let mut map = self.bound.write().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).is_some_and(|l| l.link_id() == link_id) {
            map.remove(&key);
            return true;
        }
        false
    }

    /// Releases every domain `link_id` holds (a connection ended); returns them.
    pub fn unbind_all(&self, link_id: u64) -> Vec<String> {
        let mut map = self.bound.write().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<String> = map
            .iter()
            .filter(|(_, l)| l.link_id() == link_id)
            .map(|(d, _)| d.clone())
            .collect();
        for d in &gone {
            map.remove(d);
        }
        gone
    }

    /// Where a stanza for `domain` goes (`domain` is already normalised, lowercase). A
    /// component also serves the subdomains of its domain (it may send from them, so replies
    /// must find it): the most specific configured or bound suffix wins, on label boundaries
    /// only (`xecho.example` is not under `echo.example`). One hash probe per label.
    pub fn lookup(&self, domain: &str) -> ComponentRoute {
        let bound = self.bound.read().unwrap_or_else(|p| p.into_inner());
        let reserved = self.reserved.read().unwrap_or_else(|p| p.into_inner());
        let mut candidate = domain;
        loop {
            if let Some(link) = bound.get(candidate) {
                return ComponentRoute::Bound(link.clone());
            }
            if reserved.contains(candidate) {
                return ComponentRoute::Down;
            }
            match candidate.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => candidate = parent,
                _ => return ComponentRoute::None,
            }
        }
    }

    /// Every bound domain (for name announcements to router components).
    pub fn bound_domains(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .bound
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Sink {
        id: u64,
        got: Mutex<Vec<Stanza>>,
    }
    impl ComponentLink for Sink {
        fn link_id(&self) -> u64 {
            self.id
        }
        fn send(&self, st: Stanza) -> Result<(), Stanza> {
            self.got.lock().unwrap().push(st);
            Ok(())
        }
    }
    fn sink() -> Arc<Sink> {
        Arc::new(Sink {
            id: next_link_id(),
            got: Mutex::new(Vec::new()),
        })
    }

    #[test]
    fn one_connection_per_domain_and_only_the_owner_unbinds() {
        let c = Components::new();
        let a = sink();
        let b = sink();
        c.bind("echo.example", a.clone()).unwrap();
        assert_eq!(c.bind("ECHO.example", b.clone()), Err(BindError::Conflict));
        assert!(!c.unbind("echo.example", b.id));
        assert!(
            matches!(c.lookup("echo.example"), ComponentRoute::Bound(l) if l.link_id() == a.id)
        );
        assert_eq!(c.unbind_all(a.id), vec!["echo.example".to_owned()]);
        assert!(matches!(c.lookup("echo.example"), ComponentRoute::None));
        c.bind("echo.example", b.clone()).unwrap();
        assert_eq!(c.bound_domains(), vec!["echo.example".to_owned()]);
    }

    #[test]
    fn reserved_domain_without_connection_is_down() {
        let c = Components::new();
        c.reserve("Muc.Example");
        assert!(matches!(c.lookup("muc.example"), ComponentRoute::Down));
        let a = sink();
        c.bind("muc.example", a.clone()).unwrap();
        assert!(matches!(c.lookup("muc.example"), ComponentRoute::Bound(_)));
        c.unbind("muc.example", a.id);
        assert!(matches!(c.lookup("muc.example"), ComponentRoute::Down));
    }

    #[test]
    fn subdomains_belong_to_the_component_on_label_boundaries() {
        let c = Components::new();
        let a = sink();
        c.bind("echo.example", a.clone()).unwrap();
        assert!(matches!(
            c.lookup("room.echo.example"),
            ComponentRoute::Bound(_)
        ));
        assert!(matches!(
            c.lookup("a.b.echo.example"),
            ComponentRoute::Bound(_)
        ));
        assert!(matches!(c.lookup("xecho.example"), ComponentRoute::None));
        assert!(matches!(c.lookup("example"), ComponentRoute::None));
        // A more specific component of its own is not the parent's, even while it is down.
        c.reserve("sub.echo.example");
        assert!(matches!(
            c.lookup("x.sub.echo.example"),
            ComponentRoute::Down
        ));
    }
}
