//! The `urn:xmpp:blocking` iqs of the account itself (XEP-0191 §3.2–§3.5), reached through
//! core's `dispatch_iq` for iqs without `to` or to the account's own bare JID: answers,
//! pushes to interested resources, and the presence a (un)blocked contact is owed.

use super::{Blocking, List, MAX_ITEMS, match_forms};
use crate::util::{self, parts};
use rookery_core::{IqReply, IqTarget, Server};
use rookery_proto::error::{Condition, StanzaError};
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, Jid, Stanza};
use rookery_store::Subscription;
use rookery_xml::Element;
use std::collections::HashSet;
use std::sync::atomic::Ordering;

fn item(jid: &str) -> Element {
    Element::new("item", ns::BLOCKING).with_attr("jid", jid)
}

/// The `jid`s of a command's items, normalised (RFC 7622 via the jid crate).
fn parse_items(el: &Element) -> Result<Vec<Jid>, StanzaError> {
    let mut out: Vec<Jid> = Vec::new();
    for child in el.children().filter(|c| c.is("item", ns::BLOCKING)) {
        let raw = child
            .attr("jid")
            .ok_or_else(|| StanzaError::bad_request("item without jid"))?;
        let jid = Jid::new(raw).map_err(|e| {
            StanzaError::new(Condition::JidMalformed).with_text(format!("{raw}: {e}"))
        })?;
        if !out.contains(&jid) {
            out.push(jid);
        }
        if out.len() > MAX_ITEMS {
            return Err(too_many());
        }
    }
    Ok(out)
}

fn too_many() -> StanzaError {
    StanzaError::new(Condition::PolicyViolation)
        .with_text(format!("a blocklist holds at most {MAX_ITEMS} JIDs"))
}

/// Whether a contact in the user's presence circle is covered by the (un)blocked `jid`.
fn covers(jid: &Jid, contact: &Jid) -> bool {
    match_forms(contact).iter().any(|f| f == jid.as_str())
}

impl Blocking {
    pub(super) async fn command(
        &self,
        server: &Server,
        target: &IqTarget,
        iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        let account = match target {
            IqTarget::Account(b) if util::is_own(iq, b) => b,
            // Nobody may read or change another account's blocklist.
            IqTarget::Account(_) => return Err(StanzaError::forbidden()),
            IqTarget::Server | IqTarget::Domain(_) => {
                return Err(StanzaError::service_unavailable());
            }
        };
        let Some(payload) = iq.iq_payload() else {
            return Err(StanzaError::bad_request("missing payload"));
        };
        match (iq.type_attr(), payload.name()) {
            ("get", "blocklist") => self.get(server, account, iq).await,
            ("set", "block") => self.block(server, account, payload).await,
            ("set", "unblock") => self.unblock(server, account, payload).await,
            _ => Err(StanzaError::bad_request("unknown blocking command")),
        }
    }

    /// §3.2: the list, and from now on this resource gets pushes.
    async fn get(
        &self,
        server: &Server,
        account: &BareJid,
        iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        let list = self
            .list(server, account)
            .await
            .map_err(|e| util::store_error("blocklist-get", account, &e))?;
        if let Some(full) = iq.from().and_then(|f| f.try_as_full().ok())
            && let Some(r) = server.sessions().resource(full)
        {
            self.interested().insert(r.session.id().clone());
        }
        let mut sorted: Vec<&String> = list.iter().collect();
        sorted.sort();
        let mut el = Element::new("blocklist", ns::BLOCKING);
        for j in sorted {
            el.append_child(item(j));
        }
        Ok(IqReply::Payload(el))
    }

    /// §3.3: block, push, and send unavailable presence to those who could see the user.
    async fn block(
        &self,
        server: &Server,
        account: &BareJid,
        payload: &Element,
    ) -> Result<IqReply, StanzaError> {
        let jids = parse_items(payload)?;
        if jids.is_empty() {
            return Err(StanzaError::bad_request(
                "<block/> needs at least one <item/>",
            ));
        }
        let current = self
            .list(server, account)
            .await
            .map_err(|e| util::store_error("blocklist-get", account, &e))?;
        let new: Vec<Jid> = jids
            .into_iter()
            .filter(|j| !current.contains(j.as_str()))
            .collect();
        if current.len() + new.len() > MAX_ITEMS {
            return Err(too_many());
        }
        let strings: Vec<String> = new.iter().map(|j| j.as_str().to_owned()).collect();
        let (user, domain) = parts(account);
        if !strings.is_empty() {
            server
                .stores()
                .blocking
                .add(user, domain, &strings)
                .await
                .map_err(|e| util::store_error("blocklist-add", account, &e))?;
        }
        self.refresh(server, account)
            .await
            .map_err(|e| util::store_error("blocklist-get", account, &e))?;
        self.push(server, account, "block", payload);
        // Presence goes out after the list changed, so nothing the user sends next can slip past.
        let targets = presence_targets(server, account, &new).await;
        send_presence(server, account, &targets, true).await;
        Ok(IqReply::Empty)
    }

    /// §3.4 / §3.5: unblock the items, or everything for an empty `<unblock/>`; push; send the
    /// user's current presence to those allowed to see it again.
    async fn unblock(
        &self,
        server: &Server,
        account: &BareJid,
        payload: &Element,
    ) -> Result<IqReply, StanzaError> {
        let jids = parse_items(payload)?;
        let (user, domain) = parts(account);
        let store = &server.stores().blocking;
        let before: List = self
            .list(server, account)
            .await
            .map_err(|e| util::store_error("blocklist-get", account, &e))?;
        let removed: Vec<Jid> = if jids.is_empty() {
            store
                .clear(user, domain)
                .await
                .map_err(|e| util::store_error("blocklist-clear", account, &e))?;
            before.iter().filter_map(|s| Jid::new(s).ok()).collect()
        } else {
            let strings: Vec<String> = jids.iter().map(|j| j.as_str().to_owned()).collect();
            store
                .remove(user, domain, &strings)
                .await
                .map_err(|e| util::store_error("blocklist-remove", account, &e))?;
            jids.into_iter()
                .filter(|j| before.contains(j.as_str()))
                .collect()
        };
        let after = self
            .refresh(server, account)
            .await
            .map_err(|e| util::store_error("blocklist-get", account, &e))?;
        self.push(server, account, "unblock", payload);
        // A contact still covered by another entry (e.g. its domain) stays blocked.
        let targets: Vec<Jid> = presence_targets(server, account, &removed)
            .await
            .into_iter()
            .filter(|t| !super::list_matches(&after, t))
            .collect();
        send_presence(server, account, &targets, false).await;
        Ok(IqReply::Empty)
    }

    /// Sends `<{what}>` with the command's items to every interested resource of the account.
    fn push(&self, server: &Server, account: &BareJid, what: &str, payload: &Element) {
        let mut body = Element::new(what, ns::BLOCKING);
        for child in payload.children().filter(|c| c.is("item", ns::BLOCKING)) {
            if let Some(j) = child.attr("jid").and_then(|j| Jid::new(j).ok()) {
                body.append_child(item(j.as_str()));
            }
        }
        let interested = self.interested().clone();
        for r in server.sessions().resources(account) {
            if !interested.contains(r.session.id()) {
                continue;
            }
            let n = self.push_seq.fetch_add(1, Ordering::Relaxed);
            // RFC 6121 §2.1.6 style push: from the account's bare JID, to the resource.
            let el = Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("block-push-{n}"))
                .with_attr("from", account.as_str())
                .with_attr("to", r.jid().as_str())
                .child(body.clone());
            match Stanza::new(el) {
                Ok(st) => {
                    let _ = server.sessions().send(&r.session, st);
                }
                Err(e) => tracing::error!(what = "block-push", error = ?e, "bad push stanza"),
            }
        }
    }
}

/// The JIDs that currently get the user's presence and are covered by `jids`: roster contacts
/// with a `from`/`both` subscription (RFC 6121 §4.2.2) and targets of directed presence
/// (§4.6), plus a blocked full JID of a subscribed contact itself.
async fn presence_targets(server: &Server, account: &BareJid, jids: &[Jid]) -> Vec<Jid> {
    if jids.is_empty() {
        return Vec::new();
    }
    let (user, domain) = parts(account);
    let mut subscribed: HashSet<Jid> = HashSet::new();
    match server.stores().roster.get_all(user, domain).await {
        Ok((_, items)) => {
            for it in items {
                if matches!(it.subscription, Subscription::From | Subscription::Both)
                    && let Ok(j) = Jid::new(&it.jid)
                {
                    subscribed.insert(j);
                }
            }
        }
        Err(e) => tracing::error!(jid = %account, error = %e, what = "roster-get", "store error"),
    }
    let mut candidates: Vec<Jid> = subscribed.iter().cloned().collect();
    candidates.extend(server.sessions().directed_presence(account));
    let mut out: Vec<Jid> = Vec::new();
    for j in jids {
        for c in &candidates {
            if covers(j, c) && !out.contains(c) {
                out.push(c.clone());
            }
        }
        let full_of_subscribed = j.resource().is_some()
            && j.node().is_some()
            && subscribed.contains(&Jid::from(j.to_bare()));
        if full_of_subscribed && !out.contains(j) {
            out.push(j.clone());
        }
    }
    out
}

/// From each available resource: unavailable (`block`) or its current presence (unblock).
async fn send_presence(server: &Server, account: &BareJid, targets: &[Jid], block: bool) {
    if targets.is_empty() {
        return;
    }
    for r in server.sessions().available(account) {
        let from = Jid::from(r.jid().clone());
        let template = if block {
            let el = Element::new("presence", ns::CLIENT).with_attr("type", "unavailable");
            Stanza::new(el).ok()
        } else {
            r.presence.as_deref().cloned()
        };
        let Some(template) = template else { continue };
        for t in targets {
            let mut p = template.clone();
            p.set_from(Some(from.clone()));
            p.set_to(Some(t.clone()));
            server.route(p).await;
        }
    }
}
