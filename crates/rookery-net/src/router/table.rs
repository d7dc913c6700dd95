//! The router's bind table: which router connection holds which name, the default route, and
//! the domain presence announcements that follow every change (jabberd2 `router.c` semantics,
//! except that a connection holding several names gets each announcement once, not once per
//! name).
//!
//! Where it sits: every router connection (`router/mod.rs`) registers its mailbox here after
//! authenticating and calls `bind`/`unbind`/`disconnect`; `route.rs` asks `lookup` where a
//! `<route/>` goes. A name bound here is also bound in the core's `Components` table through a
//! `NameLink` (`link.rs`), so stanzas from Rookery's own users to that domain come here, wrapped in a
//! `<route/>`. One plain mutex guards the table; it is never held across an `.await`, and no
//! per-stanza path scans all connections (broadcasts aside, which are by definition to all).

use super::NS_COMPONENT;
use super::link::{NameLink, multi_index, random_index};
use rookery_core::Server;
use rookery_core::components::{ComponentRoute, next_link_id};
use rookery_proto::stanza::Jid;
use rookery_xml::Element;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Elements waiting to be written to one router connection.
pub(crate) type Mailbox = mpsc::Sender<Element>;

/// Shared by every router listener of one server.
#[derive(Clone)]
pub struct RouterHub {
    inner: Arc<Mutex<Table>>,
    server: Server,
}

#[derive(Default)]
pub(super) struct Table {
    conns: HashMap<u64, Conn>,
    names: HashMap<String, Name>,
    /// The default route: (name, holder).
    default_route: Option<(String, u64)>,
}

struct Conn {
    tx: Mailbox,
    /// Names this connection holds.
    names: BTreeSet<String>,
    /// Whether it has been told about all existing names (after its first bind); only such
    /// connections receive later announcements, so each learns every change exactly once.
    told: bool,
}

struct Name {
    holders: Vec<u64>,
    multi: bool,
    /// The core's view of this name (bound in `Components` while the name has holders).
    link: Arc<NameLink>,
}

/// Why a bind or unbind was refused: jabberd2's HTTP-like codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `400`: missing or invalid name.
    BadRequest,
    /// `403`: the user lacks the ACL for it.
    Forbidden,
    /// `404`: not bound by this connection (unbind).
    NotFound,
    /// `409`: already bound, a Rookery host, or a second default route.
    Conflict,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::BadRequest => "400",
            Refusal::Forbidden => "403",
            Refusal::NotFound => "404",
            Refusal::Conflict => "409",
        }
    }
}

/// What a `<bind/>` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct BindRequest {
    pub multi: bool,
    pub default_route: bool,
    pub log_sink: bool,
}

/// The ACL of the user a connection authenticated as.
#[derive(Debug, Clone)]
pub struct Acl {
    pub user: String,
    pub bind_any: bool,
    pub default_route: bool,
}

/// Where a unicast route goes.
pub(crate) enum Target {
    /// A router connection holds the name; forward the route as is.
    Link(u64, Mailbox),
    /// Nobody on the router holds it.
    Unbound,
}

/// A name as jabberd2 checks it: it must parse as a JID; its domain part is the name.
pub fn parse_name(raw: &str) -> Option<String> {
    let jid = Jid::new(raw).ok()?;
    Some(jid.domain().as_str().to_ascii_lowercase())
}

impl RouterHub {
    pub fn new(server: &Server) -> Self {
        RouterHub {
            inner: Arc::new(Mutex::new(Table::default())),
            server: server.clone(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an authenticated connection's mailbox; returns its id.
    pub(crate) fn register(&self, tx: Mailbox) -> u64 {
        let id = next_link_id();
        self.table().conns.insert(
            id,
            Conn {
                tx,
                names: BTreeSet::new(),
                told: false,
            },
        );
        id
    }

    /// jabberd2's bind rules in its order (`router.c`). On success the name is announced to every
    /// other connection and, on its first bind, the connection learns every existing name.
    pub fn bind(
        &self,
        id: u64,
        raw: Option<&str>,
        req: BindRequest,
        acl: &Acl,
    ) -> Result<(), Refusal> {
        let name = raw.and_then(parse_name).ok_or(Refusal::BadRequest)?;
        if name != acl.user && !acl.bind_any {
            return Err(Refusal::Forbidden);
        }
        if self.server.is_local_host(&name) {
            // Rookery itself holds its hosts; a component can't take them over.
            return Err(Refusal::Conflict);
        }
        let mut t = self.table();
        match t.names.get(&name) {
            Some(n) if !(req.multi && n.multi) || n.holders.contains(&id) => {
                return Err(Refusal::Conflict);
            }
            Some(_) => {}
            None => {
                // A domain of an XEP-0114 component (configured or connected) or one of its
                // subdomains belongs to that component. Names on this router are independent of
                // each other (jabberd2 routes by exact name), so a subdomain of a router name is
                // free.
                let ours = |link_id: u64| t.names.values().any(|n| n.link.id() == link_id);
                match self.server.components().lookup(&name) {
                    ComponentRoute::Bound(link) if !ours(link.link_id()) => {
                        return Err(Refusal::Conflict);
                    }
                    ComponentRoute::Down => return Err(Refusal::Conflict),
                    _ => {}
                }
            }
        }
        if req.default_route {
            if !acl.default_route {
                return Err(Refusal::Forbidden);
            }
            if t.default_route.is_some() {
                return Err(Refusal::Conflict);
            }
        }
        if req.log_sink {
            // Log sinks (copies of every route) are not offered.
            return Err(Refusal::Forbidden);
        }
        let fresh = !t.names.contains_key(&name);
        if fresh {
            let link = Arc::new(NameLink::new(
                next_link_id(),
                name.clone(),
                Arc::downgrade(&self.inner),
            ));
            if self.server.components().bind(&name, link.clone()).is_err() {
                return Err(Refusal::Conflict);
            }
            t.names.insert(
                name.clone(),
                Name {
                    holders: Vec::new(),
                    multi: req.multi,
                    link,
                },
            );
        }
        if let Some(n) = t.names.get_mut(&name) {
            n.holders.push(id);
        }
        if req.default_route {
            t.default_route = Some((name.clone(), id));
        }
        let first_bind = match t.conns.get_mut(&id) {
            Some(c) => {
                c.names.insert(name.clone());
                !std::mem::replace(&mut c.told, true)
            }
            None => false,
        };
        if fresh {
            t.announce(&name, id, false);
        }
        if first_bind {
            let known = self.known_names(&t, id);
            if let Some(c) = t.conns.get(&id) {
                for n in known {
                    let _ = c.tx.try_send(presence(&n, false));
                }
            }
        }
        Ok(())
    }

    /// Every name the connection `id` should know about: Rookery's hosts, names held by other
    /// router connections, and other component domains bound in the core.
    fn known_names(&self, t: &Table, id: u64) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .server
            .config()
            .hosts
            .iter()
            .map(|h| h.domain.clone())
            .collect();
        for d in self.server.components().bound_domains() {
            // Like jabberd2, nobody is told about a name it holds itself (alone or shared).
            if !t.names.get(&d).is_some_and(|n| n.holders.contains(&id)) {
                names.insert(d);
            }
        }
        names
    }

    /// `<unbind name='…'/>`: 400 invalid, 404 not held by this connection.
    pub fn unbind(&self, id: u64, raw: Option<&str>) -> Result<(), Refusal> {
        let name = raw.and_then(parse_name).ok_or(Refusal::BadRequest)?;
        let mut t = self.table();
        let holds = t.conns.get(&id).is_some_and(|c| c.names.contains(&name));
        if !holds {
            return Err(Refusal::NotFound);
        }
        if let Some(c) = t.conns.get_mut(&id) {
            c.names.remove(&name);
        }
        self.release(&mut t, id, &name);
        Ok(())
    }

    /// A connection ended: every name it held is released (and announced unavailable where
    /// it was the last holder). Returns nothing; queued stanzas are the caller's to bounce.
    pub(crate) fn disconnect(&self, id: u64) {
        let mut t = self.table();
        let Some(c) = t.conns.remove(&id) else {
            return;
        };
        for name in c.names {
            self.release(&mut t, id, &name);
        }
    }

    fn release(&self, t: &mut Table, id: u64, name: &str) {
        if t.default_route
            .as_ref()
            .is_some_and(|(n, h)| n == name && *h == id)
        {
            t.default_route = None;
        }
        let gone = match t.names.get_mut(name) {
            Some(n) => {
                n.holders.retain(|h| *h != id);
                n.holders.is_empty()
            }
            None => false,
        };
        if gone && let Some(n) = t.names.remove(name) {
            self.server.components().unbind(name, n.link.id());
            t.announce(name, id, true);
        }
    }

    /// Whether Rookery itself serves `name` apart from this router: one of its hosts, or an
    /// XEP-0114 component's domain (connected or configured) or subdomain. A subdomain of a
    /// router name is not served: jabberd2 routes by exact name.
    pub(crate) fn core_serves(&self, name: &str) -> bool {
        if self.server.is_local_host(name) {
            return true;
        }
        match self.server.components().lookup(name) {
            ComponentRoute::Bound(link) => {
                let id = link.link_id();
                !self.table().names.values().any(|n| n.link.id() == id)
            }
            ComponentRoute::Down => true,
            ComponentRoute::None => false,
        }
    }

    /// Whether connection `id` holds `name` (the `from` check of every route).
    pub(crate) fn holds(&self, id: u64, name: &str) -> bool {
        self.table()
            .conns
            .get(&id)
            .is_some_and(|c| c.names.contains(name))
    }

    /// Where a route to `name` goes; `inner_to` chooses among the holders of a multi-bound
    /// name.
    pub(crate) fn lookup(&self, name: &str, inner_to: Option<&Jid>) -> Target {
        let t = self.table();
        t.pick(name, inner_to)
    }

    /// The default route and its holder, if one is bound.
    pub(crate) fn default_route(&self) -> Option<(String, u64)> {
        self.table().default_route.clone()
    }

    /// A `type='broadcast'` route: a copy to every other connection, once each.
    pub(crate) fn broadcast(&self, from_id: u64, el: &Element) {
        let t = self.table();
        for (id, c) in &t.conns {
            if *id != from_id {
                let _ = c.tx.try_send(el.clone());
            }
        }
    }

    /// Returns a refused route to the connection holding its `from` name, with `error=code`;
    /// true when one took it.
    pub(crate) fn bounce_to_sender(&self, mut el: Element, code: &str) -> bool {
        let Some(from) = el.attr("from").and_then(parse_name) else {
            return false;
        };
        el.set_attr("error", code);
        match self.lookup(&from, None) {
            Target::Link(_, tx) => tx.try_send(el).is_ok(),
            Target::Unbound => false,
        }
    }
}

impl Table {
    /// The holder of `name` a route goes to (jabberd2's choice for multi-bound names).
    pub(super) fn pick(&self, name: &str, inner_to: Option<&Jid>) -> Target {
        let Some(n) = self.names.get(name) else {
            return Target::Unbound;
        };
        let idx = if n.holders.len() <= 1 {
            0
        } else {
            inner_to
                .and_then(|j| multi_index(j, n.holders.len()))
                .unwrap_or_else(|| random_index(n.holders.len()))
        };
        match n
            .holders
            .get(idx)
            .and_then(|id| Some((*id, self.conns.get(id)?)))
        {
            Some((id, c)) => Target::Link(id, c.tx.clone()),
            None => Target::Unbound,
        }
    }

    /// Tells every connection that has learnt the names (except `source`) that `name` came
    /// or went. One presence per connection, however many names it holds.
    fn announce(&self, name: &str, source: u64, unavailable: bool) {
        let p = presence(name, unavailable);
        for (id, c) in &self.conns {
            if *id != source && c.told {
                let _ = c.tx.try_send(p.clone());
            }
        }
    }
}

fn presence(name: &str, unavailable: bool) -> Element {
    let mut p = Element::new("presence", NS_COMPONENT).with_attr("from", name);
    if unavailable {
        p.set_attr("type", "unavailable");
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_like_jabberd2() {
        assert_eq!(parse_name("c2s").as_deref(), Some("c2s"));
        assert_eq!(parse_name("JD2.Test").as_deref(), Some("jd2.test"));
        assert_eq!(parse_name(""), None);
        assert_eq!(parse_name("a b"), None);
    }
}
