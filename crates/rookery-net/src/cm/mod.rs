//! Connection managers (Openfire's `jabber:connectionmanager` protocol; decisions 0006,
//! 0009): front processes that hold client sockets and carry their traffic over a few links to
//! the server. `serve` is the server's link listener; `stream` makes each routed client an
//! ordinary c2s session. The link itself (`link`, `hub`: one CM's links and sessions, pinned;
//! `wire`) is rookery-transport's `cm`, shared with the `rookery cm` process (crate
//! rookery-cm), which is the other end.

mod dispatch;
mod expire;
pub mod serve;
pub mod stream;

use rookery_transport::cm::hub::Hub;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use stream::CmTx;

/// Every connection manager connected to this server, by name.
#[derive(Clone, Default)]
pub struct CmRegistry {
    hubs: Arc<Mutex<HashMap<String, Arc<Hub<CmTx>>>>>,
}

impl CmRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Hub<CmTx>>>> {
        // Plain map of Arcs; a panic elsewhere cannot leave it inconsistent.
        self.hubs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hub of the CM called `name`, created on its first link.
    pub fn hub(&self, name: &str) -> Arc<Hub<CmTx>> {
        self.map()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Hub::new(name.to_owned())))
            .clone()
    }

    /// Drops a CM that has neither links nor sessions left.
    pub fn forget_if_empty(&self, name: &str) {
        let mut map = self.map();
        if map
            .get(name)
            .is_some_and(|h| h.link_count() == 0 && h.session_count() == 0)
        {
            map.remove(name);
        }
    }

    /// Connected CMs and their session counts (admin and tests).
    pub fn summary(&self) -> Vec<(String, usize, usize)> {
        let mut v: Vec<(String, usize, usize)> = self
            .map()
            .values()
            .map(|h| (h.name.clone(), h.live_links().len(), h.session_count()))
            .collect();
        v.sort();
        v
    }
}
