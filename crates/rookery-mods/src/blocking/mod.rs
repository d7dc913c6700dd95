//! XEP-0191 Blocking Command. Three places in the stanza flow:
//! - `handle_iq` (command.rs): the account's own `urn:xmpp:blocking` iqs: get the blocklist,
//!   block, unblock, unblock all; pushes to the resources that asked for the list (§3.3–§3.5)
//!   and the presence the blocked/unblocked contact is owed.
//! - `outbound` (filter.rs): runs first of all modules on every client stanza: stanzas to a JID
//!   the user blocked are refused with `<not-acceptable/>` + `<blocked/>` (§3.3); iqs to a local
//!   user who blocked the sender are refused as if that user were offline.
//! - `inbound` (filter.rs): runs first on every message/presence for a local account: stanzas
//!   from a JID the recipient blocked are dropped or bounced (§3.3), and a user's presence never
//!   reaches a JID that user blocked (the blocked contact sees the user offline).
//!
//! Blocklists of accounts with bound sessions are cached here (write-through: every change goes
//! through this module), so the per-stanza checks cost no storage round trip.

mod command;
mod filter;

use crate::util::parts;
use async_trait::async_trait;
use rookery_core::{
    Ended, Event, Flow, IqReply, IqTarget, IqType, Module, ModuleCx, Point, Priority, Scope,
    Server, Session, SessionId, StartResult, Targets,
};
use rookery_proto::error::StanzaError;
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, Jid, Kind, Stanza};
use rookery_store::StoreError;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

/// Most JIDs one account may block (bounds the cache and the per-stanza check).
pub const MAX_ITEMS: usize = 1000;

type List = Arc<HashSet<String>>;

#[derive(Debug, Default)]
pub struct Blocking {
    /// Blocklists of accounts that have bound sessions.
    cache: RwLock<HashMap<BareJid, List>>,
    /// Sessions that retrieved the blocklist and so get pushes (§3.3: "resources that have
    /// requested the blocklist"), by session id.
    interested: Mutex<HashSet<SessionId>>,
    /// Ids for pushes.
    push_seq: AtomicU64,
}

/// The forms of `jid` a blocklist entry can name, most specific first (§6 → XEP-0016 §2.1:
/// `user@domain/resource`, `user@domain`, `domain/resource`, `domain`).
pub fn match_forms(jid: &Jid) -> Vec<String> {
    let domain = jid.domain().as_str();
    let mut forms = Vec::with_capacity(4);
    if let Some(res) = jid.resource() {
        forms.push(jid.as_str().to_owned());
        if jid.node().is_some() {
            forms.push(jid.to_bare().as_str().to_owned());
            forms.push(format!("{domain}/{}", res.as_str()));
        }
    } else if jid.node().is_some() {
        forms.push(jid.as_str().to_owned());
    }
    forms.push(domain.to_owned());
    forms
}

/// Whether a blocklist covers `jid`.
pub fn list_matches(list: &HashSet<String>, jid: &Jid) -> bool {
    !list.is_empty() && match_forms(jid).iter().any(|f| list.contains(f))
}

impl Blocking {
    pub fn new() -> Self {
        Self::default()
    }

    fn cache_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<BareJid, List>> {
        // Poisoning follows a panic elsewhere; every mutation is a single insert/remove.
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }
    fn cache_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<BareJid, List>> {
        self.cache.write().unwrap_or_else(|p| p.into_inner())
    }
    fn interested(&self) -> std::sync::MutexGuard<'_, HashSet<SessionId>> {
        self.interested.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn load(server: &Server, account: &BareJid) -> Result<List, StoreError> {
        let (user, domain) = parts(account);
        let items = server.stores().blocking.list(user, domain).await?;
        Ok(Arc::new(items.into_iter().collect()))
    }

    /// The account's blocklist, from the cache or the store.
    async fn list(&self, server: &Server, account: &BareJid) -> Result<List, StoreError> {
        if let Some(l) = self.cache_read().get(account) {
            return Ok(l.clone());
        }
        let loaded = Self::load(server, account).await?;
        if server.sessions().is_online(account) {
            // Insert only if absent: a command that ran meanwhile has put a newer list.
            let mut cache = self.cache_write();
            return Ok(cache.entry(account.clone()).or_insert(loaded).clone());
        }
        Ok(loaded)
    }

    /// Re-reads the list after a change and replaces the cached copy (the store is the truth).
    async fn refresh(&self, server: &Server, account: &BareJid) -> Result<List, StoreError> {
        let loaded = Self::load(server, account).await?;
        let mut cache = self.cache_write();
        if !server.sessions().is_online(account) {
            cache.remove(account);
        } else {
            cache.insert(account.clone(), loaded.clone());
        }
        Ok(loaded)
    }

    /// Whether `account` blocks `other`. A storage failure lets the stanza through: losing
    /// every message while the database hiccups would be worse, and the error is logged.
    pub async fn blocks(&self, server: &Server, account: &BareJid, other: &Jid) -> bool {
        match self.list(server, account).await {
            Ok(l) => list_matches(&l, other),
            Err(e) => {
                tracing::error!(jid = %account, error = %e, what = "blocklist-get", "store error");
                false
            }
        }
    }
}

#[async_trait]
impl Module for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }
    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        const ALL: &[Kind] = &[Kind::Message, Kind::Presence, Kind::Iq];
        // First of all hooks: a blocked stanza must not reach presence, roster or offline
        // handling (XEP-0191 §3.3), iqs from remote senders included.
        cx.hook(Point::FromClient, ALL, Priority::FILTER)
            .hook(Point::ToAccount, ALL, Priority::FILTER)
            .hook(Point::ToRemote, &[Kind::Presence], Priority::FILTER)
            .on(Event::SessionClosed)
            .on(Event::AccountDeleted)
            .feature(Scope::Server, ns::BLOCKING);
        for ty in [IqType::Get, IqType::Set] {
            cx.iq(ty, ns::BLOCKING, Targets::ACCOUNT);
        }
        Ok(())
    }

    async fn handle_iq(
        &self,
        server: &Server,
        target: &IqTarget,
        iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        self.command(server, target, iq).await
    }

    async fn from_client(&self, server: &Server, session: &Session, st: &mut Stanza) -> Flow {
        self.filter_outbound(server, session, st).await
    }

    async fn to_account(&self, server: &Server, st: &mut Stanza) -> Flow {
        self.filter_inbound(server, st).await
    }

    async fn to_remote(&self, server: &Server, st: &Stanza) -> Flow {
        if self.presence_to_blocked(server, st).await {
            Flow::Done
        } else {
            Flow::Continue
        }
    }

    async fn session_closed(&self, server: &Server, session: &Session, _ended: &Ended) {
        self.interested().remove(session.id());
        let bare = session.jid().to_bare();
        if !server.sessions().is_online(&bare) {
            self.cache_write().remove(&bare);
        }
    }

    async fn account_deleted(&self, _server: &Server, account: &BareJid) {
        self.cache_write().remove(account);
    }
}

#[cfg(test)]
mod tests;
